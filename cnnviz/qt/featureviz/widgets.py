"""Small picture widgets for the "What a channel looks for" window (numpy in, pixels out)."""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from cnnviz.core.display import unit_image_to_rgb8 as to_uint8




def to_qimage(img: np.ndarray) -> QImage:
    """An independent QImage (copied: the array may change or go away afterwards)."""
    a = to_uint8(img)
    h, w = a.shape[:2]
    return QImage(a.data, w, h, a.strides[0], QImage.Format.Format_RGB888).copy()


class TileGrid(QWidget):
    """Images in a near-square grid, each scaled (nearest) to fit its cell; a click selects a
    tile (``tileClicked(index)``) and the selected one is framed. ``captions`` are drawn under
    each tile when given."""

    tileClicked = Signal(int)

    def __init__(self, parent=None, placeholder: str = ""):
        super().__init__(parent)
        self._images: list[QImage] = []
        self._captions: list[str] = []
        self._selected = -1
        self._cols: int | None = None
        self.placeholder = placeholder
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 160)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(360, 360)

    def set_images(self, images, captions: list[str] | None = None, cols: int | None = None) -> None:
        self._images = [to_qimage(im) for im in images]
        self._captions = list(captions or [])
        self._cols = cols
        self.update()

    def count(self) -> int:
        return len(self._images)

    def image(self, i: int) -> QImage:
        return self._images[i]

    def set_selected(self, i: int) -> None:
        self._selected = i
        self.update()

    def _layout(self) -> tuple[int, int, int]:
        n = max(1, len(self._images))
        cols = self._cols or max(1, math.ceil(math.sqrt(n * self.width() / max(1, self.height()))))
        cols = min(cols, n)
        rows = math.ceil(n / cols)
        cell = max(4, min(self.width() // cols, self.height() // rows))
        return cols, rows, cell

    def tile_rect(self, i: int) -> QRect:
        cols, _rows, cell = self._layout()
        r, c = divmod(i, cols)
        return QRect(c * cell, r * cell, cell, cell)

    def image_rect(self, i: int = 0) -> QRect:
        """Where image ``i`` is drawn: its tile less the margins and caption, the image scaled
        to fit with its aspect kept, centred (empty when there is no room or no image)."""
        if not 0 <= i < len(self._images):
            return QRect()
        cap_h = 14 if self._captions else 0
        rect = self.tile_rect(i).adjusted(2, 2, -2, -2 - cap_h)
        if rect.width() <= 0 or rect.height() <= 0:
            return QRect()
        size = self._images[i].size().scaled(rect.size(), Qt.AspectRatioMode.KeepAspectRatio)
        return QRect(rect.x() + (rect.width() - size.width()) // 2, rect.y() + (rect.height() - size.height()) // 2,
                     size.width(), size.height())

    def paintEvent(self, _ev) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(45, 45, 45))
        if not self._images:
            p.setPen(QColor(190, 190, 190))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)
            p.end()
            return
        cap_h = 14 if self._captions else 0
        for i, img in enumerate(self._images):
            rect = self.tile_rect(i).adjusted(2, 2, -2, -2 - cap_h)
            target = self.image_rect(i)
            if target.isEmpty():
                continue
            p.drawImage(target.topLeft(), img.scaled(target.size(), Qt.AspectRatioMode.IgnoreAspectRatio,
                                                     Qt.TransformationMode.FastTransformation))
            if i < len(self._captions) and self._captions[i]:
                p.setPen(QColor(220, 220, 220))
                p.drawText(QRect(rect.x(), rect.bottom(), rect.width(), cap_h), Qt.AlignmentFlag.AlignCenter,
                           self._captions[i])
            if i == self._selected:
                p.setPen(QPen(QColor(255, 200, 0), 2))
                p.drawRect(self.tile_rect(i).adjusted(1, 1, -1, -1))
        p.end()

    def mousePressEvent(self, ev) -> None:  # noqa: N802
        cols, rows, cell = self._layout()
        c, r = int(ev.position().x()) // cell, int(ev.position().y()) // cell
        i = r * cols + c
        if 0 <= c < cols and 0 <= i < len(self._images):
            self.set_selected(i)
            self.tileClicked.emit(i)


class Picture(TileGrid):
    """One image, scaled to fit."""

    def set_image(self, img: np.ndarray | None, caption: str = "") -> None:
        if img is None:
            self.set_images([])
        else:
            self.set_images([img], [caption] if caption else None, cols=1)


class UnitMap(Picture):
    """One channel's activation map; a click picks the unit under the cursor
    (``unitClicked(y, x)``, map coordinates) and the picked unit is framed."""

    unitClicked = Signal(int, int)

    def __init__(self, parent=None, placeholder: str = ""):
        super().__init__(parent, placeholder)
        self._shape: tuple[int, int] | None = None
        self._marker: tuple[int, int] | None = None
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setToolTip("click a unit of the map to see what it responds to in the input")

    def set_map(self, rgb: np.ndarray | None, shape: tuple[int, int] | None, caption: str = "") -> None:
        """Show ``rgb`` (the map, coloured) for a map of ``shape`` (H, W); ``None``: nothing."""
        self._shape = None if rgb is None else (int(shape[0]), int(shape[1]))
        self._marker = None
        self.set_image(rgb, caption)

    def map_shape(self) -> tuple[int, int] | None:
        return self._shape

    def set_marker(self, unit: tuple[int, int] | None) -> None:
        self._marker = None if unit is None else (int(unit[0]), int(unit[1]))
        self.update()

    def marker(self) -> tuple[int, int] | None:
        return self._marker

    def unit_at(self, px: float, py: float) -> tuple[int, int] | None:
        """The map unit (y, x) under widget position (px, py), ``None`` outside the map."""
        r = self.image_rect()
        if self._shape is None or r.isEmpty() or not (r.x() <= px < r.x() + r.width() and r.y() <= py < r.y() + r.height()):
            return None
        h, w = self._shape
        return (min(h - 1, int((py - r.y()) * h / r.height())), min(w - 1, int((px - r.x()) * w / r.width())))

    def unit_center(self, y: int, x: int):
        """The widget position of unit (y, x)'s centre (for keyboard users' tests and tools)."""
        from PySide6.QtCore import QPoint

        r = self.image_rect()
        h, w = self._shape
        return QPoint(int(r.x() + (x + 0.5) * r.width() / w), int(r.y() + (y + 0.5) * r.height() / h))

    def paintEvent(self, ev) -> None:  # noqa: N802
        super().paintEvent(ev)
        if self._marker is None or self._shape is None or not self._images:
            return
        r = self.image_rect()
        h, w = self._shape
        y, x = self._marker
        p = QPainter(self)
        p.setPen(QPen(QColor(0, 230, 120), 2))
        x0, x1 = r.x() + x * r.width() / w, r.x() + (x + 1) * r.width() / w
        y0, y1 = r.y() + y * r.height() / h, r.y() + (y + 1) * r.height() / h
        p.drawRect(QRect(int(x0), int(y0), max(3, int(x1 - x0)), max(3, int(y1 - y0))))
        p.end()

    def mousePressEvent(self, ev) -> None:  # noqa: N802
        unit = self.unit_at(ev.position().x(), ev.position().y())
        if unit is not None:
            self.set_marker(unit)
            self.unitClicked.emit(*unit)
