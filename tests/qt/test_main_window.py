"""The kernel playground window, driven through its real widgets (offscreen).

Every check compares what the window shows with what the core computes for the same
picture, kernel and parameters.
"""

from __future__ import annotations

import json
import sys
import threading

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QImage
from PySide6.QtWidgets import QApplication

from cnnviz.core.conv import (ConvSpec, PipelineRequest, conv_output_shape, gradient_magnitude, pool_output_shape,
                              run_pipeline)
from cnnviz.core.dotproduct import pool_window_to_input
from cnnviz.core.images import load_image
from cnnviz.core.kernels import Kernel, preset
from cnnviz.core.playground import PlaygroundJob, compute_playground
from cnnviz.qt.playground.window import SAMPLES_DIR, MainWindow
from cnnviz.core.settings import PlaygroundParams
from cnnviz.qt.playground.views import MAGNITUDE, MOSAIC

PHOTO = SAMPLES_DIR / "photo.png"
PATTERN = SAMPLES_DIR / "pattern.png"
DIGIT = SAMPLES_DIR / "digit.png"


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def core_result(window: MainWindow, kernels=None, params: PlaygroundParams | None = None, pair=None):
    """What the core computes for the window's picture (the reference)."""
    params = params or window.params()
    conv, act, pool = params.to_specs()
    req = PipelineRequest(tuple(kernels or window.kernels()), conv, act, pool, magnitude_pair=pair)
    return run_pipeline(window.current_image(), req)


def wait_shown(qtbot, window: MainWindow, predicate, timeout=10_000):
    """Wait until the views show a result for which ``predicate(window)`` holds."""
    qtbot.waitUntil(lambda: window.current_result() is not None and predicate(window), timeout=timeout)


def wait_conv_equals(qtbot, window, expected: np.ndarray, timeout=10_000):
    def same(w):
        shown = w.displayed_array("conv")
        return shown is not None and shown.shape == expected.shape and np.allclose(shown, expected, atol=1e-5)

    wait_shown(qtbot, window, same, timeout)


def viewport_point(view, y: int, x: int) -> QPoint:
    """Where data pixel (y, x) of a MapView is on its graphics viewport."""
    view.view_box.updateMatrix()   # pyqtgraph applies a new range lazily, at the next paint
    scene_pt = view.image_item.mapToScene(QPointF(x + 0.5, y + 0.5))
    return view.graphics.mapFromScene(scene_pt)


# ---------------------------------------------------------------------------------------
# start-up
# ---------------------------------------------------------------------------------------
def test_opens_on_the_photo_with_sobel_x_and_shows_the_core_output(window):
    assert window.image_label().startswith("Photo")
    assert window.kernels() == (preset("sobel-x").kernel,)
    assert window.kernel_editor.kernel() == preset("sobel-x").kernel
    ref = core_result(window)
    np.testing.assert_allclose(window.current_image(), load_image(PHOTO).pixels)
    np.testing.assert_allclose(window.displayed_array("conv"), ref.conv[0], atol=1e-6)
    np.testing.assert_allclose(window.displayed_array("input"), ref.input, atol=1e-6)
    h, w = window.current_image().shape[:2]
    assert f"{h}×{w}" in window.status_image.text()  # H×W, like every size shown
    assert "510" in window.status_shapes.text()
    assert "CPU" in window.status_device.text()
    assert window.status_time.text().endswith("ms")
    conv_view = window.outputs.view("conv")
    assert "1×510×510" in conv_view.title.text()
    assert conv_view.formula.text() == ref.conv_shape.text
    # signed Sobel output: diverging colours, levels symmetric around 0
    lo, hi = conv_view.levels()
    assert conv_view.colormap() == "diverging" and lo == pytest.approx(-hi)


def test_compute_function_is_pure_and_matches_run_pipeline():
    img = load_image(DIGIT).pixels
    req = PipelineRequest((preset("sobel-y").kernel,), ConvSpec(stride=2, padding=1))
    out = compute_playground(PlaygroundJob(img, 1, req))
    np.testing.assert_array_equal(out.result.conv, run_pipeline(img, req).conv)
    lo, hi, alo, ahi = out.stats["conv"]
    assert lo == pytest.approx(float(out.result.conv.min())) and hi == pytest.approx(float(out.result.conv.max()))
    assert alo == pytest.approx(-ahi) and 0 < ahi <= max(-lo, hi)


# ---------------------------------------------------------------------------------------
# kernel editing
# ---------------------------------------------------------------------------------------
def test_painting_a_cell_updates_the_conv_view_to_the_core_output(qtbot, window):
    editor = window.kernel_editor
    grid = editor.grid()
    before = window.displayed_array("conv").copy()
    editor.setBrushValue(3.0)
    qtbot.mouseClick(grid, Qt.MouseButton.LeftButton, pos=grid.cellCenter(0, 1))
    k = editor.kernel()
    assert float(k.weights[0, 1]) == 3.0
    expected = core_result(window, kernels=[k]).conv[0]
    wait_conv_equals(qtbot, window, expected)
    assert not np.allclose(window.displayed_array("conv"), before)   # the edit changed the map


def test_an_edit_is_written_to_the_state_once_and_never_echoed_to_the_editor(qtbot, window, monkeypatch):
    editor = window.kernel_editor
    echoed = []
    real = editor.setKernel
    monkeypatch.setattr(editor, "setKernel", lambda k, **kw: (echoed.append(k), real(k, **kw)))
    emitted = []
    editor.kernelChanged.connect(emitted.append)
    editor.setBrushValue(2.0)
    qtbot.mouseClick(editor.grid(), Qt.MouseButton.LeftButton, pos=editor.grid().cellCenter(2, 2))
    k = editor.kernel()
    assert len(emitted) == 1 and echoed == []                      # no round trip back into the editor
    assert window.state.kernels == (k,) and window.kernel_bank.bank() == (k,)   # the bank shows the state
    assert editor.undoStack().canUndo()                            # the edit's undo step is kept
    window.set_kernels(preset("sobel-pair").kernels, 1, (0, 1))     # the bank selects another kernel
    # shown from the state (its grid shows the new kernel), nothing emitted, no round trip
    assert editor.kernel() == preset("sobel-pair").kernels[1] and echoed == [] and len(emitted) == 1
    assert editor.grid().weights().tolist() == preset("sobel-pair").kernels[1].weights.tolist()
    assert not editor.undoStack().canUndo()                        # another kernel: its own history
    assert window.state.selected == 1 and window.build_request().kernels == preset("sobel-pair").kernels


def test_typing_a_value_updates_the_conv_view(qtbot, window):
    grid = window.kernel_editor.grid()
    grid.setFocus()
    grid.setFocusCell(1, 1)
    qtbot.keyClick(grid, Qt.Key.Key_5)          # a digit starts typing into the focused cell
    assert grid.isEditing()
    qtbot.keyClick(grid.lineEdit(), Qt.Key.Key_Return)
    k = window.kernel_editor.kernel()
    assert float(k.weights[1, 1]) == 5.0
    wait_conv_equals(qtbot, window, core_result(window, kernels=[k]).conv[0])


def test_undo_and_redo_from_the_edit_menu(qtbot, window):
    sobel = preset("sobel-x").kernel
    window.kernel_editor.setBrushValue(-4.0)
    grid = window.kernel_editor.grid()
    qtbot.mouseClick(grid, Qt.MouseButton.LeftButton, pos=grid.cellCenter(2, 2))
    edited = window.kernel_editor.kernel()
    wait_conv_equals(qtbot, window, core_result(window, kernels=[edited]).conv[0])
    assert window.act_undo.isEnabled()
    window.act_undo.trigger()
    assert window.kernel_editor.kernel() == sobel
    wait_conv_equals(qtbot, window, core_result(window, kernels=[sobel]).conv[0])
    window.act_redo.trigger()
    wait_conv_equals(qtbot, window, core_result(window, kernels=[edited]).conv[0])


def test_a_burst_of_edits_never_queues_more_than_one_computation(qtbot, window):
    editor = window.kernel_editor
    base = editor.kernel()
    before = window.worker.submitted
    for i in range(60):  # 60 edits before the event loop runs again: coalesced into one request
        editor.setKernel(base.with_value(0, 0, float(i) / 10))
    final = editor.kernel()
    wait_conv_equals(qtbot, window, core_result(window, kernels=[final]).conv[0])
    assert window.worker.submitted - before == 1
    for i in range(30):  # edits that each reach the worker: the newest replaces the waiting one
        editor.setKernel(base.with_value(0, 2, float(i)))
        window.submit_now()
    wait_conv_equals(qtbot, window, core_result(window, kernels=[editor.kernel()]).conv[0])
    assert window.worker.max_pending <= 1         # never a queue (flooding is tested in test_workers)


# ---------------------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------------------
def test_stride_and_padding_controls_change_the_shape_and_the_formula(qtbot, window):
    panel = window.params_panel
    h, w = window.current_image().shape[:2]
    panel.stride.y.setValue(2)
    shape = conv_output_shape((h, w), (3, 3), ConvSpec(stride=2))
    wait_shown(qtbot, window, lambda win: win.displayed_array("conv").shape == shape.out_hw)
    view = window.outputs.view("conv")
    assert view.formula.text() == shape.text
    assert "/ 2⌋" in view.formula.text() and "×".join(map(str, (1,) + shape.out_hw)) in view.title.text()

    panel.padding.y.setValue(3)
    shape = conv_output_shape((h, w), (3, 3), ConvSpec(stride=2, padding=3))
    wait_shown(qtbot, window, lambda win: win.displayed_array("conv").shape == shape.out_hw)
    assert view.formula.text() == shape.text and "2·3" in view.formula.text()
    np.testing.assert_allclose(window.displayed_array("conv"), core_result(window).conv[0], atol=1e-5)
    assert f"1×{shape.out_hw[0]}×{shape.out_hw[1]}" in window.status_shapes.text()


def test_pooling_controls_show_the_pooled_map_and_its_formula(qtbot, window):
    panel = window.params_panel
    panel.pool.setCurrentIndex(panel.pool.findData("max"))
    panel.pool_size.y.setValue(3)
    ref = core_result(window)
    wait_shown(qtbot, window, lambda win: win.displayed_array("pool") is not None
               and win.displayed_array("pool").shape == ref.pool.shape[1:])
    np.testing.assert_allclose(window.displayed_array("pool"), ref.pool[0], atol=1e-5)
    pshape = pool_output_shape(ref.conv.shape[1:], window.params().pool_spec())
    assert window.outputs.view("pool").formula.text() == pshape.text


def test_invalid_parameters_are_reported_and_the_previous_result_stays(qtbot, window):
    panel = window.params_panel
    panel.padding_kind.setCurrentIndex(panel.padding_kind.findData("same"))
    shape_same = window.current_image().shape[:2]
    wait_shown(qtbot, window, lambda win: win.displayed_array("conv").shape == shape_same)
    shown = window.displayed_array("conv").copy()
    submitted = window.worker.submitted
    panel.stride.y.setValue(2)            # 'same' + stride 2: PyTorch refuses it
    assert "stride 1" in window.status_text() and "fix" in window.status_text().lower()
    assert "stride 1" in panel.error_label.text()
    assert window.params().stride == (1, 1)               # the last valid parameters stay
    qtbot.wait(50)
    assert window.worker.submitted == submitted
    np.testing.assert_array_equal(window.displayed_array("conv"), shown)
    panel.padding_kind.setCurrentIndex(panel.padding_kind.findData("number"))   # the fix
    h, w = shape_same
    out = conv_output_shape((h, w), (3, 3), ConvSpec(stride=2))
    wait_shown(qtbot, window, lambda win: win.displayed_array("conv").shape == out.out_hw)
    assert panel.error_label.isHidden()


def test_errors_from_the_computation_keep_the_previous_result(qtbot, window):
    window.kernel_editor.setKernel(preset("sobel-x").kernel.resized(7, 7))
    wait_shown(qtbot, window, lambda w: w.current_request().kernels[0].size == (7, 7))
    shown = window.displayed_array("conv").copy()
    window.set_frame(np.zeros((4, 4), np.uint8))          # a 7×7 kernel cannot fit a 4×4 frame
    qtbot.waitUntil(lambda: "kernel spans 7 pixels" in window.status_text(), timeout=10_000)
    assert "fix" in window.status_text().lower()
    np.testing.assert_array_equal(window.displayed_array("conv"), shown)


# ---------------------------------------------------------------------------------------
# explanations and receptive windows
# ---------------------------------------------------------------------------------------
CASES = [
    PlaygroundParams(padding=(1, 1)),
    PlaygroundParams(padding=(2, 2), padding_mode="reflect", dilation=(2, 2)),
    PlaygroundParams(stride=(2, 3), padding=(1, 2), padding_mode="replicate", bias=0.5),
    PlaygroundParams(padding=(3, 3), padding_mode="circular", dilation=(3, 2), flip=True),
    PlaygroundParams(padding_kind="same", dilation=(2, 2), channels="each"),
    PlaygroundParams(padding=(1, 1), channels="full", activation="relu"),
]


@pytest.mark.parametrize("params", CASES, ids=lambda p: f"s{p.stride}-p{p.padding_kind}{p.padding}-{p.padding_mode}"
                         f"-d{p.dilation}-{p.channels}")
def test_explained_sum_equals_the_map_value_at_border_and_interior_pixels(qtbot, window, params):
    window.open_sample("digit")
    window.set_kernels([Kernel(np.arange(9, dtype=np.float32).reshape(3, 3) - 4, name="ramp", offset=0.25)])
    window.set_params(params)
    ref = core_result(window, params=params)
    wait_shown(qtbot, window, lambda w: w.current_request().conv == params.conv_spec()
               and w.current_image().shape == (112, 112) and w.current_request().kernels[0].name == "ramp")
    conv = window.current_result().conv[0]
    if params.channels == "each":
        window.outputs.set_channel(1)      # show (and explain) the green channel
        conv = conv[1]
    np.testing.assert_allclose(window.displayed_array("conv"), conv, atol=1e-5)
    np.testing.assert_allclose(conv, ref.conv[0] if params.channels != "each" else ref.conv[0, 1], atol=1e-5)
    oh, ow = conv.shape
    for y, x in [(0, 0), (0, ow - 1), (oh - 1, 0), (oh - 1, ow - 1), (oh // 2, ow // 3)]:
        e = window.explain_pixel("conv", y, x)
        assert e is not None
        shown = window.displayed_array("conv")[y, x]
        assert e.value == pytest.approx(float(shown), abs=1e-4)
        assert float(np.sum(e.products, dtype=np.float64)) == pytest.approx(e.total, abs=1e-4)
        assert e.total + e.bias == pytest.approx(e.value)
        assert window.explain_panel.shown_value() == pytest.approx(e.value)
        # the receptive window drawn on the input is the window the core names, padding included
        y0, x0, y1, x1 = e.window
        rect = window.outputs.view("input").window_rect()
        assert (rect.x(), rect.y(), rect.width(), rect.height()) == (x0, y0, x1 - x0, y1 - y0)
        assert (y1 - y0, x1 - x0) == ((3 - 1) * params.dilation[0] + 1, (3 - 1) * params.dilation[1] + 1)
    # a border pixel with padding reads the padding: its window starts outside the image
    e = window.explain_pixel("conv", 0, 0)
    t, _, l, _ = params.conv_spec().pads((3, 3))
    assert e.window[:2] == (-t, -l)


def test_pooled_pixel_shows_its_pool_window_and_winner(qtbot, window):
    params = PlaygroundParams(stride=(2, 2), padding=(1, 1), activation="relu", pool="max", pool_size=(3, 3),
                              pool_stride=(2, 2), pool_padding=(1, 1))
    window.set_params(params)
    wait_shown(qtbot, window, lambda w: w.current_request().pool is not None)
    res, req = window.current_result(), window.current_request()
    pool = res.pool[0]
    for py, px in [(0, 0), (pool.shape[0] - 1, pool.shape[1] - 1), (pool.shape[0] // 2, pool.shape[1] // 2)]:
        e = window.explain_pixel("pool", py, px)
        assert e.value == pytest.approx(float(window.displayed_array("pool")[py, px]))
        assert e.value == pytest.approx(float(np.max(e.values)))
        wy, wx = e.winner
        assert res.activation[0][wy, wx] == pytest.approx(e.value)
        y0, x0, y1, x1 = pool_window_to_input(req.conv, (3, 3), req.pool, res.conv_shape.out_hw, py, px)
        rect = window.outputs.view("input").window_rect()
        assert (rect.x(), rect.y(), rect.width(), rect.height()) == (x0, y0, x1 - x0, y1 - y0)
        assert window.outputs.view("activation").marker_rect() is not None


@pytest.mark.parametrize("spec", [ConvSpec(), ConvSpec(stride=(2, 3), padding=(1, 2)),
                                  ConvSpec(padding="same", dilation=(2, 3)), ConvSpec(stride=3, padding=4, dilation=2)])
def test_maps_are_drawn_over_the_centre_of_their_input_windows(spec):
    """Linked zoom relies on this: every output pixel sits on the input it was computed from."""
    from cnnviz.core.conv import PoolSpec
    from cnnviz.core.dotproduct import conv_window_in_input
    from cnnviz.qt.playground.views import conv_placement, pool_placement

    k = (3, 5)
    shape = conv_output_shape((40, 50), k, spec)
    rect = conv_placement(spec, k, shape.out_hw)
    sy, sx = spec.stride
    for oy, ox in [(0, 0), (shape.out_hw[0] - 1, shape.out_hw[1] - 1), (3, 2)]:
        y0, x0, y1, x1 = conv_window_in_input(spec, k, oy, ox)
        cy, cx = rect.y() + (oy + 0.5) * sy, rect.x() + (ox + 0.5) * sx   # centre of the drawn pixel
        assert (cy, cx) == pytest.approx(((y0 + y1) / 2, (x0 + x1) / 2))
    pool = PoolSpec("max", size=3, stride=2, padding=1)
    pshape = pool_output_shape(shape.out_hw, pool)
    prect = pool_placement(rect, spec.stride, pool, pshape.out_hw)
    for py, px in [(0, 0), (pshape.out_hw[0] - 1, pshape.out_hw[1] - 1)]:
        a0, b0 = py * 2 - 1, px * 2 - 1                      # pool window start in conv pixels
        cy_conv, cx_conv = a0 + 1.5, b0 + 1.5                  # its centre (edge coordinates)
        want = (rect.y() + cy_conv * sy, rect.x() + cx_conv * sx)
        got = (prect.y() + (py + 0.5) * 2 * sy, prect.x() + (px + 0.5) * 2 * sx)
        assert got == pytest.approx(want)


def test_hovering_and_clicking_an_output_pixel_explains_it(qtbot, window):
    view = window.outputs.view("conv")
    viewport = view.graphics.viewport()
    y, x = 200, 260
    window.outputs.zoom_to(y + 1, x + 1, half=20)   # a few screen pixels per map pixel
    qtbot.mouseMove(viewport, viewport_point(view, y, x))
    qtbot.waitUntil(lambda: window.last_explanation is not None
                    and (window.last_explanation.oy, window.last_explanation.ox) == (y, x), timeout=5000)
    assert window.explain_panel.shown_value() == pytest.approx(float(window.displayed_array("conv")[y, x]), abs=1e-5)
    # click pins: moving elsewhere no longer changes the explanation
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=viewport_point(view, y, x))
    qtbot.mouseMove(viewport, viewport_point(view, y + 5, x - 4))
    qtbot.wait(50)
    assert (window.last_explanation.oy, window.last_explanation.ox) == (y, x)
    assert "pinned" in window.status_text()
    # the pinned explanation follows a kernel edit
    window.kernel_editor.setKernel(preset("laplacian-4").kernel)
    wait_shown(qtbot, window, lambda w: w.current_request().kernels[0].name == "laplacian-4")
    assert window.explain_panel.shown_value() == pytest.approx(float(window.displayed_array("conv")[y, x]), abs=1e-5)


# ---------------------------------------------------------------------------------------
# banks, mosaic and gradient magnitude
# ---------------------------------------------------------------------------------------
def test_sobel_pair_gradient_magnitude_and_mosaic(qtbot, window):
    window.set_kernels(preset("sobel-pair").kernels, 0, (0, 1))
    wait_shown(qtbot, window, lambda w: len(w.current_request().kernels) == 2)
    ref = core_result(window, pair=(0, 1))
    window.outputs.set_selection(MAGNITUDE)
    mag = gradient_magnitude(ref.conv[0], ref.conv[1])
    np.testing.assert_allclose(window.displayed_array("magnitude"), mag, atol=1e-5)
    assert window.outputs.view("conv").colormap() == "gray"        # magnitudes are grey
    window.outputs.set_selection(1)
    np.testing.assert_allclose(window.displayed_array("conv"), ref.conv[1], atol=1e-5)
    window.outputs.set_selection(MOSAIC)
    layout = window.outputs.mosaic_layout()
    assert layout is not None and layout.n == 2
    shown = window.displayed_array("conv")
    oy, ox = layout.tile_origin(1)
    np.testing.assert_allclose(shown[oy:oy + 10, ox:ox + 10], ref.conv[1][:10, :10], atol=1e-5)
    assert layout.locate(oy + 3, ox + 4) == (1, 3, 4)


# ---------------------------------------------------------------------------------------
# picture input: open, drop, paste, frames
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", [PHOTO, PATTERN], ids=["rgb", "grey"])
def test_drop_and_paste_load_the_same_array_as_open(qtbot, window, path):
    assert window.open_image(path)
    opened = window.current_image().copy()

    def reset():
        window.open_sample("checkerboard")
        assert window.current_image().shape != opened.shape or not np.array_equal(window.current_image(), opened)

    # drag-and-drop of a file URL
    reset()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    enter = QDragEnterEvent(QPoint(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)
    np.testing.assert_array_equal(window.current_image(), opened)

    # paste a bitmap (what an image editor's "copy" puts on the clipboard)
    reset()
    QGuiApplication.clipboard().setImage(QImage(str(path)))
    assert window.paste_from_clipboard()
    np.testing.assert_array_equal(window.current_image(), opened)

    # paste a file (what a file manager's "copy" puts on the clipboard)
    reset()
    m2 = QMimeData()
    m2.setUrls([QUrl.fromLocalFile(str(path))])
    QGuiApplication.clipboard().setMimeData(m2)
    window.act_paste.trigger()
    np.testing.assert_array_equal(window.current_image(), opened)

    # and the views follow the new picture
    wait_shown(qtbot, window, lambda w: w.current_result().input.shape[:2] == opened.shape[:2])


def test_a_broken_image_is_reported_and_the_previous_picture_stays(qtbot, window, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("this is not a picture")
    before = window.current_image()
    shown = window.displayed_array("conv").copy()
    assert not window.open_image(bad)
    assert "notes.png" in window.status_text()
    assert window.current_image() is before
    mime = QMimeData()
    mime.setText("hello")
    QGuiApplication.clipboard().setMimeData(mime)
    assert not window.paste_from_clipboard()
    assert "no image" in window.status_text()
    assert window.current_image() is before
    np.testing.assert_array_equal(window.displayed_array("conv"), shown)


def test_live_frames_latest_wins(qtbot, window):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (90, 120, 3), dtype=np.uint8) for _ in range(25)]
    for f in frames:
        window.set_frame(f)
    last = frames[-1]
    wait_shown(qtbot, window, lambda w: w.current_result().input.shape == (90, 120))
    expected = run_pipeline(last, window.current_request()).conv[0]
    wait_conv_equals(qtbot, window, expected)
    assert window.worker.max_pending <= 1
    frames[-1][:] = 0               # the window copied the frame: the source may reuse its buffer
    assert window.current_image().any()


# ---------------------------------------------------------------------------------------
# settings, export, help
# ---------------------------------------------------------------------------------------
def test_settings_persist_across_a_restart(qtbot, make_window, config_dir):
    w1 = make_window()
    assert w1.open_image(PATTERN)
    w1.set_kernels(preset("sobel-pair").kernels, 1, (0, 1))
    params = PlaygroundParams(stride=(2, 2), padding=(1, 1), activation="relu", pool="avg")
    w1.set_params(params)
    w1.apply_theme("dark")
    w1.dock_weights.hide()
    wait_shown(qtbot, w1, lambda w: w.current_request().pool is not None)
    w1.close()
    saved = json.loads((config_dir / "settings.json").read_text())
    assert saved["theme"] == "dark" and saved["params"]["stride"] == [2, 2]

    w2 = make_window()
    assert w2.params() == params
    assert w2.kernels() == preset("sobel-pair").kernels
    assert w2.kernel_editor.kernel() == preset("sobel-pair").kernels[1]
    assert w2.settings.theme == "dark" and w2.theme_actions["dark"].isChecked()
    np.testing.assert_array_equal(w2.current_image(), load_image(PATTERN).pixels)
    assert str(PATTERN.resolve()) in w2.settings.recent_files
    assert not w2.dock_weights.isVisible()
    w2.apply_theme("light")


def test_corrupt_settings_are_kept_aside_and_reported(qtbot, make_window, config_dir):
    config_dir.mkdir(parents=True)
    (config_dir / "settings.json").write_text('{"theme": "dark", "params": ')
    w = make_window()
    assert (config_dir / "settings.json.bak").read_text() == '{"theme": "dark", "params": '
    assert "corrupt" in w.status_text() and "settings.json.bak" in w.status_text()
    assert w.settings.theme == "system"
    assert w.kernels() == (preset("sobel-x").kernel,)


def test_save_pngs_and_npz(qtbot, window, tmp_path):
    window.set_params(PlaygroundParams(padding=(1, 1), pool="max"))
    wait_shown(qtbot, window, lambda w: w.current_request().pool is not None)
    paths = window.save_pngs(tmp_path)
    assert [p.name for p in paths] == ["photo_input.png", "photo_conv.png", "photo_activation.png", "photo_pool.png"]
    conv_png = load_image(paths[1]).pixels
    assert conv_png.shape == window.displayed_array("conv").shape + (3,)
    npz = np.load(window.save_npz(tmp_path / "all"))
    res = window.current_result()
    for name in ("input", "conv", "activation", "pool"):
        np.testing.assert_array_equal(npz[name], getattr(res, name))
    meta = json.loads(str(npz["meta"]))
    assert meta["params"]["pool"] == "max"
    assert window.copy_to_clipboard()
    assert QGuiApplication.clipboard().image().width() == res.conv.shape[-1]


def test_levels_follow_results_until_the_user_fixes_them(qtbot, window):
    view = window.outputs.view("conv")
    auto = view.levels()
    view.histogram.region.setRegion((-0.5, 0.5))     # the user drags the histogram's levels
    assert window.outputs.levels_mode() == "fixed"
    window.kernel_editor.setKernel(preset("sobel-x").kernel.with_value(1, 2, 8.0))
    wait_shown(qtbot, window, lambda w: float(w.current_request().kernels[0].weights[1, 2]) == 8.0)
    assert view.levels() == pytest.approx((-0.5, 0.5))      # kept for the new result
    window.outputs.set_levels_mode("auto")
    lo, hi = view.levels()
    assert lo == pytest.approx(-hi) and hi > auto[1]          # auto again: follows the stronger kernel


def test_choosing_a_kernel_to_show_selects_it_for_editing(qtbot, window):
    window.set_kernels(preset("sobel-pair").kernels, 0, (0, 1))
    wait_shown(qtbot, window, lambda w: len(w.current_request().kernels) == 2)
    window.outputs.set_selection(1)
    assert window.kernel_bank.selectedIndex() == 1
    assert window.kernel_editor.kernel() == preset("sobel-pair").kernels[1]
    window.kernel_editor.setKernel(window.kernel_editor.kernel().negated())
    ref = core_result(window)
    wait_conv_equals(qtbot, window, ref.conv[1])
    np.testing.assert_allclose(ref.conv[1], -core_result(window, kernels=preset("sobel-pair").kernels).conv[1],
                               atol=1e-5)


def test_theme_choice_and_reset_layout(qtbot, window):
    from PySide6.QtGui import QPalette

    window.theme_actions["dark"].trigger()
    assert QApplication.palette().color(QPalette.ColorRole.Window).lightness() < 100
    assert window.settings.theme == "dark"
    window.theme_actions["light"].trigger()
    assert QApplication.palette().color(QPalette.ColorRole.Window).lightness() > 150
    window.dock_params.hide()
    window.dock_outputs.setFloating(True)
    window.act_reset_layout.trigger()
    assert window.dock_params.isVisible() and not window.dock_outputs.isFloating()


@pytest.mark.qt_no_exception_capture   # this test installs the app's own hook instead
def test_exceptions_in_slots_reach_the_user(qtbot, window):
    from cnnviz.qt import app as qtapp

    qtapp.install_excepthook(window.report_exception)
    try:
        try:
            raise RuntimeError("boom in a slot")
        except RuntimeError:
            sys.excepthook(*sys.exc_info())      # what Qt does with an exception in a slot
        qtbot.waitUntil(lambda: "boom in a slot" in window.status_text(), timeout=5000)
        assert "Internal error" in window.status_text()
    finally:
        qtapp.uninstall_excepthook()


def test_help_texts(window):
    text = window.shortcuts_text()
    assert "Right-drag" in text and "Ctrl+Z" in text and "Pin" in text.title()
    had_torch = "torch" in sys.modules
    about = window.about_text()
    assert "cnnviz" in about and "Qt" in about and "pyqtgraph" in about
    assert ("torch" in sys.modules) == had_torch          # About's text never imports torch
    assert "PyTorch" in about                             # its version comes from the metadata


def test_about_box_shows_pytorch_and_the_gpu_it_found(qtbot, window, monkeypatch):
    import cnnviz.core.devices as devices

    probed = []

    def fake_summary():
        probed.append(1)
        return ["PyTorch 9.9.9 (CUDA 12.8 build, cuDNN 91002)",
                "GPU cuda:0: NVIDIA H100 80GB HBM3 (79 GiB), compute capability 9.0"]

    monkeypatch.setattr(devices, "compute_summary", fake_summary)
    box = window.show_about()
    assert "GPU: checking" in box.text()                  # the box opens at once
    qtbot.waitUntil(lambda: "NVIDIA H100" in box.text(), timeout=10_000)
    assert "PyTorch 9.9.9" in box.text() and "CUDA 12.8" in box.text()
    box.close()
    qtbot.waitUntil(lambda: not any(t.name == "cnnviz-about-probe" for t in threading.enumerate()), timeout=5000)
    again = window.show_about()                           # probed once per session
    assert "NVIDIA H100" in again.text() and probed == [1]
    again.close()


def test_compute_summary_on_this_machine_names_the_torch_build_and_the_gpus():
    from cnnviz.core.devices import compute_summary

    lines = compute_summary()
    import torch

    assert lines[0].startswith(f"PyTorch {torch.__version__}")
    if torch.cuda.is_available():
        assert any(torch.cuda.get_device_name(0) in ln for ln in lines[1:])
    else:
        assert any("none found" in ln and "CPU" in ln for ln in lines[1:])


def test_playground_never_imports_torch(window):
    # the playground path (conv/kernels/images/render) must start without torch; the test
    # suite may have imported it elsewhere, so check the modules' own imports instead
    import cnnviz.core.conv as conv
    import cnnviz.core.display as render
    import cnnviz.qt.playground.window as mw

    for mod in (conv, render, mw):
        assert "torch" not in vars(mod)


def test_explanation_is_cleared_when_the_data_changes_and_nothing_is_pinned(qtbot, window):
    """Stale numbers from another image or setting must not stay on screen."""
    from cnnviz.core.settings import PlaygroundParams

    window.explain_pixel("conv", 5, 5, pin=True)
    assert window.explain_panel.shown_value() is not None
    window.unpin()
    window.set_params(PlaygroundParams(stride=(2, 2)))
    rid = window.submit_now()
    qtbot.waitUntil(lambda: window.worker.last_delivered_id >= (rid or 0), timeout=20_000)
    qtbot.waitUntil(lambda: window.explain_panel.shown_value() is None, timeout=5_000)
    assert window.last_explanation is None


def test_the_app_has_its_icon_and_name(window):
    from PySide6.QtWidgets import QApplication

    from cnnviz.qt.app import create_app
    app = create_app([])
    assert app is QApplication.instance()
    assert not app.windowIcon().isNull()
    assert not window.windowIcon().isNull()
    assert "cnnviz" in window.windowTitle()


def test_the_output_selector_names_the_kernel_from_the_first_screen(window):
    """The outputs' kernel selector shows the bank as soon as the window opens (the state
    already holds the restored bank, so no change is reported: the views must still show it)."""
    box = window.outputs.kernel_box
    names = [k.name for k in window.state.kernels]
    assert [box.itemText(i) for i in range(len(names))] == [f"{i + 1}: {n}" for i, n in enumerate(names)]
    assert box.currentText() == f"{window.state.selected + 1}: {names[window.state.selected]}"
