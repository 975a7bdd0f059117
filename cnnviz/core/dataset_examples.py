"""Dataset examples (the Deep Visualization Toolbox's "top 9"): for every channel of a layer,
the inputs of a folder (or the frames of a video) that excite it most.

One pass over the data, batched (the next batch is decoded on a second thread while the model
runs the current one): each batch's activations are reduced at once to one number
per image and channel — the channel's **maximum over its map** (the strongest unit; for a
``(N, C)`` layer the value itself) and where it is — and merged into a running top-k per
channel. Memory is bounded by ``k x channels`` entries per layer; no activation outlives its
batch.

Ranking and ties (deterministic, whatever the batch size, the order images are read in, or
a resume): higher value first; equal values rank by the image's position in the sweep (files
sorted by their path relative to the folder, compared as strings; video frames by frame
number), the earlier first. Within an image the strongest unit is the first maximum in
row-major order (smallest y, then smallest x). NaN activations count as -inf (never chosen
over a number). An image contributes at most one entry per channel.

The receptive-field crop of an entry is the input box the winning unit sees
(:func:`cnnviz.core.explain.theoretical_rf_box`), in the coordinates of the model input.

Files that cannot be used — not an image, corrupt, over the size limit, unreadable — are
skipped, counted and listed with the reason; the sweep goes on.

Resumable and cached: the state (top-k so far + how many items are done) is saved atomically
every ``checkpoint_every`` batches and when cancelled, keyed by the model's weights, the
layers, k, the preprocessing and the folder's content (every file's relative path, size and
modification time); running the same sweep again continues from there, and a finished sweep
is returned from the cache at once.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnviz.core.errors import CnnvizError
from cnnviz.core.taskstate import TaskState

from .dataset_examples_parts import (  # noqa: E402,F401 - moved to dataset_examples_parts.py, importable from here
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    DEFAULT_MAX_PIXELS,
    DatasetExamplesError,
    SweepRequest,
    LayerExamples,
    SweepResult,
    topk_update,
    _reduce,
    list_items,
    _fingerprint_items,
    VideoReader,
    _load,
    _RF_LOCK,
    _RF_CACHE,
    _receptive_field,
    _boxes,
    _reason,
)

__all__ = [
    "DatasetExamplesError",
    "LayerExamples",
    "SweepRequest",
    "SweepResult",
    "list_items",
    "run",
    "topk_update",
]


# --------------------------------------------------------------------------- run


def sweep_key(model: Any, request: SweepRequest, preprocessing, items: list[str], kind: str) -> str:
    from cnnviz.core.vizcache import entry_key, model_fingerprint

    return entry_key(v=1, model=model_fingerprint(model), layers=list(request.layers), k=request.k,
                     crops=request.crops, pp=preprocessing.to_dict(), kind=kind, max_pixels=request.max_pixels,
                     items=_fingerprint_items(items, kind))


def _save(key: str, layers: dict[str, LayerExamples], meta: dict[str, Any], folder, sizes: np.ndarray) -> None:
    from cnnviz.core.vizcache import write_entry

    arrays = {"sizes": sizes}
    for i, ex in enumerate(layers.values()):
        arrays[f"values_{i}"] = ex.values
        arrays[f"items_{i}"] = ex.items
        arrays[f"units_{i}"] = ex.units
        arrays[f"boxes_{i}"] = ex.boxes
    try:
        write_entry("top-images", key, arrays, meta, folder)
    except OSError:
        pass


def _restore(key: str, request: SweepRequest, folder
             ) -> tuple[dict[str, LayerExamples], dict, dict[str, np.ndarray]] | None:
    from cnnviz.core.vizcache import read_entry

    hit = read_entry("top-images", key, folder)
    if hit is None:
        return None
    arrays, meta = hit
    try:
        layers = {}
        for i, name in enumerate(request.layers):
            layers[name] = LayerExamples(name, arrays[f"values_{i}"], arrays[f"items_{i}"], arrays[f"units_{i}"],
                                         arrays[f"boxes_{i}"], tuple(meta["shapes"][i]))
        return layers, meta, arrays
    except (KeyError, IndexError, TypeError):
        return None


def run(model: Any, request: SweepRequest, state: TaskState | None = None, *, preprocessing=None,
        cache: bool = True, cache_folder=None, checkpoint_every: int = 20) -> SweepResult:
    """Sweep ``request.source`` through ``model`` once and keep the top-k of every channel.

    Progress (with the ETA in the status line) and cancellation go through ``state``; a
    cancelled sweep saves its state for a resume and raises :class:`cnnviz.core.taskstate.Cancelled`.
    """
    from cnnviz.core.capture import Recorder

    state = state or TaskState()
    pp = preprocessing if preprocessing is not None else getattr(model, "preprocessing", None)
    if pp is None:
        from cnnviz.core.models import default_preprocessing

        pp = default_preprocessing(getattr(model, "input_channels", None))
    items, kind = list_items(request.source, request.video_every)
    if not items:
        raise DatasetExamplesError(f"{request.source} holds no files", "give a folder with images in it")
    key = sweep_key(model, request, pp, items, kind) if cache else ""
    k = int(request.k)

    layers: dict[str, LayerExamples] = {}
    skipped: list[tuple[str, str]] = []
    start = 0
    input_size = None
    restored_arrays: dict[str, np.ndarray] = {}
    if cache:
        restored = _restore(key, request, cache_folder)
        if restored is not None:
            layers, meta, restored_arrays = restored
            skipped = [tuple(s) for s in meta.get("skipped", [])]
            start = int(meta.get("done", 0))
            input_size = tuple(meta["input_size"]) if meta.get("input_size") else None
            if start >= len(items):
                state.set_progress(1.0, "from the cache")
                return SweepResult(items, layers, skipped, int(meta.get("processed", 0)), input_size, cached=True,
                                   resumed_from=start, key=key)
    processed = int(meta.get("processed", 0)) if layers else 0
    resumed_from = start

    # running top-k on the model's device
    tops: dict[str, list[torch.Tensor]] = {}
    rfs: dict[str, Any] = {}
    shapes: dict[str, tuple[int, ...]] = {name: ex.shape for name, ex in layers.items()}

    def init_layer(name: str, act: torch.Tensor) -> None:
        if act.dim() not in (2, 4):
            raise DatasetExamplesError(
                f"layer {name!r} has output shape {tuple(act.shape[1:])}, neither (C, H, W) maps nor a (C,) vector",
                "choose a convolutional or linear layer")
        if request.crops and act.dim() != 4:
            raise DatasetExamplesError(
                f"layer {name!r} has no spatial maps (output shape {tuple(act.shape[1:])}), so there is no "
                "receptive-field crop to show", "choose a convolutional layer, or switch crops off (--no-crops)")
        shapes[name] = tuple(act.shape[1:])
        c = act.shape[1]
        if name in layers:  # resuming
            ex = layers[name]
            tops[name] = [torch.from_numpy(ex.values).to(act.device), torch.from_numpy(ex.items).to(act.device),
                          torch.from_numpy(ex.units).to(act.device)]
        else:
            tops[name] = _empty_top(c, act.device)

    def snapshot() -> dict[str, LayerExamples]:
        out = {}
        for name in request.layers:
            if name not in tops:
                if name in layers:
                    out[name] = layers[name]
                continue
            v, it, un = (t.cpu() for t in tops[name])
            c = v.shape[0]
            pad = k - v.shape[1]
            values = np.concatenate([v.numpy().astype(np.float32), np.full((c, pad), -np.inf, np.float32)], 1)
            its = np.concatenate([it.numpy(), np.full((c, pad), -1, np.int64)], 1)
            uns = np.concatenate([un.numpy(), np.zeros((c, pad, 2), np.int64)], 1)
            boxes = _boxes(rfs.get(name), its, uns, sizes)
            out[name] = LayerExamples(name, values, its, uns, boxes, shapes[name])
        return out

    def save(done: int) -> None:
        nonlocal layers
        if not cache:
            return
        layers = snapshot()
        _save(key, layers, {"done": done, "processed": processed, "skipped": [list(s) for s in skipped],
                            "input_size": list(input_size) if input_size else None,
                            "shapes": [list(shapes.get(n, ())) for n in request.layers], "items": len(items)},
              cache_folder, sizes)

    sizes = np.zeros((len(items), 2), np.int64)  # each item's model-input (H, W), for the crops
    if cache and layers and "sizes" in restored_arrays:
        sizes[:] = restored_arrays["sizes"][: len(items)]
    def take(members, shape, result) -> int:
        """Merge one forward pass of ``members`` ``[(item index, input), ...]`` into the tops."""
        nonlocal input_size
        idx = torch.tensor([i for i, _ in members], dtype=torch.int64)
        if input_size is None:
            input_size = (int(shape[-2]), int(shape[-1]))
        sizes[idx.numpy()] = (int(shape[-2]), int(shape[-1]))
        for name in request.layers:
            act = result.layer(name).tensor
            if name not in tops:
                init_layer(name, act)
                if request.crops and name not in rfs:
                    rfs[name] = _receptive_field(model, (1, *shape[1:]), name)
            vals, units = _reduce(act)
            new_items = idx.to(act.device)[None].expand(vals.shape[0], -1)
            tops[name] = list(topk_update(*tops[name], vals, new_items, units, k))
        return len(members)

    video = VideoReader(items[0].split("#frame=")[0]) if kind == "video" else None
    recorder = Recorder(model, list(request.layers))
    t0 = time.perf_counter()
    bs = int(request.batch_size)
    batches = 0

    def load_chunk(chunk: range):
        """Decode and preprocess one chunk: ``(groups by input shape, skipped)``. Runs on the
        prefetch thread while the model runs the previous chunk."""
        groups: dict[tuple, list[tuple[int, torch.Tensor]]] = {}
        bad: list[tuple[str, str]] = []
        for i in chunk:
            try:
                pixels = _load(items[i], kind, video, request.max_pixels)
                x = pp.apply(pixels)
            except (CnnvizError, OSError, ValueError, MemoryError) as exc:
                bad.append((items[i], _reason(exc)))
                continue
            groups.setdefault(tuple(x.shape), []).append((i, x))
        return groups, bad

    def chunk_at(p: int) -> range:
        return range(p, min(p + bs, len(items)))

    prefetch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cnnviz-sweep-decode")
    try:
        pos = start
        upcoming = prefetch.submit(load_chunk, chunk_at(pos)) if pos < len(items) else None
        while pos < len(items):
            if state.cancelled:
                save(pos)
                state.check()
            chunk = chunk_at(pos)
            groups, bad = upcoming.result()
            upcoming = prefetch.submit(load_chunk, chunk_at(chunk.stop)) if chunk.stop < len(items) else None
            skipped.extend(bad)
            for shape, members in groups.items():
                try:
                    result = recorder.run(torch.cat([x for _, x in members]))
                except CnnvizError as exc:
                    if "no layer named" in str(exc):
                        raise
                    if len(members) == 1:
                        skipped.append((items[members[0][0]], _reason(exc)))
                        continue
                    # one bad image must not cost the others: run them one by one
                    for member in members:
                        try:
                            one = recorder.run(member[1])
                        except CnnvizError as exc1:
                            skipped.append((items[member[0]], _reason(exc1)))
                            continue
                        processed += take([member], shape, one)
                    continue
                processed += take(members, shape, result)
            pos = chunk.stop
            batches += 1
            done = pos - resumed_from
            elapsed = time.perf_counter() - t0
            eta = elapsed * (len(items) - pos) / max(done, 1)
            state.set_progress(pos / len(items), f"{pos}/{len(items)} items, {len(skipped)} skipped, ETA {eta:.0f} s")
            if cache and batches % checkpoint_every == 0:
                save(pos)
    finally:
        prefetch.shutdown(wait=True, cancel_futures=True)  # the decoder is done before the video closes
        recorder.close()
        if video is not None:
            video.close()
    if processed == 0:
        raise DatasetExamplesError(f"none of the {len(items)} files could be used ({skipped[0][1] if skipped else ''})",
                                   "give a folder with images the model can read")
    final = snapshot()
    if cache:
        layers = final
        save(len(items))
    return SweepResult(items, final, skipped, processed, input_size, cached=False, resumed_from=resumed_from, key=key)


def _empty_top(channels: int, device) -> list[torch.Tensor]:  # noqa: ANN001 - a torch device
    """An empty per-channel top: values ``(C, 0)``, items ``(C, 0)``, units ``(C, 0, 2)``."""
    return [torch.empty(channels, 0, device=device), torch.empty(channels, 0, dtype=torch.int64, device=device),
            torch.empty(channels, 0, 2, dtype=torch.int64, device=device)]


def crop_of(result: SweepResult, layer: str, channel: int, rank: int, preprocessing, *, pad_to_square: bool = True
            ) -> np.ndarray | None:
    """The receptive-field crop of one entry as ``(h, w, C)`` float32 in [0, 1] from the
    preprocessed input (mean/std undone), or ``None`` for an empty slot."""
    ex = result.layers[layer]
    i = int(ex.items[channel, rank])
    if i < 0:
        return None
    x = item_input(result.items[i], preprocessing)
    y0, x0, y1, x1 = (int(v) for v in ex.boxes[channel, rank])
    if y0 < 0:
        y0, x0, y1, x1 = 0, 0, x.shape[0], x.shape[1]
    return x[y0:y1, x0:x1]


def item_input(item: str, preprocessing) -> np.ndarray:
    """An item as the model sees it, ``(H, W, C)`` float32 in [0, 1] (mean/std undone)."""
    if "#frame=" in item and not Path(item).exists():
        reader = VideoReader(item.split("#frame=")[0])
        try:
            pixels = reader.frame(int(item.rsplit("#frame=", 1)[1]))
        finally:
            reader.close()
    else:
        from cnnviz.core.images import load_image

        pixels = load_image(item).pixels
    return pixels_input(pixels, preprocessing)


def run_stream(model: Any, frames, layers, k: int = 9, state: TaskState | None = None, *, preprocessing=None,
               max_frames: int | None = None, crops: bool = True) -> SweepResult:
    """The top-k of every channel over a stream of frames (a live source), one frame at a time.

    ``frames`` is an iterator of ``(key, pixels)`` (``pixels`` ``(H, W[, C])`` uint8 as
    :class:`cnnviz.core.sources.Frame` carries them). The ranking is :func:`topk_update`, as in
    :func:`run`. Live frames are not cached on disk (a live stream cannot be replayed, so there
    is nothing to resume): the result keeps the pictures of the frames still in some channel's
    top-k in :attr:`SweepResult.pictures` (index → pixels), and drops every other frame at once,
    so memory stays bounded by ``k`` × channels pictures. Stops after ``max_frames`` frames, at
    the end of the iterator, or on ``state.cancel()`` (then the frames so far are the result,
    no exception). With ``crops``, each kept entry of a layer with maps has its receptive-field
    box in the model's input (as :func:`run` gives; :func:`crop_of`'s picture is
    ``pixels_input(pictures[i], preprocessing)``); vector layers' boxes are ``-1`` (whole frame).
    """
    from cnnviz.core.capture import Recorder

    layers = tuple(layers)
    if not layers:
        raise DatasetExamplesError("no layer chosen", "name at least one layer")
    if int(k) < 1:
        raise DatasetExamplesError(f"k must be at least 1, got {k}", "use e.g. 9")
    state = state or TaskState()
    pp = preprocessing if preprocessing is not None else getattr(model, "preprocessing", None)
    if pp is None:
        from cnnviz.core.models import default_preprocessing

        pp = default_preprocessing(getattr(model, "input_channels", None))
    keys: list[str] = []
    pictures: dict[int, np.ndarray] = {}
    skipped: list[tuple[str, str]] = []
    tops: dict[str, list[torch.Tensor]] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    input_size = None
    sizes: dict[int, tuple[int, int]] = {}  # the kept frames' model-input (H, W), for the boxes
    rfs: dict[str, Any] = {}
    recorder = Recorder(model, list(layers))
    try:
        for key, pixels in frames:
            if state.cancelled or (max_frames is not None and len(keys) >= max_frames):
                break
            i = len(keys)
            keys.append(str(key))
            try:
                x = pp.apply(np.asarray(pixels))
                result = recorder.run(x)
            except (CnnvizError, ValueError) as exc:
                skipped.append((str(key), _reason(exc)))
                continue
            if input_size is None:
                input_size = (int(x.shape[-2]), int(x.shape[-1]))
            for name in layers:
                act = result.layer(name).tensor
                if act.dim() not in (2, 4):
                    raise DatasetExamplesError(
                        f"layer {name!r} has output shape {tuple(act.shape[1:])}, neither (C, H, W) maps nor a (C,) "
                        "vector", "choose a convolutional or linear layer")
                if crops and act.dim() == 4 and name not in rfs:
                    rfs[name] = _receptive_field(model, (1, *x.shape[1:]), name)
                if name not in tops:
                    c = act.shape[1]
                    shapes[name] = tuple(act.shape[1:])
                    tops[name] = _empty_top(c, act.device)
                vals, units = _reduce(act)
                new_items = torch.full((vals.shape[0], 1), i, dtype=torch.int64, device=act.device)
                tops[name] = list(topk_update(*tops[name], vals, new_items, units, int(k)))
            pictures[i] = np.array(pixels, copy=True)
            sizes[i] = (int(x.shape[-2]), int(x.shape[-1]))
            kept = set()
            for v_it_un in tops.values():
                kept.update(int(j) for j in v_it_un[1].flatten().tolist())
            for j in [j for j in pictures if j not in kept]:
                del pictures[j]
                sizes.pop(j, None)
            total = max_frames or 0
            state.set_progress(len(keys) / total if total else 0.0, f"{len(keys)} frames")
    finally:
        recorder.close()
    out: dict[str, LayerExamples] = {}
    size_of = np.zeros((max(len(keys), 1), 2), np.int64)
    for j, hw in sizes.items():
        size_of[j] = hw
    for name in layers:
        if name not in tops:
            continue
        v, it, un = (t.cpu() for t in tops[name])
        c, pad = v.shape[0], int(k) - v.shape[1]
        its = np.concatenate([it.numpy(), np.full((c, pad), -1, np.int64)], 1)
        uns = np.concatenate([un.numpy(), np.zeros((c, pad, 2), np.int64)], 1)
        boxes = _boxes(rfs.get(name), its, uns, size_of)  # as run() does: one field, each item's size
        out[name] = LayerExamples(
            name, np.concatenate([v.numpy().astype(np.float32), np.full((c, pad), -np.inf, np.float32)], 1),
            its, uns, boxes, shapes[name])
    return SweepResult(keys, out, skipped, len(keys) - len(skipped), input_size, pictures=pictures)


def frames_of(source: Any, state: TaskState | None = None, poll_s: float = 0.005):
    """``(key, pixels)`` of each new frame of a running :class:`cnnviz.core.sources.FrameSource`
    (polled with ``snapshot()``), until ``state`` is cancelled."""
    import threading

    wait = threading.Event()
    last = None
    while state is None or not state.cancelled:
        f = source.snapshot()
        if f is not None and f.id != last:
            last = f.id
            yield f"live frame {f.id}", f.pixels
        else:
            wait.wait(poll_s)


def pixels_input(pixels: np.ndarray, preprocessing) -> np.ndarray:
    """Pixels as the model sees them, ``(H, W, C)`` float32 in [0, 1] (mean/std undone)."""
    t = preprocessing.apply(pixels)[0]
    mean = torch.tensor(preprocessing.mean).view(-1, 1, 1)
    std = torch.tensor(preprocessing.std).view(-1, 1, 1)
    t = (t * std + mean).clamp(0, 1)
    if preprocessing.color == "bgr":
        t = t.flip(0)
    return t.permute(1, 2, 0).numpy()
