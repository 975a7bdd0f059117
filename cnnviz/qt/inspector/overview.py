"""Every layer at once: one strip of its most active channels per row (the CNN Explainer
view, for any model). Click a row to select that layer."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QScrollArea, QWidget

from cnnviz.core.inspect_results import OverviewRow

from .imaging import compose_tiles, gray_levels_to_rgb, split_tiles, to_qimage

__all__ = ["OverviewView"]


class _Rows(QWidget):
    rowClicked = Signal(str)

    ROW_H = 64
    LABEL_W = 190

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.rows: list[OverviewRow] = []
        self.images: list[QImage] = []
        self.selected: str | None = None
        self.cmap = "auto"

    def set_rows(self, rows: Sequence[OverviewRow]) -> None:
        self.rows = list(rows)
        self.images = []
        for r in self.rows:
            img = gray_levels_to_rgb(r.image, r.signed, self.cmap) if r.image.ndim == 2 else r.image
            th, tw = r.tile_hw
            if th and tw and len(r.channels) > 1:
                tiles = split_tiles(img, 1, len(r.channels), (th, tw), r.pad, len(r.channels))
                img = compose_tiles(tiles, len(r.channels), scale=max(1, round(56 / th)), gap=3)
            self.images.append(to_qimage(img))
        self.setMinimumHeight(len(self.rows) * self.ROW_H + 4)
        self.updateGeometry()
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(720, len(self.rows) * self.ROW_H + 4)

    def row_rect(self, i: int) -> QRect:
        return QRect(0, 2 + i * self.ROW_H, self.width(), self.ROW_H)

    def mousePressEvent(self, event) -> None:  # noqa: N802
        i = int((event.position().y() - 2) // self.ROW_H)
        if 0 <= i < len(self.rows):
            self.rowClicked.emit(self.rows[i].name)

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        try:
            pal = self.palette()
            font = QFont(self.font())
            small = QFont(self.font())
            small.setPixelSize(10)
            first = max(0, (event.rect().top() - 2) // self.ROW_H)
            last = min(len(self.rows), event.rect().bottom() // self.ROW_H + 2)
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
            for i in range(first, last):
                row, img = self.rows[i], self.images[i]
                r = self.row_rect(i)
                if row.name == self.selected:
                    p.fillRect(r, pal.color(pal.ColorRole.Highlight).lighter(170)
                               if pal.color(pal.ColorRole.Window).lightness() > 128
                               else pal.color(pal.ColorRole.Highlight).darker(160))
                elif i % 2:
                    p.fillRect(r, pal.color(pal.ColorRole.AlternateBase))
                p.setPen(pal.color(pal.ColorRole.WindowText))
                p.setFont(font)
                p.drawText(QRect(6, r.top() + 6, self.LABEL_W - 10, 18), int(Qt.AlignmentFlag.AlignLeft),
                           p.fontMetrics().elidedText(row.name, Qt.TextElideMode.ElideMiddle, self.LABEL_W - 10))
                p.setFont(small)
                shape = "×".join(str(v) for v in row.shape)
                p.drawText(QRect(6, r.top() + 26, self.LABEL_W - 10, 16), int(Qt.AlignmentFlag.AlignLeft),
                           f"{row.type} · {shape}")
                if len(row.channels) > 1:
                    p.drawText(QRect(6, r.top() + 42, self.LABEL_W - 10, 16), int(Qt.AlignmentFlag.AlignLeft),
                               f"channels {', '.join(map(str, row.channels[:6]))}{'…' if len(row.channels) > 6 else ''}")
                h_avail = self.ROW_H - 8
                w_avail = self.width() - self.LABEL_W - 8
                if img.width() and img.height():
                    s = min(h_avail / img.height(), w_avail / img.width())
                    target = QRect(self.LABEL_W, r.top() + 4, max(1, int(img.width() * s)), max(1, int(img.height() * s)))
                    p.drawImage(target, img)
                p.setPen(QPen(QColor(127, 127, 127, 80), 1))
                p.drawLine(r.bottomLeft(), r.bottomRight())
        finally:
            p.end()


class OverviewView(QScrollArea):
    """A scrollable list of per-layer strips. ``layerSelected(name)`` on click."""

    layerSelected = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.rows_widget = _Rows()
        self.setWidget(self.rows_widget)
        self.setWidgetResizable(True)
        self.rows_widget.rowClicked.connect(self.layerSelected)

    def set_rows(self, rows: Sequence[OverviewRow] | None) -> None:
        self.rows_widget.set_rows(rows or [])

    def set_selected(self, name: str | None) -> None:
        self.rows_widget.selected = name
        self.rows_widget.update()
        names = [r.name for r in self.rows_widget.rows]
        if name in names:
            r = self.rows_widget.row_rect(names.index(name))
            self.ensureVisible(0, r.center().y(), 0, r.height())

    def row_count(self) -> int:
        return len(self.rows_widget.rows)
