"""Specs and shape arithmetic of the convolution playground (see :mod:`cnnviz.core.conv`).

The frozen :class:`ConvSpec`, :class:`ActivationSpec` and :class:`PoolSpec`, the names of their
modes, and PyTorch's output-size formulas with the worked numbers (:func:`conv_output_shape`,
:func:`pool_output_shape`). Pure Python and numpy; re-exported by :mod:`cnnviz.core.conv`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import SpecError

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
CHANNEL_MODES = ("gray", "each", "full")
ACTIVATIONS = ("none", "relu", "leaky_relu", "abs", "sigmoid", "tanh")
POOL_KINDS = ("max", "avg")

# BT.601 luma weights, the same ones the window and the CLI document.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)


def _pair(value, name: str, *, minimum: int = 1) -> tuple[int, int]:
    """Normalise ``n`` or ``(a, b)`` to a pair of ints ≥ minimum, or raise SpecError."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise SpecError(f"{name} needs one number or two (y, x), got {len(value)}", f"e.g. {name} 2 or 2,1")
        a, b = value
    else:
        a = b = value
    out = []
    for v in (a, b):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) and not (isinstance(v, float) and v.is_integer()):
            raise SpecError(f"{name} must be a whole number, got {v!r}", f"use an integer {name}")
        v = int(v)
        if v < minimum:
            raise SpecError(f"{name} must be at least {minimum}, got {v}", f"use {name} ≥ {minimum}")
        out.append(v)
    return out[0], out[1]


# ---------------------------------------------------------------------------------
# Specs (frozen: each change in the window makes a new one)
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConvSpec:
    """How a kernel slides over the image.

    ``padding`` is a pair of ints (applied on both sides), or ``"same"`` / ``"valid"``.
    ``"same"`` pads like PyTorch: total ``d·(k−1)``, the extra pixel for even kernels on the
    bottom/right, and needs stride 1 (as in PyTorch).
    """

    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] | str = (0, 0)
    padding_mode: str = "zeros"
    dilation: tuple[int, int] = (1, 1)
    bias: float = 0.0
    flip: bool = False
    channels: str = "gray"

    def __post_init__(self) -> None:
        object.__setattr__(self, "stride", _pair(self.stride, "stride"))
        object.__setattr__(self, "dilation", _pair(self.dilation, "dilation"))
        p = self.padding
        if isinstance(p, str):
            p = p.strip().lower()
            if p not in ("same", "valid"):
                raise SpecError(f"padding '{self.padding}' is not understood", "use a number, two numbers (y,x), 'same' or 'valid'")
            if p == "same" and self.stride != (1, 1):
                raise SpecError("padding 'same' needs stride 1 (as in PyTorch)", "set stride to 1, or give the padding as a number")
        else:
            p = _pair(p, "padding", minimum=0)
        object.__setattr__(self, "padding", p)
        if self.padding_mode not in PADDING_MODES:
            raise SpecError(f"padding mode '{self.padding_mode}' is not known", f"use one of: {', '.join(PADDING_MODES)}")
        if self.channels not in CHANNEL_MODES:
            raise SpecError(f"channel mode '{self.channels}' is not known", f"use one of: {', '.join(CHANNEL_MODES)}")
        b = float(self.bias)
        if not np.isfinite(b):
            raise SpecError(f"bias is {self.bias}", "use a finite number")
        object.__setattr__(self, "bias", b)

    def pads(self, kernel_hw: tuple[int, int]) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) padding for a kernel of this size."""
        p = self.padding
        if p == "valid":
            return 0, 0, 0, 0
        if p == "same":
            (kh, kw), (dy, dx) = kernel_hw, self.dilation
            th, tw = dy * (kh - 1), dx * (kw - 1)
            return th // 2, th - th // 2, tw // 2, tw - tw // 2
        return p[0], p[0], p[1], p[1]


@dataclass(frozen=True)
class ActivationSpec:
    kind: str = "none"
    slope: float = 0.01  # leaky ReLU negative slope

    def __post_init__(self) -> None:
        k = self.kind.lower().replace("-", "_").replace(" ", "_")
        if k in ("leaky", "leakyrelu"):
            k = "leaky_relu"
        if k not in ACTIVATIONS:
            raise SpecError(f"activation '{self.kind}' is not known", f"use one of: {', '.join(ACTIVATIONS)}")
        object.__setattr__(self, "kind", k)
        if not np.isfinite(float(self.slope)):
            raise SpecError("leaky ReLU slope is not finite", "use a small number such as 0.01")
        object.__setattr__(self, "slope", float(self.slope))


@dataclass(frozen=True)
class PoolSpec:
    """``max`` or ``avg`` pooling exactly as PyTorch (avg counts padding, like its default)."""

    kind: str = "max"
    size: tuple[int, int] = (2, 2)
    stride: tuple[int, int] | None = None  # None: the pool size, like PyTorch
    padding: tuple[int, int] = (0, 0)
    ceil_mode: bool = False
    count_include_pad: bool = True

    def __post_init__(self) -> None:
        k = self.kind.lower()
        if k not in POOL_KINDS:
            raise SpecError(f"pooling '{self.kind}' is not known", "use max or avg")
        object.__setattr__(self, "kind", k)
        size = _pair(self.size, "pool size")
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "stride", size if self.stride is None else _pair(self.stride, "pool stride"))
        pad = _pair(self.padding, "pool padding", minimum=0)
        for p, s in zip(pad, size):
            if p > s // 2:
                raise SpecError(f"pool padding {p} is more than half the pool size {s} (PyTorch refuses it)",
                                f"use pool padding ≤ {s // 2}")
        object.__setattr__(self, "padding", pad)


# ---------------------------------------------------------------------------------
# Shape arithmetic with the worked formula
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class AxisShape:
    size_in: int
    size_out: int
    formula: str


@dataclass(frozen=True)
class ShapeInfo:
    """Output height/width with the formula for each, numbers filled in."""

    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    formula_h: str
    formula_w: str

    @property
    def text(self) -> str:
        return f"H: {self.formula_h}\nW: {self.formula_w}"


def conv_axis(n: int, k: int, s: int, p_lo: int, p_hi: int, d: int) -> AxisShape:
    """One axis of ``⌊(n + p_lo + p_hi − d·(k−1) − 1) / s⌋ + 1``."""
    eff = d * (k - 1) + 1
    padded = n + p_lo + p_hi
    pad_txt = f"2·{p_lo}" if p_lo == p_hi else f"({p_lo}+{p_hi})"
    head = f"⌊({n} + {pad_txt} − {d}·({k}−1) − 1) / {s}⌋ + 1"
    if padded < eff:
        raise SpecError(
            f"the kernel spans {eff} pixels (with dilation) but the padded input is only {padded} pixels: {head} < 1",
            "use a smaller kernel or dilation, more padding, or a larger image")
    out = (padded - eff) // s + 1
    return AxisShape(n, out, f"{head} = {out}")


#: Largest padded input (pixels) a convolution may build: 0.8 GB as float32 per channel. Far
#: above any real use (a 100 MP photo with 1000 px of padding is 144 MP); it turns a typo such as
#: padding 1000000000 into a message instead of an attempt to allocate exabytes.
MAX_PADDED_PIXELS = 200_000_000


def conv_output_shape(in_hw: tuple[int, int], kernel_hw: tuple[int, int], spec: ConvSpec) -> ShapeInfo:
    """Output (H, W) of a convolution and the formula that gives it."""
    t, b, l, r = spec.pads(kernel_hw)
    ph, pw = in_hw[0] + t + b, in_hw[1] + l + r
    if ph * pw > MAX_PADDED_PIXELS:
        raise SpecError(f"padding {max(t, b, l, r)} makes the padded input {ph}×{pw} = {ph * pw / 1e6:.0f} megapixels "
                        f"(the limit is {MAX_PADDED_PIXELS // 1_000_000})",
                        "use a smaller padding; a few pixels (or 'same') is usual")
    ah = conv_axis(in_hw[0], kernel_hw[0], spec.stride[0], t, b, spec.dilation[0])
    aw = conv_axis(in_hw[1], kernel_hw[1], spec.stride[1], l, r, spec.dilation[1])
    return ShapeInfo(tuple(in_hw), (ah.size_out, aw.size_out), ah.formula, aw.formula)


def pool_axis(n: int, k: int, s: int, p: int, ceil_mode: bool) -> AxisShape:
    """One axis of PyTorch's pooling size, including its ceil-mode correction."""
    num = n + 2 * p - (k - 1) - 1
    if num < 0:
        raise SpecError(f"the pool window ({k}) is larger than its padded input ({n + 2 * p})",
                        "use a smaller pool size or pool padding, or a larger image")
    br = ("⌈", "⌉") if ceil_mode else ("⌊", "⌋")
    head = f"{br[0]}({n} + 2·{p} − 1·({k}−1) − 1) / {s}{br[1]} + 1"
    out = (-(-num // s) if ceil_mode else num // s) + 1
    note = ""
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1  # the last window would start in the right padding: PyTorch drops it
        note = " − 1 (last window would start in the padding)"
    return AxisShape(n, out, f"{head}{note} = {out}")


def pool_output_shape(in_hw: tuple[int, int], pool: PoolSpec) -> ShapeInfo:
    ah = pool_axis(in_hw[0], pool.size[0], pool.stride[0], pool.padding[0], pool.ceil_mode)
    aw = pool_axis(in_hw[1], pool.size[1], pool.stride[1], pool.padding[1], pool.ceil_mode)
    return ShapeInfo(tuple(in_hw), (ah.size_out, aw.size_out), ah.formula, aw.formula)
