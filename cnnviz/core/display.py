"""The one display path: float maps → uint8 pictures (colormaps, levels, what each view shows).

Everything a window shows, the PNG it exports, the CLI's picture and the benchmark go through
here, so they are the same bytes: :func:`display_frame` decides what each playground view shows
for a frozen :class:`DisplaySettings` (kernel, mosaic, channel, colormap, levels) and colours it
(:func:`stage_image` → :func:`display_bgra`); :func:`export_rgb` turns those exact bytes into
the RGB(A) an export writes. The one level policy: robust auto levels (:func:`stage_stat`,
symmetric around 0 for signed maps) unless the user fixed them (:func:`levels_for`).

Colormaps are 256-entry uint8 lookup tables built from published control points (no
matplotlib). The defaults are colour-blind-safe: ColorBrewer's RdBu for signed maps
(negative blue, zero white, positive red) and viridis for magnitudes, with plain grey
available for both. Signed maps get levels symmetric around 0 so white always means 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache

import cv2
import numpy as np

from .conv import PipelineRequest, PipelineResult, cv_rows
from .mosaic import MosaicLayout, mosaic_many, mosaic_maps

# Control points (position 0..1 → sRGB) for each map; interpolated linearly to 256 entries.
_CONTROL = {
    # ColorBrewer RdBu (11 classes), reversed: blue = negative, red = positive
    "diverging": ["#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7",
                  "#fddbc7", "#f4a582", "#d6604d", "#b2182b", "#67001f"],
    # ColorBrewer PuOr, a second colour-blind-safe diverging choice (orange = positive)
    "diverging-po": ["#2d004b", "#542788", "#8073ac", "#b2abd2", "#d8daeb", "#f7f7f7",
                     "#fee0b6", "#fdb863", "#e08214", "#b35806", "#7f3b08"],
    "gray": ["#000000", "#ffffff"],
    "viridis": ["#440154", "#482475", "#414487", "#355f8d", "#2a788e", "#21918c",
                "#22a884", "#44bf70", "#7ad151", "#bddf26", "#fde725"],
    "magma": ["#000004", "#140e36", "#3b0f70", "#641a80", "#8c2981", "#b73779",
              "#de4968", "#f7705c", "#fe9f6d", "#fecf92", "#fcfdbf"],
    "cividis": ["#00224e", "#123570", "#3b496c", "#575d6d", "#707173", "#8a8779",
                "#a69d75", "#c4b56c", "#e4cf5b", "#fdea45"],
}
COLORMAPS = tuple(_CONTROL)
DIVERGING = ("diverging", "diverging-po")


def _hex(c: str) -> tuple[int, int, int]:
    return int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)


@lru_cache(maxsize=None)
def _lut_cached(name: str) -> np.ndarray:
    pts = np.array([_hex(c) for c in _CONTROL[name]], dtype=np.float64)
    pos = np.linspace(0.0, 1.0, len(pts))
    t = np.linspace(0.0, 1.0, 256)
    table = np.stack([np.interp(t, pos, pts[:, i]) for i in range(3)], axis=1)
    out = np.round(table).astype(np.uint8)
    out.setflags(write=False)
    return out


def lut(name: str) -> np.ndarray:
    """The (256, 3) uint8 RGB lookup table of a colormap."""
    if name not in _CONTROL:
        raise ValueError(f"unknown colormap '{name}'; choose one of {', '.join(COLORMAPS)}")
    return _lut_cached(name)


def value_range(arr: np.ndarray) -> tuple[float, float]:
    """(min, max) of a map ignoring NaN; (nan, nan) when it has no number.

    Float32 maps take one SIMD pass (``cv2.minMaxLoc`` over a 2-D view); numpy's
    ``nanmin``/``nanmax`` are the fallback (other dtypes, NaN where OpenCV trips on it).
    """
    a = np.asarray(arr)
    if a.size == 0:
        return float("nan"), float("nan")
    if a.dtype == np.float32:
        flat = cv_rows(a)
        if flat is not None:
            lo, hi = cv2.minMaxLoc(flat)[:2]
            if np.isfinite(lo) and np.isfinite(hi):
                return float(lo), float(hi)
    with np.errstate(invalid="ignore"):
        if np.isnan(a).all():
            return float("nan"), float("nan")
        return float(np.nanmin(a)), float(np.nanmax(a))


def auto_levels(arr: np.ndarray, symmetric: bool | None = None,
                value_range_: tuple[float, float] | None = None) -> tuple[float, float]:
    """Display levels: min/max, or ±max|x| for signed maps (so 0 sits mid-scale).

    ``value_range_`` passes a (min, max) the caller already has (skips a pass).
    """
    if arr.size == 0:
        return 0.0, 1.0
    lo, hi = value_range_ if value_range_ is not None else value_range(arr)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return 0.0, 1.0
    if symmetric is None:
        symmetric = lo < 0.0
    if symmetric:
        m = max(abs(lo), abs(hi)) or 1.0
        return -m, m
    if hi <= lo:
        return lo, lo + 1.0
    return lo, hi


def to_uint8(arr: np.ndarray, levels: tuple[float, float], value_range_: tuple[float, float] | None = None,
             magnitude: bool = False) -> np.ndarray:
    """Scale ``arr`` so ``levels`` map to 0..255, rounded and clipped, in one OpenCV pass.

    ``magnitude=True`` scales |arr| instead (``levels[0]`` must then be 0). With the map's
    (min, max) in ``value_range_`` and no value more than half a step below ``levels[0]``,
    ``cv2.convertScaleAbs`` does it (half the cost); otherwise ``addWeighted`` with an 8-bit
    destination, which saturates below ``levels[0]`` where convertScaleAbs would fold.
    """
    lo, hi = float(levels[0]), float(levels[1])
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    a = np.asarray(arr)
    flat = cv_rows(a)  # a cropped map's gapped rows are read in place, no copy
    if flat is None:
        a = np.ascontiguousarray(a, dtype=np.float32)
        flat = cv_rows(a) if a.size else a.reshape(1, 0)
    if magnitude:
        if lo != 0.0:
            raise ValueError("magnitude display needs levels starting at 0")
        out = cv2.convertScaleAbs(flat, alpha=scale, beta=0.0)
    elif value_range_ is not None and np.isfinite(value_range_[0]) and (value_range_[0] - lo) * scale >= -0.25:
        out = cv2.convertScaleAbs(flat, alpha=scale, beta=-lo * scale)  # nothing to fold: all ≥ about 0
    else:
        out = cv2.addWeighted(flat, scale, flat, 0.0, -lo * scale, dtype=cv2.CV_8U)
    return out.reshape(a.shape)


def colorize(arr: np.ndarray, cmap: str = "auto", levels: tuple[float, float] | None = None,
             symmetric: bool | None = None) -> np.ndarray:
    """A 2-D float map → (H, W, 3) uint8 RGB: the RGB of :func:`display_bgra`.

    ``cmap="auto"`` uses the diverging map with symmetric levels for signed data and grey
    otherwise; without ``levels``, min/max (±max|x| when symmetric). Explicit levels are
    used as given (fixed levels for live video).
    """
    if arr.ndim != 2:
        raise ValueError(f"colorize needs a 2-D map, got shape {arr.shape}")
    rng = None
    if cmap == "auto" or levels is None:
        rng = value_range(arr)  # one pass serves the colormap choice and the levels
    if cmap == "auto":
        cmap = "diverging" if rng[0] < 0.0 else "gray"
    if levels is None:
        levels = auto_levels(arr, symmetric if symmetric is not None else (cmap in DIVERGING or None), rng)
    lut(cmap)  # an unknown name is reported as such
    return np.ascontiguousarray(display_bgra(arr, cmap, levels, nan=False)[..., 2::-1])


def display_image(maps: np.ndarray, index: int = 0, cmap: str = "auto",
                  levels: tuple[float, float] | None = None) -> np.ndarray:
    """The uint8 RGB image the playground's view shows for one kernel's map of a stage
    (:func:`display_frame`'s policy: levels over all kernels, RGB in ``each`` mode).

    ``maps`` is (N, H, W) or, in ``each`` mode, (N, 3, H, W).
    """
    settings = DisplaySettings(selection=index, colormap=cmap, levels_mode="fixed" if levels else "auto",
                               fixed_levels=(("map", tuple(levels)),) if levels else ())
    stat = stage_stat("map", maps)
    c = cmap_for(stat, settings)
    image = stage_image(select_map(maps, settings), levels_for("map", stat, c, settings), c, nan=False)
    return export_rgb(image.pixels)


# ---------------------------------------------------------------------------------------
# Display buffers for the window: made on the worker thread so the GUI thread only blits
# ---------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _lut_bgr_cv(name: str) -> np.ndarray:
    return np.ascontiguousarray(lut(name)[:, ::-1].reshape(256, 1, 3))


@lru_cache(maxsize=None)
def _is_identity(name: str) -> bool:
    table = lut(name)
    return bool((table == np.arange(256, dtype=np.uint8)[:, None]).all())


def display_bgra(arr: np.ndarray, cmap: str, levels: tuple[float, float], nan: bool | None = None) -> np.ndarray:
    """The (H, W, 4) uint8 B, G, R, A picture of a map, as a display blits it.

    ``arr`` is a 2-D map (coloured with ``cmap``, exactly as :func:`colorize` does) or an
    (H, W, 3) RGB map (each channel scaled with ``levels`` as :func:`to_uint8` does;
    ``cmap`` is ignored). NaN pixels (the gaps of a :func:`mosaic_maps` tiling) become
    fully transparent; every other pixel is opaque. ``nan=False`` promises there is no
    NaN (skips a pass over the map; a NaN would then show as the lowest colour).

    The byte order is that of a 32-bit ``0xAARRGGBB`` word on a little-endian machine
    (Qt's ``QImage.Format_ARGB32_Premultiplied``), which a painter draws without a
    conversion at every paint; ``out[..., 2::-1]`` is the RGB.
    """
    if arr.ndim == 2:
        idx = to_uint8(arr, levels)
        if _is_identity(cmap):  # grey: the index is the colour
            bgra = cv2.cvtColor(idx, cv2.COLOR_GRAY2BGRA)
        else:
            bgra = cv2.cvtColor(cv2.applyColorMap(idx, _lut_bgr_cv(cmap)), cv2.COLOR_BGR2BGRA)
    elif arr.ndim == 3 and arr.shape[2] == 3:
        bgra = cv2.cvtColor(to_uint8(arr, levels), cv2.COLOR_RGB2BGRA)
    else:
        raise ValueError(f"display_bgra needs a 2-D map or an (H, W, 3) image, got shape {arr.shape}")
    if nan is None:
        nan = arr.dtype.kind == "f" and arr.size > 0 and bool(np.isnan(np.min(arr)))  # min propagates NaN
    if nan:
        mask = np.isnan(arr) if arr.ndim == 2 else np.isnan(arr).any(axis=2)
        bgra[mask] = 0  # premultiplied transparent
    return bgra


def histogram_counts(arr: np.ndarray, levels: tuple[float, float],
                     max_samples: int = 32_768) -> tuple[np.ndarray, np.ndarray]:
    """A display histogram of ``arr`` over ``levels``: ``(bin centres, counts)``, 256 bins.

    Bin ``i`` holds the values that :func:`to_uint8` turns into display level ``i`` (so
    each bin is one colour of the colormap; the two end bins are half as wide). Values
    outside ``levels`` and NaN are not counted. At most about ``max_samples`` values on an
    even grid are counted: a histogram pictures the distribution, and every pixel of a
    1280×720 map would cost more than the convolution. Deterministic.
    """
    lo, hi = float(levels[0]), float(levels[1])
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        lo, hi = (lo, lo + 1.0) if np.isfinite(lo) else (0.0, 1.0)
    a = np.asarray(arr)
    if a.ndim == 2 and a.size > max_samples:
        step = int(np.ceil(np.sqrt(a.size / max_samples)))  # an even grid, without copying the map
        sample = np.asarray(a[::step, ::step], dtype=np.float32).reshape(-1)
    else:
        flat = np.asarray(a, dtype=np.float32).reshape(-1)
        sample = flat[:: max(1, flat.size // max_samples)] if flat.size else flat
    sample = sample[(sample >= lo) & (sample <= hi)]  # NaN compares False: dropped too
    counts = np.bincount(to_uint8(sample, (lo, hi)).reshape(-1), minlength=256) if sample.size else np.zeros(256)
    centres = lo + np.arange(256) * ((hi - lo) / 255.0)
    return centres, counts.astype(np.float64)


# ---------------------------------------------------------------------------------------
# What the playground's views show, decided and coloured off the GUI thread
# ---------------------------------------------------------------------------------------
STAGES = ("input", "conv", "activation", "pool")
MOSAIC = -1      # selector value: all kernels tiled
MAGNITUDE = -2   # selector value: gradient magnitude of the pair
RGB = -1         # channel selector value in "each" mode: the three channel maps as one RGB image

Stat = tuple[float, float, float, float]   # (min, max, auto_lo, auto_hi) of a stage


@dataclass(frozen=True)
class DisplaySettings:
    """The view controls that decide what a result looks like, frozen so a worker (or the
    CLI) can colour a result with them.

    ``fixed_levels`` holds ``(stage, (lo, hi))`` pairs and counts only in "fixed" mode.
    """

    selection: int = 0           # kernel index, MOSAIC or MAGNITUDE
    channel: int = RGB           # "each" mode: RGB or 0, 1, 2
    colormap: str = "auto"
    levels_mode: str = "auto"
    fixed_levels: tuple[tuple[str, tuple[float, float]], ...] = ()

    def fixed(self, stage: str) -> tuple[float, float] | None:
        if self.levels_mode != "fixed":
            return None
        for s, lv in self.fixed_levels:
            if s == stage:
                return lv
        return None


@dataclass(frozen=True, eq=False)
class StageImage:
    """One view's picture: the float map it stands for and the bytes that are drawn.

    ``data`` is the (H, W) or (H, W, 3) float array (what hover, explain and tests read);
    ``pixels`` the (H, W, 4) uint8 B, G, R, A picture of ``data`` under ``levels`` and
    ``cmap`` (:func:`display_bgra`; ``cmap`` is "rgb" for 3-channel data). The window
    draws ``pixels``; an export writes :func:`export_rgb` of them.
    """

    data: np.ndarray
    levels: tuple[float, float]
    cmap: str
    pixels: np.ndarray


@dataclass(frozen=True, eq=False)
class DisplayFrame:
    """Every view's :class:`StageImage` for one result (None: the view shows nothing)."""

    settings: DisplaySettings
    stages: dict[str, StageImage | None] = field(default_factory=dict)
    result_id: int = 0


def clean_levels(levels: tuple[float, float]) -> tuple[float, float]:
    """``levels`` as two finite floats with ``lo < hi`` (a flat or broken range widened)."""
    lo, hi = float(levels[0]), float(levels[1])
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        lo, hi = (lo, lo + 1.0) if math.isfinite(lo) else (0.0, 1.0)
    return lo, hi


def stage_image(data: np.ndarray, levels: tuple[float, float], cmap: str, nan: bool | None = None) -> StageImage:
    """Colour ``data`` for display (any thread); ``nan`` as in :func:`display_bgra`
    (False: the map has no NaN)."""
    lv = clean_levels(levels)
    if data.ndim != 2:
        cmap = "rgb"
    return StageImage(data, lv, cmap, display_bgra(data, cmap, lv, nan=nan))


def export_rgb(pixels: np.ndarray) -> np.ndarray:
    """The RGB (or RGBA, where some pixels are transparent: the gaps of a mosaic) uint8
    image of a :func:`display_bgra` picture: exactly the bytes a view draws, for a PNG."""
    pixels = np.ascontiguousarray(pixels)
    # one channel-swapping pass (OpenCV), not a fancy-indexed copy and then another copy
    if bool((pixels[..., 3] == 255).all()):
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGBA)  # alpha is 0 or 255: premultiplied = straight


def robust_stat(arr: np.ndarray, robust: float = 99.5, max_samples: int = 65_536) -> Stat | None:
    """The one auto-level policy: ``(min, max, lo, hi)`` of a map (any shape).

    ``lo, hi`` are robust levels: ±(the ``robust`` percentile of |x|) for signed maps, the
    (100 − robust, robust) percentiles otherwise, from at most ``max_samples`` evenly
    strided values. With plain ±max, one bright edge would leave every other edge
    near-white on a diverging map; the histogram still shows the full range. None when
    the map has no finite value (non-finite values are left out).
    """
    if arr.size == 0:
        return None
    lo, hi = float(arr.min()), float(arr.max())
    flat = arr.reshape(-1)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        flat = flat[np.isfinite(flat)]
        if flat.size == 0:
            return None
        lo, hi = float(flat.min()), float(flat.max())
    sample = flat[:: max(1, flat.size // max_samples)]
    n = sample.size
    if lo < 0.0:
        k = min(n - 1, int(round(robust / 100.0 * (n - 1))))
        m = float(np.partition(np.abs(sample), k)[k])
        if m <= 0.0:
            m = max(-lo, hi)
        return lo, hi, -m, m
    k_lo = min(n - 1, int(round((100.0 - robust) / 100.0 * (n - 1))))
    k_hi = min(n - 1, int(round(robust / 100.0 * (n - 1))))
    rlo, rhi = _order_stats(sample, k_lo, k_hi)
    return (lo, hi, rlo, rhi) if rhi > rlo else (lo, hi, lo, hi)


def _order_stats(sample: np.ndarray, k_lo: int, k_hi: int) -> tuple[float, float]:
    """The ``k_lo``-th and ``k_hi``-th smallest values of ``sample`` (exactly what one
    ``np.partition(sample, (k_lo, k_hi))`` gives). A map after ReLU is often mostly its
    minimum (0): when more than ``k_lo`` values are the minimum, the low one is the minimum
    and the high one is selected among the other values only — one selection over fewer
    values instead of two over all (the auto levels of every live frame)."""
    smin = sample.min()
    at_min = sample <= smin
    c = int(np.count_nonzero(at_min))
    if c <= k_lo:
        part = np.partition(sample, (k_lo, k_hi))
        return float(part[k_lo]), float(part[k_hi])
    if c > k_hi:
        return float(smin), float(smin)
    rest = sample[~at_min]
    j = k_hi - c
    return float(smin), float(np.partition(rest, j)[j])


def stage_stat(stage: str, arr: np.ndarray, stats: dict[str, Stat] | None = None) -> Stat:
    """(min, max, auto_lo, auto_hi) of a stage over all kernels: from ``stats`` (the
    worker's :func:`cnnviz.core.playground.stage_stats`) when given, else
    :func:`robust_stat` (the same policy)."""
    if stats and stage in stats:
        return stats[stage]
    stat = robust_stat(arr)
    return stat if stat is not None else (0.0, 1.0, 0.0, 1.0)


def levels_for(stage: str, stat: Stat, cmap: str, settings: DisplaySettings) -> tuple[float, float]:
    """Fixed levels if the user fixed them; else the auto levels, symmetric around 0
    for diverging colour maps (so white is exactly 0)."""
    fixed = settings.fixed(stage)
    if fixed is not None:
        return fixed
    _, _, lo, hi = stat
    if cmap in DIVERGING:
        m = max(abs(lo), abs(hi)) or 1.0
        return -m, m
    if hi <= lo:
        return lo, lo + 1.0
    return lo, hi


def cmap_for(stat: Stat, settings: DisplaySettings) -> str:
    """The colormap of a stage: the user's choice, or diverging for signed maps, grey else."""
    if settings.colormap != "auto":
        return settings.colormap
    return "diverging" if stat[0] < 0.0 else "gray"


def select_map(arr: np.ndarray, settings: DisplaySettings) -> np.ndarray:
    """The 2-D (or RGB) array of one stage for the kernel/channel selection."""
    sel = settings.selection
    n = arr.shape[0]
    if arr.ndim == 4:  # each mode: (N, 3, H, W)
        ch = settings.channel
        if sel == MOSAIC and n > 1:
            if ch == RGB:
                tiles = [mosaic_maps(np.ascontiguousarray(arr[:, c])) for c in range(3)]
                return np.ascontiguousarray(np.stack(tiles, axis=2))
            return mosaic_maps(np.ascontiguousarray(arr[:, ch]))
        k = min(max(sel, 0), n - 1)
        return np.ascontiguousarray(np.moveaxis(arr[k], 0, 2)) if ch == RGB else arr[k, ch]
    if sel == MOSAIC and n > 1:
        return mosaic_maps(arr)
    return arr[min(max(sel, 0), n - 1)]


def mosaic_layout(result: PipelineResult, settings: DisplaySettings) -> tuple[MosaicLayout | None, MosaicLayout | None]:
    """The (conv, pool) tilings :func:`select_map` makes for ``result``, or Nones when
    ``settings`` show one kernel."""
    n = result.conv.shape[0]
    if not (settings.selection == MOSAIC and n > 1):
        return None, None
    oh, ow = result.conv.shape[-2:]
    conv = MosaicLayout(n, int(np.ceil(np.sqrt(n))), oh, ow)
    pool = MosaicLayout(n, conv.cols, *result.pool.shape[-2:]) if result.pool is not None else None
    return conv, pool


def display_frame(result: PipelineResult, request: PipelineRequest, stats: dict[str, Stat] | None,
                  settings: DisplaySettings, input_image: StageImage | None = None) -> DisplayFrame:
    """What every view shows for ``result`` under ``settings``, coloured (pure; any thread).

    ``input_image`` is reused for the input view when it already pictures ``result.input``
    (a kernel edit keeps the picture).
    """
    stages: dict[str, StageImage | None] = {}
    x = result.input
    if input_image is not None and input_image.data is x:
        stages["input"] = input_image
    else:
        stages["input"] = stage_image(x, (0.0, 1.0), "gray" if x.ndim == 2 else "rgb", nan=False)
    if settings.selection == MAGNITUDE and result.magnitude is not None:
        mag = result.magnitude
        stat = stage_stat("magnitude", mag, stats)
        cmap = settings.colormap if settings.colormap != "auto" else "gray"
        stages["conv"] = stage_image(mag, levels_for("conv", stat, cmap, settings), cmap, nan=False)
        # activation and pooling apply per kernel: those views show the pair's first kernel
        # (never an empty view while the magnitude is shown)
        first = replace(settings, selection=(request.magnitude_pair or (0, 1))[0])
        for stage, arr in (("activation", result.activation), ("pool", result.pool)):
            if arr is None or (stage == "pool" and request.pool is None):
                stages[stage] = None
                continue
            st = stage_stat(stage, arr, stats)
            cm = cmap_for(st, first)
            stages[stage] = stage_image(select_map(arr, first), clean_levels(levels_for(stage, st, cm, first)), cm)
        return DisplayFrame(settings, stages, result.request_id)
    # the pipeline's maps are NaN-free (finite pictures and kernels); only the gaps between
    # mosaic tiles are NaN, drawn transparent
    mosaic = settings.selection == MOSAIC and result.conv.shape[0] > 1
    arrays = {"conv": result.conv, "activation": result.activation, "pool": result.pool}
    for stage in ("conv", "activation", "pool"):
        arr = arrays[stage]
        if arr is None or (stage == "pool" and request.pool is None):
            stages[stage] = None
            continue
        stat = stage_stat(stage, arr, stats)
        cmap = cmap_for(stat, settings)
        levels = clean_levels(levels_for(stage, stat, cmap, settings))
        same = stages.get("conv")
        if stage == "activation" and arr is arrays["conv"] and same is not None and same.levels == levels \
                and same.cmap == (cmap if same.data.ndim == 2 else "rgb"):
            stages[stage] = same  # no activation: the same map in the same colours, coloured once
            continue
        stages[stage] = stage_image(select_map(arr, settings), levels, cmap, nan=mosaic)
    return DisplayFrame(settings, stages, result.request_id)


def unit_image_to_rgb8(img: np.ndarray) -> np.ndarray:
    """A picture (not a feature map) as RGB bytes: ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``,
    float in [0, 1] (NaN as 0) or uint8 → ``(H, W, 3)`` uint8. Feature visualizations, crops
    and perturbations are pictures: they are shown as they are, never re-levelled."""
    a = np.asarray(img)
    if a.dtype != np.uint8:
        a = np.clip(np.rint(np.nan_to_num(a.astype(np.float32)) * 255.0), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a[:, :, :3])


# --------------------------------------------------------------------------- layer mosaics

#: The grey (RGB 40, 40, 40) between the tiles of a layer mosaic and after its last tile:
#: darker than any map's middle, so a border never reads as data.
LAYER_PAD_GREY = 40


@dataclass
class LayerMosaic:
    """A layer's ``(C, H, W)`` maps as one RGB picture: what the inspector's activation grid
    shows, the PNG it exports and the mosaic ``cnnviz inspect`` writes (the same bytes).

    Tile ``c`` is at grid row ``c // cols``, column ``c % cols``, its top-left pixel at
    ``(row * (tile_h + pad), col * (tile_w + pad))``; ``mode``/``cmap`` are the levels and
    colormap actually used (``"auto"`` resolved), ``levels`` the value range for
    ``mode="layer"`` (else ``None``).
    """

    image: np.ndarray
    count: int
    rows: int
    cols: int
    tile_hw: tuple[int, int]
    pad: int
    signed: bool
    levels: tuple[float, float] | None
    mode: str
    cmap: str

    def tiles(self) -> np.ndarray:
        """The ``count`` tiles as ``(count, tile_h, tile_w, 3)`` uint8 (a copy)."""
        th, tw = self.tile_hw
        if self.image.size == 0:
            return np.zeros((self.count, th, tw, 3), np.uint8)
        img = np.ascontiguousarray(self.image)
        sy, sx, sc = img.strides
        grid = np.lib.stride_tricks.as_strided(
            img, (self.rows, self.cols, th, tw, 3), ((th + self.pad) * sy, (tw + self.pad) * sx, sy, sx, sc),
            writeable=False)
        return grid.reshape(self.rows * self.cols, th, tw, 3)[: self.count].copy()


def layer_mosaic_mode(maps_shape, mode: str) -> str:
    """The levels a layer's mosaic uses: ``mode``, except 1x1 maps (a pooled vector), whose
    single values only mean something relative to the layer: ``"layer"``."""
    shape = tuple(int(v) for v in maps_shape)
    return "layer" if len(shape) == 3 and shape[1] * shape[2] == 1 else mode


def layer_mosaics(layers, mode: str = "channel", cmap: str = "auto", pad: int = 1) -> list[LayerMosaic]:
    """Every layer's ``(C, H, W)`` maps (numpy or torch, one device) → its :class:`LayerMosaic`.

    The levels are the core tiler's (:func:`cnnviz.core.mosaic.mosaic_many`, all layers in
    one pass): ``mode="channel"`` stretches every map on its own, ``"layer"`` uses one range
    (1x1 maps always ``"layer"``); signed layers (a finite value < 0) get levels symmetric
    around 0. ``cmap="auto"`` colours signed layers ``diverging`` (white = 0) and the others
    ``gray``. NaN/inf take the colour of 0; tiles are ``pad`` pixels apart on
    :data:`LAYER_PAD_GREY` in the most square grid (:func:`cnnviz.core.mosaic.grid_shape`).
    """
    layers = list(layers)
    if not layers:
        return []
    if cmap != "auto":
        lut(cmap)  # an unknown name fails before any work
    modes = [layer_mosaic_mode(getattr(m, "shape", ()), mode) for m in layers]
    out = []
    for m, md in zip(mosaic_many(layers, mode=modes, pad=pad, pad_value=0), modes):
        name = cmap if cmap != "auto" else ("diverging" if m.signed else "gray")
        th, tw = m.tile_hw
        if m.image.size == 0:
            rgb = np.zeros((*m.image.shape[:2], 3), np.uint8)
        else:
            rgb = np.take(lut(name), m.image, axis=0)  # (take: several times faster than [])
            if pad:
                for r in range(1, m.rows):
                    rgb[r * (th + pad) - pad: r * (th + pad)] = LAYER_PAD_GREY
                for c in range(1, m.cols):
                    rgb[:, c * (tw + pad) - pad: c * (tw + pad)] = LAYER_PAD_GREY
            rem = len(m.channels) % m.cols
            if rem and m.rows * m.cols > len(m.channels):  # the empty cells of the last row
                rgb[(m.rows - 1) * (th + pad):, rem * (tw + pad):] = LAYER_PAD_GREY
        out.append(LayerMosaic(rgb, len(m.channels), m.rows, m.cols, (int(th), int(tw)), pad, bool(m.signed),
                               m.levels, md, name))
    return out


def layer_mosaic(maps, mode: str = "channel", cmap: str = "auto", pad: int = 1) -> LayerMosaic:
    """:func:`layer_mosaics` of one layer."""
    return layer_mosaics([maps], mode=mode, cmap=cmap, pad=pad)[0]
