"""Turn float maps into display images: colormaps, levels, mosaics.

Colormaps are 256-entry uint8 lookup tables built from published control points (no
matplotlib). The defaults are colour-blind-safe: ColorBrewer's RdBu for signed maps
(negative blue, zero white, positive red) and viridis for magnitudes, with plain grey
available for both. Signed maps get levels symmetric around 0 so white always means 0.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from .conv import cv_rows

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


@lru_cache(maxsize=None)
def _lut_cv(name: str) -> np.ndarray:
    return np.ascontiguousarray(lut(name).reshape(256, 1, 3))


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


def is_signed(arr: np.ndarray) -> bool:
    """True when the map has negative values (a derivative kernel's output)."""
    return bool(arr.size) and value_range(arr)[0] < 0.0


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


def default_cmap(arr: np.ndarray) -> str:
    return "diverging" if is_signed(arr) else "gray"


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
    """A 2-D float map → (H, W, 3) uint8 RGB.

    ``cmap="auto"`` uses the diverging map with symmetric levels for signed data and grey
    otherwise; explicit levels are used as given (fixed levels for live video).
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
    idx = to_uint8(arr, levels, rng)
    if cmap == "gray":  # the grey table is the identity: a channel copy is 6× cheaper than a gather
        return cv2.cvtColor(idx, cv2.COLOR_GRAY2RGB)
    # applyColorMap with a user table is one gather pass (it copies channels as given: RGB in, RGB out)
    return cv2.applyColorMap(idx, _lut_cv(cmap))


def mosaic_maps(maps: np.ndarray, cols: int | None = None, pad: int = 1, fill: float = np.nan) -> np.ndarray:
    """Tile N maps (N, H, W) into one 2-D array, ``pad`` pixels of ``fill`` between tiles."""
    n, h, w = maps.shape
    if cols is None:
        cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    out = np.full((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad), fill, dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        out[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = maps[i]
    return out


def display_image(maps: np.ndarray, index: int = 0, cmap: str = "auto",
                  levels: tuple[float, float] | None = None) -> np.ndarray:
    """The uint8 RGB image a view shows for one kernel's map of a pipeline stage.

    ``maps`` is (N, H, W) or, in ``each`` mode, (N, 3, H, W): there the three channel
    responses become the R, G and B of the picture (scaled with shared levels).
    """
    m = maps[index]
    if m.ndim == 2:
        return colorize(m, cmap, levels)
    hwc = np.ascontiguousarray(np.moveaxis(m, 0, -1))
    if levels is None:
        rng = value_range(hwc)
        levels = auto_levels(hwc, False, rng)
        if levels[0] < 0:  # signed: show magnitude of the response per channel
            return to_uint8(hwc, (0.0, max(abs(levels[0]), abs(levels[1]))), magnitude=True)
        return to_uint8(hwc, levels, rng)
    return to_uint8(hwc, levels)


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
