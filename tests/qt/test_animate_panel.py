"""The animation reveals exactly the core's output of the crop, and its timer stops."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSlider, QToolButton

from cnnviz.core.conv import ConvSpec, convolve, prepare_input
from cnnviz.core.kernels import presets
from cnnviz.qt.playground.animate_panel import CROP, AnimatePanel


@pytest.fixture
def panel(qtbot):
    w = AnimatePanel()
    qtbot.addWidget(w)
    w.resize(640, 380)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.stop()


@pytest.fixture(scope="module")
def rgb():
    return np.random.default_rng(11).random((40, 50, 3), dtype=np.float32)


def _expected(image, origin, kernel, spec, channel=0):
    y0, x0 = origin
    crop = image[y0:y0 + CROP, x0:x0 + CROP]
    out = convolve(crop, [kernel], spec)[0]
    return out[channel] if out.ndim == 3 else out


def test_steps_reveal_the_core_output_in_raster_order(qtbot, panel, rgb):
    spec = ConvSpec(padding=2, dilation=2, stride=(1, 2), bias=0.1)
    kernel = presets()["sobel-x"].kernel
    x = prepare_input(rgb, "gray")
    panel.set_input(x, kernel, spec)
    assert panel.crop_origin() == (40 // 2 - 12, 50 // 2 - 12)
    expected = _expected(x, panel.crop_origin(), kernel, spec)
    assert panel.total() == expected.size
    assert np.all(np.isnan(panel.revealed_array()))
    step = panel.findChild(QToolButton, "step")
    for _ in range(30):
        qtbot.mouseClick(step, Qt.LeftButton)
    assert panel.position() == 30
    got = panel.revealed_array().ravel()
    np.testing.assert_array_equal(got[:30], expected.ravel()[:30])
    assert np.all(np.isnan(got[30:]))
    oy, ox = panel.current_pixel()
    assert (oy, ox) == divmod(29, expected.shape[1])
    # the dot product shown under the animation is the revealed value
    assert panel.findChild(QLabel, "sum").text().endswith(f"= {expected[oy, ox]:.4g}".replace("-", "−"))


def test_play_runs_to_the_end_then_the_timer_stops(qtbot, panel, rgb):
    spec = ConvSpec(padding=1, stride=2, channels="each")
    kernel = presets()["laplacian-4"].kernel
    x = prepare_input(rgb, "each")
    panel.set_channel(2)
    panel.set_input(x, kernel, spec)
    panel.set_speed(240)
    assert panel.speed() == 240
    qtbot.mouseClick(panel.findChild(QToolButton, "play"), Qt.LeftButton)
    assert panel.is_playing()
    qtbot.waitUntil(lambda: panel.position() == panel.total(), timeout=10_000)
    qtbot.waitUntil(lambda: not panel.is_playing(), timeout=1000)
    np.testing.assert_array_equal(panel.revealed_array(), _expected(x, panel.crop_origin(), kernel, spec, channel=2))


def test_timer_stops_on_pause_hide_and_close(qtbot, panel, rgb):
    x = prepare_input(rgb, "gray")
    panel.set_input(x, presets()["box-3"].kernel, ConvSpec())
    panel.set_speed(1)
    panel.play()
    assert panel.timer().isActive()
    panel.pause()
    assert not panel.timer().isActive()
    panel.play()
    panel.hide()
    assert not panel.timer().isActive()
    panel.show()
    panel.play()
    panel.close()
    assert not panel.timer().isActive() and not panel.is_playing()


def test_kernel_edit_keeps_position_center_change_restarts(qtbot, panel, rgb):
    x = prepare_input(rgb, "gray")
    spec = ConvSpec(padding=1)
    panel.set_input(x, presets()["sobel-x"].kernel, spec)
    for _ in range(10):
        panel.step()
    panel.set_input(x, presets()["sobel-y"].kernel, spec)
    assert panel.position() == 10
    np.testing.assert_array_equal(panel.revealed_array().ravel()[:10],
                                  _expected(x, panel.crop_origin(), presets()["sobel-y"].kernel, spec).ravel()[:10])
    panel.set_center(0, 49)
    assert panel.crop_origin() == (0, 50 - CROP) and panel.position() == 0
    panel.findChild(QToolButton, "reset").click()
    assert panel.position() == 0


def test_click_on_the_output_jumps_there(qtbot, panel, rgb):
    x = prepare_input(rgb, "gray")
    panel.set_input(x, presets()["sobel-x"].kernel, ConvSpec())
    canvas = panel._canvas
    rect = canvas.outputRect(3, 4)
    qtbot.mouseClick(canvas, Qt.LeftButton, pos=rect.center())
    ow = panel.output_array().shape[1]
    assert panel.position() == 3 * ow + 4 + 1 and panel.current_pixel() == (3, 4)


def test_impossible_setting_shows_why(qtbot, panel):
    tiny = np.random.default_rng(0).random((4, 4), dtype=np.float32)
    panel.set_input(tiny, presets()["gaussian-5"].kernel, ConvSpec())  # 5×5 kernel on a 4×4 crop
    assert panel.revealed_array() is None and panel.total() == 0
    assert "Cannot animate" in panel._error and "kernel" in panel._error
    panel.play()
    assert not panel.is_playing()


def test_speed_slider_changes_the_timer(qtbot, panel, rgb):
    slider = panel.findChild(QSlider, "speed")
    slider.setValue(0)
    assert panel.timer().interval() == 1000
    slider.setValue(slider.maximum())
    assert panel.timer().interval() <= 17


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_the_animation_exports_one_frame_per_output_pixel(qtbot, panel, rgb, tmp_path, suffix):
    """Export: a GIF (Pillow) or MP4 (OpenCV) with a frame per revealed output pixel; the
    frames differ as the window slides and the panel's own position is kept."""
    import cv2
    from PIL import Image

    spec = ConvSpec(padding=1, stride=(3, 3))
    panel.set_input(prepare_input(rgb, "gray"), presets()["sobel-x"].kernel, spec)
    panel.step()
    frames = panel.render_frames()
    assert len(frames) == panel.total() and panel.position() == 1
    assert not np.array_equal(frames[0], frames[-1])
    p = panel.export_animation(tmp_path / f"anim{suffix}", fps=10)
    if suffix == ".gif":
        with Image.open(p) as im:
            assert im.n_frames == panel.total()
    else:
        cap = cv2.VideoCapture(str(p))
        n = 0
        while cap.read()[0]:
            n += 1
        cap.release()
        assert n == panel.total()
    with pytest.raises(Exception, match="neither .gif nor .mp4"):
        panel.export_animation(tmp_path / "anim.avi")
