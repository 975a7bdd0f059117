"""A live :class:`~cnnviz.core.sources.FrameSource` as the inspector's input.

The model runs on the newest frame, one at a time: the window asks for a frame
(:meth:`LiveInput.want_frame`) only when its inference worker is idle, and the source's
one-slot buffer keeps replacing the frame nobody took, so frames the model cannot keep up
with are dropped at the source, never queued.

Waiting for the next frame is blocking work, so it runs on a
:class:`~cnnviz.qt.workers.LatestRequestWorker` (the house's one worker pattern), which hands
the frame to the GUI thread with a signal: no timer polls the buffer. The worker runs only
while a source is attached.
"""

from __future__ import annotations

import threading
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal

from cnnviz.qt.workers import LatestRequestWorker

__all__ = ["LiveInput", "next_frame"]

#: How often a frame wait checks that it was called off (it wakes at once for a frame).
_WAIT_SLICE_S = 0.05
#: How long detaching waits for the frame wait to notice (a few slices).
_JOIN_MS = 1000


def next_frame(request: tuple[int, Any, threading.Event]) -> tuple[int, Any]:
    """Wait for the source's next frame (runs on the frame worker's thread).

    ``request`` is ``(generation, buffer, stop)``; returns ``(generation, frame)``, with
    ``frame`` None when ``stop`` was set or the buffer closed (the source stopped).
    """
    generation, buffer, stop = request
    while not stop.is_set():
        frame = buffer.get(timeout=_WAIT_SLICE_S)
        if frame is not None:
            return generation, frame
        if buffer.closed:
            break
    return generation, None


class LiveInput(QObject):
    """The attached source, its frame wait and what the input label says about it.

    Signals
    -------
    frameArrived(object)
        A new :class:`~cnnviz.core.sources.Frame`, on the GUI thread.
    sourceError(object)
        The source stopped itself with this :class:`~cnnviz.core.errors.SourceError`.
    sourceStopped(str)
        The source stopped (the reason).
    """

    frameArrived = Signal(object)
    sourceError = Signal(object)
    sourceStopped = Signal(str)
    # emitted on the source's capture thread; connected queued to the public signals above
    _errorFromSource = Signal(object)
    _stoppedFromSource = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.source: Any = None
        self.own = False
        self.frozen = False
        self.frames_run = 0
        self._generation = 0
        self._stop = threading.Event()
        self._waiter: LatestRequestWorker | None = None
        q = Qt.ConnectionType.QueuedConnection
        self._errorFromSource.connect(self._on_source_error, q)
        self._stoppedFromSource.connect(self._on_source_stopped, q)

    # -- attach / detach ------------------------------------------------------------------
    def attach(self, source: Any, own: bool) -> None:
        """Take frames from ``source`` (already started); ``own``: stop it on detach."""
        self.detach()
        self._generation += 1
        self._stop = threading.Event()
        source.on_error = self._errorFromSource.emit
        source.on_stopped = self._stoppedFromSource.emit
        self.source = source
        self.own = own
        self.frames_run = 0
        self.frozen = False
        self._waiter = LatestRequestWorker(next_frame, self, name="cnnviz-inspector-frames")
        self._waiter.resultReady.connect(self._on_frame)

    def detach(self) -> None:
        """Stop waiting for frames and let the source go (stopped when owned). Joins the
        frame worker's thread."""
        self._stop.set()
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.shutdown(_JOIN_MS)
            waiter.deleteLater()
        src, self.source = self.source, None
        if src is None:
            return
        src.on_error = None
        src.on_stopped = None
        if self.own:
            try:
                src.stop()
            except Exception:  # noqa: BLE001 - closing must not fail
                pass
        self.own = False

    @property
    def attached(self) -> bool:
        return self.source is not None

    # -- frames -------------------------------------------------------------------------
    def want_frame(self) -> None:
        """Ask for the next frame (once; a wait already running is not doubled)."""
        w = self._waiter
        if w is None or self.frozen or w.is_busy():
            return
        w.submit((self._generation, self.source.buffer, self._stop))

    def set_frozen(self, frozen: bool) -> None:
        """Freeze: the source stops publishing and frames still on their way are dropped."""
        self.frozen = bool(frozen)
        if self.source is not None:
            try:
                self.source.freeze(self.frozen)
            except Exception:  # noqa: BLE001 - a source without freeze: we just stop taking frames
                pass

    def _on_frame(self, _rid: int, out: tuple[int, Any]) -> None:
        generation, frame = out
        if frame is None or generation != self._generation or self.source is None or self.frozen:
            return
        self.frames_run += 1
        self.frameArrived.emit(frame)

    def stats(self) -> dict[str, Any]:
        try:
            return dict(self.source.stats()) if self.source is not None else {}
        except Exception:  # noqa: BLE001 - a label, never a failure
            return {}

    # -- the source's callbacks (queued here from its capture thread) ----------------------
    def _on_source_error(self, err: Any) -> None:
        if self.source is not None:
            self.sourceError.emit(err)

    def _on_source_stopped(self, reason: str) -> None:
        if self.source is not None:
            self.sourceStopped.emit(reason)
