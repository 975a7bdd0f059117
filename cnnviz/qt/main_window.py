"""The kernel playground window: paint a kernel, watch the edges appear.

Data walks one way: **picture → frozen request → worker → result → views**. Every kernel
edit, parameter change or new picture makes a new :class:`~cnnviz.core.conv.PipelineRequest`;
the one :class:`~cnnviz.qt.workers.LatestRequestWorker` computes it off the GUI thread with
:func:`compute_playground` (a pure, module-level function tests can call without a window)
and the views only ever paint what came back. Never more than one computation waits: a
kernel drag that fires dozens of edits a second replaces the waiting request.

Headless API (tests and ``cnnviz bench --gui``)
-----------------------------------------------
``MainWindow.worker``            the worker, with counters ``submitted/completed/dropped/max_pending``
``MainWindow.resultShown(int)``  emitted after the views painted the result of that request id
``open_image(path)``, ``open_sample(name)``, ``paste_from_clipboard()``, ``set_frame(pixels)``
``current_result()``, ``current_request()``, ``current_image()``, ``displayed_array(stage)``
``explain_pixel(stage, y, x, kernel=0)``, ``last_explanation``, ``status_text()``
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QByteArray, QMimeData, QRectF, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QActionGroup, QGuiApplication, QImage, QKeySequence
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QDockWidget, QFileDialog, QHBoxLayout,
                               QLabel, QMainWindow, QMessageBox, QPlainTextEdit, QPushButton, QScrollArea,
                               QSplitter, QToolButton, QVBoxLayout, QWidget)

import cnnviz
from cnnviz.core.conv import PipelineRequest, PipelineResult, prepare_input, run_pipeline, shutdown_band_pool
from cnnviz.core.dotproduct import (ConvPixelExplanation, PoolPixelExplanation, explain_conv_pixel,
                                    explain_pool_pixel, pool_window_to_input)
from cnnviz.core.errors import CnnvizError, ImageLoadError, SpecError
from cnnviz.core.images import (BOMB_FACTOR, DEFAULT_MAX_PIXELS, SUPPORTED_EXTENSIONS, image_from_array,
                                 load_image, probe_image, save_png)
from cnnviz.core.kernels import RESOURCES, Kernel, preset
from cnnviz.core.render import colorize, to_uint8

from .learn_panel import install_learn_panel
from .live import install_live_sources
from . import app as qtapp
from .animate_panel import AnimatePanel
from .explain_panel import ExplainPanel
from .kernel_bank import KernelBank
from .kernel_editor import GESTURES_HELP, KernelEditor
from .params_panel import ParamsPanel
from .settings import PlaygroundParams, Settings, load_settings, save_settings, settings_path
from .views import MAGNITUDE, MOSAIC, RGB, DisplayFrame, DisplaySettings, OutputViews, StageImage, display_frame
from .weight_sharing import WeightSharingPanel
from .workers import LatestRequestWorker

SAMPLES_DIR = RESOURCES / "samples"
SAMPLES: dict[str, str] = {"photo": "Photo", "pattern": "Test pattern", "digit": "Handwritten digit",
                           "checkerboard": "Checkerboard"}
DEFAULT_SAMPLE = "photo"
DEFAULT_PRESET = "sobel-x"
#: Pictures are shown at most this large on their longest side so edits stay live.
LIVE_MAX_SIDE = 2048
#: Pictures with more pixels than this open only after the user agrees to a downscale
#: (the core's default limit; a full decode would need gigabytes).
ASK_DOWNSCALE_PIXELS = DEFAULT_MAX_PIXELS
STATUS_MS = 12_000


# ---------------------------------------------------------------------------------------
# The computation (worker thread): pure functions of a frozen job
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlaygroundJob:
    """One computation: the picture, the request and the device."""

    image: np.ndarray        # (H, W) or (H, W, 3|4); never written to
    image_key: int           # changes whenever the picture does (prepared-input cache key)
    request: PipelineRequest
    device: str = "cpu"
    display: DisplaySettings | None = None   # colour the result for the views, too
    # the input view's picture of this image, when the worker already made it (a cache
    # the worker fills in: a kernel edit does not re-colour the unchanged input)
    input_image: StageImage | None = None


@dataclass
class PlaygroundOutput:
    job: PlaygroundJob
    result: PipelineResult
    stats: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    display: DisplayFrame | None = None       # the views' pictures, when the job asked


def stage_stats(result: PipelineResult, robust: float = 99.5,
                max_samples: int = 65_536) -> dict[str, tuple[float, float, float, float]]:
    """Display statistics of every stage over all kernels: ``(min, max, lo, hi)``.

    ``lo, hi`` are robust auto levels: ±(the ``robust`` percentile of |x|) for signed maps,
    the (100 − robust, robust) percentiles otherwise, from at most ``max_samples`` evenly
    strided values. With plain ±max, one bright edge would leave every other edge
    near-white on a diverging map; the histogram still shows the full range.
    """
    out: dict[str, tuple[float, float, float, float]] = {}
    seen: dict[int, tuple[float, float, float, float]] = {}
    for name, arr in (("conv", result.conv), ("activation", result.activation), ("pool", result.pool),
                      ("magnitude", result.magnitude)):
        if arr is None or arr.size == 0:
            continue
        if id(arr) in seen:  # no activation: the activated map is the conv map itself
            out[name] = seen[id(arr)]
            continue
        lo, hi = float(arr.min()), float(arr.max())
        if not (np.isfinite(lo) and np.isfinite(hi)):
            continue
        flat = arr.reshape(-1)
        sample = flat[:: max(1, flat.size // max_samples)]
        n = sample.size
        if lo < 0.0:
            k = min(n - 1, int(round(robust / 100.0 * (n - 1))))
            m = float(np.partition(np.abs(sample), k)[k])
            if m <= 0.0:
                m = max(-lo, hi)
            stat = (lo, hi, -m, m)
        else:
            k_lo = min(n - 1, int(round((100.0 - robust) / 100.0 * (n - 1))))
            k_hi = min(n - 1, int(round(robust / 100.0 * (n - 1))))
            part = np.partition(sample, (k_lo, k_hi))
            rlo, rhi = float(part[k_lo]), float(part[k_hi])
            stat = (lo, hi, rlo, rhi) if rhi > rlo else (lo, hi, lo, hi)
        seen[id(arr)] = out[name] = stat
    return out


def compute_playground(job: PlaygroundJob, prepared: np.ndarray | None = None) -> PlaygroundOutput:
    """Run the pipeline for ``job``, the display statistics and — when ``job.display`` is
    set — the views' coloured pictures (pure; any thread), so the GUI thread only blits."""
    result = run_pipeline(job.image, job.request, device=job.device, prepared=prepared)
    stats = stage_stats(result)
    display = None
    if job.display is not None:
        display = display_frame(result, job.request, stats, job.display, job.input_image)
    return PlaygroundOutput(job, result, stats, display)


class PlaygroundComputer:
    """The worker's compute function: :func:`compute_playground` with the prepared input of
    the last picture cached (a colour→grey conversion per edit would be wasted work).
    Only the worker thread calls it."""

    def __init__(self) -> None:
        self._key: tuple[int, str] | None = None
        self._prepared: np.ndarray | None = None
        self._input_image: StageImage | None = None

    def __call__(self, job: PlaygroundJob) -> PlaygroundOutput:
        key = (job.image_key, job.request.conv.channels)
        if key != self._key or self._prepared is None:
            self._prepared = prepare_input(job.image, job.request.conv.channels)
            self._key = key
            self._input_image = None
        if self._input_image is not None and job.display is not None:
            job = replace(job, input_image=self._input_image)
        out = compute_playground(job, self._prepared)
        if out.display is not None:
            self._input_image = out.display.stages.get("input")
        return out


# ---------------------------------------------------------------------------------------
# Clipboard / drop helpers
# ---------------------------------------------------------------------------------------
_ENCODED_MIME = ("image/png", "image/jpeg", "image/bmp", "image/tiff", "image/webp")


def qimage_to_array(img: QImage) -> np.ndarray:
    """A QImage as a numpy array: (H, W) for grey formats, (H, W, 3) RGB or (H, W, 4) RGBA.

    The bytes are copied, so the array does not share memory with the QImage.
    """
    fmt = img.format()
    if fmt in (QImage.Format.Format_Grayscale8, QImage.Format.Format_Grayscale16):
        img = img.convertToFormat(QImage.Format.Format_Grayscale8)
        channels = 1
    elif img.hasAlphaChannel():
        img = img.convertToFormat(QImage.Format.Format_RGBA8888)
        channels = 4
    else:
        img = img.convertToFormat(QImage.Format.Format_RGB888)
        channels = 3
    h, w, bpl = img.height(), img.width(), img.bytesPerLine()
    buf = np.frombuffer(img.constBits(), dtype=np.uint8, count=h * bpl).reshape(h, bpl)
    arr = buf[:, : w * channels].reshape(h, w, channels) if channels > 1 else buf[:, :w]
    return np.array(arr, copy=True)


def array_to_qimage(rgb: np.ndarray) -> QImage:
    """(H, W, 3) uint8 → an independent QImage (copied: the numpy buffer may go away)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def _local_image_paths(mime: QMimeData) -> list[Path]:
    out = []
    if mime.hasUrls():
        for url in mime.urls():
            if url.isLocalFile():
                out.append(Path(url.toLocalFile()))
    elif mime.hasText():
        t = mime.text().strip()
        if t.startswith("file://"):
            out.append(Path(QUrl(t).toLocalFile()))
        elif t and "\n" not in t and len(t) < 4096 and Path(t).suffix.lower() in SUPPORTED_EXTENSIONS:
            out.append(Path(t))
    return out


# ---------------------------------------------------------------------------------------
# The window
# ---------------------------------------------------------------------------------------
class MainWindow(QMainWindow):
    """The kernel playground.

    Parameters
    ----------
    image:
        A picture to open instead of the last one (or the photo sample on the first run).
    settings_file:
        Where settings are read and written (default: ``settings_path()``).
    load_settings_file:
        False starts from defaults without reading the file (it is still written on close).

    Signals
    -------
    resultShown(int request_id)
        The views now show the result of that request.
    imageChanged()
        A new picture was loaded (file, sample, paste, drop or frame).
    """

    resultShown = Signal(int)
    imageChanged = Signal()
    _aboutDevices = Signal(list)   # from the About box's probe thread

    def __init__(self, image: str | None = None, *, settings_file: str | Path | None = None,
                 load_settings_file: bool = True, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("playground")
        self.setWindowTitle("cnnviz — kernel playground")
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        self._settings_file = Path(settings_file) if settings_file is not None else settings_path()
        settings, settings_msg = load_settings(self._settings_file) if load_settings_file else (Settings(), None)
        self.settings: Settings = settings
        self._closing = False
        self._image: np.ndarray | None = None
        self._image_key = 0
        self._image_label = ""
        self._image_path: str | None = None
        self._image_source = ""          # "file", "sample:<name>", "clipboard", "drop", "frame"
        self._kernels: tuple[Kernel, ...] = ()
        self._selected = 0
        self._pair: tuple[int, int] | None = None
        self._params = PlaygroundParams()
        self._device = "cpu"
        self._output: PlaygroundOutput | None = None
        self._pinned: tuple[str, int, int, int] | None = None
        self._hovered: tuple[str, int, int, int] | None = None
        self.last_explanation: ConvPixelExplanation | PoolPixelExplanation | None = None
        self.last_message = ""
        self._transient_error = ""
        self._dialogs: list[QWidget] = []
        self._shown_at: dict[int, float] = {}
        self._about_box: QMessageBox | None = None
        self._about_devices: list[str] | None = None   # torch build and GPUs, once probed
        self._about_probe_running = False
        self._aboutDevices.connect(self._on_about_devices)

        self.worker = LatestRequestWorker(PlaygroundComputer(), self, name="cnnviz-playground")
        self.worker.resultReady.connect(self._on_result)
        self.worker.errorRaised.connect(self._on_worker_error)
        self._submit_timer = QTimer(self)
        self._submit_timer.setSingleShot(True)
        self._submit_timer.setInterval(0)
        self._submit_timer.timeout.connect(self._submit)

        self._build_widgets()
        self._build_docks()
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_statusbar()
        self.live = install_live_sources(self)  # Source menu, "Live source" dock, live status label
        install_learn_panel(self)  # the Learn dock: one button per lesson
        self.resize(1560, 980)
        self._default_state = self.saveState()

        theme = self.settings.theme
        self.apply_theme(theme, save=False)
        app = QGuiApplication.instance()
        if app is not None:
            try:
                app.styleHints().colorSchemeChanged.connect(self._on_system_scheme)
            except AttributeError:  # Qt < 6.5
                pass

        self._restore_from_settings()
        opened = False
        if image is not None:
            opened = self.open_image(image)
        elif self.settings.last_image:
            last = self.settings.last_image
            if last.startswith("sample:"):
                opened = self.open_sample(last.split(":", 1)[1], quiet=True)
            elif Path(last).is_file():
                opened = self.open_image(last, quiet=True)
        if not opened:
            self.open_sample(DEFAULT_SAMPLE, quiet=True)
        if settings_msg:
            self.show_message(settings_msg, error=True)

    # ===================================================================================
    # construction
    # ===================================================================================
    def _build_widgets(self) -> None:
        self.outputs = OutputViews()
        self.outputs.pixelHovered.connect(lambda s, k, y, x: self._on_pointer(s, k, y, x, clicked=False))
        self.outputs.pixelClicked.connect(lambda s, k, y, x: self._on_pointer(s, k, y, x, clicked=True))
        self.outputs.pointerLeft.connect(self._on_pointer_left)
        self.outputs.inputHovered.connect(self._on_input_hovered)
        self.outputs.displayChanged.connect(self._on_display_changed)

        self.params_panel = ParamsPanel()
        self.params_panel.paramsChanged.connect(self._on_params)
        self.params_panel.paramsInvalid.connect(lambda err: self.show_error(err, "Parameters", transient=True))

        self.kernel_editor = KernelEditor()
        self.kernel_bank = KernelBank()
        self.kernel_editor.kernelChanged.connect(self._on_editor_kernel)
        self.kernel_editor.bankRequested.connect(self._on_bank_requested)
        self.kernel_bank.bankChanged.connect(self._on_bank_changed)

        self.explain_panel = ExplainPanel()
        self.animate_panel = AnimatePanel()
        self.weight_panel = WeightSharingPanel()
        self.source_panel = self._build_source_panel()

    def _build_source_panel(self) -> QWidget:
        w = QWidget()
        w.setObjectName("source")
        lay = QVBoxLayout(w)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(4)
        self.source_label = QLabel("")
        self.source_label.setObjectName("source-label")
        self.source_label.setWordWrap(True)
        self.source_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.source_label)
        row = QHBoxLayout()
        row.setSpacing(3)
        open_b = QPushButton("Open…")
        open_b.setToolTip("Open an image file (or drop one on the window, or paste with Ctrl+V)")
        open_b.clicked.connect(self.open_image_dialog)
        paste_b = QPushButton("Paste")
        paste_b.setToolTip("Use the image (or image file) on the clipboard")
        paste_b.clicked.connect(self.paste_from_clipboard)
        row.addWidget(open_b)
        row.addWidget(paste_b)
        lay.addLayout(row)
        row2 = QHBoxLayout()
        row2.addWidget(QLabel("Sample"))
        self.sample_box = QComboBox()
        self.sample_box.setObjectName("samples")
        self.sample_box.setToolTip("Open one of the bundled pictures: a photo, a test pattern with edges in every "
                                   "direction, or a handwritten digit the demo model knows.")
        self.sample_box.addItem("—", "")
        for key, title in SAMPLES.items():
            self.sample_box.addItem(title, key)
        self.sample_box.activated.connect(self._on_sample_box)
        row2.addWidget(self.sample_box, 1)
        lay.addLayout(row2)
        hint = QLabel("Drop an image file here or paste one (Ctrl+V).")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: palette(mid);")
        lay.addWidget(hint)
        lay.addStretch(1)
        return w

    def _dock(self, title: str, name: str, widget: QWidget, scroll: bool = False,
              horizontal: bool = True) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(f"dock-{name}")
        if scroll:
            area = QScrollArea()
            area.setWidgetResizable(True)
            area.setFrameShape(QScrollArea.Shape.NoFrame)
            area.setWidget(widget)
            if horizontal is False:
                area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
                area.setMinimumWidth(widget.minimumSizeHint().width() + area.verticalScrollBar().sizeHint().width() + 4)
            d.setWidget(area)
        else:
            d.setWidget(widget)
        d.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                      | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        return d

    def _build_docks(self) -> None:
        kernel_box = QSplitter(Qt.Orientation.Vertical)
        kernel_box.setObjectName("kernel-splitter")
        kernel_box.addWidget(self.kernel_bank)
        kernel_box.addWidget(self.kernel_editor)
        kernel_box.setStretchFactor(0, 1)
        kernel_box.setStretchFactor(1, 3)
        kernel_box.setChildrenCollapsible(False)
        kernel_box.setSizes([190, 560])
        self.dock_source = self._dock("Source", "source", self.source_panel)
        self.dock_kernel = self._dock("Kernel", "kernel", kernel_box)
        self.dock_params = self._dock("Parameters", "params", self.params_panel, scroll=True, horizontal=False)
        self.dock_outputs = self._dock("Outputs", "outputs", self.outputs)
        self.dock_explain = self._dock("Explain", "explain", self.explain_panel, scroll=True)
        self.dock_animate = self._dock("Animate", "animate", self.animate_panel)
        self.dock_weights = self._dock("Weight sharing", "weights", self.weight_panel, scroll=True)
        self.docks = [self.dock_source, self.dock_kernel, self.dock_params, self.dock_outputs, self.dock_explain,
                      self.dock_animate, self.dock_weights]

        # The outputs are a dock too (float them onto a second screen); the central widget
        # is an empty placeholder that takes no room.
        central = QWidget()
        central.setMaximumSize(0, 0)
        self.setCentralWidget(central)
        central.hide()
        L, R = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        self.setCorner(Qt.Corner.BottomLeftCorner, L)
        self.setCorner(Qt.Corner.BottomRightCorner, R)
        self.addDockWidget(L, self.dock_source)
        self.splitDockWidget(self.dock_source, self.dock_kernel, Qt.Orientation.Vertical)
        self.addDockWidget(R, self.dock_outputs)
        self.splitDockWidget(self.dock_outputs, self.dock_params, Qt.Orientation.Horizontal)
        self.splitDockWidget(self.dock_outputs, self.dock_explain, Qt.Orientation.Vertical)
        self.tabifyDockWidget(self.dock_explain, self.dock_animate)
        self.tabifyDockWidget(self.dock_animate, self.dock_weights)
        self.dock_explain.raise_()
        self.resizeDocks([self.dock_source, self.dock_kernel], [150, 700], Qt.Orientation.Vertical)
        self.resizeDocks([self.dock_source, self.dock_outputs, self.dock_params], [330, 930, 290],
                         Qt.Orientation.Horizontal)
        self.resizeDocks([self.dock_outputs, self.dock_explain], [640, 300], Qt.Orientation.Vertical)
        self.dock_animate.visibilityChanged.connect(self._on_animate_visible)

    def _action(self, text: str, slot, shortcut: Any = None, tip: str = "", name: str = "") -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            if isinstance(shortcut, (list, tuple)):
                a.setShortcuts([QKeySequence(s) for s in shortcut])
            else:
                a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setToolTip(tip)
            a.setStatusTip(tip)
        if name:
            a.setObjectName(name)
        a.triggered.connect(lambda _=False: slot())
        return a

    def _build_actions(self) -> None:
        self.act_open = self._action("&Open image…", self.open_image_dialog, QKeySequence.StandardKey.Open,
                                     "Open an image file", "open")
        self.act_paste = self._action("&Paste image", self.paste_from_clipboard, QKeySequence.StandardKey.Paste,
                                      "Use the image or image file on the clipboard", "paste")
        self.act_save_pngs = self._action("Save outputs as &PNGs…", self.save_pngs_dialog, "Ctrl+S",
                                          "Save each view as a PNG, coloured as shown", "save-pngs")
        self.act_save_npz = self._action("Save all outputs as .&npz…", self.save_npz_dialog, "Ctrl+Shift+S",
                                         "Save every stage's numbers (float32) in one .npz file", "save-npz")
        self.act_copy = self._action("&Copy output image", self.copy_to_clipboard, QKeySequence.StandardKey.Copy,
                                     "Copy the convolution view, coloured as shown", "copy")
        self.act_quit = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit, "Quit cnnviz", "quit")
        self.act_undo = self.kernel_editor.undoAction()
        self.act_redo = self.kernel_editor.redoAction()
        self.act_link = QAction("&Linked zoom", self)
        self.act_link.setObjectName("link-zoom")
        self.act_link.setCheckable(True)
        self.act_link.setChecked(self.outputs.is_linked())
        self.act_link.setShortcut(QKeySequence("Ctrl+L"))
        self.act_link.setToolTip("Zoom and pan all views together")
        self.act_link.toggled.connect(self.outputs.set_linked)
        self.outputs.link_box.toggled.connect(self.act_link.setChecked)
        self.act_fit = self._action("&Fit views", self.outputs.fit, "Ctrl+0", "Zoom every view to the whole image",
                                    "fit")
        self.act_reset_layout = self._action("&Reset layout", self.reset_layout, None,
                                             "Put every panel back where it started", "reset-layout")
        self.act_zoom_explained = self._action("&Zoom to explained pixel", self.zoom_to_explained, "Ctrl+E",
                                               "Zoom every view onto the window of the explained pixel", "zoom-explained")
        self.act_unpin = self._action("Unpin explained pixel", self.unpin, "Esc", "Follow the pointer again", "unpin")
        self.act_shortcuts = self._action("&Shortcuts and gestures", self.show_shortcuts, QKeySequence.StandardKey.HelpContents,
                                          "Keyboard shortcuts and the kernel editor's mouse gestures", "shortcuts")
        self.act_about = self._action("&About cnnviz", self.show_about, None, "Versions and credits", "about")
        self.act_inspector = self._action("Model &inspector", self.open_inspector, "Ctrl+M",
                                          "Open a trained model and see every layer's activations, weights, "
                                          "predictions and where it looked (opens on the demo digit model)",
                                          "inspector")
        self.act_inspect_image = self._action("Inspect this &image with the model", self.inspect_current_image,
                                              "Ctrl+Shift+M", "Feed the playground's current image to the model "
                                              "inspector", "inspect-image")
        self.theme_group = QActionGroup(self)
        self.theme_actions: dict[str, QAction] = {}
        for key, text in (("system", "Follow &system"), ("light", "&Light"), ("dark", "&Dark")):
            a = QAction(text, self)
            a.setCheckable(True)
            a.setObjectName(f"theme-{key}")
            a.triggered.connect(lambda _=False, k=key: self.apply_theme(k))
            self.theme_group.addAction(a)
            self.theme_actions[key] = a

    def _build_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.addAction(self.act_open)
        self.recent_menu = m.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self._fill_recent_menu()
        m.addAction(self.act_paste)
        self.samples_menu = m.addMenu("&Samples")
        for key, title in SAMPLES.items():
            a = self.samples_menu.addAction(title)
            a.setObjectName(f"sample-{key}")
            a.triggered.connect(lambda _=False, k=key: self.open_sample(k))
        m.addSeparator()
        m.addAction(self.act_save_pngs)
        m.addAction(self.act_save_npz)
        m.addAction(self.act_copy)
        m.addSeparator()
        m.addAction(self.act_quit)

        e = mb.addMenu("&Edit")
        e.addAction(self.act_undo)
        e.addAction(self.act_redo)
        e.addSeparator()
        e.addAction(self.act_copy)
        e.addAction(self.act_paste)

        v = mb.addMenu("&View")
        panels = self.panels_menu = v.addMenu("&Panels")
        for d in self.docks:
            panels.addAction(d.toggleViewAction())
        theme = v.addMenu("&Theme")
        for a in self.theme_actions.values():
            theme.addAction(a)
        v.addSeparator()
        v.addAction(self.act_link)
        v.addAction(self.act_fit)
        v.addAction(self.act_zoom_explained)
        v.addAction(self.act_unpin)
        v.addSeparator()
        v.addAction(self.act_reset_layout)

        mm = mb.addMenu("&Model")
        mm.addAction(self.act_inspector)
        mm.addAction(self.act_inspect_image)
        from .train import add_train_action  # noqa: PLC0415 - the Train window (torch loads when a run starts)
        self.act_train = add_train_action(self, mm, playground=self)

        h = mb.addMenu("&Help")
        h.addAction(self.act_shortcuts)
        h.addAction(self.act_about)

    def _build_toolbar(self) -> None:
        tb = self.addToolBar("Main")
        tb.setObjectName("toolbar-main")
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        tb.addAction(self.act_open)
        tb.addAction(self.act_paste)
        sb = QToolButton()
        sb.setText("Samples")
        sb.setObjectName("samples-button")
        sb.setToolTip("Open a bundled picture: a photo, an edge test pattern or a handwritten digit.")
        sb.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        sb.setMenu(self.samples_menu)
        tb.addWidget(sb)
        tb.addSeparator()
        tb.addAction(self.act_undo)
        tb.addAction(self.act_redo)
        tb.addSeparator()
        tb.addAction(self.act_save_pngs)
        tb.addAction(self.act_copy)
        tb.addSeparator()
        tb.addAction(self.act_link)
        tb.addAction(self.act_fit)
        tb.addSeparator()
        tb.addAction(self.act_inspector)
        self.toolbar = tb

    def _build_statusbar(self) -> None:
        sb = self.statusBar()
        self.status_image = QLabel("")
        self.status_image.setObjectName("status-image")
        self.status_shapes = QLabel("")
        self.status_shapes.setObjectName("status-shapes")
        self.status_time = QLabel("")
        self.status_time.setObjectName("status-time")
        self.status_device = QLabel("device: CPU")
        self.status_device.setObjectName("status-device")
        for w in (self.status_image, self.status_shapes, self.status_time, self.status_device):
            w.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            sb.addPermanentWidget(w)

    # ===================================================================================
    # settings
    # ===================================================================================
    def _restore_from_settings(self) -> None:
        s = self.settings
        kernels: list[Kernel] = []
        try:
            kernels = s.kernel_bank()
        except CnnvizError as err:
            self.show_error(err, "Saved kernels")
        if not kernels:
            kernels = [preset(DEFAULT_PRESET).kernel]
        sel = min(max(s.selected_kernel, 0), len(kernels) - 1)
        pair = s.magnitude_pair
        if pair is not None and not (0 <= pair[0] < len(kernels) and 0 <= pair[1] < len(kernels) and pair[0] != pair[1]):
            pair = None
        self._params = s.params
        self.params_panel.set_params(s.params)
        shown = self.params_panel.raw_params()
        if self.params_panel.error() is None and shown != s.params:
            # The controls clamp what a hand-edited file asks (padding 10⁹ becomes the spin
            # box's maximum): compute exactly what the panel shows, and say so.
            self.params_panel.set_params(shown)
            self._params = shown
            clamped = [f for f, v in shown.to_dict().items()
                       if not isinstance(v, float) and v != s.params.to_dict()[f]]
            if clamped:
                self.show_message(f"Saved parameters out of range ({', '.join(clamped)}) were set to the nearest "
                                  "allowed values", error=True)
        if self.params_panel.error() is not None:
            err = self.params_panel.error()
            self._params = PlaygroundParams()
            self.params_panel.set_params(self._params)
            self.show_message(f"Saved parameters could not be used ({err.cause}); started with the default "
                              "parameters", error=True)
        self.outputs.set_colormap_choice(s.colormap)
        self.outputs.set_levels_mode(s.levels_mode)
        self.outputs.set_linked(s.linked_zoom)
        self.kernel_editor.setKernel(kernels[sel], undoable=False)
        self.kernel_bank.setBank(kernels, sel, pair)
        if s.window_geometry:
            self.restoreGeometry(QByteArray(Settings.decode_bytes(s.window_geometry)))
        if s.window_state:
            self.restoreState(QByteArray(Settings.decode_bytes(s.window_state)))

    def collect_settings(self) -> Settings:
        """The settings object as the window stands now."""
        s = self.settings
        s.set_kernel_bank(self._kernels, self._selected, self._pair)
        s.params = self._params
        s.window_geometry = Settings.encode_bytes(bytes(self.saveGeometry().data()))
        s.window_state = Settings.encode_bytes(bytes(self.saveState().data()))
        s.linked_zoom = self.outputs.is_linked()
        s.colormap = self.outputs.colormap_choice()
        s.levels_mode = self.outputs.levels_mode()
        if self._image_source.startswith("sample:"):
            s.last_image = self._image_source
        elif self._image_source == "file" and self._image_path:
            s.last_image = self._image_path
        return s

    def save_settings(self) -> Path | None:
        try:
            return save_settings(self.collect_settings(), self._settings_file)
        except OSError as exc:
            self.show_message(f"Could not save settings to {self._settings_file}: {exc.strerror or exc}; "
                              "check that the folder is writable", error=True)
            return None

    def reset_layout(self) -> None:
        self.restoreState(self._default_state)
        for d in self.docks:
            d.setFloating(False)
            d.show()
        self.dock_explain.raise_()

    # ===================================================================================
    # theme
    # ===================================================================================
    def apply_theme(self, theme: str, save: bool = True) -> str:
        """Apply 'system', 'light' or 'dark'; ``save`` remembers it in the settings.
        Returns the resolved 'light' or 'dark'."""
        theme = theme if theme in qtapp.THEMES else "system"
        resolved = qtapp.apply_theme(theme)
        self._theme = theme
        if save:
            self.settings.theme = theme
        self.theme_actions[theme].setChecked(True)
        self.outputs.set_dark(resolved == "dark")
        return resolved

    def _on_system_scheme(self, *_):
        if getattr(self, "_theme", "system") == "system":
            self.apply_theme("system", save=False)

    # ===================================================================================
    # pictures
    # ===================================================================================
    def current_image(self) -> np.ndarray | None:
        """The picture as loaded (float32 (H, W) or (H, W, 3)), or the last frame."""
        return self._image

    def image_label(self) -> str:
        return self._image_label

    def open_image_dialog(self) -> None:
        exts = " ".join(f"*{e}" for e in SUPPORTED_EXTENSIONS)
        start = str(Path(self._image_path).parent) if self._image_path else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open image", start,
                                              f"Images ({exts});;All files (*)")
        if path:
            self.open_image(path)

    def open_image(self, path: str | Path, *, quiet: bool = False, source: str = "file") -> bool:
        """Load a picture file; on failure the status bar says why and nothing changes.

        A picture over :data:`ASK_DOWNSCALE_PIXELS` opens only after the user agrees to a
        downscale (:meth:`confirm_downscale`); ``quiet`` loads (start-up restoring the last
        picture) do not ask again. Every picture is shown at most :data:`LIVE_MAX_SIDE`
        pixels on its longest side so edits stay live.
        """
        p = Path(path)
        try:
            if not self._agree_to_size(p, p.name, ask=not quiet):
                return False
            loaded = load_image(p, downscale_to=LIVE_MAX_SIDE)
        except CnnvizError as err:
            self.show_error(err, f"Could not open {p.name}")
            return False
        note = ""
        ow, oh = loaded.original_size
        if (loaded.width, loaded.height) != (ow, oh) and not loaded.exif_rotated:
            note = f" (downscaled from {ow}×{oh} so edits stay live)"
        self._set_image(loaded.pixels, f"{p.name}{note}", str(p.resolve()), source)
        if source == "file":
            self.settings.add_recent(p)
        if not quiet:
            self.show_message(f"Opened {p}{note}")
        return True

    def _agree_to_size(self, src: Any, label: str, ask: bool = True, size: tuple[int, int] | None = None) -> bool:
        """True when ``src`` (a path or encoded bytes) may be loaded: not huge, or the user
        agreed to a downscale. Headers the loader refuses outright (bombs, junk) pass here
        so that :func:`load_image` gives its own message."""
        if size is None:
            try:
                w, h, _fmt = probe_image(src)
            except CnnvizError:
                return True
        else:
            w, h = size
        if w * h <= ASK_DOWNSCALE_PIXELS or w * h > BOMB_FACTOR * DEFAULT_MAX_PIXELS or not ask:
            return True
        if self.confirm_downscale(label, w, h):
            return True
        self.show_message(f"Did not open {label} ({w}×{h}): cancelled")
        return False

    @staticmethod
    def downscale_text(label: str, w: int, h: int) -> str:
        """The question :meth:`confirm_downscale` asks."""
        s = LIVE_MAX_SIDE / max(w, h)
        dw, dh = max(1, round(w * s)), max(1, round(h * s))
        gb = w * h * 3 * 4 / 1e9
        return (f"This image is {w}×{h} ({w * h / 1e6:.0f} MP): {label}.\n\n"
                f"At full size it would need about {gb:.1f} GB of memory and every edit would be slow. "
                f"cnnviz can open it downscaled to {LIVE_MAX_SIDE} px on its longest side ({dw}×{dh}).")

    def confirm_downscale(self, label: str, w: int, h: int) -> bool:
        """Ask whether to open a huge picture downscaled (modal); True = downscale, False = cancel."""
        box = QMessageBox(QMessageBox.Icon.Question, "cnnviz — large image", self.downscale_text(label, w, h),
                          QMessageBox.StandardButton.NoButton, self)
        box.setObjectName("downscale-dialog")
        down = box.addButton(f"Downscale to {LIVE_MAX_SIDE} px", QMessageBox.ButtonRole.AcceptRole)
        down.setObjectName("downscale")
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(down)
        box.exec()
        return box.clickedButton() is down

    def open_sample(self, name: str, *, quiet: bool = False) -> bool:
        if name not in SAMPLES:
            self.show_error(SpecError(f"there is no sample '{name}'", f"choose one of {', '.join(SAMPLES)}"))
            return False
        p = SAMPLES_DIR / f"{name}.png"
        ok = self.open_image(p, quiet=True, source=f"sample:{name}")
        if ok:
            self._image_label = f"{SAMPLES[name]} (sample)"
            self._update_source_label()
            if not quiet:
                self.show_message(f"Opened the {SAMPLES[name].lower()} sample")
        return ok

    def paste_from_clipboard(self) -> bool:
        """Use the clipboard's image (encoded bytes, a file URL or a bitmap)."""
        mime = QGuiApplication.clipboard().mimeData()
        if mime is None:
            self.show_message("The clipboard is empty; copy an image or an image file first", error=True)
            return False
        return self.load_from_mime(mime, "clipboard")

    def load_from_mime(self, mime: QMimeData, source: str) -> bool:
        """Load a picture from drag-and-drop or clipboard data (file first, then bytes, then bitmap)."""
        paths = _local_image_paths(mime)
        if paths:
            return self.open_image(paths[0])
        for fmt in _ENCODED_MIME:
            if mime.hasFormat(fmt):
                data = bytes(mime.data(fmt).data())
                if data:
                    try:
                        if not self._agree_to_size(data, f"the {source} image"):
                            return False
                        loaded = load_image(data, downscale_to=LIVE_MAX_SIDE)
                    except CnnvizError as err:
                        self.show_error(err, f"Could not use the {source} image")
                        return False
                    self._set_image(loaded.pixels, f"image from the {source}", None, source)
                    self.show_message(f"Pasted a {loaded.width}×{loaded.height} image from the {source}")
                    return True
        if mime.hasImage():
            img = QImage(mime.imageData())
            if img.isNull():
                self.show_message(f"The {source} image could not be read; copy it again or save it as a file",
                                  error=True)
                return False
            w, h = img.width(), img.height()
            if w * h > BOMB_FACTOR * DEFAULT_MAX_PIXELS:
                self.show_message(f"The {source} image is {w}×{h} ({w * h / 1e6:.0f} MP), too large to use; "
                                  "save it as a file and shrink it first", error=True)
                return False
            if not self._agree_to_size(None, f"the {source} image", size=(w, h)):
                return False
            if max(w, h) > LIVE_MAX_SIDE:
                # shrink in Qt before the copy to numpy: never a second full-size array
                img = img.scaled(LIVE_MAX_SIDE, LIVE_MAX_SIDE, Qt.AspectRatioMode.KeepAspectRatio,
                                 Qt.TransformationMode.SmoothTransformation)
            try:
                loaded = image_from_array(qimage_to_array(img))
            except CnnvizError as err:
                self.show_error(err, f"Could not use the {source} image")
                return False
            self._set_image(loaded.pixels, f"image from the {source}", None, source)
            self.show_message(f"Pasted a {loaded.width}×{loaded.height} image from the {source}")
            return True
        kinds = ", ".join(mime.formats()[:4]) or "nothing"
        self.show_message(f"The {source} holds no image ({kinds}); copy an image or an image file "
                          f"({', '.join(e.lstrip('.') for e in SUPPORTED_EXTENSIONS[:5])}, …)", error=True)
        return False

    def set_frame(self, pixels: np.ndarray, label: str = "live frame") -> None:
        """Feed a frame from a live source: (H, W) or (H, W, 3|4), uint8/uint16/float in [0, 1].

        The array is copied (cameras reuse their buffers); conversion happens on the worker.
        The latest frame wins: frames arriving faster than they compute are dropped.
        """
        a = np.asarray(pixels)
        if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)) or 0 in a.shape[:2]:
            self.show_error(ImageLoadError(f"a frame of shape {a.shape} is not an image",
                                           "send (H, W) gray or (H, W, 3) RGB frames"))
            return
        self._set_image(np.array(a, copy=True), label, None, "frame", quiet=True)

    def _set_image(self, pixels: np.ndarray, label: str, path: str | None, source: str, quiet: bool = False) -> None:
        pixels.setflags(write=False)
        same_shape = self._image is not None and self._image.shape[:2] == pixels.shape[:2]
        self._image = pixels
        self._image_key += 1
        self._image_label = label
        self._image_path = path
        self._image_source = source
        if source != "frame":
            # a result for the previous picture must not flash up after the new one is chosen
            self.worker.invalidate()
        if not same_shape:
            self._pinned = None
            self._hovered = None
            self.outputs.clear_overlays()
        self._update_source_label()
        self._schedule()
        if not quiet or source != "frame":
            self.imageChanged.emit()
        if source != "frame":
            idx = self.sample_box.findData(source.split(":", 1)[1] if source.startswith("sample:") else "")
            self.sample_box.setCurrentIndex(max(idx, 0))

    def _update_source_label(self) -> None:
        if self._image is None:
            self.source_label.setText("No picture")
            self.status_image.setText("")
            return
        h, w = self._image.shape[:2]
        kind = "grey" if self._image.ndim == 2 else "colour"
        self.source_label.setText(f"<b>{self._image_label}</b><br>{w}×{h} {kind}")
        self.source_label.setToolTip(self._image_path or self._image_label)
        self.status_image.setText(f"image {w}×{h} {kind}")

    def _on_sample_box(self, index: int) -> None:
        key = self.sample_box.itemData(index)
        if key:
            self.open_sample(key)

    def _fill_recent_menu(self) -> None:
        m = self.recent_menu
        m.clear()
        recent = [r for r in self.settings.recent_files]
        if not recent:
            a = m.addAction("(no recent files)")
            a.setEnabled(False)
        for i, r in enumerate(recent):
            a = m.addAction(f"&{i + 1} {Path(r).name}" if i < 9 else Path(r).name)
            a.setToolTip(r)
            a.setStatusTip(r)
            a.setEnabled(Path(r).exists())
            a.triggered.connect(lambda _=False, path=r: self.open_image(path))
        m.addSeparator()
        clear = m.addAction("Clear recent files")
        clear.setEnabled(bool(recent))
        clear.triggered.connect(self._clear_recent)

    def _clear_recent(self) -> None:
        self.settings.recent_files = []
        self._fill_recent_menu()

    # drag and drop ----------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt's name
        mime = event.mimeData()
        if _local_image_paths(mime) or mime.hasImage() or any(mime.hasFormat(f) for f in _ENCODED_MIME):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802
        mime = event.mimeData()
        if self._drop_needs_question(mime):
            # A modal question inside dropEvent would block the application the drag came
            # from (a file manager) until it is answered: accept now, ask once back in the loop.
            copy = QMimeData()
            copy.setUrls(mime.urls())
            event.acceptProposedAction()
            QTimer.singleShot(0, lambda: self.load_from_mime(copy, "drop"))
            return
        if self.load_from_mime(mime, "drop"):
            event.acceptProposedAction()
        else:
            event.ignore()

    @staticmethod
    def _drop_needs_question(mime: QMimeData) -> bool:
        paths = _local_image_paths(mime)
        if not paths or not mime.hasUrls():
            return False
        try:
            w, h, _fmt = probe_image(paths[0])
        except CnnvizError:
            return False
        return ASK_DOWNSCALE_PIXELS < w * h <= BOMB_FACTOR * DEFAULT_MAX_PIXELS

    # ===================================================================================
    # kernels and parameters
    # ===================================================================================
    def _on_editor_kernel(self, k: Kernel) -> None:
        self.kernel_bank.replaceSelected(k)  # emits bankChanged when the bank changes

    def _on_bank_requested(self, kernels) -> None:
        self.kernel_bank.setBank(tuple(kernels), 0)

    def _on_bank_changed(self, payload) -> None:
        kernels, selected, pair = payload
        kernels = tuple(kernels)
        selection_moved = selected != self._selected or len(kernels) != len(self._kernels)
        names_changed = [k.name for k in kernels] != [k.name for k in self._kernels] or pair != self._pair
        self._kernels, self._selected, self._pair = kernels, int(selected), pair
        if self.kernel_editor.kernel() != kernels[self._selected]:
            # another kernel was selected (or the bank replaced): its own undo history starts now
            self.kernel_editor.setKernel(kernels[self._selected], undoable=False)
        if selection_moved or names_changed:
            shown = self.outputs.selection()
            self.outputs.set_bank([k.name for k in kernels], self._selected, pair)
            if shown not in (MOSAIC, MAGNITUDE) or selection_moved:
                keep = shown if shown in (MOSAIC, MAGNITUDE) and not selection_moved else self._selected
                self.outputs.set_selection(keep)
        self._schedule()

    def set_kernels(self, kernels, selected: int = 0, magnitude_pair: tuple[int, int] | None = None) -> None:
        """Replace the bank (as a preset or a file would)."""
        self.kernel_bank.setBank(tuple(kernels), selected, magnitude_pair)

    def kernels(self) -> tuple[Kernel, ...]:
        return self._kernels

    def _on_params(self, params: PlaygroundParams) -> None:
        self._params = params
        self._schedule()

    def set_params(self, params: PlaygroundParams) -> None:
        """Set every parameter (as the panel would); invalid ones are reported and ignored."""
        self.params_panel.set_params(params)
        err = self.params_panel.error()
        if err is not None:
            self.show_error(err, "Parameters")
            return
        self._on_params(params)

    def params(self) -> PlaygroundParams:
        return self._params

    # ===================================================================================
    # computing
    # ===================================================================================
    def _schedule(self) -> None:
        # Coalesce the bursts one user action can cause (a bank change emits several
        # signals) into one request; the worker itself keeps at most one pending.
        if not self._closing and not self._submit_timer.isActive():
            self._submit_timer.start()

    def build_request(self) -> PipelineRequest:
        conv, act, pool = self._params.to_specs()
        return PipelineRequest(kernels=self._kernels, conv=conv, activation=act, pool=pool,
                               magnitude_pair=self._pair)

    def _submit(self) -> int | None:
        if self._closing or self._image is None or not self._kernels:
            return None
        try:
            request = self.build_request()
        except CnnvizError as err:
            self.show_error(err, "Settings")
            return None
        job = PlaygroundJob(self._image, self._image_key, request, self._device, self.outputs.display_settings())
        rid = self.worker.submit(job)
        self._shown_at[rid] = time.perf_counter()
        if len(self._shown_at) > 256:
            for k in sorted(self._shown_at)[:-64]:
                del self._shown_at[k]
        return rid

    def submit_now(self) -> int | None:
        """Submit the current state at once (skips the coalescing timer); returns the id."""
        self._submit_timer.stop()
        return self._submit()

    def _on_result(self, rid: int, out: PlaygroundOutput) -> None:
        if self._closing:
            return
        prev = self._output
        self._output = out
        res, req = out.result, out.job.request
        self.outputs.show_result(res, req, out.stats, out.display)
        if self._transient_error and self.statusBar().currentMessage() == self._transient_error:
            # the computation works again: the message about why it failed is now stale
            self.statusBar().clearMessage()
        self._transient_error = ""
        self._update_status(out)
        self._update_side_panels(out, prev)
        self._refresh_explanation()
        self._shown_at.pop(rid, None)
        self.resultShown.emit(rid)

    def _on_worker_error(self, rid: int, exc: BaseException) -> None:
        if isinstance(exc, CnnvizError):
            self.show_error(exc, "Cannot compute", transient=True)
        else:
            details = getattr(exc, "cnnviz_traceback", "") or repr(exc)
            # the worker has logged it with its traceback (cnnviz.worker)
            self.report_exception(f"{type(exc).__name__}: {exc}", details)

    def _update_status(self, out: PlaygroundOutput) -> None:
        res = out.result
        shapes = f"conv {'×'.join(map(str, res.conv.shape))}"
        if res.pool is not None:
            shapes += f" → pool {'×'.join(map(str, res.pool.shape))}"
        self.status_shapes.setText(shapes)
        self.status_time.setText(f"compute {res.timings_ms.get('total', 0.0):.1f} ms")
        self.status_device.setText(f"device: {res.device.upper() if res.device == 'cpu' else res.device}")

    def _update_side_panels(self, out: PlaygroundOutput, prev: PlaygroundOutput | None) -> None:
        res, req = out.result, out.job.request
        in_ch = 3 if req.conv.channels == "full" else 1
        n = len(req.kernels) * (3 if req.conv.channels == "each" else 1)
        try:
            self.weight_panel.update_for(res.input.shape[:2], res.conv_shape.out_hw, req.kernels[0].size, in_ch, n)
        except CnnvizError as err:
            self.show_error(err, "Weight sharing")
        if self.dock_animate.isVisible() and not self.dock_animate.visibleRegion().isEmpty():
            self._feed_animation(out, prev)

    def _feed_animation(self, out: PlaygroundOutput | None, prev: PlaygroundOutput | None = None) -> None:
        if out is None:
            return
        req = out.job.request
        k = req.kernels[min(self._selected, len(req.kernels) - 1)]
        if (prev is not None and prev.job.image_key == out.job.image_key and prev.job.request.conv == req.conv
                and getattr(self, "_animated_kernel", None) == k):
            return
        self._animated_kernel = k
        try:
            self.animate_panel.set_input(out.result.input, k, req.conv)
        except CnnvizError as err:
            self.show_error(err, "Animate")

    def _on_animate_visible(self, visible: bool) -> None:
        if visible:
            self._animated_kernel = None
            self._feed_animation(self._output)

    # ===================================================================================
    # headless API
    # ===================================================================================
    def current_result(self) -> PipelineResult | None:
        """The last PipelineResult the views show (None before the first)."""
        return self._output.result if self._output is not None else None

    def current_request(self) -> PipelineRequest | None:
        return self._output.job.request if self._output is not None else None

    def displayed_array(self, stage: str) -> np.ndarray | None:
        """The array a view shows now: "input", "conv", "activation", "pool" or "magnitude"."""
        return self.outputs.displayed_array(stage)

    def status_text(self) -> str:
        """The status bar's current message (errors and notes)."""
        return self.statusBar().currentMessage()


    # ===================================================================================
    # explanations
    # ===================================================================================
    def _on_pointer(self, stage: str, kernel: int, y: int, x: int, clicked: bool) -> None:
        ref = (stage, kernel, y, x)
        if clicked:
            self._pinned = None if self._pinned == ref else ref
            if self._pinned is None:
                self.show_message("Unpinned: the explanation follows the pointer again")
            else:
                self._center_animation(stage, kernel, y, x)
        else:
            self._hovered = ref
        target = self._pinned or self._hovered
        if target is not None:
            self._explain(*target)

    def _on_pointer_left(self) -> None:
        self._hovered = None
        if self._pinned is None:
            self.outputs.clear_overlays()

    def _on_input_hovered(self, y: int, x: int) -> None:
        img = self.outputs.displayed_array("input")
        if img is None:
            return
        v = img[y, x]
        text = f"{float(v):.4f}" if np.ndim(v) == 0 else "(" + ", ".join(f"{float(c):.3f}" for c in v) + ")"
        self.statusBar().showMessage(f"input ({y}, {x}) = {text}", 4000)

    def unpin(self) -> None:
        self._pinned = None
        if self._hovered is None:
            self.outputs.clear_overlays()

    def _center_animation(self, stage: str, kernel: int, y: int, x: int) -> None:
        """A clicked conv pixel: the animation's crop moves to its window."""
        out = self._output
        if out is None or stage not in ("conv", "activation", "magnitude"):
            return
        req = out.job.request
        from cnnviz.core.dotproduct import conv_window_in_input  # noqa: PLC0415

        y0, x0, y1, x1 = conv_window_in_input(req.conv, req.kernels[0].size, y, x)
        try:
            self.animate_panel.set_center((y0 + y1) // 2, (x0 + x1) // 2)
        except CnnvizError as err:
            self.show_error(err, "Animate")

    def zoom_to_explained(self) -> None:
        """Zoom onto the receptive window of the explained (pinned or hovered) pixel."""
        rect = self.outputs.view("input").window_rect()
        if rect is None:
            self.show_message("Hover or click an output pixel first; then Ctrl+E zooms onto its window")
            return
        half = max(rect.width(), rect.height()) * 1.5 + 4
        self.outputs.zoom_to(rect.center().y(), rect.center().x(), half)

    def _on_display_changed(self) -> None:
        # picking a kernel under "Show" selects it in the bank too (so the editor edits
        # what the views show)
        shown = self.outputs.selection()
        if 0 <= shown < len(self._kernels) and shown != self._selected:
            self.kernel_bank.setSelected(shown)
        self._refresh_explanation()

    def _refresh_explanation(self) -> None:
        target = self._pinned or self._hovered
        if target is None:
            # the data changed and no pixel is pinned or hovered: numbers from the old
            # image or settings would be wrong, so the panel goes back to its hint
            self.last_explanation = None
            self.explain_panel.clear()
            return
        if not self._explain(*target):
            if target == self._pinned:
                self._pinned = None
            self._hovered = None
            self.outputs.clear_overlays()
            self.explain_panel.clear()

    def explain_pixel(self, stage: str, y: int, x: int, kernel: int = 0, pin: bool = True) -> Any:
        """Explain output pixel (y, x) of ``stage`` for ``kernel`` as a click would; returns
        the explanation (ConvPixelExplanation or PoolPixelExplanation) or None."""
        if pin:
            self._pinned = (stage, kernel, y, x)
        else:
            self._hovered = (stage, kernel, y, x)
        return self.last_explanation if self._explain(stage, kernel, y, x) else None

    def _explain_channel(self, req: PipelineRequest) -> int | None:
        if req.conv.channels != "each":
            return None
        ch = self.outputs.channel()
        return 0 if ch == RGB else ch

    def _explain(self, stage: str, kernel: int, y: int, x: int) -> bool:
        out = self._output
        if out is None:
            return False
        res, req = out.result, out.job.request
        if not 0 <= kernel < len(req.kernels):
            return False
        k = req.kernels[kernel]
        spec = req.conv
        views = self.outputs
        views.clear_overlays()
        iv = views.view("input")
        ch = self._explain_channel(req)
        if stage in ("conv", "activation", "magnitude"):
            oh, ow = res.conv_shape.out_hw
            if not (0 <= y < oh and 0 <= x < ow):
                return False
            e = explain_conv_pixel(res.input, k, spec, y, x, channel=ch)
            self.last_explanation = e
            self.explain_panel.show_conv(e)
            y0, x0, y1, x1 = e.window
            iv.show_window(QRectF(x0, y0, x1 - x0, y1 - y0),
                           [(float(c) + 0.5, float(r) + 0.5) for r in e.rows for c in e.cols])
            for s in ("conv", "activation"):
                r = views.output_pixel_rect(s, kernel, y, x)
                if r is not None:
                    views.view(s).show_marker(r)
            chs = f"[{'RGB'[ch]}]" if ch is not None else ""
            msg = f"conv{chs} k{kernel + 1} ({y}, {x}) = Σ {e.total:.5g} + bias {e.bias:.5g} = {e.value:.5g}"
            if stage == "activation":
                a = res.activation[kernel] if res.activation.ndim == 3 else res.activation[kernel, ch or 0]
                msg += f" → {req.activation.kind} → {float(a[y, x]):.5g}"
            if stage == "magnitude" and res.magnitude is not None and req.magnitude_pair is not None:
                a, b = req.magnitude_pair
                gx = res.conv[a][y, x] if res.conv.ndim == 3 else res.conv[a, 0][y, x]
                gy = res.conv[b][y, x] if res.conv.ndim == 3 else res.conv[b, 0][y, x]
                msg = (f"|∇| ({y}, {x}) = √({float(gx):.4g}² + {float(gy):.4g}²) = {float(res.magnitude[y, x]):.5g}"
                       f"   (explained: kernel {a + 1})")
            pin = "  [pinned — click again or Esc to unpin]" if self._pinned else ""
            self.statusBar().showMessage(msg + pin)
            return True
        if stage == "pool":
            if res.pool is None or req.pool is None or res.pool_shape is None:
                return False
            ph, pw = res.pool_shape.out_hw
            if not (0 <= y < ph and 0 <= x < pw):
                return False
            act = res.activation[kernel] if res.activation.ndim == 3 else res.activation[kernel, ch or 0]
            e = explain_pool_pixel(act, req.pool, y, x)
            self.last_explanation = e
            self.explain_panel.show_pool(e)
            wy0, wx0, wy1, wx1 = pool_window_to_input(spec, k.size, req.pool, res.conv_shape.out_hw, y, x)
            iv.show_window(QRectF(wx0, wy0, wx1 - wx0, wy1 - wy0))
            ay0, ax0, ay1, ax1 = e.window
            r = views.data_rect_in_stage("activation", kernel, ay0, ax0, ay1, ax1)
            if r is not None:
                views.view("activation").show_window(r)
            if e.winner is not None:
                wr = views.output_pixel_rect("activation", kernel, *e.winner)
                if wr is not None:
                    views.view("activation").show_marker(wr)
            pr = views.output_pixel_rect("pool", kernel, y, x)
            if pr is not None:
                views.view("pool").show_marker(pr)
            how = (f"max at {e.winner}" if e.kind == "max" else f"mean: Σ ÷ {e.divisor:g}")
            pin = "  [pinned — click again or Esc to unpin]" if self._pinned else ""
            self.statusBar().showMessage(f"pool k{kernel + 1} ({y}, {x}) = {e.value:.5g} ({how}){pin}")
            return True
        return False

    # ===================================================================================
    # export
    # ===================================================================================
    def _stage_rgb(self, stage: str) -> np.ndarray | None:
        """A view's array coloured as it is shown (uint8 RGB)."""
        view = self.outputs.view(stage)
        arr = view.data()
        if arr is None:
            return None
        levels = view.current_levels()
        if arr.ndim == 2:
            if stage == "input":
                return colorize(arr, "gray", (0.0, 1.0))
            return colorize(np.nan_to_num(arr, nan=levels[0]), view.colormap(), levels)
        return to_uint8(np.nan_to_num(arr, nan=levels[0]), levels)

    def save_pngs(self, folder: str | Path, stem: str | None = None) -> list[Path]:
        """Save every non-empty view as ``<stem>_<stage>.png`` in ``folder``; returns the paths."""
        folder = Path(folder)
        stem = stem or (Path(self._image_path).stem if self._image_path else "cnnviz")
        written = []
        for stage in ("input", "conv", "activation", "pool"):
            rgb = self._stage_rgb(stage)
            if rgb is None:
                continue
            p = folder / f"{stem}_{stage}.png"
            save_png(p, rgb)
            written.append(p)
        return written

    def save_pngs_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save outputs as PNGs into…", str(Path.home()))
        if not folder:
            return
        try:
            paths = self.save_pngs(folder)
        except (CnnvizError, OSError) as err:
            self.show_error(err, "Could not save the PNGs")
            return
        self.show_message(f"Saved {len(paths)} PNGs to {folder}")

    def save_npz(self, path: str | Path) -> Path:
        """Every stage's float32 numbers, the kernels and the settings in one ``.npz``."""
        out = self._output
        if out is None:
            raise SpecError("nothing has been computed yet", "wait for the first result")
        res, req = out.result, out.job.request
        p = Path(path)
        if p.suffix.lower() != ".npz":
            p = p.with_suffix(".npz")
        arrays: dict[str, Any] = {"input": res.input, "conv": res.conv, "activation": res.activation}
        if res.pool is not None:
            arrays["pool"] = res.pool
        if res.magnitude is not None:
            arrays["magnitude"] = res.magnitude
        arrays["kernels"] = np.stack([k.effective() for k in req.kernels])
        meta = {"cnnviz": cnnviz.__version__, "image": self._image_label,
                "kernels": [k.to_dict() for k in req.kernels], "params": self._params.to_dict(),
                "conv_shape": res.conv_shape.text,
                "pool_shape": res.pool_shape.text if res.pool_shape is not None else None}
        arrays["meta"] = np.array(json.dumps(meta))
        tmp = p.with_name(f".{p.name}.tmp.npz")
        p.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(tmp, **arrays)
        tmp.replace(p)
        return p

    def save_npz_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save all outputs", str(Path.home() / "cnnviz_outputs.npz"),
                                              "NumPy archive (*.npz)")
        if not path:
            return
        try:
            p = self.save_npz(path)
        except (CnnvizError, OSError) as err:
            self.show_error(err, "Could not save the outputs")
            return
        self.show_message(f"Saved every stage to {p}")

    def copy_to_clipboard(self, stage: str = "conv") -> bool:
        rgb = self._stage_rgb(stage)
        if rgb is None:
            self.show_message("Nothing to copy yet", error=True)
            return False
        QGuiApplication.clipboard().setImage(array_to_qimage(rgb))
        self.show_message(f"Copied the {stage} view ({rgb.shape[1]}×{rgb.shape[0]}) to the clipboard")
        return True

    # ===================================================================================
    # messages, help
    # ===================================================================================
    def show_message(self, text: str, error: bool = False, timeout: int = STATUS_MS) -> None:
        """A note (or, with ``error``, a problem) in the status bar."""
        self.last_message = text
        self.statusBar().showMessage(("⚠ " if error else "") + text, timeout if not error else 2 * timeout)

    def show_error(self, err: BaseException, context: str = "", transient: bool = False) -> None:
        """Tell the user what went wrong and what to do; the previous state stays.

        ``transient`` errors (a computation or parameter combination that failed) are
        cleared by the next result that computes.
        """
        if isinstance(err, CnnvizError):
            text = err.cause + (f" — fix: {err.fix}" if err.fix else "")
        elif isinstance(err, OSError):
            text = f"{err.strerror or err}" + (f" ({err.filename})" if err.filename else "")
        else:
            text = str(err)
        self.show_message(f"{context}: {text}" if context else text, error=True)
        self._transient_error = self.statusBar().currentMessage() if transient else ""

    def report_exception(self, summary: str, details: str) -> None:
        """An unexpected exception (a bug): status bar plus a non-modal dialog whose details
        expander holds the traceback. The window keeps working.

        A fault that repeats (a failing paint handler fires on every repaint) never stacks
        dialogs: while one is open, later faults are added to its details and counted.
        """
        self._fault_count = getattr(self, "_fault_count", 0) + 1
        self.show_message(f"Internal error: {summary} (details in the dialog; please report it)", error=True)
        if self._closing:
            return
        logfile = qtapp.log_path()
        where = f"\n\nThe details are also in the log file:\n{logfile}" if logfile else ""
        box = getattr(self, "_fault_box", None)
        if box is not None and box.isVisible():
            self._fault_repeats += 1
            box.setText(f"Something went wrong inside cnnviz ({self._fault_repeats + 1} errors):\n\n{summary}"
                        f"\n\nThe window keeps working; the previous result is still shown.{where}")
            box.setDetailedText((box.detailedText() + "\n" + "-" * 60 + "\n" + details)[-200_000:])
            return
        box = QMessageBox(QMessageBox.Icon.Critical, "cnnviz — internal error",
                          f"Something went wrong inside cnnviz:\n\n{summary}\n\nThe window keeps working; "
                          f"the previous result is still shown.{where}", QMessageBox.StandardButton.Ok, self)
        box.setObjectName("fault-dialog")
        box.setDetailedText(details)
        box.setModal(False)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.destroyed.connect(lambda *_: setattr(self, "_fault_box", None))
        self._fault_box = box
        self._fault_repeats = 0
        box.show()

    def fault_dialog(self) -> QMessageBox | None:
        """The internal-error dialog while it is open (tests and the soak bench)."""
        box = getattr(self, "_fault_box", None)
        try:
            return box if box is not None and box.isVisible() else None
        except RuntimeError:  # deleted on the C++ side
            return None

    def shortcuts_text(self) -> str:
        def keys(a: QAction) -> str:
            return ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in a.shortcuts()) or "—"

        rows = [("Open image", self.act_open), ("Paste image", self.act_paste), ("Save outputs as PNGs", self.act_save_pngs),
                ("Save all as .npz", self.act_save_npz), ("Copy output image", self.act_copy),
                ("Undo kernel edit", self.act_undo), ("Redo kernel edit", self.act_redo),
                ("Linked zoom on/off", self.act_link), ("Fit views", self.act_fit), ("Unpin explained pixel", self.act_unpin),
                ("Shortcuts (this)", self.act_shortcuts), ("Quit", self.act_quit)]
        lines = ["Window"] + [f"  {name:<28}{keys(a)}" for name, a in rows]
        lines += ["", "Output views",
                  "  Hover a pixel               explain it (input patch × kernel = products, Σ + bias)",
                  "  Click a pixel               pin the explanation (click again or Esc to unpin)",
                  "  Wheel / drag                zoom / pan (all views together with linked zoom)",
                  "  Drag a histogram's levels   fix the levels of that view", ""]
        return "\n".join(lines) + "\n" + GESTURES_HELP

    def show_shortcuts(self) -> QDialog:
        d = QDialog(self)
        d.setWindowTitle("cnnviz — shortcuts and gestures")
        d.setObjectName("shortcuts-dialog")
        lay = QVBoxLayout(d)
        t = QPlainTextEdit(self.shortcuts_text())
        t.setReadOnly(True)
        f = t.font()
        f.setFamily("DejaVu Sans Mono")
        f.setStyleHint(f.StyleHint.Monospace)
        t.setFont(f)
        lay.addWidget(t)
        bb = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        bb.rejected.connect(d.close)
        lay.addWidget(bb)
        d.resize(760, 620)
        d.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        d.show()
        return d

    def about_text(self) -> str:
        """The About box's text. Never imports torch: its version comes from the package
        metadata, and the GPU lines (from :func:`compute_summary` on a worker thread) are
        filled in when they arrive."""
        import cv2
        import PySide6
        import pyqtgraph as pg
        from PySide6.QtCore import qVersion

        from cnnviz.core.devices import torch_version_without_import

        lines = [f"cnnviz {cnnviz.__version__} — see convolutional neural networks work.", "",
                 f"Python {sys.version.split()[0]}", f"Qt {qVersion()} (PySide6 {PySide6.__version__})",
                 f"pyqtgraph {pg.__version__}", f"NumPy {np.__version__}", f"OpenCV {cv2.__version__}"]
        if self._about_devices:
            lines += self._about_devices
        else:
            tv = torch_version_without_import()
            lines.append(f"PyTorch {tv}" if tv else "PyTorch: not installed (the model inspector needs it)")
            if tv:
                lines.append("GPU: checking…")
        lines += ["", "Sample images: see resources/samples/CREDITS.md. MIT licence."]
        return "\n".join(lines)

    def show_about(self) -> QMessageBox:
        box = QMessageBox(QMessageBox.Icon.Information, "About cnnviz", self.about_text(),
                          QMessageBox.StandardButton.Ok, self)
        box.setObjectName("about-box")
        box.setStyleSheet("QLabel#qt_msgbox_label { min-width: 32em; }")  # a line per version, unwrapped
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)  # copy into a bug report
        box.setModal(False)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._about_box = box
        box.destroyed.connect(self._forget_about_box)
        box.show()
        if self._about_devices is None and not self._about_probe_running:
            self._about_probe_running = True
            threading.Thread(target=self._probe_devices, name="cnnviz-about-probe", daemon=True).start()
        return box

    def _forget_about_box(self, *_args) -> None:
        self._about_box = None

    def _probe_devices(self) -> None:
        """Worker thread: import torch and list the GPUs (seconds the first time)."""
        from cnnviz.core.devices import compute_summary

        try:
            lines = compute_summary()
        except Exception as exc:  # noqa: BLE001 - shown in the box, never raised in a thread
            lines = [f"PyTorch: {type(exc).__name__}: {exc}"]
        try:
            self._aboutDevices.emit(lines)
        except RuntimeError:  # the window was closed and deleted meanwhile
            pass

    def _on_about_devices(self, lines: list) -> None:
        self._about_probe_running = False
        self._about_devices = list(lines)
        box = self._about_box
        if box is not None:
            box.setText(self.about_text())

    # ===================================================================================
    # closing
    # ===================================================================================
    def add_panel_dock(self, dock: QDockWidget) -> None:
        """Register a dock added after start-up (live sources, Learn): saved in the layout and
        toggled from View ▸ Panels like the built-in ones."""
        self.docks.append(dock)
        self.panels_menu.addAction(dock.toggleViewAction())

    # ------------------------------------------------------------------ model inspector
    def open_inspector(self) -> None:
        """Show the model inspector window (created on first use; torch loads in its worker)."""
        insp = getattr(self, "inspector", None)
        if insp is None:
            from .inspector import InspectorWindow  # noqa: PLC0415 - the playground starts without it

            insp = InspectorWindow()
            insp.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
            self.inspector = insp
        insp.show()
        insp.raise_()
        insp.activateWindow()

    def inspect_current_image(self) -> None:
        """Open the inspector on the playground's current image (the model resizes it)."""
        self.open_inspector()
        img = self.current_image()
        if img is not None:
            self.inspector.set_image(img, label="playground image")

    def shutdown(self) -> None:
        """Stop timers and the worker thread (idempotent)."""
        live = getattr(self, "live", None)
        if live is not None:
            live.shutdown()
        insp = getattr(self, "inspector", None)
        if insp is not None:
            try:
                insp.shutdown()
                insp.close()
            except Exception:  # noqa: BLE001 - closing must not fail
                pass
        self._closing = True
        self._submit_timer.stop()
        box = self.fault_dialog()
        if box is not None:
            box.close()
        self.statusBar().clearMessage()  # stops the status bar's message timer
        stop = getattr(self.animate_panel, "stop", None)
        if callable(stop):
            try:
                stop()
            except Exception:  # noqa: BLE001 - closing must not fail
                pass
        # a playground computation takes milliseconds; one that does not finish in a second
        # is abandoned (the daemon worker ends with the process) so closing never hangs
        self.worker.shutdown(1000)
        shutdown_band_pool(timeout=1.0)  # the threads a frame's row chunks ran on

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if not self._closing:
            self.save_settings()
        self.shutdown()
        super().closeEvent(event)
