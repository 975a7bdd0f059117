"""A live :class:`~cnnviz.core.sources.FrameSource` as the inspector's input.

The model runs on the newest frame, one at a time: the frames come through the windows' one
frame feed (:class:`~cnnviz.qt.workers.FrameFeed`, shared with the playground), which hands
over a frame and then holds until the window asks for the next one
(:meth:`LiveInput.want_frame`, called when its inference worker is idle). Meanwhile the
source's one-slot buffer keeps replacing the frame nobody took, so frames the model cannot
keep up with are dropped at the source, never queued, and no timer polls the buffer.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Qt, Signal

from cnnviz.qt.workers import FrameFeed

__all__ = ["LiveInput"]

#: How long detaching waits for the feed's thread (its waits wake every half second at most).
_JOIN_S = 1.0


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
        self._feed = FrameFeed(self)
        self._feed.frameReady.connect(self._on_frame)
        q = Qt.ConnectionType.QueuedConnection
        self._errorFromSource.connect(self._on_source_error, q)
        self._stoppedFromSource.connect(self._on_source_stopped, q)

    # -- attach / detach ------------------------------------------------------------------
    def attach(self, source: Any, own: bool) -> None:
        """Take frames from ``source`` (already started); ``own``: stop it on detach."""
        self.detach()
        source.on_error = self._errorFromSource.emit
        source.on_stopped = self._stoppedFromSource.emit
        self.source = source
        self.own = own
        self.frames_run = 0
        self.frozen = False
        self._feed.start(source)

    def detach(self) -> None:
        """Stop taking frames and let the source go (stopped when owned). Joins the feed's
        thread."""
        self._feed.halt()
        src, self.source = self.source, None
        if src is not None:
            src.on_error = None
            src.on_stopped = None
            if self.own:
                try:
                    src.stop()
                except Exception:  # noqa: BLE001 - closing must not fail
                    pass
        self._feed.join(_JOIN_S)
        self.own = False

    @property
    def attached(self) -> bool:
        return self.source is not None

    # -- frames -------------------------------------------------------------------------
    def want_frame(self) -> None:
        """Ready for the next frame: the feed hands over the newest one (asking twice is
        harmless; a frozen input asks for nothing)."""
        if self.source is not None and not self.frozen:
            self._feed.release()

    def set_frozen(self, frozen: bool) -> None:
        """Freeze: the source stops publishing and frames still on their way are dropped."""
        self.frozen = bool(frozen)
        if self.source is not None:
            try:
                self.source.freeze(self.frozen)
            except Exception:  # noqa: BLE001 - a source without freeze: we just stop taking frames
                pass

    def _on_frame(self, frame: Any) -> None:
        if self.source is None or self.frozen:
            return  # dropped; the feed holds until want_frame() after the thaw
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
