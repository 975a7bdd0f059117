"""Frames from anything with a ``cv2.VideoCapture`` interface (webcams, video files): one capture thread."""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from collections.abc import Callable

import cv2
import numpy as np

from cnnviz.core.errors import SourceError
from cnnviz.core.sources.base import (
    CaptureLike, END_OF_FILE, ERROR, FrameSource, STOPPED, log, _FALLBACK_FPS, _owned_rgb,
    _quiet_opencv, _signature,
)

# --------------------------------------------------------------------------- capture


class CaptureSource(FrameSource):
    """Frames from anything with a ``cv2.VideoCapture`` interface: webcams, video files.

    One capture thread owns the capture object: it opens it, reads from it, converts
    BGR→RGB (and mirrors) into an owned array, publishes, and releases it when it ends.

    Parameters
    ----------
    open_capture:
        Called in the capture thread to make the capture, e.g.
        ``lambda: cv2.VideoCapture(0, cv2.CAP_V4L2)``. It may raise
        :class:`SourceError` with its own message.
    name:
        Used in messages, e.g. ``"camera 0"``.
    fps_limit:
        Files: play at this rate instead of the file's own (``math.inf``: as fast as
        possible). Cameras: publish at most this many frames per second (extra frames are
        read and discarded, so the camera never lags behind).
    loop:
        Files: start again at the first frame at the end.
    watchdog_fail_s:
        Cameras: stop with an error after reads fail for this long (``None``: never).
        Files: a failed read is the end of the file.
    watchdog_same_s:
        Cameras: stop with an error after the same picture keeps coming for this long
        (``None``: never). Ignored for files, where a still scene is legitimate.
    is_file:
        The capture is a video file: paced to its fps, seekable, ends at its end.
    open_timeout_s:
        How long :meth:`start` waits for the capture to open and deliver a first frame.
    """

    #: Whether to pace by sleeping before each read (files, synthetic) rather than by the
    #: device's own blocking read (cameras). ``None``: same as ``is_file``.
    _pace_by_sleeping: bool | None = None

    def __init__(
        self,
        open_capture: Callable[[], CaptureLike],
        *,
        name: str,
        fps_limit: float | None = None,
        loop: bool = False,
        watchdog_fail_s: float | None = 2.0,
        watchdog_same_s: float | None = 3.0,
        is_file: bool = False,
        open_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(name)
        if fps_limit is not None and not fps_limit > 0:
            raise SourceError(
                f"fps limit must be positive, got {fps_limit}", "use e.g. 30, or None"
            )
        self._open_capture = open_capture
        self.fps_limit = fps_limit
        self.loop = loop
        self.watchdog_fail_s = watchdog_fail_s
        self.watchdog_same_s = watchdog_same_s
        self.is_file = is_file
        self.open_timeout_s = open_timeout_s
        self._ctl = threading.Condition()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = False
        self._paused = False
        self._step_pending = False
        self._seek_pending: int | None = None
        self._frame_count: int | None = None
        self._nominal_fps: float | None = None
        self._position: int | None = None
        self._frame_size: tuple[int, int] | None = None
        self._open_done = threading.Event()
        self._open_error: SourceError | None = None

    # -- info
    @property
    def is_running(self) -> bool:
        return self._running and not self._stop_event.is_set()

    @property
    def capture_thread(self) -> threading.Thread | None:
        """The current (or last) capture thread, for diagnostics and tests."""
        return self._thread

    @property
    def frame_count(self) -> int | None:
        """Frames in the video file (as the file reports it) once started; else None."""
        return self._frame_count

    @property
    def nominal_fps(self) -> float | None:
        """The file's own frame rate (30 when it does not say) once started; else None."""
        return self._nominal_fps

    @property
    def position(self) -> int | None:
        """Index of the last published frame of a video file; None for cameras."""
        return self._position

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """``(width, height)`` of the frames, known once started."""
        return self._frame_size

    @property
    def is_paused(self) -> bool:
        return self._paused

    # -- lifecycle
    def start(self) -> None:
        if self.is_running:
            return
        self._ensure_not_capture_thread("start")
        self.stop()  # joins a thread that stopped itself and is finishing its callbacks
        self._stop_event.clear()
        self._open_done.clear()
        self._open_error = None
        self._step_pending = False
        self.buffer.reopen()
        thread = threading.Thread(
            target=self._run, name=f"cnnviz-capture {self.name}", daemon=True
        )
        self._thread = thread
        thread.start()
        if not self._open_done.wait(self.open_timeout_s):
            self._stop_event.set()
            thread.join(0.1)
            raise SourceError(
                f"{self.name} did not open within {self.open_timeout_s:g} s",
                self._busy_fix(),
            )
        if self._open_error is not None:
            thread.join()
            raise self._open_error

    def stop(self, timeout: float = 2.0) -> bool:
        thread = self._thread
        self._stop_event.set()
        with self._ctl:
            self._ctl.notify_all()
        if thread is None:
            return True
        self.buffer.close()  # wake consumers now, even if a read still blocks
        if thread is threading.current_thread():
            return False  # asked from a callback: the thread ends right after it
        thread.join(timeout)
        return not thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the capture thread to end by itself (end of file, watchdog)."""
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return thread is None
        thread.join(timeout)
        return not thread.is_alive()

    # -- controls
    def freeze(self, frozen: bool = True) -> None:
        super().freeze(frozen)
        self._wake()

    def step(self) -> None:
        if self._frozen or self._paused:
            self._step_pending = True
            self._wake()

    def play(self) -> None:
        """Resume a paused video (cameras: same as unfreezing the stream)."""
        self._paused = False
        self._wake()

    def pause(self) -> None:
        """Pause a video where it is; :meth:`step` and :meth:`seek` still work."""
        self._paused = True

    def seek(self, frame_index: int) -> None:
        """Show frame ``frame_index`` of a video file next (clamped to the file).

        Works while playing, paused or stopped (then it applies at the next start).
        """
        if not self.is_file:
            raise SourceError(
                f"{self.name} is a live camera and cannot seek",
                "seeking works only for video files",
            )
        index = max(0, int(frame_index))
        if self._frame_count:
            index = min(index, self._frame_count - 1)
        with self._ctl:
            self._seek_pending = index
            self._ctl.notify_all()

    def _wake(self) -> None:
        with self._ctl:
            self._ctl.notify_all()

    def _ensure_not_capture_thread(self, what: str) -> None:
        if self._thread is not None and self._thread is threading.current_thread():
            raise RuntimeError(
                f"{what}() was called from {self.name}'s own capture thread; "
                "call it from another thread (e.g. the GUI thread)"
            )

    # -- messages (subclasses name their own causes)
    def _busy_fix(self) -> str:
        if self.is_file:
            return "check that the file is on a readable disk and try again"
        return (
            "check that the camera is plugged in and that no other application "
            "(video call, browser) is using it, then try again"
        )

    def _open_failed_error(self) -> SourceError:
        if self.is_file:
            return SourceError(
                f"video file {self.name} could not be opened: OpenCV does not support "
                "its format or the file is damaged",
                "convert it to MP4 (H.264) or AVI (MJPG) and open it again",
            )
        fix = self._busy_fix()
        if sys.platform == "darwin":
            fix += (
                "; on macOS also allow camera access in System Settings > "
                "Privacy & Security > Camera"
            )
        return SourceError(
            f"{self.name} could not be opened: it is missing or in use by another "
            "application",
            fix,
        )

    def _no_first_frame_error(self, waited: float) -> SourceError:
        if self.is_file:
            return SourceError(
                f"video file {self.name} opened but no frame could be decoded",
                "the file may be damaged or use a codec OpenCV lacks; convert it to "
                "MP4 (H.264) or AVI (MJPG)",
            )
        return SourceError(
            f"{self.name} opened but delivered no picture within {waited:.1f} s: it is "
            "probably in use by another application",
            self._busy_fix(),
        )

    def _read_failed_error(self, seconds: float) -> SourceError:
        return SourceError(
            f"{self.name} stopped delivering frames for {seconds:.1f} s: it was "
            "unplugged, or another application took it over",
            "check the cable and that no other application is using the camera, "
            "then reconnect",
        )

    def _frozen_error(self, seconds: float) -> SourceError:
        return SourceError(
            f"{self.name} has sent exactly the same picture for {seconds:.1f} s: the "
            "camera seems frozen",
            "reconnect; if it stays frozen, unplug and replug the camera, or close "
            "other applications that use it",
        )

    # -- the capture thread
    def _run(self) -> None:
        cap: CaptureLike | None = None
        reason, error = STOPPED, None
        try:
            try:
                cap, first, t_first = self._open_in_thread()
                if self._stop_event.is_set():  # start() gave up waiting
                    return
                self._publish_capture(first, t_first)
            except SourceError as err:
                self._open_error = err
                return
            except Exception as exc:  # a broken driver or open function
                log.debug("%s: open failed", self.name, exc_info=True)
                self._open_error = SourceError(
                    f"{self.name} could not be opened ({type(exc).__name__}: {exc})",
                    self._busy_fix(),
                )
                return
            self._running = True
            self._open_done.set()
            try:
                reason, error = self._loop(cap)
            except SourceError as err:
                reason, error = ERROR, err
            except Exception as exc:
                log.exception("%s: capture thread failed", self.name)
                reason, error = ERROR, SourceError(
                    f"{self.name} stopped unexpectedly ({type(exc).__name__}: {exc})",
                    "reconnect; if it keeps happening, unplug and replug the camera",
                )
        finally:
            if cap is not None:
                try:
                    cap.release()
                except Exception:
                    log.debug("%s: release failed", self.name, exc_info=True)
            was_running, self._running = self._running, False
            self._open_done.set()
            if was_running:
                self.buffer.close()
                if error is not None:
                    self._call(self.on_error, error)
                self._call(self.on_stopped, reason)

    def _open_in_thread(self) -> tuple[CaptureLike, np.ndarray, float]:
        with _quiet_opencv():
            cap = self._open_capture()
        try:
            if cap is None or not cap.isOpened():
                raise self._open_failed_error()
            if self.is_file:
                fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
                self._nominal_fps = fps if math.isfinite(fps) and 0 < fps <= 1000 else (
                    _FALLBACK_FPS
                )
                count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
                self._frame_count = int(count) if count and math.isfinite(count) and (
                    count > 0
                ) else None
                self._position = -1
                self._apply_seek(cap)
            wait_s = 2.0 if self.watchdog_fail_s is None else self.watchdog_fail_s
            deadline = time.perf_counter() + wait_s
            while True:
                with _quiet_opencv():
                    ok, image = cap.read()
                t = time.perf_counter()
                if ok and image is not None and image.size:
                    return cap, image, t
                if self.is_file or t >= deadline or self._stop_event.is_set():
                    raise self._no_first_frame_error(wait_s)
                self._stop_event.wait(0.02)
        except BaseException:
            if cap is not None:
                with contextlib.suppress(Exception):
                    cap.release()
            raise

    def _apply_seek(self, cap: CaptureLike) -> bool:
        with self._ctl:
            index, self._seek_pending = self._seek_pending, None
        if index is None:
            return False
        if self._frame_count:
            index = min(index, self._frame_count - 1)
        cap.set(cv2.CAP_PROP_POS_FRAMES, float(index))
        self._position = index - 1
        return True

    def _publish_capture(self, image: np.ndarray, t: float) -> None:
        if self._frame_size is None or self._frame_size != (image.shape[1], image.shape[0]):
            self._frame_size = (int(image.shape[1]), int(image.shape[0]))
        index = None
        if self.is_file:
            self._position = (self._position if self._position is not None else -1) + 1
            index = self._position
        self._publish(_owned_rgb(image, self._mirror), t, index)

    def _pace_rate(self) -> float:
        return self.fps_limit or self._nominal_fps or _FALLBACK_FPS

    def _holding(self) -> bool:
        return self._frozen or self._paused

    def _loop(self, cap: CaptureLike) -> tuple[str, SourceError | None]:
        sleeping = self.is_file if self._pace_by_sleeping is None else self._pace_by_sleeping
        stop = self._stop_event
        # The first frame was published while opening: the next one is due one interval on.
        next_due: float | None = time.perf_counter() + 1.0 / self._pace_rate()
        last_publish = time.perf_counter()
        fail_since: float | None = None
        same_sig: int | None = None
        same_since = 0.0
        reads_since_rewind = 1
        while not stop.is_set():
            force = False  # publish even though holding (seek or step)
            if self.is_file and self._seek_pending is not None:
                force = self._apply_seek(cap)
                reads_since_rewind = 0
                next_due = None
            elif sleeping and self._holding():
                if self._step_pending:
                    self._step_pending = False
                    force = True
                else:
                    with self._ctl:
                        if not (stop.is_set() or self._step_pending or (
                            self._seek_pending is not None) or not self._holding()):
                            self._ctl.wait(0.25)
                    next_due = None
                    continue
            if sleeping and not force:
                interval = 1.0 / self._pace_rate()
                now = time.perf_counter()
                if next_due is None or now - next_due > interval:
                    next_due = now  # fell behind (or resumed): no burst to catch up
                if next_due > now and stop.wait(next_due - now):
                    break
                if self._seek_pending is not None:
                    continue
                next_due += interval

            ok, image = cap.read()
            now = time.perf_counter()
            if not ok or image is None or not image.size:
                if self.is_file:
                    if self.loop and reads_since_rewind > 0:
                        cap.set(cv2.CAP_PROP_POS_FRAMES, 0.0)
                        self._position = -1
                        reads_since_rewind = 0
                        continue
                    return END_OF_FILE, None
                if fail_since is None:
                    fail_since = now
                elif self.watchdog_fail_s is not None and (
                    now - fail_since >= self.watchdog_fail_s
                ):
                    return ERROR, self._read_failed_error(now - fail_since)
                stop.wait(0.02)  # a failing device often returns at once: do not spin
                continue
            fail_since = None
            reads_since_rewind += 1

            if not self.is_file and self.watchdog_same_s is not None:
                sig = _signature(image)
                if sig != same_sig:
                    same_sig, same_since = sig, now
                elif now - same_since >= self.watchdog_same_s:
                    return ERROR, self._frozen_error(now - same_since)

            if not sleeping:
                if self._holding():
                    if not self._step_pending:
                        continue  # keep draining the camera so unfreezing shows "now"
                    self._step_pending = False
                elif self.fps_limit and now - last_publish < 0.98 / self.fps_limit:
                    continue
            last_publish = now
            self._publish_capture(image, now)
        return STOPPED, None
