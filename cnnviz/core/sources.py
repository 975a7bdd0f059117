"""Frame sources: a still image, a webcam, a video file or a synthetic pattern.

Every source pushes :class:`Frame` objects into a one-slot :class:`LatestFrameBuffer`:
a consumer that is slower than the source gets the newest frame and the others are
counted as dropped; nothing ever queues up. Live sources run ONE capture thread that
owns the OpenCV capture object from open to release.

Webcams and video files go through the same class, :class:`CaptureSource`;
:class:`WebcamSource` and :class:`VideoFileSource` only choose how to open the capture.

A typical consumer::

    src = WebcamSource(0)
    src.on_error = lambda err: ...      # called from the capture thread
    src.start()                         # raises SourceError if the camera cannot open
    while (frame := src.buffer.get(timeout=1.0)) is not None:
        show(frame.pixels)
    src.stop()                          # stops and joins the capture thread

No Qt here: the window marshals the callbacks to the GUI thread itself. The callbacks
must not block waiting on the thread that calls :meth:`FrameSource.stop`.
"""

from __future__ import annotations

import abc
import collections
import contextlib
import logging
import math
import os
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

# MSMF's hardware transforms make opening a webcam take several seconds on Windows;
# the variable is read when the first capture opens, so setting it here is early enough.
os.environ.setdefault("OPENCV_VIDEOIO_MSMF_ENABLE_HW_TRANSFORMS", "0")

import cv2  # noqa: E402

from cnnviz.core.files import open_regular  # noqa: E402
from cnnviz.core.errors import SourceError  # noqa: E402

__all__ = [
    "END_OF_FILE",
    "ERROR",
    "STOPPED",
    "CameraInfo",
    "CaptureLike",
    "CaptureSource",
    "Frame",
    "FrameSource",
    "LatestFrameBuffer",
    "StillImageSource",
    "SyntheticSource",
    "VideoFileSource",
    "WebcamSource",
    "camera_backends",
    "list_cameras",
]

log = logging.getLogger(__name__)

#: ``on_stopped`` reasons.
STOPPED = "stopped"  # stop() was called
END_OF_FILE = "end of file"  # a video file ended and loop is off
ERROR = "error"  # on_error was called just before

_FALLBACK_FPS = 30.0


# --------------------------------------------------------------------------- frames


@dataclass(frozen=True, eq=False)  # eq on arrays is ambiguous: frames compare by identity
class Frame:
    """One picture from a source.

    Attributes
    ----------
    pixels:
        ``uint8`` RGB ``(H, W, 3)`` or gray ``(H, W)``, C-contiguous, owned by this frame
        and read-only (the same frame may be shown and processed by several threads;
        ``pixels.copy()`` to edit it).
    id:
        Increases by one for every frame a source publishes, starting at 1, and keeps
        increasing across stop/start, so "a newer frame" is ``id`` greater.
    t_capture:
        ``time.perf_counter()`` right after the frame was read; capture→display latency
        is ``perf_counter() - t_capture`` when it is painted.
    source_index:
        Position of the frame in a video file (0-based), ``None`` for live sources.
    """

    pixels: np.ndarray
    id: int
    t_capture: float
    source_index: int | None = None

    def __repr__(self) -> str:
        shape = "x".join(str(n) for n in self.pixels.shape)
        at = "" if self.source_index is None else f", source_index={self.source_index}"
        return f"Frame(id={self.id}, {shape} {self.pixels.dtype}, t={self.t_capture:.3f}{at})"


class LatestFrameBuffer:
    """A thread-safe one-slot buffer that always holds the newest frame.

    :meth:`put` replaces a frame nobody took yet (and counts it in :attr:`dropped`);
    :meth:`get` takes the newest frame. A slow consumer therefore never makes anything
    grow and never sees an old frame.

    Attributes
    ----------
    put_count:
        Frames put since the buffer was made.
    get_count:
        Frames taken by :meth:`get`.
    dropped:
        Frames replaced before anybody took them.
    max_depth:
        The most frames the buffer ever held at once (0 or 1: the proof that it never
        grows).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: Frame | None = None
        self._latest: Frame | None = None
        self._closed = False
        self.put_count = 0
        self.get_count = 0
        self.dropped = 0
        self.max_depth = 0

    def put(self, frame: Frame) -> bool:
        """Make ``frame`` the newest frame; ``False`` (and nothing stored) when closed."""
        with self._cond:
            if self._closed:
                return False
            if self._pending is not None:
                self.dropped += 1
            self._pending = frame
            self._latest = frame
            self.put_count += 1
            self.max_depth = max(self.max_depth, self.depth)
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> Frame | None:
        """Take the newest frame nobody took yet, waiting for one if needed.

        Returns ``None`` after ``timeout`` seconds without a new frame, or once the buffer
        is closed and empty (a frame put just before closing is still handed out).
        """
        with self._cond:
            if not self._cond.wait_for(
                lambda: self._pending is not None or self._closed, timeout
            ):
                return None
            frame, self._pending = self._pending, None
            if frame is not None:
                self.get_count += 1
            return frame

    def peek(self) -> Frame | None:
        """The newest frame ever put, taken or not, without taking it."""
        with self._cond:
            return self._latest

    @property
    def depth(self) -> int:
        """Frames waiting to be taken: 0 or 1."""
        return 0 if self._pending is None else 1

    @property
    def latest_id(self) -> int:
        """``id`` of the newest frame put, 0 before the first."""
        latest = self._latest
        return 0 if latest is None else latest.id

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Wake every waiting :meth:`get`; later puts are ignored until :meth:`reopen`."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        """Accept frames again (a source calls this when it starts)."""
        with self._cond:
            self._closed = False


# --------------------------------------------------------------------------- helpers


def _owned_rgb(image: np.ndarray, mirror: bool) -> np.ndarray:
    """BGR(A)/gray capture output → an owned, read-only RGB/gray array in one copy."""
    if image.dtype != np.uint8:
        raise SourceError(
            f"the source delivered {image.dtype} pixels",
            "only 8-bit cameras and videos are supported",
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        out = cv2.flip(image, 1) if mirror else np.array(image, order="C", copy=True)
    elif image.ndim == 3 and image.shape[2] in (3, 4):
        code = cv2.COLOR_BGR2RGB if image.shape[2] == 3 else cv2.COLOR_BGRA2RGB
        if mirror:
            out = cv2.flip(image, 1)
            out = cv2.cvtColor(out, code, dst=out if image.shape[2] == 3 else None)
        else:
            out = cv2.cvtColor(image, code)
    else:
        raise SourceError(
            f"the source delivered frames of shape {image.shape}",
            "use a camera or video with gray, BGR or BGRA frames",
        )
    out.setflags(write=False)
    return out


def _signature(image: np.ndarray) -> int:
    """A cheap fingerprint of a frame: CRC of a sparse subsample (about 1/256 of it)."""
    h, w = image.shape[:2]
    sub = image[:: max(1, h // 32), :: max(1, w // 32)]
    return zlib.crc32(np.ascontiguousarray(sub).data)


_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved: int | None = None


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own warnings (e.g. "can't open camera by index") for a while.

    We report failures ourselves with a cause and a fix; OpenCV's lines on stderr would
    only confuse. The level is process-wide, so several threads share one silencing
    (a depth count) and the first level is restored when the last one leaves.
    """
    global _quiet_depth, _quiet_saved
    logging_mod = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging_mod is None:  # an OpenCV build without cv2.utils.logging
        yield
        return
    with _quiet_lock:
        if _quiet_depth == 0:
            _quiet_saved = logging_mod.getLogLevel()
            logging_mod.setLogLevel(logging_mod.LOG_LEVEL_SILENT)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _quiet_saved is not None:
                logging_mod.setLogLevel(_quiet_saved)


class CaptureLike(Protocol):
    """The part of ``cv2.VideoCapture`` a :class:`CaptureSource` uses (tests fake it)."""

    def isOpened(self) -> bool: ...  # noqa: N802 - OpenCV's name

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def get(self, prop: int) -> float: ...

    def set(self, prop: int, value: float) -> bool: ...

    def release(self) -> None: ...


# --------------------------------------------------------------------------- base


class FrameSource(abc.ABC):
    """Something that publishes :class:`Frame` objects into :attr:`buffer`.

    Attributes
    ----------
    name:
        What the user calls it, e.g. ``"camera 0"`` or ``"clip.mp4"``; used in messages.
    buffer:
        The one-slot buffer consumers take frames from. It stays the same object for the
        life of the source; it is closed when the source stops and reopened on start.
    on_error:
        ``on_error(SourceError)``: the source stopped itself (watchdog, read error).
        Called from the capture thread, before ``on_stopped``.
    on_stopped:
        ``on_stopped(reason)`` with reason :data:`STOPPED`, :data:`END_OF_FILE` or
        :data:`ERROR`. Called from the capture thread (from the caller's thread for a
        still image) every time a started source stops.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.buffer = LatestFrameBuffer()
        self.on_error: Callable[[SourceError], None] | None = None
        self.on_stopped: Callable[[str], None] | None = None
        self._mirror = False
        self._frozen = False
        self._next_id = 1
        self._id_lock = threading.Lock()
        self._frames = 0
        self._times: collections.deque[float] = collections.deque(maxlen=64)

    # -- lifecycle
    @abc.abstractmethod
    def start(self) -> None:
        """Start publishing frames. Raises :class:`SourceError` if the source cannot open.

        Does nothing when already running.
        """

    @abc.abstractmethod
    def stop(self, timeout: float = 2.0) -> bool:
        """Stop publishing and join the capture thread; idempotent.

        Returns ``True`` when no capture thread is left running (``False`` only if a read
        blocked for longer than ``timeout``; the thread then ends, releasing the capture,
        as soon as that read returns).
        """

    @property
    @abc.abstractmethod
    def is_running(self) -> bool:
        """Whether the source is started and has not stopped (or been stopped)."""

    def reconnect(self) -> None:
        """Stop (if needed) and start again, re-opening the camera or file."""
        self.stop()
        self.start()

    def __enter__(self) -> FrameSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- controls
    @property
    def mirror(self) -> bool:
        """Flip frames left-right (applied where the frame is made, before publishing)."""
        return self._mirror

    @mirror.setter
    def mirror(self, value: bool) -> None:
        self._mirror = bool(value)

    @property
    def frozen(self) -> bool:
        return self._frozen

    def freeze(self, frozen: bool = True) -> None:
        """Stop publishing new frames (the last one stays in view) until unfrozen."""
        self._frozen = bool(frozen)

    def step(self) -> None:
        """While frozen: publish exactly one more frame. Otherwise nothing happens."""

    def snapshot(self) -> Frame | None:
        """The newest frame published (taken by a consumer or not), ``None`` before any."""
        return self.buffer.peek()

    def stats(self) -> dict[str, Any]:
        """``source_fps`` (over the last ~2 s), ``frames`` published, ``dropped`` by the
        buffer (a consumer was slower), ``last_id``."""
        with self._id_lock:
            times = list(self._times)
            frames = self._frames
        fps = 0.0
        now = time.perf_counter()
        recent = [t for t in times if now - t <= 2.0]
        if len(recent) >= 2 and recent[-1] > recent[0]:
            fps = (len(recent) - 1) / (recent[-1] - recent[0])
        return {
            "source_fps": fps,
            "frames": frames,
            "dropped": self.buffer.dropped,
            "last_id": self.buffer.latest_id,
        }

    # -- for subclasses
    def _publish(self, pixels: np.ndarray, t_capture: float, index: int | None) -> Frame:
        """Wrap owned, read-only ``pixels`` in a Frame with the next id and put it."""
        with self._id_lock:
            frame = Frame(pixels, self._next_id, t_capture, index)
            if self.buffer.put(frame):  # refused once stopped: then it never existed
                self._next_id += 1
                self._frames += 1
                self._times.append(t_capture)
        return frame

    def _call(self, callback: Callable[..., None] | None, *args: object) -> None:
        """Run a user callback; a failing callback must not kill the capture thread."""
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            log.exception("%s: callback %r failed", self.name, callback)

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<{type(self).__name__} {self.name!r} {state}>"


# --------------------------------------------------------------------------- still


class StillImageSource(FrameSource):
    """One picture. :meth:`start` publishes it once; :meth:`step` (and toggling
    :attr:`mirror`) publish it again with a new id. No thread.

    Parameters
    ----------
    pixels:
        ``uint8`` RGB ``(H, W, 3)`` or gray ``(H, W)``; copied once.
    """

    def __init__(self, pixels: np.ndarray, name: str = "still image") -> None:
        super().__init__(name)
        arr = np.asarray(pixels)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        if arr.dtype != np.uint8 or not (
            arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)
        ) or arr.size == 0:
            raise SourceError(
                f"a still image must be uint8 RGB (H, W, 3) or gray (H, W), "
                f"got {arr.dtype} {arr.shape}",
                "load the picture with cnnviz's image loader",
            )
        self._pixels = np.array(arr, order="C", copy=True)
        self._pixels.setflags(write=False)
        self._mirrored: np.ndarray | None = None
        self._running = False

    @property
    def pixels(self) -> np.ndarray:
        """The picture as given (not mirrored), read-only."""
        return self._pixels

    @property
    def is_running(self) -> bool:
        return self._running

    def start(self) -> None:
        if self._running:
            return
        self.buffer.reopen()
        self._running = True
        self._emit()

    def stop(self, timeout: float = 2.0) -> bool:
        if self._running:
            self._running = False
            self.buffer.close()
            self._call(self.on_stopped, STOPPED)
        return True

    def step(self) -> None:
        if self._running:
            self._emit()

    @FrameSource.mirror.setter  # type: ignore[attr-defined]
    def mirror(self, value: bool) -> None:
        changed = bool(value) != self._mirror
        self._mirror = bool(value)
        if changed and self._running:
            self._emit()

    def _emit(self) -> None:
        if self._mirror:
            if self._mirrored is None:
                self._mirrored = cv2.flip(self._pixels, 1)
                self._mirrored.setflags(write=False)
            pixels = self._mirrored
        else:
            pixels = self._pixels
        # The same read-only array in every frame: frames are immutable, so sharing is safe.
        self._publish(pixels, time.perf_counter(), None)


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


# --------------------------------------------------------------------------- webcams

_BACKENDS = {
    "any": "CAP_ANY",
    "v4l2": "CAP_V4L2",
    "msmf": "CAP_MSMF",
    "dshow": "CAP_DSHOW",
    "avfoundation": "CAP_AVFOUNDATION",
}


def camera_backends(backend: str | int = "auto") -> list[int]:
    """OpenCV API preferences to try, in order, for ``backend``.

    ``"auto"``: Linux V4L2; Windows Media Foundation, then DirectShow; macOS
    AVFoundation; elsewhere whatever OpenCV picks. Also accepts ``"v4l2"``, ``"msmf"``,
    ``"dshow"``, ``"avfoundation"``, ``"any"`` or an OpenCV ``CAP_*`` number.
    """
    if isinstance(backend, int):
        return [backend]
    key = str(backend).lower()
    if key == "auto":
        if sys.platform.startswith("linux"):
            return [cv2.CAP_V4L2]
        if sys.platform == "win32":
            return [cv2.CAP_MSMF, cv2.CAP_DSHOW]
        if sys.platform == "darwin":
            return [cv2.CAP_AVFOUNDATION]
        return [cv2.CAP_ANY]
    if key in _BACKENDS:
        return [getattr(cv2, _BACKENDS[key])]
    raise SourceError(
        f"unknown camera backend {backend!r}",
        "use one of: auto, " + ", ".join(_BACKENDS),
    )


def _open_camera(
    index: int, width: int | None, height: int | None, backend: str | int
) -> CaptureLike | None:
    cap = None
    for api in camera_backends(backend):
        cap = cv2.VideoCapture(index, api)
        if cap.isOpened():
            if width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, float(width))
            if height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, float(height))
            return cap
        cap.release()
    return cap


class WebcamSource(CaptureSource):
    """Camera ``index`` through OpenCV, at about ``width`` × ``height`` if given.

    The camera picks the nearest resolution it supports; :attr:`frame_size` says which.
    On macOS the app must have camera permission before :meth:`start` (the window asks).
    Extra keyword arguments go to :class:`CaptureSource` (watchdogs, ``fps_limit``).
    """

    def __init__(
        self,
        index: int = 0,
        width: int | None = None,
        height: int | None = None,
        backend: str | int = "auto",
        **kwargs: Any,
    ) -> None:
        camera_backends(backend)  # reject an unknown backend now, not in the thread
        self.index = int(index)
        self.requested_size = (width, height)
        kwargs.setdefault("name", f"camera {self.index}")
        super().__init__(
            lambda: _open_camera(self.index, width, height, backend), **kwargs
        )


# --------------------------------------------------------------------------- files


class VideoFileSource(CaptureSource):
    """A video file (anything OpenCV's FFmpeg reads), played at its own frame rate.

    Extra keyword arguments go to :class:`CaptureSource` (e.g. ``fps_limit``).
    """

    def __init__(self, path: str | os.PathLike[str], loop: bool = True, **kwargs: Any):
        self.path = Path(path)
        kwargs.setdefault("name", self.path.name or str(self.path))
        kwargs.setdefault("watchdog_same_s", None)
        super().__init__(self._open_file, loop=loop, is_file=True, **kwargs)

    def _open_file(self) -> CaptureLike:
        # A FIFO or a device would hang FFmpeg's open; a folder or a missing file gets a
        # clear message instead of OpenCV's silent "not opened".
        with open_regular(self.path, "video file", error=SourceError):
            pass
        return cv2.VideoCapture(str(self.path))


# --------------------------------------------------------------------------- synthetic


class _SyntheticCapture:
    """A capture-like pattern generator: diagonal stripes and blobs scrolling sideways.

    ``read()`` returns a BGR view into a precomputed wide image (no per-pixel Python);
    the capture source copies it into the frame, as it does for camera frames.
    """

    PERIOD = 64  # pixels; the pattern repeats every PERIOD columns, so the scroll loops

    def __init__(self, width: int, height: int, speed: int = 4) -> None:
        y, x = np.mgrid[0:height, 0 : width + self.PERIOD].astype(np.float32)
        stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (x + y) / self.PERIOD)
        blobs = 0.5 + 0.5 * np.cos(2 * np.pi * x / self.PERIOD) * np.cos(
            2 * np.pi * y / (2 * self.PERIOD)
        )
        wide = np.empty((height, width + self.PERIOD, 3), np.uint8)
        wide[..., 0] = (255 * stripes).astype(np.uint8)
        wide[..., 1] = (255 * blobs).astype(np.uint8)
        wide[..., 2] = (255 * (y / max(1, height - 1))).astype(np.uint8)
        self._wide = wide
        self._width = width
        self._speed = speed
        self._n = 0
        self._open = True

    def isOpened(self) -> bool:  # noqa: N802
        return self._open

    def read(self) -> tuple[bool, np.ndarray | None]:
        off = (self._n * self._speed) % self.PERIOD
        self._n += 1
        return True, self._wide[:, off : off + self._width]

    def get(self, prop: int) -> float:
        return 0.0

    def set(self, prop: int, value: float) -> bool:
        return False

    def release(self) -> None:
        self._open = False


class SyntheticSource(CaptureSource):
    """A moving test pattern made in the capture thread at a steady ``fps``.

    For benchmarks and demos without a camera: every frame differs, frame ids and
    capture times are real, and pacing uses the same code as video files.
    """

    _pace_by_sleeping = True

    def __init__(self, width: int = 1280, height: int = 720, fps: float = 30.0) -> None:
        if width < 1 or height < 1:
            raise SourceError(
                f"synthetic size must be positive, got {width}x{height}", "use e.g. 1280x720"
            )
        super().__init__(
            lambda: _SyntheticCapture(int(width), int(height)),
            name=f"synthetic {width}x{height}@{fps:g}",
            fps_limit=fps,
            watchdog_fail_s=None,
            watchdog_same_s=None,
        )


# --------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class CameraInfo:
    """A camera that opened and delivered a frame during :func:`list_cameras`."""

    index: int
    name: str
    width: int
    height: int


def _linux_camera_name(index: int) -> str | None:
    try:
        return Path(f"/sys/class/video4linux/video{index}/name").read_text().strip() or None
    except OSError:
        return None


def list_cameras(
    max_index: int = 6, open_fn: Callable[[int], CaptureLike | None] | None = None
) -> list[CameraInfo]:
    """Cameras ``0 .. max_index-1`` that actually open AND deliver a frame.

    Probing silences OpenCV's warnings and, on Linux, skips indices without a
    ``/dev/videoN`` node, so with no camera it returns ``[]`` at once.

    Parameters
    ----------
    open_fn:
        ``open_fn(index)`` → a capture-like object; for tests. Default: the platform's
        backend (see :func:`camera_backends`).
    """
    if open_fn is None:

        def open_fn(index: int) -> CaptureLike | None:
            if sys.platform.startswith("linux") and not os.path.exists(f"/dev/video{index}"):
                return None
            return _open_camera(index, None, None, "auto")

    found: list[CameraInfo] = []
    for index in range(max_index):
        cap = None
        try:
            with _quiet_opencv():
                cap = open_fn(index)
                if cap is None or not cap.isOpened():
                    continue
                image = None
                for _ in range(3):  # some cameras hand out an empty first frame
                    ok, image = cap.read()
                    if ok and image is not None and image.size:
                        break
                    image = None
                if image is None:
                    continue
            name = (
                _linux_camera_name(index) if sys.platform.startswith("linux") else None
            ) or f"Camera {index}"
            found.append(CameraInfo(index, name, int(image.shape[1]), int(image.shape[0])))
        except Exception:
            log.debug("camera %d could not be probed", index, exc_info=True)
        finally:
            if cap is not None:
                with contextlib.suppress(Exception):
                    cap.release()
    return found
