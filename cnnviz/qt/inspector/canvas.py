"""A drawing canvas as an image source: draw a digit with the mouse, white on black.

The canvas keeps a 112×112 grey picture (the demo model's preprocessing shrinks it to 28×28,
as MNIST-style digits are). While the mouse draws, ``imageChanged`` is emitted at most every
``throttle_ms`` (the inference worker then runs on the newest picture: latest wins), and once
more when the stroke ends so the final picture is always shown.

Left button draws, right button erases.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QSlider, QVBoxLayout, QWidget

__all__ = ["CanvasPanel", "DrawingCanvas"]

CANVAS_SIZE = 112


def _qimage_to_gray(img: QImage) -> np.ndarray:
    h, w, bpl = img.height(), img.width(), img.bytesPerLine()
    buf = np.frombuffer(img.constBits(), dtype=np.uint8, count=h * bpl).reshape(h, bpl)
    return buf[:, :w].copy()


class DrawingCanvas(QWidget):
    """Signals ``imageChanged(np.ndarray)``: float32 (H, W) in [0, 1], a fresh copy each time."""

    imageChanged = Signal(object)

    def __init__(self, parent: QWidget | None = None, size: int = CANVAS_SIZE, throttle_ms: int = 40):
        super().__init__(parent)
        self._img = QImage(size, size, QImage.Format.Format_Grayscale8)
        self._img.fill(0)
        self.brush = 9.0
        self._last: QPointF | None = None
        self._erase = False
        self._dirty = False
        self.emitted = 0
        self._timer = QTimer(self)
        self._timer.setObjectName("canvas-throttle")
        self._timer.setSingleShot(True)
        self._timer.setInterval(int(throttle_ms))
        self._timer.timeout.connect(self._flush)
        self.setMinimumSize(168, 168)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setToolTip("Draw with the left button, erase with the right")

    # -- content
    def pixels(self) -> np.ndarray:
        """The picture as float32 (H, W) in [0, 1] (a copy)."""
        return _qimage_to_gray(self._img).astype(np.float32) / 255.0

    def set_pixels(self, pixels: np.ndarray, emit: bool = True) -> None:
        """Replace the picture with ``pixels`` (float in [0, 1] or uint8, grey or RGB),
        resized to the canvas."""
        import cv2

        a = np.asarray(pixels)
        if a.ndim == 3:
            a = a[..., :3].mean(axis=2)
        if a.dtype != np.uint8:
            a = np.clip(np.round(a.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
        size = self._img.width()
        if a.shape != (size, size):
            a = cv2.resize(a, (size, size), interpolation=cv2.INTER_AREA)
        a = np.ascontiguousarray(a)
        self._img = QImage(a.data, size, size, a.strides[0], QImage.Format.Format_Grayscale8).copy()
        self.update()
        if emit:
            self._emit()

    def clear(self) -> None:
        self._img.fill(0)
        self.update()
        self._emit()

    def set_brush(self, px: float) -> None:
        """Brush diameter in canvas pixels."""
        self.brush = float(px)

    # -- geometry
    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(224, 224)

    def _target(self) -> QRectF:
        s = min(self.width(), self.height()) - 2
        return QRectF((self.width() - s) / 2, (self.height() - s) / 2, s, s)

    def to_image(self, pos: QPointF) -> QPointF:
        r = self._target()
        k = self._img.width() / r.width()
        return QPointF((pos.x() - r.left()) * k, (pos.y() - r.top()) * k)

    def widget_point(self, x: float, y: float) -> QPointF:
        """Widget coordinates of canvas pixel (x, y) (tests draw with this)."""
        r = self._target()
        k = r.width() / self._img.width()
        return QPointF(r.left() + x * k, r.top() + y * k)

    # -- drawing
    def _stroke(self, a: QPointF, b: QPointF) -> None:
        p = QPainter(self._img)
        try:
            p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            colour = QColor(0, 0, 0) if self._erase else QColor(255, 255, 255)
            pen = QPen(colour, self.brush * (2.0 if self._erase else 1.0), Qt.PenStyle.SolidLine,
                       Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin)
            p.setPen(pen)
            if a == b:
                p.drawPoint(a)
            else:
                p.drawLine(a, b)
        finally:
            p.end()
        self._dirty = True
        self.update()
        if not self._timer.isActive():
            self._timer.start()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if event.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            self._erase = event.button() == Qt.MouseButton.RightButton
            self._last = self.to_image(event.position())
            self._stroke(self._last, self._last)
            event.accept()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._last is None:
            return
        pt = self.to_image(event.position())
        self._stroke(self._last, pt)
        self._last = pt
        event.accept()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._last is None:
            return
        self._last = None
        self._timer.stop()
        self._flush()

    def _flush(self) -> None:
        if self._dirty:
            self._emit()

    def _emit(self) -> None:
        self._dirty = False
        self.emitted += 1
        self.imageChanged.emit(self.pixels())

    def stop(self) -> None:
        self._timer.stop()

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        try:
            r = self._target()
            p.fillRect(self.rect(), self.palette().color(self.palette().ColorRole.Window))
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            p.drawImage(r, self._img)
            p.setPen(QPen(QColor(127, 127, 127), 1))
            p.drawRect(r)
        finally:
            p.end()


class CanvasPanel(QWidget):
    """The canvas with its brush size slider, Clear and a sample digit button."""

    def __init__(self, parent: QWidget | None = None, sample: Path | None = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.canvas = DrawingCanvas(self)
        self.canvas.setObjectName("drawing-canvas")
        lay.addWidget(self.canvas, 1)
        row = QHBoxLayout()
        row.addWidget(QLabel("Brush"))
        self.brush = QSlider(Qt.Orientation.Horizontal)
        self.brush.setObjectName("brush-size")
        self.brush.setToolTip("Pen width for drawing: draw a digit as thick as the model saw them in training "
                              "and watch every layer respond as you draw.")
        self.brush.setRange(2, 30)
        self.brush.setValue(int(self.canvas.brush))
        self.brush.valueChanged.connect(self.canvas.set_brush)
        row.addWidget(self.brush, 1)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setObjectName("canvas-clear")
        self.clear_button.setToolTip("Wipe the canvas to draw again from a blank input.")
        self.clear_button.clicked.connect(self.canvas.clear)
        row.addWidget(self.clear_button)
        self.sample_button = QPushButton("Sample")
        self.sample_button.setObjectName("canvas-sample")
        self.sample_button.setToolTip("Put the bundled sample digit on the canvas")
        self.sample_button.clicked.connect(self.load_sample)
        row.addWidget(self.sample_button)
        lay.addLayout(row)
        self._sample = sample
        self.sample_button.setEnabled(sample is not None and sample.is_file())

    def load_sample(self) -> bool:
        if self._sample is None or not self._sample.is_file():
            return False
        from cnnviz.core.images import load_image

        try:
            img = load_image(self._sample)
        except Exception:  # noqa: BLE001 - a missing/damaged sample only disables the button
            return False
        self.canvas.set_pixels(img.pixels)
        return True
