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
import statistics
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

#: Controller states (``LiveController.state``).
STILL = "still"        # the window shows a still picture; no source running
STARTING = "starting"  # a source is opening (camera open can take seconds)
LIVE = "live"          # frames are flowing
STOPPED = "stopped"    # stopped by the user (or the video ended): the last frame stays
FAILED = "error"       # the source failed to open or its watchdog stopped it

_STATS_MS = 500
_JOIN_S = 3.0


# ---------------------------------------------------------------------------------------
# macOS camera permission
# ---------------------------------------------------------------------------------------
def request_camera_permission(context: QObject, done: Callable[[bool], None],
                              platform: str | None = None) -> None:
    """Call ``done(granted)`` once the app may open cameras.

    On macOS this goes through Qt's permission API (Qt ≥ 6.5): the first call shows the
    system prompt and ``done`` is called when the user answers. Elsewhere (and on a Qt
    without the API) ``done(True)`` is called at once. A bundled app needs
    ``NSCameraUsageDescription`` in its Info.plist or macOS denies the request.
    """
    if (platform or sys.platform) != "darwin":
        done(True)
        return
    try:
        from PySide6.QtCore import QCameraPermission
    except ImportError:  # Qt < 6.5: opening the camera triggers the system prompt itself
        done(True)
        return
    app = QCoreApplication.instance()
    if app is None:
        done(True)
        return
    perm = QCameraPermission()
    try:
        status = app.checkPermission(perm)
        if status == Qt.PermissionStatus.Granted:
            done(True)
        elif status == Qt.PermissionStatus.Denied:
            done(False)
        else:
            app.requestPermission(perm, context,
                                  lambda p: done(app.checkPermission(p) == Qt.PermissionStatus.Granted))
    except (AttributeError, TypeError):  # a Qt build without permissions support
        done(True)


def _permission_error() -> SourceError:
    return SourceError("cnnviz is not allowed to use the camera",
                       "allow it in System Settings > Privacy & Security > Camera, then try again")


# ---------------------------------------------------------------------------------------
# threads
# ---------------------------------------------------------------------------------------
class _Bridge(QObject):
    """Signals emitted from helper threads; connected queued, so slots run on the GUI thread."""

    error = Signal(int, object)      # generation, SourceError
    stopped = Signal(int, str)       # generation, reason


def _safe_emit(signal: Any, *args: Any) -> None:
    """Emit from a helper thread; the receiver may already be gone while the app quits."""
    try:
        signal.emit(*args)
    except RuntimeError:  # "Internal C++ object already deleted"
        pass


def _start_source(source: FrameSource) -> SourceError | None:  # helper thread (run_in_thread)
    """Open ``source`` (blocks while a camera opens); None, or the error that says why not."""
    try:
        source.start()
    except SourceError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001
        return SourceError(f"{source.name} could not be started ({type(exc).__name__}: {exc})",
                           "try again; if it keeps failing, restart cnnviz")
    return None


# ---------------------------------------------------------------------------------------
# the controller
# ---------------------------------------------------------------------------------------
class LiveController(QObject):
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

    @property
    def frozen(self) -> bool:
        return self._source is not None and self._source.frozen

    @property
    def paused(self) -> bool:
        s = self._source
        return isinstance(s, CaptureSource) and s.is_paused

    @property
    def mirror(self) -> bool:
        return self._mirror

    @property
    def cameras(self) -> list[CameraInfo] | None:
        """Cameras found by the last probe (None: not probed yet)."""
        return self._cameras

    @property
    def probing(self) -> bool:
        return self._probing

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

    def show_still(self) -> None:
        """Stop any source and go back to the still picture shown before going live."""
        self._halt_threads()
        if self._source is not None:
            self._source.on_error = self._source.on_stopped = None
        self._source = None
        self.last_error = None
        if self._still is not None and self._frames_on_screen:
            self._frames_on_screen = False
            pixels, label = self._still
            self.window.set_frame(pixels, label)
            self.window.submit_now()
        self._set_state(STILL)

    def snapshot(self) -> bool:
        """Make the frame on screen the still picture (the stream stops). False if none."""
        frame = self.last_frame
        if frame is None and self._source is not None:
            frame = self._source.snapshot()
        if frame is None:
            self.window.show_message("No frame to take a snapshot of yet; start a source first", error=True)
            return False
        name = self._source.name if self._source is not None else "source"
        label = f"snapshot of {name} (frame {frame.id})"
        pixels = np.array(frame.pixels, copy=True)
        self._halt_threads()
        if self._source is not None:
            self._source.on_error = self._source.on_stopped = None
        self._source = None
        self._still = (pixels, label)
        self._frames_on_screen = False
        self.window.set_frame(pixels, label)
        self.window.submit_now()
        self._set_state(STILL)
        self.window.show_message(f"Snapshot taken: the {pixels.shape[0]}×{pixels.shape[1]} (H×W) frame is now the "
                                 "still image; choose a source under Input to go live again")
        return True

    # ===================================================================================
    # controls
    # ===================================================================================
    def set_frozen(self, frozen: bool) -> None:
        """Freeze: keep the current frame on screen (the camera keeps running)."""
        if self._source is not None:
            self._source.freeze(frozen)
            self.stateChanged.emit()

    def toggle_freeze(self) -> None:
        self.set_frozen(not self.frozen)

    def step(self) -> None:
        """While frozen (or a video is paused): show exactly one more frame."""
        if self._source is not None and self._state == LIVE:
            self._source.step()

    def set_mirror(self, mirror: bool) -> None:
        """Flip frames left-right (kept when the source changes)."""
        self._mirror = bool(mirror)
        if self._source is not None:
            self._source.mirror = self._mirror
        self.stateChanged.emit()

    def play(self) -> None:
        if isinstance(self._source, CaptureSource):
            self._source.play()
            if self._state in (STOPPED, FAILED):
                self.start()
            self.stateChanged.emit()

    def pause(self) -> None:
        if isinstance(self._source, CaptureSource):
            self._source.pause()
            self.stateChanged.emit()

    def toggle_play(self) -> None:
        if self.paused or self._state in (STOPPED, FAILED):
            self.play()
        else:
            self.pause()

    def seek(self, index: int) -> None:
        """Video files: show frame ``index`` next (works while paused or stopped)."""
        if self.is_video:
            self._source.seek(index)  # type: ignore[union-attr]

    def set_loop(self, loop: bool) -> None:
        if isinstance(self._source, CaptureSource):
            self._source.loop = bool(loop)
            self.stateChanged.emit()

    def frame_count(self) -> int | None:
        s = self._source
        return s.frame_count if isinstance(s, CaptureSource) and s.is_file else None

    # ===================================================================================
    # cameras
    # ===================================================================================
    def refresh_cameras(self) -> None:
        """Probe for cameras on a helper thread; ``camerasChanged`` tells the result.

        On macOS the camera permission is asked first (probing opens cameras).
        """
        if self._closed or self._probing:
            return
        self._probing = True
        self.stateChanged.emit()

        def go(granted: bool) -> None:
            if self._closed:
                self._probing = False
                return
            if not granted:
                self._probing = False
                self._on_cameras(self._probe_token, _permission_error())
                return
            self._probe_token += 1
            token = self._probe_token
            self._lister = run_in_thread(self._probe, lambda result, t=token: self._on_cameras(t, result),
                                         name="cnnviz-live-cameras", context=self)

        request_camera_permission(self, go, self._platform)

    def _probe(self) -> Any:  # helper thread (run_in_thread)
        """The cameras found, or the SourceError that says why none could be listed."""
        try:
            return list(self._list_cameras())
        except SourceError as err:
            return err
        except Exception as exc:  # noqa: BLE001 - a broken driver must not kill the app
            return SourceError(f"looking for cameras failed ({type(exc).__name__}: {exc})",
                               "check the camera drivers and try again")

    @Slot(int, object)
    def _on_cameras(self, token: int, result: Any) -> None:
        if token != self._probe_token:
            return
        self._probing = False
        lister, self._lister = self._lister, None
        if lister is not None and lister is not threading.current_thread():
            lister.join(_JOIN_S)
        if self._closed:
            return
        if isinstance(result, SourceError):
            self._cameras = []
            self.last_error = result
            self.window.show_error(result, "Cameras")
            self.errorOccurred.emit(result)
        else:
            self._cameras = result
            if not result:
                self.window.show_message("No camera found: plug one in (and close other apps that use it), "
                                         "then press Refresh; the still image stays", error=False)
        self.camerasChanged.emit(self._cameras)
        self.stateChanged.emit()

    # ===================================================================================
    # stats
    # ===================================================================================
    def stats(self) -> dict[str, Any]:
        """What the status bar shows, as numbers.

        ``source_fps`` frames/s the source made (last ~2 s), ``shown_fps`` frames/s the views
        showed (last ~2 s), ``dropped`` frames made but never shown (the buffer replaced
        them, or a newer request overtook them), ``latency_ms`` median capture→display
        latency of the last 30 frames (``latency_p95_ms`` their 95th percentile),
        ``frames_shown``, ``frame_id`` of the frame on screen, ``max_pending`` of the
        window's worker.
        """
        now = time.perf_counter()
        s = self._source
        src = s.stats() if s is not None else {}
        recent = [t for t in self._shown_at if now - t <= 2.0]
        shown_fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) >= 2 and recent[-1] > recent[0] else 0.0
        lat = list(self._latency_ms)[-30:]
        return {
            "state": self._state,
            "source": s.name if s is not None else None,
            "source_fps": float(src.get("source_fps", 0.0)),
            "shown_fps": float(shown_fps),
            "dropped": int(src.get("dropped", 0)) + self.frames_superseded,
            "latency_ms": float(statistics.median(lat)) if lat else None,
            "latency_p95_ms": float(np.percentile(lat, 95)) if lat else None,
            "frames_shown": self.frames_shown,
            "frames_made": int(src.get("frames", 0)),
            "frame_id": self.last_frame.id if self.last_frame is not None else None,
            "max_pending": int(self.window.worker.max_pending),
        }

    def latencies_ms(self) -> list[float]:
        """Capture→display latency of every frame shown (newest last, at most 512)."""
        return list(self._latency_ms)

    def status_text(self) -> str:
        st = self.stats()
        if self._state == STARTING:
            return f"opening {st['source']}…"
        if self._state in (STILL,) or st["source"] is None:
            return ""
        if self._state == FAILED:
            return f"{st['source']}: stopped (error)"
        if self._state == STOPPED:
            return f"{st['source']}: stopped"
        lat = "—" if st["latency_ms"] is None else f"{st['latency_ms']:.0f} ms"
        extra = " · frozen" if self.frozen else (" · paused" if self.paused else "")
        return (f"source {st['source_fps']:.1f} fps · shown {st['shown_fps']:.1f} fps · "
                f"dropped {st['dropped']} · latency {lat}{extra}")

    def _emit_stats(self) -> None:
        if self._closed:
            return
        self.statsUpdated.emit(self.stats())

    def _reset_counters(self) -> None:
        self._inflight.clear()
        self._shown_at.clear()
        self._latency_ms.clear()
        self.frames_shown = self.frames_delivered = self.frames_superseded = 0
        self.last_frame = None

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
