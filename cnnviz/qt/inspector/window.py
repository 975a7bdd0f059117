"""The model inspector window: walk a trained model layer by layer, live.

Data walks one way: **input (canvas, image, live frame) → frozen InspectRequest → the
inference worker (capture, explanations) → numpy-only InspectResult → views.** The window
never runs the model itself, never touches a tensor, and no worker touches a widget.

Threads: two :class:`~cnnviz.qt.workers.LatestRequestWorker` s — the *loader* (imports torch
lazily and loads models, so the window stays responsive while PyTorch loads or weights
download) and the *inference* worker (every forward pass, Grad-CAM, receptive fields and
device moves of the current model). A live :class:`~cnnviz.core.sources.FrameSource` is
polled on the GUI thread: a frame is taken from its one-slot buffer only when the inference
worker is idle, so frames are dropped at the source and never queued. :meth:`close` stops
the source and joins both worker threads.
"""

from __future__ import annotations

import html
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QComboBox, QDialog, QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox,
                               QProgressBar, QPushButton, QStackedWidget, QTabWidget, QToolBar, QVBoxLayout,
                               QWidget)

from cnnviz.core.errors import CnnvizError, SourceError, TrustRequired
from cnnviz.core.resources import resources_dir
from cnnviz.qt.workers import LatestRequestWorker

from .activation_grid import ActivationPanel
from .cam_view import CamView
from .canvas import CanvasPanel
from .imaging import ImageView
from .layer_table import LayerTable
from .load_dialog import LoadChoice, LoadDialog, RecentModels
from .model_panel import ModelPanel
from .model_worker import (ExportJob, InspectEngine, InspectRequest, InspectResult, LoadOutcome, LoadRequest,
                           run_load)
from .overview import OverviewView
from .predictions import PredictionsView
from .rf_view import RFView
from .trust_dialog import TrustDialog
from .weights_view import WeightsView

__all__ = ["InspectorWindow", "TAB_KEYS"]

#: Tabs of the central area, in order, by the view key requests use.
TAB_KEYS = ("grid", "overview", "weights", "cam", "rf")
TAB_TITLES = ("Activations", "Overview", "Weights", "Grad-CAM", "Receptive field")
TRUST_FILE = "trusted_models.json"
STATUS_MS = 8000
#: How long closing waits for each worker's current computation. A model load or forward
#: cannot be interrupted: one that takes longer is abandoned (its daemon thread ends with the
#: process, its result is dropped) so the window closes at once.
CLOSE_WAIT_MS = 500
PRECISIONS = ("float32", "float16", "bfloat16")


def _sample_digit() -> Path:
    return resources_dir() / "samples" / "digit.png"


def _as_input_pixels(pixels: np.ndarray) -> np.ndarray:
    """An HxW / HxWx3(x4) image → read-only float32 in [0, 1] (uint8 kept as uint8)."""
    a = np.asarray(pixels)
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[..., :3]
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)) or a.size == 0:
        raise ValueError(f"expected an HxW or HxWx3 image, got shape {a.shape}")
    if a.dtype == np.uint8 and not a.flags.writeable:
        return a  # a source's frame: owned by the frame and read-only already
    if a.dtype == np.uint8:
        out = np.array(a, copy=True)
    else:
        out = np.clip(np.nan_to_num(a.astype(np.float32)), 0.0, 1.0)
    out.setflags(write=False)
    return out


def _display_u8(pixels: np.ndarray) -> np.ndarray:
    a = np.asarray(pixels)
    if a.dtype != np.uint8:
        a = np.clip(np.round(a.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    return a


def _error_text(err: BaseException) -> str:
    if isinstance(err, CnnvizError):
        return err.cause + (f" — fix: {err.fix}" if err.fix else "")
    return f"{type(err).__name__}: {err}"


class _Relay(QObject):
    """Signals emitted from worker / capture threads; queued to the GUI thread."""

    stage = Signal(str)
    download = Signal(object, object)
    sourceError = Signal(object)
    sourceStopped = Signal(str)
    exportProgress = Signal(int, int, int, str)   # job id, done, total, layer


class InspectorWindow(QMainWindow):
    """See the module docstring.

    Parameters
    ----------
    parent:
        Optional parent widget (the window stays a top-level window).
    load_demo:
        Load the bundled demo model at start, with the drawing canvas (and the sample digit
        on it) as the input.
    config_dir:
        Where the trust store and recent models live; default ``$CNNVIZ_CONFIG_DIR`` or the
        user's config directory.

    Signals
    -------
    resultShown(int)
        A result is on screen (the request id).
    modelLoaded(str)
        A model finished loading (its display name).
    loadFailed(str)
        Loading failed or was refused (the message shown).
    exportFinished(str)
        An ``.npz`` / CSV export was written (or failed: the message).
    """

    resultShown = Signal(int)
    modelLoaded = Signal(str)
    loadFailed = Signal(str)
    exportFinished = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, load_demo: bool = True,
                 config_dir: str | Path | None = None):
        super().__init__(parent)
        self.setWindowTitle("cnnviz — model inspector")
        self.setObjectName("inspector-window")
        self._closing = False
        self._closed = False
        self.last_message = ""
        self._status_is_error = False
        self._error_box: QMessageBox | None = None

        from cnnviz.qt.settings import config_dir as default_config_dir

        self.config_dir = Path(config_dir) if config_dir is not None else default_config_dir()
        self.trust_store = None
        self._startup_warnings: list[str] = []
        try:
            from cnnviz.core.trust import TrustStore

            self.trust_store = TrustStore(self.config_dir / TRUST_FILE)
            if self.trust_store.warning:
                self._startup_warnings.append(self.trust_store.warning)
        except CnnvizError as exc:
            self._startup_warnings.append(_error_text(exc))
        self.recent = RecentModels(self.config_dir)
        if self.recent.warning:
            self._startup_warnings.append(self.recent.warning)

        # -- state (GUI thread only)
        self._token = 0
        self._model: Any = None
        self._model_info: dict[str, Any] = {}
        self._pixels: np.ndarray | None = None
        self._frame_id = 0
        self._input_label = ""
        self._layer: str | None = None
        self._channel = 0
        self._cam_class: int | None = None
        self._cam_layer: str | None = None
        self._rf_unit: tuple[int, int] | None = None
        self._weights_layer: str | None = None
        self._device = "auto"
        self._dtype = "float32"
        self._pre_override: dict[str, Any] | None = None
        self._labels_override: tuple[str, ...] | None = None
        self._topk = 5
        self._result: InspectResult | None = None
        self._pending_export: ExportJob | None = None
        self._export_seq = 0
        self._source: Any = None
        self._own_source = False
        self._frozen = False
        self._live_frames = 0
        self._result_times: list[float] = []
        self._load_reqs: dict[int, LoadRequest] = {}
        self._current_load: LoadRequest | None = None
        self._loading = False

        self._relay = _Relay(self)
        self.engine = InspectEngine()
        self.inference = LatestRequestWorker(self.engine, self, name="cnnviz-inspector")
        self.loader = LatestRequestWorker(run_load, self, name="cnnviz-model-loader")
        self.inference.resultReady.connect(self._on_result)
        self.inference.errorRaised.connect(self._on_inference_error)
        self.inference.busyChanged.connect(self._on_busy)
        self.loader.resultReady.connect(self._on_loaded)
        self.loader.errorRaised.connect(self._on_load_error)
        q = Qt.ConnectionType.QueuedConnection
        self._relay.stage.connect(self._on_stage, q)
        self._relay.download.connect(self._on_download, q)
        self._relay.exportProgress.connect(self._on_export_progress, q)
        relay = self._relay
        self.engine.export_progress = lambda job, done, total, what: relay.exportProgress.emit(job, done, total, what)
        self._relay.sourceError.connect(self._on_source_error, q)
        self._relay.sourceStopped.connect(self._on_source_stopped, q)

        self._poll = QTimer(self)
        self._poll.setObjectName("inspector-source-poll")
        self._poll.setInterval(10)
        self._poll.timeout.connect(self._poll_source)

        self._build_ui()
        self.resize(1500, 940)
        for w in self._startup_warnings:
            self.show_message(w, error=True)

        if not load_demo:
            self.predictions.set_predictions([], "No model yet: Model ▸ Open model…")
            self._set_pixels(self.canvas.pixels(), "drawing canvas")
        else:
            self.canvas_panel.load_sample()  # the sample digit as the first input
            if self._pixels is None:
                self._set_pixels(self.canvas.pixels(), "drawing canvas")
            self.load_model_spec("demo")

    # =========================================================================================
    # UI
    # =========================================================================================
    def _build_ui(self) -> None:
        self.tabs = QTabWidget()
        self.tabs.setObjectName("inspector-tabs")
        self.activations = ActivationPanel()
        self.grid = self.activations.grid
        self.detail = self.activations.detail
        self.overview = OverviewView()
        self.weights_view = WeightsView()
        self.cam_view = CamView()
        self.rf_view = RFView()
        for w, title in zip((self.activations, self.overview, self.weights_view, self.cam_view, self.rf_view),
                            TAB_TITLES):
            self.tabs.addTab(w, title)
        self.setCentralWidget(self.tabs)

        # input dock: canvas / preview, then predictions
        inp = QWidget()
        il = QVBoxLayout(inp)
        il.setContentsMargins(4, 4, 4, 4)
        self.input_label = QLabel("")
        self.input_label.setObjectName("input-label")
        self.input_label.setWordWrap(True)
        il.addWidget(self.input_label)
        self.input_stack = QStackedWidget()
        self.canvas_panel = CanvasPanel(sample=_sample_digit())
        self.canvas = self.canvas_panel.canvas
        self.preview = ImageView(smooth=True, min_size=120)
        self.preview.setObjectName("input-preview")
        self.input_stack.addWidget(self.canvas_panel)
        self.input_stack.addWidget(self.preview)
        il.addWidget(self.input_stack, 1)
        self.freeze_button = QPushButton("Freeze")
        self.freeze_button.setObjectName("freeze-button")
        self.freeze_button.setCheckable(True)
        self.freeze_button.setEnabled(False)
        self.freeze_button.setToolTip("Keep the current frame for study (live input)")
        self.freeze_button.toggled.connect(self.set_frozen)
        il.addWidget(self.freeze_button)
        head = QLabel("<b>Predictions</b>")
        il.addWidget(head)
        self.predictions = PredictionsView()
        self.predictions.setObjectName("predictions")
        self.predictions.note = "Loading the model…"
        il.addWidget(self.predictions)
        self.dock_input = self._dock("Input", "input", inp, Qt.DockWidgetArea.LeftDockWidgetArea)

        self.layer_table = LayerTable()
        self.dock_layers = self._dock("Layers", "layers", self.layer_table, Qt.DockWidgetArea.RightDockWidgetArea)
        self.model_panel = ModelPanel()
        self.dock_model = self._dock("Model", "model", self.model_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.dock_layers, self.dock_model)
        self.dock_layers.raise_()
        self.resizeDocks([self.dock_input, self.dock_layers], [270, 560], Qt.Orientation.Horizontal)

        self._build_actions()
        self._build_statusbar()

        self.canvas.imageChanged.connect(self._on_canvas)
        self.activations.channelSelected.connect(self.select_channel)
        self.activations.layerStep.connect(self.step_layer)
        self.activations.pixelClicked.connect(self._on_detail_clicked)
        self.layer_table.layerSelected.connect(self.select_layer)
        self.overview.layerSelected.connect(self._on_overview_layer)
        self.weights_view.weightsLayerChanged.connect(self._on_weights_layer)
        self.cam_view.classChanged.connect(self._on_cam_class)
        self.cam_view.layerChanged.connect(self._on_cam_layer)
        self.rf_view.unitClicked.connect(self._on_unit_clicked)
        self.predictions.classClicked.connect(self._on_prediction_clicked)
        self.tabs.currentChanged.connect(lambda _i: self._request())
        self.model_panel.pre.applied.connect(self._on_pre_applied)
        self.model_panel.pre.reset.connect(self._on_pre_reset)
        self.model_panel.labelsRequested.connect(self.load_labels_dialog)

    def _dock(self, title: str, name: str, widget: QWidget, area) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(f"dock-{name}")
        d.setWidget(widget)
        d.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(area, d)
        return d

    def _action(self, text: str, slot, shortcut=None, tip: str = "", name: str = "") -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setToolTip(tip)
            a.setStatusTip(tip)
        a.setObjectName(name or text)
        a.triggered.connect(slot)
        return a

    def _build_actions(self) -> None:
        self.act_open = self._action("&Open model…", self.open_model_dialog, QKeySequence.StandardKey.Open,
                                     "Open a torchvision model, a Python class, TorchScript, .pt2 or a pickled model",
                                     "act-open-model")
        self.act_demo = self._action("&Demo model", lambda: self.load_model_spec("demo"), None,
                                     "The bundled handwritten-digits CNN", "act-demo")
        self.act_labels = self._action("Load &labels…", self.load_labels_dialog, None, "Class names for the outputs",
                                       "act-labels")
        self.act_draw = self._action("&Draw", self.use_canvas, None, "Draw the input with the mouse", "act-draw")
        self.act_image = self._action("Open &image…", self.open_image_dialog, "Ctrl+Shift+O",
                                      "Use a picture as the input", "act-image")
        self.act_video = self._action("Open &video…", self.open_video_dialog, None, "Play a video file into the model",
                                      "act-video")
        self.act_webcam = self._action("&Webcam", self.open_webcam, None, "Use the first webcam as the input",
                                       "act-webcam")
        self.act_export_png = self._action("Layer grid as &PNG…", self.export_grid_dialog, "Ctrl+S",
                                           "The selected layer's tiles as one picture", "act-export-png")
        self.act_export_npz = self._action("All layers as .&npz…", self.export_npz_dialog, None,
                                           "Every layer's activation for this input", "act-export-npz")
        self.act_export_csv = self._action("Layer &statistics as CSV…", self.export_csv_dialog, None,
                                           "min, max, mean, std, % zeros and dead channels of every layer",
                                           "act-export-csv")
        self.act_close = self._action("&Close", self.close, QKeySequence.StandardKey.Close, "", "act-close")

        mb = self.menuBar()
        m = mb.addMenu("&Model")
        m.addAction(self.act_open)
        self.recent_menu = m.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        m.addAction(self.act_demo)
        m.addSeparator()
        m.addAction(self.act_labels)
        m.addSeparator()
        from cnnviz.qt.featureviz import add_featureviz_action  # noqa: PLC0415 - "What a channel looks for…"
        self.act_featviz = add_featureviz_action(self, m)
        m.addAction(self.act_close)
        m = mb.addMenu("&Input")
        for a in (self.act_draw, self.act_image, self.act_video, self.act_webcam):
            m.addAction(a)
        m = mb.addMenu("&Export")
        for a in (self.act_export_png, self.act_export_npz, self.act_export_csv):
            m.addAction(a)
        m = mb.addMenu("&View")
        for d in (self.dock_input, self.dock_layers, self.dock_model):
            m.addAction(d.toggleViewAction())

        tb = QToolBar("Inspector")
        tb.setObjectName("inspector-toolbar")
        tb.addAction(self.act_open)
        tb.addAction(self.act_demo)
        tb.addSeparator()
        tb.addWidget(QLabel(" Device "))
        self.device_box = QComboBox()
        self.device_box.setObjectName("device-box")
        self.device_box.addItems(["auto", "cpu"])
        self.device_box.setToolTip("auto: CUDA, then Apple MPS, then the CPU")
        self.device_box.currentTextChanged.connect(self._on_device)
        tb.addWidget(self.device_box)
        tb.addWidget(QLabel(" Precision "))
        self.dtype_box = QComboBox()
        self.dtype_box.setObjectName("dtype-box")
        self.dtype_box.addItems(PRECISIONS)
        self.dtype_box.setToolTip("float16 / bfloat16 run on GPUs only")
        self.dtype_box.currentTextChanged.connect(self._on_dtype)
        tb.addWidget(self.dtype_box)
        tb.addSeparator()
        tb.addAction(self.act_draw)
        tb.addAction(self.act_image)
        tb.addSeparator()
        tb.addAction(self.act_export_png)
        self.addToolBar(tb)
        self.toolbar = tb

    def _build_statusbar(self) -> None:
        sb = self.statusBar()
        self.status_loading = QLabel("")
        self.status_loading.setObjectName("status-loading")
        self.load_progress = QProgressBar()
        self.load_progress.setObjectName("load-progress")
        self.load_progress.setFixedWidth(160)
        self.load_progress.setRange(0, 0)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("load-cancel")
        self.cancel_button.setToolTip("Stop loading this model; the model shown so far stays.")
        self.cancel_button.clicked.connect(self.cancel_load)
        self.status_model = QLabel("")
        self.status_model.setObjectName("status-model")
        self.status_time = QLabel("")
        self.status_time.setObjectName("status-time")
        self.status_device = QLabel("device: —")
        self.status_device.setObjectName("status-device")
        self.task_label = QLabel("")
        self.task_label.setObjectName("task-label")
        self.task_progress = QProgressBar()
        self.task_progress.setObjectName("task-progress")
        self.task_progress.setFixedWidth(140)
        self.task_progress.setToolTip("Writing the export: one step per layer")
        for w in (self.task_label, self.task_progress, self.status_loading, self.load_progress, self.cancel_button,
                  self.status_model, self.status_time, self.status_device):
            sb.addPermanentWidget(w)
        self._set_loading_ui(False)
        self._set_task_ui(None)

    # =========================================================================================
    # public API
    # =========================================================================================
    def load_model_spec(self, spec: str, weights: str | None = None, trust: bool | None = None, *,
                        ctor_kwargs: str | None = None, labels: str | None = None) -> int:
        """Load a model on the loader thread; returns the load request id (0 when closing).

        ``trust``: ``None`` asks with the trust dialog when the file can run code and is not
        in the trust store; ``True`` means the caller vouches for it (nothing remembered);
        ``False`` refuses such files with a message. The current model stays until the new
        one has loaded; a failure leaves it in place and says why.
        """
        if self._closing:
            return 0
        req = LoadRequest(
            spec=str(spec), weights=None if weights is None else str(weights),
            ctor_kwargs=ctor_kwargs, labels_path=None if labels is None else str(labels),
            trust=bool(trust), ask=trust is None, trust_store=self.trust_store,
            device=self._device, dtype=self._dtype,
            on_stage=self._relay.stage.emit, on_bytes=self._relay.download.emit,
        )
        return self._submit_load(req)

    def set_image(self, pixels: np.ndarray, label: str = "image") -> None:
        """Use a still picture (float32 HxW or HxWx3 in [0, 1], or uint8) as the input.

        A live source is detached (and stopped when the window owns it)."""
        arr = _as_input_pixels(pixels)
        self._detach_source()
        self.input_stack.setCurrentWidget(self.preview)
        self.preview.set_array(_display_u8(arr))
        self._set_pixels(arr, label)

    def set_source(self, source: Any, *, own: bool = True) -> bool:
        """Feed frames from a :class:`~cnnviz.core.sources.FrameSource` (``None`` detaches).

        The model runs on each new frame, latest wins: a frame is taken from the source's
        one-slot buffer only when the inference worker is idle, so frames the model cannot
        keep up with are dropped, never queued. The source is started if needed; with
        ``own=True`` the window stops it when it is replaced, detached or the window closes.
        Returns False (and says why) when the source cannot start.
        """
        self._detach_source()
        if source is None:
            self.freeze_button.setEnabled(False)
            return True
        try:
            if not source.is_running:
                source.start()
        except SourceError as exc:
            self.show_error(exc, "Could not start the source")
            return False
        source.on_error = self._relay.sourceError.emit
        source.on_stopped = self._relay.sourceStopped.emit
        self._source = source
        self._own_source = own
        self._live_frames = 0
        self._input_label = getattr(source, "name", "live source")
        self.input_stack.setCurrentWidget(self.preview)
        self.freeze_button.setEnabled(True)
        self.set_frozen(False)
        self._poll.start()
        self._update_input_label()
        return True

    def source(self) -> Any:
        return self._source

    def current_capture(self) -> InspectResult | None:
        """The result on screen (numpy only): layers, the selected layer's activation and
        per-channel stats, predictions, and whatever views were open."""
        return self._result

    def current_input(self) -> np.ndarray | None:
        """The input picture the model runs on (read-only; before preprocessing)."""
        return self._pixels

    def current_model(self) -> Any:
        """The loaded :class:`~cnnviz.core.models.LoadedModel` (for reading only: the model
        runs on the inference thread), or None."""
        return self._model

    def selected_layer(self) -> str | None:
        return self._layer

    def selected_channel(self) -> int:
        return self._channel

    def select_layer(self, name: str) -> None:
        """Show layer ``name`` (a name from the layer table)."""
        if not name or name == self._layer:
            return
        self._layer = name
        self._rf_unit = None
        self.layer_table.select(name)
        self.overview.set_selected(name)
        self._request()

    def select_channel(self, i: int) -> None:
        """Show channel ``i`` of the selected layer large (clamped to the layer)."""
        n = self.grid.tile_count()
        i = int(i) if n == 0 else min(max(int(i), 0), n - 1)
        if i == self._channel and self.grid.selected == i:
            return
        self._channel = i
        self.activations.select_channel(i)
        self._refresh_rf_map()
        if self._rf_unit is not None and self._tab_key() == "rf":
            self._request()

    def step_layer(self, d: int) -> None:
        names = self._result.names() if self._result is not None else []
        if not names:
            return
        i = names.index(self._layer) if self._layer in names else 0
        self.select_layer(names[min(max(i + d, 0), len(names) - 1)])

    def show_tab(self, key: str) -> None:
        self.tabs.setCurrentIndex(TAB_KEYS.index(key))

    def set_rf_unit(self, y: int, x: int) -> None:
        self._on_unit_clicked(y, x)

    def set_frozen(self, frozen: bool) -> None:
        """Freeze: keep the current frame (the source stops publishing) for study."""
        self._frozen = bool(frozen)
        if self.freeze_button.isChecked() != self._frozen:
            self.freeze_button.blockSignals(True)
            self.freeze_button.setChecked(self._frozen)
            self.freeze_button.blockSignals(False)
        if self._source is not None:
            try:
                self._source.freeze(self._frozen)
            except Exception:  # noqa: BLE001 - a source without freeze: we just stop pulling
                pass
        self._update_input_label()

    def use_canvas(self) -> None:
        """Back to the drawing canvas as the input."""
        self._detach_source()
        self.input_stack.setCurrentWidget(self.canvas_panel)
        self._set_pixels(self.canvas.pixels(), "drawing canvas")

    # =========================================================================================
    # loading
    # =========================================================================================
    def _submit_load(self, req: LoadRequest) -> int:
        if self._current_load is not None:
            self._current_load.cancel.set()  # a new choice wins over a running download
        self._current_load = req
        first = "Loading PyTorch…" if "torch" not in sys.modules else f"Loading {req.spec}…"  # before the thread imports it
        rid = self.loader.submit(req)
        self._load_reqs[rid] = req
        self._set_loading_ui(True, first)
        if self._model is None:
            self.predictions.set_predictions([], first)
        return rid

    def cancel_load(self) -> None:
        """Cancel a download in progress (nothing is left in the cache)."""
        if self._current_load is not None:
            self._current_load.cancel.set()
            self.status_loading.setText("Cancelling…")

    def is_loading(self) -> bool:
        return self._loading

    def _set_loading_ui(self, on: bool, text: str = "") -> None:
        self._loading = on
        self.status_loading.setText(text if on else "")
        self.status_loading.setVisible(on)
        self.load_progress.setVisible(on)
        self.cancel_button.setVisible(on)
        if on:
            self.load_progress.setRange(0, 0)

    def _on_stage(self, text: str) -> None:
        if self._loading:
            self.status_loading.setText(text)
            if self._model is None:
                self.predictions.set_predictions([], text)

    def _on_download(self, done: Any, total: Any) -> None:
        if not self._loading:
            return
        if total:
            self.load_progress.setRange(0, 1000)
            self.load_progress.setValue(int(1000 * min(1.0, int(done) / int(total))))
            self.status_loading.setText(f"Downloading weights: {int(done) / 2**20:.1f} / {int(total) / 2**20:.1f} MB")
        else:
            self.status_loading.setText(f"Downloading weights: {int(done) / 2**20:.1f} MB")

    def _on_loaded(self, rid: int, out: LoadOutcome) -> None:
        self._load_reqs.pop(rid, None)
        if self._closing:
            return
        self._set_loading_ui(False)
        self._current_load = None
        self._install(out)

    def _install(self, out: LoadOutcome) -> None:
        self._token += 1
        self._model = out.model
        self._model_info = dict(out.info)
        self._pre_override = None
        self._labels_override = None
        self._layer = None
        self._channel = 0
        self._cam_class = None
        self._cam_layer = None
        self._rf_unit = None
        self._weights_layer = None
        self._result = None
        self.model_panel.pre.set_status("")
        if self._pending_export is not None:
            self.show_message("The export was dropped: another model was loaded before it was written", error=True)
        self._pending_export = None
        self._set_task_ui(None)
        self.inference.invalidate()  # nothing computed for the old model may show now
        devices = ["auto", *[d for d in out.devices if d != "auto"]]
        self.device_box.blockSignals(True)
        self.device_box.clear()
        self.device_box.addItems(devices)
        self.device_box.setCurrentText(self._device if self._device in devices else "auto")
        self.device_box.blockSignals(False)
        self.model_panel.set_model(out.info, out.preprocessing, out.labels)
        self.status_model.setText(f"{out.info.get('name')}")
        self._set_device_status(out.info.get("device"), out.info.get("dtype"), out.gpu)
        req = out.request
        self.recent.add(LoadChoice(req.spec, req.weights, req.ctor_kwargs, req.labels_path))
        self.setWindowTitle(f"cnnviz — model inspector — {out.info.get('name')}")
        self.show_message(f"Loaded {out.info.get('name')} in {out.seconds:.1f} s")
        self.modelLoaded.emit(str(out.info.get("name")))
        self._request()

    def _on_load_error(self, rid: int, exc: BaseException) -> None:
        req = self._load_reqs.pop(rid, None)
        if self._closing:
            return
        self._set_loading_ui(False)
        self._current_load = None
        from cnnviz.core.weights_download import DownloadCancelled

        if isinstance(exc, TrustRequired) and req is not None and req.ask:
            accepted, remember = self._ask_trust(exc)
            sha = getattr(exc, "sha256", None)
            if accepted:
                if remember and sha and self.trust_store is not None:
                    try:
                        self.trust_store.trust_hash(sha, getattr(exc, "path", None))
                    except (CnnvizError, ValueError) as err:
                        self.show_error(err, "Could not remember the trusted file")
                self._submit_load(req.with_trusted(sha))
                return
            name = Path(str(getattr(exc, "path", req.spec))).name
            msg = f"Not loaded: you did not trust {name}, so nothing from it ran. The previous model stays."
            self.show_message(msg, error=True)
            self.loadFailed.emit(msg)
            return
        if isinstance(exc, DownloadCancelled):
            msg = "Download cancelled; nothing was saved and the previous model stays."
            self.show_message(msg)
            self.loadFailed.emit(msg)
            return
        self._show_load_error(exc, req)

    def _ask_trust(self, err: BaseException) -> tuple[bool, bool]:
        """Show the trust dialog (modal). Returns ``(trusted, remember)``."""
        dlg = TrustDialog(err, self)
        try:
            ok = dlg.exec() == QDialog.DialogCode.Accepted
            return ok, dlg.remember
        finally:
            dlg.deleteLater()

    def _show_load_error(self, exc: BaseException, req: LoadRequest | None) -> None:
        what = req.spec if req is not None else "the model"
        text = _error_text(exc)
        msg = f"Could not load {what}: {text}"
        self.show_message(msg + (" (the previous model stays)" if self._model is not None else ""), error=True)
        self.loadFailed.emit(msg)
        if isinstance(exc, CnnvizError):
            body = f"<p><b>What went wrong:</b> {html.escape(exc.cause)}</p>"
            if exc.fix:
                body += f"<p><b>How to fix it:</b> {html.escape(exc.fix)}</p>"
            details = None
        else:
            body = (f"<p><b>What went wrong:</b> {html.escape(text)}</p><p>This looks like a bug in cnnviz or "
                    "in the model's code; the details below help to report it.</p>")
            details = getattr(exc, "cnnviz_traceback", None) or "".join(
                traceback.format_exception(type(exc), exc, exc.__traceback__))
        if self._model is not None:
            body += f"<p>The window keeps showing {html.escape(str(self._model_info.get('name')))}.</p>"
        self._show_box(QMessageBox.Icon.Warning, "Could not load the model", body, details)

    def _show_box(self, icon, title: str, body: str, details: str | None = None) -> QMessageBox:
        if self._error_box is not None:
            self._error_box.close()
        box = QMessageBox(icon, f"cnnviz — {title}", body, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("inspector-error-box")
        box.setTextFormat(Qt.TextFormat.RichText)
        if details:
            box.setDetailedText(details)
        box.setModal(False)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.destroyed.connect(lambda *_: setattr(self, "_error_box", None))
        box.show()
        self._error_box = box
        return box

    def error_box(self) -> QMessageBox | None:
        """The error dialog on screen, if any (tests)."""
        return self._error_box

    def open_model_dialog(self) -> None:
        dlg = LoadDialog(self, self.recent)
        try:
            if dlg.exec() != QDialog.DialogCode.Accepted:
                return
            c = dlg.choice()
        finally:
            dlg.deleteLater()
        self.load_model_spec(c.spec, c.weights, None, ctor_kwargs=c.ctor_kwargs, labels=c.labels)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        items = self.recent.items()
        if not items:
            a = self.recent_menu.addAction("(none yet)")
            a.setEnabled(False)
            return
        for c in items:
            a = self.recent_menu.addAction(c.title())
            a.setToolTip(c.spec)
            # never trusted here: a code-bearing file goes through the trust store / dialog
            a.triggered.connect(lambda _=False, c=c: self.load_model_spec(c.spec, c.weights, None,
                                                                          ctor_kwargs=c.ctor_kwargs, labels=c.labels))

    def load_labels_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Class names", str(Path.home()),
                                              "Labels (*.txt *.json);;All files (*)")
        if path:
            self.load_labels(path)

    def load_labels(self, path: str | Path) -> bool:
        """Class names for the current model from a file (one per line, or JSON)."""
        if self._model is None:
            self.show_message("Open a model first, then its labels", error=True)
            return False
        from cnnviz.core.models import load_labels  # torch is loaded: a model is

        try:
            labels = load_labels(path)
        except CnnvizError as exc:
            self.show_error(exc, "Could not read the labels")
            return False
        self._labels_override = tuple(labels)
        self.model_panel.set_labels(list(labels), Path(path).name)
        self.show_message(f"{len(labels)} class names from {Path(path).name}")
        self._request()
        return True

    # =========================================================================================
    # input
    # =========================================================================================
    def _set_pixels(self, pixels: np.ndarray, label: str) -> None:
        self._pixels = _as_input_pixels(pixels)
        self._frame_id += 1
        self._input_label = label
        self._update_input_label()
        self._request()

    def _update_input_label(self) -> None:
        if self._pixels is None:
            self.input_label.setText("No input yet")
            return
        h, w = self._pixels.shape[:2]
        kind = "RGB" if self._pixels.ndim == 3 else "grey"
        text = f"<b>{html.escape(self._input_label)}</b> · {w}×{h} {kind}"
        if self._source is not None:
            st = {}
            try:
                st = self._source.stats()
            except Exception:  # noqa: BLE001
                pass
            text += (f"<br>{'frozen' if self._frozen else 'live'} · {self._live_frames} frames run · "
                     f"{st.get('dropped', 0)} dropped")
        self.input_label.setText(text)

    def _on_canvas(self, pixels: np.ndarray) -> None:
        if self.input_stack.currentWidget() is self.canvas_panel and self._source is None:
            self._set_pixels(pixels, "drawing canvas")

    def open_image_dialog(self) -> None:
        from cnnviz.core.images import SUPPORTED_EXTENSIONS

        exts = " ".join(f"*{e}" for e in SUPPORTED_EXTENSIONS) if SUPPORTED_EXTENSIONS else "*"
        path, _ = QFileDialog.getOpenFileName(self, "Input image", str(Path.home()),
                                              f"Images ({exts});;All files (*)")
        if path:
            self.open_image(path)

    def open_image(self, path: str | Path) -> bool:
        from cnnviz.core.images import load_image

        try:
            img = load_image(path)
        except CnnvizError as exc:
            self.show_error(exc, "Could not open the image")
            return False
        self.set_image(img.pixels, Path(path).name)
        return True

    def open_video_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Video file", str(Path.home()),
                                              "Videos (*.mp4 *.avi *.mkv *.mov *.webm);;All files (*)")
        if path:
            from cnnviz.core.sources import VideoFileSource

            self.set_source(VideoFileSource(path))

    def open_webcam(self) -> None:
        from cnnviz.core.sources import WebcamSource

        self.set_source(WebcamSource(0))

    def _detach_source(self) -> None:
        self._poll.stop()
        src, self._source = self._source, None
        if src is None:
            return
        src.on_error = None
        src.on_stopped = None
        if self._own_source:
            try:
                src.stop()
            except Exception:  # noqa: BLE001 - closing must not fail
                pass
        self._own_source = False
        self.freeze_button.setEnabled(False)

    def _poll_source(self) -> None:
        src = self._source
        if src is None or self._frozen or self._model is None or self._closing:
            return
        if self.inference.is_busy():
            return  # the model is busy: newer frames replace this one in the source's buffer
        frame = src.buffer.get(timeout=0)
        if frame is None:
            return
        self._live_frames += 1
        self.preview.set_array(frame.pixels)
        self._set_pixels(frame.pixels, getattr(src, "name", "live"))

    def _on_busy(self, busy: bool) -> None:
        if not busy and self._source is not None:
            self._poll_source()

    def _on_source_error(self, err: Any) -> None:
        if isinstance(err, BaseException) and not self._closing:
            self.show_error(err, "The live source stopped")

    def _on_source_stopped(self, reason: str) -> None:
        if self._source is not None and not self._closing:
            self.show_message(f"{getattr(self._source, 'name', 'The source')} stopped ({reason}); the last frame stays")
            self._poll.stop()
            self._update_input_label()

    # =========================================================================================
    # requests and results
    # =========================================================================================
    def _tab_key(self) -> str:
        return TAB_KEYS[self.tabs.currentIndex()]

    def _views(self) -> frozenset[str]:
        return frozenset({"grid", self._tab_key()})

    def build_request(self) -> InspectRequest | None:
        if self._model is None or self._pixels is None:
            return None
        return InspectRequest(
            token=self._token, model=self._model, pixels=self._pixels, frame_id=self._frame_id,
            device=self._device, dtype=self._dtype, preprocessing=self._pre_override, labels=self._labels_override,
            layer=self._layer, channel=self._channel, views=self._views(), cam_class=self._cam_class,
            cam_layer=self._cam_layer, rf_unit=self._rf_unit, weights_layer=self._weights_layer, topk=self._topk,
            export=self._pending_export,
        )

    def _request(self) -> int:
        if self._closing:
            return 0
        req = self.build_request()
        if req is None:
            return 0
        return self.inference.submit(req)

    def _on_result(self, rid: int, res: InspectResult) -> None:
        if self._closing or res.token != self._token:
            return
        prev = self._result
        self._result = res
        self.model_panel.pre.set_status("")
        self._handle_export(res)
        if res.message:
            self.show_message(res.message, error=True)
        self._sync_device(res)
        new_layer = prev is None or prev.layer != res.layer or prev.token != res.token
        self.layer_table.set_layers(res.layers)
        self._layer = res.layer
        if new_layer:  # not on every live frame: the user may be scrolling the table
            self.layer_table.select(res.layer)
        info = res.layer_info()
        n = 0 if res.activation is None else int(res.activation.shape[0])
        if self._channel >= n:
            self._channel = 0
        if info is not None:
            self.activations.set_layer(info.name, info.type, info.shape_text, res.activation, res.channel_stats,
                                       self._channel, new_layer)
        note = res.errors.get("predictions", "the model's output has no class scores")
        self.predictions.set_predictions(res.predictions, note)
        self.model_panel.check_label_count(res.n_classes)
        if res.overview is not None:
            fresh = prev is None or prev.overview is None or new_layer
            self.overview.set_rows(res.overview)
            if fresh:
                self.overview.set_selected(res.layer)
            else:
                self.overview.rows_widget.selected = res.layer
        if "weights" in self._views():
            current = res.weights.layer if res.weights is not None else None
            self.weights_view.set_conv_layers(res.conv_layers, current)
            self.weights_view.set_weights(res.weights)
            self.weights_view.set_activation_hist(res.layer, res.act_hist)
        if res.cam is not None or "cam" in res.errors:
            spatial = [li.name for li in res.layers if li.spatial]
            self.cam_view.set_choices(res.labels, res.n_classes, spatial, res.cam_default_layer, self._cam_class,
                                      self._cam_layer)
            self.cam_view.set_cam(res.cam, res.input_image, res.errors.get("cam"))
        self._refresh_rf_map()
        if "rf" in self._views():
            self.rf_view.set_rf(res.rf, res.input_image, res.errors.get("rf"))
        self._update_timing(res)
        self._update_input_label()
        self.resultShown.emit(rid)

    def _refresh_rf_map(self) -> None:
        res = self._result
        if res is None:
            return
        info = res.layer_info()
        tiles = self.grid.tiles()
        tile = tiles[self._channel] if tiles is not None and self._channel < len(tiles) else None
        self.rf_view.set_map(res.layer, self._channel, tile, bool(info is not None and info.spatial), self._rf_unit)

    def _on_inference_error(self, rid: int, exc: BaseException) -> None:
        if self._closing:
            return
        if self._pending_export is not None:  # its result will not come: say so, stop the bar
            self._pending_export = None
            self._set_task_ui(None)
            self.show_message("The export was not written: the model could not run on this input", error=True)
        why = exc.cause if isinstance(exc, CnnvizError) else f"{type(exc).__name__}: {exc}"
        if self._result is None:
            # Nothing computed for this model yet: the views must not go on showing the
            # previous model's layers and predictions as if they were this one's.
            self._clear_views(why)
        else:  # the views show the last input and settings that worked: say so by the form
            fix = f"; {exc.fix}" if isinstance(exc, CnnvizError) and exc.fix else ""
            self.model_panel.pre.set_status(f"The model could not run with these settings: {why}{fix}. "
                                            "The views still show the last settings that worked.")
        if isinstance(exc, CnnvizError):
            self.show_error(exc, "The model could not run on this input")
        else:  # a bug, not bad input: the details dialog (the worker has logged the traceback)
            details = getattr(exc, "cnnviz_traceback", None) or "".join(
                traceback.format_exception(type(exc), exc, exc.__traceback__))
            self.report_exception(f"{type(exc).__name__}: {exc}", details)

    def _clear_views(self, why: str) -> None:
        """Empty every view of results, with ``why`` where the activations were."""
        note = f"The model could not run on this input: {why}"
        self._layer = None
        self.layer_table.set_layers([])
        self.activations.show_nothing(note)
        self.status_time.setText("")
        self.predictions.set_predictions([], note)
        self.overview.set_rows(None)
        self.weights_view.set_weights(None)
        self.cam_view.set_cam(None, None, note)
        self.rf_view.set_rf(None, None, note)

    def _handle_export(self, res: InspectResult) -> None:
        job = res.export_done
        if job is None or job != self._pending_export:
            return
        self._pending_export = None
        self._set_task_ui(None)
        paths = [p for p in (job.npz_path, job.csv_path) if p]
        if res.export_error:
            msg = f"Export failed: {res.export_error}"
            self.show_message(msg, error=True)
        else:
            msg = "Exported " + " and ".join(paths)
            self.show_message(msg)
        self.exportFinished.emit(msg)

    def _sync_device(self, res: InspectResult) -> None:
        if "device" in res.errors:
            self.show_message(f"Could not switch: {res.errors['device']}", error=True)
            # back to where the model really is, so the next request does not fail again
            self._dtype = res.dtype
            if self._device != "auto" and self._device != res.device:
                self._device = res.device if self.device_box.findText(res.device) >= 0 else "auto"
            for box, value in ((self.device_box, self._device), (self.dtype_box, self._dtype)):
                box.blockSignals(True)
                box.setCurrentText(value)
                box.blockSignals(False)
        self._set_device_status(res.device, res.dtype, res.gpu)

    def _set_device_status(self, device: str | None, dtype: str | None, gpu: str | None) -> None:
        if device is None:
            self.status_device.setText("device: —")
        elif str(device).startswith(("cuda", "mps")) and gpu:
            self.status_device.setText(f"GPU: {gpu} · {dtype}")
        else:
            self.status_device.setText(f"CPU · {dtype}")

    def _update_timing(self, res: InspectResult) -> None:
        now = time.perf_counter()
        if not res.reused_capture:
            self._result_times.append(now)
            self._result_times = [t for t in self._result_times if now - t <= 2.0]
        ms = res.timings_ms.get("capture")
        fps = ""
        if len(self._result_times) >= 2 and self._result_times[-1] > self._result_times[0]:
            fps = f" · {(len(self._result_times) - 1) / (self._result_times[-1] - self._result_times[0]):.0f} runs/s"
        shape = "×".join(map(str, res.input_shape))
        text = f"input {shape}"
        if ms is not None:
            text += f" · forward {ms:.1f} ms"
        text += f" · total {res.timings_ms.get('total', 0):.1f} ms{fps}"
        self.status_time.setText(text)

    # -- view events
    def _on_overview_layer(self, name: str) -> None:
        self.select_layer(name)

    def _on_weights_layer(self, name: str) -> None:
        self._weights_layer = name
        self._request()

    def _on_cam_class(self, cls: Any) -> None:
        self._cam_class = None if cls is None else int(cls)
        self._request()

    def _on_cam_layer(self, layer: Any) -> None:
        self._cam_layer = layer
        self._request()

    def _on_prediction_clicked(self, cls: int) -> None:
        self._cam_class = int(cls)
        self.show_tab("cam")
        self._request()

    def set_cam(self, target_class: int | None = None, layer: str | None = None) -> None:
        """Grad-CAM for ``target_class`` (None: the predicted class) at ``layer`` (None: default)."""
        self._cam_class = target_class
        self._cam_layer = layer
        self._request()

    def _on_unit_clicked(self, y: int, x: int) -> None:
        self._rf_unit = (int(y), int(x))
        if self._tab_key() != "rf":
            self.show_tab("rf")  # requests too
        else:
            self._request()
        self._refresh_rf_map()

    def _on_detail_clicked(self, y: int, x: int) -> None:
        """A unit clicked in the large channel view: remembered for the receptive-field tab."""
        info = self._result.layer_info() if self._result is not None else None
        if info is not None and info.spatial:
            self._rf_unit = (int(y), int(x))
            self._refresh_rf_map()

    def _on_device(self, text: str) -> None:
        if not text:
            return
        self._device = text
        self._request()

    def _on_dtype(self, text: str) -> None:
        if not text:
            return
        self._dtype = text
        self._request()

    def _on_pre_applied(self, d: Any) -> None:
        form = self.model_panel.pre
        if isinstance(d, Exception):
            form.set_status(f"Not applied: {d}")
            self.show_message(f"Preprocessing not applied: {d}", error=True)
            return
        from cnnviz.core.models import Preprocessing  # torch is loaded: a model is

        try:
            pre = Preprocessing.from_dict(d)
        except CnnvizError as exc:
            form.set_status(f"Not applied: {exc.cause}; {exc.fix}" if exc.fix else f"Not applied: {exc.cause}")
            self.show_error(exc, "Preprocessing not applied")
            return
        form.set_status("")
        self._pre_override = pre.to_dict()
        self.show_message(f"Preprocessing: {pre.describe()}")
        self._request()

    def _on_pre_reset(self) -> None:
        self._pre_override = None
        if self._model is not None:
            self.model_panel.pre.set_values(self._model.preprocessing.to_dict())
        self._request()

    def set_preprocessing(self, d: dict[str, Any] | None) -> None:
        """Override the model's preprocessing (a ``Preprocessing.to_dict()`` dict; None resets)."""
        if d is None:
            self._on_pre_reset()
        else:
            self.model_panel.pre.set_values(d)
            self._on_pre_applied(dict(d))

    # =========================================================================================
    # export
    # =========================================================================================
    def export_grid_png(self, path: str | Path) -> Path | None:
        """The selected layer's tiles (current levels and colours) as one PNG."""
        from cnnviz.core.images import save_png

        arr = self.grid.mosaic()
        if arr is None:
            self.show_message("Nothing to export yet", error=True)
            return None
        try:
            save_png(path, arr)
        except (CnnvizError, OSError) as exc:
            self.show_error(exc, "Could not save the PNG")
            return None
        self.show_message(f"Saved {self._layer} ({self.grid.tile_count()} tiles) to {path}")
        return Path(path)

    def _export(self, npz: str | None = None, csv: str | None = None) -> int:
        if self._model is None or self._pixels is None:
            self.show_message("Nothing to export yet", error=True)
            return 0
        self._export_seq += 1
        prev = self._pending_export
        job = ExportJob(self._export_seq, npz_path=npz or (prev.npz_path if prev else None),
                        csv_path=csv or (prev.csv_path if prev else None))
        self._pending_export = job  # stays in every request until a result says it is done
        self._set_task_ui("Exporting…")
        self._request()
        return job.job_id

    def _set_task_ui(self, text: str | None) -> None:
        """Show (text) or hide (None) the status bar's export progress."""
        on = text is not None
        self.task_label.setText(text or "")
        self.task_label.setVisible(on)
        self.task_progress.setVisible(on)
        if on:
            self.task_progress.setRange(0, 0)  # busy until the worker reports steps

    def _on_export_progress(self, job_id: int, done: int, total: int, what: str) -> None:
        job = self._pending_export
        if job is None or job.job_id != job_id or self._closing:
            return
        if total > 0:
            self.task_progress.setRange(0, total)
            self.task_progress.setValue(min(done, total))
        self.task_label.setText(f"Exporting {what} ({done}/{total})" if total else "Exporting…")

    def export_npz(self, path: str | Path) -> int:
        """Every layer's activation (float32, batch dimension dropped, key = layer name) for
        the current input, written by the inference worker; ``exportFinished`` when done."""
        return self._export(npz=str(path))

    def export_csv(self, path: str | Path) -> int:
        """Per-layer statistics (min, max, mean, std, % zeros, dead channels) as CSV."""
        return self._export(csv=str(path))

    def _save_dialog(self, caption: str, suggested: str, filters: str) -> str | None:
        path, _ = QFileDialog.getSaveFileName(self, caption, str(Path.home() / suggested), filters)
        return path or None

    def export_grid_dialog(self) -> None:
        name = (self._layer or "layer").replace("/", "_")
        path = self._save_dialog("Save the layer grid", f"{name}.png", "PNG (*.png)")
        if path:
            self.export_grid_png(path)

    def export_npz_dialog(self) -> None:
        path = self._save_dialog("Save all layers", "activations.npz", "NumPy (*.npz)")
        if path:
            self.export_npz(path)

    def export_csv_dialog(self) -> None:
        path = self._save_dialog("Save layer statistics", "layer_stats.csv", "CSV (*.csv)")
        if path:
            self.export_csv(path)

    # =========================================================================================
    # messages, closing
    # =========================================================================================
    def show_message(self, text: str, error: bool = False, timeout: int = STATUS_MS) -> None:
        self.last_message = text
        self._status_is_error = error
        self.statusBar().showMessage(("⚠ " if error else "") + text, timeout if not error else 2 * timeout)

    def show_error(self, err: BaseException, context: str = "") -> None:
        text = _error_text(err)
        self.show_message(f"{context}: {text}" if context else text, error=True)

    def status_text_is_error(self) -> bool:
        return self._status_is_error

    def report_exception(self, summary: str, details: str) -> None:
        """An unexpected exception in a slot (a bug): status bar plus a dialog with details."""
        self.show_message(f"Internal error: {summary} (details in the dialog; please report it)", error=True)
        print(details, file=sys.stderr)
        if not self._closing:
            self._show_box(QMessageBox.Icon.Critical, "internal error",
                           f"<p>Something went wrong inside cnnviz:</p><p>{html.escape(summary)}</p>"
                           "<p>The window keeps working.</p>", details)

    def shutdown(self) -> None:
        """Stop the source, the timers and both worker threads (joined). Idempotent."""
        if self._closed:
            return
        self._closing = True
        self._closed = True
        self._poll.stop()
        self.canvas.stop()
        if self._current_load is not None:
            self._current_load.cancel.set()
        self._detach_source()
        ok = self.inference.shutdown(CLOSE_WAIT_MS)
        self.loader.shutdown(CLOSE_WAIT_MS)
        if ok:
            self.engine.close()  # hooks off the model; the inference thread has ended
        if self._error_box is not None:
            self._error_box.close()
        self.statusBar().clearMessage()  # stops the status bar's message timer

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.shutdown()
        super().closeEvent(event)
