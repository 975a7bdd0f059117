"""Explain one output pixel: the input patch, the kernel, their products and sum.

The explain panel shows these numbers next to the map; the tests check that
``value`` equals the map's pixel for interior and border pixels, with any padding mode,
stride and dilation. Indices follow the padding mode exactly like :func:`conv.pad_input`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .conv import ConvSpec, PoolSpec, avg_divisor
from .errors import SpecError
from .kernels import Kernel


def _source_index(idx: np.ndarray, n: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Map padded coordinates to input coordinates; returns (index, valid) where
    ``valid`` is False for zero padding."""
    inside = (idx >= 0) & (idx < n)
    if mode == "zeros":
        return np.clip(idx, 0, n - 1), inside
    if mode == "replicate":
        return np.clip(idx, 0, n - 1), np.ones_like(inside)
    if mode == "circular":
        return np.mod(idx, n), np.ones_like(inside)
    if mode == "reflect":  # reflect-101: -1 → 1, n → n-2
        out = np.abs(idx)
        out = np.where(out > n - 1, 2 * (n - 1) - out, out)
        return out, np.ones_like(inside)
    raise SpecError(f"padding mode '{mode}' is not known", "use zeros, reflect, replicate or circular")


@dataclass(frozen=True)
class ConvPixelExplanation:
    oy: int
    ox: int
    patch: np.ndarray       # input values under the kernel, padding included: (kH,kW) or (C,kH,kW)
    weights: np.ndarray     # effective weights (÷ divisor, flipped for true convolution)
    products: np.ndarray    # patch · weights, element-wise
    total: float            # Σ products
    bias: float             # spec.bias + kernel.offset
    value: float            # total + bias: the map's value at (oy, ox)
    rows: np.ndarray        # input row of each kernel row (may lie in the padding: < 0 or ≥ H)
    cols: np.ndarray
    window: tuple[int, int, int, int]  # (y0, x0, y1, x1), end exclusive, input coordinates
    in_padding: np.ndarray  # (kH, kW) True where the tap reads padding


def conv_window_in_input(spec: ConvSpec, kernel_hw: tuple[int, int], oy: int, ox: int) -> tuple[int, int, int, int]:
    """The input box (y0, x0, y1, x1) one conv output pixel sees; may extend past the image."""
    t, _, l, _ = spec.pads(kernel_hw)
    (sy, sx), (dy, dx), (kh, kw) = spec.stride, spec.dilation, kernel_hw
    y0, x0 = oy * sy - t, ox * sx - l
    return y0, x0, y0 + dy * (kh - 1) + 1, x0 + dx * (kw - 1) + 1


def explain_conv_pixel(x: np.ndarray, kernel: Kernel, spec: ConvSpec, oy: int, ox: int,
                       channel: int | None = None) -> ConvPixelExplanation:
    """Reproduce the conv map's value at (oy, ox) as a visible dot product.

    ``x`` is the prepared input ((H, W) or (H, W, 3)); ``channel`` picks the channel in
    ``each`` mode (default 0). In ``full`` mode the patch and weights are (C, kH, kW).
    """
    kh, kw = kernel.size
    h, w = x.shape[:2]
    (sy, sx), (dy, dx) = spec.stride, spec.dilation
    t, _, l, _ = spec.pads((kh, kw))
    rows = oy * sy - t + np.arange(kh) * dy
    cols = ox * sx - l + np.arange(kw) * dx
    ri, rv = _source_index(rows, h, spec.padding_mode)
    ci, cv = _source_index(cols, w, spec.padding_mode)
    valid = rv[:, None] & cv[None, :]
    in_pad = ~(((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :])
    wts = kernel.effective()
    mode = spec.channels
    if mode == "full":
        wts = kernel.expanded(x.shape[2]).effective() if kernel.channels is None else wts
        patch = np.moveaxis(x[np.ix_(ri, ci)], 2, 0) * valid[None]
    else:
        plane = x if x.ndim == 2 else x[:, :, 0 if channel is None else channel]
        patch = plane[np.ix_(ri, ci)] * valid
    if spec.flip:
        wts = wts[..., ::-1, ::-1]
    patch = patch.astype(np.float32)
    products = (patch * wts).astype(np.float32)
    total = float(products.astype(np.float64).sum())
    bias = spec.bias + kernel.offset
    y0, x0, y1, x1 = conv_window_in_input(spec, (kh, kw), oy, ox)
    return ConvPixelExplanation(oy, ox, patch, np.array(wts, np.float32), products, total, bias, total + bias,
                                rows, cols, (y0, x0, y1, x1), in_pad)


@dataclass(frozen=True)
class PoolPixelExplanation:
    py: int
    px: int
    kind: str
    window: tuple[int, int, int, int]   # (y0, x0, y1, x1) in activation coordinates, end exclusive
    values: np.ndarray                  # window values; padding shows as -inf (max) or 0 (avg)
    winner: tuple[int, int] | None      # activation (y, x) of the max
    value: float
    divisor: float | None               # avg: what the sum was divided by


def explain_pool_pixel(act: np.ndarray, pool: PoolSpec, py: int, px: int) -> PoolPixelExplanation:
    h, w = act.shape
    (kh, kw), (sy, sx), (ph, pw) = pool.size, pool.stride, pool.padding
    y0, x0 = py * sy - ph, px * sx - pw
    ys, xs = y0 + np.arange(kh), x0 + np.arange(kw)
    inside = ((ys >= 0) & (ys < h))[:, None] & ((xs >= 0) & (xs < w))[None, :]
    vals = act[np.ix_(np.clip(ys, 0, h - 1), np.clip(xs, 0, w - 1))].astype(np.float32)
    if pool.kind == "max":
        vals = np.where(inside, vals, -np.inf).astype(np.float32)
        i, j = np.unravel_index(int(np.argmax(vals)), vals.shape)
        return PoolPixelExplanation(py, px, "max", (y0, x0, y0 + kh, x0 + kw), vals, (int(ys[i]), int(xs[j])),
                                    float(vals[i, j]), None)
    vals = np.where(inside, vals, 0.0).astype(np.float32)
    oh = (py + 1)
    ow = (px + 1)
    div = float(avg_divisor(h, w, max(oh, 1), max(ow, 1), pool)[py, px])
    return PoolPixelExplanation(py, px, "avg", (y0, x0, y0 + kh, x0 + kw), vals, None,
                                float(vals.astype(np.float64).sum() / div), div)


def pool_window_to_input(spec: ConvSpec, kernel_hw: tuple[int, int], pool: PoolSpec, conv_hw: tuple[int, int],
                         py: int, px: int) -> tuple[int, int, int, int]:
    """Input box covered by a pooled unit (the union of its conv pixels' windows)."""
    (kh, kw), (sy, sx), (ph, pw) = pool.size, pool.stride, pool.padding
    a0 = max(0, py * sy - ph)
    a1 = min(conv_hw[0] - 1, py * sy - ph + kh - 1)
    b0 = max(0, px * sx - pw)
    b1 = min(conv_hw[1] - 1, px * sx - pw + kw - 1)
    y0, x0, _, _ = conv_window_in_input(spec, kernel_hw, a0, b0)
    _, _, y1, x1 = conv_window_in_input(spec, kernel_hw, a1, b1)
    return y0, x0, y1, x1


def weight_sharing(in_hw: tuple[int, int], out_hw: tuple[int, int], kernel_hw: tuple[int, int],
                   in_channels: int, n_kernels: int, bias: bool = True) -> dict:
    """Parameters of this conv layer vs a dense layer with the same input and output sizes."""
    kh, kw = kernel_hw
    conv = n_kernels * (in_channels * kh * kw + (1 if bias else 0))
    n_in = in_hw[0] * in_hw[1] * in_channels
    n_out = out_hw[0] * out_hw[1] * n_kernels
    dense = n_in * n_out + (n_out if bias else 0)
    ratio = dense / conv if conv else float("inf")
    text = (f"This layer: {n_kernels} kernel(s) × ({in_channels}·{kh}·{kw}{' + 1 bias' if bias else ''}) = {conv:,} "
            f"parameters, shared by all {out_hw[0] * out_hw[1]:,} output positions. A dense layer from "
            f"{n_in:,} inputs to the same {n_out:,} outputs needs {dense:,} parameters — {ratio:,.0f}× more.")
    return {"conv_params": conv, "dense_params": dense, "ratio": ratio, "inputs": n_in, "outputs": n_out, "text": text}
