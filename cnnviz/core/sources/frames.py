"""Frames and the one-slot buffer every source pushes into."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np


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
