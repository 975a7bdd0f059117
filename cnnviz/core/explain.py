"""Explanations of a model's decision and of what a unit sees.

* :func:`grad_cam` — Grad-CAM (Selvaraju et al. 2017) for a class at a layer, the last conv
  layer by default.
* :func:`receptive_field` / :func:`theoretical_rf_box` — the theoretical receptive field of
  every layer from layer geometry (kernel, stride, padding, dilation), following the actual
  data flow (branches and residual adds included), and the input box one unit sees.
* :func:`effective_rf` — the effective receptive field: the magnitude of the input gradient
  of one unit.

What works for which format
---------------------------
Eager modules (torchvision, ``file.py:Class``, pickles, the demo) and torch.export programs
(run unflattened): everything. TorchScript: :func:`grad_cam` and :func:`effective_rf` (the
forward graph is rewritten so the chosen layer's output can be differentiated);
:func:`receptive_field` returns ``None`` for every layer (the ops run inside TorchScript,
out of sight of the Python-level tracker the geometry is read with).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.core.layouts import Layout, to_maps
from cnnviz.core.capture import (
    CaptureError,
    flatten_output,
    capture,
)

from .explain_rf import (  # noqa: E402,F401 - moved to explain_rf.py, importable from here
    ReceptiveField,
    _Geo,
    _IDENTITY,
    _op_name,
    _pair,
    _arg,
    _apply_window,
    _union,
    _ATTENTION_OPS,
    _SCOPES,
    _norm_dim,
    _GeometryTracker,
    _to_rf,
    _WINDOW_TYPES,
    _attention_hooks,
    receptive_field,
    theoretical_rf_box,
)

from .explain_tap import (  # noqa: E402,F401 - moved to explain_tap.py, importable from here
    _CACHE_LOCK,
    _UNFLATTENED,
    _SCRIPT_TAPS,
    TapRunner,
    _eager_tap,
    _replace,
    EvalMode,
)

__all__ = [
    "ReceptiveField",
    "effective_rf",
    "grad_cam",
    "last_conv_layer",
    "predicted_class",
    "receptive_field",
    "theoretical_rf_box",
]


# --------------------------------------------------------------------------- Grad-CAM


def _attention_type(type_name: str) -> bool:
    return "attention" in type_name.lower()


def _cam_layer_of(layers, module: nn.Module | None) -> str | None:
    """A transformer with a class token: the input of its last attention (the last block's
    first LayerNorm in torchvision's and timm's ViTs, as pytorch-grad-cam uses): after that
    attention only the class token reaches the head, so later patch tokens get no gradient."""
    if module is None or not any(a.layout is not None and a.layout.kind == "tokens" and a.layout.n_prefix_tokens
                                 for a in layers):
        return None
    paths = [n for n, m in module.named_modules() if n and _attention_type(type(m).__name__)]

    def inside(name: str) -> bool:
        return any(name == p or name.startswith((p + ".", p + "[", p + "#", p + ":")) for p in paths)

    attn = [i for i, a in enumerate(layers) if inside(a.name)]
    if not attn:
        return None
    start = attn[-1]
    while start > 0 and inside(layers[start - 1].name):
        start -= 1
    before = [a for a in layers[:start] if a.layout is not None and a.layout.kind == "tokens"]
    return before[-1].name if before else None


def _spatial(a) -> bool:
    """A layer Grad-CAM can use: maps on a grid (NCHW, channels-last or tokens) larger than 1x1."""
    if a.layout is None or a.layout.kind not in ("NCHW", "NHWC", "tokens") or a.tensor.dim() > 4:
        return False
    c, h, w = a.map_shape
    return h * w > 1


def last_conv_layer(model: Any, x: torch.Tensor) -> str:
    """The default Grad-CAM layer: the last spatial map of the last convolution block.

    For a transformer with a class token (ViT) the input of its last attention (see
    :func:`_cam_layer_of`); channels-last (Swin, ConvNeXt) and token maps count as spatial
    maps (their layouts, :mod:`cnnviz.core.layouts`).

    That is the last layer (in execution order) at or after the last convolution whose
    output is a ``(C, H, W)`` map larger than 1×1 — the block's activated (or pooled)
    output, as Grad-CAM's authors and pytorch-grad-cam use (ResNet: ``layer4.1.relu#2``,
    the block output; a LeNet: the ReLU/pool after its last conv). A pre-activation conv
    output would let negative responses with negative weights light up the padding.
    Falls back to the last layer with a spatial map.
    """
    return cam_layer_of(capture(model, x), model)


def cam_layer_of(result, model: Any = None) -> str:
    try:
        module = TapRunner(model).module if model is not None else None
    except (TypeError, CaptureError):
        module = None
    vit = _cam_layer_of(result.layers, module)
    if vit is not None:
        return vit
    spatial = [a for a in result.layers if _spatial(a)]
    convs = [i for i, a in enumerate(result.layers) if "conv" in a.type.lower() and _spatial(a)]
    if convs:
        after = [a for a in result.layers[convs[-1]:] if _spatial(a)]
        if after:
            return after[-1].name
        return result.layers[convs[-1]].name
    if spatial:
        return spatial[-1].name
    raise CaptureError("the model has no layer with a spatial (C, H, W) output",
                       "Grad-CAM needs a convolutional layer")


def grad_cam(model: Any, x: torch.Tensor, target_class: int | None = None,
             layer: str | None = None) -> tuple[np.ndarray, str]:
    """Grad-CAM heatmap of ``target_class`` (default: the predicted class) at ``layer``.

    Returns ``(heatmap, layer_name)``: a float32 ``(H, W)`` map at the input's size, scaled to
    ``[0, 1]`` (all zeros when no location speaks for the class), and the layer used (default
    :func:`last_conv_layer`). Only the first item of a batch is explained.
    """
    runner = TapRunner(model)
    captured = capture(model, x)  # the layouts (and the default layer) with the whole model in view
    if layer is None:
        layer = cam_layer_of(captured, model)
    layout = captured.layer(layer).layout if layer in captured else None  # unknown: forward_tap says so
    with EvalMode(runner.module):
        xg = runner.prepare(x)
        out, act = runner.forward_tap(xg, layer)
        logits = output_logits(out)
        if layout is None and act.dim() == 4:
            layout = Layout("NCHW", "a 4-D output", "shape")
        if layout is None or layout.kind not in ("NCHW", "NHWC", "tokens") or act.dim() not in (3, 4):
            raise CaptureError(f"layer {layer!r} has output shape {tuple(act.shape[1:])}, not a (C, H, W) map "
                               "(channels first, channels last or tokens on a grid)",
                               "choose a convolutional, channels-last or token layer for Grad-CAM")
        cls = int(logits[0].argmax()) if target_class is None else int(target_class)
        if not 0 <= cls < logits.shape[-1]:
            raise CaptureError(f"class {cls} does not exist: the model has {logits.shape[-1]} classes",
                               f"choose a class from 0 to {logits.shape[-1] - 1}")
        (grad,) = torch.autograd.grad(logits[0, cls], act)
    with torch.no_grad():
        # tokens and channels-last layers as (C, H, W) maps on their grid (layouts.to_maps)
        a = to_maps(act, layout).float()
        weights = to_maps(grad, layout).float().mean(dim=(1, 2))
        cam = torch.relu((weights[:, None, None] * a).sum(0))
        cam = F.interpolate(cam[None, None], size=tuple(xg.shape[-2:]), mode="bilinear",
                            align_corners=False)[0, 0].clamp_(min=0)
        peak = cam.max()
        cam = cam / peak if peak > 0 else torch.zeros_like(cam)
    return cam.cpu().numpy().astype(np.float32), layer


def predicted_class(output: Any) -> int:
    """The class Grad-CAM explains by default: the argmax of the class scores, reduced the
    way :func:`grad_cam` and :func:`cnnviz.core.capture.topk` reduce them (a dense ``(N, C,
    H, W)`` prediction is averaged over its pixels), so all three name the same class."""
    return int(output_logits(output)[0].argmax())


def output_logits(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        t = out
    elif isinstance(out, dict) and isinstance(out.get("logits"), torch.Tensor):
        t = out["logits"]
    else:
        items = flatten_output("", out)
        if not items:
            raise CaptureError("the model's output has no tensor", "Grad-CAM needs class scores")
        t = items[0][1]
    if t.dim() > 2:
        t = t.flatten(2).mean(-1)
    if t.dim() == 1:
        t = t[None]
    return t


def effective_rf(model: Any, x: torch.Tensor, layer: str, channel: int | None = None,
                 unit_yx: tuple[int, int] | None = None) -> np.ndarray:
    """Effective receptive field of one unit: ``|d unit / d input|`` summed over input
    channels, as a float32 ``(H, W)`` map scaled to ``[0, 1]``.

    ``channel=None`` takes the sum over the layer's channels at that position; ``unit_yx``
    defaults to the centre of the layer's map (ignored for a layer without a spatial map).
    """
    runner = TapRunner(model)
    with EvalMode(runner.module):
        xg = runner.prepare(x)
        _, act = runner.forward_tap(xg, layer, stop=True)
        a = act[0]
        if channel is not None:
            if not 0 <= int(channel) < a.shape[0]:
                raise CaptureError(f"layer {layer!r} has {a.shape[0]} channels; there is no channel {channel}",
                                   f"choose a channel from 0 to {a.shape[0] - 1}")
            a = a[int(channel)][None]
        if a.dim() == 3:
            h, w = a.shape[-2:]
            y, xx = unit_yx if unit_yx is not None else (h // 2, w // 2)
            if not (0 <= y < h and 0 <= xx < w):
                raise CaptureError(f"unit {(y, xx)} is outside layer {layer!r}'s {h}x{w} map",
                                   "choose a unit inside the map")
            unit = a[:, y, xx].sum()
        else:
            unit = a.sum()
        (grad,) = torch.autograd.grad(unit, xg)
    mag = grad[0].abs().sum(0).float()
    peak = mag.max()
    mag = mag / peak if peak > 0 else mag
    return mag.detach().cpu().numpy().astype(np.float32)
