"""Shared pieces of ``cnnviz visualize``, ``top-images`` and ``adversarial``: the model
arguments (as ``cnnviz inspect`` takes them), the output folder, PNG tiles and grids, JSON."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from ..core.display import unit_image_to_rgb8 as to_uint8_rgb
from ..core.errors import CnnvizError


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="torchvision name (resnet18), file.py:Class, a TorchScript/.pt2/pickled "
                                 "model file, or demo")
    p.add_argument("--weights", metavar="FILE",
                   help="weights (.pth state_dict or .safetensors); for torchvision also 'pretrained' or 'random'")
    p.add_argument("--trust", action="store_true",
                   help="I trust this model file: allow formats that can run code (TorchScript, .pt2, pickles, .py)")
    p.add_argument("--trust-weights", action="store_true", help="I trust the --weights file too")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda or mps")
    p.add_argument("--model-args", metavar="JSON", help="constructor arguments for file.py:Class, as a JSON object")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write into (created if needed)")


def load_model_from_args(args):
    """The model, loaded exactly as ``cnnviz inspect`` loads it (per-file trust)."""
    from .inspect import load_model_for_cli

    return load_model_for_cli(args)


def output_folder(text: str) -> Path:
    if not str(text).strip():
        raise CnnvizError("--out is empty", "give the folder to write into, e.g. --out viz-out")
    out = Path(text)
    if out.exists() and not out.is_dir():
        raise CnnvizError(f"--out {out} is a file, not a folder", "give a folder to write into")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CnnvizError(f"cannot create {out}: {exc.strerror or exc}", "give a folder you can write to") from exc
    return out


def upscale(img: np.ndarray, min_side: int) -> np.ndarray:
    """Nearest-neighbour upscale by an integer factor so the shorter side is at least ``min_side``."""
    f = max(1, math.ceil(min_side / max(1, min(img.shape[:2]))))
    return np.repeat(np.repeat(img, f, axis=0), f, axis=1) if f > 1 else img


def fit_tile(img: np.ndarray, side: int) -> np.ndarray:
    """Resize (nearest) ``img`` to fit a ``side`` x ``side`` tile, centred on black."""
    h, w = img.shape[:2]
    s = side / max(h, w, 1)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    ys = np.minimum((np.arange(nh) / s).astype(int), h - 1)
    xs = np.minimum((np.arange(nw) / s).astype(int), w - 1)
    small = img[ys][:, xs]
    tile = np.zeros((side, side, 3), np.uint8)
    y0, x0 = (side - nh) // 2, (side - nw) // 2
    tile[y0:y0 + nh, x0:x0 + nw] = small
    return tile


def grid(tiles: list[np.ndarray], cols: int | None = None, pad: int = 2, fill: int = 40) -> np.ndarray:
    """Same-size ``(h, w, 3)`` uint8 tiles in a grid (near square), ``pad`` pixels apart."""
    n = len(tiles)
    cols = cols or max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    h, w = tiles[0].shape[:2]
    out = np.full((rows * h + (rows + 1) * pad, cols * w + (cols + 1) * pad, 3), fill, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[y:y + h, x:x + w] = t
    return out


def write_png(path: Path, img: np.ndarray) -> None:
    from ..core.images import save_png

    save_png(path, to_uint8_rgb(img))


def write_json(path: Path, data) -> None:
    from ..core.kernels import atomic_write

    text = json.dumps(data, indent=1, allow_nan=False) + "\n"
    try:
        atomic_write(path, lambda fh: fh.write(text), "w")
    except OSError as exc:
        raise CnnvizError(f"cannot write {path}: {exc.strerror or exc}",
                          "give a folder you can write to, with free space") from exc


def finite_or_none(v: float | None) -> float | None:
    return float(v) if v is not None and math.isfinite(float(v)) else None


class Progress:
    """``on_progress`` for a TaskState: a one-line progress display on a terminal's stderr."""

    def __init__(self, what: str):
        self.what = what
        self.tty = sys.stderr.isatty()
        self.last = -1

    def __call__(self, fraction: float, status: str) -> None:
        pct = int(fraction * 100)
        if self.tty and pct != self.last:
            self.last = pct
            print(f"\r{self.what}: {pct:3d}% {status[:70]:70s}", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.tty and self.last >= 0:
            print(file=sys.stderr)


def safe_name(text: str) -> str:
    import re

    return re.sub(r'[\\/:*?"<>|\s#\[\]]', "_", text) or "_"
