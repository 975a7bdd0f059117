"""Receptive fields: click a unit of the selected layer's map; see the input pixels it can see
in theory (a box from the layers' kernels, strides and padding) and the ones that actually
move it (the effective receptive field: |∂unit/∂input|)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from cnnviz.core.inspect_results import RFData
from cnnviz.qt.colors import mute

from .imaging import ImageView, blend_heatmap, colorize_maps

__all__ = ["RFView"]

_BOX = QColor(0, 200, 255)


class RFView(QWidget):
    """``unitClicked(y, x)`` when the user clicks a unit of the map."""

    unitClicked = Signal(int, int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        self.caption = QLabel("Click a unit in the map on the left.")
        self.caption.setObjectName("rf-caption")
        self.caption.setWordWrap(True)
        lay.addWidget(self.caption)
        grid = QGridLayout()
        self.map_title = QLabel("")
        self.input_title = QLabel("theoretical receptive field on the input")
        self.erf_title = QLabel("effective receptive field |∂unit/∂input|")
        for k, t in enumerate((self.map_title, self.input_title, self.erf_title)):
            mute(t)
            grid.addWidget(t, 0, k)
        self.map_view = ImageView(min_size=160)
        self.map_view.setObjectName("rf-map")
        self.map_view.set_placeholder("select a layer with a spatial map")
        self.input_view = ImageView(min_size=160)
        self.input_view.setObjectName("rf-input")
        self.erf_view = ImageView(min_size=160)
        self.erf_view.setObjectName("rf-erf")
        self.erf_view.set_placeholder("click a unit")
        for k, v in enumerate((self.map_view, self.input_view, self.erf_view)):
            grid.addWidget(v, 1, k)
            grid.setColumnStretch(k, 1)
        grid.setRowStretch(1, 1)
        lay.addLayout(grid, 1)
        note = QLabel("The theoretical field is an upper bound; the effective one is usually a smaller, "
                      "roughly Gaussian blob in its centre (Luo et al., 2016).")
        note.setWordWrap(True)
        mute(note)
        lay.addWidget(note)
        self.rf: RFData | None = None
        self.map_view.pixelClicked.connect(self.unitClicked)

    def set_map(self, layer: str | None, channel: int, tile: np.ndarray | None, spatial: bool,
                unit: tuple[int, int] | None) -> None:
        """The selected layer's current channel (the coloured tile) to click on."""
        if not spatial:
            self.map_view.set_array(None)
            self.map_title.setText(f"{layer}: no spatial map" if layer else "")
            self.map_view.set_placeholder(f"{layer} has no spatial map: choose a convolution or pooling layer")
            return
        self.map_title.setText(f"{layer}, channel {channel}: " +
                               (f"unit ({unit[0]}, {unit[1]}); click another" if unit is not None else "click a unit"))
        self.map_view.set_array(tile)
        self.map_view.set_marker(unit)

    def set_rf(self, rf: RFData | None, input_image: np.ndarray | None, error: str | None = None) -> None:
        self.rf = rf
        self.input_view.set_array(input_image)
        if error:
            self.caption.setText(f"⚠ {error}")
        if rf is None:
            self.input_view.set_boxes([])
            self.erf_view.set_array(None)
            if not error:
                self.caption.setText("Click a unit in the map on the left to see what it sees.")
            return
        boxes = []
        if rf.box is not None:
            y0, x0, y1, x1 = rf.box
            boxes = [((y0, x0, y1, x1), _BOX, "")]
        self.input_view.set_boxes(boxes)
        if rf.erf is not None and input_image is not None and rf.erf.shape == input_image.shape[:2]:
            erf_rgb = blend_heatmap((input_image * 0.35).astype(np.uint8), rf.erf, alpha=1.0)
        elif rf.erf is not None:
            erf_rgb = colorize_maps(rf.erf[None], "layer", "magma")[0][0]
        else:
            erf_rgb = None
        self.erf_view.set_array(erf_rgb)
        self.erf_view.set_boxes(boxes)
        y, x = rf.unit
        if rf.size is not None:
            jump = f"; neighbouring units are {rf.jump[0]} px apart" if rf.jump else ""
            y0, x0, y1, x1 = rf.box
            geom = (f"theoretical field {rf.size[0]}×{rf.size[1]} px{jump}; inside the image: rows {y0}–{y1 - 1}, "
                    f"columns {x0}–{x1 - 1}")
        else:
            geom = "the theoretical field is not defined by local geometry here (or the model is TorchScript)"
        if not error:
            self.caption.setText(f"Unit (y={y}, x={x}) of <b>{rf.layer}</b> channel {rf.channel}: {geom}.")

    def erf(self) -> np.ndarray | None:
        return None if self.rf is None else self.rf.erf
