"""Helpers of :mod:`cnnviz.core.inspect_engine` that need no engine state: a layer's output
as channel maps and their statistics, a layer's extras (class tokens, a table), an ONNX model's
Conv weights, the model input as a picture, error text and atomic export writes.

Nothing here imports torch at module level and nothing touches a widget.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.core.inspect_results import ChannelStats, LayerExtras

__all__ = ["STATS_CSV_COLUMNS", "TABLE_ROWS", "as_channel_maps"]

#: Rows of a non-batch tensor (boxes, anchors) the layer's table shows at most.
TABLE_ROWS = 500

STATS_CSV_COLUMNS = ("index", "name", "type", "shape", "params", "receptive_field", "min", "max",
                     "mean", "std", "zeros_pct", "channels", "dead_channels", "layout", "map_shape")


def _error_text(exc: BaseException) -> str:
    if hasattr(exc, "cause"):
        return str(exc)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:400]


def as_channel_maps(t):
    """One layer's output (no batch dimension) as ``(C, h, w)`` maps, one per grid tile:
    a ``(C, H, W)`` map as it is, a vector of ``N`` features as ``N`` tiles of 1×1, a 2-D
    output as one map, more dimensions folded into channels."""
    if t.dim() == 0:
        return t.reshape(1, 1, 1)
    if t.dim() == 1:
        return t.reshape(-1, 1, 1)
    if t.dim() == 2:
        return t.unsqueeze(0)
    if t.dim() > 3:
        return t.reshape(-1, *t.shape[-2:])
    return t


def _channel_stats(maps) -> ChannelStats:
    """Per-map statistics over the finite values (a vector's near-square map is padded with
    NaN, which is not data; a map with no finite value reads as zeros)."""
    import torch

    flat = maps.detach().float().reshape(maps.shape[0], -1)
    if flat.shape[1] == 0:
        z = np.zeros(flat.shape[0], np.float64)
        return ChannelStats(z, z.copy(), z.copy(), z.copy(), z.copy())
    finite = torch.isfinite(flat)
    if bool(finite.all()):
        out = torch.stack([
            flat.amin(1), flat.amax(1), flat.mean(1), flat.std(1, correction=0),
            (flat == 0).float().mean(1) * 100.0,
        ])
    else:
        n = finite.sum(1).clamp(min=1).float()
        zero = torch.zeros((), device=flat.device)
        vals = torch.where(finite, flat, zero)
        mean = vals.sum(1) / n
        var = (torch.where(finite, flat - mean[:, None], zero) ** 2).sum(1) / n
        lo = torch.where(finite, flat, torch.full((), float("inf"), device=flat.device)).amin(1)
        hi = torch.where(finite, flat, torch.full((), float("-inf"), device=flat.device)).amax(1)
        has = finite.any(1)
        lo = torch.where(has, lo, zero)
        hi = torch.where(has, hi, zero)
        zeros = ((flat == 0) & finite).float().sum(1) / n * 100.0
        out = torch.stack([lo, hi, mean, var.sqrt(), zeros])
    out = out.cpu().numpy().astype(np.float64)
    return ChannelStats(out[0], out[1], out[2], out[3], out[4])


def _write_atomic(path: str, write: Callable[[Any], None], mode: str = "wb") -> None:
    from cnnviz.core.errors import CnnvizError
    from cnnviz.core.kernels import atomic_write  # the one atomic-write implementation

    folder = Path(path).parent
    if not folder.is_dir():  # as the PNG export: a mistyped folder is not created behind the user's back
        raise CnnvizError(f"the folder {folder} does not exist", "choose an existing folder")
    atomic_write(path, write, mode)



def _extras(tensor, layout) -> LayerExtras | None:
    """The class-token vectors of a token layer, the rows of a non-batch table."""
    from cnnviz.core.layouts import prefix_tokens

    prefix = prefix_tokens(tensor, layout)
    table = None
    rows = 0
    if layout.kind == "nonbatch" and tensor.dim() <= 2:
        t = tensor.reshape(-1, 1) if tensor.dim() <= 1 else tensor
        rows = int(t.shape[0])
        table = t[:TABLE_ROWS].detach().float().cpu().numpy().copy()
    if prefix is None and table is None:
        return None
    return LayerExtras(prefix_tokens=None if prefix is None else prefix.detach().float().cpu().numpy().copy(),
                       table=table, table_rows=rows)


def _onnx_conv_weights(model) -> dict[str, np.ndarray]:
    """An ONNX model's Conv weights ``(O, I, kh, kw)`` by layer name (the names
    :class:`cnnviz.core.onnx_model.OnnxRecorder` gives its nodes)."""
    from onnx import numpy_helper

    graph = model.proto.graph
    inits = {i.name: i for i in graph.initializer}
    out: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        base = node.name or f"{node.op_type}_{i}"
        k = counts.get(base, 0) + 1
        counts[base] = k
        base = base if k == 1 else f"{base}#{k}"
        if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in inits:
            w = numpy_helper.to_array(inits[node.input[1]])
            if w.ndim == 4 and len([o for o in node.output if o]) == 1:
                out[base] = w
    return out


def _display_input(x, pre) -> np.ndarray:
    """The model's input tensor ``(1, C, H, W)`` back in [0, 1] RGB uint8 for showing."""
    t = x[0].detach().float().cpu()
    c = t.shape[0]
    mean = np.asarray(pre.mean, dtype=np.float32)
    std = np.asarray(pre.std, dtype=np.float32)
    arr = t.numpy()
    if len(mean) in (1, c) and len(std) in (1, c):
        arr = arr * std.reshape(-1, 1, 1) + mean.reshape(-1, 1, 1)
    if c == 1:
        img = np.repeat(arr, 3, axis=0)
    elif c >= 3:
        img = arr[:3]
        if pre.color == "bgr":
            img = img[::-1]
    else:
        img = np.repeat(arr[:1], 3, axis=0)
    img = np.clip(np.nan_to_num(img.transpose(1, 2, 0), nan=0.0), 0.0, 1.0)
    return np.ascontiguousarray(np.round(img * 255.0).astype(np.uint8))
