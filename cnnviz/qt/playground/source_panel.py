"""The Source panel: still image, webcam, video file or test pattern, and the stream controls.

A view of a :class:`~cnnviz.qt.playground.live.LiveController`: the widgets call the controller's
methods, and the controller's signals update the widgets with their signals blocked (so
a programmatic update never echoes back as a user action).

Run it on its own as a preview (a bare controller without a window is not possible, so
it opens the whole playground)::

    python -m cnnviz.qt.playground.source_panel
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDockWidget, QFileDialog, QFrame, QGridLayout, QHBoxLayout, QLabel,
                               QPushButton, QSizePolicy, QSlider, QToolButton, QVBoxLayout, QWidget)

from ..colors import ERROR_RED, mute
from .live import FAILED, LIVE, RESOLUTIONS, STARTING, STILL, STOPPED, VIDEO_EXTENSIONS

if TYPE_CHECKING:  # pragma: no cover
    from cnnviz.core.sources import CameraInfo

    from .live import LiveController

__all__ = ["KINDS", "SourcePanel"]

#: (key, title) of the source kinds offered, in menu order.
KINDS: tuple[tuple[str, str], ...] = (
    ("still", "Still image"),
    ("webcam", "Webcam"),
    ("video", "Video file"),
    ("pattern", "Test pattern (1280×720, 30 fps)"),
)

NO_CAMERA_TEXT = ("No camera found. Plug one in (and close other apps that use it), then press "
                  "Refresh. The still image stays in the meantime.")


def _blocked(*widgets: QWidget) -> list[QSignalBlocker]:
    return [QSignalBlocker(w) for w in widgets]


class SourcePanel(QWidget):
    """Choose the source and control the stream.

    Object names (for tests and style sheets): ``source-kind``, ``camera-list``,
    ``camera-refresh``, ``camera-resolution``, ``no-camera``, ``video-open``, ``video-file``,
    ``video-play``, ``video-seek``, ``video-position``, ``video-loop``, ``source-start``,
    ``source-stop``, ``source-freeze``, ``source-step``, ``source-mirror``, ``source-snapshot``,
    ``source-fast``, ``source-state``, ``source-error``, ``source-error-text``, ``source-reconnect``,
    ``source-stats``.
    """

    def __init__(self, controller: LiveController, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("live-source-panel")
        self.controller = controller
        self.video_path: Path | None = None
        self._last_kind = controller.kind
        self._start_after_probe = False
        self._build()
        c = controller
        c.stateChanged.connect(self._sync)
        c.camerasChanged.connect(self._on_cameras)
        c.statsUpdated.connect(self._on_stats)
        c.positionChanged.connect(self._on_position)
        c.frameShown.connect(self._on_frame_shown)
        self._sync()

    # ----------------------------------------------------------------------------------
    # construction
    # ----------------------------------------------------------------------------------
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(5)

        row = QHBoxLayout()
        row.addWidget(QLabel("Input"))
        self.kind_box = QComboBox()
        self.kind_box.setObjectName("source-kind")
        for key, title in KINDS:
            self.kind_box.addItem(title, key)
        self.kind_box.setToolTip("Where the pictures come from")
        self.kind_box.currentIndexChanged.connect(self._on_kind)
        row.addWidget(self.kind_box, 1)
        lay.addLayout(row)

        # -- webcam
        self.webcam_box = QWidget()
        g = QGridLayout(self.webcam_box)
        g.setContentsMargins(0, 0, 0, 0)
        g.setSpacing(4)
        g.addWidget(QLabel("Camera"), 0, 0)
        self.camera_box = QComboBox()
        self.camera_box.setObjectName("camera-list")
        self.camera_box.setToolTip("Cameras that opened and delivered a picture")
        self.camera_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.camera_box.setMinimumContentsLength(10)
        g.addWidget(self.camera_box, 0, 1)
        self.refresh_button = QToolButton()
        self.refresh_button.setObjectName("camera-refresh")
        self.refresh_button.setText("Refresh")
        self.refresh_button.setToolTip("Look for cameras again (opens each one briefly)")
        self.refresh_button.clicked.connect(self.controller.refresh_cameras)
        g.addWidget(self.refresh_button, 0, 2)
        g.addWidget(QLabel("Size"), 1, 0)
        self.resolution_box = QComboBox()
        self.resolution_box.setObjectName("camera-resolution")
        for label, w, h in RESOLUTIONS:
            self.resolution_box.addItem(label, (w, h))
        self.resolution_box.setToolTip("The camera picks the nearest size it supports; "
                                       "smaller sizes keep the pipeline at camera rate on slow machines")
        g.addWidget(self.resolution_box, 1, 1, 1, 2)
        self.no_camera = QLabel(NO_CAMERA_TEXT)
        self.no_camera.setObjectName("no-camera")
        self.no_camera.setWordWrap(True)
        mute(self.no_camera)
        g.setColumnStretch(1, 1)
        lay.addWidget(self.webcam_box)
        lay.addWidget(self.no_camera)

        # -- video file
        self.video_box = QWidget()
        v = QGridLayout(self.video_box)
        v.setContentsMargins(0, 0, 0, 0)
        v.setSpacing(4)
        self.open_video_button = QPushButton("Open video…")
        self.open_video_button.setObjectName("video-open")
        self.open_video_button.setToolTip("Any file OpenCV can read: MP4 (H.264), AVI (MJPG), MOV, MKV, WebM…")
        self.open_video_button.clicked.connect(self.choose_video)
        v.addWidget(self.open_video_button, 0, 0)
        self.video_label = QLabel("no file")
        self.video_label.setObjectName("video-file")
        self.video_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        v.addWidget(self.video_label, 0, 1, 1, 2)
        self.play_button = QToolButton()
        self.play_button.setObjectName("video-play")
        self.play_button.setText("Pause")
        self.play_button.setToolTip("Play or pause the video")
        self.play_button.clicked.connect(self.controller.toggle_play)
        v.addWidget(self.play_button, 1, 0)
        self.seek_slider = QSlider(Qt.Orientation.Horizontal)
        self.seek_slider.setObjectName("video-seek")
        self.seek_slider.setToolTip("Drag to seek (works while paused)")
        self.seek_slider.setRange(0, 0)
        self.seek_slider.valueChanged.connect(self._on_seek)
        v.addWidget(self.seek_slider, 1, 1)
        self.position_label = QLabel("–")
        self.position_label.setObjectName("video-position")
        self.position_label.setMinimumWidth(70)
        self.position_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        v.addWidget(self.position_label, 1, 2)
        self.loop_box = QCheckBox("Loop")
        self.loop_box.setObjectName("video-loop")
        self.loop_box.setChecked(True)
        self.loop_box.setToolTip("Start again at the first frame when the video ends")
        self.loop_box.toggled.connect(self.controller.set_loop)
        v.addWidget(self.loop_box, 2, 0, 1, 3)
        v.setColumnStretch(1, 1)
        lay.addWidget(self.video_box)

        # -- stream controls
        row1 = QHBoxLayout()
        row1.setSpacing(3)
        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("source-start")
        self.start_button.setToolTip("Start the chosen source (F6)")
        self.start_button.clicked.connect(self.start_selected)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("source-stop")
        self.stop_button.setToolTip("Stop the source; the last frame stays on screen (F6)")
        self.stop_button.clicked.connect(self.controller.stop)
        self.freeze_button = QPushButton("Freeze")
        self.freeze_button.setObjectName("source-freeze")
        self.freeze_button.setCheckable(True)
        self.freeze_button.setToolTip("Keep the current frame on screen (Space)")
        self.freeze_button.toggled.connect(self.controller.set_frozen)
        self.step_button = QPushButton("Step")
        self.step_button.setObjectName("source-step")
        self.step_button.setToolTip("While frozen or paused: show exactly one more frame (Shift+Space)")
        self.step_button.clicked.connect(self.controller.step)
        for b in (self.start_button, self.stop_button, self.freeze_button, self.step_button):
            row1.addWidget(b)
        lay.addLayout(row1)
        row2 = QHBoxLayout()
        row2.setSpacing(3)
        self.mirror_box = QCheckBox("Mirror")
        self.mirror_box.setObjectName("source-mirror")
        self.mirror_box.setToolTip("Flip the picture left-right, like a mirror")
        self.mirror_box.toggled.connect(self.controller.set_mirror)
        self.snapshot_button = QPushButton("Snapshot → still")
        self.snapshot_button.setObjectName("source-snapshot")
        self.snapshot_button.setToolTip("Keep the frame on screen as the still image (the stream stops)")
        self.snapshot_button.clicked.connect(self.controller.snapshot)
        row2.addWidget(self.mirror_box)
        row2.addStretch(1)
        row2.addWidget(self.snapshot_button)
        lay.addLayout(row2)
        self.fast_box = QCheckBox("Fast live view (no histograms while live)")
        self.fast_box.setObjectName("source-fast")
        self.fast_box.setChecked(self.controller.fast_live)
        self.fast_box.setToolTip("Hide the output histograms while a source runs: redrawing them for every "
                                 "frame costs more than the convolution. They come back when it stops.")
        self.fast_box.toggled.connect(self.controller.set_fast_live)
        lay.addWidget(self.fast_box)

        # -- state, errors, numbers
        self.state_label = QLabel("")
        self.state_label.setObjectName("source-state")
        self.state_label.setWordWrap(True)
        lay.addWidget(self.state_label)
        self.error_box = QFrame()
        self.error_box.setObjectName("source-error")
        self.error_box.setStyleSheet(f"QFrame#source-error {{ border: 1px solid {ERROR_RED}; border-radius: 4px; }}")
        e = QVBoxLayout(self.error_box)
        e.setContentsMargins(6, 4, 6, 4)
        self.error_text = QLabel("")
        self.error_text.setObjectName("source-error-text")
        self.error_text.setWordWrap(True)
        self.error_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_text.setStyleSheet("border: none;")
        e.addWidget(self.error_text)
        self.reconnect_button = QPushButton("Reconnect")
        self.reconnect_button.setObjectName("source-reconnect")
        self.reconnect_button.setToolTip("Open the source again")
        self.reconnect_button.clicked.connect(self.controller.reconnect)
        e.addWidget(self.reconnect_button, 0, Qt.AlignmentFlag.AlignLeft)
        lay.addWidget(self.error_box)
        self.stats_label = QLabel("")
        self.stats_label.setObjectName("source-stats")
        self.stats_label.setWordWrap(True)
        mute(self.stats_label)
        lay.addWidget(self.stats_label)
        lay.addStretch(1)

    # ----------------------------------------------------------------------------------
    # user actions
    # ----------------------------------------------------------------------------------
    def selected_kind(self) -> str:
        return str(self.kind_box.currentData())

    def set_kind(self, kind: str) -> None:
        """Select a kind as the user would (the webcam kind probes for cameras once)."""
        idx = self.kind_box.findData(kind)
        if idx >= 0:
            self.kind_box.setCurrentIndex(idx)

    def choose_webcam(self) -> None:
        """Menu "Webcam…": show the camera choices and start the chosen camera (after the
        first probe, if it finds one)."""
        self.set_kind("webcam")
        self._raise_dock()
        cams = self.controller.cameras
        if cams is None or self.controller.probing:
            self._start_after_probe = True
            if not self.controller.probing:
                self.controller.refresh_cameras()
        elif cams:
            self.start_selected()
        else:  # none last time: look again (and start one if it is there now)
            self._start_after_probe = True
            self.controller.refresh_cameras()

    def choose_video(self) -> None:
        """Ask for a video file and play it."""
        exts = " ".join(f"*{e}" for e in VIDEO_EXTENSIONS)
        start = str(self.video_path.parent) if self.video_path else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open video", start, f"Videos ({exts});;All files (*)")
        if path:
            self.play_video(path)

    def play_video(self, path: str | Path) -> None:
        self.video_path = Path(path)
        self.video_label.setText(self.video_path.name)
        self.video_label.setToolTip(str(self.video_path))
        self.set_kind("video")
        self.controller.open_video(self.video_path, loop=self.loop_box.isChecked())

    def start_selected(self) -> None:
        """Start (or restart) the source chosen in the panel."""
        c = self.controller
        kind = self.selected_kind()
        src = c.source
        if kind == "still":
            c.window.show_message("Choose Webcam, Video file or Test pattern under Input, then Start")
        elif kind == "webcam":
            cams = c.cameras or []
            if not cams:
                if c.cameras is None:
                    self._start_after_probe = True
                    c.refresh_cameras()
                else:
                    c.window.show_message("No camera found: plug one in, then press Refresh", error=True)
                return
            info = cams[max(0, self.camera_box.currentIndex())] if self.camera_box.currentIndex() < len(cams) else cams[0]
            w, h = self.resolution_box.currentData() or (None, None)
            if (c.kind == "webcam" and getattr(src, "index", None) == info.index
                    and getattr(src, "requested_size", None) == (w, h)):
                c.start()
            else:
                c.start_webcam(info.index, w, h)
        elif kind == "video":
            if c.kind == "video" and self.video_path is not None and getattr(src, "path", None) == self.video_path:
                if c.paused:
                    c.play()
                c.start()
            elif self.video_path is not None:
                c.open_video(self.video_path, loop=self.loop_box.isChecked())
            else:
                self.choose_video()
        elif kind == "pattern":
            if c.kind == "pattern":
                c.start()
            else:
                c.start_pattern()

    def _on_kind(self, _index: int) -> None:
        kind = self.selected_kind()
        if kind == "still":
            if self.controller.state != STILL:
                self.controller.show_still()
        elif kind == "webcam" and self.controller.cameras is None and not self.controller.probing:
            self.controller.refresh_cameras()
        self._sync()

    def _on_seek(self, value: int) -> None:
        self.controller.seek(value)

    def _raise_dock(self) -> None:
        w = self.parentWidget()
        while w is not None and not isinstance(w, QDockWidget):
            w = w.parentWidget()
        if w is not None:
            w.show()
            w.raise_()

    # ----------------------------------------------------------------------------------
    # controller → widgets
    # ----------------------------------------------------------------------------------
    def _on_cameras(self, cams: list[CameraInfo]) -> None:
        with_blocked = _blocked(self.camera_box)
        self.camera_box.clear()
        for cam in cams or []:
            self.camera_box.addItem(f"{cam.name} ({cam.height}×{cam.width})", cam.index)
        del with_blocked
        if cams and self._start_after_probe:
            self._start_after_probe = False
            self.set_kind("webcam")
            self.start_selected()
        self._start_after_probe = False
        self._sync()

    def _on_stats(self, st: dict[str, Any]) -> None:
        self.stats_label.setText(self.controller.status_text())

    def _on_position(self, index: int, count: int) -> None:
        if self.seek_slider.isSliderDown():
            return
        with_blocked = _blocked(self.seek_slider)
        if count > 0 and self.seek_slider.maximum() != count - 1:
            self.seek_slider.setRange(0, count - 1)
        self.seek_slider.setValue(index)
        del with_blocked
        total = f"{count}" if count > 0 else "?"
        self.position_label.setText(f"{index + 1} / {total}")

    def _on_frame_shown(self, _fid: int) -> None:
        if not self.snapshot_button.isEnabled():
            self._sync()

    def _sync(self) -> None:
        c = self.controller
        state, kind = c.state, c.kind
        if kind != self._last_kind:
            # the source changed (menu, snapshot, a picture opened): show what runs now
            self._last_kind = kind
            if kind != "capture":
                with_blocked = _blocked(self.kind_box)
                self.kind_box.setCurrentIndex(max(0, self.kind_box.findData(kind)))
                del with_blocked
        chosen = self.selected_kind()
        running = state in (LIVE, STARTING)
        src = c.source

        self.webcam_box.setVisible(chosen == "webcam")
        cams = c.cameras
        probing = c.probing
        if probing:
            self.camera_box.setPlaceholderText("Looking for cameras…")
        elif cams is not None and not cams:
            self.camera_box.setPlaceholderText("No camera found")
        else:
            self.camera_box.setPlaceholderText("Press Refresh")
        self.camera_box.setEnabled(bool(cams) and not probing)
        self.refresh_button.setEnabled(not probing)
        self.no_camera.setVisible(chosen == "webcam" and cams is not None and not cams and not probing)
        self.resolution_box.setEnabled(not probing)

        self.video_box.setVisible(chosen == "video")
        is_video = c.is_video and state != STILL
        self.play_button.setEnabled(is_video)
        self.play_button.setText("Play" if (c.paused or state in (STOPPED, FAILED)) else "Pause")
        self.seek_slider.setEnabled(is_video and bool(c.frame_count()))
        if is_video and c.frame_count():
            with_blocked = _blocked(self.seek_slider)
            self.seek_slider.setRange(0, max(0, (c.frame_count() or 1) - 1))
            del with_blocked
        if is_video and src is not None:
            self.video_label.setText(src.name)
        with_blocked = _blocked(self.loop_box)
        if is_video:
            self.loop_box.setChecked(bool(getattr(src, "loop", True)))
        del with_blocked

        # Start also switches: with another kind chosen than the one running, it replaces it
        startable = (chosen != "still" and (not running or chosen != kind)
                     and not (chosen == "webcam" and cams == [] and not probing))
        self.start_button.setEnabled(startable)
        self.stop_button.setEnabled(running)
        with_blocked = _blocked(self.freeze_button, self.mirror_box, self.fast_box)
        self.freeze_button.setEnabled(state == LIVE)
        self.freeze_button.setChecked(c.frozen)
        self.mirror_box.setChecked(c.mirror)
        self.fast_box.setChecked(c.fast_live)
        del with_blocked
        self.step_button.setEnabled(state == LIVE and (c.frozen or c.paused))
        self.snapshot_button.setEnabled(c.last_frame is not None and state != STILL)

        name = src.name if src is not None else ""
        if state == STILL:
            text = "Showing the still image."
        elif state == STARTING:
            text = f"Opening {name}…"
        elif state == LIVE:
            size = getattr(src, "frame_size", None)
            text = f"Live: <b>{name}</b>" + (f" {size[0]}×{size[1]}" if size else "")
            if c.frozen:
                text += " — frozen"
            elif c.paused:
                text += " — paused"
        elif state == STOPPED:
            text = f"Stopped: {name} (the last frame stays)."
        else:
            text = f"Stopped: {name}." if name else "Could not start."
        self.state_label.setText(text)

        err = c.last_error
        show_err = state == FAILED and err is not None
        self.error_box.setVisible(show_err)
        if show_err:
            fix = f"<br><i>Fix:</i> {err.fix}" if getattr(err, "fix", "") else ""
            self.error_text.setText(f"<b>{getattr(err, 'cause', str(err))}</b>{fix}")
        self.reconnect_button.setEnabled(src is not None)
        self.stats_label.setText(c.status_text())


if __name__ == "__main__":  # pragma: no cover - a preview: the playground with live sources
    import sys

    from ..app import create_app
    from .live_actions import install_live_sources
    from .window import MainWindow

    app = create_app()
    win = MainWindow(load_settings_file=False)
    if getattr(win, "live", None) is None:
        install_live_sources(win)
    win.show()
    sys.exit(app.exec())
