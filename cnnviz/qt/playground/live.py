"""Live sources in the playground: webcam, video file or test pattern at camera rate.

Data walks one way, as everywhere in the window::

    capture thread ──► one-slot LatestFrameBuffer ──► FrameFeed ──(frameReady)──►
    GUI thread: window.set_frame(frame) + submit ──► the window's one worker ──► views
                                                        │
    resultShown / requestDropped(request id) ◄──────────┘  (releases the feed for the next frame)

* The capture thread (owned by the core :class:`~cnnviz.core.sources.FrameSource`) never
  waits for anybody: it overwrites the one-slot buffer.
* The frame feed (:class:`~cnnviz.qt.workers.FrameFeed`, the one both windows use) takes a
  frame only when the window has shown (or the worker dropped) the previous one, so a slow
  pipeline makes the *buffer* drop frames instead of a queue growing anywhere; the frame
  it takes is always the newest.
* Source callbacks (watchdog errors, end of file) arrive on the capture thread and are
  forwarded to the GUI thread through queued signals; every message carries the
  *generation* of the source run that sent it, so late news from a source that has been
  stopped or replaced is ignored.
* Opening a camera (and listing cameras) blocks for a while, so both run through
  :func:`~cnnviz.qt.workers.run_in_thread`; the window never freezes.
* Switching source, :meth:`LiveController.stop` and closing the window stop the source,
  join its capture thread and the feed's, and leave no thread behind.

:func:`~cnnviz.qt.playground.live_actions.install_live_sources` adds the Source panel (a dock), a "Source" menu and a
status-bar label to the playground window (:class:`PlaygroundWindow`) and returns the
:class:`LiveController`.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFrame, QLabel, QMenu, QScrollArea, QWidget

from cnnviz.core.errors import SourceError
from cnnviz.core.sources import (
    ERROR,
    CameraInfo,
    CaptureSource,
    Frame,
    FrameSource,
    SyntheticSource,
    VideoFileSource,
    WebcamSource,
    list_cameras,
)

from ..workers import FrameFeed, run_in_thread
from .live_controls import (  # noqa: F401 - re-exported: the state names and the permission helper
    _JOIN_S,
    _Bridge,
    _safe_emit,
    _start_source,
    FAILED,
    LIVE,
    STARTING,
    STILL,
    STOPPED,
    LiveControls,
    _permission_error,
    request_camera_permission,
)

class PlaygroundWindow(Protocol):
    """What the live sources use of the playground window (its public API; no import of
    the window module, so the two do not depend on each other)."""

    resultShown: Any
    imageChanged: Any
    worker: Any

    def set_frame(self, pixels: np.ndarray, label: str = ...) -> None: ...
    def submit_now(self) -> int | None: ...
    def current_image(self) -> np.ndarray | None: ...
    def image_label(self) -> str: ...
    def show_message(self, text: str, error: bool = ..., timeout: int = ...) -> None: ...
    def show_error(self, err: BaseException, context: str = ..., transient: bool = ...) -> None: ...
    def histograms_visible(self) -> bool: ...
    def set_histograms_visible(self, visible: bool) -> None: ...

__all__ = [
    "RESOLUTIONS",
    "VIDEO_EXTENSIONS",
    "LiveController",
    "request_camera_permission",
]

#: Resolutions offered for webcams: (label, width, height); labels are H×W like every size cnnviz shows; ``None`` = the camera's default.
RESOLUTIONS: tuple[tuple[str, int | None, int | None], ...] = (
    ("Camera default", None, None),
    ("480 × 640 (H×W)", 640, 480),
    ("720 × 1280", 1280, 720),
    ("1080 × 1920", 1920, 1080),
)
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".ogv")

_STATS_MS = 500


# ---------------------------------------------------------------------------------------
# the controller
# ---------------------------------------------------------------------------------------
class LiveController(LiveControls, QObject):
    """Owns the current live source and feeds its frames to the window.

    Parameters
    ----------
    window:
        The playground window. Used through its public API only: ``set_frame``,
        ``submit_now``, ``resultShown``, ``imageChanged``, ``worker``, ``current_image``,
        ``image_label``, ``show_message``, ``show_error``.
    list_cameras_fn:
        ``() -> list[CameraInfo]``, run on a helper thread (default: the core's
        :func:`~cnnviz.core.sources.list_cameras`); tests inject fakes.
    platform:
        For the camera-permission logic (default ``sys.platform``).

    Signals
    -------
    stateChanged()
        State, source, freeze/pause/mirror or error changed.
    errorOccurred(object)
        A :class:`SourceError` (failed open, watchdog), already shown in the status bar.
    frameShown(int frame_id)
        The views now show that frame.
    camerasChanged(object)
        The list of cameras that opened (``list[CameraInfo]``, possibly empty).
    statsUpdated(object)
        :meth:`stats` twice a second while a source runs.
    positionChanged(int index, int count)
        Video files: index of the frame shown and the number of frames (−1 if unknown).
    """

    stateChanged = Signal()
    errorOccurred = Signal(object)
    frameShown = Signal(int)
    camerasChanged = Signal(object)
    statsUpdated = Signal(object)
    positionChanged = Signal(int, int)

    def __init__(self, window: PlaygroundWindow, parent: QObject | None = None, *,
                 list_cameras_fn: Callable[[], list[CameraInfo]] | None = None,
                 platform: str | None = None) -> None:
        super().__init__(parent if parent is not None else window)
        self.window = window
        self._list_cameras = list_cameras_fn or list_cameras
        self._platform = platform or sys.platform
        self._bridge = _Bridge(self)
        q = Qt.ConnectionType.QueuedConnection
        self._bridge.error.connect(self._on_source_error, q)
        self._bridge.stopped.connect(self._on_source_stopped, q)
        # the one frame feed: the newest frame, one at a time, when the window is ready
        self.feed = FrameFeed(self)
        self.feed.frameReady.connect(self._on_frame)
        self.feed.drained.connect(self._on_drained)

        self._source: FrameSource | None = None
        self._state = STILL
        self._gen = 0
        self._closed = False
        self._ending = False          # the source ended by itself (end of file): show what is left
        self._drained = False         # …and the feed has handed over its last frame
        self._starter: threading.Thread | None = None
        self._lister: threading.Thread | None = None
        self._probe_token = 0
        self._mirror = False
        self._still: tuple[np.ndarray, str] | None = None
        self._frames_on_screen = False                    # the window shows a frame, not the still
        self._cameras: list[CameraInfo] | None = None     # None: never probed
        self._probing = False
        self.last_error: SourceError | None = None
        self.last_frame: Frame | None = None
        self._fast_live = True
        self._histograms_hidden_by_us = False

        # frame bookkeeping (GUI thread only)
        self._inflight: dict[int, Frame] = {}             # request id → frame
        self._shown_at: collections.deque[float] = collections.deque(maxlen=256)
        self._latency_ms: collections.deque[float] = collections.deque(maxlen=512)
        self.frames_shown = 0
        self.frames_delivered = 0
        self.frames_superseded = 0

        self._stats_timer = QTimer(self)
        self._stats_timer.setInterval(_STATS_MS)
        self._stats_timer.timeout.connect(self._emit_stats)

        window.resultShown.connect(self._on_result_shown)
        window.imageChanged.connect(self._on_window_image_changed)
        window.worker.errorRaised.connect(self._on_worker_error)
        # queued: a drop announced inside another submit is handled once that submit returned
        window.worker.requestDropped.connect(self._on_request_dropped, Qt.ConnectionType.QueuedConnection)
        window.installEventFilter(self)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    # ===================================================================================
    # state
    # ===================================================================================
    @property
    def state(self) -> str:
        """``"still"``, ``"starting"``, ``"live"``, ``"stopped"`` or ``"error"``."""
        return self._state

    @property
    def source(self) -> FrameSource | None:
        """The current (or last) live source; None on the still image."""
        return self._source

    @property
    def is_live(self) -> bool:
        return self._state == LIVE

    @property
    def is_video(self) -> bool:
        s = self._source
        return isinstance(s, CaptureSource) and s.is_file

    @property
    def kind(self) -> str:
        """What the current source is: ``"still"``, ``"webcam"``, ``"video"``, ``"pattern"``
        or ``"capture"`` (any other capture, e.g. in tests)."""
        s = self._source
        if s is None or self._state == STILL:
            return "still"
        if isinstance(s, WebcamSource):
            return "webcam"
        if isinstance(s, VideoFileSource):
            return "video"
        if isinstance(s, SyntheticSource):
            return "pattern"
        return "capture"

    def threads(self) -> list[threading.Thread]:
        """Helper, frame-feed and capture threads of this controller that are still alive."""
        out = [t for t in (self.feed.thread(), self._starter, self._lister) if t is not None and t.is_alive()]
        s = self._source
        cap = getattr(s, "capture_thread", None)
        if cap is not None and cap.is_alive():
            out.append(cap)
        return out

    def _set_state(self, state: str) -> None:
        self._state = state
        if state == LIVE:
            self._apply_fast_live()
        elif state != STARTING:
            self._restore_histograms()
        self.stateChanged.emit()

    # -- fast live view ------------------------------------------------------------------
    @property
    def fast_live(self) -> bool:
        """Hide the output views' histograms while a source runs (default True).

        Recomputing and repainting three histograms for every frame costs the GUI thread
        more than everything else together (on a 2-core machine: ~20 instead of ~29 of 30
        frames per second shown at 1280×720); at camera rate they only flicker anyway.
        The Histograms box in the outputs shows the change, and the user's setting comes
        back when the stream stops.
        """
        return self._fast_live

    def set_fast_live(self, on: bool) -> None:
        self._fast_live = bool(on)
        if self._state == LIVE and self._fast_live:
            self._apply_fast_live()
        elif not self._fast_live:
            self._restore_histograms()
        self.stateChanged.emit()

    def _apply_fast_live(self) -> None:
        if self._fast_live and self.window.histograms_visible():
            self.window.set_histograms_visible(False)
            self._histograms_hidden_by_us = True

    def _restore_histograms(self) -> None:
        if self._histograms_hidden_by_us:
            self._histograms_hidden_by_us = False
            if not self.window.histograms_visible():
                self.window.set_histograms_visible(True)

    # ===================================================================================
    # choosing a source
    # ===================================================================================
    def set_source(self, source: FrameSource) -> None:
        """Stop the current source (joining its threads) and start ``source``.

        Opening happens on a helper thread; ``state`` is ``"starting"`` until the first
        frame is in or the open failed (then ``"error"`` with :attr:`last_error`, and the
        window keeps its still picture).
        """
        if self._closed:
            return
        if not self._frames_on_screen:   # the window shows a still picture: come back to it later
            self._remember_still()
        old = self._source
        self._halt_threads()
        if old is not None and old is not source:
            old.on_error = old.on_stopped = None
        self._source = source
        self._reset_counters()
        source.mirror = self._mirror
        self._launch()

    def start_webcam(self, index: int = 0, width: int | None = None, height: int | None = None,
                     backend: str | int = "auto") -> None:
        """Open camera ``index`` (asking for camera permission first on macOS)."""
        try:
            source = WebcamSource(index, width, height, backend)
        except SourceError as err:
            self._fail(err)
            return

        def go(granted: bool) -> None:
            if self._closed:
                return
            if granted:
                self.set_source(source)
            else:
                self._fail(_permission_error())

        request_camera_permission(self, go, self._platform)

    def open_video(self, path: str | Path, loop: bool = True) -> None:
        """Play a video file through the pipeline (missing/unreadable files are reported)."""
        self.set_source(VideoFileSource(path, loop=loop))

    def start_pattern(self, width: int = 1280, height: int = 720, fps: float = 30.0) -> None:
        """A moving synthetic test pattern (no camera needed)."""
        try:
            source = SyntheticSource(width, height, fps)
        except SourceError as err:
            self._fail(err)
            return
        self.set_source(source)

    def start(self) -> None:
        """Start the last source again (after Stop, an error or the end of a video)."""
        if self._source is None or self._state in (LIVE, STARTING) or self._closed:
            return
        self._halt_threads()
        self._launch()

    def reconnect(self) -> None:
        """Re-open the current source (after a watchdog stopped it, or at any time)."""
        if self._source is None or self._closed:
            return
        self._halt_threads()
        self._launch()

    def stop(self) -> bool:
        """Stop the source and join its threads; the last frame stays on screen.

        Returns True when every thread ended (see :meth:`threads`).
        """
        ok = self._halt_threads()
        if self._source is not None and self._state != STILL:
            self._set_state(STOPPED)
        return ok

    # ===================================================================================
    # lifecycle internals (GUI thread)
    # ===================================================================================
    def _remember_still(self) -> None:
        img = self.window.current_image()
        if img is not None:
            self._still = (img, self.window.image_label())

    def _launch(self) -> None:
        """Start ``self._source`` on a helper thread under a new generation."""
        source = self._source
        assert source is not None
        self._gen += 1
        gen = self._gen
        bridge = self._bridge
        source.on_error = lambda err, g=gen: _safe_emit(bridge.error, g, err)
        source.on_stopped = lambda reason, g=gen: _safe_emit(bridge.stopped, g, reason)
        self.last_error = None
        self.feed.release()
        self._set_state(STARTING)
        self._starter = run_in_thread(lambda: _start_source(source), lambda err, g=gen: self._on_started(g, err),
                                      name=f"cnnviz-live-open {source.name}", context=self)

    @Slot(int, object)
    def _on_started(self, gen: int, err: SourceError | None) -> None:
        if gen != self._gen or self._closed:
            return  # _halt_threads already joined that opener
        starter, self._starter = self._starter, None
        if starter is not None:
            starter.join(_JOIN_S)  # it has sent its last signal: this returns at once
        source = self._source
        if err is not None or source is None:
            self._fail(err or SourceError("the source went away while opening", "choose it again"))
            return
        self.feed.start(source)
        self._stats_timer.start()
        self._set_state(LIVE)
        self._emit_stats()

    def _fail(self, err: SourceError) -> None:
        self._halt_threads()
        self.last_error = err
        self.window.show_error(err, "Live source")
        self._set_state(FAILED)
        self.errorOccurred.emit(err)

    def _halt_threads(self, timeout: float = _JOIN_S) -> bool:
        """Stop the source and join the frame feed, the capture thread and the opener."""
        self._gen += 1                     # whatever the old threads still send is ignored
        self.feed.halt()
        ok = True
        if self._source is not None:
            ok = self._source.stop(timeout)   # closes the buffer: the feed's thread wakes and ends
        ok = self.feed.join(timeout) and ok
        starter, self._starter = self._starter, None
        if starter is not None:
            starter.join(timeout)
            ok = ok and not starter.is_alive()
        self._inflight.clear()
        self._ending = self._drained = False
        self._stats_timer.stop()
        return ok

    # ===================================================================================
    # frames (GUI thread)
    # ===================================================================================
    @Slot(object)
    def _on_frame(self, frame: Frame) -> None:
        if self._closed or self._source is None:
            self.feed.release()
            return
        self._deliver(frame)

    def _deliver(self, frame: Frame) -> None:
        """Give ``frame`` to the window and start its computation."""
        assert self._source is not None
        self.frames_delivered += 1
        self._frames_on_screen = True
        # a label that stays the same frame after frame: a changing one relayouts the Source dock
        self.window.set_frame(frame.pixels, f"{self._source.name} (live)")
        rid = self.window.submit_now()
        if rid is None:          # the window cannot compute now (closing, invalid settings)
            self.feed.release()
            return
        self._inflight[rid] = frame

    def _ready_for_next(self) -> None:
        """The window has shown (or dropped) our last frame: hand it the next one.

        A frame already waiting in the buffer is submitted right here, so the worker computes
        it while the GUI thread paints the result just shown; otherwise the feed is released
        to wait for the next frame. (While it holds, the feed's thread never reads the buffer,
        so the two never take frames at the same time.)
        """
        if self._source is not None and self._state == LIVE and not self._closed and self.feed.holding():
            frame = self.feed.take_now()
            if frame is not None:
                self._deliver(frame)
                return
        self.feed.release()

    @Slot(int)
    def _on_result_shown(self, rid: int) -> None:
        if not self._inflight:
            return
        t = time.perf_counter()
        done = sorted(r for r in self._inflight if r <= rid)
        if not done:
            return  # an older (kernel-edit) result; our frame is still computing
        newest = self._inflight.pop(done[-1])
        for r in done[:-1]:      # overtaken before they were shown
            del self._inflight[r]
            self.frames_superseded += 1
        self.last_frame = newest
        self.frames_shown += 1
        self._shown_at.append(t)
        self._latency_ms.append((t - newest.t_capture) * 1e3)
        self.frameShown.emit(newest.id)
        if newest.source_index is not None:
            count = self.frame_count()
            self.positionChanged.emit(newest.source_index, -1 if count is None else count)
        if not self._inflight:
            self._ready_for_next()
        self._maybe_finish()

    def _on_worker_error(self, rid: int, _exc: object) -> None:
        # the window reports the error; the stream goes on with the next frame
        for r in [r for r in self._inflight if r <= rid]:
            del self._inflight[r]
            self.frames_superseded += 1
        if not self._inflight:
            self._ready_for_next()
        self._maybe_finish()

    def _on_request_dropped(self, rid: int, _reason: str) -> None:
        # the worker will never compute (or never deliver) that frame's request
        if self._inflight.pop(rid, None) is None:
            return
        self.frames_superseded += 1
        if not self._inflight:
            self._ready_for_next()
        self._maybe_finish()

    # ===================================================================================
    # source callbacks, marshalled to the GUI thread
    # ===================================================================================
    @Slot(int, object)
    def _on_source_error(self, gen: int, err: SourceError) -> None:
        if gen != self._gen or self._closed:
            return
        self._fail(err)

    @Slot(int, str)
    def _on_source_stopped(self, gen: int, reason: str) -> None:
        if gen != self._gen or self._closed:
            return
        if reason == ERROR:
            return  # _on_source_error (emitted just before) handles it
        # The source ended by itself (end of file): its capture thread is finishing; the
        # feed still hands over the last frame, which the views should show too.
        if self._source is not None:
            self._source.stop()
        self._ending = True
        self._maybe_finish()

    @Slot()
    def _on_drained(self) -> None:
        if self._closed:
            return
        self._drained = True
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        """After the end of a file: once the last frame is on screen, stop and say so."""
        if not (self._ending and self._drained) or self._inflight:
            return
        name = self._source.name if self._source is not None else "the video"
        self._halt_threads()
        self.window.show_message(f"{name} ended; press Start to play it again, or turn on Loop")
        self._set_state(STOPPED)

    def _on_window_image_changed(self) -> None:
        # The user opened, pasted or dropped a picture: that is the new still image, and a
        # running source would overwrite it with its next frame, so stop the source.
        if self._closed:
            return
        self._still = None
        self._frames_on_screen = False
        if self._source is not None:
            self._halt_threads()
            self._source.on_error = self._source.on_stopped = None
            self._source = None
            self._set_state(STILL)

    # ===================================================================================
    # closing
    # ===================================================================================
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if obj is self.window and event.type() == QEvent.Type.Close:
            self.shutdown()
        return False

    def shutdown(self) -> bool:
        """Stop everything and join every thread (idempotent); True when none is left."""
        if self._closed:
            return not self.threads()
        self._closed = True
        self._stats_timer.stop()
        ok = self._halt_threads()
        lister, self._lister = self._lister, None
        if lister is not None:
            lister.join(_JOIN_S)
        if self._source is not None:
            self._source.on_error = self._source.on_stopped = None
        try:
            self.window.removeEventFilter(self)
        except RuntimeError:
            pass
        return ok and not self.threads()
