"""Live sources through the real playground window: what a user sees when frames flow.

A video file the test writes plays through the same capture class as a webcam; fake
cameras fail after K frames or freeze; a slow pipeline drops frames instead of falling
behind; switching source and closing the window join every thread.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from cnnviz.core.conv import prepare_input, run_pipeline
from cnnviz.core.sources import CaptureSource, SyntheticSource
from cnnviz.core import playground as mw
from cnnviz.qt.playground.live import request_camera_permission
from cnnviz.qt.playground.live_actions import install_live_sources
from cnnviz.qt.playground.window import MainWindow

N_FRAMES = 40
VIDEO_FPS = 50.0


def live_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("cnnviz-") and t.is_alive()]


@pytest.fixture(autouse=True)
def no_thread_left_behind():
    assert not live_threads(), f"threads left by an earlier test: {live_threads()}"
    yield
    assert not live_threads(), f"threads still running after the test: {live_threads()}"


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """A 160x120 MJPG AVI: frame i is gray i*6 with a bright bar whose position moves."""
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), VIDEO_FPS, (160, 120))
    assert writer.isOpened(), "this OpenCV cannot write MJPG AVI files"
    for i in range(N_FRAMES):
        img = np.full((120, 160, 3), i * 6, np.uint8)
        img[:, 10 + 3 * i: 16 + 3 * i] = 255  # a vertical edge that moves: the conv map moves too
        writer.write(img)
    writer.release()
    return path


class FakeCapture:
    """A camera-like object. Frame n: B = n % 256, G = 2n % 256, R = 7 on the left half and
    200 on the right. ``fail_after``: later reads fail (unplugged); ``same``: the identical
    picture forever (frozen camera)."""

    def __init__(self, fail_after: int | None = None, same: bool = False, read_delay: float = 0.01):
        self.fail_after, self.same, self.read_delay = fail_after, same, read_delay
        self.reads = 0
        self.released = False
        self.buf = np.zeros((120, 160, 3), np.uint8)
        self.buf[:, :80, 2] = 7
        self.buf[:, 80:, 2] = 200

    def isOpened(self) -> bool:  # noqa: N802
        return not self.released

    def read(self):
        time.sleep(self.read_delay)  # the device's frame period
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            return False, None
        if not self.same:
            self.buf[:, :, 0] = self.reads % 256
            self.buf[:, :, 1] = (2 * self.reads) % 256
        return True, self.buf

    def get(self, prop: int) -> float:
        return 0.0

    def set(self, prop: int, value: float) -> bool:
        return False

    def release(self) -> None:
        self.released = True


def fake_source(name: str = "fake camera", **kwargs) -> tuple[CaptureSource, list[FakeCapture]]:
    opened: list[FakeCapture] = []
    cap_kwargs = {k: kwargs.pop(k) for k in ("fail_after", "same", "read_delay") if k in kwargs}

    def open_capture() -> FakeCapture:
        cap = FakeCapture(**cap_kwargs)
        opened.append(cap)
        return cap

    return CaptureSource(open_capture, name=name, **kwargs), opened


@pytest.fixture
def win(qtbot, tmp_path):
    w = MainWindow(settings_file=tmp_path / "settings.json", load_settings_file=False)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    live = getattr(w, "live", None) or install_live_sources(w, list_cameras_fn=lambda: [])
    qtbot.waitUntil(lambda: w.current_result() is not None, timeout=10_000)
    yield w
    w.close()
    assert live.shutdown()
    assert not live.threads()


def test_video_file_runs_the_pipeline_on_every_new_frame(qtbot, win, video):
    live = win.live
    seen = []  # (frame, displayed input, displayed conv, request) at the moment each frame is shown

    def grab(_fid):
        seen.append((live.last_frame, np.array(win.displayed_array("input")), np.array(win.displayed_array("conv")),
                     win.current_request()))

    live.frameShown.connect(grab)
    live.open_video(video, loop=False)
    qtbot.waitUntil(lambda: live.state == "stopped", timeout=20_000)  # the clip ended
    assert "ended" in win.status_text()

    assert len(seen) >= 10, "the views followed too few of the 40 frames"
    ids = [f.id for f, *_ in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), "frames were shown out of order or twice"
    positions = [f.source_index for f, *_ in seen]
    assert positions[-1] == N_FRAMES - 1 and positions == sorted(positions)
    # each shown frame's views are exactly the core's result for that frame
    for frame, shown_input, shown_conv, request in seen[:: max(1, len(seen) // 5)]:
        np.testing.assert_allclose(shown_input, prepare_input(frame.pixels, "gray"), atol=1e-5)
        expected = run_pipeline(frame.pixels, request).conv[0]
        np.testing.assert_allclose(shown_conv, expected, atol=1e-4)
    # the moving edge moves the conv map: consecutive shown frames differ
    assert not np.array_equal(seen[0][2], seen[-1][2])
    st = live.stats()
    assert st["frames_shown"] == len(seen) and st["frame_id"] == ids[-1]
    assert len(live.latencies_ms()) == len(seen) and all(0 <= x < 5000 for x in live.latencies_ms())
    assert win.worker.max_pending <= 1
    assert not live.threads()  # end of file: capture thread and consumer joined


def test_camera_that_fails_after_k_frames_trips_the_watchdog(qtbot, win):
    live = win.live
    still = np.array(win.current_image())
    source, caps = fake_source("USB camera", fail_after=8, watchdog_fail_s=0.3)
    live.set_source(source)
    qtbot.waitUntil(lambda: live.state == "error", timeout=10_000)
    assert live.frames_shown >= 1
    assert "USB camera stopped delivering frames" in win.status_text()
    assert "fix:" in win.status_text()
    panel = live.panel
    assert panel.error_box.isVisible() and "stopped delivering frames" in panel.error_text.text()
    assert panel.reconnect_button.isEnabled()
    assert not live.threads() and caps[0].released  # the capture thread ended and let the camera go
    assert not np.array_equal(np.asarray(win.current_image()), still)  # the last frame stays

    # Reconnect opens the camera again (a new capture) and frames flow again
    shown = live.frames_shown
    panel.reconnect_button.click()
    qtbot.waitUntil(lambda: len(caps) == 2 and live.frames_shown > shown, timeout=10_000)
    qtbot.waitUntil(lambda: live.state == "error", timeout=10_000)  # and it fails again after 8 frames
    assert not live.threads()


def test_camera_that_sends_the_same_frame_forever_trips_the_watchdog(qtbot, win):
    live = win.live
    source, caps = fake_source("frozen camera", same=True, watchdog_same_s=0.3)
    live.set_source(source)
    qtbot.waitUntil(lambda: live.state == "error", timeout=10_000)
    assert "exactly the same picture" in win.status_text()
    assert "exactly the same picture" in live.panel.error_text.text()
    assert live.last_error is not None and "reconnect" in live.last_error.fix
    assert not live.threads() and caps[0].released


def test_a_slow_pipeline_drops_frames_instead_of_falling_behind(qtbot, win, monkeypatch):
    live = win.live
    real = mw.compute_playground
    compute_s = 0.08

    def slow(job, prepared=None):
        time.sleep(compute_s)  # a pipeline far slower than the 100 fps camera
        return real(job, prepared)

    monkeypatch.setattr(mw, "compute_playground", slow)
    source, _ = fake_source("fast camera", read_delay=0.01, watchdog_same_s=None)
    live.set_source(source)
    qtbot.waitUntil(lambda: live.frames_shown >= 8, timeout=20_000)
    live.stop()
    st = live.stats()
    assert st["dropped"] > 0
    assert win.worker.max_pending <= 1
    assert source.buffer.max_depth <= 1
    # never behind: every shown frame was captured at most a couple of computations ago,
    # whereas a queue would make the latency grow with every frame
    lat = live.latencies_ms()
    # (the first frame may also pay one-time start-up costs on a loaded machine)
    assert max(lat[1:]) < 1000 * 4 * compute_s, lat
    assert lat[-1] < 1000 * 4 * compute_s


def test_switching_source_and_closing_join_every_thread(qtbot, win):
    live = win.live
    first, caps = fake_source("camera A", watchdog_same_s=None)
    live.set_source(first)
    qtbot.waitUntil(lambda: live.frames_shown >= 3, timeout=10_000)
    thread_a = first.capture_thread
    assert thread_a is not None and thread_a.is_alive()

    live.set_source(SyntheticSource(160, 120, 60))
    assert not thread_a.is_alive() and caps[0].released  # switched: A is stopped and joined
    qtbot.waitUntil(lambda: live.state == "live" and live.source.name.startswith("synthetic")
                    and live.frames_shown >= 3, timeout=10_000)
    assert live.threads()
    win.close()
    assert not live.threads() and not live_threads()


def test_snapshot_becomes_the_still_image_and_still_image_comes_back(qtbot, win):
    live = win.live
    photo = np.array(win.current_image())
    source, _ = fake_source(watchdog_same_s=None)
    live.set_source(source)
    qtbot.waitUntil(lambda: live.frames_shown >= 3, timeout=10_000)
    live.show_still()
    assert live.state == "still" and not live.threads()
    np.testing.assert_array_equal(win.current_image(), photo)  # back on the picture from before

    live.set_source(fake_source(watchdog_same_s=None)[0])
    qtbot.waitUntil(lambda: live.frames_shown >= 3, timeout=10_000)
    assert live.snapshot()
    frame = live.last_frame
    assert live.state == "still" and not live.threads()
    np.testing.assert_array_equal(win.current_image(), frame.pixels)
    assert "snapshot" in win.image_label()
    qtbot.waitUntil(lambda: win.current_result() is not None
                    and win.current_result().input.shape == frame.pixels.shape[:2], timeout=10_000)
    live.set_source(fake_source(watchdog_same_s=None)[0])
    qtbot.waitUntil(lambda: live.frames_shown >= 2, timeout=10_000)
    live.show_still()
    np.testing.assert_array_equal(win.current_image(), frame.pixels)  # the snapshot is the still now


def test_freeze_step_and_mirror(qtbot, win):
    live = win.live
    source, caps = fake_source(watchdog_same_s=None)
    live.set_source(source)
    qtbot.waitUntil(lambda: live.frames_shown >= 3, timeout=10_000)

    live.set_frozen(True)
    reads = caps[0].reads
    qtbot.waitUntil(lambda: caps[0].reads >= reads + 3, timeout=5_000)
    frozen_id = source.buffer.latest_id  # the last frame published before the freeze took hold
    qtbot.waitUntil(lambda: live.last_frame.id == frozen_id, timeout=5_000)
    reads = caps[0].reads
    qtbot.waitUntil(lambda: caps[0].reads >= reads + 10, timeout=5_000)  # the camera keeps running…
    assert source.buffer.latest_id == frozen_id and live.last_frame.id == frozen_id  # …the picture stays
    assert live.actions.step.isEnabled() and live.panel.step_button.isEnabled()
    live.step()
    qtbot.waitUntil(lambda: live.last_frame.id == frozen_id + 1, timeout=5_000)
    reads = caps[0].reads
    qtbot.waitUntil(lambda: caps[0].reads >= reads + 10, timeout=5_000)
    assert source.buffer.latest_id == frozen_id + 1 == live.last_frame.id  # exactly one frame per step

    assert live.last_frame.pixels[0, 0, 0] == 7  # RGB: red is 7 on the left, 200 on the right
    live.set_mirror(True)
    live.set_frozen(False)
    qtbot.waitUntil(lambda: live.last_frame.id > frozen_id + 1 and live.last_frame.pixels[0, 0, 0] == 200,
                    timeout=5_000)
    np.testing.assert_allclose(win.displayed_array("input")[0, 0],
                               prepare_input(live.last_frame.pixels, "gray")[0, 0], atol=1e-5)


def test_video_pause_seek_and_step(qtbot, win, video):
    live = win.live
    live.open_video(video, loop=True)
    qtbot.waitUntil(lambda: live.frames_shown >= 2, timeout=10_000)
    live.pause()
    live.seek(30)
    qtbot.waitUntil(lambda: live.last_frame.source_index == 30, timeout=10_000)
    panel = live.panel
    assert panel.seek_slider.value() == 30 and panel.position_label.text() == f"31 / {N_FRAMES}"
    assert panel.step_button.isEnabled()
    panel.step_button.click()
    qtbot.waitUntil(lambda: live.last_frame.source_index == 31, timeout=10_000)
    panel.seek_slider.setValue(5)  # as a drag would
    qtbot.waitUntil(lambda: live.last_frame.source_index == 5, timeout=10_000)
    live.play()
    qtbot.waitUntil(lambda: live.last_frame.source_index >= 8, timeout=10_000)
    live.stop()
    assert not live.threads()


def test_no_camera_keeps_the_still_image(qtbot, win):
    live = win.live
    photo = np.array(win.current_image())
    live.start_webcam(9)  # no such camera here
    qtbot.waitUntil(lambda: live.state == "error", timeout=20_000)
    assert "camera 9 could not be opened" in win.status_text()
    assert "fix:" in win.status_text()
    np.testing.assert_array_equal(win.current_image(), photo)
    assert not live.threads()


def test_opening_a_picture_stops_the_live_source(qtbot, win):
    live = win.live
    source, _ = fake_source(watchdog_same_s=None)
    live.set_source(source)
    qtbot.waitUntil(lambda: live.frames_shown >= 2, timeout=10_000)
    assert win.open_sample("digit")
    assert live.state == "still" and not live.threads()
    assert "digit" in win.image_label().lower()


def test_status_bar_shows_live_numbers(qtbot, win):
    live = win.live
    live.set_source(SyntheticSource(160, 120, 30))
    # the label is refreshed twice a second from the controller's numbers
    qtbot.waitUntil(lambda: live.status_label.isVisible() and live.status_label.text().endswith(" ms"),
                    timeout=10_000)
    text = live.status_label.text()
    for word in ("source", "fps", "shown", "dropped", "latency", "ms"):
        assert word in text
    live.stop()
    assert "stopped" in live.status_label.text()


def test_fast_live_view_hides_histograms_only_while_live(qtbot, win):
    live = win.live
    box = win.outputs.hist_box
    assert box.isChecked() and live.fast_live
    live.set_source(SyntheticSource(160, 120, 30))
    qtbot.waitUntil(lambda: live.state == "live", timeout=10_000)
    assert not box.isChecked()  # the user sees it in the outputs' Histograms box
    live.stop()
    assert box.isChecked()  # and gets them back when the stream stops
    live.panel.fast_box.setChecked(False)
    assert not live.fast_live
    live.start()
    qtbot.waitUntil(lambda: live.state == "live", timeout=10_000)
    assert box.isChecked()
    live.stop()


def test_camera_permission_is_a_no_op_off_macos(qtbot, win):
    answers = []
    request_camera_permission(win, answers.append, platform="linux")
    assert answers == [True]
