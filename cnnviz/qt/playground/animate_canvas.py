"""The Animate panel's drawing: the input crop, the kernel's window sliding over it and the
output filling in, painted in one widget. Split from :mod:`animate_panel`, which re-exports it."""

from __future__ import annotations

from typing import TYPE_CHECKING


import numpy as np
from PySide6.QtCore import QPoint, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPainter, QPen
from PySide6.QtWidgets import (QSizePolicy, QWidget)

from cnnviz.core.display import colorize



def _colorize(arr: np.ndarray, levels: tuple[float, float]) -> np.ndarray:
    return colorize(arr.astype(np.float32), "diverging" if levels[0] < 0 else "gray", levels=levels)

if TYPE_CHECKING:  # the panel it paints for (no import at run time: no cycle)
    from .animate_panel import AnimatePanel


class _Canvas(QWidget):
    """Paints the padded crop with the sliding window, and the output filling in."""

    outputClicked = Signal(int, int)

    def __init__(self, panel: AnimatePanel):
        super().__init__(panel)
        self._panel = panel
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMinimumSize(260, 150)

    def sizeHint(self) -> QSize:
        return QSize(560, 300)

    def _layout(self) -> tuple[int, QPoint, QPoint] | None:
        """(cell size, top-left of the padded input, top-left of the output)."""
        pnl = self._panel
        if pnl._padded is None or pnl._out is None:
            return None
        ph, pw = pnl._padded.shape[:2]
        oh, ow = pnl._out.shape
        gap = 36
        top = 18
        cell = min((self.width() - gap - 8) / (pw + ow), (self.height() - top - 4) / max(ph, oh))
        cell = int(max(2, min(28, cell)))
        total_w = (pw + ow) * cell + gap
        x0 = max(4, (self.width() - total_w) // 2)
        return cell, QPoint(x0, top), QPoint(x0 + pw * cell + gap, top)

    def outputRect(self, oy: int, ox: int) -> QRect:
        lay = self._layout()
        if lay is None:
            return QRect()
        cell, _, o = lay
        return QRect(o.x() + ox * cell, o.y() + oy * cell, cell, cell)

    def paintEvent(self, event) -> None:  # noqa: ARG002
        pnl = self._panel
        p = QPainter(self)
        fg = self.palette().color(self.foregroundRole())
        if pnl._error:
            p.setPen(fg)
            p.drawText(self.rect().adjusted(8, 8, -8, -8), Qt.AlignCenter | Qt.TextWordWrap, pnl._error)
            p.end()
            return
        lay = self._layout()
        if lay is None:
            p.setPen(fg)
            p.drawText(self.rect(), Qt.AlignCenter, "Open an image to animate the convolution.")
            p.end()
            return
        cell, a, o = lay
        ph, pw = pnl._padded.shape[:2]
        oh, ow = pnl._out.shape
        t, b, l, r = pnl._pads
        # captions
        p.setPen(fg)
        f = self.font()
        f.setPixelSize(12)
        p.setFont(f)
        p.drawText(QRect(a.x(), 0, pw * cell, 16), Qt.AlignLeft | Qt.AlignVCenter,
                   f"input crop {pnl._crop.shape[0]}×{pnl._crop.shape[1]}" + (" + padding" if any(pnl._pads) else ""))
        p.drawText(QRect(o.x(), 0, max(ow * cell, 120), 16), Qt.AlignLeft | Qt.AlignVCenter, f"output {oh}×{ow}")
        # input (nearest-neighbour zoom of precomputed images: no per-pixel work here)
        p.setRenderHint(QPainter.SmoothPixmapTransform, False)
        p.drawImage(QRect(a.x(), a.y(), pw * cell, ph * cell), pnl._padded_img)
        if any(pnl._pads):
            hatch = QBrush(QColor(255, 255, 255, 120), Qt.BDiagPattern)
            shade = QColor(0, 0, 0, 60)
            inner = QRect(a.x() + l * cell, a.y() + t * cell, (pw - l - r) * cell, (ph - t - b) * cell)
            for rect in (QRect(a.x(), a.y(), pw * cell, t * cell), QRect(a.x(), inner.bottom() + 1, pw * cell, b * cell),
                         QRect(a.x(), inner.y(), l * cell, inner.height()),
                         QRect(inner.right() + 1, inner.y(), r * cell, inner.height())):
                if rect.width() > 0 and rect.height() > 0:
                    p.fillRect(rect, shade)
                    p.fillRect(rect, hatch)
            p.setPen(QPen(QColor(255, 255, 255, 160), 1, Qt.DashLine))
            p.drawRect(inner.adjusted(0, 0, -1, -1))
        # output: unrevealed background, then the revealed rows and the partial row
        p.fillRect(QRect(o.x(), o.y(), ow * cell, oh * cell), self.palette().color(self.backgroundRole()).darker(112))
        n = pnl._pos
        full_rows, rest = divmod(n, ow)
        if full_rows:
            p.drawImage(QRect(o.x(), o.y(), ow * cell, full_rows * cell), pnl._out_img, QRect(0, 0, ow, full_rows))
        if rest and full_rows < oh:
            p.drawImage(QRect(o.x(), o.y() + full_rows * cell, rest * cell, cell), pnl._out_img,
                        QRect(0, full_rows, rest, 1))
        p.setPen(QPen(QColor(0, 0, 0, 90), 1))
        p.drawRect(QRect(o.x(), o.y(), ow * cell, oh * cell).adjusted(0, 0, -1, -1))
        # the window over the input and its output pixel
        cur = pnl.current_pixel()
        if cur is not None:
            oy, ox = cur
            (sy, sx), (dy, dx) = pnl._spec.stride, pnl._spec.dilation
            kh, kw = pnl._kernel.size
            y0, x0 = oy * sy, ox * sx  # in padded coordinates
            p.setRenderHint(QPainter.Antialiasing, True)
            box = QRectF(a.x() + x0 * cell, a.y() + y0 * cell, ((kw - 1) * dx + 1) * cell, ((kh - 1) * dy + 1) * cell)
            tap_pen = QPen(QColor(255, 200, 0, 230), max(1.0, cell / 10))
            p.setPen(tap_pen)
            p.setBrush(QColor(255, 200, 0, 50))
            if (dy, dx) != (1, 1) or kh * kw <= 49:
                for i in range(kh):
                    for j in range(kw):
                        p.drawRect(QRectF(a.x() + (x0 + j * dx) * cell, a.y() + (y0 + i * dy) * cell, cell, cell)
                                   .adjusted(1, 1, -1, -1))
            p.setBrush(Qt.NoBrush)
            p.setPen(QPen(QColor(0, 0, 0), 3.5))
            p.drawRect(box)
            p.setPen(QPen(QColor(255, 200, 0), 2))
            p.drawRect(box)
            out_rect = QRectF(self.outputRect(oy, ox)).adjusted(-1, -1, 1, 1)
            p.setPen(QPen(QColor(0, 0, 0), 3.5))
            p.drawRect(out_rect)
            p.setPen(QPen(QColor(255, 200, 0), 2))
            p.drawRect(out_rect)
            # a line from the window to the pixel it produces
            p.setPen(QPen(QColor(255, 200, 0, 170), 1.5, Qt.DashLine))
            p.drawLine(box.topRight(), out_rect.topLeft())
        p.end()

    def mousePressEvent(self, e) -> None:  # noqa: ANN001
        pnl = self._panel
        if pnl._out is None or e.button() != Qt.LeftButton:
            return super().mousePressEvent(e)
        oh, ow = pnl._out.shape
        for_y = for_x = None
        lay = self._layout()
        if lay is not None:
            cell, _, o = lay
            x, y = e.position().x() - o.x(), e.position().y() - o.y()
            if 0 <= x < ow * cell and 0 <= y < oh * cell:
                for_y, for_x = int(y // cell), int(x // cell)
        if for_y is not None:
            self.outputClicked.emit(for_y, for_x)
