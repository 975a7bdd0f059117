"""The source base class, its helpers, the stop reasons and the still-image source."""

from __future__ import annotations

import abc
import collections
import contextlib
import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import cv2
import numpy as np

from cnnviz.core.errors import SourceError
from cnnviz.core.sources.frames import Frame, LatestFrameBuffer

log = logging.getLogger("cnnviz.core.sources")  # one logger for the package, as before the split

#: ``on_stopped`` reasons.
STOPPED = "stopped"  # stop() was called
END_OF_FILE = "end of file"  # a video file ended and loop is off
ERROR = "error"  # on_error was called just before

_FALLBACK_FPS = 30.0


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
