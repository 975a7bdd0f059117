"""Safe image loading: the right array or a clear error, for friendly and hostile files alike.

Every image here is made by the test itself, in ``tmp_path`` or in memory.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile, ImageOps

from cnnviz.core.errors import CnnvizError, ImageLoadError
from cnnviz.core.images import (
    DEFAULT_MAX_PIXELS,
    SUPPORTED_EXTENSIONS,
    DecompressionBomb,
    ImageSaveError,
    ImageTooLarge,
    LoadedImage,
    image_from_array,
    load_image,
    probe_image,
    rgb_to_gray,
    save_png,
)

REPO = Path(__file__).resolve().parents[2]
RNG = np.random.default_rng(1234)


# ----------------------------------------------------------------------------- helpers


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def noise_rgb(h: int = 48, w: int = 64) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def handmade_png(width: int, height: int, depth: int, colour: int, idat: bytes) -> bytes:
    """A PNG with a hand-written IHDR (valid CRC), so Pillow's header parse accepts it."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def quadrants(h: int = 64, w: int = 96) -> np.ndarray:
    """Four flat colours, so orientation survives JPEG and is easy to check."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[: h // 2, : w // 2] = (255, 0, 0)
    arr[: h // 2, w // 2 :] = (0, 255, 0)
    arr[h // 2 :, : w // 2] = (0, 0, 255)
    arr[h // 2 :, w // 2 :] = (255, 255, 255)
    return arr


def assert_valid(img: LoadedImage) -> None:
    p = img.pixels
    assert p.dtype == np.float32
    assert p.flags.c_contiguous
    assert p.ndim == 2 or (p.ndim == 3 and p.shape[2] == 3)
    assert p.size > 0
    assert np.isfinite(p).all()
    assert p.min() >= 0.0 and p.max() <= 1.0
    assert (img.height, img.width) == p.shape[:2]
    assert img.is_gray == (p.ndim == 2)


def peak_memory_growth_mb(script: str) -> dict:
    """Run ``script`` (defining ``run()``) in a fresh interpreter; report its peak-RSS growth.

    Uses Linux's VmHWM, which starts afresh at exec (``ru_maxrss`` would inherit the peak of
    this big pytest process and so could never fail).
    """
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux's /proc/self/status")
    code = textwrap.dedent(
        """
        import json
        import numpy, cv2, PIL.Image
        from cnnviz.core import images
        def peak_mb():
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        """
    ) + textwrap.dedent(script) + textwrap.dedent(
        """
        before = peak_mb()
        result = run()
        after = peak_mb()
        print(json.dumps({"growth_mb": after - before, "peak_mb": after, "result": result}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- hostile files


def test_zero_byte_file_is_refused_with_its_cause(tmp_path):
    path = write(tmp_path / "empty.png", b"")
    with pytest.raises(ImageLoadError, match=r"file is empty \(0 bytes\)") as err:
        load_image(path)
    assert "empty.png" in str(err.value)
    assert err.value.fix  # the message says what to do
    with pytest.raises(ImageLoadError, match="empty"):
        load_image(b"")


def test_text_file_renamed_png_is_called_a_text_file(tmp_path):
    path = write(tmp_path / "x.png", b"hello, I am a shopping list\nmilk\neggs\n")
    with pytest.raises(ImageLoadError) as err:
        load_image(path)
    msg = str(err.value)
    assert msg.startswith("not an image: ")
    assert "x.png" in msg and "is a text file" in msg and "starts with 'hello" in msg
    assert "PNG, JPEG, BMP, TIFF or WebP" in msg  # the fix names what does work


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"GIF89a\x10\x00\x10\x00\x80\x00\x00", "GIF image"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF document"),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", "ZIP archive"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg">', "SVG"),
        (b"\x00\x01\x02\x03\xfe\xfd\xfc\xfb" * 4, "starts with bytes 00 01 02 03"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "text file"),
    ],
)
def test_other_files_are_named_for_what_they_are(tmp_path, data, words):
    # The EPS case also proves Pillow's EPS plugin (which runs Ghostscript) is never tried.
    with pytest.raises(ImageLoadError, match=words):
        load_image(write(tmp_path / "picture.png", data))


@pytest.mark.parametrize("fraction", [0.25, 0.6, 0.97])
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "JPEG-progressive"])
def test_truncated_files_are_refused_never_half_grey(tmp_path, fmt, fraction):
    img = Image.fromarray(noise_rgb(120, 160))
    if fmt == "PNG":
        data = encode(img, "PNG")
        # keep IEND's 12 bytes out of the cut so the cut always lands in pixel data
        cut = int((len(data) - 12) * fraction)
    else:
        data = encode(img, "JPEG", quality=95, progressive=fmt.endswith("progressive"))
        cut = int(len(data) * fraction)
    path = write(tmp_path / "cut.img", data[:cut])
    with pytest.raises(ImageLoadError) as err:
        load_image(path)
    msg = str(err.value)
    assert "truncated or corrupt" in msg and "cut.img" in msg
    assert "re-export or re-download" in msg


@pytest.mark.parametrize("fraction", [0.3, 0.9])
def test_truncated_jpeg_closed_with_an_eoi_marker_is_refused(fraction):
    # Pillow decodes this without a word: libjpeg fills the missing part with flat grey.
    data = encode(Image.fromarray(noise_rgb(120, 160)), "JPEG", quality=95)
    patched = data[: int(len(data) * fraction)] + b"\xff\xd9"
    with Image.open(io.BytesIO(patched)) as im:
        assert (np.asarray(im)[-8:, -8:] == 128).all()  # the half-grey picture we refuse
    with pytest.raises(ImageLoadError, match="JPEG image is truncated") as err:
        load_image(patched)
    assert "re-export or re-download" in str(err.value)
    # an intact photo with mid-grey elsewhere is fine
    ok = noise_rgb(120, 160)
    ok[:16] = 128
    assert load_image(encode(Image.fromarray(ok), "JPEG", quality=95)).pixels.shape == (120, 160, 3)


def test_truncated_file_refused_even_if_someone_enabled_pillows_truncated_mode(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = encode(Image.fromarray(noise_rgb(120, 160)), "JPEG", quality=95)
    with pytest.raises(ImageLoadError, match="truncated or corrupt"):
        load_image(data[: len(data) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # their setting is back afterwards


def test_png_header_claiming_30000x30000_is_refused_before_decoding(tmp_path, monkeypatch):
    data = handmade_png(30000, 30000, 8, 2, zlib.compress(b"\x00" * 64))
    assert len(data) < 200
    path = write(tmp_path / "bomb.png", data)
    assert probe_image(path) == (30000, 30000, "PNG")  # Pillow's header parse accepts it

    decodes = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(
        ImageFile.ImageFile, "load", lambda self: decodes.append(self) or real_load(self)
    )
    for kwargs in ({}, {"downscale_to": 1000}):
        with pytest.raises(DecompressionBomb) as err:
            load_image(path, **kwargs)
        assert "image is 30000 x 30000 = 900 megapixels, over the 100 MP limit" in str(err.value)
        assert "bomb.png" in str(err.value)
        assert "more than 4x the limit" in str(err.value)
        assert (err.value.width, err.value.height, err.value.limit) == (30000, 30000, 10**8)
        assert not isinstance(err.value, ImageTooLarge)  # no pointless downscale offer
    # Even with the limit raised past 900 MP, 200 bytes cannot hold 2.7 GB of pixels.
    with pytest.raises(DecompressionBomb, match="far too few"):
        load_image(path, max_pixels=2_000_000_000)
    assert decodes == []  # refused on the header: no pixel was ever decoded


def test_bomb_refusal_peak_memory_is_far_under_1gb(tmp_path):
    data = handmade_png(30000, 30000, 8, 6, zlib.compress(b"\x00" * 64))
    path = write(tmp_path / "bomb.png", data)
    report = peak_memory_growth_mb(
        f"""
        def run():
            for kw in ({{}}, {{"downscale_to": 512}}, {{"max_pixels": 2_000_000_000}}):
                try:
                    images.load_image({str(path)!r}, **kw)
                except images.DecompressionBomb as exc:
                    pass
                else:
                    raise SystemExit("not refused")
            return "refused"
        """
    )
    assert report["result"] == "refused"
    assert report["growth_mb"] < 50
    assert report["peak_mb"] < 1024


def test_webp_header_claiming_a_huge_canvas_is_refused_before_pillow_allocates_it(tmp_path):
    # VP8X header: canvas 16384 x 16384 (268 MP); libwebp would allocate it on open.
    payload = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00"
    payload += (16383).to_bytes(3, "little") + (16383).to_bytes(3, "little")
    data = b"RIFF" + struct.pack("<I", 4 + len(payload)) + b"WEBP" + payload
    path = write(tmp_path / "huge.webp", data)
    assert probe_image(path) == (16384, 16384, "WEBP")
    with pytest.raises(ImageTooLarge) as err:
        load_image(path)
    assert (err.value.width, err.value.height) == (16384, 16384)
    with pytest.raises(DecompressionBomb):
        load_image(path, max_pixels=10_000_000, downscale_to=100)


def test_corrupt_png_crc_and_garbage_after_the_magic_are_clear_errors(tmp_path):
    good = bytearray(encode(Image.fromarray(noise_rgb()), "PNG"))
    good[40] ^= 0xFF  # inside IHDR/IDAT: CRC no longer matches
    with pytest.raises(ImageLoadError, match="truncated or corrupt"):
        load_image(bytes(good))
    with pytest.raises(ImageLoadError, match="PNG image is truncated or corrupt"):
        load_image(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)


def test_missing_file_folder_and_unreadable_file_are_image_load_errors(tmp_path, monkeypatch):
    with pytest.raises(ImageLoadError, match="does not exist"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageLoadError, match="is a folder"):
        load_image(tmp_path)
    locked = write(tmp_path / "locked.png", encode(Image.fromarray(noise_rgb()), "PNG"))
    if os.name == "posix" and os.geteuid() != 0:
        locked.chmod(0)
        try:
            with pytest.raises(ImageLoadError, match="permission denied"):
                load_image(locked)
        finally:
            locked.chmod(0o644)
    else:  # root reads anything (and Windows has no chmod 0): make open() refuse instead

        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        import cnnviz.core.files as files_mod

        monkeypatch.setattr(files_mod, "_open_fd", refuse)
        with pytest.raises(ImageLoadError, match="permission denied reading '.*locked.png'"):
            load_image(locked)
        monkeypatch.undo()
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "pipe.png"
        os.mkfifo(fifo)
        # opening a FIFO for reading would block until a writer appears: it is never opened
        with pytest.raises(ImageLoadError, match="named pipe .*not a regular file"):
            load_image(fifo)


def test_every_error_is_a_cnnviz_error_with_cause_and_fix(tmp_path):
    for source in (b"", b"hello", tmp_path / "nope.png", b"\x89PNG\r\n\x1a\n"):
        with pytest.raises(CnnvizError) as err:
            load_image(source)
        assert err.value.cause and err.value.fix


# ----------------------------------------------------------------------------- faithful decoding


def test_16bit_gray_ramp_png_keeps_every_value(tmp_path):
    ramp = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)  # Pillow writes I;16 as a 16-bit gray PNG
    img = load_image(path)
    assert (img.bit_depth, img.mode, img.format) == (16, "I;16", "PNG")
    assert img.pixels.shape == (256, 256)
    np.testing.assert_array_equal(img.pixels, (ramp / 65535).astype(np.float32))
    assert len(np.unique(img.pixels)) == 65536  # nothing collapsed to 8 bits


@pytest.mark.parametrize("ext", [".png", ".tiff"])
def test_16bit_colour_keeps_its_precision(tmp_path, ext):
    rgb = RNG.integers(0, 65536, (33, 47, 3), dtype=np.uint16)
    path = tmp_path / f"rgb16{ext}"
    assert cv2.imwrite(str(path), rgb[..., ::-1])  # OpenCV writes BGR
    img = load_image(path)
    assert img.bit_depth == 16
    np.testing.assert_array_equal(img.pixels, (rgb / 65535).astype(np.float32))


def test_16bit_rgba_png_composites_at_full_precision(tmp_path):
    rgba = RNG.integers(0, 65536, (20, 30, 4), dtype=np.uint16)
    path = tmp_path / "rgba16.png"
    assert cv2.imwrite(str(path), rgba[..., [2, 1, 0, 3]])
    img = load_image(path)
    f = rgba.astype(np.float64) / 65535
    expected = f[..., :3] * f[..., 3:] + (1 - f[..., 3:])
    assert img.bit_depth == 16
    np.testing.assert_allclose(img.pixels, expected, atol=2e-7, rtol=0)


def test_16bit_gray_tiff_and_float_tiff(tmp_path):
    ramp = np.arange(0, 65536, 7, dtype=np.uint16)[:9000].reshape(90, 100)
    Image.fromarray(ramp).save(tmp_path / "g16.tiff")
    img = load_image(tmp_path / "g16.tiff")
    np.testing.assert_array_equal(img.pixels, (ramp / 65535).astype(np.float32))

    values = np.linspace(-0.5, 1.5, 40 * 50, dtype=np.float32).reshape(40, 50)
    Image.fromarray(values).save(tmp_path / "f.tiff")
    img = load_image(tmp_path / "f.tiff")
    assert (img.mode, img.bit_depth) == ("F", 32)
    np.testing.assert_array_equal(img.pixels, np.clip(values, 0, 1))

    values[3, 4] = np.nan
    Image.fromarray(values).save(tmp_path / "nan.tiff")
    with pytest.raises(ImageLoadError, match="NaN"):
        load_image(tmp_path / "nan.tiff")


def test_cmyk_jpeg_becomes_the_right_rgb(tmp_path):
    # Pure inks: cyan, magenta, yellow, black and paper white.
    inks = {
        (255, 0, 0, 0): (0, 1, 1),
        (0, 255, 0, 0): (1, 0, 1),
        (0, 0, 255, 0): (1, 1, 0),
        (0, 0, 0, 255): (0, 0, 0),
        (0, 0, 0, 0): (1, 1, 1),
    }
    cmyk = np.zeros((32, 32 * len(inks), 4), np.uint8)
    for i, ink in enumerate(inks):
        cmyk[:, 32 * i : 32 * (i + 1)] = ink
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(cmyk, mode="CMYK").save(path, quality=95)
    img = load_image(path)
    assert (img.mode, img.format, img.pixels.shape) == ("CMYK", "JPEG", (32, 160, 3))
    for i, rgb in enumerate(inks.values()):
        centre = img.pixels[16, 32 * i + 16]
        np.testing.assert_allclose(centre, rgb, atol=0.04)


def test_rgba_png_composites_on_white_exactly_and_other_alpha_modes(tmp_path):
    rgba = RNG.integers(0, 256, (24, 40, 4), dtype=np.uint8)
    rgba[0, 0, 3] = 0
    rgba[0, 1, 3] = 255
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba).save(path)
    f = rgba.astype(np.float64) / 255
    colour, a = f[..., :3], f[..., 3:]

    white = load_image(path)
    assert white.mode == "RGBA" and white.pixels.shape == (24, 40, 3)
    np.testing.assert_allclose(white.pixels, colour * a + (1 - a), atol=1e-7, rtol=0)
    np.testing.assert_array_equal(white.pixels[0, 0], [1, 1, 1])  # transparent -> white
    np.testing.assert_allclose(white.pixels[0, 1], colour[0, 1], atol=1e-7)  # opaque untouched

    black = load_image(path, alpha="black")
    np.testing.assert_allclose(black.pixels, colour * a, atol=1e-7, rtol=0)
    dropped = load_image(path, alpha="drop")
    np.testing.assert_allclose(dropped.pixels, colour, atol=1e-7, rtol=0)
    with pytest.raises(ValueError, match="alpha"):
        load_image(path, alpha="green")


def test_gray_alpha_and_palette_transparency(tmp_path):
    la = RNG.integers(0, 256, (10, 12, 2), dtype=np.uint8)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    img = load_image(tmp_path / "la.png")
    g, a = la[..., 0] / 255, la[..., 1] / 255
    assert img.pixels.shape == (10, 12) and img.is_gray
    np.testing.assert_allclose(img.pixels, g * a + (1 - a), atol=1e-7, rtol=0)

    pal = Image.new("P", (4, 2))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putdata([0, 1, 0, 1, 1, 0, 1, 0])
    pal.save(tmp_path / "pal.png", transparency=1)  # index 1 (blue) is transparent
    img = load_image(tmp_path / "pal.png")
    assert img.mode == "P" and img.pixels.shape == (2, 4, 3)
    np.testing.assert_array_equal(img.pixels[0, 0], [1, 0, 0])
    np.testing.assert_array_equal(img.pixels[0, 1], [1, 1, 1])  # transparent blue -> white


def test_colour_key_transparency_and_16bit_gray_alpha(tmp_path):
    key = np.array([[0, 100, 200]], np.uint8)
    Image.fromarray(key).save(tmp_path / "key.png", transparency=100)
    np.testing.assert_array_equal(
        load_image(tmp_path / "key.png").pixels, np.float32([[0, 1, 200 / 255]])
    )

    gray = np.array([[0, 1000, 65535], [30000, 65535, 12345]], np.uint16)
    alpha = np.array([[65535, 0, 32768], [65535, 65535, 1]], np.uint16)
    raw = b"".join(b"\x00" + np.dstack([gray, alpha])[y].astype(">u2").tobytes() for y in range(2))
    path = write(tmp_path / "la16.png", handmade_png(3, 2, 16, 4, zlib.compress(raw)))
    img = load_image(path)
    g, a = gray / 65535, alpha / 65535
    assert img.is_gray and img.bit_depth == 16
    np.testing.assert_allclose(img.pixels, g * a + (1 - a), atol=1e-7, rtol=0)


def test_32bit_integer_tiff(tmp_path):
    small = np.array([[0, 1, 65535]], np.int32)  # 16-bit data in a 32-bit container
    Image.fromarray(small).save(tmp_path / "i16.tiff")
    img = load_image(tmp_path / "i16.tiff")
    assert (img.mode, img.bit_depth) == ("I", 16)
    np.testing.assert_array_equal(img.pixels, (small / 65535).astype(np.float32))
    big = np.array([[-5, 2**30, 2**31 - 1]], np.int32)
    Image.fromarray(big).save(tmp_path / "i32.tiff")
    img = load_image(tmp_path / "i32.tiff")
    assert img.bit_depth == 32
    np.testing.assert_allclose(img.pixels, [[0, 0.5, 1]], atol=1e-7)


def test_loaded_image_is_frozen():
    img = image_from_array(noise_rgb(2, 3))
    with pytest.raises(dataclasses.FrozenInstanceError):
        img.path = "elsewhere.png"  # type: ignore[misc]
    assert (img.height, img.width, img.is_gray) == (2, 3, False)


def _exif_with_orientation(value: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif


@pytest.mark.parametrize(
    ("orientation", "expected"),
    [(6, lambda a: np.rot90(a, -1)), (3, lambda a: a[::-1, ::-1])],
)
def test_exif_rotated_jpeg_is_shown_upright(tmp_path, orientation, expected):
    stored = quadrants(64, 96)
    path = tmp_path / f"rot{orientation}.jpg"
    Image.fromarray(stored).save(path, quality=95, exif=_exif_with_orientation(orientation))
    img = load_image(path)
    want = expected(stored).astype(np.float32) / 255
    assert img.exif_rotated and img.original_size == (96, 64)
    assert img.pixels.shape == want.shape
    # away from the quadrant borders JPEG keeps flat colours within a few levels
    inner = np.abs(img.pixels - want).max(axis=2) < 0.06
    assert inner.mean() > 0.9
    h, w = want.shape[:2]
    for y, x in [(h // 4, w // 4), (h // 4, 3 * w // 4), (3 * h // 4, w // 4), (h - 9, w - 9)]:
        np.testing.assert_allclose(img.pixels[y, x], want[y, x], atol=0.03)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillows_exif_transpose(tmp_path, orientation):
    stored = noise_rgb(5, 7)
    path = tmp_path / "o.png"
    Image.fromarray(stored).save(path, exif=_exif_with_orientation(orientation))
    with Image.open(path) as im:
        want = np.asarray(ImageOps.exif_transpose(im)).astype(np.float32) / 255
    img = load_image(path)
    np.testing.assert_array_equal(img.pixels, want)
    assert img.exif_rotated == (orientation != 1)
    assert img.original_size == (7, 5)


@pytest.mark.parametrize(
    ("fmt", "ext", "kw"),
    [
        ("PNG", ".png", {}),
        ("BMP", ".bmp", {}),
        ("TIFF", ".tiff", {}),
        ("TIFF", ".tif", {"compression": "tiff_lzw"}),
        ("WEBP", ".webp", {"lossless": True}),
    ],
)
def test_lossless_round_trips_are_exact(tmp_path, fmt, ext, kw):
    rgb = noise_rgb(37, 53)
    path = tmp_path / f"img{ext}"
    Image.fromarray(rgb).save(path, format=fmt, **kw)
    img = load_image(path)
    assert (img.format, img.bit_depth, img.path) == (fmt, 8, str(path))
    np.testing.assert_array_equal(img.pixels, rgb.astype(np.float32) / 255)
    np.testing.assert_array_equal(load_image(path.read_bytes()).pixels, img.pixels)
    assert load_image(path.read_bytes()).path is None


def test_jpeg_and_lossy_webp_round_trip_closely(tmp_path):
    smooth = cv2.GaussianBlur(noise_rgb(64, 64), (0, 0), 4)
    for fmt in ("JPEG", "WEBP"):
        img = load_image(encode(Image.fromarray(smooth), fmt, quality=95))
        assert img.format == fmt
        assert np.abs(img.pixels - smooth / 255).mean() < 0.01


def test_gray_sources_give_2d_and_colour_sources_give_3_channels(tmp_path):
    gray = RNG.integers(0, 256, (9, 11), dtype=np.uint8)
    cases = {
        "L": Image.fromarray(gray),
        "1": Image.fromarray(gray > 127),
        "RGB": Image.fromarray(np.dstack([gray] * 3)),
        "P": Image.fromarray(np.dstack([gray] * 3)).convert("P"),
    }
    shapes = {mode: load_image(encode(im, "PNG")).pixels.shape for mode, im in cases.items()}
    assert shapes == {"L": (9, 11), "1": (9, 11), "RGB": (9, 11, 3), "P": (9, 11, 3)}
    np.testing.assert_array_equal(
        load_image(encode(cases["1"], "PNG")).pixels, (gray > 127).astype(np.float32)
    )
    np.testing.assert_array_equal(
        load_image(encode(cases["L"], "BMP")).pixels, gray.astype(np.float32) / 255
    )


def test_content_decides_the_format_not_the_extension(tmp_path):
    rgb = noise_rgb(8, 8)
    path = write(tmp_path / "really_a_png.jpg", encode(Image.fromarray(rgb), "PNG"))
    img = load_image(path)
    assert img.format == "PNG"
    np.testing.assert_array_equal(img.pixels, rgb / np.float32(255))


def test_supported_extensions_cover_every_format():
    assert all(e.startswith(".") and e == e.lower() for e in SUPPORTED_EXTENSIONS)
    for ext in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"):
        assert ext in SUPPORTED_EXTENSIONS


def test_pillow_globals_are_restored_even_after_errors_and_in_threads(tmp_path):
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    good = encode(Image.fromarray(noise_rgb(200, 300)), "PNG")
    jobs = [good, b"hello", good[:500], good] * 6

    def attempt(data):
        try:
            return load_image(data).pixels.shape
        except ImageLoadError:
            return "error"

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(attempt, jobs))
    assert results.count((200, 300, 3)) == 12 and results.count("error") == 12
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES) == before


# ----------------------------------------------------------------------------- limits, downscale


@pytest.fixture(scope="module")
def img_big_photo(tmp_path_factory) -> dict[str, Path]:
    """A 6000 x 4000 picture (24 MP) as JPEG and PNG: smooth, so it encodes quickly."""
    folder = tmp_path_factory.mktemp("big")
    x, y = np.arange(6000, dtype=np.float32), np.arange(4000, dtype=np.float32)[:, None]
    bgr = np.empty((4000, 6000, 3), np.uint8)
    bgr[..., 0] = (x / 6000 * 255).astype(np.uint8)
    bgr[..., 1] = (y / 4000 * 255).astype(np.uint8)
    bgr[..., 2] = ((np.cos(y / 200) * np.sin(x / 300) + 1) * 127).astype(np.uint8)
    paths = {"JPEG": folder / "big.jpg", "PNG": folder / "big.png"}
    assert cv2.imwrite(str(paths["JPEG"]), bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert cv2.imwrite(str(paths["PNG"]), bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return paths


def test_over_the_limit_says_how_to_proceed(img_big_photo):
    with pytest.raises(ImageTooLarge) as err:
        load_image(img_big_photo["PNG"], max_pixels=10_000_000)
    e = err.value
    assert (e.width, e.height, e.limit) == (6000, 4000, 10_000_000)
    assert "image is 6000 x 4000 = 24 megapixels, over the 10 MP limit" in str(e)
    assert "downscaled" in str(e) and "raise the pixel limit" in str(e)
    assert isinstance(e, ImageLoadError)
    assert probe_image(img_big_photo["PNG"]) == (6000, 4000, "PNG")


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_downscale_gives_the_asked_size_and_the_right_picture(img_big_photo, fmt):
    img = load_image(img_big_photo[fmt], max_pixels=10_000_000, downscale_to=1000)
    assert img.pixels.shape == (667, 1000, 3)
    assert img.original_size == (6000, 4000)
    assert_valid(img)
    # the same picture as a full decode shrunk with area averaging
    full = cv2.imread(str(img_big_photo[fmt]), cv2.IMREAD_COLOR)[..., ::-1]
    ref = cv2.resize(full.astype(np.float32) / 255, (1000, 667), interpolation=cv2.INTER_AREA)
    if fmt == "PNG":  # strip-wise, yet exactly OpenCV's area averaging of the whole image
        np.testing.assert_allclose(img.pixels, ref, atol=2e-6, rtol=0)
    else:  # libjpeg's reduced decode differs a little from shrinking a full decode
        assert np.abs(img.pixels - ref).mean() < 0.005


@pytest.mark.slow
def test_downscale_memory_stays_bounded(img_big_photo):
    # Full size it is 24 MP: 96 MB as Pillow holds it, 288 MB as float32 RGB.
    script = """
        def run():
            img = images.load_image({path!r}, max_pixels=10_000_000, downscale_to=800)
            return list(img.pixels.shape)
        """
    jpeg = peak_memory_growth_mb(script.format(path=str(img_big_photo["JPEG"])))
    assert jpeg["result"] == [533, 800, 3]
    assert jpeg["growth_mb"] < 60  # libjpeg decoded it at 1/4 scale: never the full 96 MB
    png = peak_memory_growth_mb(script.format(path=str(img_big_photo["PNG"])))
    assert png["result"] == [533, 800, 3]
    assert png["growth_mb"] < 160  # one native decode (96 MB), never the 288 MB float array


def test_downscale_keeps_16bit_and_alpha_right(tmp_path):
    rgba = np.zeros((300, 200, 4), np.uint16)
    rgba[..., 0] = 65535  # red...
    rgba[:, :100, 3] = 65535  # ...opaque on the left half, transparent on the right
    path = tmp_path / "half.png"
    assert cv2.imwrite(str(path), rgba[..., [2, 1, 0, 3]])
    img = load_image(path, downscale_to=30)
    assert img.pixels.shape == (30, 20, 3)
    red = np.broadcast_to(np.float32([1, 0, 0]), (30, 10, 3))
    np.testing.assert_allclose(img.pixels[:, :10], red, atol=1e-6)
    np.testing.assert_allclose(img.pixels[:, 10:], 1.0, atol=1e-6)


def test_downscale_applies_orientation(tmp_path):
    stored = quadrants(400, 600)
    path = tmp_path / "rot.png"
    Image.fromarray(stored).save(path, exif=_exif_with_orientation(6))
    img = load_image(path, downscale_to=60)
    assert img.pixels.shape == (60, 40, 3)
    upright = np.rot90(stored, -1).astype(np.float32) / 255
    want = cv2.resize(upright, (40, 60), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(img.pixels, want, atol=1e-5)


def test_limit_boundaries_with_and_without_downscale():
    data = encode(Image.fromarray(noise_rgb(100, 100)), "PNG")  # 10 000 pixels
    assert load_image(data, max_pixels=10_000).pixels.shape == (100, 100, 3)  # at the limit
    with pytest.raises(ImageTooLarge):
        load_image(data, max_pixels=9_999)
    # a downscale may decode up to 4x the limit...
    assert load_image(data, max_pixels=2_500, downscale_to=50).pixels.shape == (50, 50, 3)
    # ...but not more: that is a bomb, whatever the downscale
    with pytest.raises(DecompressionBomb, match="more than 4x the limit"):
        load_image(data, max_pixels=2_499, downscale_to=50)
    # and the result itself must fit the limit
    with pytest.raises(ImageTooLarge):
        load_image(data, max_pixels=2_500, downscale_to=60)
    # smaller than the target already: returned untouched
    np.testing.assert_array_equal(
        load_image(data, downscale_to=100).pixels, load_image(data).pixels
    )


def test_bad_limits_are_programming_errors():
    with pytest.raises(ValueError):
        load_image(b"x", max_pixels=0)
    with pytest.raises(ValueError):
        load_image(b"x", downscale_to=-5)
    assert DEFAULT_MAX_PIXELS == 100_000_000


# ----------------------------------------------------------------------------- arrays


@pytest.mark.parametrize(
    ("dtype", "scale"),
    [(np.uint8, 255), (np.uint16, 65535), (np.float32, 1), (np.float64, 1)],
)
@pytest.mark.parametrize("channels", [None, 1, 3, 4])
def test_image_from_array_normalises_like_the_loader(dtype, scale, channels):
    h, w = 6, 9
    shape = (h, w) if channels is None else (h, w, channels)
    if scale == 1:
        arr = RNG.random(shape).astype(dtype)
    else:
        arr = RNG.integers(0, scale + 1, shape).astype(dtype)
    img = image_from_array(arr)
    assert_valid(img)
    f = arr.astype(np.float64) / scale
    if channels == 4:
        want = f[..., :3] * f[..., 3:] + (1 - f[..., 3:])
    elif channels == 1:
        want = f[..., 0]
    else:
        want = f
    assert img.pixels.shape == want.shape
    np.testing.assert_allclose(img.pixels, want, atol=2e-7, rtol=0)
    assert not np.shares_memory(img.pixels, arr)  # a camera may reuse its buffer
    assert img.path is None and img.format == "array" and img.original_size == (w, h)


def test_image_from_array_equals_loading_the_same_pixels_from_a_file():
    for arr in (noise_rgb(), RNG.integers(0, 256, (5, 6, 4), dtype=np.uint8)):
        from_file = load_image(encode(Image.fromarray(arr), "PNG"))
        np.testing.assert_array_equal(image_from_array(arr).pixels, from_file.pixels)


def test_image_from_array_clips_floats_and_refuses_nan_and_junk():
    arr = np.array([[-0.5, 0.25], [1.0, 7.0]], np.float32)
    np.testing.assert_array_equal(image_from_array(arr).pixels, [[0, 0.25], [1, 1]])
    np.testing.assert_array_equal(
        image_from_array(np.array([[True, False]])).pixels, [[1.0, 0.0]]
    )
    arr[0, 0] = np.nan
    with pytest.raises(ImageLoadError, match="NaN"):
        image_from_array(arr)
    junk = (np.zeros((4, 4), np.int32), np.zeros((4, 4, 5), np.uint8), np.zeros((0, 3)), [[1, 2]])
    for bad in junk:
        with pytest.raises(ImageLoadError):
            image_from_array(bad)


def test_image_from_array_accepts_non_contiguous_views():
    big = noise_rgb(20, 30)
    view = big[::2, ::-3]
    img = image_from_array(view)
    assert img.pixels.flags.c_contiguous
    np.testing.assert_array_equal(img.pixels, view / np.float32(255))


# ----------------------------------------------------------------------------- helpers for others


def test_rgb_to_gray_is_bt601():
    rgb = RNG.random((31, 17, 3)).astype(np.float32)
    gray = rgb_to_gray(rgb)
    want = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    assert gray.dtype == np.float32 and gray.shape == (31, 17)
    np.testing.assert_allclose(gray, want, atol=1e-6, rtol=0)
    np.testing.assert_allclose(rgb_to_gray(rgb[:, ::-1]), want[:, ::-1], atol=1e-6, rtol=0)
    np.testing.assert_allclose(rgb_to_gray(np.ones((2, 2, 3))), 1.0, atol=1e-6)
    plain = rgb[..., 0].copy()
    assert rgb_to_gray(plain) is plain
    with pytest.raises(ValueError):
        rgb_to_gray(np.zeros((2, 2, 4), np.float32))


def test_save_png_round_trips_and_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "out.png"
    for arr in (noise_rgb(), noise_rgb()[..., 0], RNG.integers(0, 256, (4, 5, 4), dtype=np.uint8)):
        save_png(path, arr)
        with Image.open(path) as im:
            np.testing.assert_array_equal(np.asarray(im), arr)
    if os.name == "posix":
        umask = os.umask(0o022)
        os.umask(umask)
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # like any new file
    old = path.read_bytes()

    def crash(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG half written")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", crash)
    with pytest.raises(ImageSaveError, match="No space left"):
        save_png(path, noise_rgb())
    assert path.read_bytes() == old  # the old export is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no temp file left


def test_save_png_errors():
    with pytest.raises(ImageSaveError, match="does not exist"):
        save_png("/nonexistent-folder-cnnviz/x.png", noise_rgb())
    with pytest.raises(ValueError):
        save_png("x.png", np.zeros((4, 4, 3), np.float32))


# ----------------------------------------------------------------------------- fuzz


def _seed_files() -> list[bytes]:
    rgb = noise_rgb(12, 16)
    rgba = RNG.integers(0, 256, (12, 16, 4), dtype=np.uint8)
    seeds = [
        encode(Image.fromarray(rgb), "PNG"),
        encode(Image.fromarray(rgba), "PNG"),
        encode(Image.fromarray(rgb[..., 0]), "PNG"),
        encode(Image.fromarray(rgb), "JPEG", quality=90),
        encode(Image.fromarray(rgb), "JPEG", progressive=True),
        encode(Image.fromarray(rgb), "BMP"),
        encode(Image.fromarray(rgb), "TIFF"),
        encode(Image.fromarray(rgb), "TIFF", compression="tiff_lzw"),
        encode(Image.fromarray(rgb), "WEBP", lossless=True),
        encode(Image.fromarray(rgb), "WEBP", quality=80),
        encode(Image.fromarray(rgb).convert("P"), "PNG"),
        encode(Image.fromarray(rgb).convert("P"), "BMP"),
    ]
    ok, buf = cv2.imencode(".png", RNG.integers(0, 65536, (12, 16, 3), dtype=np.uint16))
    seeds.append(buf.tobytes())
    return seeds


SEEDS = _seed_files()


def _check_contract(data: bytes) -> None:
    try:
        img = load_image(data, max_pixels=1_000_000)
    except ImageLoadError as err:
        assert str(err)
        return
    assert_valid(img)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=256))
def test_fuzz_random_bytes_never_escape_as_anything_but_image_load_error(data):
    _check_contract(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), seed=st.sampled_from(SEEDS), cut=st.one_of(st.none(), st.floats(0, 1)))
def test_fuzz_mutated_images_give_valid_pixels_or_image_load_error(data, seed, cut):
    blob = bytearray(seed)
    # The magic number is kept (random bytes cover it), so every mutation reaches a decoder:
    # header fields, palettes, EXIF, compressed pixel data alike.
    positions = st.integers(min_value=8, max_value=len(blob) - 1)
    for where, value in data.draw(st.lists(st.tuples(positions, st.integers(0, 255)), max_size=8)):
        blob[where] = value
    if cut is not None:
        blob = blob[: max(8, int(cut * len(blob)))]
    _check_contract(bytes(blob))
