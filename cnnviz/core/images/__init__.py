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

from cnnviz.core.images.common import (
    BOMB_FACTOR, DEFAULT_MAX_PIXELS, SUPPORTED_EXTENSIONS, SUPPORTED_FORMATS, DecompressionBomb, ImageLoadError,
    ImageSaveError, ImageTooLarge, LoadedImage, Source)  # noqa: F401 - Source: the type of what load_image takes
from cnnviz.core.images.load import image_from_array, load_image, probe_image, rgb_to_gray, save_png

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
