"""Opening the source (regular files only, via core.files) and naming what it is from its first bytes."""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from PIL import Image

from cnnviz.core.errors import ImageLoadError
from cnnviz.core.files import open_regular
from cnnviz.core.images.common import Source, _FORMAT_NAMES

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
