"""Grad-CAM: where in the input the chosen class's evidence lies, at a chosen layer.

The default layer is the last conv block's spatial output — the activated or pooled map after
the last convolution (coarse but most class-specific; earlier layers give finer, less specific
maps) — and the view always names the layer used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QGridLayout, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from cnnviz.core.inspect_results import CamData
from cnnviz.core.display import lut
from cnnviz.qt.colors import mute

from .imaging import ImageView, blend_heatmap

__all__ = ["CamView"]


class CamView(QWidget):
    """Signals ``classChanged(object)`` (an int, or None for the predicted class) and
    ``layerChanged(object)`` (a layer name, or None for the default)."""

    classChanged = Signal(object)
    layerChanged = Signal(object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Class"))
        self.class_box = QComboBox()
        self.class_box.setObjectName("cam-class")
        self.class_box.setToolTip("Which class to explain: Grad-CAM shows where the evidence for this class is, "
                                  "so a wrong prediction shows what misled the model.")
        self.class_box.setMinimumContentsLength(16)
        bar.addWidget(self.class_box)
        bar.addWidget(QLabel("Layer"))
        self.layer_box = QComboBox()
        self.layer_box.setObjectName("cam-layer")
        self.layer_box.setToolTip("The layer whose maps Grad-CAM weighs by their gradients: the last conv block "
                                  "sees whole objects, earlier layers give finer but less meaningful heat maps.")
        self.layer_box.setMinimumContentsLength(22)
        bar.addWidget(self.layer_box)
        bar.addWidget(QLabel("Opacity"))
        self.alpha = QSlider(Qt.Orientation.Horizontal)
        self.alpha.setObjectName("cam-alpha")
        self.alpha.setToolTip("How strongly the heat map covers the input picture.")
        self.alpha.setRange(0, 100)
        self.alpha.setValue(60)
        self.alpha.setFixedWidth(100)
        bar.addWidget(self.alpha)
        bar.addStretch(1)
        lay.addLayout(bar)
        self.caption = QLabel("")
        self.caption.setObjectName("cam-caption")
        self.caption.setWordWrap(True)
        lay.addWidget(self.caption)
        views = QGridLayout()
        self.input_view = ImageView(min_size=160)
        self.input_view.setObjectName("cam-input")
        self.heat_view = ImageView(min_size=160)
        self.heat_view.setObjectName("cam-heatmap")
        self.overlay_view = ImageView(min_size=160)
        self.overlay_view.setObjectName("cam-overlay")
        self.overlay_view.set_placeholder("Grad-CAM appears here")
        for k, (title, v) in enumerate((("model input", self.input_view), ("heatmap (black 0 → yellow 1)", self.heat_view),
                                        ("overlay", self.overlay_view))):
            t = QLabel(title)
            mute(t)
            views.addWidget(t, 0, k)
            views.addWidget(v, 1, k)
            views.setColumnStretch(k, 1)
        views.setRowStretch(1, 1)
        lay.addLayout(views, 1)
        note = QLabel("Grad-CAM (Selvaraju et al., 2017): the layer's channels weighted by how much the class "
                      "score rises with each, then ReLU — bright means evidence for the class. Bilinear-upsampled "
                      "to the model's input.")
        note.setWordWrap(True)
        mute(note)
        lay.addWidget(note)
        self.cam: CamData | None = None
        self._input: np.ndarray | None = None
        self._classes: tuple = ()
        self._layers: tuple = ()
        self.class_box.currentIndexChanged.connect(lambda _i: self.classChanged.emit(self.class_box.currentData()))
        self.layer_box.currentIndexChanged.connect(lambda _i: self.layerChanged.emit(self.layer_box.currentData()))
        self.alpha.valueChanged.connect(lambda _v: self._redraw())

    def set_choices(self, labels: Sequence[str] | None, n_classes: int, spatial_layers: Sequence[str],
                    default_layer: str | None, chosen_class: int | None, chosen_layer: str | None) -> None:
        names = tuple(labels[i] if labels is not None and i < len(labels) else f"class {i}" for i in range(n_classes))
        if names != self._classes:
            self._classes = names
            self.class_box.blockSignals(True)
            self.class_box.clear()
            self.class_box.addItem("predicted class", None)
            for i, n in enumerate(names):
                self.class_box.addItem(f"{i}: {n}" if n != str(i) else n, i)
            self.class_box.blockSignals(False)
        layers = (default_layer, *spatial_layers)
        if layers != self._layers:
            self._layers = layers
            self.layer_box.blockSignals(True)
            self.layer_box.clear()
            self.layer_box.addItem(f"default: {default_layer}" if default_layer else "default", None)
            for n in spatial_layers:
                self.layer_box.addItem(n, n)
            self.layer_box.blockSignals(False)
        for box, value in ((self.class_box, chosen_class), (self.layer_box, chosen_layer)):
            i = box.findData(value)
            if i >= 0 and i != box.currentIndex():
                box.blockSignals(True)
                box.setCurrentIndex(i)
                box.blockSignals(False)

    def set_cam(self, cam: CamData | None, input_image: np.ndarray | None, error: str | None = None) -> None:
        self.cam = cam
        self._input = input_image
        self.input_view.set_array(input_image)
        if error:
            self.caption.setText(f"⚠ Grad-CAM failed: {error}")
        elif cam is not None:
            why = " (the default: the last conv block's output)" if cam.layer == cam.default_layer else ""
            which = "the predicted class" if cam.chosen_class is None else "the chosen class"
            self.caption.setText(f"Grad-CAM for <b>{cam.class_name}</b> ({which}) at layer <b>{cam.layer}</b>{why}")
        self._redraw()

    def overlay(self) -> np.ndarray | None:
        """The image shown: the input with the heatmap over it, (H, W, 3) uint8."""
        return self.overlay_view.array()

    def heatmap_image(self) -> np.ndarray | None:
        return self.heat_view.array()

    def _redraw(self) -> None:
        if self.cam is None or self._input is None or self.cam.heatmap.shape != self._input.shape[:2]:
            self.overlay_view.set_array(None)
            self.heat_view.set_array(None)
            return
        self.heat_view.set_array(lut("magma")[np.round(np.clip(self.cam.heatmap, 0, 1) * 255).astype(np.uint8)])
        self.overlay_view.set_array(blend_heatmap(self._input, self.cam.heatmap, self.alpha.value() / 100.0))
