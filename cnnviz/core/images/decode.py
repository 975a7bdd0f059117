"""Decoding at native depth in row strips, conversion to float32, downscaling, orientation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageFile

from cnnviz.core.errors import ImageLoadError
from cnnviz.core.images.common import LoadedImage, _STRIP_BYTES
from cnnviz.core.images.sniff import _corrupt, _format_of, _Src
from cnnviz.core.images.header import _check_tiff_layout

# --------------------------------------------------------------------------------------
# decoding


@dataclass
class _Native:
    """Native-depth pixels served in row strips, plus how to turn them into [0, 1]."""

    width: int
    height: int
    strip: Callable[[int, int], np.ndarray]  # rows [y0, y1) -> (h, W[, C]) RGB(A) / gray(+A)
    scale: float  # divisor to [0, 1]; 0 means float samples, clipped
    gray: bool
    channels: int  # 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA
    bit_depth: int


def _decode(
    src: _Src,
    im: ImageFile.ImageFile,
    check_size: Callable[[int, int], tuple[int, int]],
    alpha: str,
) -> LoadedImage:
    fmt = _format_of(im)
    w, h = (int(v) for v in im.size)
    original_mode = im.mode
    out_w, out_h = check_size(w, h)  # before a single pixel is decoded
    if fmt == "TIFF":
        _check_tiff_layout(src, im, w, h)  # tile/strip tables that lie, before decoding
    downscaling = (out_w, out_h) != (w, h)

    if fmt == "JPEG" and downscaling:
        # libjpeg decodes at 1/2, 1/4 or 1/8 scale straight from the DCT: the full-size
        # image is never in memory. draft() keeps the result at least (out_w, out_h).
        im.draft(None, (out_w, out_h))

    native = None
    if _needs_cv2(im):
        # Pillow's PNG getexif() decodes the pixels to find a late eXIf chunk; here only an
        # eXIf before the pixel data counts, which is where the PNG spec puts it.
        orientation = _exif_orientation(im) if im.format != "PNG" or "exif" in im.info else 1
        native = _native_from_cv2(src, im)
    if native is None:
        im.load()  # the full decode; truncation raises here (LOAD_TRUNCATED_IMAGES is off)
        if fmt == "JPEG" and _grey_filled_jpeg(im):
            raise ImageLoadError(
                f"JPEG image is truncated: {src.label} ends in the flat grey (128, 128, 128) "
                "that a decoder fills in for missing data",
                "re-export or re-download it (if it really ends in mid-grey, save it as PNG)",
            )
        orientation = _exif_orientation(im)
        native = _native_from_pillow(im)
    if downscaling:
        pixels = _reduce(native, out_w, out_h, alpha, src.label)
        pixels = np.ascontiguousarray(_orient(pixels, orientation))
    else:
        pixels = _convert_full(native, orientation, alpha, src.label)
    return LoadedImage(
        pixels=pixels,
        path=src.path,
        format=fmt,
        bit_depth=native.bit_depth,
        mode=original_mode,
        original_size=(w, h),
        exif_rotated=orientation != 1,
    )


def _grey_filled_jpeg(im: Image.Image) -> bool:
    """True when the last decoded block is libjpeg's fill for missing data.

    A JPEG cut short *and* closed with an EOI marker (some tools "repair" downloads that way)
    decodes without any error: libjpeg warns, then leaves every missing block at zero, which is
    exactly 128 in every channel, down to the bottom-right corner. A photo never has an exact
    mid-grey 8 x 8 corner; a graphic might, and the message says what to do then.
    """
    if im.mode not in ("L", "RGB"):
        return False
    w, h = im.size
    n = min(8, w, h)
    corner = np.asarray(im.crop((w - n, h - n, w, h)))
    return bool((corner == 128).all())


def _exif_orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not cost the picture
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _tile_rawmode(im: ImageFile.ImageFile) -> str:
    if not im.tile:
        return ""
    args = im.tile[0][3]
    if isinstance(args, tuple):
        args = args[0] if args else ""
    return args if isinstance(args, str) else ""


def _needs_cv2(im: ImageFile.ImageFile) -> bool:
    # Pillow reduces 16-bit colour (and 16-bit gray + alpha) PNG and TIFF to 8 bits; OpenCV
    # keeps all 16. Gray 16-bit ("I;16") Pillow keeps itself.
    return (
        im.format in ("PNG", "TIFF")
        and im.mode in ("RGB", "RGBA", "LA")
        and "16" in _tile_rawmode(im)
    )


def _native_from_cv2(src: _Src, im: ImageFile.ImageFile) -> _Native | None:
    src.fp.seek(0)
    data = np.frombuffer(src.fp.read(), dtype=np.uint8)
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    w, h = im.size
    if arr is None or arr.dtype != np.uint16 or arr.shape[:2] != (h, w) or arr.ndim != 3:
        if arr is None:
            raise _corrupt(src, im.format)
        return None  # something OpenCV read differently: let Pillow do it, 8-bit
    rawmode = _tile_rawmode(im)
    gray_alpha = rawmode.startswith("LA")
    c = arr.shape[2]
    if gray_alpha and c == 4:
        view, channels = arr[..., [0, 3]], 2
    elif gray_alpha and c == 2:
        view, channels = arr, 2
    elif c == 3:
        view, channels = arr[..., ::-1], 3
    elif c == 4:
        view, channels = arr[..., [2, 1, 0, 3]], 4
    else:
        return None
    return _Native(w, h, lambda y0, y1: view[y0:y1], 65535.0, channels <= 2, channels, 16)


# Pillow modes that are converted (per strip) before becoming arrays.
_CONVERT_TO = {
    "1": "L",
    "P": "RGB",  # RGBA when the palette has transparency, see below
    "PA": "RGBA",
    "CMYK": "RGB",
    "YCbCr": "RGB",
    "LAB": "RGB",
    "HSV": "RGB",
    "RGBX": "RGB",
    "RGBa": "RGBA",
    "La": "LA",
}


def _native_from_pillow(im: Image.Image) -> _Native:
    mode = im.mode
    w, h = im.size
    target = _CONVERT_TO.get(mode)
    if "transparency" in im.info and mode in ("P", "L", "RGB"):
        # a palette entry or a colour key marked transparent: honour it like an alpha channel
        target = "LA" if mode == "L" else "RGBA"
    if target is None and mode not in ("L", "LA", "RGB", "RGBA", "I", "F") and not (
        mode.startswith("I;16")
    ):
        target = "RGB"  # anything exotic: let Pillow make RGB of it (errors become "corrupt")
    final = target or mode

    def strip(y0: int, y1: int) -> np.ndarray:
        part = im.crop((0, y0, w, y1))
        if target is not None:
            part = part.convert(target)
        return np.asarray(part)

    bit_depth, scale = 8, 255.0
    if final.startswith("I;16"):
        bit_depth, scale = 16, 65535.0
    elif final == "I":
        lo, hi = im.getextrema()  # type: ignore[misc]
        if lo >= 0 and hi <= 65535:  # 16-bit data in a 32-bit container (older PNG readers)
            bit_depth, scale = 16, 65535.0
        else:
            bit_depth, scale = 32, float(2**31 - 1)
    elif final == "F":
        bit_depth, scale = 32, 0.0
    channels = {"LA": 2, "RGB": 3, "RGBA": 4}.get(final, 1)
    return _Native(w, h, strip, scale, channels <= 2, channels, bit_depth)


def _to_float(
    a: np.ndarray, scale: float, *, gray: bool, alpha: str, label: str
) -> np.ndarray:
    """Native samples -> float32 in [0, 1], alpha handled; (h, w) if gray else (h, w, 3)."""
    f = a.astype(np.float32)  # always a copy: the result never aliases the source
    if scale == 0.0:  # float samples: reject NaN/inf, clip the rest
        if not np.isfinite(f).all():
            raise ImageLoadError(
                f"{label} contains NaN or infinite values", "replace them with numbers in [0, 1]"
            )
        np.clip(f, 0.0, 1.0, out=f)
    elif scale == 1.0:
        pass
    else:
        f /= np.float32(scale)  # division, not * (1/scale): v / 65535 exactly, as promised
        if a.dtype.kind == "i":
            np.clip(f, 0.0, 1.0, out=f)
    if f.ndim == 3 and f.shape[2] in (2, 4):
        colour, a_ = f[..., :-1], f[..., -1:]
        if alpha == "white":
            colour *= a_
            colour += 1.0 - a_
        elif alpha == "black":
            colour *= a_
        f = colour
    if f.ndim == 3 and (gray or f.shape[2] == 1):
        f = f[..., 0]
    return f


def _strip_rows(width: int, channels: int) -> int:
    return max(1, _STRIP_BYTES // (width * max(channels, 3) * 4))


def _convert_full(native: _Native, orientation: int, alpha: str, label: str) -> np.ndarray:
    w, h = native.width, native.height
    swapped = orientation >= 5
    shape: tuple[int, ...] = (w, h) if swapped else (h, w)
    if not native.gray:
        shape = (*shape, 3)
    out = np.empty(shape, dtype=np.float32)
    # Write each strip straight into its rotated place: no second full-size array.
    target = _orient(out, _INVERSE[orientation])
    rows = _strip_rows(w, native.channels)
    for y0 in range(0, h, rows):
        y1 = min(h, y0 + rows)
        target[y0:y1] = _to_float(
            native.strip(y0, y1), native.scale, gray=native.gray, alpha=alpha, label=label
        )
    return out


def _reduce(native: _Native, out_w: int, out_h: int, alpha: str, label: str) -> np.ndarray:
    """Area-average to (out_h, out_w), strip by strip, exactly as ``cv2.INTER_AREA`` would.

    Area resampling is separable and linear: each strip is resampled along its rows with
    OpenCV (exact per row), then its rows are spread over the output rows they overlap. No
    full-size float array is ever made.
    """
    w, h = native.width, native.height
    out = np.zeros((out_h, out_w) if native.gray else (out_h, out_w, 3), dtype=np.float32)
    # Input row i covers [i, i + 1) * out_h / h in output rows: it feeds at most two of them
    # (out_h <= h). Integer arithmetic keeps the weights exact.
    i = np.arange(h, dtype=np.int64)
    a, b = i * out_h, (i + 1) * out_h
    j_lo, j_hi = a // h, (b - 1) // h
    w_lo = ((np.minimum(b, (j_lo + 1) * h) - a) / h).astype(np.float32)
    w_hi = ((b - j_hi * h) / h).astype(np.float32)
    split = j_hi > j_lo
    rows = _strip_rows(w, native.channels)
    for y0 in range(0, h, rows):
        y1 = min(h, y0 + rows)
        f = _to_float(
            native.strip(y0, y1), native.scale, gray=native.gray, alpha=alpha, label=label
        )
        if out_w != w:
            f = cv2.resize(np.ascontiguousarray(f), (out_w, y1 - y0), interpolation=cv2.INTER_AREA)
        _spread(out, f, j_lo[y0:y1], w_lo[y0:y1])
        sel = split[y0:y1]
        if sel.any():
            _spread(out, f[sel], j_hi[y0:y1][sel], w_hi[y0:y1][sel])
    return np.clip(out, 0.0, 1.0, out=out)


def _spread(out: np.ndarray, rows: np.ndarray, dest: np.ndarray, weight: np.ndarray) -> None:
    """``out[dest[k]] += weight[k] * rows[k]`` for every k; ``dest`` is non-decreasing."""
    weighted = rows * weight.reshape((-1,) + (1,) * (rows.ndim - 1))
    starts = np.flatnonzero(np.diff(dest, prepend=-1))
    out[dest[starts]] += np.add.reduceat(weighted, starts, axis=0)


# EXIF orientation as numpy views, file layout -> display layout (as PIL.ImageOps.exif_transpose).
_INVERSE = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    if orientation == 2:
        return a[:, ::-1]
    if orientation == 3:
        return a[::-1, ::-1]
    if orientation == 4:
        return a[::-1]
    if orientation == 5:
        return a.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(a, -1)
    if orientation == 7:
        return a[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(a, 1)
    return a
