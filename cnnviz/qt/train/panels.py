"""The Train window's panels: the settings form and the live views.

Every panel paints what it is given (arrays from :mod:`cnnviz.core.train`); none computes or
touches the training thread.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

MODELS = ("simplecnn", "lenet5", "tinyvgg", "demo", "resnet18", "mobilenet_v3_small")


def _image_item(widget: pg.GraphicsLayoutWidget) -> pg.ImageItem:
    vb = widget.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
    vb.setMenuEnabled(False)
    item = pg.ImageItem(axisOrder="row-major")
    vb.addItem(item)
    return item


def _pixmap(rgb: np.ndarray, scale: int = 1) -> QPixmap:
    a = np.ascontiguousarray(rgb if rgb.ndim == 3 else np.repeat(rgb[..., None], 3, axis=2))
    if scale > 1:
        a = np.ascontiguousarray(a.repeat(scale, 0).repeat(scale, 1))
    h, w = a.shape[:2]
    return QPixmap.fromImage(QImage(a.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy())


def _u8(px: np.ndarray) -> np.ndarray:
    return (np.clip(px, 0, 1) * 255 + 0.5).astype(np.uint8)


class SettingsForm(QWidget):
    """Model, data and optimiser settings; :meth:`request` turns them into a ``TrainRequest``."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        # -- model
        box = QGroupBox("Model")
        f = QFormLayout(box)
        self.model = QComboBox()
        self.model.setObjectName("train-model")
        self.model.setEditable(True)
        self.model.addItems(MODELS)
        self.model.setToolTip("simplecnn, lenet5, tinyvgg, demo, file.py:Class or any torchvision classifier")
        row = QHBoxLayout()
        row.addWidget(self.model, 1)
        self.py_button = QPushButton("Python…")
        self.py_button.setToolTip("Your own nn.Module class in a .py file (it runs: you are asked to trust it)")
        self.py_button.clicked.connect(self._choose_python)
        row.addWidget(self.py_button)
        f.addRow("Architecture", row)
        self.freeze = QComboBox()
        self.freeze.addItems(["none", "partial", "frozen"])
        self.freeze.setToolTip("torchvision models: train everything, the last half of the backbone, or only the "
                               "new head")
        f.addRow("Freeze backbone", self.freeze)
        self.pretrained = QLineEdit()
        self.pretrained.setPlaceholderText("random weights (or a .pth / .safetensors file)")
        f.addRow("Start from", self.pretrained)
        lay.addWidget(box)
        # -- data
        box = QGroupBox("Data")
        f = QFormLayout(box)
        self.data = QLineEdit("digits")
        self.data.setObjectName("train-data")
        self.data.setToolTip("digits (bundled) or a folder with one sub-folder of images per class")
        row = QHBoxLayout()
        row.addWidget(self.data, 1)
        b = QPushButton("Folder…")
        b.clicked.connect(self._choose_folder)
        row.addWidget(b)
        f.addRow("Images", row)
        self.val_fraction = QDoubleSpinBox()
        self.val_fraction.setRange(0.05, 0.9)
        self.val_fraction.setSingleStep(0.05)
        self.val_fraction.setValue(0.25)
        f.addRow("Validation share", self.val_fraction)
        self.split_seed = QSpinBox()
        self.split_seed.setRange(0, 2**31 - 1)
        self.split_seed.setToolTip("The same seed gives the same train/validation split")
        f.addRow("Split seed", self.split_seed)
        self.image_size = QSpinBox()
        self.image_size.setRange(0, 512)
        self.image_size.setSpecialValueText("auto")
        f.addRow("Image size", self.image_size)
        self.augment = QCheckBox("random shifts (and flips for folders)")
        f.addRow("Augment", self.augment)
        lay.addWidget(box)
        # -- settings
        box = QGroupBox("Training")
        f = QFormLayout(box)
        self.optimizer = QComboBox()
        self.optimizer.addItems(["adam", "adamw", "sgd"])
        self.optimizer.setToolTip("sgd uses momentum 0.9")
        f.addRow("Optimizer", self.optimizer)
        self.lr = QDoubleSpinBox()
        self.lr.setObjectName("train-lr")
        self.lr.setDecimals(6)
        self.lr.setRange(1e-6, 10.0)
        self.lr.setSingleStep(0.0005)
        self.lr.setValue(0.001)
        f.addRow("Learning rate", self.lr)
        self.batch = QSpinBox()
        self.batch.setRange(1, 4096)
        self.batch.setValue(32)
        f.addRow("Batch size", self.batch)
        self.epochs = QSpinBox()
        self.epochs.setObjectName("train-epochs")
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(10)
        f.addRow("Epochs", self.epochs)
        self.weight_decay = QDoubleSpinBox()
        self.weight_decay.setDecimals(6)
        self.weight_decay.setRange(0, 1)
        f.addRow("Weight decay", self.weight_decay)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        f.addRow("Seed", self.seed)
        self.device = QComboBox()
        self.device.addItems(["auto"])
        f.addRow("Device", self.device)
        self.out_dir = QLineEdit()
        self.out_dir.setObjectName("train-out")
        f.addRow("Run folder", self.out_dir)
        lay.addWidget(box)
        lay.addStretch(1)

    def set_devices(self, devices: list[str]) -> None:
        cur = self.device.currentText()
        self.device.blockSignals(True)
        self.device.clear()
        self.device.addItems(["auto", *[d for d in devices if d != "auto"]])
        self.device.setCurrentText(cur if cur in devices else "auto")
        self.device.blockSignals(False)

    def _choose_python(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Python file with an nn.Module class", "", "Python (*.py)")
        if path:
            from cnnviz.core.models.detect import python_file_classes

            classes = python_file_classes(Path(path)) or ["Net"]
            self.model.setEditText(f"{path}:{classes[0]}")

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder with one sub-folder per class")
        if path:
            self.data.setText(path)

    def request(self, *, trust: bool = False):
        from cnnviz.core.train import DataSpec, ModelSpec, TrainRequest, TrainSettings

        return TrainRequest(
            model=ModelSpec(name=self.model.currentText().strip(), pretrained=self.pretrained.text().strip() or None,
                            freeze=self.freeze.currentText(), trust=trust),
            data=DataSpec(source=self.data.text().strip() or "digits", val_fraction=self.val_fraction.value(),
                          split_seed=self.split_seed.value(), image_size=self.image_size.value() or None,
                          augment=self.augment.isChecked()),
            settings=TrainSettings(optimizer=self.optimizer.currentText(), lr=self.lr.value(),
                                   batch_size=self.batch.value(), epochs=self.epochs.value(),
                                   weight_decay=self.weight_decay.value(), seed=self.seed.value(),
                                   device=self.device.currentText()),
            out_dir=self.out_dir.text().strip() or None)


class CurvesPanel(QWidget):
    """Loss and accuracy, train (every snapshot) and validation (every epoch)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.loss_plot = pg.PlotWidget(title="loss")
        self.acc_plot = pg.PlotWidget(title="accuracy")
        for p, corner in ((self.loss_plot, (-5, 5)), (self.acc_plot, (-5, -5))):
            p.addLegend(offset=corner)
            p.setLabel("bottom", "epoch")
            p.showGrid(x=True, y=True, alpha=0.2)
            lay.addWidget(p)
        self.acc_plot.setYRange(0, 1)
        self.train_loss = self.loss_plot.plot([], [], pen=pg.mkPen("#1f77b4", width=1.5), name="train")
        self.val_loss = self.loss_plot.plot([], [], pen=pg.mkPen("#d62728", width=2), symbol="o", symbolSize=6,
                                            symbolBrush="#d62728", name="validation")
        self.train_acc = self.acc_plot.plot([], [], pen=pg.mkPen("#1f77b4", width=1.5), name="train")
        self.val_acc = self.acc_plot.plot([], [], pen=pg.mkPen("#d62728", width=2), symbol="o", symbolSize=6,
                                          symbolBrush="#d62728", name="validation")

    def set_curves(self, curve: list[tuple[float, float, float]], epochs: list[dict]) -> None:
        if curve:
            a = np.asarray(curve, np.float64)
            self.train_loss.setData(a[:, 0], a[:, 1])
            self.train_acc.setData(a[:, 0], a[:, 2])
        else:
            self.train_loss.setData([], [])
            self.train_acc.setData([], [])
        self.val_loss.setData([m["epoch"] for m in epochs], [m["val_loss"] for m in epochs])
        self.val_acc.setData([m["epoch"] for m in epochs], [m["val_accuracy"] for m in epochs])

    def point_counts(self) -> tuple[int, int]:
        x, _ = self.train_loss.getData()
        xv, _ = self.val_loss.getData()
        return (0 if x is None else len(x)), (0 if xv is None else len(xv))


class KernelPanel(QWidget):
    """The first conv layer's kernels as a grid, with a scrubber over every snapshot so far.
    At the right end the grid follows the training live."""

    frameShown = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel("First-layer kernels")
        lay.addWidget(self.title)
        self.view = pg.GraphicsLayoutWidget()
        self.view.setObjectName("kernel-grid")
        self.image = _image_item(self.view)
        lay.addWidget(self.view, 1)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("kernel-scrubber")
        self.slider.setRange(0, 0)
        self.slider.setToolTip("Replay the kernels from the first step; at the right end they follow the training")
        self.slider.valueChanged.connect(self._on_slider)
        lay.addWidget(self.slider)
        self.caption = QLabel("")
        lay.addWidget(self.caption)
        self._frames: list[np.ndarray] = []
        self._steps: list[int] = []
        self._steps_per_epoch = 1
        self.shown_index = -1
        self.levels: float | None = None

    def clear(self) -> None:
        self._frames, self._steps, self.levels, self.shown_index = [], [], None, -1
        self.slider.blockSignals(True)
        self.slider.setRange(0, 0)
        self.slider.blockSignals(False)
        self.image.clear()
        self.caption.setText("")

    def set_frames(self, frames: list[np.ndarray], steps: list[int], steps_per_epoch: int = 1) -> None:
        follow = self.slider.value() >= self.slider.maximum()
        self._frames, self._steps, self._steps_per_epoch = frames, steps, max(1, steps_per_epoch)
        if not frames:
            return
        if self.levels is None:  # the initial weights' range: growth shows as brighter tiles
            self.levels = float(np.abs(frames[0]).max() or 1.0)
        self.slider.blockSignals(True)
        self.slider.setRange(0, len(frames) - 1)
        if follow:
            self.slider.setValue(len(frames) - 1)
        self.slider.blockSignals(False)
        self._show(self.slider.value())

    def current_frame(self) -> np.ndarray | None:
        return self._frames[self.shown_index] if 0 <= self.shown_index < len(self._frames) else None

    def _on_slider(self, i: int) -> None:
        self._show(i)

    def _show(self, i: int) -> None:
        from cnnviz.core.train import movie_frame_image

        if not 0 <= i < len(self._frames):
            return
        frame = self._frames[i]
        lv = max(self.levels or 0.0, float(np.abs(frame).max() or 1.0) * 0.5)
        self.image.setImage(movie_frame_image(frame, scale=8, levels=lv), autoLevels=False, levels=(0, 255))
        self.shown_index = i
        step = self._steps[i] if i < len(self._steps) else 0
        o, c, kh, kw = frame.shape
        self.caption.setText(f"frame {i + 1}/{len(self._frames)} · step {step} · epoch {step / self._steps_per_epoch:.2f}"
                             f" · {o} kernels {kh}x{kw}" + (f" (mean of {c} input channels)" if c not in (1, 3) else ""))
        self.frameShown.emit(i)


class FeatureMapPanel(QWidget):
    """One validation image and its first-layer feature maps through the current weights."""

    probeChanged = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(QLabel("Validation image #"))
        self.index = QSpinBox()
        self.index.setObjectName("probe-index")
        self.index.setRange(0, 0)
        self.index.valueChanged.connect(self.probeChanged.emit)
        row.addWidget(self.index)
        self.label = QLabel("")
        row.addWidget(self.label, 1)
        lay.addLayout(row)
        self.view = pg.GraphicsLayoutWidget()
        self.view.setObjectName("feature-maps")
        self.input_item = _image_item(self.view)
        self.maps_item = _image_item(self.view)
        self.view.ci.layout.setColumnStretchFactor(1, 4)
        lay.addWidget(self.view, 1)
        self.shown_step = -1

    def set_count(self, n: int) -> None:
        self.index.setRange(0, max(0, n - 1))

    def show_maps(self, step: int, pixels: np.ndarray | None, maps: np.ndarray | None, caption: str) -> None:
        from cnnviz.core.train import tile_maps

        if pixels is not None:
            self.input_item.setImage(_u8(pixels), autoLevels=False, levels=(0, 255))
        if maps is not None:
            self.maps_item.setImage(tile_maps(maps), autoLevels=False, levels=(0, 255))
        self.label.setText(caption)
        self.shown_step = step


class EpochPanel(QWidget):
    """After each epoch: the confusion matrix and the most confidently wrong validation images."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        left = QVBoxLayout()
        self.cm_title = QLabel("Confusion matrix (after each epoch)")
        left.addWidget(self.cm_title)
        self.cm_view = pg.GraphicsLayoutWidget()
        self.cm_view.setObjectName("confusion")
        self.cm_item = _image_item(self.cm_view)
        left.addWidget(self.cm_view, 1)
        lay.addLayout(left, 1)
        right = QVBoxLayout()
        right.addWidget(QLabel("Most confidently wrong"))
        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        self.grid.setSpacing(4)
        right.addWidget(self.grid_host, 1)
        lay.addLayout(right, 1)
        self.wrong_labels: list[QLabel] = []
        self.shown_epoch = 0

    def show_epoch(self, epoch: int, confusion: np.ndarray, labels: list[str], wrong, images) -> None:
        from cnnviz.core.train_eval import confusion_png

        self.cm_item.setImage(confusion_png(confusion, labels, cell=24), autoLevels=False, levels=(0, 255))
        self.cm_title.setText(f"Confusion matrix after epoch {epoch} (rows: true, columns: predicted)")
        while self.grid.count():
            w = self.grid.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        self.wrong_labels = []
        cols = 4
        for n, ((idx, true, pred, conf), px) in enumerate(zip(wrong, images)):
            cell = QLabel()
            side = max(px.shape[:2])
            cell.setPixmap(_pixmap(_u8(px), max(1, int(math.ceil(64 / side)))))
            cell.setToolTip(f"validation image {idx}: true {labels[true]}, predicted {labels[pred]} ({conf:.0%})")
            text = QLabel(f"{labels[true]} → {labels[pred]} ({conf:.0%})")
            text.setAlignment(Qt.AlignmentFlag.AlignHCenter)
            box = QWidget()
            v = QVBoxLayout(box)
            v.setContentsMargins(0, 0, 0, 0)
            v.addWidget(cell, 0, Qt.AlignmentFlag.AlignHCenter)
            v.addWidget(text)
            self.grid.addWidget(box, n // cols, n % cols)
            self.wrong_labels.append(text)
        if not wrong:
            lab = QLabel("none: every validation image is right")
            self.grid.addWidget(lab, 0, 0)
        self.shown_epoch = epoch
