"""The parts a dataset-examples sweep is made of: the request, result and error types, the
per-channel top-k ranking (:func:`topk_update`, ties by sweep order), listing and reading the
items (image files, video frames), and the receptive-field boxes of the kept units. Split from
:mod:`cnnviz.core.dataset_examples`, which re-exports these names."""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnviz.core.errors import CnnvizError


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
DEFAULT_MAX_PIXELS = 40_000_000


class DatasetExamplesError(CnnvizError):
    """A sweep that cannot run (no images, a layer without spatial maps for crops...)."""


@dataclass(frozen=True)
class SweepRequest:
    """A dataset-examples sweep.

    Attributes
    ----------
    source:
        A folder (searched recursively for files), a video file, or a list of image paths.
    layers:
        Layer names (as :func:`cnnviz.core.capture.capture` names them).
    k:
        Entries kept per channel.
    batch_size:
        Images per forward pass.
    crops:
        Compute receptive-field boxes (needs layers with ``(C, H, W)`` maps).
    video_every:
        For a video: use every n-th frame.
    max_pixels:
        Larger images are skipped ("too large").
    """

    source: Any
    layers: tuple[str, ...]
    k: int = 9
    batch_size: int = 32
    crops: bool = True
    video_every: int = 1
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers:
            raise DatasetExamplesError("no layer chosen", "name at least one layer")
        if int(self.k) < 1:
            raise DatasetExamplesError(f"k must be at least 1, got {self.k}", "use e.g. --k 9")
        if int(self.batch_size) < 1:
            raise DatasetExamplesError(f"batch size must be at least 1, got {self.batch_size}", "use e.g. 32")
        if int(self.video_every) < 1:
            raise DatasetExamplesError("video_every must be at least 1", "use 1 for every frame")


@dataclass
class LayerExamples:
    """The top-k of every channel of one layer.

    ``values`` ``(C, k)`` float32 (``-inf`` where fewer than k images were seen), ``items``
    ``(C, k)`` int64 indices into :attr:`SweepResult.items` (``-1``: empty), ``units``
    ``(C, k, 2)`` the winning unit's ``(y, x)`` (``(0, 0)`` for a ``(N, C)`` layer), ``boxes``
    ``(C, k, 4)`` its receptive-field box ``(y0, x0, y1, x1)`` in model-input pixels (``-1``
    when not known), ``shape`` the layer output without batch.
    """

    layer: str
    values: np.ndarray
    items: np.ndarray
    units: np.ndarray
    boxes: np.ndarray
    shape: tuple[int, ...]

    @property
    def channels(self) -> int:
        return int(self.values.shape[0])


@dataclass
class SweepResult:
    items: list[str]  # every item of the sweep, in sweep order (paths, or "video#frame=N")
    layers: dict[str, LayerExamples]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (item, reason)
    processed: int = 0
    input_size: tuple[int, int] | None = None
    cached: bool = False
    resumed_from: int = 0
    key: str = ""
    pictures: dict[int, np.ndarray] = field(default_factory=dict)  # live sweeps: the top frames' pixels

    def entries(self, layer: str, channel: int) -> list[dict[str, Any]]:
        """The top-k of one channel as dicts (item path, value, unit, box), best first."""
        ex = self.layers[layer]
        out = []
        for j in range(ex.values.shape[1]):
            i = int(ex.items[channel, j])
            if i < 0:
                continue
            out.append({"item": self.items[i], "index": i, "value": float(ex.values[channel, j]),
                        "unit": [int(v) for v in ex.units[channel, j]],
                        "box": [int(v) for v in ex.boxes[channel, j]]})
        return out


# --------------------------------------------------------------------------- the ranking


def topk_update(values: torch.Tensor, items: torch.Tensor, units: torch.Tensor,
                new_values: torch.Tensor, new_items: torch.Tensor, new_units: torch.Tensor,
                k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Merge candidates into a per-channel top-k (see the module docstring for the ranking).

    ``values``/``items`` ``(C, m)``, ``units`` ``(C, m, 2)`` (the current top, any ``m <= k``);
    ``new_*`` the same for the candidates ``(C, n)``. Returns the new top ``(C, min(k, m + n))``.
    """
    v = torch.cat([values, new_values], 1)
    it = torch.cat([items, new_items], 1)
    un = torch.cat([units, new_units], 1)
    v = torch.where(torch.isnan(v), torch.full_like(v, -float("inf")), v)
    # empty slots (item -1) rank last: after every real entry, -inf included
    empty = it < 0
    order = torch.argsort(torch.where(empty, torch.full_like(it, torch.iinfo(torch.int64).max), it), dim=1,
                          stable=True)
    v, it, un, empty = (v.gather(1, order), it.gather(1, order),
                        un.gather(1, order[..., None].expand(-1, -1, 2)), empty.gather(1, order))
    key = torch.where(empty, torch.full_like(v, -float("inf")), v)
    order = torch.sort(key, dim=1, descending=True, stable=True).indices
    # -inf real entries must still precede empty ones: the stable sort after the index sort
    # keeps real (smaller index) before empty (index max) among equal keys.
    order = order[:, :k]
    return v.gather(1, order), it.gather(1, order), un.gather(1, order[..., None].expand(-1, -1, 2))


def _reduce(act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, C, H, W)`` or ``(N, C)`` → per image and channel the max ``(C, N)`` and its unit
    ``(C, N, 2)`` (first maximum in row-major order)."""
    if act.dim() == 2:
        vals = act.float().t()
        return vals, torch.zeros(*vals.shape, 2, dtype=torch.int64, device=act.device)
    n, c = act.shape[:2]
    w = act.shape[-1]
    flat = act.float().reshape(n, c, -1)
    flat = torch.where(torch.isnan(flat), torch.full_like(flat, -float("inf")), flat)
    vals, pos = flat.max(dim=2)
    units = torch.stack([pos // w, pos % w], dim=-1)
    return vals.t(), units.transpose(0, 1)


# --------------------------------------------------------------------------- items


def list_items(source: Any, video_every: int = 1) -> tuple[list[str], str]:
    """``(items, kind)``: the sorted files of a folder (``kind == "folder"``), the given list
    (``"list"``), or one entry per used frame of a video (``"video"``)."""
    if isinstance(source, (list, tuple)):
        return [str(p) for p in source], "list"
    p = Path(source)
    if p.is_dir():
        files = []
        for root, dirs, names in os.walk(p):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in names:
                if not name.startswith("."):
                    files.append(Path(root, name))
        files.sort(key=lambda f: f.relative_to(p).as_posix())
        return [str(f) for f in files], "folder"
    if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES:
        import cv2

        cap = cv2.VideoCapture(str(p))
        try:
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        finally:
            cap.release()
        if n <= 0:
            raise DatasetExamplesError(f"{p} has no frames that can be read", "choose another video file")
        return [f"{p}#frame={i}" for i in range(0, n, int(video_every))], "video"
    if not p.exists():
        raise DatasetExamplesError(f"{p} does not exist", "give a folder of images or a video file")
    raise DatasetExamplesError(f"{p} is neither a folder nor a video file", "give a folder of images or a video file")


def _fingerprint_items(items: list[str], kind: str) -> list:
    out = []
    for it in items:
        path = it.split("#frame=")[0] if kind == "video" else it
        try:
            st = os.stat(path)
            out.append([it, st.st_size, st.st_mtime_ns])
        except OSError:
            out.append([it, None, None])
    if kind == "video":
        out = out[:1] + [len(items)]
    return out


class VideoReader:
    def __init__(self, path: str):
        import cv2

        self.cv2 = cv2
        self.cap = cv2.VideoCapture(path)
        self.pos = 0

    def frame(self, index: int) -> np.ndarray | None:
        cv2 = self.cv2
        if index != self.pos:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            self.pos = index
        ok, bgr = self.cap.read()
        self.pos += 1
        if not ok or bgr is None:
            return None
        return np.ascontiguousarray(bgr[:, :, ::-1])

    def close(self):
        self.cap.release()


def _load(item: str, kind: str, video: VideoReader | None, max_pixels: int) -> np.ndarray:
    """Pixels of one item, or raises with the reason it is skipped."""
    from cnnviz.core.images import load_image

    if kind == "video":
        frame = video.frame(int(item.rsplit("#frame=", 1)[1]))
        if frame is None:
            raise DatasetExamplesError("the frame cannot be decoded")
        return frame
    return load_image(item, max_pixels=max_pixels).pixels


_RF_LOCK = threading.Lock()
_RF_CACHE: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def _receptive_field(model: Any, shape: tuple[int, ...], layer: str):
    """:func:`cnnviz.core.explain.receptive_field` of one layer, remembered per module and
    input shape (geometry does not change with the weights; working it out costs a traced
    forward pass, a noticeable share of a short sweep)."""
    from cnnviz.core.capture import module_of
    from cnnviz.core.explain import receptive_field

    module = module_of(model)
    with _RF_LOCK:
        per_module = _RF_CACHE.setdefault(module, {})
        if shape in per_module:
            return per_module[shape].get(layer)
    rfs = receptive_field(model, shape)
    with _RF_LOCK:
        per_module[shape] = rfs
    return rfs.get(layer)


def _boxes(rf: Any, items: np.ndarray, units: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``(C, k, 4)`` receptive-field boxes ``(y0, x0, y1, x1)`` in the model's input of each
    entry (``-1`` for empty slots); ``sizes[item]`` is that item's input ``(H, W)``."""
    from cnnviz.core.explain import theoretical_rf_box

    boxes = np.full((*items.shape, 4), -1, np.int64)
    valid = items >= 0
    if rf is not None and valid.any():  # few distinct (unit, input size) pairs, many entries: each box once
        at = np.concatenate([units[valid], sizes[items[valid]]], 1)
        distinct, which = np.unique(at, axis=0, return_inverse=True)
        known = np.array([theoretical_rf_box(rf, (int(u[0]), int(u[1])), (int(u[2]), int(u[3])))
                          for u in distinct], np.int64).reshape(len(distinct), 4)
        boxes[valid] = known[which.reshape(-1)]
    return boxes


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
