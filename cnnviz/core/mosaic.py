"""The one tiler: maps side by side in a grid, for the playground, the inspector and the CLI.

:func:`mosaic_maps` tiles float maps (numpy, no torch: the playground's bank mosaic and
``cnnviz convolve --png``) with NaN gaps that :func:`cnnviz.core.display.display_bgra` draws
transparent; :class:`MosaicLayout` finds a kernel's tile in it. The rest renders a model's
activations and weights as uint8 images, on the tensors' device.

Everything here takes torch tensors (numpy arrays are accepted too), does the normalisation
and tiling with vectorised torch ops where the tensor lives (GPU or CPU) and copies only the
final uint8 image to the host: a 64-channel 112x112 layer crosses the bus as 0.8 MB of bytes,
not 3.2 MB of floats.

Grey levels: for a map with no negative values 0 is black and the maximum white; for a
*signed* map (some values < 0) the levels are symmetric, so 128 means 0 (pair it with a
diverging colormap, :func:`cnnviz.core.display.lut`). Tiles are laid out row-major: channel
``c`` is at grid row ``c // cols``, column ``c % cols``, its top-left pixel at
``(row * (tile_h + pad), col * (tile_w + pad))``.
"""

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

from .mosaic_base import Mosaic, _coefficients, grid_shape  # noqa: E402 - shared with mosaic_plans
# The fast paths live in mosaic_plans. Names are looked up in this module at call time, so
# patching them here (tests) still works.
from .mosaic_plans import (  # noqa: E402,F401
    _LAYOUTS, _LAYOUTS_LOCK, _NO_IMAGE, _PLANS, _SCRATCH, _batched_layout, _cpu_plan, _paint_tails,
    _Plan, _render_batched, _render_planned, _scratch, _scratch_flat, _tile_into,
)

__all__ = [
    "Mosaic",
    "MosaicLayout",
    "mosaic_maps",
    "conv_weights_image",
    "grid_shape",
    "histogram",
    "mosaic",
    "mosaic_many",
    "mosaic_tensor",
    "normalize_uint8",
    "overview_strip",
    "overview_strips",
]


@dataclass(frozen=True)
class MosaicLayout:
    """Where each of ``n`` (tile_h, tile_w) maps sits in a :func:`mosaic_maps` tiling."""

    n: int
    cols: int
    tile_h: int
    tile_w: int
    pad: int = 1

    def locate(self, row: int, col: int) -> tuple[int, int, int] | None:
        """(kernel, y, x) under a mosaic pixel, or None on the gap between tiles."""
        r, y = divmod(row, self.tile_h + self.pad)
        c, x = divmod(col, self.tile_w + self.pad)
        if y >= self.tile_h or x >= self.tile_w or c >= self.cols:
            return None
        k = r * self.cols + c
        return (k, y, x) if k < self.n else None

    def tile_origin(self, k: int) -> tuple[int, int]:
        r, c = divmod(k, self.cols)
        return r * (self.tile_h + self.pad), c * (self.tile_w + self.pad)


def mosaic_maps(maps: np.ndarray, cols: int | None = None, pad: int = 1, fill: float = np.nan) -> np.ndarray:
    """Tile N maps (N, H, W) into one 2-D float32 array, ``pad`` pixels of ``fill`` between
    tiles, row-major in ``cols`` columns (default ⌈√N⌉, as :class:`MosaicLayout`)."""
    n, h, w = maps.shape
    if cols is None:
        cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    out = np.full((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad), fill, dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        out[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = maps[i]
    return out


def _as_tensor(a) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.detach()
    first = getattr(a, "first", None)  # a captured layer (cnnviz.core.capture.Activation)
    if isinstance(first, torch.Tensor):
        return first.detach()
    return torch.as_tensor(np.asarray(a))


def as_maps(act) -> torch.Tensor:
    """Any activation as ``(C, H, W)`` maps: ``(C, H, W)`` as is, more dimensions flatten into
    channels, a 2-D ``(A, B)`` output becomes one ``A x B`` map, a vector of ``N`` values one
    near-square map (padded with NaN)."""
    t = _as_tensor(act)
    if t.dim() == 0:
        t = t.reshape(1, 1, 1)
    elif t.dim() == 1:
        n = t.numel()
        rows, cols = grid_shape(n)
        flat = torch.full((rows * cols,), float("nan"), dtype=torch.float32, device=t.device)
        flat[:n] = t.float()
        t = flat.reshape(1, rows, cols)
    elif t.dim() == 2:
        t = t.unsqueeze(0)
    elif t.dim() > 3:
        t = t.reshape(-1, *t.shape[-2:])
    return t


def _linear_levels(x: torch.Tensor, mode: str, signed: bool | None):
    """``(scale, offset, signed, levels)`` with ``x * scale + offset`` in [0.5, 255.5] per
    channel (``scale``/``offset`` shaped to broadcast), or ``None`` if ``x`` has NaN/inf."""
    c = x.shape[0]
    flat = x.reshape(c, -1) if mode == "channel" else x.reshape(1, -1)
    # Per-channel bounds on the device; the few numbers derived from them are worked out on
    # the host (numpy on C values costs microseconds, a torch op on them ~10 us each, and
    # this runs for every layer of every frame).
    on_cpu = x.device.type == "cpu"
    if on_cpu:
        lo, hi = flat.amin(dim=1).numpy(), flat.amax(dim=1).numpy()
    else:  # one transfer (and one wait) for both
        lo, hi = torch.stack((flat.amin(dim=1), flat.amax(dim=1))).cpu().numpy()
    lo, hi = lo.astype(np.float64), hi.astype(np.float64)
    if not math.isfinite(float(lo.sum()) + float(hi.sum())):  # NaN/inf somewhere (or huge)
        return None
    if signed is None:
        signed = bool(lo.min() < 0)
    coef = np.empty((2, lo.shape[0]), np.float32)  # scale, offset
    if signed:
        m = np.maximum(-lo, hi)
        levels = (-float(m.max()), float(m.max())) if mode == "layer" else None
        m[m <= 0] = np.inf  # an all-zero map: scale 0, grey 128
        np.divide(127.5, m, out=coef[0], casting="unsafe")
        coef[1] = 128.0  # 127.5, +0.5 so the truncating cast rounds
    else:
        span = hi - lo
        span[span <= 0] = np.inf  # a constant map: scale 0, black
        scale = 255.0 / span
        coef[0] = scale
        coef[1] = 0.5 - lo * scale
        levels = (float(lo.min()), float(hi.max())) if mode == "layer" else None
    coef = torch.from_numpy(coef)
    if not on_cpu:
        coef = coef.to(x.device, non_blocking=True)
    shape = (-1,) + (1,) * (x.dim() - 1)
    return coef[0].view(shape), coef[1].view(shape), bool(signed), levels


def _scaled(maps: torch.Tensor, mode: str, signed: bool | None, reuse: bool = False):
    """``(values, signed, levels)``: float values in [0.5, 255.5] to be cast to uint8 by
    truncation (which then rounds to nearest, no clamp pass needed), or uint8 values
    directly for maps with NaN/inf."""
    if mode not in ("channel", "layer"):
        raise ValueError("mode must be 'channel' or 'layer'")
    x = maps if maps.dtype == torch.float32 else maps.float()
    if x.numel() == 0:
        return torch.zeros(x.shape, dtype=torch.uint8, device=x.device), bool(signed), None
    lv = _linear_levels(x, mode, signed)
    if lv is None:
        return _normalize_nonfinite(x, mode, signed)
    scale, offset, is_signed, levels = lv
    out = torch.mul(x, scale, out=_scratch(x)) if reuse and not x.requires_grad else x * scale
    return out.add_(offset), is_signed, levels


def normalize_uint8(maps: torch.Tensor, mode: str = "channel", signed: bool | None = None
                    ) -> tuple[torch.Tensor, bool, tuple[float, float] | None]:
    """Map ``(C, H, W)`` floats to uint8 on their device.

    ``mode="channel"``: each map gets its own levels (structure in every channel is visible);
    ``"layer"``: one range for the whole layer (channels compare). ``signed=None`` chooses
    symmetric levels when any finite value is negative. NaN/inf become 0 (black / grey 128).
    Returns ``(uint8 maps, signed, levels or None)``.
    """
    values, is_signed, levels = _scaled(maps, mode, signed)
    return values.to(torch.uint8), is_signed, levels


def _normalize_nonfinite(x: torch.Tensor, mode: str, signed: bool | None):
    finite = torch.isfinite(x)
    x0 = torch.where(finite, x, torch.zeros((), device=x.device))
    if signed is None:
        signed = bool((x0 < 0).any())
    dims = (1, 2) if mode == "channel" else (0, 1, 2)
    if signed:
        scale = x0.abs().amax(dim=dims, keepdim=True)
        out = x0 / torch.where(scale > 0, scale, torch.ones_like(scale)) * 127.5 + 127.5
        levels = (-float(scale.max()), float(scale.max())) if mode == "layer" else None
    else:
        big = torch.finfo(torch.float32).max
        lo = torch.where(finite, x, torch.full((), big, device=x.device)).amin(dim=dims, keepdim=True)
        hi = torch.where(finite, x, torch.full((), -big, device=x.device)).amax(dim=dims, keepdim=True)
        span = hi - lo
        ok = span > 0
        out = torch.where(ok, (x0 - lo) / torch.where(ok, span, torch.ones_like(span)) * 255.0,
                          torch.zeros((), device=x.device))
        levels = (float(lo.min()), float(hi.max())) if mode == "layer" else None
        if levels is not None and not all(map(math.isfinite, levels)):
            levels = (0.0, 0.0)
    out = torch.where(finite, out, torch.full((), 127.5 if signed else 0.0, device=x.device))
    return out.round_().clamp_(0, 255).to(torch.uint8), bool(signed), levels


def _tile(src: torch.Tensor, rows: int, cols: int, pad: int, pad_value: int) -> torch.Tensor:
    """``(C, h, w[, 3])`` tiles (uint8, or floats in [0.5, 255.5] cast on the way) -> one
    uint8 ``(rows*(h+pad)-pad, cols*(w+pad)-pad[, 3])`` image.

    One strided copy writes every tile straight into its place in the canvas (the cast to
    uint8 happens in the same pass). Few torch calls: this runs per layer per frame.
    """
    c, h, w = src.shape[:3]
    extra = tuple(src.shape[3:])
    e = 3 if extra else 1
    height, width = rows * (h + pad) - pad, cols * (w + pad) - pad
    canvas = torch.full((height, width, *extra), pad_value, dtype=torch.uint8, device=src.device)
    # (rows, h, cols, w[, 3]) view of the tile areas
    grid = canvas.as_strided((rows, h, cols, w, *extra),
                             ((h + pad) * width * e, width * e, (w + pad) * e, e, *((1,) if extra else ())))
    full, rem = divmod(c, cols)
    if rem == 0:
        grid.copy_(src.reshape(rows, cols, h, w, *extra).transpose(1, 2))
        return canvas
    if full:
        grid[:full].copy_(src[: full * cols].reshape(full, cols, h, w, *extra).transpose(1, 2))
    grid[full, :, :rem].copy_(src[full * cols:].transpose(0, 1))
    return canvas


def _render(acts, *, mode: str, cols: int | None, pad: int, pad_value: int, signed: bool | None,
            channels=None, batched: bool | None = None) -> tuple[torch.Tensor, list[Mosaic], list[int]]:
    """Render layers into one flat uint8 buffer on their device.

    Returns ``(buffer, mosaics without images, offsets)``: mosaic ``i`` is
    ``buffer[offsets[i]:offsets[i + 1]]`` reshaped to its size. Few torch calls per layer and
    one wait for the device in all (the per-channel bounds of every layer travel to the host
    together, where the scales are worked out): rendering every layer of a network each frame
    is bound by per-call overhead, not arithmetic.

    On a GPU (``batched``, the default off the CPU) all layers go through one fixed sequence
    of about ten kernels (see :func:`_render_batched`) instead of a few per layer.
    """
    per_layer_mode = isinstance(mode, (list, tuple))
    if any(md not in ("channel", "layer") for md in (mode if per_layer_mode else [mode])):
        raise ValueError("mode must be 'channel' or 'layer'")
    maps, modes, chans, tails = [], [], [], []
    per_layer = channels is not None and len(channels) > 0 and not isinstance(channels[0], (int, np.integer))
    for i, a in enumerate(acts):
        t = _as_tensor(a)
        if t.dim() == 3:
            m = t  # the common case (C, H, W): as is
        elif t.dim() == 1 and t.numel():
            # A vector as one near-square map. The cells after its end are filled with its
            # first value (so its bounds are unchanged) and painted pad_value afterwards.
            n = t.numel()
            r, c = grid_shape(n)
            m = torch.cat((t.float(), t[:1].float().expand(r * c - n))).reshape(1, r, c)
            tails.append((i, n, r * c))
        else:
            m = as_maps(t)
        if m.dtype != torch.float32:
            m = m.float()
        sel = channels[i] if per_layer else channels
        if sel is not None:
            m = m[torch.as_tensor(sel, device=m.device, dtype=torch.long)]
            chans.append([int(c) for c in sel])
        else:
            chans.append(list(range(m.shape[0])))
        maps.append(m)
        md = mode[i] if per_layer_mode else mode
        modes.append("layer" if t.dim() < 2 else md)  # a vector is one map: its values compare
    device = maps[0].device
    if any(m.device != device for m in maps):
        raise ValueError("all activations must be on one device")
    if batched is None:
        batched = device.type != "cpu"
    if batched and all(m.numel() for m in maps):
        done = _render_batched(maps, modes, chans, cols, pad, pad_value, signed)
        if done is not None:
            _paint_tails(done[0], done[2], tails, pad_value)
            return done
        # else: NaN/inf somewhere; the per-layer path below handles them
    elif device.type == "cpu" and all(m.numel() for m in maps):
        done = _render_planned(maps, modes, chans, cols, pad, pad_value, signed)
        if done is not None:
            _paint_tails(done[0], done[2], tails, pad_value)
            return done

    # 1. every channel's bounds, in one transfer
    nonempty = [m for m in maps if m.numel()]
    if nonempty:
        flats = [m.reshape(m.shape[0], -1) for m in nonempty]
        bounds = torch.stack((torch.cat([f.amin(dim=1) for f in flats]),
                              torch.cat([f.amax(dim=1) for f in flats]))).cpu().numpy().astype(np.float64)
    else:
        bounds = np.zeros((2, 0))

    # 2. scales on the host; the layout of every mosaic in one buffer
    metas, offsets, scales, shifts, finite = [], [0], [], [], []
    k = 0
    for i, (m, md, ch) in enumerate(zip(maps, modes, chans)):
        c, h, w = m.shape
        rows, ncols = grid_shape(c, (h, w), cols[i] if isinstance(cols, (list, tuple)) else cols)
        height, width = max(rows * (h + pad) - pad, 0), max(ncols * (w + pad) - pad, 0)
        offsets.append(offsets[-1] + height * width)
        ok = False
        is_signed, levels = bool(signed), None
        if m.numel():
            lo, hi = bounds[0, k:k + c], bounds[1, k:k + c]
            k += c
            ok = bool(np.isfinite(lo).all() and np.isfinite(hi).all())
            if ok:
                sc, sh, (is_signed,), (levels,) = _coefficients(lo, hi, [c], [md], signed)
                scales.append(sc)
                shifts.append(sh)
        finite.append(ok)
        metas.append(Mosaic(_NO_IMAGE, rows, ncols, (int(h), int(w)), pad, is_signed, ch, levels))

    buf = torch.full((offsets[-1],), pad_value, dtype=torch.uint8, device=device)
    if scales:
        coef = torch.from_numpy(np.stack((np.concatenate(scales), np.concatenate(shifts))).astype(np.float32))
        if device.type != "cpu":
            coef = coef.to(device, non_blocking=True)
        parts = iter(coef[:, :, None, None].split([m.shape[0] for m, ok in zip(maps, finite) if ok], dim=1))

    # 3. scale and tile each layer straight into its place (the cast to uint8 on the way)
    for i, (m, meta, ok) in enumerate(zip(maps, metas, finite)):
        if not m.numel():
            continue
        if ok:
            part = next(parts)
            vals = torch.mul(m, part[0], out=_scratch(m)).add_(part[1])
        else:
            vals, meta.signed, meta.levels = _normalize_nonfinite(m, modes[i], signed)
        th, tw = meta.tile_hw
        canvas = buf[offsets[i]:offsets[i + 1]]
        _tile_into(canvas, vals, meta.rows, meta.cols, pad, th, tw)
    _paint_tails(buf, offsets, tails, pad_value)
    return buf, metas, offsets


def mosaic_tensor(act, *, mode: str = "channel", cols: int | None = None, pad: int = 1,
                  pad_value: int = 0, signed: bool | None = None,
                  channels: list[int] | None = None) -> tuple[torch.Tensor, Mosaic]:
    """Like :func:`mosaic` but the image stays a uint8 tensor on the activation's device;
    the returned :class:`Mosaic` has an empty ``image`` placeholder."""
    buf, (meta,), _ = _render([act], mode=mode, cols=cols, pad=pad, pad_value=pad_value,
                              signed=signed, channels=channels)
    th, tw = meta.tile_hw
    return buf.view(max(meta.rows * (th + pad) - pad, 0), max(meta.cols * (tw + pad) - pad, 0)), meta


def mosaic(act, *, mode: str = "channel", cols: int | None = None, pad: int = 1,
           pad_value: int = 0, signed: bool | None = None,
           channels: list[int] | None = None) -> Mosaic:
    """All channels of one layer's output (no batch dimension) as one grey uint8 image.

    Parameters
    ----------
    act:
        ``(C, H, W)`` (or anything :func:`as_maps` accepts), on any device.
    mode:
        ``"channel"`` (per-channel levels) or ``"layer"`` (one range for the layer).
    cols:
        Tiles per row; default: the most square image.
    pad, pad_value:
        Pixels between tiles and their grey level.
    signed:
        Force symmetric (True) or min-max (False) levels; default: symmetric when negative
        values occur.
    channels:
        Show only these channels, in this order.
    """
    return mosaic_many([act], mode=mode, cols=cols, pad=pad, pad_value=pad_value, signed=signed,
                       channels=channels)[0]


def mosaic_many(acts, *, mode: str = "channel", cols: int | None = None, pad: int = 1,
                pad_value: int = 0, signed: bool | None = None,
                channels: list[int] | None = None, batched: bool | None = None) -> list[Mosaic]:
    """:func:`mosaic` of several layers at once (all on one device): the same images, much
    faster than one call per layer (one device round trip in all, one transfer of uint8).

    ``mode`` may also be a list: one mode per layer. The returned images are views into one
    host buffer (disjoint; copy one to keep it while dropping the others). ``batched`` chooses the all-layers-at-once kernels (default:
    on a GPU, where per-layer kernel launches would dominate; on the CPU the per-layer path,
    which moves fewer bytes, is faster).
    """
    acts = list(acts)
    if not acts:
        return []
    buf, metas, offsets = _render(acts, mode=mode, cols=cols, pad=pad, pad_value=pad_value,
                                  signed=signed, channels=channels, batched=batched)
    host = buf.cpu().numpy()
    for i, meta in enumerate(metas):
        th, tw = meta.tile_hw
        shape = (max(meta.rows * (th + pad) - pad, 0), max(meta.cols * (tw + pad) - pad, 0))
        meta.image = host[offsets[i]:offsets[i + 1]].reshape(shape)
    return metas


def _top_channels(maps: list[torch.Tensor], n: int) -> list[list[int]]:
    """Per map stack, the ``n`` channels with the largest mean ``|x|``, strongest first (ties:
    lower index first). One transfer for all."""
    # an L1 norm per channel: no |x| temporary
    scores = torch.cat([
        torch.nan_to_num(torch.linalg.vector_norm(m.float().reshape(m.shape[0], -1), ord=1, dim=1),
                         nan=0.0, posinf=0.0) / max(m[0].numel(), 1)
        for m in maps]).cpu().numpy()
    chans, k = [], 0
    for m in maps:
        c = m.shape[0]
        top = np.argsort(-scores[k:k + c], kind="stable")[: min(int(n), c)]
        k += c
        chans.append([int(i) for i in top])
    return chans


def representative_channels(act, n: int = 8) -> list[int]:
    """The ``n`` channels with the largest mean absolute activation, strongest first."""
    return _top_channels([as_maps(act)], n)[0]


def overview_strip(act, n: int = 8, *, pad: int = 1, mode: str = "channel") -> Mosaic:
    """One row of a layer's ``n`` most active channels (see :func:`representative_channels`),
    for a per-layer overview; ``Mosaic.channels`` says which channel each tile is."""
    return overview_strips([act], n, pad=pad, mode=mode)[0]


def overview_strips(acts, n: int = 8, *, pad: int = 1, mode: str = "channel") -> list[Mosaic]:
    """:func:`overview_strip` for many layers at once (one device round trip for the channel
    choice, one for the images)."""
    acts = list(acts)
    if not acts:
        return []
    maps = [as_maps(a) for a in acts]
    chans = _top_channels(maps, n)
    out = _render(acts, mode=mode, cols=[max(len(c), 1) for c in chans], pad=pad, pad_value=0, signed=None,
                  channels=chans)
    buf, metas, offsets = out
    host = buf.cpu().numpy()
    for i, meta in enumerate(metas):
        th, tw = meta.tile_hw
        meta.image = host[offsets[i]:offsets[i + 1]].reshape(meta.rows * (th + pad) - pad, meta.cols * (tw + pad) - pad)
    return metas


def conv_weights_image(weight, *, cols: int | None = None, pad: int = 1,
                       in_channel: int | None = None, color: bool | None = None,
                       mode: str = "channel") -> Mosaic:
    """A conv layer's filters as tiles, one per output channel (``weight`` is ``(O, I, kh, kw)``).

    With 3 input channels (a first layer on RGB) each filter is a colour tile, the three
    channels normalised together so colours compare (``color=False`` to disable). Otherwise a
    tile shows input channel ``in_channel`` of each filter, or with ``None`` the mean over the
    input channels. Weights are signed, so levels are symmetric: grey 128 is 0 (for colour
    tiles each RGB component is centred at 128).
    """
    w = _as_tensor(weight).float()
    if w.dim() != 4:
        raise ValueError(f"conv weights must be (out, in, kh, kw); got shape {tuple(w.shape)}")
    o, i, kh, kw = w.shape
    if color is None:
        color = i == 3 and in_channel is None
    if color:
        if i != 3:
            raise ValueError(f"colour weights need 3 input channels; this layer has {i}")
        dims = (1, 2, 3) if mode == "channel" else (0, 1, 2, 3)
        scale = w.abs().amax(dim=dims, keepdim=True)
        u8 = (w / torch.where(scale > 0, scale, torch.ones_like(scale)) * 127.5 + 127.5)
        u8 = u8.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)  # O, kh, kw, 3
        rows, ncols = grid_shape(o, (kh, kw), cols)
        img = _tile(u8, rows, ncols, pad, 0)
        return Mosaic(img.cpu().numpy(), rows, ncols, (kh, kw), pad, True, list(range(o)))
    maps = w[:, in_channel] if in_channel is not None else w.mean(dim=1)
    return mosaic(maps, mode=mode, cols=cols, pad=pad, signed=True)


def histogram(values, bins: int = 64, value_range: tuple[float, float] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of all finite values: ``(counts int64[bins], edges float64[bins + 1])``.

    Computed on the tensor's device; only the counts cross to the host.
    """
    t = _as_tensor(values).detach().float().flatten()
    t = t[torch.isfinite(t)]
    if value_range is None:
        if t.numel():
            lo, hi = float(t.min()), float(t.max())
        else:
            lo, hi = 0.0, 1.0
    else:
        lo, hi = map(float, value_range)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts = torch.histc(t, bins=int(bins), min=lo, max=hi) if t.numel() else torch.zeros(int(bins))
    edges = np.linspace(lo, hi, int(bins) + 1)
    return counts.cpu().numpy().round().astype(np.int64), edges
