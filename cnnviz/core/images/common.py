"""What every part of image loading shares: formats, limits, the errors and the result type."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Union

import numpy as np

from cnnviz.core.errors import CnnvizError, ImageLoadError

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]

#: Largest image (width x height) decoded at full size unless the caller raises it.
DEFAULT_MAX_PIXELS = 100_000_000
#: Headers claiming more than this many times ``max_pixels`` are refused even for a downscale.
BOMB_FACTOR = 4
#: Pillow format ids we let Pillow try (MPO is what Pillow calls some camera JPEGs).
SUPPORTED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "BMP", "TIFF", "WEBP")
#: Lower-case extensions with the dot, for the open dialog's filter; each format's common
#: spelling comes first, so a short prefix of the list names every format.
SUPPORTED_EXTENSIONS: tuple[str, ...] = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".jpe",
    ".jfif",
    ".dib",
)
_FORMAT_NAMES = "PNG, JPEG, BMP, TIFF or WebP"
_ALPHA_MODES = ("white", "black", "drop")
# Float32 bytes per strip: small enough that conversion never doubles the peak (glibc keeps
# freed big blocks, so temporaries add up), big enough that a webcam frame is one strip.
_STRIP_BYTES = 4 * 1024 * 1024
# Deflate cannot compress better than about 1032:1; a PNG whose header claims more raw bytes
# than that ratio allows from the file's size is corrupt or a bomb, whatever the pixel limit.
_DEFLATE_MAX_RATIO = 1100


# --------------------------------------------------------------------------------------
# errors


class ImageTooLarge(ImageLoadError):
    """The image is genuine but bigger than ``max_pixels``: offer a downscale.

    Attributes
    ----------
    width, height:
        Size in the file's header.
    limit:
        The ``max_pixels`` that was exceeded.
    """

    def __init__(self, width: int, height: int, limit: int, label: str):
        self.width = width
        self.height = height
        self.limit = limit
        super().__init__(
            f"image is {width} x {height} = {_mp(width * height)} megapixels, over the "
            f"{_mp(limit)} MP limit: {label}",
            "open it downscaled, or raise the pixel limit if this machine has the memory",
        )


class DecompressionBomb(ImageLoadError):
    """A header claiming far more pixels than any real image here: refused before decoding.

    Not an :class:`ImageTooLarge`, because offering a downscale would not help.
    """

    def __init__(self, width: int, height: int, limit: int, label: str, why: str):
        self.width = width
        self.height = height
        self.limit = limit
        super().__init__(
            f"image is {width} x {height} = {_mp(width * height)} megapixels, over the "
            f"{_mp(limit)} MP limit: {label} ({why}; refused before decoding as a possible "
            "decompression bomb)",
            "if the file is genuine, raise the pixel limit; otherwise delete it",
        )


class ImageSaveError(CnnvizError):
    """An image that could not be written (folder missing, no permission, disk full)."""


def _mp(pixels: int) -> str:
    mp = pixels / 1e6
    if mp >= 10:
        return f"{mp:.0f}"
    return f"{mp:.2g}" if mp >= 0.01 else f"{mp:.1g}"


# --------------------------------------------------------------------------------------
# the result


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """A decoded image, ready for the convolution core.

    Attributes
    ----------
    pixels:
        float32, C-contiguous, values in [0, 1]; ``(H, W)`` for gray sources (gray, gray with
        alpha, 16-bit gray, bilevel), ``(H, W, 3)`` RGB otherwise. Orientation applied, alpha
        composited (see :func:`load_image`). The array belongs to this object: do not write
        to it.
    path:
        The file it came from, or ``None`` for bytes and arrays.
    format:
        ``"PNG"``, ``"JPEG"``, ``"BMP"``, ``"TIFF"``, ``"WEBP"`` or ``"array"``.
    bit_depth:
        Precision delivered: 8 (8-bit and fewer), 16 (16-bit, divided by 65535) or 32 (float
        or 32-bit integer samples).
    mode:
        Pillow's mode for the file as opened (``"RGB"``, ``"I;16"``, ``"P"``, ``"CMYK"``...).
    original_size:
        ``(width, height)`` as stored in the file, before EXIF rotation and any downscale.
    exif_rotated:
        True when an EXIF orientation other than "normal" was applied.
    """

    pixels: np.ndarray
    path: str | None
    format: str
    bit_depth: int
    mode: str
    original_size: tuple[int, int]
    exif_rotated: bool

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def is_gray(self) -> bool:
        return self.pixels.ndim == 2
