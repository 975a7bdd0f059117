"""Safe image loading: any PNG, JPEG, BMP, TIFF or WebP file becomes a float32 array in [0, 1].

Every frame cnnviz shows starts here (files, drag-and-drop, paste, webcam frames, the drawing
canvas), so this module promises one shape of result and one kind of error:

- :func:`load_image` decodes a file (or its bytes) to a :class:`LoadedImage` whose ``pixels``
  are float32, C-contiguous, ``(H, W)`` for gray sources and ``(H, W, 3)`` RGB otherwise.
  8-bit samples are divided by 255, 16-bit ones by 65535 (16-bit PNG and TIFF keep their
  precision, colour ones included: Pillow would cut those to 8 bits, so once Pillow has
  checked the header OpenCV decodes them). EXIF orientation is applied. Alpha is composited on white
  by default (``alpha="black"`` or ``"drop"`` for the others): a transparent logo then looks
  the way an image viewer shows it, and a convolution sees no hidden colour under alpha 0.
- :func:`image_from_array` normalises an in-memory array exactly the same way.
- :func:`probe_image` reads only the header, so the window can offer a downscale first.
- Anything else -- a missing file, a text file named ``.png``, a truncated download, a header
  that claims 30000 x 30000 pixels -- raises :class:`~cnnviz.core.errors.ImageLoadError` with
  the cause and the fix. Nothing is half-decoded: Pillow's "load truncated images" mode is
  never on here, so a cut-off file is an error, not a grey bottom half; a JPEG cut off and
  then closed with an end marker (which decodes "fine" with a grey fill) is caught by its
  exactly mid-grey last block. Animated or multi-page files give their first frame.

Size limits are ours, checked on the header *before* any pixel is decoded:

- more than ``max_pixels`` (default 100 MP) and no ``downscale_to``: :class:`ImageTooLarge`,
  which says how to proceed (open it downscaled, or raise the limit);
- more than ``BOMB_FACTOR`` x ``max_pixels``, or a PNG whose header claims far more pixels than
  its bytes could possibly hold: :class:`DecompressionBomb`, even when a downscale was asked.

Pillow's own ``MAX_IMAGE_PIXELS`` (a warning at 89 MP, an error at 179 MP) is switched off while
one of our loads runs -- our check has already run, with our message -- and
``LOAD_TRUNCATED_IMAGES`` is held False. Both module globals are restored when the last
concurrent load ends; nothing in cnnviz reads images through Pillow outside this module.

Only Pillow's PNG, JPEG (and its MPO variant), BMP, TIFF and WebP parsers are ever tried, so
Pillow plugins that shell out (EPS runs Ghostscript) can never be reached through a crafted file.

Memory: a full-size load holds one native-depth decode (Pillow keeps RGB as 4 bytes a pixel)
plus the float32 result; conversion runs in strips of at most ``_STRIP_BYTES`` so no second
full-size temporary is made. With ``downscale_to``, JPEGs are decoded already reduced (libjpeg's
DCT scaling via ``draft``), so a 20000 x 15000 photo never exists at full size; the other
formats are decoded once at full native depth and area-averaged strip by strip, and no
full-size float array is ever made.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Union

import cv2
import numpy as np
from PIL import Image, ImageFile

from cnnviz.core.errors import CnnvizError, ImageLoadError
from cnnviz.core.files import atomic_write, open_regular

__all__ = [
    "BOMB_FACTOR",
    "DEFAULT_MAX_PIXELS",
    "SUPPORTED_EXTENSIONS",
    "SUPPORTED_FORMATS",
    "DecompressionBomb",
    "ImageLoadError",
    "ImageSaveError",
    "ImageTooLarge",
    "LoadedImage",
    "image_from_array",
    "load_image",
    "probe_image",
    "rgb_to_gray",
    "save_png",
]

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


# --------------------------------------------------------------------------------------
# reading the source


@dataclass
class _Src:
    fp: io.BufferedIOBase
    path: str | None
    label: str
    head: bytes
    size: int


@contextlib.contextmanager
def _open_source(source: Source) -> Iterator[_Src]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = f"the image data ({len(data)} bytes)"
        if not data:
            raise ImageLoadError(
                "image data is empty (0 bytes)", "copy or drop the image again"
            )
        fp: io.BufferedIOBase = io.BytesIO(data)
        with fp:
            yield _Src(fp, None, label, data[:64], len(data))
        return
    if not isinstance(source, (str, os.PathLike)):
        raise ImageLoadError(
            f"cannot load an image from a {type(source).__name__}",
            "pass a file path or the file's bytes",
        )
    path = os.fsdecode(os.fspath(source))
    label = repr(path)
    # a FIFO, a device (/dev/zero) or a folder is refused before it is opened
    fh = open_regular(path, "image file", error=ImageLoadError)
    with fh:
        try:
            st = os.fstat(fh.fileno())
            if st.st_size == 0:
                raise ImageLoadError(
                    f"file is empty (0 bytes): {label}", "re-export or re-download it"
                )
            head = fh.read(64)
            fh.seek(0)
        except OSError as exc:
            raise ImageLoadError(
                f"cannot read {label}: {exc.strerror or exc}", "check the path and the disk"
            ) from None
        yield _Src(fh, path, label, head, st.st_size)


# Magic numbers of the formats we open, and of common files people mistake for images.
def _sniff(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"BM"):
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


_OTHER_KINDS: tuple[tuple[Callable[[bytes], bool], str, str], ...] = (
    (lambda h: h[:6] in (b"GIF87a", b"GIF89a"), "a GIF image", "convert it to PNG first"),
    (lambda h: h.startswith(b"%PDF"), "a PDF document", "export the page as PNG or JPEG"),
    (
        lambda h: h[4:8] == b"ftyp" and h[8:12] in (b"avif", b"avis"),
        "an AVIF image",
        "convert it to PNG or JPEG first",
    ),
    (
        lambda h: h[4:8] == b"ftyp" and h[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"hevc"),
        "a HEIC/HEIF photo",
        "export it as JPEG (most phones and photo apps can)",
    ),
    (lambda h: h[4:8] == b"ftyp", "a video or MP4-family file", "open it as a video source"),
    (lambda h: h.startswith(b"8BPS"), "a Photoshop document", "export it as PNG first"),
    (
        lambda h: h.startswith(b"\x00\x00\x00\x0cjP  ") or h.startswith(b"\xff\x4f\xff\x51"),
        "a JPEG 2000 image",
        "convert it to PNG first",
    ),
    (lambda h: h.startswith(b"\x00\x00\x01\x00"), "a Windows icon", "convert it to PNG first"),
    (
        lambda h: h.startswith(b"PK\x03\x04"),
        "a ZIP archive (or a file stored as one, such as a .pt model)",
        "unpack it, or load a model through the model inspector",
    ),
    (
        lambda h: h.startswith(b"\x1f\x8b"),
        "a gzip archive",
        "unpack it first",
    ),
)


def _text_snippet(head: bytes) -> str | None:
    """The file's first line if it looks like text, else None."""
    chunk = head.lstrip(b"\xef\xbb\xbf")
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(chunk) - 3:  # only a multibyte char cut at the end is forgiven
            return None
        text = chunk[: exc.start].decode("utf-8")
    if not text.strip() or any(not (c.isprintable() or c in "\t\r\n") for c in text):
        return None
    first = text.strip().splitlines()[0]
    return first[:24] + ("..." if len(first) > 24 else "")


def _not_an_image(src: _Src) -> ImageLoadError:
    head = src.head
    for test, kind, fix in _OTHER_KINDS:
        if test(head):
            return ImageLoadError(f"not a supported image: {src.label} is {kind}", fix)
    snippet = _text_snippet(head)
    if snippet is not None:
        if b"<svg" in head.lower():
            return ImageLoadError(
                f"not a supported image: {src.label} is an SVG (vector) file",
                "export it as PNG first",
            )
        return ImageLoadError(
            f"not an image: {src.label} is a text file (starts with {snippet!r})",
            f"pick a {_FORMAT_NAMES} image",
        )
    return ImageLoadError(
        f"not an image: {src.label} is not a {_FORMAT_NAMES} file "
        f"(it starts with bytes {head[:8].hex(' ')})",
        f"pick a {_FORMAT_NAMES} image",
    )


_FILE_OBJECT_REPR = re.compile(r"<_io\.\w+ (?:name=[^>]*)?>|<_io\.\w+ object at 0x[0-9a-f]+>")


def _corrupt(src: _Src, fmt: str | None, exc: BaseException | None = None) -> ImageLoadError:
    what = f"{_pretty_format(fmt)} " if fmt else ""
    detail = ""
    if exc is not None:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = _FILE_OBJECT_REPR.sub("", msg).strip() or type(exc).__name__  # Pillow quotes its file object
        detail = f" (decoder says: {msg[:120]})"
    return ImageLoadError(
        f"{what}image is truncated or corrupt: {src.label}{detail}",
        "re-export or re-download it",
    )


def _pretty_format(fmt: str | None) -> str:
    return {"WEBP": "WebP", "MPO": "JPEG"}.get(fmt or "", fmt or "")


def _format_of(im: Image.Image) -> str:
    return "JPEG" if im.format == "MPO" else str(im.format)


# --------------------------------------------------------------------------------------
# Pillow, held safely

_pillow_lock = threading.Lock()
_pillow_users = 0
_pillow_saved: tuple[int | None, bool] = (None, False)


@contextlib.contextmanager
def _pillow_guard() -> Iterator[None]:
    """Our size checks replace Pillow's; truncation is always an error. Restored afterwards."""
    global _pillow_users, _pillow_saved
    with _pillow_lock:
        if _pillow_users == 0:
            _pillow_saved = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
            Image.MAX_IMAGE_PIXELS = None  # type: ignore[assignment]
            ImageFile.LOAD_TRUNCATED_IMAGES = False
        _pillow_users += 1
    try:
        yield
    finally:
        with _pillow_lock:
            _pillow_users -= 1
            if _pillow_users == 0:
                Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = _pillow_saved


def _open_pillow(
    src: _Src, check_size: Callable[[int, int], object] | None
) -> ImageFile.ImageFile:
    """Parse the header only (no pixels), or raise a clear error."""
    fmt = _sniff(src.head)
    if fmt is None:
        raise _not_an_image(src)
    if fmt == "WEBP":
        # libwebp allocates the whole canvas when Pillow opens the file, so the size has to
        # be checked from the RIFF header before Pillow sees it.
        size = _webp_header_size(src.head)
        if size is None:
            raise _corrupt(src, "WEBP")
        if check_size is not None:
            check_size(*size)
    try:
        im = Image.open(src.fp, formats=list(SUPPORTED_FORMATS))
    except Exception as exc:  # noqa: BLE001 - UnidentifiedImageError, SyntaxError, struct.error...
        if _text_snippet(src.head) is not None:
            raise _not_an_image(src) from None
        raise _corrupt(src, fmt, exc) from None
    w, h = im.size
    if w < 1 or h < 1:
        im.close()
        raise _corrupt(src, fmt)
    return im


def _webp_header_size(head: bytes) -> tuple[int, int] | None:
    fourcc = head[12:16]
    try:
        if fourcc == b"VP8X":
            w = int.from_bytes(head[24:27], "little") + 1
            h = int.from_bytes(head[27:30], "little") + 1
        elif fourcc == b"VP8L":
            if head[20] != 0x2F:
                return None
            bits = int.from_bytes(head[21:25], "little")
            w = (bits & 0x3FFF) + 1
            h = ((bits >> 14) & 0x3FFF) + 1
        elif fourcc == b"VP8 ":
            if head[23:26] != b"\x9d\x01\x2a":
                return None
            w = int.from_bytes(head[26:28], "little") & 0x3FFF
            h = int.from_bytes(head[28:30], "little") & 0x3FFF
        else:
            return None
    except IndexError:
        return None
    return (w, h) if w > 0 and h > 0 else None


def _check_size(
    src: _Src, w: int, h: int, max_pixels: int, downscale_to: int | None
) -> tuple[int, int]:
    """Refuse what must not be decoded; return the size of the result, (width, height)."""
    if w * h > BOMB_FACTOR * max_pixels:
        raise DecompressionBomb(
            w, h, max_pixels, src.label, f"more than {BOMB_FACTOR}x the limit"
        )
    if src.head.startswith(b"\x89PNG") and _png_implausible(src, w, h):
        raise DecompressionBomb(
            w, h, max_pixels, src.label, f"the file holds only {src.size} bytes, far too few"
        )
    out_w, out_h = w, h
    if downscale_to is not None and max(w, h) > downscale_to:
        s = downscale_to / max(w, h)
        out_w, out_h = max(1, round(w * s)), max(1, round(h * s))
    if out_w * out_h > max_pixels:
        raise ImageTooLarge(w, h, max_pixels, src.label)
    return out_w, out_h


def _png_implausible(src: _Src, w: int, h: int) -> bool:
    """True when the PNG's IHDR claims more raw bytes than deflate could pack into the file."""
    head = src.head
    if len(head) < 26 or head[12:16] != b"IHDR":
        return False
    depth, colour = head[24], head[25]
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 1)
    raw = h * (1 + (w * channels * max(depth, 1) + 7) // 8)
    return raw > src.size * _DEFLATE_MAX_RATIO


def _check_tiff_layout(src: _Src, im: Image.Image, w: int, h: int) -> None:
    """Refuse a TIFF whose strip/tile tables cannot hold the pixels it declares.

    A 2.5 MB file can declare 312,500 tiles that all point at the same few bytes: decoded,
    that is an 80 MP image of garbage. The tables are read from the header only: the bytes
    they cover (overlaps counted once, clipped to the file) must be able to hold the decoded
    pixels — at most :data:`_DEFLATE_MAX_RATIO` times fewer when compressed, at least half
    when not — and tiles or strips may not share their data.
    """
    tags = getattr(im, "tag_v2", None)
    if tags is None:
        return
    offsets = tags.get(324) or tags.get(273)  # TileOffsets, else StripOffsets
    counts = tags.get(325) or tags.get(279)  # TileByteCounts, else StripByteCounts
    if offsets is None or counts is None:
        return
    offsets = [int(o) for o in (offsets if isinstance(offsets, (tuple, list)) else (offsets,))]
    counts = [int(c) for c in (counts if isinstance(counts, (tuple, list)) else (counts,))]
    if len(offsets) != len(counts):
        raise _tiff_implausible(src, w, h, f"it lists {len(offsets)} data blocks but {len(counts)} sizes")
    pairs = [(o, c) for o, c in zip(offsets, counts) if c > 0]
    if len(pairs) > 16 and len({o for o, _ in pairs}) < len(pairs):
        shared = len(pairs) - len({o for o, _ in pairs})
        raise _tiff_implausible(src, w, h, f"{shared:,} of its {len(pairs):,} data blocks point at the same "
                                           "bytes as another")
    covered = end_covered = 0
    for o, c in sorted(pairs):
        start, end = max(o, end_covered), min(o + c, src.size)
        if end > start:
            covered += end - start
            end_covered = end
    bands = max(1, len(im.getbands()))
    bits = tags.get(258) or (8,)
    bits_each = max(int(b) for b in (bits if isinstance(bits, (tuple, list)) else (bits,))) or 8
    decoded = w * h * bands * bits_each // 8
    compression = int(tags.get(259, 1) or 1)
    if covered == 0:
        raise _tiff_implausible(src, w, h, "its data blocks lie outside the file")
    if compression == 1 and covered < decoded // 2:
        raise _tiff_implausible(src, w, h, f"it is uncompressed but its data blocks hold only {covered:,} "
                                           f"of the {decoded:,} bytes its pixels need")
    if decoded > covered * _DEFLATE_MAX_RATIO:
        raise _tiff_implausible(src, w, h, f"its data blocks hold only {covered:,} bytes, far too few for "
                                           f"{decoded:,} bytes of pixels")


def _tiff_implausible(src: _Src, w: int, h: int, why: str) -> ImageLoadError:
    return ImageLoadError(f"TIFF image {src.label} is implausible: it declares {w}×{h} pixels but {why}",
                          "re-export or re-download it")


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
