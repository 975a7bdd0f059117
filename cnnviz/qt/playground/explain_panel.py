"""The explain panel: how one output pixel was computed, with the real numbers.

For a conv pixel it shows the input patch under the kernel (padding cells hatched), the
kernel's effective weights, their element-wise products, and the equation
``Σ products + bias = value``. For a pooled pixel it shows the pool window with the
winner outlined (max) or the mean written out (avg).

Every number comes from the core's explanation (:mod:`cnnviz.core.dotproduct`), which
reproduces the map's value exactly; this panel only formats it (4 significant digits).

Run this file to preview the widget on its own.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import (QComboBox, QGridLayout, QHBoxLayout, QLabel, QSizePolicy, QStackedWidget, QToolTip,
                               QVBoxLayout, QWidget)

from ..colors import (MIN_CELL_FONT_PX, cell_font, cell_text_candidates, diverging_color, fit_cell_texts, format_sig, gray_color, symmetric_max,
                      text_color_for)

CHANNEL_NAMES = ("R", "G", "B")


class ValueGrid(QWidget):
    """A small painted grid of numbers, tinted by value.

    ``scale``: "diverging" (symmetric around 0) or "gray" (levels: [0, 1] for image
    values, else min..max). ``hatched``: bool mask of padding cells. ``highlight``: a
    (row, col) drawn with a thick outline (the max-pool winner).
    """

    def __init__(self, parent: QWidget | None = None, *, max_cell: int = 44, tint_only_when_narrow: bool = False):
        super().__init__(parent)
        # the input patch: when the panel is too narrow for readable numbers in all three grids,
        # it shows its grey levels as tints (exact values on hover) and leaves the width to the
        # kernel and the products, whose numbers always show
        self._tint_only_ok = tint_only_when_narrow
        self._v = np.zeros((0, 0), np.float32)
        self._scale = "diverging"
        self._hatched: np.ndarray | None = None
        self._highlight: tuple[int, int] | None = None
        self._levels = (0.0, 1.0)
        self._max_cell = max_cell
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMouseTracking(True)

    def setValues(self, values: np.ndarray, scale: str = "diverging", hatched: np.ndarray | None = None,
                  highlight: tuple[int, int] | None = None) -> None:
        v = np.asarray(values, dtype=np.float64)
        self._v = v
        self._scale = scale
        self._hatched = None if hatched is None else np.asarray(hatched, dtype=bool)
        self._highlight = highlight
        finite = v[np.isfinite(v)]
        if scale == "gray":
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            self._levels = (0.0, 1.0) if (lo >= 0 and hi <= 1) else (lo, hi if hi > lo else lo + 1)
        else:
            m = symmetric_max(finite) if finite.size else 1.0
            self._levels = (-m, m)
        self.updateGeometry()
        self.update()

    def values(self) -> np.ndarray:
        return self._v.copy()

    def _cell(self) -> int:
        """The cells' height (and their width when there is no spare room across)."""
        if self._v.size == 0:
            return 0
        rows, cols = self._v.shape
        return int(max(6, min(self._max_cell, (self.width() - 1) / cols, (self.height() - 1) / rows)))

    def _cell_width(self) -> int:
        """Square cells, widened up to twice their height when the grid is short of height,
        so the numbers get a readable font."""
        if self._v.size == 0:
            return 0
        s = self._cell()
        if s >= 36:  # big enough for a readable number: keep the cells square
            return s
        return int(max(s, min((self.width() - 1) / self._v.shape[1], 2 * s, self._max_cell)))

    def cellRect(self, r: int, c: int) -> QRect:
        rows, cols = self._v.shape
        s, sw = self._cell(), self._cell_width()
        ox = (self.width() - cols * sw) // 2
        return QRect(ox + c * sw, r * s, sw, s)  # top-aligned, right under its caption

    def _min_cell_width(self) -> int:
        """The narrowest cell that shows every value in a MIN_CELL_FONT_PX font."""
        f = cell_font(self.font())
        f.setPixelSize(MIN_CELL_FONT_PX)
        fm = QFontMetrics(f)
        need = max((min(fm.horizontalAdvance(t) for t in cell_text_candidates(float(v))) for v in self._v.ravel()),
                   default=0)
        return max(20, need + 3)

    def sizeHint(self) -> QSize:
        if self._v.size == 0:
            return QSize(120, 120)
        rows, cols = self._v.shape
        s = 40 if max(rows, cols) <= 3 else 34 if max(rows, cols) <= 5 else 28
        return QSize(cols * s + 1, rows * s + 1)

    def minimumSizeHint(self) -> QSize:
        if self._v.size == 0:
            return QSize(30, 30)
        rows, cols = self._v.shape
        # room for a readable number in every cell
        return QSize(cols * (10 if self._tint_only_ok else self._min_cell_width()) + 1, rows * 20 + 1)

    def showsNumbers(self) -> bool:
        """Whether the cells show their numbers (always, unless a tint-only grid is narrow)."""
        return not self._tint_only_ok or self._cell_width() >= self._min_cell_width()

    def _color(self, v: float) -> QColor:
        if self._scale == "gray":
            return gray_color(v, *self._levels)
        return diverging_color(v, self._levels[1])

    def cellTexts(self):
        """(font, metrics, texts): the number painted in each cell — never blank, never in a
        font under MIN_CELL_FONT_PX (the tooltip has the exact value)."""
        s, sw = self._cell(), self._cell_width()
        base = max(MIN_CELL_FONT_PX, min(int(s * 0.45), int(sw * 0.3)))
        font, fm, texts = fit_cell_texts(cell_font(self.font()), base, self._v, sw - 3, min_px=MIN_CELL_FONT_PX)
        if not self.showsNumbers():
            texts = np.full(self._v.shape, "", dtype=object)
        return font, fm, texts

    def paintEvent(self, event) -> None:  # noqa: ARG002
        if self._v.size == 0:
            return
        p = QPainter(self)
        rows, cols = self._v.shape
        s, sw = self._cell(), self._cell_width()
        font, fm, texts = self.cellTexts()
        bold = QFont(font)
        bold.setBold(True)
        bold_fm = QFontMetrics(bold)
        hatch_dark = QBrush(QColor(0, 0, 0, 70), Qt.BDiagPattern)
        hatch_light = QBrush(QColor(255, 255, 255, 110), Qt.BDiagPattern)
        for r in range(rows):
            for c in range(cols):
                rect = self.cellRect(r, c)
                v = float(self._v[r, c])
                bg = self._color(v)
                p.fillRect(rect, bg)
                fg = text_color_for(bg)
                if self._hatched is not None and self._hatched[r, c]:
                    p.fillRect(rect, hatch_dark if fg.lightness() < 128 else hatch_light)
                text = texts[r, c]
                hi = self._highlight == (r, c) and bold_fm.horizontalAdvance(text) <= rect.width() - 3
                p.setFont(bold if hi else font)
                p.setPen(fg)
                p.drawText(rect, Qt.AlignCenter, text)
        p.setPen(QPen(QColor(0, 0, 0, 80), 1))
        o = self.cellRect(0, 0).topLeft()
        for r in range(rows + 1):
            p.drawLine(o.x(), o.y() + r * s, o.x() + cols * sw, o.y() + r * s)
        for c in range(cols + 1):
            p.drawLine(o.x() + c * sw, o.y(), o.x() + c * sw, o.y() + rows * s)
        if self._highlight is not None:
            p.setRenderHint(QPainter.Antialiasing, True)
            rect = QRectF(self.cellRect(*self._highlight)).adjusted(1.5, 1.5, -1.5, -1.5)
            p.setPen(QPen(QColor(0, 0, 0), 4))
            p.drawRect(rect)
            p.setPen(QPen(QColor(255, 200, 0), 2.2))
            p.drawRect(rect)
        p.end()

    def event(self, e) -> bool:  # noqa: ANN001
        if e.type() == QEvent.ToolTip and self._v.size:
            rows, cols = self._v.shape
            for r in range(rows):
                for c in range(cols):
                    if self.cellRect(r, c).contains(e.pos()):
                        extra = " (padding)" if self._hatched is not None and self._hatched[r, c] else ""
                        QToolTip.showText(e.globalPos(), f"{self._v[r, c]:.7g}{extra}", self)
                        return True
        return super().event(e)


def _captioned(grid: ValueGrid, caption: str) -> tuple[QWidget, QLabel]:
    box = QWidget()
    lay = QVBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.setSpacing(2)
    lab = QLabel(caption)
    lab.setAlignment(Qt.AlignHCenter)
    lay.addWidget(lab)
    lay.addWidget(grid, 1)
    return box, lab


def _operator(text: str) -> QLabel:
    lab = QLabel(text)
    f = lab.font()
    f.setPointSizeF(f.pointSizeF() * 1.4)
    lab.setFont(f)
    lab.setAlignment(Qt.AlignCenter)
    lab.setSizePolicy(QSizePolicy.Fixed, QSizePolicy.Preferred)
    return lab


class ExplainPanel(QWidget):
    """Shows a :class:`~cnnviz.core.dotproduct.ConvPixelExplanation` or a
    :class:`~cnnviz.core.dotproduct.PoolPixelExplanation` as grids and an equation."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._value: float | None = None
        self._sum_text = ""
        self._conv = None
        root = QVBoxLayout(self)
        root.setContentsMargins(6, 6, 6, 6)
        root.setSpacing(4)
        self._title = QLabel(self)
        self._title.setObjectName("title")
        self._title.setWordWrap(True)
        f = self._title.font()
        f.setBold(True)
        self._title.setFont(f)
        root.addWidget(self._title)

        self._stack = QStackedWidget(self)
        root.addWidget(self._stack, 1)
        # page 0: nothing shown yet
        self._placeholder = QLabel("Hover or click a pixel of an output map to see how it was computed:\n"
                                   "the input patch, the kernel, their products and the sum.")
        self._placeholder.setAlignment(Qt.AlignCenter)
        self._placeholder.setWordWrap(True)
        self._stack.addWidget(self._placeholder)
        # page 1: conv
        conv = QWidget()
        grid = QGridLayout(conv)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        self._patch = ValueGrid(tint_only_when_narrow=True)
        self._weights = ValueGrid()
        self._products = ValueGrid()
        self._patch.setObjectName("patch")
        self._weights.setObjectName("kernel")
        self._products.setObjectName("products")
        pbox, self._patch_caption = _captioned(self._patch, "input patch")
        wbox, self._weights_caption = _captioned(self._weights, "kernel")
        qbox, _ = _captioned(self._products, "products")
        grid.addWidget(pbox, 0, 0)
        grid.addWidget(_operator("⊙"), 0, 1)
        grid.addWidget(wbox, 0, 2)
        grid.addWidget(_operator("="), 0, 3)
        grid.addWidget(qbox, 0, 4)
        for col in (0, 2, 4):
            grid.setColumnStretch(col, 1)
        self._stack.addWidget(conv)
        # page 2: pool
        pool = QWidget()
        play = QHBoxLayout(pool)
        play.setContentsMargins(0, 0, 0, 0)
        self._pool_grid = ValueGrid(max_cell=56)
        self._pool_grid.setObjectName("pool")
        pbox2, self._pool_caption = _captioned(self._pool_grid, "pool window")
        play.addStretch(1)
        play.addWidget(pbox2, 2)
        play.addStretch(1)
        self._stack.addWidget(pool)

        row = QHBoxLayout()
        self._channel = QComboBox(self)
        self._channel.setObjectName("channel")
        self._channel.setToolTip("Which channel's patch, weights and products the grids show")
        self._channel.currentIndexChanged.connect(self._show_channel)
        self._channel.hide()
        row.addWidget(self._channel)
        self._legend = QLabel(self)
        self._legend.setObjectName("legend")
        self._legend.setWordWrap(True)
        row.addWidget(self._legend, 1)
        # the sum of the products beside the legend, not under it: one line less, so the
        # equation stays in view in the first screen's Explain panel at 1280×720
        self._detail = QLabel(self)
        self._detail.setObjectName("detail")
        self._detail.setWordWrap(True)
        self._detail.setTextInteractionFlags(Qt.TextSelectableByMouse)
        row.addWidget(self._detail, 2)
        root.addLayout(row)
        self._equation = QLabel(self)
        self._equation.setObjectName("equation")
        self._equation.setWordWrap(True)
        self._equation.setTextInteractionFlags(Qt.TextSelectableByMouse)
        f = self._equation.font()
        f.setPointSizeF(f.pointSizeF() * 1.25)
        f.setBold(True)
        self._equation.setFont(f)
        root.addWidget(self._equation)
        self.clear()

    # -- public API ---------------------------------------------------------------------------
    def clear(self) -> None:
        self._value = None
        self._sum_text = ""
        self._conv = None
        self._title.setText("Explain")
        self._stack.setCurrentIndex(0)
        self._channel.hide()
        self._legend.clear()
        self._detail.clear()
        self._equation.clear()

    def shown_value(self) -> float | None:
        """The value the panel explains (the map's value), None when cleared."""
        return self._value

    def shown_sum_text(self) -> str:
        """The equation shown in numbers, e.g. ``"1.25 + 0.5 = 1.75"`` (Σ products + bias = value)."""
        return self._sum_text

    def grid(self, name: str) -> ValueGrid:
        """One of the grids: "patch", "kernel", "products" or "pool"."""
        return {"patch": self._patch, "kernel": self._weights, "products": self._products,
                "pool": self._pool_grid}[name]

    def show_conv(self, expl) -> None:  # noqa: ANN001
        """Show a conv pixel's patch, kernel, products and ``Σ products + bias = value``."""
        self._conv = expl
        patch = np.asarray(expl.patch)
        value = float(expl.value)
        total = float(expl.total)
        bias = float(expl.bias)
        self._value = value
        oy, ox = getattr(expl, "oy", None), getattr(expl, "ox", None)
        rows, cols = np.asarray(expl.rows), np.asarray(expl.cols)
        where = f"Output pixel (row {oy}, col {ox})" if oy is not None else "Output pixel"
        dil_y = int(rows[1] - rows[0]) if rows.size > 1 else 1
        dil_x = int(cols[1] - cols[0]) if cols.size > 1 else 1
        span = f"input rows {_span(rows)}, cols {_span(cols)}"
        if dil_y > 1 or dil_x > 1:
            span += f" (every {dil_y if dil_y == dil_x else f'{dil_y}/{dil_x}'} pixels: dilation)"
        self._title.setText(f"{where}  ←  {span}")
        n_pad = int(np.count_nonzero(expl.in_padding))
        self._legend.setText(f"Hatched: {n_pad} tap{'s' if n_pad != 1 else ''} outside the image, reading padding."
                             if n_pad else "All taps inside the image.")
        channels = patch.shape[0] if patch.ndim == 3 else 0
        self._channel.blockSignals(True)
        self._channel.clear()
        if channels:
            names = CHANNEL_NAMES if channels == 3 else tuple(str(i + 1) for i in range(channels))
            self._channel.addItems([f"channel {n}" for n in names])
            self._channel.setCurrentIndex(0)
            self._channel.show()
        else:
            self._channel.hide()
        self._channel.blockSignals(False)
        self._show_channel(0)
        products = np.asarray(expl.products, dtype=np.float64)
        if channels:
            names = CHANNEL_NAMES if channels == 3 else tuple(str(i + 1) for i in range(channels))
            parts = " + ".join(f"{n} {format_sig(products[i].sum())}" for i, n in enumerate(names))
            self._detail.setText(f"Σ products over {channels} channels = {parts} = {format_sig(total)}")
        else:
            self._detail.setText(f"Σ of the {products.size} products = {format_sig(total)}")
        self._sum_text = f"{format_sig(total)} {'+' if bias >= 0 else '−'} {format_sig(abs(bias))} = {format_sig(value)}"
        self._equation.setText(f"Σ products + bias = value:   {self._sum_text}")
        self._equation.setToolTip(f"Σ products = {total:.9g}\nbias = {bias:.9g}\nvalue = {value:.9g}")
        self._stack.setCurrentIndex(1)

    def show_pool(self, expl) -> None:  # noqa: ANN001
        """Show a pooled pixel's window: the winner (max) or the mean (avg)."""
        self._conv = None
        self._channel.hide()
        vals = np.asarray(expl.values, dtype=np.float64)
        value = float(expl.value)
        self._value = value
        y0, x0, y1, x1 = (int(v) for v in expl.window)
        py, px = getattr(expl, "py", None), getattr(expl, "px", None)
        where = f"Pooled pixel (row {py}, col {px})" if py is not None else "Pooled pixel"
        self._title.setText(f"{where}  ←  activation rows {y0}…{y1 - 1}, cols {x0}…{x1 - 1}")
        pad = ~np.isfinite(vals) if expl.kind == "max" else _outside(vals.shape, expl.window)
        signed = bool(np.any(vals[np.isfinite(vals)] < 0))
        highlight = None
        if expl.kind == "max" and expl.winner is not None:
            wy, wx = expl.winner
            highlight = (int(wy) - y0, int(wx) - x0)
        self._pool_grid.setValues(vals, "diverging" if signed else "gray", hatched=pad, highlight=highlight)
        n_pad = int(np.count_nonzero(pad))
        if expl.kind == "max":
            self._pool_caption.setText(f"max pool {vals.shape[0]}×{vals.shape[1]}: the outlined value wins")
            where_w = f" at row {expl.winner[0]}, col {expl.winner[1]}" if expl.winner is not None else ""
            self._detail.setText(f"The largest of the {int(np.isfinite(vals).sum())} values{where_w}"
                                 + (f"; {n_pad} padding cell{'s' if n_pad != 1 else ''} (−∞) never win." if n_pad else "."))
            self._sum_text = f"max = {format_sig(value)}"
            self._equation.setText(f"max of the window = {format_sig(value)}")
        else:
            total = float(np.nansum(np.where(np.isfinite(vals), vals, 0.0)))
            div = float(expl.divisor) if expl.divisor is not None else float(vals.size)
            self._pool_caption.setText(f"average pool {vals.shape[0]}×{vals.shape[1]}")
            self._detail.setText(f"Sum of the window = {format_sig(total)}, divided by {format_sig(div)}"
                                 + (" (padding counts as 0 and is included in the divisor)." if n_pad else "."))
            self._sum_text = f"{format_sig(total)} / {format_sig(div)} = {format_sig(value)}"
            self._equation.setText(f"mean = Σ values / count:   {self._sum_text}")
        self._legend.setText("Hatched: padding around the map." if n_pad else "")
        self._equation.setToolTip(f"value = {value:.9g}")
        self._stack.setCurrentIndex(2)

    # -- internals ------------------------------------------------------------------------
    def _show_channel(self, idx: int) -> None:
        expl = self._conv
        if expl is None:
            return
        patch = np.asarray(expl.patch)
        weights = np.asarray(expl.weights)
        products = np.asarray(expl.products)
        if patch.ndim == 3:
            idx = max(0, idx)
            name = CHANNEL_NAMES[idx] if patch.shape[0] == 3 else str(idx + 1)
            patch, products = patch[idx], products[idx]
            weights = weights[idx] if weights.ndim == 3 else weights
            suffix = f" ({name})"
        else:
            suffix = ""
        pad = np.asarray(expl.in_padding, dtype=bool)
        self._patch.setValues(patch, "gray", hatched=pad)
        self._weights.setValues(weights, "diverging")
        self._products.setValues(products, "diverging", hatched=pad)
        self._patch_caption.setText(f"input patch{suffix}")
        self._weights_caption.setText("kernel (÷ divisor)" if not suffix else f"kernel{suffix}")


def _span(idx: np.ndarray) -> str:
    idx = np.asarray(idx)
    if idx.size == 0:
        return "—"
    lo, hi = int(idx.min()), int(idx.max())
    return str(lo) if lo == hi else f"{lo}…{hi}"


def _outside(shape, window) -> np.ndarray:  # noqa: ANN001
    """Padding mask of an avg-pool window from its coordinates: cells above or left of the
    map (negative coordinates). The explanation does not carry the map size, so padding
    past the bottom/right edge cannot be told from a real 0 and is not marked."""
    y0, x0 = int(window[0]), int(window[1])
    ys = y0 + np.arange(shape[0])
    xs = x0 + np.arange(shape[1])
    return (ys < 0)[:, None] | (xs < 0)[None, :]


if __name__ == "__main__":  # preview: python -m cnnviz.qt.playground.explain_panel
    import sys

    from PySide6.QtWidgets import QApplication

    from cnnviz.core.conv import ConvSpec
    from cnnviz.core.dotproduct import explain_conv_pixel
    from cnnviz.core.kernels import presets

    app = QApplication(sys.argv)
    w = ExplainPanel()
    img = np.random.default_rng(0).random((16, 16), dtype=np.float32)
    w.show_conv(explain_conv_pixel(img, presets()["sobel-x"].kernel, ConvSpec(padding=1), 0, 3))
    w.show()
    sys.exit(app.exec())
