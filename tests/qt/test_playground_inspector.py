"""The playground opens the model inspector, hands it its image, and closes it cleanly."""

from __future__ import annotations

import gc
import threading
import weakref

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


def _hooks(module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               + len(getattr(m, "_backward_pre_hooks", {})) for m in module.modules())


def test_closing_and_reopening_the_inspector_computes_every_time_and_releases_the_model(qtbot, window):
    """The playground keeps its inspector: after each close it shows again, computes again,
    and the closed model is let go (no hooks left on it, nothing keeps it in memory)."""
    for round_ in range(5):
        window.act_inspector.trigger()
        insp = window.inspector
        assert insp.isVisible()
        qtbot.waitUntil(lambda: insp.current_capture() is not None and insp.current_model() is not None
                        and not insp.inference.is_busy(), timeout=TIMEOUT)
        # it computes: a newly chosen layer comes back as a fresh result
        layer = insp.current_capture().names()[1 + round_ % 3]
        insp.select_layer(layer)
        qtbot.waitUntil(lambda: insp.current_capture().layer == layer and not insp.inference.is_busy(),
                        timeout=TIMEOUT)
        module = insp.current_model().module
        assert _hooks(module) > 0  # the capture's hooks are on while the window is open
        insp.close()
        assert not insp.isVisible() and not insp.inference.isRunning() and not insp.loader.isRunning()
        assert _hooks(module) == 0, f"round {round_}: hooks left on the closed model"
        assert insp.current_model() is None
        ref = weakref.ref(module)
        del module
        gc.collect()
        assert ref() is None, f"round {round_}: the closed model is still in memory"
    assert window.inspector is insp  # the same window every time
