"""The parameters panel: stride, padding, dilation, bias, flip, channels, activation, pooling.

Every change emits a new :class:`~cnnviz.core.settings.PlaygroundParams` at once
(``paramsChanged``) when the combination is valid. A combination the core refuses (padding
'same' with stride 2, pool padding over half the pool size, …) emits ``paramsInvalid`` with
the :class:`~cnnviz.core.errors.SpecError` instead; the panel shows its cause and fix inline
and the window keeps computing with the last valid parameters.

Run this file to preview the panel on its own.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QSpinBox, QToolButton, QVBoxLayout, QWidget)

from cnnviz.core.conv import ACTIVATIONS, PADDING_MODES
from cnnviz.core.errors import CnnvizError

from ..colors import error_text
from ...core.settings import PlaygroundParams

ACTIVATION_LABELS = {"none": "none (identity)", "relu": "ReLU", "leaky_relu": "leaky ReLU", "abs": "|x| (abs)",
                     "sigmoid": "sigmoid", "tanh": "tanh"}
CHANNEL_LABELS = {"gray": "gray (luma)", "each": "each (R, G, B apart)", "full": "full (R+G+B)"}


class PairSpin(QWidget):
    """Two spin boxes (y, x) with a link toggle; linked by default (square values)."""

    valueChanged = Signal()

    def __init__(self, minimum: int, maximum: int, value: int, name: str, tip: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName(name)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        self.y = QSpinBox()
        self.x = QSpinBox()
        for sb, axis in ((self.y, "y"), (self.x, "x")):
            sb.setRange(minimum, maximum)
            sb.setValue(value)
            sb.setObjectName(f"{name}-{axis}")
            sb.setToolTip(f"{'Rows' if axis == 'y' else 'Columns'}: {tip}")
            sb.setKeyboardTracking(False)
            sb.setAccelerated(True)
            sb.setMinimumWidth(44)
            sb.setMaximumWidth(72)
            sb.valueChanged.connect(lambda v, s=sb: self._changed(s, v))
        self.link = QToolButton()
        self.link.setObjectName(f"{name}-link")
        self.link.setCheckable(True)
        self.link.setChecked(True)
        self.link.setText("=")
        self.link.setToolTip("Same value for rows and columns (untoggle to set them apart)")
        self.link.toggled.connect(self._on_link)
        lay.addWidget(self.y)
        lay.addWidget(QLabel("×"))
        lay.addWidget(self.x)
        lay.addWidget(self.link)
        lay.addStretch(1)
        self._on_link(True)

    def _on_link(self, linked: bool) -> None:
        self.x.setEnabled(not linked)
        if linked and self.x.value() != self.y.value():
            self.x.setValue(self.y.value())

    def _changed(self, sb: QSpinBox, v: int) -> None:
        if self.link.isChecked() and sb is self.y and self.x.value() != v:
            with QSignalBlocker(self.x):
                self.x.setValue(v)
        self.valueChanged.emit()

    def value(self) -> tuple[int, int]:
        return int(self.y.value()), int(self.x.value())

    def setValue(self, v: tuple[int, int]) -> None:  # noqa: N802 - Qt style
        with QSignalBlocker(self.y), QSignalBlocker(self.x), QSignalBlocker(self.link):
            self.y.setValue(int(v[0]))
            self.x.setValue(int(v[1]))
            self.link.setChecked(int(v[0]) == int(v[1]))
            self.x.setEnabled(not self.link.isChecked())


class ParamsPanel(QWidget):
    """All convolution, activation and pooling parameters.

    Signals
    -------
    paramsChanged(PlaygroundParams)
        A valid new set of parameters (emitted for every change).
    paramsInvalid(CnnvizError)
        The controls now describe something the core refuses; cause and fix in the error.
    """

    paramsChanged = Signal(object)
    paramsInvalid = Signal(object)

    def __init__(self, params: PlaygroundParams | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("params")
        self._last_valid = params or PlaygroundParams()
        self._error: CnnvizError | None = None
        root = QVBoxLayout(self)
        root.setContentsMargins(4, 4, 4, 4)
        root.setSpacing(6)

        # -- input channels ---------------------------------------------------------------
        self.channels = QComboBox()
        self.channels.setObjectName("channels")
        for key, text in CHANNEL_LABELS.items():
            self.channels.addItem(text, key)
        self.channels.setToolTip("How colour images meet the kernel:\n"
                                 "gray: convert to luma first (one output map per kernel)\n"
                                 "each: convolve R, G and B separately (three maps per kernel)\n"
                                 "full: one kernel spanning all three channels, like a CNN's first layer")

        # -- convolution --------------------------------------------------------------------
        conv = QGroupBox("Convolution")
        cf = QFormLayout(conv)
        cf.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        cf.addRow("Channels", self.channels)
        self.stride = PairSpin(1, 16, 1, "stride", "how far the kernel jumps between two outputs; stride 2 computes every "
                                                   "second position, so the map has half the size")
        cf.addRow("Stride", self.stride)
        self.padding_kind = QComboBox()
        self.padding_kind.setObjectName("padding-kind")
        self.padding_kind.addItem("number", "number")
        self.padding_kind.addItem("same", "same")
        self.padding_kind.addItem("valid", "valid")
        self.padding_kind.setToolTip("same: pad so the output keeps the input size (needs stride 1)\n"
                                     "valid: no padding (the output shrinks by dilation·(k−1))")
        self.padding = PairSpin(0, 32, 0, "padding", "pixels added on each side; without them a k×k kernel does not "
                                                     "fit at the border and the map shrinks by k−1")
        cf.addRow("Padding", self.padding_kind)
        cf.addRow("Pad pixels", self.padding)
        self.padding_mode = QComboBox()
        self.padding_mode.setObjectName("padding-mode")
        for m in PADDING_MODES:
            self.padding_mode.addItem(m, m)
        self.padding_mode.setToolTip("What the padding holds: zeros, a mirror of the border (reflect), "
                                     "the border pixel repeated (replicate) or the opposite side (circular)")
        cf.addRow("Pad with", self.padding_mode)
        self.dilation = PairSpin(1, 8, 1, "dilation", "spacing of the kernel taps (1 = touching); dilation 2 spreads "
                                                        "a 3×3 kernel over 5×5 pixels: wider context, same 9 weights")
        cf.addRow("Dilation", self.dilation)
        self.bias = QDoubleSpinBox()
        self.bias.setObjectName("bias")
        self.bias.setRange(-1000.0, 1000.0)
        self.bias.setDecimals(3)
        self.bias.setSingleStep(0.05)
        self.bias.setKeyboardTracking(False)
        self.bias.setToolTip("Added to every output value before the activation, like a conv layer's learned bias: "
                             "it moves the point where ReLU starts to let values through")
        cf.addRow("Bias", self.bias)
        self.flip = QCheckBox("Flip kernel (true convolution)")
        self.flip.setObjectName("flip")
        self.flip.setToolTip("CNNs compute cross-correlation; tick to rotate the kernel by 180° first, "
                             "which is convolution in the mathematical sense")
        cf.addRow("", self.flip)
        root.addWidget(conv)

        # -- activation ---------------------------------------------------------------------
        act = QGroupBox("Activation")
        af = QFormLayout(act)
        af.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.activation = QComboBox()
        self.activation.setObjectName("activation")
        self.activation.setToolTip("The non-linearity applied to every value of the convolved map: ReLU keeps "
                                   "positive responses and zeroes the rest, which is what lets stacked layers "
                                   "learn more than one linear filter could.")
        for a in ACTIVATIONS:
            self.activation.addItem(ACTIVATION_LABELS.get(a, a), a)
        af.addRow("Function", self.activation)
        self.slope = QDoubleSpinBox()
        self.slope.setObjectName("slope")
        self.slope.setRange(-10.0, 10.0)
        self.slope.setDecimals(3)
        self.slope.setSingleStep(0.01)
        self.slope.setValue(0.01)
        self.slope.setKeyboardTracking(False)
        self.slope.setToolTip("Leaky ReLU multiplies negative values by this slope instead of zeroing them "
                              "(output = slope·x for x < 0), so a unit is never completely silent")
        af.addRow("Slope", self.slope)
        root.addWidget(act)

        # -- pooling ------------------------------------------------------------------------
        pool = QGroupBox("Pooling")
        pf = QFormLayout(pool)
        pf.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.pool = QComboBox()
        self.pool.setObjectName("pool")
        self.pool.addItem("off", "none")
        self.pool.addItem("max", "max")
        self.pool.addItem("average", "avg")
        self.pool.setToolTip("Pool the activated map: keep each window's maximum or mean")
        pf.addRow("Type", self.pool)
        self.pool_size = PairSpin(1, 16, 2, "pool-size", "the window pooling summarises into one value; 2×2 "
                                                        "keeps one value in four")
        pf.addRow("Size", self.pool_size)
        self.pool_stride = PairSpin(1, 16, 2, "pool-stride", "step between pool windows; equal to the window, "
                                                            "the windows tile the map without overlap")
        pf.addRow("Stride", self.pool_stride)
        self.pool_padding = PairSpin(0, 8, 0, "pool-padding", "padding of the activated map before pooling (at "
                                                           "most half the window); max-pooling pads with −∞, so padding never wins")
        pf.addRow("Padding", self.pool_padding)
        self.ceil_mode = QCheckBox("Ceil mode (keep partial windows)")
        self.ceil_mode.setObjectName("ceil-mode")
        self.ceil_mode.setToolTip("Round the output size up, as PyTorch's ceil_mode=True")
        pf.addRow("", self.ceil_mode)
        self._pool_widgets = (self.pool_size, self.pool_stride, self.pool_padding, self.ceil_mode)
        root.addWidget(pool)

        self.error_label = QLabel("")
        self.error_label.setObjectName("error")
        self.error_label.setWordWrap(True)
        error_text(self.error_label)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.hide()
        root.addWidget(self.error_label)
        root.addStretch(1)

        self.set_params(self._last_valid)
        for w in (self.stride, self.padding, self.dilation, self.pool_size, self.pool_stride, self.pool_padding):
            w.valueChanged.connect(self._emit)
        for c in (self.channels, self.padding_kind, self.padding_mode, self.activation, self.pool):
            c.currentIndexChanged.connect(self._emit)
        for s in (self.bias, self.slope):
            s.valueChanged.connect(self._emit)
        for b in (self.flip, self.ceil_mode):
            b.toggled.connect(self._emit)

    # -- API -------------------------------------------------------------------------------------
    def raw_params(self) -> PlaygroundParams:
        """What the controls show now (may be an invalid combination)."""
        return PlaygroundParams(
            stride=self.stride.value(), padding_kind=self.padding_kind.currentData(), padding=self.padding.value(),
            padding_mode=self.padding_mode.currentData(), dilation=self.dilation.value(),
            bias=float(self.bias.value()), flip=self.flip.isChecked(), channels=self.channels.currentData(),
            activation=self.activation.currentData(), slope=float(self.slope.value()),
            pool=self.pool.currentData(), pool_size=self.pool_size.value(), pool_stride=self.pool_stride.value(),
            pool_padding=self.pool_padding.value(), ceil_mode=self.ceil_mode.isChecked())

    def params(self) -> PlaygroundParams:
        """The last valid parameters (what the window computes with)."""
        return self._last_valid

    def error(self) -> CnnvizError | None:
        return self._error

    def set_params(self, p: PlaygroundParams) -> None:
        """Show ``p`` without emitting (the caller already knows)."""
        blockers = [QSignalBlocker(w) for w in (self.channels, self.padding_kind, self.padding_mode, self.activation,
                                                 self.pool, self.bias, self.slope, self.flip, self.ceil_mode)]
        try:
            for combo, value in ((self.channels, p.channels), (self.padding_kind, p.padding_kind),
                                 (self.padding_mode, p.padding_mode), (self.activation, p.activation),
                                 (self.pool, p.pool)):
                i = combo.findData(value)
                combo.setCurrentIndex(max(i, 0))
            self.stride.setValue(p.stride)
            self.padding.setValue(p.padding)
            self.dilation.setValue(p.dilation)
            self.bias.setValue(p.bias)
            self.flip.setChecked(p.flip)
            self.slope.setValue(p.slope)
            self.pool_size.setValue(p.pool_size)
            self.pool_stride.setValue(p.pool_stride)
            self.pool_padding.setValue(p.pool_padding)
            self.ceil_mode.setChecked(p.ceil_mode)
        finally:
            for b in blockers:
                b.unblock()
        self._update_enabled()
        try:
            p.to_specs()
            self._last_valid = p
            self._set_error(None)
        except CnnvizError as err:
            self._set_error(err)

    # -- internals ----------------------------------------------------------------------------------
    def _update_enabled(self) -> None:
        self.padding.setEnabled(self.padding_kind.currentData() == "number")
        self.slope.setEnabled(self.activation.currentData() == "leaky_relu")
        on = self.pool.currentData() != "none"
        for w in self._pool_widgets:
            w.setEnabled(on)

    def _set_error(self, err: CnnvizError | None) -> None:
        self._error = err
        if err is None:
            self.error_label.hide()
            self.error_label.setText("")
        else:
            text = f"⚠ {err.cause}" + (f"\nFix: {err.fix}" if err.fix else "")
            self.error_label.setText(text)
            self.error_label.show()

    def _emit(self, *_) -> None:
        self._update_enabled()
        p = self.raw_params()
        try:
            p.to_specs()
        except CnnvizError as err:
            self._set_error(err)
            self.paramsInvalid.emit(err)
            return
        self._set_error(None)
        self._last_valid = p
        self.paramsChanged.emit(p)


if __name__ == "__main__":  # preview: python -m cnnviz.qt.playground.params_panel
    import sys

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv)
    w = ParamsPanel()
    w.paramsChanged.connect(lambda p: print("params", p))
    w.paramsInvalid.connect(lambda e: print("invalid:", e))
    w.show()
    sys.exit(app.exec())
