"""The model's prediction as what it is: the output picker (which output of a multi-output
model is the prediction, by index or name), the task it was read as, and — under the top-k
bars of a classifier — a segmentation's class map over the input with its legend, or a
detector's boxes, labels and scores drawn on the input with a score-threshold slider.

Paints a result's :class:`~cnnviz.core.inspect_results.TaskData`; the pictures are drawn in
the core (:mod:`cnnviz.core.tasks`)."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from cnnviz.core.inspect_results import TaskData

from .imaging import ImageView

__all__ = ["TaskPanel"]


class TaskPanel(QWidget):
    """See the module docstring. Signals: ``outputChosen(str)`` (``""``: the default
    output), ``thresholdChanged(float)``."""

    outputChosen = Signal(str)
    thresholdChanged = Signal(float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("task-panel")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(QLabel("Output"))
        self.output_box = QComboBox()
        self.output_box.setObjectName("output-box")
        self.output_box.setToolTip("Which of the model's outputs is the prediction (remembered for this model)")
        row.addWidget(self.output_box, 1)
        lay.addLayout(row)
        self.task_label = QLabel("")
        self.task_label.setObjectName("task-label")
        self.task_label.setWordWrap(True)
        lay.addWidget(self.task_label)
        self.image = ImageView(min_size=96)
        self.image.setMinimumHeight(180)
        self.image.setObjectName("task-image")
        lay.addWidget(self.image, 1)
        thr = QHBoxLayout()
        self.threshold_label = QLabel("score ≥ 0.50")
        self.threshold = QSlider(Qt.Orientation.Horizontal)
        self.threshold.setObjectName("score-threshold")
        self.threshold.setRange(0, 100)
        self.threshold.setValue(50)
        self.threshold.setToolTip("Boxes scoring below this are not drawn")
        thr.addWidget(self.threshold_label)
        thr.addWidget(self.threshold, 1)
        self.threshold_row = QWidget()
        self.threshold_row.setLayout(thr)
        lay.addWidget(self.threshold_row)
        self.legend = QLabel("")
        self.legend.setObjectName("task-legend")
        self.legend.setWordWrap(True)
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(self.legend)
        self._outputs: list[str] = []
        self.image.hide()
        self.threshold_row.hide()
        self.legend.hide()
        self.output_box.activated.connect(self._on_output)
        self.threshold.valueChanged.connect(self._on_threshold)

    def _on_output(self, index: int) -> None:
        self.outputChosen.emit(self.output_box.itemData(index) or "")

    def _on_threshold(self, v: int) -> None:
        self.threshold_label.setText(f"score ≥ {v / 100:.2f}")
        self.thresholdChanged.emit(v / 100.0)

    def choose_output(self, name: str) -> None:
        """As if the user picked output ``name`` (``""``: the default)."""
        i = self.output_box.findData(name)
        if i >= 0:
            self.output_box.setCurrentIndex(i)
        self.outputChosen.emit(name)

    def set_threshold(self, value: float) -> None:
        """As if the user moved the slider to ``value`` (0..1)."""
        self.threshold.setValue(int(round(value * 100)))

    def clear(self) -> None:
        self.task_label.setText("")
        self.image.set_array(None)
        for w in (self.image, self.threshold_row, self.legend):
            w.hide()

    def set_task(self, task: TaskData | None, error: str | None = None) -> None:
        if task is None:
            self.clear()
            if error:
                self.task_label.setText(f"⚠ {error}")
            return
        names = [o["name"] for o in task.outputs]
        if names != self._outputs:
            self._outputs = names
            self.output_box.blockSignals(True)
            self.output_box.clear()
            self.output_box.addItem("default", "")
            for i, o in enumerate(task.outputs):
                label = o["name"] if o["name"] == str(i) else f"{i}: {o['name']}"
                self.output_box.addItem(f"{label} ({o['value']})", o["name"])
            self.output_box.blockSignals(False)
        self.output_box.blockSignals(True)
        self.output_box.setCurrentIndex(max(0, self.output_box.findData(task.chosen or "")))
        self.output_box.blockSignals(False)
        self.output_box.setEnabled(len(task.outputs) > 1)
        what = {"classification": "classes (top-k)", "segmentation": "a per-pixel class map",
                "detection": "boxes, labels and scores", "keypoints": "boxes with keypoints",
                "tensor": "a tensor (no task recognised)"}.get(task.task, task.task)
        text = (f"Output <b>{html.escape(task.output_name)}</b> read as {what}" if len(task.outputs) > 1
                else f"The output read as {what}")
        if task.task in ("detection", "keypoints"):
            n = len(task.detections)
            text += f": {n} box{'es' if n != 1 else ''} (≥ {task.score_threshold:.2f}; {task.below_threshold} below)"
        if error:
            text += f"<br><span style='color:#c0392b'>⚠ {html.escape(error)}</span>"
        self.task_label.setText(text)
        self.image.set_array(task.image)
        self.image.setVisible(task.image is not None)
        self.threshold_row.setVisible(task.task in ("detection", "keypoints"))
        if task.score_threshold is not None:
            self.threshold.blockSignals(True)
            self.threshold.setValue(int(round(task.score_threshold * 100)))
            self.threshold_label.setText(f"score ≥ {task.score_threshold:.2f}")
            self.threshold.blockSignals(False)
        rows = []
        for e in task.legend[:12]:
            r, g, b = e.get("color", (0, 0, 0))
            rows.append(f"<span style='background-color: rgb({r},{g},{b})'>&nbsp;&nbsp;&nbsp;</span> "
                        f"{html.escape(str(e['name']))} {e['fraction']:.0%}")
        self.legend.setText("<br>".join(rows))
        self.legend.setVisible(bool(rows))
