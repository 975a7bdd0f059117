"""The public functions: load, probe, convert an array, save a PNG."""

from __future__ import annotations

import os

import cv2
import numpy as np
from PIL import Image

from cnnviz.core.errors import ImageLoadError
from cnnviz.core.files import atomic_write
from cnnviz.core.images.common import DEFAULT_MAX_PIXELS, ImageSaveError, LoadedImage, Source, _ALPHA_MODES
from cnnviz.core.images.sniff import _corrupt, _format_of, _open_source, _sniff
from cnnviz.core.images.header import _check_size, _open_pillow, _pillow_guard, _webp_header_size
from cnnviz.core.images.decode import _decode, _to_float

# --------------------------------------------------------------------------------------
# public functions


def load_image(
    source: Source,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    alpha: str = "white",
    downscale_to: int | None = None,
) -> LoadedImage:
    """Decode an image file safely to float32 in [0, 1].

    Parameters
    ----------
    source:
        A path, or the encoded file's bytes (clipboard, drag-and-drop payload).
    max_pixels:
        Largest ``width * height`` decoded without a downscale. Headers over
        ``BOMB_FACTOR * max_pixels`` are refused even with one.
    alpha:
        What transparency becomes: ``"white"`` (default: composite on white, as a viewer
        shows it), ``"black"`` (composite on black, i.e. premultiply) or ``"drop"`` (ignore
        alpha, keep the stored colour).
    downscale_to:
        If given, the longest side of the result is at most this many pixels (aspect kept,
        area-averaged). Images already small enough are returned at full size.

    Raises
    ------
    ImageTooLarge
        Over ``max_pixels`` without ``downscale_to`` (or with one too big to help).
    DecompressionBomb
        Header claims far more pixels than the limit or than the file could hold.
    ImageLoadError
        Anything else that stops a faithful decode, with the cause and the fix.
    """
    max_pixels = _check_positive_int(max_pixels, "max_pixels")
    if downscale_to is not None:
        downscale_to = _check_positive_int(downscale_to, "downscale_to")
    if alpha not in _ALPHA_MODES:
        raise ValueError(f"alpha must be one of {_ALPHA_MODES}, not {alpha!r}")

    with _open_source(source) as src:
        with _pillow_guard():
            def check_size(w: int, h: int) -> tuple[int, int]:
                return _check_size(src, w, h, max_pixels, downscale_to)

            im = _open_pillow(src, check_size)
            try:
                return _decode(src, im, check_size, alpha)
            except ImageLoadError:
                raise
            except MemoryError:
                w, h = im.size
                raise ImageLoadError(
                    f"not enough memory to decode {src.label} ({w} x {h})",
                    "close other programs, or open it downscaled",
                ) from None
            except Exception as exc:  # noqa: BLE001 - a hostile file can make Pillow raise anything
                raise _corrupt(src, im.format, exc) from exc
            finally:
                im.close()


def probe_image(source: Source) -> tuple[int, int, str]:
    """``(width, height, format)`` from the header alone, as stored (before EXIF rotation).

    Cheap even for a 20000 x 15000 file; raises :class:`ImageLoadError` for anything that
    :func:`load_image` would not recognise as an image. It does not check the size limits.
    """
    with _open_source(source) as src:
        if _sniff(src.head) == "WEBP":  # Pillow would allocate the canvas just to open it
            size = _webp_header_size(src.head)
            if size is None:
                raise _corrupt(src, "WEBP")
            return size[0], size[1], "WEBP"
        with _pillow_guard():
            im = _open_pillow(src, None)
            try:
                w, h = im.size
                return int(w), int(h), _format_of(im)
            finally:
                im.close()


def image_from_array(arr: np.ndarray, *, alpha: str = "white") -> LoadedImage:
    """Normalise an in-memory frame exactly as :func:`load_image` normalises a file.

    Accepts ``(H, W)``, ``(H, W, 1)``, ``(H, W, 2)`` (gray + alpha), ``(H, W, 3)`` (RGB) or
    ``(H, W, 4)`` (RGBA), in RGB order, as uint8 (/255), uint16 (/65535), bool, or float
    (clipped to [0, 1]; NaN or inf is an error). The result never shares memory with ``arr``,
    so a camera may reuse its buffer.
    """
    if alpha not in _ALPHA_MODES:
        raise ValueError(f"alpha must be one of {_ALPHA_MODES}, not {alpha!r}")
    if not isinstance(arr, np.ndarray):
        raise ImageLoadError(
            f"not an image array: got {type(arr).__name__}", "pass a numpy array (H, W[, C])"
        )
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (2, 3, 4)):
        raise ImageLoadError(
            f"not an image array: shape {arr.shape}",
            "pass (H, W) gray, (H, W, 3) RGB or (H, W, 4) RGBA",
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageLoadError(f"image array is empty: shape {arr.shape}", "pass a non-empty frame")
    kind = arr.dtype.kind
    if arr.dtype == np.uint8:
        scale, depth = 255.0, 8
    elif arr.dtype == np.uint16:
        scale, depth = 65535.0, 16
    elif kind == "b":
        scale, depth = 1.0, 8
    elif kind == "f":
        scale, depth = 0.0, 32
    else:
        raise ImageLoadError(
            f"unsupported image array type {arr.dtype}",
            "pass uint8, uint16 or float values (floats in [0, 1])",
        )
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    gray = channels in (1, 2)
    pixels = _to_float(arr, scale, gray=gray, alpha=alpha, label="the image array")
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
    if channels == 1 and depth == 16:
        mode = "I;16"
    elif channels == 1 and kind == "f":
        mode = "F"
    h, w = arr.shape[:2]
    return LoadedImage(
        pixels=np.ascontiguousarray(pixels),
        path=None,
        format="array",
        bit_depth=depth,
        mode=mode,
        original_size=(int(w), int(h)),
        exif_rotated=False,
    )


_BT601_RGB2GRAY = cv2.COLOR_RGB2GRAY  # OpenCV's weights are BT.601: 0.299, 0.587, 0.114


def rgb_to_gray(pixels: np.ndarray) -> np.ndarray:
    """BT.601 luminance ``0.299 R + 0.587 G + 0.114 B`` of an ``(H, W, 3)`` RGB array, float32.

    A 2-D array is taken to be gray already and returned as float32 (the same object when it
    already is C-contiguous float32). Uses OpenCV's SIMD path (~0.6 ms for 1280 x 720).
    """
    if pixels.ndim == 2:
        return np.ascontiguousarray(pixels, dtype=np.float32)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"rgb_to_gray needs (H, W, 3) or (H, W), got shape {pixels.shape}")
    rgb = np.ascontiguousarray(pixels, dtype=np.float32)
    return cv2.cvtColor(rgb, _BT601_RGB2GRAY)


def save_png(path: str | os.PathLike[str], rgb_uint8: np.ndarray) -> None:
    """Write ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` uint8 RGB(A) as a PNG, atomically.

    The image is written to a temporary file in the same folder, flushed to disk, then moved
    over ``path`` with :func:`os.replace`: a crash mid-write leaves any old file intact and
    never a half-written one. Raises :class:`ImageSaveError` when the folder is missing or not
    writable, or the disk is full.
    """
    arr = np.asarray(rgb_uint8)
    if arr.dtype != np.uint8 or not (
        arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))
    ) or arr.size == 0:
        raise ValueError(
            f"save_png needs a non-empty uint8 (H, W), (H, W, 3) or (H, W, 4) array, "
            f"got {arr.dtype} {arr.shape}"
        )
    target = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise ImageSaveError(
            f"cannot save {target!r}: the folder {folder!r} does not exist",
            "pick an existing folder",
        )
    if os.path.isdir(target):
        raise ImageSaveError(f"cannot save {target!r}: it is a folder", "give a file name")
    image = Image.fromarray(np.ascontiguousarray(arr))
    try:
        atomic_write(target, lambda fh: image.save(fh, format="PNG"), "wb", make_parents=False)
    except OSError as exc:
        raise ImageSaveError(
            f"cannot save {target!r}: {exc.strerror or exc}",
            "pick a folder you can write to, with free space",
        ) from exc


def _check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return int(value)
