"""Activation and pooling kernels with PyTorch's exact semantics (see :mod:`cnnviz.core.conv`).

numpy and OpenCV, no loops over pixels; re-exported by :mod:`cnnviz.core.conv`.
"""

from __future__ import annotations

import cv2
import numpy as np

from .conv_specs import ActivationSpec, PoolSpec, pool_output_shape

def cv_rows(a: np.ndarray) -> np.ndarray | None:
    """A 2-D float32 view of ``a`` that OpenCV takes without a copy, or None.

    C-contiguous arrays become (first axis, everything else); a 2-D map whose rows have a
    gap between them (a crop of a wider map) is used as it is.
    """
    if a.dtype != np.float32 or a.size == 0:
        return None
    if a.flags.c_contiguous:
        return a.reshape(a.shape[0], -1) if a.ndim > 1 else a.reshape(1, -1)
    if a.ndim == 2 and a.strides[1] == 4 and a.strides[0] >= 4 * a.shape[1]:
        return a
    return None


def activate(x: np.ndarray, spec: ActivationSpec, out: np.ndarray | None = None) -> np.ndarray:
    """Apply the activation; ``out=x`` works in place."""
    k = spec.kind
    if out is None:
        out = np.empty_like(x)
    if k == "none":
        if out is not x:
            out[...] = x
    elif k == "relu":
        flat_in, flat_out = cv_rows(x), cv_rows(out)
        if flat_in is not None and flat_out is not None and flat_in.shape == flat_out.shape:
            # one SIMD pass (a third of numpy's time); x > 0 ? x : 0, so NaN → 0 — only an
            # overflowing kernel makes NaN, and its map is meaningless either way
            cv2.threshold(flat_in, 0.0, 0.0, cv2.THRESH_TOZERO, dst=flat_out)
        else:
            np.maximum(x, np.float32(0), out=out)
    elif k == "leaky_relu":
        neg = np.minimum(x, np.float32(0))
        np.maximum(x, np.float32(0), out=out)
        out += np.float32(spec.slope) * neg
    elif k == "abs":
        np.abs(x, out=out)
    elif k == "sigmoid":
        # σ(x) = (tanh(x/2) + 1) / 2: no overflow for large |x|, within 1e-7 of 1/(1+e^-x)
        np.multiply(x, np.float32(0.5), out=out)
        np.tanh(out, out=out)
        out += np.float32(1)
        out *= np.float32(0.5)
    elif k == "tanh":
        np.tanh(x, out=out)
    return out


MONOTONE = ("none", "relu", "leaky_relu", "sigmoid", "tanh")  # commute with max-pooling


def pool2d(x: np.ndarray, spec: PoolSpec, channels_last: bool = False) -> np.ndarray:
    """Max or average pooling over the spatial axes, exactly as PyTorch.

    Spatial axes are the last two, or the two before a trailing channel axis when
    ``channels_last`` is True.
    """
    fast = spec.kind == "max" and spec.size == (2, 2) and spec.stride == (2, 2) and spec.padding == (0, 0)
    sp = x.ndim - (3 if channels_last else 2)  # number of leading (batch) axes
    h, w = x.shape[sp:sp + 2]
    oh, ow = pool_output_shape((h, w), spec).out_hw
    if fast and 2 * oh <= h and 2 * ow <= w:  # every window complete (ceil mode may add a partial one)
        out = np.empty(x.shape[:sp] + (oh, ow) + x.shape[sp + 2:], np.float32)
        for idx in np.ndindex(x.shape[:sp]):
            out[idx] = _max_pool_2x2(x[idx], oh, ow)
        return out
    if channels_last:
        return np.moveaxis(pool2d(np.moveaxis(x, -1, -3), spec), -3, -1)
    (kh, kw), (sy, sx), (ph, pw) = spec.size, spec.stride, spec.padding
    need_h, need_w = (oh - 1) * sy + kh, (ow - 1) * sx + kw
    eb, er = max(0, need_h - (h + 2 * ph)), max(0, need_w - (w + 2 * pw))
    lead = x.shape[:-2]
    fill = -np.inf if spec.kind == "max" else 0.0
    if ph or pw or eb or er:
        xp = np.full(lead + (h + 2 * ph + eb, w + 2 * pw + er), fill, np.float32)
        xp[..., ph:ph + h, pw:pw + w] = x
    else:
        xp = x
    out: np.ndarray | None = None
    for i in range(kh):
        for j in range(kw):
            view = xp[..., i: i + (oh - 1) * sy + 1: sy, j: j + (ow - 1) * sx + 1: sx]
            if out is None:
                out = np.array(view, dtype=np.float32)
            elif spec.kind == "max":
                np.maximum(out, view, out=out)
            else:
                out += view
    assert out is not None
    if spec.kind == "avg":
        out /= avg_divisor(h, w, oh, ow, spec)
    return out


def _max_pool_2x2(x: np.ndarray, oh: int, ow: int, out: np.ndarray | None = None) -> np.ndarray:
    """2×2 / stride 2 max-pool of one (H, W) or (H, W, C) slab (into ``out`` when given).

    1. rows: max of even and odd rows with OpenCV (SIMD; row-strided views need no copy);
    2. columns: gray — numpy max of the even and odd columns of that half-size result;
       colour — max of the row result and itself shifted by one pixel (OpenCV, viewed as
       2-D), then an exact nearest-neighbour halving of the width (``cv2.resize`` picks
       column 2j at scale 2).
    Pure data movement and max: bit-identical to ``F.max_pool2d`` (tests check it).
    """
    c = 1 if x.ndim == 2 else x.shape[2]
    if c > 4 or oh < 2 or ow < 2:  # tiny maps or many channels: plain numpy
        rows = np.maximum(x[0:2 * oh:2, : 2 * ow], x[1:2 * oh:2, : 2 * ow])
        return np.maximum(rows[:, 0::2], rows[:, 1::2], out=out)
    rows = cv2.max(x[0:2 * oh:2, : 2 * ow], x[1:2 * oh:2, : 2 * ow])
    if x.ndim == 2:
        return np.maximum(rows[:, 0::2], rows[:, 1::2], out=out)
    if rows.ndim == 2:  # OpenCV drops a trailing channel axis of 1
        rows = rows[:, :, None]
    flat = rows.reshape(oh, 2 * ow * c)
    pair = np.empty_like(flat)
    cv2.max(flat[:, :-c], flat[:, c:], dst=pair[:, :-c])
    pair[:, -c:] = flat[:, -c:]
    src = pair.reshape(oh, 2 * ow, c) if c > 1 else pair
    if out is not None and c > 1 and out.flags.c_contiguous:
        res = cv2.resize(src, (ow, oh), dst=out, interpolation=cv2.INTER_NEAREST)
    else:
        res = cv2.resize(src, (ow, oh), interpolation=cv2.INTER_NEAREST)
    if res.ndim == 2:
        res = res[:, :, None]
    if out is None:
        return res
    if res is not out:
        out[...] = res
    return out


def avg_divisor(h, w, oh, ow, spec: PoolSpec) -> np.ndarray:
    """PyTorch's per-window divisor: pool_size counts padding but not past input+pad."""
    def axis(n, o, k, s, p):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)
        size_pad = end - start
        size_in = np.minimum(end, n) - np.maximum(start, 0)
        return size_pad if spec.count_include_pad else size_in
    dh = axis(h, oh, spec.size[0], spec.stride[0], spec.padding[0])
    dw = axis(w, ow, spec.size[1], spec.stride[1], spec.padding[1])
    return (dh[:, None] * dw[None, :]).astype(np.float32)
