"""Pillow, held safely, and every check made on the header before a pixel is decoded:
size limits, decompression bombs, WebP canvases, TIFF strip/tile tables that lie."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from PIL import Image, ImageFile

from cnnviz.core.errors import ImageLoadError
from cnnviz.core.images.common import (
    BOMB_FACTOR, DecompressionBomb, ImageTooLarge, SUPPORTED_FORMATS, _DEFLATE_MAX_RATIO,
)
from cnnviz.core.images.sniff import _corrupt, _not_an_image, _sniff, _Src, _text_snippet

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
