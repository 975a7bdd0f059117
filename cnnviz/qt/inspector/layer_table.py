"""The model's layers in execution order, and a chart that makes the pyramid visible.

Table columns: #, name, type, output shape, parameters, theoretical receptive field.
The chart draws, for every layer, its spatial size (H×W, bars, log scale) and its channel
count (line): in a CNN the bars fall while the line rises.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QLabel, QSplitter, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from cnnviz.core.inspect_results import LayerInfo

__all__ = ["LayerTable", "PyramidChart", "COLUMNS"]

COLUMNS = ("#", "name", "type", "output shape", "params", "RF", "layout → maps")

_SPATIAL = QColor(66, 133, 196)
_CHANNELS = QColor(230, 140, 30)


def _fmt_int(n: int) -> str:
    return f"{n:,}".replace(",", " ")


def _spatial_and_channels(li: LayerInfo) -> tuple[int, int]:
    g = li.grid_shape
    if g is not None:  # the layout's maps: channels-last and token layers count as maps
        return g[1] * g[2], g[0]
    s = li.shape
    if len(s) == 3:
        return s[1] * s[2], s[0]
    if len(s) == 1:
        return 1, s[0]
    if len(s) == 2:
        return s[0] * s[1], 1
    if len(s) > 3:
        return s[-1] * s[-2], int(math.prod(s[:-2]))
    return 1, 1


class PyramidChart(QWidget):
    """Spatial size (bars) and channels (line) per layer; click a bar to select that layer."""

    layerClicked = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._layers: list[LayerInfo] = []
        self._selected: str | None = None
        self.setMinimumHeight(120)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(360, 160)

    def set_layers(self, layers: Sequence[LayerInfo]) -> None:
        """Layers with a spatial map (the feature-map pyramid); vectors are left out."""
        self._layers = [li for li in layers if li.spatial]
        self.update()

    def set_selected(self, name: str | None) -> None:
        self._selected = name
        self.update()

    def _plot_rect(self) -> QRectF:
        return QRectF(44, 22, max(10, self.width() - 88), max(10, self.height() - 40))

    def _bar_index_at(self, x: float) -> int | None:
        r = self._plot_rect()
        n = len(self._layers)
        if n == 0 or not (r.left() <= x <= r.right()):
            return None
        return min(n - 1, int((x - r.left()) / (r.width() / n)))

    def mousePressEvent(self, event) -> None:  # noqa: N802
        i = self._bar_index_at(event.position().x())
        if i is not None:
            self.layerClicked.emit(self._layers[i].name)

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        try:
            p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            pal = self.palette()
            text = pal.color(pal.ColorRole.WindowText)
            font = QFont(self.font())
            font.setPixelSize(10)
            p.setFont(font)
            if not self._layers:
                p.setPen(pal.color(pal.ColorRole.PlaceholderText))
                p.drawText(self.rect(), int(Qt.AlignmentFlag.AlignCenter), "no layers with spatial maps")
                return
            r = self._plot_rect()
            vals = [_spatial_and_channels(li) for li in self._layers]
            sp = [max(1, v[0]) for v in vals]
            ch = [max(1, v[1]) for v in vals]
            sp_max, ch_max = max(sp), max(ch)
            n = len(vals)
            bw = r.width() / n

            def y_log(v: float, vmax: float) -> float:
                if vmax <= 1:
                    return r.bottom() - 0.5 * r.height()
                return r.bottom() - (0.08 + 0.92 * math.log(v) / math.log(vmax)) * r.height()

            for i, v in enumerate(sp):
                top = y_log(v, sp_max)
                bar = QRectF(r.left() + i * bw + bw * 0.12, top, max(1.0, bw * 0.76), r.bottom() - top)
                colour = QColor(_SPATIAL)
                if self._layers[i].name == self._selected:
                    colour = QColor(255, 190, 0)
                p.fillRect(bar, colour)
            path = QPainterPath()
            for i, v in enumerate(ch):
                pt = QPointF(r.left() + (i + 0.5) * bw, y_log(v, ch_max))
                path.moveTo(pt) if i == 0 else path.lineTo(pt)
            p.setPen(QPen(_CHANNELS, 2))
            p.drawPath(path)
            if bw >= 5:
                p.setBrush(_CHANNELS)
                for i, v in enumerate(ch):
                    p.drawEllipse(QPointF(r.left() + (i + 0.5) * bw, y_log(v, ch_max)), 2.2, 2.2)
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.setPen(QPen(text, 1))
            p.drawLine(r.bottomLeft(), r.bottomRight())
            # axes: spatial size on the left, channels on the right (log scales)
            p.setPen(_SPATIAL.darker(110) if pal.color(pal.ColorRole.Window).lightness() > 128 else _SPATIAL.lighter(140))
            side = int(round(math.sqrt(sp_max)))
            p.drawText(QRectF(0, r.top() - 6, 42, 14), int(Qt.AlignmentFlag.AlignRight), f"{side}²")
            p.drawText(QRectF(0, r.bottom() - 14, 42, 14), int(Qt.AlignmentFlag.AlignRight), "1")
            p.drawText(QRectF(4, 2, r.width(), 14), int(Qt.AlignmentFlag.AlignLeft), "▮ spatial size H×W")
            p.setPen(_CHANNELS)
            p.drawText(QRectF(r.right() + 4, r.top() - 6, 40, 14), int(Qt.AlignmentFlag.AlignLeft), _fmt_int(ch_max))
            p.drawText(QRectF(r.right() + 4, r.bottom() - 14, 40, 14), int(Qt.AlignmentFlag.AlignLeft), "1")
            p.drawText(QRectF(r.left(), 2, r.width() + 40, 14), int(Qt.AlignmentFlag.AlignRight), "channels ━")
            p.setPen(text)
            p.drawText(QRectF(r.left(), r.bottom() + 2, r.width(), 14), int(Qt.AlignmentFlag.AlignCenter),
                       f"{n} layers with spatial maps, in execution order (log scales)")
        finally:
            p.end()


class LayerTable(QWidget):
    """Table of layers plus the pyramid chart. ``layerSelected(name)`` on a user's choice."""

    layerSelected = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        self.summary = QLabel("")
        self.summary.setObjectName("layer-summary")
        self.summary.setWordWrap(True)
        lay.addWidget(self.summary)
        split = QSplitter(Qt.Orientation.Vertical)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("layer-table")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        tips = ("execution order", "qualified module name", "module class", "output shape without the batch "
                "dimension (C×H×W)", "parameters the module owns", "theoretical receptive field: the input pixels "
                "one unit can see (from kernels, strides, padding)",
                "what the axes mean (NCHW, NHWC channels-last, tokens on a grid, vector, nonbatch) and the "
                "C×H×W maps the views draw; the Layer panel says how it was decided and lets you change it")
        for col, tip in enumerate(tips):
            self.table.horizontalHeaderItem(col).setToolTip(tip)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        hdr = self.table.horizontalHeader()
        hdr.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        hdr.setStretchLastSection(True)
        hdr.setMaximumSectionSize(170)  # very long names are elided in the middle (tooltip: all)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.setWordWrap(False)
        self.table.setToolTip("receptive field: the input pixels one unit of the layer can see (from the "
                              "layers' kernels, strides and padding); 'whole input' after global pooling or "
                              "a linear layer")
        split.addWidget(self.table)
        self.chart = PyramidChart()
        self.chart.setObjectName("pyramid-chart")
        split.addWidget(self.chart)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        lay.addWidget(split, 1)
        self._signature: tuple | None = None
        self._names: list[str] = []
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.chart.layerClicked.connect(self._on_chart)

    def names(self) -> list[str]:
        return list(self._names)

    def set_layers(self, layers: Sequence[LayerInfo]) -> None:
        """Fill the table (only when the layers changed: a new frame keeps the table)."""
        sig = tuple((li.name, li.type, li.shape, li.params, li.rf_size, li.map_text, li.layout_how) for li in layers)
        if sig == self._signature:
            return
        self._signature = sig
        self._names = [li.name for li in layers]
        self.table.blockSignals(True)
        try:
            self.table.setRowCount(len(layers))
            for row, li in enumerate(layers):
                cells = (str(li.index), li.name, li.type, li.shape_text, _fmt_int(li.params), li.rf_text,
                         li.map_text + {"user": " (yours)", "ambiguous": " ⚠ ambiguous"}.get(li.layout_how, ""))
                for col, text in enumerate(cells):
                    item = QTableWidgetItem(text)
                    if col == 1:
                        item.setToolTip(text + ("\n(a tensor op inside the forward: every-op capture)"
                                                if li.kind == "op" else ""))
                    if li.kind == "op" and col in (1, 2):
                        f = item.font()
                        f.setItalic(True)
                        item.setFont(f)
                    if col == 6:
                        item.setToolTip(li.layout_text)
                    if col in (0, 4):
                        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    if col == 5 and li.rf_size is not None and li.rf_jump is not None:
                        item.setToolTip(f"{li.rf_size[0]}×{li.rf_size[1]} input pixels; neighbouring units are "
                                        f"{li.rf_jump[0]}×{li.rf_jump[1]} pixels apart")
                    self.table.setItem(row, col, item)
        finally:
            self.table.blockSignals(False)
        total = sum(li.params for li in layers)
        spatial = [li for li in layers if li.spatial]
        text = f"{len(layers)} layers · {_fmt_int(total)} parameters"
        if spatial:
            a, b = spatial[0], spatial[-1]
            ga, gb = a.grid_shape, b.grid_shape
            text += (f" · maps go from {ga[1]}×{ga[2]}×{ga[0]} to "
                     f"{gb[1]}×{gb[2]}×{gb[0]} (H×W×C)")
        ops = sum(1 for li in layers if li.kind == "op")
        if ops:
            text += f" · {ops} of them tensor ops (every op, in execution order)"
        self.summary.setText(text)
        self.chart.set_layers(layers)

    def select(self, name: str | None) -> None:
        """Show ``name`` as selected without emitting ``layerSelected``."""
        self.chart.set_selected(name)
        if name not in self._names:
            return
        row = self._names.index(name)
        self.table.blockSignals(True)
        try:
            self.table.selectRow(row)
            self.table.scrollToItem(self.table.item(row, 0), QAbstractItemView.ScrollHint.EnsureVisible)
        finally:
            self.table.blockSignals(False)

    def row_rect(self, name: str):
        """Viewport rectangle of a layer's row (tests click it)."""
        row = self._names.index(name)
        return self.table.visualItemRect(self.table.item(row, 1))

    def _on_selection(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self.layerSelected.emit(self._names[rows[0].row()])

    def _on_chart(self, name: str) -> None:
        self.layerSelected.emit(name)
