"""The LiveController's controls that need no source lifecycle: freeze/step/mirror, video
playback (play, pause, seek, loop), the camera list and the fps/latency stats + status text.

Split out of :mod:`cnnviz.qt.playground.live` (a mixin, like the window's ``PictureInput``);
:class:`~cnnviz.qt.playground.live.LiveController` is the only class that uses it. The state
names and the macOS camera-permission helper live here too (``live`` re-exports them).
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QCoreApplication, QObject, Qt, Signal, Slot

from cnnviz.core.errors import SourceError
from cnnviz.core.sources import CameraInfo, CaptureSource, FrameSource

from ..workers import run_in_thread

#: Controller states (``LiveController.state``).
STILL = "still"        # the window shows a still picture; no source running
STARTING = "starting"  # a source is opening (camera open can take seconds)
LIVE = "live"          # frames are flowing
STOPPED = "stopped"    # stopped by the user (or the video ended): the last frame stays
FAILED = "error"       # the source failed to open or its watchdog stopped it

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
# the controls (a mixin of LiveController)
# ---------------------------------------------------------------------------------------
class LiveControls:
    """Still/snapshot, freeze/playback, cameras and stats for :class:`~cnnviz.qt.playground.live.LiveController`."""

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
