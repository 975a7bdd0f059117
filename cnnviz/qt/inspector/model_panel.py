"""The "Model" panel: what is loaded, its preprocessing (shown and editable) and its labels."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout,
                               QWidget)

from cnnviz.core.errors import CnnvizError
from cnnviz.core.inspect_engine import InspectorState
from cnnviz.qt.colors import ERROR_RED, mute

from .loading import error_text

__all__ = ["ModelPanel", "PreprocessingEditor", "parse_size", "parse_floats"]


def parse_size(text: str, what: str) -> int | list[int] | None:
    """``""`` → None, ``"256"`` → 256 (shorter side), ``"28,28"`` / ``"28x28"`` → [28, 28]."""
    t = text.strip().lower()
    if not t or t in ("none", "-", "—"):
        return None
    parts = [p for p in re.split(r"[,x×\s]+", t) if p]
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"{what}: write one size (256) or height,width (224,224), not {text!r}") from None
    if len(nums) == 1:
        return nums[0]
    if len(nums) == 2:
        return nums
    raise ValueError(f"{what}: give one or two numbers, not {len(nums)}")


def parse_floats(text: str, what: str) -> list[float]:
    parts = [p for p in re.split(r"[,\s;]+", text.strip()) if p]
    if not parts:
        raise ValueError(f"{what}: give one value, or one per channel")
    try:
        return [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a list of numbers") from None


def _size_text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        return ",".join(str(int(x)) for x in v)
    return str(int(v))


class PreprocessingEditor(QWidget):
    """Edit resize / crop / mean / std / colour / interpolation.

    ``applied(dict)`` carries a :meth:`Preprocessing.to_dict`-shaped dict (the window checks
    it with the core before using it); ``reset()`` asks for the model's own preprocessing.
    """

    applied = Signal(object)
    reset = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.resize_edit = QLineEdit()
        self.resize_edit.setObjectName("pre-resize")
        self.resize_edit.setToolTip("Resize before the model sees the image: one number scales the shorter side, "
                                    "H,W (height, width) sets both; a model only sees objects at the scale it "
                                    "was trained on.")
        self.resize_edit.setPlaceholderText("none · 256 (shorter side) · 28,28 (H,W)")
        self.crop_edit = QLineEdit()
        self.crop_edit.setObjectName("pre-crop")
        self.crop_edit.setToolTip("Cut the centre out after resizing (ImageNet models take 224×224), so the "
                                  "input has the size the model was trained on.")
        self.crop_edit.setPlaceholderText("none · 224 · 224,224 (H,W)")
        self.mean_edit = QLineEdit()
        self.mean_edit.setObjectName("pre-mean")
        self.mean_edit.setToolTip("Per-channel mean subtracted from every pixel, as in training; a wrong mean "
                                  "shifts every activation and the predictions go wrong.")
        self.std_edit = QLineEdit()
        self.std_edit.setObjectName("pre-std")
        self.std_edit.setToolTip("Per-channel standard deviation each pixel is divided by after the mean, as in "
                                 "training, so the inputs have the spread the weights expect.")
        self.color_box = QComboBox()
        self.color_box.setObjectName("pre-color")
        self.color_box.setToolTip("The channel order the model was trained with: RGB, BGR (OpenCV/Caffe models) "
                                  "or one gray channel.")
        self.color_box.addItems(["rgb", "bgr", "gray"])
        self.interp_box = QComboBox()
        self.interp_box.setObjectName("pre-interp")
        self.interp_box.setToolTip("How pixels are blended when the image is resized; match the training "
                                   "pipeline (bilinear for torchvision).")
        self.interp_box.addItems(["bilinear", "bicubic", "nearest"])
        form.addRow("Resize", self.resize_edit)
        form.addRow("Center crop", self.crop_edit)
        form.addRow("Mean", self.mean_edit)
        form.addRow("Std", self.std_edit)
        form.addRow("Colour", self.color_box)
        form.addRow("Interpolation", self.interp_box)
        note = QLabel("Pixels are in [0, 1] before (x − mean) / std.")
        mute(note)
        form.addRow(note)
        row = QHBoxLayout()
        self.apply_button = QPushButton("Apply")
        self.apply_button.setObjectName("pre-apply")
        self.apply_button.setToolTip("Use these preprocessing settings and run the model again.")
        self.reset_button = QPushButton("Model's own")
        self.reset_button.setObjectName("pre-reset")
        self.reset_button.setToolTip("Go back to the preprocessing the model was trained with.")
        row.addWidget(self.apply_button)
        row.addWidget(self.reset_button)
        row.addStretch(1)
        form.addRow(row)
        self.status = QLabel("")  # why the last Apply did not take (next to the form, not only in the status bar)
        self.status.setObjectName("pre-status")
        self.status.setWordWrap(True)
        self.status.setStyleSheet(f"color: {ERROR_RED};")
        self.status.hide()
        form.addRow(self.status)
        self.apply_button.clicked.connect(self._apply)
        self.reset_button.clicked.connect(self.reset)
        for e in (self.resize_edit, self.crop_edit, self.mean_edit, self.std_edit):
            e.returnPressed.connect(self._apply)

    def set_status(self, text: str) -> None:
        """Show ``text`` under the form in red (empty: hide it)."""
        self.status.setText(text)
        self.status.setToolTip(text)
        self.status.setVisible(bool(text))

    def set_values(self, d: dict[str, Any]) -> None:
        self.resize_edit.setText(_size_text(d.get("resize")))
        self.crop_edit.setText(_size_text(d.get("center_crop")))
        self.mean_edit.setText(", ".join(f"{v:g}" for v in d.get("mean", [0.0])))
        self.std_edit.setText(", ".join(f"{v:g}" for v in d.get("std", [1.0])))
        self.color_box.setCurrentText(str(d.get("color", "rgb")))
        self.interp_box.setCurrentText(str(d.get("interpolation", "bilinear")))

    def values(self) -> dict[str, Any]:
        """The form as a dict; ValueError with a message for what does not parse."""
        return {
            "resize": parse_size(self.resize_edit.text(), "resize"),
            "center_crop": parse_size(self.crop_edit.text(), "center crop"),
            "mean": parse_floats(self.mean_edit.text(), "mean"),
            "std": parse_floats(self.std_edit.text(), "std"),
            "color": self.color_box.currentText(),
            "interpolation": self.interp_box.currentText(),
        }

    def _apply(self) -> None:
        try:
            d = self.values()
        except ValueError as exc:
            self.applied.emit(exc)
            return
        self.applied.emit(d)


class ModelPanel(QWidget):
    """Model facts, the preprocessing editor and the labels file button."""

    labelsRequested = Signal()
    #: The state's preprocessing or labels changed: compute again.
    changed = Signal()
    #: A message for the status bar: text, whether it is an error.
    message = Signal(str, bool)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.info = QLabel("No model yet")
        self.info.setObjectName("model-info")
        self.info.setWordWrap(True)
        lay.addWidget(self.info)
        head = QLabel("<b>Preprocessing</b>")
        lay.addWidget(head)
        self.pre = PreprocessingEditor()
        self.pre.setEnabled(False)
        lay.addWidget(self.pre)
        row = QHBoxLayout()
        self.labels_button = QPushButton("Labels file…")
        self.labels_button.setObjectName("labels-button")
        self.labels_button.setToolTip("Load class names (one per line, in output order) so predictions read "
                                      "'cat' instead of 'class 281'.")
        self.labels_button.setEnabled(False)
        self.labels_button.clicked.connect(self.labelsRequested)
        row.addWidget(self.labels_button)
        self.labels_info = QLabel("")
        self.labels_info.setObjectName("labels-info")
        self.labels_info.setWordWrap(True)
        row.addWidget(self.labels_info, 1)
        self._labels_text = ""  # what labels_info says without the class-count warning
        self._labels_count: int | None = None  # names in a labels file the user gave, checked against the model
        lay.addLayout(row)
        lay.addStretch(1)
        self._state: InspectorState | None = None

    def bind(self, state: InspectorState) -> None:
        """Write the preprocessing and labels the user chooses into ``state``."""
        self._state = state
        self.pre.applied.connect(self._on_pre_applied)
        self.pre.reset.connect(self._on_pre_reset)

    def set_model(self, info: dict[str, Any], pre: dict[str, Any], labels: list[str] | None) -> None:
        kinds = {"demo": "bundled demo", "torchvision": "torchvision", "python": "Python class",
                 "torchscript": "TorchScript", "export": "torch.export program", "pickle": "pickled module"}
        rows = [f"<b>{html.escape(str(info.get('name')))}</b> — {kinds.get(info.get('kind'), info.get('kind'))}"]
        if info.get("weights"):
            rows.append(f"weights: {html.escape(str(info['weights']))}")
        rows.append(f"{info.get('params', 0):,} parameters".replace(",", " "))
        if info.get("input_channels"):
            size = info.get("input_size")
            rows.append(f"input: {info['input_channels']} channel(s)" + (f", {size[0]}×{size[1]}" if size else ""))
        rows.append(f"on {info.get('device')} in {info.get('dtype')}")
        self.info.setText("<br>".join(rows))
        self.info.setToolTip(str(info.get("source") or ""))
        self.pre.set_values(pre)
        self.pre.setEnabled(True)
        self.labels_button.setEnabled(True)
        self.set_labels(labels)

    def set_labels(self, labels: list[str] | None, source: str | None = None) -> None:
        self._labels_text = ""
        self._labels_count = len(labels) if labels and source else None  # only a file the user gave is checked
        if labels:
            shown = ", ".join(labels[:4]) + (" …" if len(labels) > 4 else "")
            self._labels_text = (f"{len(labels)} classes{f' from {html.escape(source)}' if source else ''}: "
                                 f"{html.escape(shown)}")
            self.labels_info.setText(self._labels_text)
        else:
            self.labels_info.setText("no class names (shown as class 0, class 1, …)")

    def check_label_count(self, n_classes: int | None) -> None:
        """Warn, in red, when a labels file names more or fewer classes than the model outputs
        (names are matched by index, so they would be wrong)."""
        count = self._labels_count
        if count is None or not n_classes:
            return
        text = self._labels_text
        if count != n_classes:
            text += (f"<br><span style='color:{ERROR_RED}'>⚠ the model outputs {n_classes} classes, the file names "
                     f"{count}: names are matched by index</span>")
        if self.labels_info.text() != text:
            self.labels_info.setText(text)

    # -- the user's choices, written through the state ------------------------------------
    def set_preprocessing(self, d: dict[str, Any] | None) -> None:
        """Override the model's preprocessing (a ``Preprocessing.to_dict()`` dict; None resets)."""
        if d is None:
            self._on_pre_reset()
        else:
            self.pre.set_values(d)
            self._on_pre_applied(dict(d))

    def load_labels(self, path: str | Path) -> bool:
        """Class names for the current model from a file (one per line, or JSON)."""
        st = self._state
        if st is None or st.model is None:
            self.message.emit("Open a model first, then its labels", True)
            return False
        from cnnviz.core.models import load_labels  # torch is loaded: a model is

        try:
            labels = load_labels(path)
        except CnnvizError as exc:
            self.message.emit(f"Could not read the labels: {error_text(exc)}", True)
            return False
        st.labels = tuple(labels)
        self.set_labels(list(labels), Path(path).name)
        self.message.emit(f"{len(labels)} class names from {Path(path).name}", False)
        self.changed.emit()
        return True

    def _on_pre_applied(self, d: Any) -> None:
        if isinstance(d, Exception):
            self.pre.set_status(f"Not applied: {d}")
            self.message.emit(f"Preprocessing not applied: {d}", True)
            return
        from cnnviz.core.models import Preprocessing  # torch is loaded: a model is

        try:
            pre = Preprocessing.from_dict(d)
        except CnnvizError as exc:
            self.pre.set_status(f"Not applied: {exc.cause}; {exc.fix}" if exc.fix else f"Not applied: {exc.cause}")
            self.message.emit(f"Preprocessing not applied: {error_text(exc)}", True)
            return
        self.pre.set_status("")
        if self._state is not None:
            self._state.preprocessing = pre.to_dict()
        self.message.emit(f"Preprocessing: {pre.describe()}", False)
        self.changed.emit()

    def _on_pre_reset(self) -> None:
        st = self._state
        if st is None:
            return
        st.preprocessing = None
        if st.model is not None:
            self.pre.set_values(st.model.preprocessing.to_dict())
        self.changed.emit()
