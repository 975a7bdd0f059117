"""Conv kernels as images (the first layer in colour when it reads RGB) and histograms of a
layer's weights and of the selected layer's activations."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSplitter, QVBoxLayout, QWidget

from cnnviz.core.inspect_results import WeightsData
from cnnviz.qt.colors import format_sig, mute

from .imaging import ImageView, compose_tiles, gray_levels_to_rgb, split_tiles

__all__ = ["HistogramWidget", "WeightsView"]


class HistogramWidget(QWidget):
    """Bars of ``counts`` over ``edges`` with the value range and a line at 0."""

    def __init__(self, title: str, colour: QColor, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = title
        self.colour = colour
        self.counts: np.ndarray | None = None
        self.edges: np.ndarray | None = None
        self.log = False
        self.setMinimumHeight(110)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(360, 150)

    def set_data(self, counts: np.ndarray | None, edges: np.ndarray | None, title: str | None = None) -> None:
        self.counts = None if counts is None else np.asarray(counts)
        self.edges = None if edges is None else np.asarray(edges, dtype=np.float64)
        if title is not None:
            self.title = title
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        try:
            pal = self.palette()
            text = pal.color(pal.ColorRole.WindowText)
            font = QFont(self.font())
            font.setPixelSize(11)
            p.setFont(font)
            p.setPen(text)
            p.drawText(QRectF(6, 2, self.width() - 12, 16), int(Qt.AlignmentFlag.AlignLeft), self.title)
            r = QRectF(8, 22, self.width() - 16, self.height() - 42)
            if self.counts is None or self.edges is None or self.counts.sum() == 0:
                p.setPen(pal.color(pal.ColorRole.PlaceholderText))
                p.drawText(r, int(Qt.AlignmentFlag.AlignCenter), "no data")
                return
            c = self.counts.astype(np.float64)
            top = c.max()
            n = len(c)
            bw = r.width() / n
            for i, v in enumerate(c):
                if v <= 0:
                    continue
                h = max(1.0, v / top * r.height())
                p.fillRect(QRectF(r.left() + i * bw, r.bottom() - h, max(1.0, bw - 0.5), h), self.colour)
            lo, hi = float(self.edges[0]), float(self.edges[-1])
            if lo < 0 < hi:
                x0 = r.left() + (0 - lo) / (hi - lo) * r.width()
                p.setPen(QPen(text, 1, Qt.PenStyle.DashLine))
                p.drawLine(int(x0), int(r.top()), int(x0), int(r.bottom()))
            p.setPen(text)
            p.drawLine(int(r.left()), int(r.bottom()), int(r.right()), int(r.bottom()))
            p.drawText(QRectF(r.left(), r.bottom() + 2, r.width() / 2, 16), int(Qt.AlignmentFlag.AlignLeft),
                       format_sig(lo, 3))
            p.drawText(QRectF(r.center().x(), r.bottom() + 2, r.width() / 2, 16), int(Qt.AlignmentFlag.AlignRight),
                       format_sig(hi, 3))
            p.drawText(QRectF(r.left(), r.bottom() + 2, r.width(), 16), int(Qt.AlignmentFlag.AlignCenter),
                       f"{int(c.sum()):,} values".replace(",", " "))
        finally:
            p.end()


class WeightsView(QWidget):
    """Pick a conv layer (``weightsLayerChanged``); shows its filters and histograms."""

    weightsLayerChanged = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Conv layer"))
        self.layer_box = QComboBox()
        self.layer_box.setObjectName("weights-layer")
        self.layer_box.setToolTip("The convolution layer whose learned kernels are shown: the first layer's "
                                  "look like edge and colour detectors, deeper ones are harder to read.")
        self.layer_box.setMinimumContentsLength(18)
        bar.addWidget(self.layer_box)
        self.info = QLabel("")
        self.info.setObjectName("weights-info")
        self.info.setWordWrap(True)
        bar.addWidget(self.info, 1)
        lay.addLayout(bar)
        split = QSplitter(Qt.Orientation.Horizontal)
        self.kernels = ImageView(min_size=200)
        self.kernels.setObjectName("kernels-view")
        self.kernels.set_placeholder("This model has no convolution layers")
        split.addWidget(self.kernels)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        self.weight_hist = HistogramWidget("weights", QColor(66, 133, 196))
        self.weight_hist.setObjectName("weights-hist")
        self.act_hist = HistogramWidget("activations", QColor(230, 140, 30))
        self.act_hist.setObjectName("activations-hist")
        rl.addWidget(self.weight_hist)
        rl.addWidget(self.act_hist)
        legend = QLabel("Kernels: blue = negative, white = 0, red = positive (each filter scaled to its own "
                        "largest |weight|). A first layer that reads RGB is shown in colour: grey is 0.")
        legend.setWordWrap(True)
        mute(legend)
        rl.addWidget(legend)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        lay.addWidget(split, 1)
        self.data: WeightsData | None = None
        self._layers: list[str] = []
        self.layer_box.currentIndexChanged.connect(self._on_box)

    def _on_box(self, _i: int) -> None:
        name = self.layer_box.currentData()
        if name:
            self.weightsLayerChanged.emit(name)

    def set_conv_layers(self, names: list[str], current: str | None) -> None:
        if names != self._layers:
            self._layers = list(names)
            self.layer_box.blockSignals(True)
            self.layer_box.clear()
            for n in names:
                self.layer_box.addItem(n, n)
            self.layer_box.blockSignals(False)
        if current in names:
            self.layer_box.blockSignals(True)
            self.layer_box.setCurrentIndex(names.index(current))
            self.layer_box.blockSignals(False)

    def set_weights(self, data: WeightsData | None) -> None:
        self.data = data
        if data is None:
            self.kernels.set_array(None)
            self.weight_hist.set_data(None, None)
            self.info.setText("")
            return
        # the core renders signed weights with grey 128 = 0: the diverging map puts white there
        img = gray_levels_to_rgb(data.image, True, "diverging") if data.image.ndim == 2 else data.image
        o = data.shape[0]
        tiles = split_tiles(img, data.rows, data.cols, data.tile_hw, data.pad, o)
        scale = max(1, 48 // max(data.tile_hw))
        # colour kernels are grey at 0, so their gaps are dark; diverging ones are white at 0
        self.kernels.set_array(compose_tiles(tiles, data.cols, scale=scale, gap=max(3, scale // 3),
                                             background=25 if data.color else 110))
        o, i, kh, kw = data.shape
        how = ("in colour (R, G, B input channels)" if data.color
               else ("one input channel" if i == 1 else f"mean over its {i} input channels"))
        self.info.setText(f"<b>{data.layer}</b>: {o} filters of {i}×{kh}×{kw}, each tile {how}"
                          + (" — the model's first layer" if data.first else ""))
        self.weight_hist.set_data(data.hist_counts, data.hist_edges, f"weights of {data.layer}")

    def set_activation_hist(self, layer: str | None, hist: tuple[np.ndarray, np.ndarray] | None) -> None:
        if hist is None:
            self.act_hist.set_data(None, None, "activations")
        else:
            self.act_hist.set_data(hist[0], hist[1], f"activations of {layer}")
