"""The inspector's Input dock: what the model runs on (the drawing canvas, or a preview of a
picture or a live frame), the Freeze button for live input, and the predictions.

The panel writes the input into the window's :class:`~cnnviz.core.inspect_engine.InspectorState`
and says so with ``inputChanged``; a live source's frames come through :mod:`.live_input`, one
at a time, when the window says the model is ready for the next one."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QPushButton, QStackedWidget, QVBoxLayout, QWidget

from cnnviz.core.errors import CnnvizError, SourceError
from cnnviz.core.inspect_engine import InspectorState

from .canvas import CanvasPanel
from .imaging import ImageView
from .live_input import LiveInput
from .loading import error_text
from .predictions import PredictionsView
from .task_panel import TaskPanel

__all__ = ["InputPanel", "display_u8"]


def display_u8(pixels: np.ndarray) -> np.ndarray:
    """Float pixels in [0, 1] (or uint8) as uint8 for the preview."""
    a = np.asarray(pixels)
    if a.dtype != np.uint8:
        a = np.clip(np.round(a.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    return a


class InputPanel(QWidget):
    """Canvas or preview, Freeze, predictions; the input written through ``state``.

    Signals
    -------
    inputChanged()
        The state's input changed: compute again.
    message(str, bool)
        A message for the status bar and whether it is an error.
    """

    inputChanged = Signal()
    message = Signal(str, bool)

    def __init__(self, sample: Path, state: InspectorState, ready_for_frame: Callable[[], bool],
                 parent: QWidget | None = None):
        super().__init__(parent)
        self._state = state
        self._ready_for_frame = ready_for_frame  # the window: a model is loaded and idle
        il = QVBoxLayout(self)
        il.setContentsMargins(4, 4, 4, 4)
        self.label = QLabel("")
        self.label.setObjectName("input-label")
        self.label.setWordWrap(True)
        il.addWidget(self.label)
        self.stack = QStackedWidget()
        self.canvas_panel = CanvasPanel(sample=sample)
        self.canvas = self.canvas_panel.canvas
        self.preview = ImageView(smooth=True, min_size=120)
        self.preview.setObjectName("input-preview")
        self.stack.addWidget(self.canvas_panel)
        self.stack.addWidget(self.preview)
        il.addWidget(self.stack, 1)
        self.freeze_button = QPushButton("Freeze")
        self.freeze_button.setObjectName("freeze-button")
        self.freeze_button.setCheckable(True)
        self.freeze_button.setEnabled(False)
        self.freeze_button.setToolTip("Keep the current frame for study (live input)")
        il.addWidget(self.freeze_button)
        il.addWidget(QLabel("<b>Predictions</b>"))
        self.predictions = PredictionsView()
        self.predictions.setObjectName("predictions")
        self.predictions.note = "Loading the model…"
        il.addWidget(self.predictions)
        self.task = TaskPanel()  # the output picker; class map / boxes drawn on the input
        il.addWidget(self.task)

        self.live = LiveInput(self)
        self.live.frameArrived.connect(self._on_frame)
        self.live.sourceError.connect(lambda err: self._error(err, "The live source stopped"))
        self.live.sourceStopped.connect(self._on_source_stopped)
        self.freeze_button.toggled.connect(self.set_frozen)
        self.canvas.imageChanged.connect(self._on_canvas)

    # -- what the model runs on -------------------------------------------------------------
    def set_input(self, pixels: np.ndarray, label: str) -> None:
        self._state.set_input(pixels, label)
        self.refresh_label()
        self.inputChanged.emit()

    def set_image(self, pixels: np.ndarray, label: str = "image") -> None:
        self.detach()
        self._state.set_input(pixels, label)
        self.show_preview(self._state.pixels)
        self.refresh_label()
        self.inputChanged.emit()

    def use_canvas(self) -> None:
        self.detach()
        self.show_canvas()
        self.set_input(self.canvas.pixels(), "drawing canvas")

    def open_image(self, path: str | Path) -> bool:
        from cnnviz.core.images import load_image

        try:
            img = load_image(path)
        except CnnvizError as exc:
            self._error(exc, "Could not open the image")
            return False
        self.set_image(img.pixels, Path(path).name)
        return True

    def _on_canvas(self, pixels: np.ndarray) -> None:
        if self.showing_canvas() and not self.live.attached:
            self.set_input(pixels, "drawing canvas")

    # -- live sources -----------------------------------------------------------------------
    def set_source(self, source: Any, own: bool) -> bool:
        self.detach()
        if source is None:
            return True
        try:
            if not source.is_running:
                source.start()
        except SourceError as exc:
            self._error(exc, "Could not start the source")
            return False
        self.live.attach(source, own)
        self._state.input_label = getattr(source, "name", "live source")
        self.show_preview()
        self.freeze_button.setEnabled(True)
        self.set_frozen(False)
        return True

    def detach(self) -> None:
        """Let the live source go (stopped when owned); no more frames come."""
        self.live.detach()
        self.freeze_button.setEnabled(False)

    def set_frozen(self, frozen: bool) -> None:
        """Freeze: keep the current frame (the source stops publishing) for study."""
        frozen = bool(frozen)
        if self.freeze_button.isChecked() != frozen:
            self.freeze_button.blockSignals(True)
            self.freeze_button.setChecked(frozen)
            self.freeze_button.blockSignals(False)
        self.live.set_frozen(frozen)
        if not frozen:
            self.want_frame()
        self.refresh_label()

    def want_frame(self) -> None:
        """Take the next live frame if the model is ready for it."""
        if self.live.attached and self._ready_for_frame():
            self.live.want_frame()

    def _on_frame(self, frame: Any) -> None:
        self.preview.set_array(frame.pixels)
        self.set_input(frame.pixels, getattr(self.live.source, "name", "live"))

    def _on_source_stopped(self, reason: str) -> None:
        self.message.emit(f"{getattr(self.live.source, 'name', 'The source')} stopped ({reason}); "
                          "the last frame stays", False)
        self.refresh_label()

    def _error(self, err: Any, context: str) -> None:
        if isinstance(err, BaseException):
            self.message.emit(f"{context}: {error_text(err)}", True)

    def refresh_label(self) -> None:
        live = None
        if self.live.attached:
            live = {"frozen": self.live.frozen, "frames": self.live.frames_run,
                    "dropped": self.live.stats().get("dropped", 0)}
        self.describe(self._state.pixels, self._state.input_label, live)

    def showing_canvas(self) -> bool:
        return self.stack.currentWidget() is self.canvas_panel

    def show_canvas(self) -> None:
        self.stack.setCurrentWidget(self.canvas_panel)

    def show_preview(self, pixels: np.ndarray | None = None) -> None:
        self.stack.setCurrentWidget(self.preview)
        if pixels is not None:
            self.preview.set_array(display_u8(pixels))

    def describe(self, pixels: np.ndarray | None, label: str, live: dict[str, Any] | None = None) -> None:
        """The caption: what the input is and its size; for live input, frames run and dropped."""
        if pixels is None:
            self.label.setText("No input yet")
            return
        h, w = pixels.shape[:2]
        kind = "RGB" if pixels.ndim == 3 else "grey"
        text = f"<b>{html.escape(label)}</b> · {w}×{h} {kind}"
        if live is not None:
            text += (f"<br>{'frozen' if live['frozen'] else 'live'} · {live['frames']} frames run · "
                     f"{live.get('dropped', 0)} dropped")
        self.label.setText(text)
