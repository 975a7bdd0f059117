"""The model inspector window: walk a trained model layer by layer, live.

Data walks one way: **input (canvas, image, live frame) → the window's one
:class:`~cnnviz.core.inspect_engine.InspectorState` → frozen InspectRequest → the inference
worker (:class:`~cnnviz.core.inspect_engine.InspectEngine`: capture, explanations) →
numpy-only InspectResult → views.** Widgets write what the user chose into the state and are
updated from it with their signals blocked; the window never runs the model itself, never
touches a tensor, and no worker touches a widget.

Threads, each a :class:`~cnnviz.qt.workers.LatestRequestWorker`: the *loader*
(:mod:`.loading`: imports torch lazily and loads models), the *inference* worker (every
forward pass, Grad-CAM, receptive fields and device moves of the current model) and, while a
live source is attached, the frame wait (:mod:`.live_input`), which hands over a frame only
when the inference worker has become idle, so frames are dropped at the source and never
queued.

Closing the window stops the source and both workers and releases the model (its hooks are
removed, even from an inference that outlives the close wait, as soon as it returns).
Showing it again (the playground reuses the window) starts fresh workers and loads the
model again.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QDockWidget, QMainWindow, QMessageBox, QWidget

from cnnviz.core.errors import CnnvizError
from cnnviz.core.inspect_engine import InspectEngine, InspectorState
from cnnviz.core.inspect_load import LoadOutcome
from cnnviz.core.inspect_results import InspectResult
from cnnviz.core.resources import resources_dir
from cnnviz.qt.fault_dialog import FaultDialog
from cnnviz.qt.workers import LatestRequestWorker

from .actions import build_menus, load_labels_dialog
from .api import OUTPUTS_FILE, STATUS_MS, InspectorAPI  # noqa: F401 - re-exported
from .exporting import ExportActions
from .input_panel import InputPanel
from .layer_panel import LayerPanel
from .layer_table import LayerTable
from .load_dialog import LoadChoice, RecentModels
from .loading import ModelLoading, error_text
from .model_panel import ModelPanel
from .status import InspectorStatus
from .tabs import TAB_KEYS, ResultTabs

__all__ = ["InspectorWindow", "TAB_KEYS"]

TRUST_FILE = "trusted_models.json"
#: How long closing waits for each worker's current computation. A model load or forward
#: cannot be interrupted: one that takes longer is abandoned (its daemon thread ends when it
#: returns, its result is dropped, and the engine releases the model then) so the window
#: closes at once.
CLOSE_WAIT_MS = 500


def _sample_digit() -> Path:
    return resources_dir() / "samples" / "digit.png"


class InspectorWindow(InspectorAPI, QMainWindow):
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
    exportProgress(int, int, int, str)
        Emitted on the inference thread while an export is written: job id, steps done,
        steps in all, the layer.
    """

    resultShown = Signal(int)
    modelLoaded = Signal(str)
    loadFailed = Signal(str)
    exportFinished = Signal(str)
    exportProgress = Signal(int, int, int, str)

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
        self._faults = FaultDialog(self)  # the one internal-error dialog, shared with the playground

        from cnnviz.core.settings import config_dir as default_config_dir

        self.config_dir = Path(config_dir) if config_dir is not None else default_config_dir()
        self.trust_store = None
        warnings: list[str] = []
        try:
            from cnnviz.core.trust import TrustStore

            self.trust_store = TrustStore(self.config_dir / TRUST_FILE)
            if self.trust_store.warning:
                warnings.append(self.trust_store.warning)
        except CnnvizError as exc:
            warnings.append(error_text(exc))
        self.recent = RecentModels(self.config_dir)
        if self.recent.warning:
            warnings.append(self.recent.warning)

        #: What the user chose: the one copy (GUI thread only).
        self.state = InspectorState()
        self._result: InspectResult | None = None
        warn = self._read_outputs()
        if warn:
            warnings.append(warn)

        self._build_ui()
        self.exporter = ExportActions(self)
        self.loading = ModelLoading(self)
        self.loading.loaded.connect(self._install)
        self.loading.failed.connect(self.loadFailed)
        self.exportProgress.connect(self.exporter.on_progress, Qt.ConnectionType.QueuedConnection)
        self._start_inference()
        build_menus(self)
        self.resize(1500, 940)
        for w in warnings:
            self.show_message(w, error=True)

        if not load_demo:
            self.predictions.set_predictions([], "No model yet: Model ▸ Open model…")
            self.input.set_input(self.canvas.pixels(), "drawing canvas")
        else:
            self.canvas_panel.load_sample()  # the sample digit as the first input
            if self.state.pixels is None:
                self.input.set_input(self.canvas.pixels(), "drawing canvas")
            self.load_model_spec("demo")

    def _start_inference(self) -> None:
        self.engine = InspectEngine()
        self.engine.export_progress = self.exportProgress.emit  # called on the inference thread
        self.inference = LatestRequestWorker(self.engine, self, name="cnnviz-inspector")
        self.inference.resultReady.connect(self._on_result)
        self.inference.errorRaised.connect(self._on_inference_error)
        self.inference.busyChanged.connect(self._on_busy)

    @property
    def loader(self) -> LatestRequestWorker:
        """The loader worker (see :mod:`.loading`)."""
        return self.loading.worker

    # =========================================================================================
    # UI
    # =========================================================================================
    def _build_ui(self) -> None:
        self.tabs = ResultTabs()
        self.setCentralWidget(self.tabs)
        # the views by name (tests, screenshots and the Learn panel use them)
        self.activations, self.overview = self.tabs.activations, self.tabs.overview
        self.weights_view, self.cam_view, self.rf_view = self.tabs.weights_view, self.tabs.cam_view, self.tabs.rf_view
        self.grid, self.detail = self.activations.grid, self.activations.detail

        self.input = InputPanel(_sample_digit(), self.state, self._ready_for_frame)
        self.input.inputChanged.connect(self._request)
        self.input.message.connect(self.show_message)
        self.live = self.input.live
        self.canvas_panel, self.canvas, self.preview = self.input.canvas_panel, self.input.canvas, self.input.preview
        self.freeze_button, self.predictions = self.input.freeze_button, self.input.predictions
        self.task_panel = self.input.task
        self.dock_input = self._dock("Input", "input", self.input, Qt.DockWidgetArea.LeftDockWidgetArea)

        self.layer_table = LayerTable()
        self.dock_layers = self._dock("Layers", "layers", self.layer_table, Qt.DockWidgetArea.RightDockWidgetArea)
        self.model_panel = ModelPanel()
        self.dock_model = self._dock("Model", "model", self.model_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        # the selected layer's layout, below the table (split first, then the Model tab joins the table)
        self.layer_panel = LayerPanel()
        self.dock_layer = self._dock("Layer", "layer", self.layer_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.splitDockWidget(self.dock_layers, self.dock_layer, Qt.Orientation.Vertical)
        self.tabifyDockWidget(self.dock_layers, self.dock_model)
        self.dock_layers.raise_()
        self.resizeDocks([self.dock_input, self.dock_layers], [270, 560], Qt.Orientation.Horizontal)
        self.resizeDocks([self.dock_layers, self.dock_layer], [640, 220], Qt.Orientation.Vertical)

        self.status = InspectorStatus(self)
        # the status bar's widgets by their old names (tests and screenshots use them)
        self.status_loading, self.load_progress = self.status.loading, self.status.load_progress
        self.cancel_button, self.status_model = self.status.cancel_button, self.status.model
        self.status_time, self.status_device = self.status.time, self.status.device
        self.task_label, self.task_progress = self.status.task_label, self.status.task_progress
        self.cancel_button.clicked.connect(self.cancel_load)

        self.activations.channelSelected.connect(self.select_channel)
        self.activations.layerStep.connect(self.step_layer)
        self.activations.pixelClicked.connect(self._on_detail_clicked)
        self.layer_table.layerSelected.connect(self.select_layer)
        self.overview.layerSelected.connect(self.select_layer)
        self.weights_view.weightsLayerChanged.connect(self._on_weights_layer)
        self.cam_view.classChanged.connect(self._on_cam_class)
        self.cam_view.layerChanged.connect(self._on_cam_layer)
        self.rf_view.unitClicked.connect(self.set_rf_unit)
        self.predictions.classClicked.connect(self._on_prediction_clicked)
        self.tabs.currentChanged.connect(self._on_tab)
        self.model_panel.bind(self.state)
        self.model_panel.changed.connect(self._request)
        self.model_panel.message.connect(self.show_message)
        self.model_panel.labelsRequested.connect(lambda: load_labels_dialog(self))
        self.layer_panel.layoutChosen.connect(self.set_layout)
        self.layer_panel.everyOpChanged.connect(self.set_every_op)
        self.task_panel.outputChosen.connect(self.set_output)
        self.task_panel.thresholdChanged.connect(self.set_score_threshold)

    def _dock(self, title: str, name: str, widget: QWidget, area) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(f"dock-{name}")
        d.setWidget(widget)
        d.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(area, d)
        return d

    @staticmethod
    def _set_quietly(box: QComboBox, text: str) -> None:
        box.blockSignals(True)
        box.setCurrentText(text)
        box.blockSignals(False)

    # =========================================================================================
    # models
    # =========================================================================================
    def _install(self, out: LoadOutcome) -> None:
        if self.state.export is not None:
            self.show_message("The export was dropped: another model was loaded before it was written", error=True)
        self.state.set_model(out.model, out.info)
        self._result = None
        self.model_panel.pre.set_status("")
        self.status.set_task(None)
        self.inference.invalidate()  # nothing computed for the old model may show now
        devices = ["auto", *[d for d in out.devices if d != "auto"]]
        self.device_box.blockSignals(True)
        self.device_box.clear()
        self.device_box.addItems(devices)
        self.device_box.setCurrentText(self.state.device if self.state.device in devices else "auto")
        self.device_box.blockSignals(False)
        self.model_panel.set_model(out.info, out.preprocessing, out.labels)
        name = out.info.get("name")
        self.status.model.setText(f"{name}")
        self.status.set_device(out.info.get("device"), out.info.get("dtype"), out.gpu)
        req = out.request
        self.recent.add(LoadChoice(req.spec, req.weights, req.ctor_kwargs, req.labels_path))
        self.setWindowTitle(f"cnnviz — model inspector — {name}")
        self.show_message(f"Loaded {name} in {out.seconds:.1f} s")
        self.modelLoaded.emit(str(name))
        self._request()

    # =========================================================================================
    # requests and results
    # =========================================================================================
    def _request(self) -> int:
        if self._closing:
            return 0
        req = self.state.to_request()
        if req is None:
            return 0
        return self.inference.submit(req)

    def _ready_for_frame(self) -> bool:
        return self.state.model is not None and not self._closing and not self.inference.is_busy()

    def _on_busy(self, busy: bool) -> None:
        if not busy:
            self.input.want_frame()  # the model is free: the next live frame

    def _on_result(self, rid: int, res: InspectResult) -> None:
        if self._closing or res.token != self.state.token:
            return
        prev = self._result
        self._result = res
        self.model_panel.pre.set_status("")
        self.exporter.on_result(res)
        if res.message:
            self.show_message(res.message, error=True)
        self._sync_device(res)
        new_layer = prev is None or prev.layer != res.layer or prev.token != res.token
        self.layer_table.set_layers(res.layers)
        # a result for an older request (another layer was picked since) must not undo that pick
        current = rid == self.inference.latest_id
        if current or self.state.layer is None:
            self.state.layer = res.layer  # the engine's default when none was chosen
        if new_layer and current:  # not on every live frame: the user may be scrolling the table
            self.layer_table.select(res.layer)
        n = 0 if res.activation is None else int(res.activation.shape[0])
        if self.state.channel >= n:
            self.state.channel = 0
        task = res.task
        note = res.errors.get("predictions", "the model's output has no class scores")
        if task is not None and task.task != "classification" and not res.predictions:
            note = {"segmentation": "a class per pixel: see the map below",
                    "detection": "boxes: see the picture below", "keypoints": "boxes and keypoints: see below"
                    }.get(task.task, note)
        self.predictions.set_predictions(res.predictions, note)
        self.task_panel.set_task(task, res.errors.get("output") or (res.errors.get("predictions") if task is None
                                                                    else None))
        layout_error = res.errors.get("layout")
        if layout_error and (prev is None or prev.errors.get("layout") != layout_error):
            self.show_message(f"Layout not applied: {layout_error}", error=True)
        self.layer_panel.show_result(res, self.state.layouts)
        self.model_panel.check_label_count(res.n_classes)
        self.tabs.show_result(res, prev, self.state, new_layer)
        self.status.show_timing(res)
        self.input.refresh_label()
        self.resultShown.emit(rid)

    def _refresh_rf_map(self) -> None:
        self.tabs.refresh_rf_map(self._result, self.state)

    def _on_inference_error(self, rid: int, exc: BaseException) -> None:
        if self._closing:
            return
        self.exporter.on_error()
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
        self.state.layer = None
        self.layer_table.set_layers([])
        self.status.time.setText("")
        self.predictions.set_predictions([], note)
        self.task_panel.clear()
        self.tabs.clear(note)

    def _sync_device(self, res: InspectResult) -> None:
        st = self.state
        if "device" in res.errors:
            self.show_message(f"Could not switch: {res.errors['device']}", error=True)
            # back to where the model really is, so the next request does not fail again
            st.dtype = res.dtype
            if st.device != "auto" and st.device != res.device:
                st.device = res.device if self.device_box.findText(res.device) >= 0 else "auto"
            self._set_quietly(self.device_box, st.device)
            self._set_quietly(self.dtype_box, st.dtype)
        self.status.set_device(res.device, res.dtype, res.gpu)

    # -- view events: each writes the state, then asks for a result
    def _on_tab(self, index: int) -> None:
        self.state.view = self.tabs.key(index)
        self._request()

    def _on_weights_layer(self, name: str) -> None:
        self.state.weights_layer = name
        self._request()

    def _on_cam_class(self, cls: Any) -> None:
        self.state.cam_class = None if cls is None else int(cls)
        self._request()

    def _on_cam_layer(self, layer: Any) -> None:
        self.state.cam_layer = layer
        self._request()

    def _on_prediction_clicked(self, cls: int) -> None:
        self.state.cam_class = int(cls)
        self.show_tab("cam")
        self._request()

    def _on_detail_clicked(self, y: int, x: int) -> None:
        """A unit clicked in the large channel view: remembered for the receptive-field tab."""
        info = self._result.layer_info() if self._result is not None else None
        if info is not None and info.spatial:
            self.state.rf_unit = (int(y), int(x))
            self._refresh_rf_map()

    def _on_device(self, text: str) -> None:
        if text:
            self.state.device = text
            self._request()

    def _on_dtype(self, text: str) -> None:
        if text:
            self.state.dtype = text
            self._request()

    # =========================================================================================
    # closing and reopening
    # =========================================================================================
    def shutdown(self) -> None:
        """Stop the source and every worker thread (joined, or abandoned after
        :data:`CLOSE_WAIT_MS`) and release the model: no hook stays on it and the window keeps
        no reference to it. Idempotent; showing the window again starts afresh."""
        if self._closed:
            return
        self._closing = True
        self._closed = True
        self.canvas.stop()
        self.input.detach()
        self.inference.shutdown(CLOSE_WAIT_MS)
        self.loading.shutdown(CLOSE_WAIT_MS)
        # Hooks off the model now, or, when an inference outlived the wait, on the inference
        # thread as soon as it returns: never left attached.
        self.engine.close()
        self.state.forget_model()
        self._result = None
        self.exporter.forget()
        if self._error_box is not None:
            self._error_box.close()
        self._faults.close()
        self.statusBar().clearMessage()  # stops the status bar's message timer

    def _reopen(self) -> None:
        """Shown again after closing (the playground keeps its inspector): fresh workers, and
        the model that was on screen (or loading) loads again."""
        self._closing = False
        self._closed = False
        self.inference.deleteLater()  # shut down: its thread has ended or ends with its request
        self._start_inference()
        again = self.loading.restart()
        if again is not None:
            self.loading.submit(again)
        else:
            self.predictions.set_predictions([], "No model yet: Model ▸ Open model…")

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self._closed:
            self._reopen()
        super().showEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.shutdown()
        super().closeEvent(event)
