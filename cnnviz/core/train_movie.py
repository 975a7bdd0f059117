"""The kernel movie of a training run (the first layer's kernels after every epoch): reading it,
one frame as an image, feature maps as tiles, and the GIF/MP4 export. Split from
:mod:`cnnviz.core.train`, which re-exports these names."""

from __future__ import annotations

import contextlib
import io
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from cnnviz.core.errors import CnnvizError


# ---------------------------------------------------------------------------------------------
# The kernel movie
# ---------------------------------------------------------------------------------------------


def load_movie(path: str | os.PathLike) -> dict[str, np.ndarray]:
    p = Path(path)
    if p.is_dir():
        p = p / "kernels.npz"
    try:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise CnnvizError(f"cannot read the kernel movie {p} ({exc})", "give a run folder's kernels.npz") from exc


def movie_frame_image(frame: np.ndarray, *, scale: int = 12, levels: float | None = None) -> np.ndarray:
    """One frame ``(O, I, kh, kw)`` as an RGB uint8 grid: grey 128 is 0, symmetric levels
    (``levels``: the absolute value shown as white; default the frame's own maximum). A
    3-input-channel layer shows colour filters; otherwise the mean over input channels."""
    w = np.asarray(frame, np.float32)
    o, i, kh, kw = w.shape
    lv = float(levels) if levels else float(np.abs(w).max() or 1.0)
    color = i == 3
    tiles = w.transpose(0, 2, 3, 1) if color else w.mean(axis=1)[..., None].repeat(3, axis=3)
    u8 = np.clip(tiles / lv * 127.5 + 127.5, 0, 255).astype(np.uint8)
    cols = int(math.ceil(math.sqrt(o)))
    rows = int(math.ceil(o / cols))
    pad = max(1, scale // 4)  # a visible gap between the tiles
    th, tw = kh * scale, kw * scale
    img = np.empty((rows * (th + pad) + pad, cols * (tw + pad) + pad, 3), np.uint8)
    img[:] = (60, 90, 140)  # the gaps: a blue grey no filter weight maps to
    for c in range(o):
        r, q = divmod(c, cols)
        tile = u8[c].repeat(scale, 0).repeat(scale, 1)
        img[pad + r * (th + pad):pad + r * (th + pad) + th, pad + q * (tw + pad):pad + q * (tw + pad) + tw] = tile
    return img


def tile_maps(maps: np.ndarray, *, scale: int = 2, max_maps: int = 64) -> np.ndarray:
    """Feature maps ``(C, H, W)`` as one RGB uint8 grid, each map on its own symmetric levels
    (grey 128 is 0, white the map's largest positive value, black its most negative)."""
    m = np.asarray(maps, np.float32)[:max_maps]
    lv = np.abs(m).reshape(len(m), -1).max(axis=1)
    lv[lv == 0] = 1.0
    w = (m / lv[:, None, None])[:, None]  # (C, 1, H, W): the movie tiler's layout
    return movie_frame_image(w, scale=scale, levels=1.0)


def export_movie(movie: str | os.PathLike, out: str | os.PathLike, *, fps: int = 8, scale: int = 12) -> Path:
    """The kernel movie as an animated GIF (Pillow) or MP4 (OpenCV), one grid per snapshot,
    all frames on the same levels so the filters' growth shows."""
    data = load_movie(movie)
    frames = data["frames"]
    if len(frames) == 0:
        raise CnnvizError("the kernel movie has no frames", "train for at least one step")
    lv = float(np.abs(frames).max() or 1.0)
    images = [movie_frame_image(f, scale=scale, levels=lv) for f in frames]
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix == ".gif":
        from PIL import Image

        pil = [Image.fromarray(im) for im in images]
        buf = io.BytesIO()
        pil[0].save(buf, format="GIF", save_all=True, append_images=pil[1:], duration=int(1000 / fps), loop=0)
        from cnnviz.core.train import atomic_write_bytes  # noqa: PLC0415 - the seam tests replace

        atomic_write_bytes(out, buf.getvalue())
    elif suffix == ".mp4":
        import cv2

        h, w = images[0].shape[:2]
        h2, w2 = h + h % 2, w + w % 2
        fd, tmp = tempfile.mkstemp(suffix=".mp4", dir=out.parent)
        os.close(fd)
        try:
            vw = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w2, h2))
            if not vw.isOpened():
                raise CnnvizError("OpenCV cannot write MP4 here", "export a GIF instead")
            for im in images:
                frame = np.zeros((h2, w2, 3), np.uint8)
                frame[:h, :w] = im[:, :, ::-1]
                vw.write(frame)
            vw.release()
            os.replace(tmp, out)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    else:
        raise CnnvizError(f"cannot export the movie as {suffix or 'a file without an extension'}",
                          "name the file .gif or .mp4")
    return out
