"""The inspector's Input dock: what the model runs on (the drawing canvas, or a preview of a
picture or a live frame), the Freeze button for live input, and the predictions."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtWidgets import QLabel, QPushButton, QStackedWidget, QVBoxLayout, QWidget

from .canvas import CanvasPanel
from .imaging import ImageView
from .predictions import PredictionsView

__all__ = ["InputPanel", "display_u8"]


def display_u8(pixels: np.ndarray) -> np.ndarray:
    """Float pixels in [0, 1] (or uint8) as uint8 for the preview."""
    a = np.asarray(pixels)
    if a.dtype != np.uint8:
        a = np.clip(np.round(a.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    return a


class InputPanel(QWidget):
    """Canvas or preview, Freeze, predictions. The window decides what is shown."""

    def __init__(self, sample: Path, parent: QWidget | None = None):
        super().__init__(parent)
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

    def showing_canvas(self) -> bool:
        return self.stack.currentWidget() is self.canvas_panel

    def show_canvas(self) -> None:
        self.stack.setCurrentWidget(self.canvas_panel)

    def show_preview(self, pixels: np.ndarray | None = None) -> None:
        self.stack.setCurrentWidget(self.preview)
        if pixels is not None:
            self.preview.set_array(display_u8(pixels))

    def set_frozen(self, frozen: bool) -> None:
        """Check or uncheck Freeze without emitting ``toggled``."""
        if self.freeze_button.isChecked() != frozen:
            self.freeze_button.blockSignals(True)
            self.freeze_button.setChecked(frozen)
            self.freeze_button.blockSignals(False)

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
