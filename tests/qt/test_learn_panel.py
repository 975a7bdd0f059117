"""Each lesson button sets the controls it promises, and the outputs show the effect."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from cnnviz.core.lessons import LESSONS

TIMEOUT = 60_000


def click_lesson(qtbot, window, key):
    btn = window.learn_panel.buttons[key]
    qtbot.mouseClick(btn, Qt.MouseButton.LeftButton)
    assert window.learn_panel.current.key == key
    assert window.learn_panel.text.text() == window.learn_panel.current.text


def settled(qtbot, window):
    rid = window.submit_now()
    qtbot.waitUntil(lambda: window.worker.last_delivered_id >= (rid or 0) and not window.worker.is_busy(),
                    timeout=TIMEOUT)
    return window.current_result()


def test_every_lesson_has_a_button(window):
    assert set(window.learn_panel.buttons) == {les.key for les in LESSONS}
    assert window.dock_learn.toggleViewAction() in [a for m in window.menuBar().actions() if m.menu()
                                                    for sub in m.menu().actions() if sub.menu()
                                                    for a in sub.menu().actions()]


def test_stride_lesson_halves_the_displayed_shape(qtbot, window):
    before = settled(qtbot, window).conv.shape[-2:]
    click_lesson(qtbot, window, "stride")
    res = settled(qtbot, window)
    img = window.current_image()
    assert window.params_panel.params().stride == (2, 2)
    assert res.conv.shape[-2:] == ((img.shape[0] + 1) // 2, (img.shape[1] + 1) // 2)
    assert res.conv.shape[-2] < before[0]
    assert window.displayed_array("conv").shape[-2:] == res.conv.shape[-2:]
    assert "/ 2⌋" in res.conv_shape.formula_h


def test_padding_lesson_keeps_the_size(qtbot, window):
    click_lesson(qtbot, window, "padding")
    res = settled(qtbot, window)
    assert window.params_panel.params().padding_kind == "same"
    assert res.conv.shape[-2:] == window.current_image().shape[:2]


def test_relu_lesson_zeroes_negatives(qtbot, window):
    click_lesson(qtbot, window, "relu")
    res = settled(qtbot, window)
    assert window.params_panel.params().activation == "relu"
    assert res.conv.min() < 0 and window.displayed_array("activation").min() >= 0


def test_pool_lesson_shows_a_pooled_map(qtbot, window):
    click_lesson(qtbot, window, "max-vs-avg-pool")
    res = settled(qtbot, window)
    assert window.params_panel.params().pool == "max"
    assert res.pool is not None and res.pool.shape[-1] == res.conv.shape[-1] // 2
    assert window.dock_explain.isVisible()


def test_bank_and_edge_lessons_load_their_kernels(qtbot, window):
    click_lesson(qtbot, window, "oriented-bank")
    assert settled(qtbot, window).conv.shape[0] == 12
    click_lesson(qtbot, window, "edges-vertical-horizontal")
    res = settled(qtbot, window)
    assert res.conv.shape[0] == 2 and res.magnitude is not None


def test_flip_lesson_negates(qtbot, window):
    click_lesson(qtbot, window, "relu")
    plain = settled(qtbot, window).conv.copy()
    click_lesson(qtbot, window, "correlation-vs-convolution")
    res = settled(qtbot, window)
    assert window.params_panel.params().flip
    np.testing.assert_allclose(res.conv, -plain, atol=1e-5)


def test_weight_sharing_lesson_raises_its_panel(qtbot, window):
    click_lesson(qtbot, window, "weight-sharing")
    settled(qtbot, window)
    assert window.dock_weights.isVisible()


@pytest.mark.parametrize("key, tab, layer_kind", [("hierarchy", "grid", "first"), ("grad-cam", "cam", None),
                                                  ("receptive-field", "rf", "last")])
def test_inspector_lessons_open_the_demo_on_the_right_view(qtbot, window, key, tab, layer_kind):
    click_lesson(qtbot, window, key)
    insp = window.inspector
    qtbot.waitUntil(lambda: insp.current_capture() is not None and window.learn_panel._pending_inspector is None,
                    timeout=TIMEOUT)
    assert insp.current_model().kind == "demo"
    from cnnviz.qt.inspector.window import TAB_KEYS
    assert TAB_KEYS[insp.tabs.currentIndex()] == tab
    if layer_kind:
        convs = [la.name for la in insp.current_capture().layers if "Conv" in la.type]
        assert insp.selected_layer() == (convs[0] if layer_kind == "first" else convs[-1])


@pytest.mark.parametrize("key", [les.key for les in LESSONS if les.target == "playground"])
def test_each_playground_lesson_computes_the_request_the_core_defines(qtbot, window, key):
    from cnnviz.core.lessons import lesson, playground_request

    click_lesson(qtbot, window, key)
    settled(qtbot, window)
    want = playground_request(lesson(key), window.params_panel.params().channels)
    got = window.current_request()
    assert (got.kernels, got.conv, got.activation, got.pool, got.magnitude_pair) == \
        (want.kernels, want.conv, want.activation, want.pool, want.magnitude_pair)


def test_filters_learn_themselves_trains_simplecnn_beside_the_sobel_kernels(qtbot, window):
    pytest.importorskip("torch")
    click_lesson(qtbot, window, "filters-learn-themselves")
    tw = window.train_window
    try:
        assert tw.isVisible() and tw.is_running()
        assert tw.form.model.currentText() == "simplecnn" and tw.form.data.text() == "digits"
        assert [k.name.lower() for k in window.state.kernels][:2] == ["sobel-x", "sobel-y"]
        # the first-layer kernels appear in the Train window as the run goes
        qtbot.waitUntil(lambda: tw.kernels.current_frame() is not None, timeout=TIMEOUT)
    finally:
        tw.stop()
        tw.shutdown()
        tw.close()
    assert not tw.is_running()
