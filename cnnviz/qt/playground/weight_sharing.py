"""Weight sharing in numbers: this conv layer's parameters against a dense layer that maps
the same input to the same output size.

The numbers come from :func:`cnnviz.core.dotproduct.weight_sharing`:
``conv = N·(C·kH·kW + 1)`` and ``dense = (H·W·C)·(H'·W'·N) + H'·W'·N``.

Run this file to preview the widget on its own.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QVBoxLayout, QWidget

from ..colors import mute

from cnnviz.core.dotproduct import weight_sharing

SENTENCE = ("Weight sharing: one small kernel slides over every position of the image, so a conv layer "
            "has the same few weights whatever the image size, while a dense layer needs its own weight "
            "for every input–output pair.")


def compute(in_hw, out_hw, kernel_hw, in_channels: int, n_kernels: int) -> dict:
    """Parameter counts (with biases) of a conv layer and of a dense layer with the same
    inputs and outputs (:func:`cnnviz.core.dotproduct.weight_sharing`)."""
    return dict(weight_sharing(tuple(in_hw), tuple(out_hw), tuple(kernel_hw), int(in_channels),
                               int(n_kernels), bias=True))


def human_count(n: float) -> str:
    """1234 → '1.23 thousand', 8.5e11 → '850 billion'."""
    n = float(n)
    for value, word in ((1e12, "trillion"), (1e9, "billion"), (1e6, "million"), (1e3, "thousand")):
        if abs(n) >= value:
            return f"{n / value:.3g} {word}"
    return f"{n:.0f}"


def human_bytes(n: float) -> str:
    for value, unit in ((1e15, "PB"), (1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if n >= value:
            return f"{n / value:.3g} {unit}"
    return f"{n:.0f} bytes"


class WeightSharingPanel(QWidget):
    """Parameter count of the conv layer vs an equivalent dense layer on this image."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._numbers: dict = {}
        root = QVBoxLayout(self)
        root.setContentsMargins(6, 6, 6, 6)
        root.setSpacing(6)
        title = QLabel("Weight sharing")
        f = title.font()
        f.setBold(True)
        title.setFont(f)
        root.addWidget(title)
        grid = QGridLayout()
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(3)
        self._conv_formula = self._label()
        self._conv_value = self._label(number=True)
        self._dense_formula = self._label()
        self._dense_value = self._label(number=True)
        self._ratio = self._label(number=True)
        self._dense_human = self._label()
        for c, name in enumerate(("", "formula", "parameters")):
            if name:
                h = QLabel(name)
                mute(h)
                grid.addWidget(h, 0, c, alignment=Qt.AlignRight if c == 2 else Qt.AlignLeft)
        grid.addWidget(QLabel("This conv layer"), 1, 0)
        grid.addWidget(self._conv_formula, 1, 1)
        grid.addWidget(self._conv_value, 1, 2)
        grid.addWidget(QLabel("Dense layer, same output"), 2, 0)
        grid.addWidget(self._dense_formula, 2, 1)
        grid.addWidget(self._dense_value, 2, 2)
        mute(self._dense_human)
        grid.addWidget(self._dense_human, 3, 1, 1, 2)
        line = QFrame()
        line.setFrameShape(QFrame.HLine)
        line.setFrameShadow(QFrame.Sunken)
        grid.addWidget(line, 4, 0, 1, 3)
        ratio_label = QLabel("Dense ÷ conv")
        fb = ratio_label.font()
        fb.setBold(True)
        ratio_label.setFont(fb)
        self._ratio.setFont(fb)
        grid.addWidget(ratio_label, 5, 0)
        self._ratio_words = self._label()
        grid.addWidget(self._ratio_words, 5, 1)
        grid.addWidget(self._ratio, 5, 2)
        grid.setColumnStretch(1, 1)
        root.addLayout(grid)
        self._sentence = QLabel(SENTENCE)
        self._sentence.setObjectName("sentence")
        self._sentence.setWordWrap(True)
        root.addWidget(self._sentence)
        root.addStretch(1)
        self.clear()

    def _label(self, number: bool = False) -> QLabel:
        lab = QLabel(self)
        lab.setTextInteractionFlags(Qt.TextSelectableByMouse)
        if number:
            lab.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        return lab

    def clear(self) -> None:
        self._numbers = {}
        for lab in (self._conv_formula, self._conv_value, self._dense_formula, self._dense_value, self._ratio,
                    self._dense_human, self._ratio_words):
            lab.setText("—")

    def update_for(self, in_hw, out_hw, kernel_hw, in_channels: int, n_kernels: int) -> None:
        """Show the counts for a conv of ``n_kernels`` kernels of ``kernel_hw`` over an
        ``in_hw`` × ``in_channels`` input giving ``out_hw`` outputs per kernel."""
        nums = compute(in_hw, out_hw, kernel_hw, in_channels, n_kernels)
        self._numbers = nums
        (h, w), (oh, ow), (kh, kw) = in_hw, out_hw, kernel_hw
        c, n = int(in_channels), int(n_kernels)
        self._conv_formula.setText(f"{n} × ({c}·{kh}·{kw} + 1)")
        self._conv_value.setText(f"{nums['conv_params']:,}")
        self._dense_formula.setText(f"({h}·{w}·{c}) · ({oh}·{ow}·{n}) + {oh}·{ow}·{n}")
        self._dense_value.setText(f"{nums['dense_params']:,}")
        self._dense_value.setToolTip(f"≈ {human_count(nums['dense_params'])} weights, "
                                     f"{human_bytes(4.0 * nums['dense_params'])} as float32")
        ratio = nums["ratio"]
        self._ratio.setText(f"{ratio:,.0f}×" if ratio >= 10 else f"{ratio:.3g}×")
        self._dense_human.setText(f"≈ {human_count(nums['dense_params'])} weights, "
                                  f"{human_bytes(4.0 * nums['dense_params'])} as float32")
        self._ratio_words.setText("a dense layer needs this many times more" if ratio >= 1
                                  else "the conv layer has more parameters here")

    def numbers(self) -> dict:
        """The counts shown: conv_params, dense_params, ratio (empty before update_for)."""
        return dict(self._numbers)

    def shown_text(self) -> str:
        """Everything the panel shows, as plain text (for tests and copying)."""
        return "\n".join([
            f"This conv layer: {self._conv_formula.text()} = {self._conv_value.text()}",
            f"Dense layer, same output: {self._dense_formula.text()} = {self._dense_value.text()}",
            f"  ({self._dense_human.text()})",
            f"Dense ÷ conv: {self._ratio.text()} {self._ratio_words.text()}",
            self._sentence.text(),
        ])


if __name__ == "__main__":  # preview: python -m cnnviz.qt.playground.weight_sharing
    import sys

    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv)
    w = WeightSharingPanel()
    w.update_for((720, 1280), (718, 1278), (3, 3), 1, 2)
    w.show()
    sys.exit(app.exec())
