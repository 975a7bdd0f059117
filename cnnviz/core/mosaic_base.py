"""What the mosaic modules share: :class:`Mosaic` (a rendered layer and where each channel is
in it), :func:`grid_shape` and the level coefficients. Both :mod:`cnnviz.core.mosaic` and its
fast paths in :mod:`cnnviz.core.mosaic_plans` import from here, so neither imports the other
back."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


class _LazyTorch:
    """``torch``, imported on first use: the playground tiles numpy maps without it."""

    def __getattr__(self, name: str):
        import torch as real  # noqa: PLC0415

        globals()["torch"] = real  # later look-ups find the module itself
        return getattr(real, name)


torch = _LazyTorch()


@dataclass
class Mosaic:
    """A rendered layer: the image and how to find a channel in it.

    Attributes
    ----------
    image:
        ``uint8`` array, ``(H, W)`` grey or ``(H, W, 3)`` for colour weights.
    rows, cols:
        Grid size; channel ``c`` is tile ``(c // cols, c % cols)``.
    tile_hw:
        Size of one tile in pixels (before ``pad``).
    pad:
        Pixels between tiles.
    signed:
        Whether the levels are symmetric around 0 (grey 128 = 0).
    channels:
        The channel index shown in each tile, in tile order.
    levels:
        The value range mapped to 0..255 (per layer), or ``None`` with per-channel levels.
    """

    image: np.ndarray
    rows: int
    cols: int
    tile_hw: tuple[int, int]
    pad: int
    signed: bool
    channels: list[int]
    levels: tuple[float, float] | None = None

    def tile_at(self, y: int, x: int) -> int | None:
        """The channel whose tile contains pixel ``(y, x)``, or ``None`` (padding, outside)."""
        th, tw = self.tile_hw
        r, ry = divmod(int(y), th + self.pad)
        c, rx = divmod(int(x), tw + self.pad)
        if y < 0 or x < 0 or ry >= th or rx >= tw or r >= self.rows or c >= self.cols:
            return None
        i = r * self.cols + c
        return self.channels[i] if i < len(self.channels) else None


def grid_shape(n: int, tile_hw: tuple[int, int] = (1, 1), cols: int | None = None) -> tuple[int, int]:
    """``(rows, cols)`` for ``n`` tiles, as close to a square image as possible."""
    n = max(1, int(n))
    if cols is None:
        th, tw = tile_hw
        cols = max(1, math.ceil(math.sqrt(n * th / max(tw, 1)) - 1e-9))  # wide rather than tall
    cols = max(1, min(int(cols), n))
    return math.ceil(n / cols), cols


def _coefficients(lo: np.ndarray, hi: np.ndarray, counts, modes, signed: bool | None
                  ) -> tuple[np.ndarray, np.ndarray, list[bool], list[tuple[float, float] | None]]:
    """Per channel ``scale, offset`` (float64) putting it in [0.5, 255.5] for the truncating
    cast (see :func:`_linear_levels`), for many layers at once.

    ``lo``/``hi`` are every channel's finite bounds, layer after layer; ``counts`` the
    channels per layer and ``modes`` each layer's ``"channel"``/``"layer"``. Returns the
    scales and offsets, and per layer whether it is signed and its levels (``"layer"`` mode
    only). Signed: 127.5 + 127.5 * x / max|x|; unsigned: (x - lo) * 255 / (hi - lo); both
    +0.5. An all-zero (signed) or constant (unsigned) map gets scale 0: grey 128 or black.
    """
    counts = np.asarray(counts, np.int64)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    layer_lo, layer_hi = np.minimum.reduceat(lo, starts), np.maximum.reduceat(hi, starts)
    per_layer = [md == "layer" for md in modes]
    if any(per_layer):
        whole = np.repeat(per_layer, counts)
        lo = np.where(whole, np.repeat(layer_lo, counts), lo)
        hi = np.where(whole, np.repeat(layer_hi, counts), hi)
    is_signed = [bool(signed)] * len(counts) if signed is not None else (layer_lo < 0).tolist()
    m_abs = np.maximum(-lo, hi)
    m_abs[m_abs <= 0] = np.inf
    span = hi - lo
    span[span <= 0] = np.inf
    scale_u = 255.0 / span
    sig = np.repeat(is_signed, counts)
    scale = np.where(sig, 127.5 / m_abs, scale_u)
    offset = np.where(sig, 128.0, 0.5 - lo * scale_u)
    levels: list[tuple[float, float] | None] = []
    for i, whole_layer in enumerate(per_layer):
        if not whole_layer:
            levels.append(None)
        elif is_signed[i]:
            top = float(max(-layer_lo[i], layer_hi[i]))
            levels.append((-top, top))
        else:
            levels.append((float(layer_lo[i]), float(layer_hi[i])))
    return scale, offset, is_signed, levels
