"""The Source panel and menu driven like a user: cameras, start/stop, freeze on Space."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading
import time

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget

from cnnviz.core.sources import CameraInfo, CaptureSource, WebcamSource
from cnnviz.qt.playground import live as live_mod
from cnnviz.qt.playground.live_actions import install_live_sources
from cnnviz.qt.playground.window import MainWindow
from cnnviz.qt.playground.source_panel import NO_CAMERA_TEXT


def live_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("cnnviz-") and t.is_alive()]


class MovingCapture:
    """A camera-like object whose every frame differs (so no watchdog trips)."""

    def __init__(self, width: int = 160, height: int = 120) -> None:
        self.n = 0
        self.size = (width, height)
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802
        return not self.released

    def read(self):
        time.sleep(0.01)
        self.n += 1
        w, h = self.size
        img = np.zeros((h, w, 3), np.uint8)
        img[:, (self.n * 3) % w] = 255
        return True, img

    def get(self, prop: int) -> float:
        return 0.0

    def set(self, prop: int, value: float) -> bool:
        return False

    def release(self) -> None:
        self.released = True


def make_window(qtbot, tmp_path, cameras):
    w = MainWindow(settings_file=tmp_path / "settings.json", load_settings_file=False)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    live = getattr(w, "live", None)
    if live is None:
        live = install_live_sources(w, list_cameras_fn=lambda: list(cameras))
    else:  # the window installed its own: give it the fake camera list
        live._list_cameras = lambda: list(cameras)
    qtbot.waitUntil(lambda: w.current_result() is not None, timeout=10_000)
    return w, live


@pytest.fixture
def no_cams(qtbot, tmp_path):
    w, live = make_window(qtbot, tmp_path, [])
    yield w, live
    w.close()
    assert not live.threads() and not live_threads()


def test_no_camera_is_a_clear_state_and_the_still_image_stays(qtbot, no_cams):
    win, live = no_cams
    panel = live.panel
    photo = np.array(win.current_image())
    panel.set_kind("webcam")
    qtbot.waitUntil(lambda: live.cameras == [] and not live.probing, timeout=5_000)
    assert panel.no_camera.isVisible() and panel.no_camera.text() == NO_CAMERA_TEXT
    assert not panel.camera_box.isEnabled()
    assert not panel.start_button.isEnabled()
    assert "No camera found" in win.status_text()
    live.actions.webcam.trigger()  # the Source menu's "Webcam…" says the same and starts nothing
    qtbot.waitUntil(lambda: not live.probing, timeout=5_000)
    assert live.state == "still" and not live.threads()
    np.testing.assert_array_equal(win.current_image(), photo)


def test_webcam_from_the_menu_opens_the_listed_camera_at_the_chosen_size(qtbot, tmp_path, monkeypatch):
    opened = []

    class FakeWebcam(WebcamSource):
        """A WebcamSource whose capture is a fake camera of the requested size."""

        def __init__(self, index=0, width=None, height=None, backend="auto"):
            opened.append((index, width, height))
            self.index, self.requested_size = index, (width, height)
            CaptureSource.__init__(self, lambda: MovingCapture(width or 160, height or 120), name=f"camera {index}")

    monkeypatch.setattr(live_mod, "WebcamSource", FakeWebcam)
    win, live = make_window(qtbot, tmp_path, [CameraInfo(2, "Fake cam", 640, 480)])
    panel = live.panel
    panel.resolution_box.setCurrentIndex(1)  # 640 × 480
    live.actions.webcam.trigger()
    qtbot.waitUntil(lambda: live.state == "live" and live.frames_shown >= 2, timeout=10_000)
    assert opened == [(2, 640, 480)]
    assert panel.camera_box.count() == 1 and "Fake cam" in panel.camera_box.itemText(0)
    assert panel.selected_kind() == "webcam"
    assert win.current_image().shape[:2] == (480, 640)
    assert panel.stop_button.isEnabled() and not panel.start_button.isEnabled()
    panel.stop_button.click()
    assert live.state == "stopped" and not live.threads()
    panel.start_button.click()  # same camera and size: the same source starts again
    qtbot.waitUntil(lambda: live.state == "live", timeout=10_000)
    assert len(opened) == 1
    win.close()
    assert not live.threads() and not live_threads()


def test_pattern_start_freeze_on_space_and_stop(qtbot, no_cams):
    win, live = no_cams
    panel = live.panel
    panel.set_kind("pattern")
    assert panel.start_button.isEnabled()
    panel.start_button.click()
    qtbot.waitUntil(lambda: live.state == "live" and live.frames_shown >= 2, timeout=10_000)
    assert "Live" in panel.state_label.text()
    assert panel.freeze_button.isEnabled() and not panel.step_button.isEnabled()

    win.outputs.setFocus()
    qtbot.keyClick(win.outputs, Qt.Key.Key_Space)  # the window-wide shortcut
    assert live.frozen and panel.freeze_button.isChecked() and live.actions.freeze.isChecked()
    assert panel.step_button.isEnabled()
    qtbot.keyClick(win.outputs, Qt.Key.Key_Space)
    assert not live.frozen and not panel.freeze_button.isChecked()

    # in the kernel grid Space keeps its own meaning (paint the brush value), no freeze
    grid = win.kernel_editor.grid()
    grid.setFocus()
    grid.setFocusCell(1, 1)
    before = float(np.asarray(win.kernel_editor.kernel().weights)[1, 1])
    qtbot.keyClick(grid, Qt.Key.Key_Space)
    assert not live.frozen
    after = float(np.asarray(win.kernel_editor.kernel().weights)[1, 1])
    assert after == win.kernel_editor.brushValue() != before

    panel.freeze_button.click()
    assert live.frozen
    panel.mirror_box.click()
    assert live.mirror and live.source.mirror
    panel.stop_button.click()
    assert live.state == "stopped" and not live.threads()
    assert "Stopped" in panel.state_label.text()
    assert live.actions.reconnect.isEnabled()


def test_source_menu_and_dock_are_in_the_window(qtbot, no_cams):
    win, live = no_cams
    titles = [a.text().replace("&", "") for a in win.menuBar().actions()]
    assert "Source" in titles and titles.index("Source") < titles.index("View")
    texts = [a.text().replace("&", "") for a in live.menu.actions() if not a.isSeparator()]
    for name in ("Still image", "Webcam…", "Video file…", "Start", "Freeze", "Step one frame", "Mirror",
                 "Snapshot → still image"):
        assert name in texts
    assert live.actions.freeze.shortcut().toString() == "Space"
    dock = win.findChild(QDockWidget, "dock-live")
    assert dock is not None and dock.isVisible()
    panels = [a for a in win.menuBar().actions() if a.text().replace("&", "") == "View"][0].menu()
    sub = [a.menu() for a in panels.actions() if a.menu() is not None and "Panels" in a.text()][0]
    assert dock.toggleViewAction() in sub.actions()
    # the panel renders (a look at it for humans: tmp PNG)
    image = live.panel.grab().toImage()
    assert image.width() > 100 and image.height() > 100


def test_video_controls_in_the_panel(qtbot, no_cams, tmp_path):
    import cv2

    win, live = no_cams
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 50.0, (96, 64))
    for i in range(20):
        img = np.full((64, 96, 3), i * 10, np.uint8)
        writer.write(img)
    writer.release()
    panel = live.panel
    panel.set_kind("pattern")
    panel.start_button.click()
    qtbot.waitUntil(lambda: live.state == "live", timeout=10_000)
    pattern_thread = live.source.capture_thread
    panel.set_kind("video")
    panel.video_path = path
    assert panel.start_button.isEnabled()  # Start switches from the running pattern to the video
    panel.loop_box.setChecked(False)
    panel.play_video(path)
    assert not pattern_thread.is_alive()
    assert panel.selected_kind() == "video" and panel.video_box.isVisible()
    qtbot.waitUntil(lambda: live.state == "live" and live.frames_shown >= 1, timeout=10_000)
    assert panel.play_button.isEnabled() and panel.seek_slider.isEnabled()
    assert panel.seek_slider.maximum() == 19
    panel.play_button.click()  # pause
    assert live.paused and panel.play_button.text() == "Play"
    panel.play_button.click()  # play to the end (no loop)
    qtbot.waitUntil(lambda: live.state == "stopped", timeout=10_000)
    assert live.last_frame.source_index == 19 and panel.position_label.text() == "20 / 20"
    assert panel.start_button.isEnabled()
    panel.start_button.click()  # plays again from the start
    qtbot.waitUntil(lambda: live.state == "live", timeout=10_000)
    live.stop()
