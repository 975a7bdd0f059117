"""The inspector window's public API — load a model, set the input or source, select a layer
and channel, choose tabs, outputs and the receptive-field unit, export, say things (status
bar, message boxes, the fault dialog) — as used by menus,
tests, lessons and the other windows: a mixin of
:class:`~cnnviz.qt.inspector.window.InspectorWindow`. Every setter writes the window's one
:class:`~cnnviz.core.inspect_engine.InspectorState` and asks for a new result."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from cnnviz.core.errors import CnnvizError
from cnnviz.core.inspect_results import InspectResult
from cnnviz.core.inspect_state import OUTPUTS_FILE, read_model_outputs, write_model_outputs  # noqa: F401

from .loading import error_text

STATUS_MS = 8000  # how long a status-bar message stays (errors twice as long)


class InspectorAPI:
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
        return self.loading.submit(self.loading.request(
            spec, weights, trust, ctor_kwargs=ctor_kwargs, labels=labels,
            device=self.state.device, dtype=self.state.dtype))

    def set_image(self, pixels: np.ndarray, label: str = "image") -> None:
        """Use a still picture (float32 HxW or HxWx3 in [0, 1], or uint8) as the input.

        A live source is detached (and stopped when the window owns it)."""
        self.input.set_image(pixels, label)

    def set_source(self, source: Any, *, own: bool = True) -> bool:
        """Feed frames from a :class:`~cnnviz.core.sources.FrameSource` (``None`` detaches).

        The model runs on each new frame, latest wins: a frame is taken from the source's
        one-slot buffer only when the inference worker is idle, so frames the model cannot
        keep up with are dropped, never queued. The source is started if needed; with
        ``own=True`` the window stops it when it is replaced, detached or the window closes.
        Returns False (and says why) when the source cannot start.
        """
        return self.input.set_source(source, own)

    def open_image(self, path: str | Path) -> bool:
        """Use the picture in ``path`` as the input (a message when it cannot be read)."""
        return self.input.open_image(path)

    def source(self) -> Any:
        return self.live.source

    def current_capture(self) -> InspectResult | None:
        """The result on screen (numpy only): layers, the selected layer's activation and
        per-channel stats, predictions, and whatever views were open."""
        return self._result

    def current_input(self) -> np.ndarray | None:
        """The input picture the model runs on (read-only; before preprocessing)."""
        return self.state.pixels

    def current_model(self) -> Any:
        """The loaded :class:`~cnnviz.core.models.LoadedModel` (for reading only: the model
        runs on the inference thread), or None."""
        return self.state.model

    def selected_layer(self) -> str | None:
        return self.state.layer

    def selected_channel(self) -> int:
        return self.state.channel

    def select_layer(self, name: str) -> None:
        """Show layer ``name`` (a name from the layer table or the overview)."""
        if not self.state.select_layer(name):
            return
        self.layer_table.select(name)  # neither emits: no echo back here
        self.overview.set_selected(name)
        self._request()

    def select_channel(self, i: int) -> None:
        """Show channel ``i`` of the selected layer large (clamped to the layer)."""
        n = self.grid.tile_count()
        i = int(i) if n == 0 else min(max(int(i), 0), n - 1)
        if i == self.state.channel and self.grid.selected == i:
            return
        self.state.channel = i
        self.activations.select_channel(i)
        self._refresh_rf_map()
        if self.state.rf_unit is not None and self.state.view == "rf":
            self._request()

    def step_layer(self, d: int) -> None:
        names = self._result.names() if self._result is not None else []
        if not names:
            return
        i = names.index(self.state.layer) if self.state.layer in names else 0
        self.select_layer(names[min(max(i + d, 0), len(names) - 1)])

    def show_tab(self, key: str) -> None:
        self.tabs.show_key(key)

    def set_rf_unit(self, y: int, x: int) -> None:
        """Show the receptive field of unit ``(y, x)`` of the selected channel."""
        self.state.rf_unit = (int(y), int(x))
        if self.state.view != "rf":
            self.show_tab("rf")  # requests too
        else:
            self._request()
        self._refresh_rf_map()

    def set_cam(self, target_class: int | None = None, layer: str | None = None) -> None:
        """Grad-CAM for ``target_class`` (None: the predicted class) at ``layer`` (None: default)."""
        self.state.cam_class = target_class
        self.state.cam_layer = layer
        self._request()

    def set_layout(self, layer: str, text: str | None) -> None:
        """Show ``layer`` with the user's layout (``NHWC``, ``tokens:14x14+1``…; ``None`` or
        ``"auto"``: the core's). One that does not fit the tensor is said in the Layer panel
        and the core's layout stays."""
        self.state.set_layout(layer, text)
        self._request()

    def set_every_op(self, on: bool) -> None:
        """Capture every tensor op inside the forward too (not only module outputs)."""
        self.state.every_op = bool(on)
        self.layer_panel.set_every_op(on)
        self._request()

    def set_output(self, choice: str | int | None) -> None:
        """The model output that is the prediction (name or index; ``None``/``""``: the
        default), remembered for this model."""
        self.state.set_output(choice)
        self._save_outputs()
        self._request()

    def set_score_threshold(self, value: float) -> None:
        """Detections scoring below ``value`` are not drawn."""
        self.state.score_threshold = float(min(max(value, 0.0), 1.0))
        self._request()

    def _read_outputs(self) -> str | None:
        """Load the outputs chosen per model; a message when the file cannot be used."""
        self.state.outputs_by_model, warn = read_model_outputs(self.config_dir)
        return warn

    def _save_outputs(self) -> None:
        try:
            write_model_outputs(self.config_dir, self.state.outputs_by_model)
        except (OSError, CnnvizError) as exc:
            self.show_message(f"Could not remember the chosen output: {exc}", error=True)

    def set_frozen(self, frozen: bool) -> None:
        """Freeze: keep the current frame (the source stops publishing) for study."""
        self.input.set_frozen(frozen)

    def use_canvas(self) -> None:
        """Back to the drawing canvas as the input."""
        self.input.use_canvas()

    def set_preprocessing(self, d: dict[str, Any] | None) -> None:
        """Override the model's preprocessing (a ``Preprocessing.to_dict()`` dict; None resets)."""
        self.model_panel.set_preprocessing(d)

    def load_labels(self, path: str | Path) -> bool:
        """Class names for the current model from a file (one per line, or JSON)."""
        return self.model_panel.load_labels(path)

    def cancel_load(self) -> None:
        """Cancel a download in progress (nothing is left in the cache)."""
        self.loading.cancel()

    def is_loading(self) -> bool:
        return self.loading.active

    def is_closing(self) -> bool:
        return self._closing

    # exports (see .exporting)
    def export_grid_png(self, path: str | Path) -> Path | None:
        """The selected layer's tiles (current levels and colours) as one PNG."""
        return self.exporter.grid_png(path)

    def export_npz(self, path: str | Path) -> int:
        """Every layer's activation (float32, batch dimension dropped, key = layer name) for
        the current input, written by the inference worker; ``exportFinished`` when done."""
        return self._export(npz=str(path))

    def export_csv(self, path: str | Path) -> int:
        """Per-layer statistics (min, max, mean, std, % zeros, dead channels) as CSV."""
        return self._export(csv=str(path))

    def _export(self, **paths: str) -> int:
        job = self.exporter.start(**paths)
        if job:
            self._request()
        return job

    # =========================================================================================
    # messages
    # =========================================================================================
    def show_message(self, text: str, error: bool = False, timeout: int = STATUS_MS) -> None:
        self.last_message = text
        self._status_is_error = error
        self.statusBar().showMessage(("⚠ " if error else "") + text, timeout if not error else 2 * timeout)

    def show_error(self, err: BaseException, context: str = "") -> None:
        text = error_text(err)
        self.show_message(f"{context}: {text}" if context else text, error=True)

    def status_text_is_error(self) -> bool:
        return self._status_is_error

    def show_box(self, icon, title: str, body: str, details: str | None = None) -> QMessageBox:
        """A non-modal message box (one at a time) with optional details."""
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
        """The error dialog on screen (bad input, a failed load), if any (tests)."""
        return self._error_box

    def report_exception(self, summary: str, details: str) -> None:
        """An unexpected exception (a bug): status bar plus the non-modal fault dialog
        (:class:`~cnnviz.qt.fault_dialog.FaultDialog`: repeats are counted, never stacked)."""
        self.show_message(f"Internal error: {summary} (details in the dialog; please report it)", error=True)
        print(details, file=sys.stderr)
        if not self._closing:
            self._faults.report(summary, details)

    def fault_dialog(self) -> QMessageBox | None:
        """The internal-error dialog while it is open (tests)."""
        return self._faults.dialog()
