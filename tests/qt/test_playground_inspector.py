"""The playground opens the model inspector, hands it its image, and closes it cleanly."""

from __future__ import annotations

import threading

import numpy as np

TIMEOUT = 60_000


def test_model_menu_opens_the_inspector_on_the_demo_and_feeds_the_image(qtbot, window):
    before = threading.active_count()
    window.act_inspector.trigger()
    insp = window.inspector
    assert insp.isVisible()
    qtbot.waitUntil(lambda: insp.current_capture() is not None and not insp.inference.is_busy(), timeout=TIMEOUT)
    assert insp.current_model().kind == "demo"
    assert len(insp.current_capture().layers) > 5
    # the playground's photo goes to the model (resized by its preprocessing)
    window.act_inspect_image.trigger()
    qtbot.waitUntil(lambda: insp.current_input() is not None
                    and np.asarray(insp.current_input()).shape[:2] == window.current_image().shape[:2]
                    and not insp.inference.is_busy(), timeout=TIMEOUT)
    # the same window is reused
    window.act_inspector.trigger()
    assert window.inspector is insp
    window.close()
    assert not insp.isVisible()
    assert not insp.inference.isRunning() and not insp.loader.isRunning()
    qtbot.waitUntil(lambda: threading.active_count() <= before + 1, timeout=5000)


def test_menu_has_model_entry(window):
    titles = [a.text() for a in window.menuBar().actions()]
    assert "&Model" in titles
    assert window.act_inspector in window.toolbar.actions()
