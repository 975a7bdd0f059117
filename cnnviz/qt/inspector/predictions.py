"""Top-k predictions with class names and probabilities, as bars that update live."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter
from PySide6.QtWidgets import QWidget

__all__ = ["PredictionsView"]

_BAR = QColor(66, 133, 196)
_TOP = QColor(230, 140, 30)


class PredictionsView(QWidget):
    """Rows ``name ▇▇▇▇ 87.3 %``; the best one highlighted. Click a row: ``classClicked(index)``."""

    classClicked = Signal(int)
    ROW_H = 24

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.predictions: list[tuple[int, str, float]] = []
        self.note = "no prediction yet"
        self.setMinimumHeight(self.ROW_H * 3)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(260, self.ROW_H * 5 + 8)

    def set_predictions(self, preds: Sequence[tuple[int, str, float]], note: str = "") -> None:
        self.predictions = [(int(i), str(n), float(p)) for i, n, p in preds]
        self.note = note
        self.setMinimumHeight(self.ROW_H * max(3, len(self.predictions)) + 8)
        self.update()

    def top(self) -> tuple[int, str, float] | None:
        return self.predictions[0] if self.predictions else None

    def mousePressEvent(self, event) -> None:  # noqa: N802
        i = int((event.position().y() - 4) // self.ROW_H)
        if 0 <= i < len(self.predictions):
            self.classClicked.emit(self.predictions[i][0])

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        try:
            pal = self.palette()
            text = pal.color(pal.ColorRole.WindowText)
            if not self.predictions:
                p.setPen(pal.color(pal.ColorRole.PlaceholderText))
                p.drawText(self.rect(), int(Qt.AlignmentFlag.AlignCenter) | int(Qt.TextFlag.TextWordWrap), self.note)
                return
            font = QFont(self.font())
            bold = QFont(font)
            bold.setBold(True)
            name_w = min(150, max(60, self.width() // 3))
            pct_w = 58
            bar_w = max(10, self.width() - name_w - pct_w - 16)
            for k, (_i, name, prob) in enumerate(self.predictions):
                y = 4 + k * self.ROW_H
                p.setFont(bold if k == 0 else font)
                p.setPen(text)
                label = p.fontMetrics().elidedText(name, Qt.TextElideMode.ElideRight, name_w - 6)
                p.drawText(QRectF(4, y, name_w - 6, self.ROW_H), int(Qt.AlignmentFlag.AlignVCenter), label)
                track = QRectF(name_w, y + 5, bar_w, self.ROW_H - 10)
                p.fillRect(track, QColor(127, 127, 127, 50))
                p.fillRect(QRectF(track.left(), track.top(), max(1.0, bar_w * prob), track.height()),
                           _TOP if k == 0 else _BAR)
                p.drawText(QRectF(name_w + bar_w + 6, y, pct_w, self.ROW_H),
                           int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight), f"{prob * 100:.1f} %")
        finally:
            p.end()
