"""The CPU and GPU fast paths of :mod:`cnnviz.core.mosaic` (moved out of it; it re-exports
these names, and its ``_render`` looks them up there, so patch them on that module).

The per-thread CPU path (:class:`_Plan`, :func:`_cpu_plan`, :func:`_render_planned`) with the
thread's scratch buffers, the batched GPU path (:func:`_render_batched`) and the tile copy
shared with the general path (:func:`_tile_into`, :func:`_paint_tails`).
"""

from __future__ import annotations

import math
import threading

import numpy as np


class _LazyTorch:
    """``torch``, imported on first use: the playground tiles numpy maps without it."""

    def __getattr__(self, name: str):
        import torch as real  # noqa: PLC0415

        globals()["torch"] = real  # later look-ups find the module itself
        return getattr(real, name)


torch = _LazyTorch()

from .mosaic_base import Mosaic, _coefficients, grid_shape  # noqa: E402 - after the lazy torch


_SCRATCH = threading.local()


def _scratch_flat(device: torch.device, n: int) -> torch.Tensor:
    """This thread's reusable float32 buffer on ``device``, at least ``n`` long (it grows,
    never shrinks): scaled values are cast into a mosaic right away, and a fresh
    multi-megabyte block per layer per frame costs page faults on the CPU. Growing it drops
    the CPU plans' views of the old one (see :func:`_cpu_plan`), so only one stays alive."""
    bufs = getattr(_SCRATCH, "bufs", None)
    if bufs is None:
        bufs = _SCRATCH.bufs = {}
    key = str(device)
    buf = bufs.get(key)
    if buf is None or buf.numel() < n:
        if device.type == "cpu":  # the CPU plans hold views of this buffer
            for plan in getattr(_PLANS, "plans", {}).values():
                plan.unbind()
        buf = bufs[key] = None  # let the old block go before the new one is made
        with torch.inference_mode(False):  # a normal tensor: usable in and out of inference mode
            buf = bufs[key] = torch.empty(n, dtype=torch.float32, device=device)
    return buf


def _scratch(like: torch.Tensor) -> torch.Tensor:
    """A float32 buffer shaped like ``like`` (see :func:`_scratch_flat`)."""
    return _scratch_flat(like.device, like.numel())[: like.numel()].view(like.shape)


class _Plan:
    """What rendering one list of map shapes on the CPU needs besides the values: the layout
    of every mosaic in the combined buffer, and small tensors reused from call to call (each
    layer's slots for its channels' bounds and coefficients, and views of the thread's
    scratch buffer shaped for the tile copy). Made once per thread and layout
    (:func:`_cpu_plan`), so a frame costs a handful of torch calls per layer and no per-layer
    Python arithmetic."""

    def __init__(self, shapes, cols, pad: int):
        self.shapes = [tuple(int(v) for v in s) for s in shapes]
        self.grids = [grid_shape(c, (h, w), cols[i] if isinstance(cols, (list, tuple)) else cols)
                      for i, (c, h, w) in enumerate(self.shapes)]
        self.pad = pad
        self.counts = np.asarray([c for c, _, _ in self.shapes], np.int64)
        self.starts = np.concatenate(([0], np.cumsum(self.counts)))
        self.numel = max(c * h * w for c, h, w in self.shapes)
        n = int(self.starts[-1])
        with torch.inference_mode(False):  # normal tensors: usable in and out of inference mode
            self.stats = torch.empty((2, n), dtype=torch.float32)
            self.coef = torch.empty((2, n), dtype=torch.float32)
        self.stats_np, self.coef_np = self.stats.numpy(), self.coef.numpy()
        self.bounds, self.affine, self.offsets, self.sizes = [], [], [0], []
        for (c, h, w), (rows, cols_), k in zip(self.shapes, self.grids, self.starts[:-1].tolist()):
            self.bounds.append((c, self.stats[0, k:k + c], self.stats[1, k:k + c]))
            self.affine.append((self.coef[0, k:k + c].view(c, 1, 1), self.coef[1, k:k + c].view(c, 1, 1)))
            height, width = rows * (h + pad) - pad, cols_ * (w + pad) - pad
            self.sizes.append((height, width))
            self.offsets.append(self.offsets[-1] + height * width)
        self.scratch = None
        self.tiles = None

    def unbind(self) -> None:
        self.scratch = self.tiles = None

    def bind(self, scratch: torch.Tensor) -> None:
        """Per layer: its scale and offset, the scratch view its scaled values go to, and per
        block of whole grid rows the canvas view (size, strides, storage offset) and the
        matching source view."""
        self.scratch, self.tiles = scratch, []
        pad = self.pad
        for (c, h, w), (rows, cols), (_, width), off, (scale, shift) in zip(
                self.shapes, self.grids, self.sizes, self.offsets, self.affine):
            vals = scratch[: c * h * w].view(c, h, w)
            full, rem = divmod(c, cols)
            stride = ((h + pad) * width, width, w + pad, 1)
            blocks = []
            if full:
                blocks.append(((full, h, cols, w), stride, off,
                               vals[: full * cols].view(full, cols, h, w).transpose(1, 2)))
            if rem:
                blocks.append(((h, rem, w), stride[1:], off + full * (h + pad) * width,
                               vals[full * cols:].transpose(0, 1)))
            self.tiles.append((scale, shift, vals, blocks))


_PLANS = threading.local()


def _cpu_plan(shapes, cols, pad: int) -> _Plan:
    """This thread's plan for a layout (a few recent ones are kept: the inspector alternates
    between two or three), bound to this thread's scratch buffer."""
    plans = getattr(_PLANS, "plans", None)
    if plans is None:
        plans = _PLANS.plans = {}
    key = (tuple(shapes), tuple(cols) if isinstance(cols, list) else cols, pad)
    plan = plans.pop(key, None)
    if plan is None:
        plan = _Plan(shapes, cols, pad)
        while len(plans) >= 4:
            plans.pop(next(iter(plans)))
    plans[key] = plan  # most recent last
    scratch = _scratch_flat(torch.device("cpu"), plan.numel)
    if plan.scratch is not scratch:
        plan.bind(scratch)
    return plan


def _render_planned(maps, modes, chans, cols, pad: int, pad_value: int, signed: bool | None):
    """The CPU path for finite maps: every channel's bounds into one reused tensor, every
    layer's scale and offset worked out at once in numpy, then per layer one scale pass into
    a reused scratch buffer and one cast-and-tile copy into the canvas. Returns ``None`` if
    any value is NaN/inf (the general path handles those)."""
    plan = _cpu_plan([m.shape for m in maps], cols, pad)
    for m, (c, lo, hi) in zip(maps, plan.bounds):
        flat = m.view(c, -1) if m.is_contiguous() else m.reshape(c, -1)
        torch.amin(flat, 1, out=lo)
        torch.amax(flat, 1, out=hi)
    lo, hi = plan.stats_np.astype(np.float64)
    if not math.isfinite(float(lo.sum()) + float(hi.sum())):
        return None
    plan.coef_np[0], plan.coef_np[1], signs, all_levels = _coefficients(lo, hi, plan.counts, modes, signed)
    buf = torch.full((plan.offsets[-1],), pad_value, dtype=torch.uint8)
    metas = []
    for m, (scale, shift, vals, blocks), (rows, ncols), (_, h, w), ch, is_signed, levels in zip(
            maps, plan.tiles, plan.grids, plan.shapes, chans, signs, all_levels):
        torch.mul(m, scale, out=vals).add_(shift)
        for size, stride, off, src in blocks:
            buf.as_strided(size, stride, off).copy_(src)
        metas.append(Mosaic(_NO_IMAGE, rows, ncols, (h, w), pad, is_signed, ch, levels))
    return buf, metas, plan.offsets


_NO_IMAGE = np.zeros((0, 0), np.uint8)
_NO_IMAGE.flags.writeable = False


def _paint_tails(buf: torch.Tensor, offsets: list[int], tails, pad_value: int) -> None:
    """Cells after the end of a vector (a single tile as wide as its canvas) get pad_value."""
    for i, n, cells in tails:
        if cells > n:
            buf[offsets[i] + n:offsets[i] + cells].fill_(pad_value)


_LAYOUTS: dict = {}  # a few recent layouts' index tensors, per device
_LAYOUTS_LOCK = threading.Lock()


def _batched_layout(shapes, grids, pad: int, device: torch.device):
    """Index tensors for :func:`_render_batched`: per channel its length, per element its
    place in the combined canvas buffer. Built once per layout (model, pad, grid)."""
    key = (tuple(shapes), tuple(grids), pad, str(device))
    with _LAYOUTS_LOCK:
        hit = _LAYOUTS.get(key)
    if hit is not None:
        return hit
    dest, lengths, offset = [], [], 0
    for (c, h, w), (rows, cols) in zip(shapes, grids):
        width, height = cols * (w + pad) - pad, rows * (h + pad) - pad
        ch = torch.arange(c, device=device)
        top, left = (ch // cols) * (h + pad), (ch % cols) * (w + pad)
        y = torch.arange(h, device=device)
        x = torch.arange(w, device=device)
        d = offset + (top[:, None, None] + y[None, :, None]) * width + left[:, None, None] + x[None, None, :]
        dest.append(d.reshape(-1))
        lengths.append(torch.full((c,), h * w, dtype=torch.long, device=device))
        offset += height * width
    hit = (torch.cat(dest), torch.cat(lengths), offset)
    with _LAYOUTS_LOCK:
        if len(_LAYOUTS) >= 8:
            _LAYOUTS.pop(next(iter(_LAYOUTS)))
        _LAYOUTS[key] = hit
    return hit


def _render_batched(maps, modes, chans, cols, pad: int, pad_value: int, signed: bool | None):
    """All layers at once: concatenate, per-channel bounds by segment reductions (one transfer
    to the host with a NaN/inf flag), scale every element by its channel's coefficients, and
    scatter into the combined canvas. Returns ``None`` if any value is NaN/inf."""
    device = maps[0].device
    shapes = [tuple(m.shape) for m in maps]
    grids = [grid_shape(c, (h, w), cols[i] if isinstance(cols, (list, tuple)) else cols)
             for i, (c, h, w) in enumerate(shapes)]
    dest, lengths, total = _batched_layout(shapes, grids, pad, device)
    flat = torch.cat([m.reshape(-1) for m in maps])
    stats = torch.cat((torch.segment_reduce(flat, "min", lengths=lengths, unsafe=True),
                       torch.segment_reduce(flat, "max", lengths=lengths, unsafe=True),
                       torch.isfinite(flat).all().float()[None])).cpu().numpy().astype(np.float64)
    if stats[-1] != 1.0:
        return None
    n_ch = lengths.numel()
    lo_all, hi_all = stats[:n_ch], stats[n_ch:2 * n_ch]
    scale, offset, signs, all_levels = _coefficients(lo_all, hi_all, [c for c, _, _ in shapes], modes, signed)
    metas, offsets = [], [0]
    for (c, h, w), (rows, ncols), ch, is_signed, levels in zip(shapes, grids, chans, signs, all_levels):
        offsets.append(offsets[-1] + (rows * (h + pad) - pad) * (ncols * (w + pad) - pad))
        metas.append(Mosaic(_NO_IMAGE, rows, ncols, (h, w), pad, is_signed, ch, levels))
    coef = torch.from_numpy(np.stack((scale, offset)).astype(np.float32))
    coef = coef.to(device, non_blocking=True)
    per_elem = torch.repeat_interleave(coef, lengths, dim=1, output_size=flat.numel())
    vals = torch.addcmul(per_elem[1], flat, per_elem[0])
    buf = torch.full((total,), pad_value, dtype=torch.uint8, device=device)
    buf[dest] = vals.to(torch.uint8)  # values in [0.5, 255.5]: the truncating cast rounds
    return buf, metas, offsets


def _tile_into(canvas_flat: torch.Tensor, src: torch.Tensor, rows: int, cols: int, pad: int,
               h: int, w: int) -> None:
    """Write ``(C, h, w)`` tiles into a flat uint8 canvas already filled with the pad value."""
    c = src.shape[0]
    width = cols * (w + pad) - pad
    grid = canvas_flat.as_strided((rows, h, cols, w), ((h + pad) * width, width, w + pad, 1),
                                  canvas_flat.storage_offset())
    full, rem = divmod(c, cols)
    if rem == 0:
        grid.copy_(src.reshape(rows, cols, h, w).transpose(1, 2))
        return
    if full:
        grid[:full].copy_(src[: full * cols].reshape(full, cols, h, w).transpose(1, 2))
    grid[full, :, :rem].copy_(src[full * cols:].transpose(0, 1))

