"""The kernel playground window: paint a kernel, watch the edges appear.

Data walks one way: **picture → frozen request → worker → result → views**. Every kernel
edit, parameter change or new picture makes a new :class:`~cnnviz.core.conv.PipelineRequest`;
the one :class:`~cnnviz.qt.workers.LatestRequestWorker` computes it off the GUI thread with
:func:`cnnviz.core.playground.compute_playground` (a pure core function tests call without a window)
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

import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QComboBox, QDockWidget, QHBoxLayout, QLabel, QMainWindow, QMessageBox,
                               QPushButton, QVBoxLayout, QWidget)

from cnnviz.core.conv import PipelineRequest, PipelineResult, shutdown_band_pool
from cnnviz.core.dotproduct import ConvPixelExplanation, PoolPixelExplanation
from cnnviz.core.errors import CnnvizError
from cnnviz.core.kernels import Kernel
from cnnviz.core.playground import PlaygroundComputer, PlaygroundJob, PlaygroundOutput, PlaygroundState

from ..colors import mute
from ..fault_dialog import FaultDialog
from ...core.settings import PlaygroundParams, Settings, load_settings, settings_path
from ..workers import LatestRequestWorker
from .actions import ActionsAndMenus
from .animate_panel import AnimatePanel
from .explain_panel import ExplainPanel
from .explaining import Explaining
from .kernel_bank import KernelBank
from .kernel_editor import KernelEditor
from .learn_panel import install_learn_panel
from .live_actions import install_live_sources
from .messages import MessagesAndExport
from .params_panel import ParamsPanel
from .presentation import install_font_scaling, install_presentation
from .scene_actions import install_scenes
from .window_settings import DEFAULT_PRESET, SettingsAndTheme  # noqa: F401 - DEFAULT_PRESET re-exported
from .compare import install_compare
from .picture_input import ASK_DOWNSCALE_PIXELS, LIVE_MAX_SIDE, SAMPLES, SAMPLES_DIR, PictureInput  # noqa: F401
from .views import MAGNITUDE, MOSAIC, OutputViews
from .weight_sharing import WeightSharingPanel

DEFAULT_SAMPLE = "photo"


class MainWindow(SettingsAndTheme, PictureInput, Explaining, MessagesAndExport, ActionsAndMenus, QMainWindow):
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
        # what the user chose: the one copy (the bank, editor and views show it)
        self.state = PlaygroundState(params=PlaygroundParams())
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
        self._faults = FaultDialog(self)
        self._about_devices: list[str] | None = None   # torch build and GPUs, once probed
        self._about_probe_running = False

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
        install_presentation(self)  # F5: the projector view (self.presentation)
        install_font_scaling(self)  # Ctrl +/-: the whole app's text size, remembered
        install_scenes(self)  # File: Open/Save scene (self.scenes); lessons keep "my setup"
        install_compare(self)  # View: Compare parameters (two parameter sets side by side)
        self._arrange_first_screen()
        self.resize(1560, 980)
        self.fit_to_screen()
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

        # the editor and the bank are views of self.state: they write through it and are
        # updated from it with their signals blocked (no echo, no second copy of the bank)
        self.kernel_editor = KernelEditor(state=self.state)
        self.kernel_bank = KernelBank(state=self.state)
        self.kernel_editor.bankEdited.connect(self._on_bank_edited)
        self.kernel_editor.setResizeGuard(self.confirm_bank_resize)
        self.kernel_editor.setBankProvider(lambda: self.state.kernels)
        self.kernel_editor.setLastDirectory(self.settings.last_dir("kernels"))
        self.kernel_editor.directoryUsed.connect(lambda d: self.settings.remember_dir("kernels", d))
        self.kernel_editor.bankRequested.connect(self._on_bank_requested)
        self.kernel_bank.edited.connect(self._on_bank_edited)

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
        mute(hint)
        lay.addWidget(hint)
        lay.addStretch(1)
        return w

    # ===================================================================================
    # kernels and parameters
    # ===================================================================================
    def confirm_bank_resize(self, n: int) -> bool:
        """Ask before a size button crops other kernels of the bank (they share one size)."""
        cropped = self.state.would_crop(n, n)
        if not cropped:
            return True
        names = ", ".join(cropped[:4]) + (f" and {len(cropped) - 4} more" if len(cropped) > 4 else "")
        answer = QMessageBox.question(
            self, "Resize the whole bank?",
            f"The kernels of a bank share one size, so making the selected kernel {n}×{n} also crops "
            f"{len(cropped)} other kernel{'s' if len(cropped) != 1 else ''} ({names}).\n\n"
            "Their weights come back if you pick the larger size again or Undo.\n\nResize the whole bank?",
            QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return answer == QMessageBox.Yes

    def _on_bank_requested(self, kernels) -> None:
        self.kernel_bank.setBank(tuple(kernels), 0)

    def _on_bank_edited(self, change) -> None:
        """The bank in the state changed (through the bank or the editor): show it."""
        st = self.state
        if self.sender() is self.kernel_editor:
            self.kernel_bank.refresh()
        else:
            # another kernel was selected (or the bank replaced): its own undo history starts now
            self.kernel_editor.showState(new_history=change.selected_changed)
        if change.selection_moved or change.names_changed:
            shown = self.outputs.selection()
            self.show_bank_in_outputs()
            if shown not in (MOSAIC, MAGNITUDE) or change.selection_moved:
                keep = shown if shown in (MOSAIC, MAGNITUDE) and not change.selection_moved else st.selected
                self.outputs.set_selection(keep)
            if change.magnitude_turned_on:
                self.outputs.set_selection(MAGNITUDE)  # ticking the magnitude shows it
        self._schedule()

    def show_bank_in_outputs(self) -> None:
        """The outputs' kernel selector lists the state's bank (on every change of it, and once
        at start: the editor may have seeded the state with the same bank the settings give,
        which then reports no change)."""
        st = self.state
        self.outputs.set_bank([k.name for k in st.kernels], st.selected, st.magnitude_pair)

    def set_kernels(self, kernels, selected: int = 0, magnitude_pair: tuple[int, int] | None = None) -> None:
        """Replace the bank (as a preset or a file would)."""
        self.kernel_bank.setBank(tuple(kernels), selected, magnitude_pair)

    def kernels(self) -> tuple[Kernel, ...]:
        return self.state.kernels

    def _on_params(self, params: PlaygroundParams) -> None:
        self.state.set_params(params)
        self.kernel_editor.showState()   # the channel mode comes from the state's parameters
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
        return self.state.params

    # ===================================================================================
    # computing
    # ===================================================================================
    def _schedule(self) -> None:
        # Coalesce the bursts one user action can cause (a bank change emits several
        # signals) into one request; the worker itself keeps at most one pending.
        if not self._closing and not self._submit_timer.isActive():
            self._submit_timer.start()

    def build_request(self) -> PipelineRequest:
        return self.state.to_request()

    def _submit(self) -> int | None:
        if self._closing or self._image is None or not self.state.kernels:
            return None
        try:
            request = self.build_request()
        except CnnvizError as err:
            self.show_error(err, "Settings")
            return None
        self.state.display = self.outputs.display_settings()   # the view controls, frozen
        job = PlaygroundJob(self._image, self._image_key, request, self._device, self.state.display)
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
        k = req.kernels[min(self.state.selected, len(req.kernels) - 1)]
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
    def histograms_visible(self) -> bool:
        """Whether the views show their histograms (the user's choice)."""
        return self.outputs.hist_box.isChecked()

    def set_histograms_visible(self, visible: bool) -> None:
        self.outputs.set_histograms_visible(visible)

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
    # closing
    # ===================================================================================
    def _arrange_first_screen(self) -> None:
        """The first screen, as clear as a one-page demo: the kernel on the left, the input
        and its output in the middle with the explanation under them, the parameters on the
        right. Source, live source and lessons are tabs one click away (it fits 1280×720)."""
        live = next((d for d in self.docks if d.objectName() == "dock-live"), None)
        learn = getattr(self, "dock_learn", None)
        tabs = [d for d in (self.dock_source, live, learn) if d is not None]
        for d in tabs:  # taken out and put back in order: no stale tab bar of the first arrangement
            self.removeDockWidget(d)
        prev = self.dock_params
        for d in tabs:
            self.tabifyDockWidget(prev, d)
            d.show()
            prev = d
        self.dock_params.raise_()
        self.resizeDocks([self.dock_kernel, self.dock_outputs, self.dock_params], [340, 900, 300],
                         Qt.Orientation.Horizontal)
        self.resizeDocks([self.dock_outputs, self.dock_explain], [640, 300], Qt.Orientation.Vertical)

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
            from ..inspector import InspectorWindow  # noqa: PLC0415 - the playground starts without it

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
        for child in ("inspector", "train_window"):  # windows opened from here close with it
            other = getattr(self, child, None)
            if other is not None:
                try:
                    other.shutdown()
                    other.close()
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

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        pres = getattr(self, "presentation", None)
        if pres is not None:
            pres.sync_geometry()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if not self._closing:
            self.save_settings()
        self.shutdown()
        super().closeEvent(event)
