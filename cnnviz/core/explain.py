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

import threading
import weakref
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from cnnviz.core.capture import (
    CaptureError,
    _base_name,
    _export_types,
    _flatten_output,
    _HookSet,
    _model_device_dtype,
    _prepare_input,
    _restore_flags,
    _enter_eval,
    _ScriptBackend,
    _StopForward,
    _unflatten,
    _unwrap,
    capture,
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


# --------------------------------------------------------------------------- running with a tap


# Built once per model, not per call: unflattening a program and compiling a rewritten
# TorchScript graph (plus its first, profiling runs) take long for a big model.
_CACHE_LOCK = threading.Lock()
_UNFLATTENED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_SCRIPT_TAPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _Runner:
    """The module to run for a model of any format, plus the extra bits each format needs."""

    def __init__(self, model: Any):
        module, kind, ep, in_ch = _unwrap(model)
        self.model = model
        self.input_channels = in_ch
        self.script = isinstance(module, torch.jit.ScriptModule)
        self.types: dict[str, str] | None = None
        if not self.script and (kind == "export" or ep is not None):
            if ep is None:
                raise CaptureError("this torch.export model came without its ExportedProgram",
                                   "load it with cnnviz.core.models.load_model")
            device = _model_device_dtype(module)[0]
            with _CACHE_LOCK:
                cached = _UNFLATTENED.get(ep)
                if cached is None:
                    cached = _UNFLATTENED[ep] = (_unflatten(ep, device), _export_types(ep))
            self.module, self.types = cached
            self.module.to(device)
        else:
            self.module = module

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        device, dtype = _model_device_dtype(self.module)
        with torch.inference_mode(False):
            x = _prepare_input(x, device, dtype, self.input_channels)
            # A fresh normal tensor: an inference tensor (made under inference_mode) cannot
            # take part in autograd.
            return x.detach().clone().requires_grad_(True)

    def forward_tap(self, x: torch.Tensor, layer: str, *, stop: bool = False) -> tuple[Any, torch.Tensor]:
        """Run with autograd on; return ``(output, activation of layer)``, the activation being
        differentiable and untouched by in-place ops after it. With ``stop`` an eager forward
        ends right after the layer (``output`` is then ``None``)."""
        if self.script:
            with _CACHE_LOCK:
                per_model = _SCRIPT_TAPS.setdefault(self.module, {})
                backend = per_model.get(layer)
                if backend is None:
                    backend = per_model[layer] = _ScriptBackend(self.module, {layer}, grad_tap=layer)
                    backend.module = None  # the cache must not keep its key (the model) alive
            out, extra = backend.call(x, self.module)
            return out, extra[backend.grad_index]
        return _eager_tap(self.module, x, layer, stop)


def _eager_tap(module: nn.Module, x: torch.Tensor, layer: str, stop: bool) -> tuple[Any, torch.Tensor]:
    base = _base_name(layer)
    try:
        target = module.get_submodule(base)
    except AttributeError:
        raise CaptureError(f"the model has no layer named {layer!r}",
                           "choose a layer from the model's layer list") from None
    want_call = int(layer.split("#")[1].split("[")[0]) if "#" in layer else 1
    suffix = layer[layer.find("["):] if "[" in layer else ""
    state = {"calls": 0, "act": None}

    def hook(_mod, _inp, out):
        state["calls"] += 1
        if state["calls"] != want_call:
            return None
        items = dict(_flatten_output("", out))
        t = items.get(suffix)
        if t is None:
            raise CaptureError(f"layer {layer!r} has no tensor output {suffix!r}",
                               "choose a layer from the model's layer list")
        state["act"] = t
        if stop:
            raise _StopForward
        # Downstream code gets a clone, so its in-place ops leave `t` as the layer produced it.
        return _replace(out, suffix, t.clone())

    handle = target.register_forward_hook(hook)
    try:
        try:
            out = module(x)
        except _StopForward:
            out = None
    finally:
        handle.remove()
    if state["act"] is None:
        raise CaptureError(f"layer {layer!r} did not run in this forward pass",
                           "choose a layer from the model's layer list")
    return out, state["act"]


def _replace(out: Any, suffix: str, new: torch.Tensor) -> Any:
    if suffix == "":
        return new
    head, _, rest = suffix[1:].partition("]")
    i = int(head)
    if isinstance(out, tuple):
        return tuple(_replace(v, rest, new) if j == i else v for j, v in enumerate(out))
    if isinstance(out, list):
        return [_replace(v, rest, new) if j == i else v for j, v in enumerate(out)]
    return out


class _Eval:
    """Model in eval mode with autograd on (even inside an inference_mode caller)."""

    def __init__(self, module: nn.Module):
        self.module = module

    def __enter__(self):
        self.flags = _enter_eval(self.module)
        self.inf = torch.inference_mode(False)
        self.grad = torch.enable_grad()
        self.inf.__enter__()
        self.grad.__enter__()
        return self

    def __exit__(self, *exc):
        self.grad.__exit__(*exc)
        self.inf.__exit__(*exc)
        _restore_flags(self.flags)


# --------------------------------------------------------------------------- Grad-CAM


def last_conv_layer(model: Any, x: torch.Tensor) -> str:
    """The default Grad-CAM layer: the last spatial map of the last convolution block.

    That is the last layer (in execution order) at or after the last convolution whose
    output is a ``(C, H, W)`` map larger than 1×1 — the block's activated (or pooled)
    output, as Grad-CAM's authors and pytorch-grad-cam use (ResNet: ``layer4.1.relu#2``,
    the block output; a LeNet: the ReLU/pool after its last conv). A pre-activation conv
    output would let negative responses with negative weights light up the padding.
    Falls back to the last layer with a spatial map.
    """
    result = capture(model, x)
    spatial = [a for a in result.layers if len(a.shape) == 3]
    convs = [i for i, a in enumerate(result.layers) if "conv" in a.type.lower() and len(a.shape) == 3]
    if convs:
        after = [a for a in result.layers[convs[-1]:] if len(a.shape) == 3 and a.shape[1] * a.shape[2] > 1]
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
    runner = _Runner(model)
    if layer is None:
        layer = last_conv_layer(model, x)
    with _Eval(runner.module):
        xg = runner.prepare(x)
        out, act = runner.forward_tap(xg, layer)
        logits = _logits(out)
        if act.dim() != 4:
            raise CaptureError(f"layer {layer!r} has output shape {tuple(act.shape[1:])}, not a (C, H, W) map",
                               "choose a convolutional layer for Grad-CAM")
        cls = int(logits[0].argmax()) if target_class is None else int(target_class)
        if not 0 <= cls < logits.shape[-1]:
            raise CaptureError(f"class {cls} does not exist: the model has {logits.shape[-1]} classes",
                               f"choose a class from 0 to {logits.shape[-1] - 1}")
        (grad,) = torch.autograd.grad(logits[0, cls], act)
    with torch.no_grad():
        a = act[0].float()
        weights = grad[0].float().mean(dim=(1, 2))
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
    return int(_logits(output)[0].argmax())


def _logits(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        t = out
    elif isinstance(out, dict) and isinstance(out.get("logits"), torch.Tensor):
        t = out["logits"]
    else:
        items = _flatten_output("", out)
        if not items:
            raise CaptureError("the model's output has no tensor", "Grad-CAM needs class scores")
        t = items[0][1]
    if t.dim() > 2:
        t = t.flatten(2).mean(-1)
    if t.dim() == 1:
        t = t[None]
    return t


# --------------------------------------------------------------------------- receptive fields


class ReceptiveField(NamedTuple):
    """Theoretical receptive field of a layer's units, per axis ``(y, x)``.

    A unit at ``(i, j)`` sees the input box centred at ``start + (i, j) * jump`` (in input
    pixel coordinates, pixel ``p`` centred at ``p``), ``size`` pixels wide, before clipping
    to the image (padding lies outside it).
    """

    size: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[float, float]


_Geo = tuple  # (size_y, size_x, jump_y, jump_x, start_y, start_x)
_IDENTITY: _Geo = (1, 1, 1, 1, 0.0, 0.0)


def _op_name(func) -> str:
    name = getattr(func, "__name__", "") or ""
    return name.split(".")[0].lstrip("_")


def _pair(v, n=2) -> tuple[int, ...]:
    if isinstance(v, (list, tuple)):
        v = tuple(int(a) for a in v)
        return v * n if len(v) == 1 else v
    return (int(v),) * n


def _arg(args, kwargs, i: int, name: str, default=None):
    if name in kwargs:
        return kwargs[name]
    return args[i] if len(args) > i else default


def _apply_window(g: _Geo, k, s, p, d) -> _Geo:
    out = []
    for ax in range(2):
        keff = d[ax] * (k[ax] - 1) + 1
        size = g[ax] + (keff - 1) * g[2 + ax]
        start = g[4 + ax] + ((keff - 1) / 2 - p[ax]) * g[2 + ax]
        out.append((size, g[2 + ax] * s[ax], start))
    return (out[0][0], out[1][0], out[0][1], out[1][1], out[0][2], out[1][2])


def _union(geos: list[_Geo]) -> _Geo | None:
    if len({(g[2], g[3]) for g in geos}) != 1:
        return None
    res = []
    for ax in range(2):
        lo = min(g[4 + ax] - (g[ax] - 1) / 2 for g in geos)
        hi = max(g[4 + ax] + (g[ax] - 1) / 2 for g in geos)
        res.append((round(hi - lo + 1), (lo + hi) / 2))
    return (res[0][0], res[1][0], geos[0][2], geos[0][3], res[0][1], res[1][1])


class _GeometryTracker(TorchFunctionMode):
    """Follows every torch call of a forward pass and gives each 4-D tensor derived from the
    input its receptive-field geometry (or ``None`` where it depends on the whole input or
    cannot be worked out: adaptive pooling, linear layers, resampling...)."""

    _CONV = {"conv2d", "convolution", "conv2d_forward"}
    _MAXPOOL = {"max_pool2d", "max_pool2d_with_indices"}
    _AVGPOOL = {"avg_pool2d"}

    def __init__(self, x: torch.Tensor):
        super().__init__()
        self.geo: dict[int, tuple[torch.Tensor, _Geo | None]] = {id(x): (x, _IDENTITY)}

    def lookup(self, t: torch.Tensor) -> tuple[bool, _Geo | None]:
        entry = self.geo.get(id(t))
        if entry is None or entry[0] is not t:
            return False, None
        return True, entry[1]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        try:
            self._propagate(func, args, kwargs, out)
        except Exception:  # noqa: BLE001 - the analysis must never break the forward
            pass
        return out

    def _propagate(self, func, args, kwargs, out) -> None:
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if not outs:
            return
        ins = []
        for t in tree_flatten((args, kwargs))[0]:
            if isinstance(t, torch.Tensor):
                known, g = self.lookup(t)
                if known:
                    ins.append((t, g))
        if not ins:
            return  # built from constants / parameters only
        name = _op_name(func)
        geo = self._geometry(name, args, kwargs, ins, outs[0])
        for t in outs:
            self.geo[id(t)] = (t, geo if t.dim() == 4 else None)

    def _geometry(self, name, args, kwargs, ins, out) -> _Geo | None:
        if "transpose" in name or out.dim() != 4:
            return None
        if name in self._CONV or name in self._MAXPOOL or name in self._AVGPOOL:
            x = _arg(args, kwargs, 0, "input")
            known, g = self.lookup(x) if isinstance(x, torch.Tensor) else (False, None)
            if not known or g is None:
                return None
            if name in self._CONV:
                w = _arg(args, kwargs, 1, "weight")
                if not isinstance(w, torch.Tensor) or w.dim() != 4:
                    return None
                if name == "convolution" and bool(_arg(args, kwargs, 6, "transposed", False)):
                    return None
                k = tuple(int(v) for v in w.shape[-2:])
                s = _pair(_arg(args, kwargs, 3, "stride", 1))
                d = _pair(_arg(args, kwargs, 5, "dilation", 1))
                pad = _arg(args, kwargs, 4, "padding", 0)
                if isinstance(pad, str):
                    p = (0, 0) if pad == "valid" else tuple(d[a] * (k[a] - 1) // 2 for a in range(2))
                else:
                    p = _pair(pad)
            else:
                k = _pair(_arg(args, kwargs, 1, "kernel_size"))
                stride = _arg(args, kwargs, 2, "stride", None)
                s = k if stride is None or (isinstance(stride, (list, tuple)) and not stride) else _pair(stride)
                p = _pair(_arg(args, kwargs, 3, "padding", 0))
                d = _pair(_arg(args, kwargs, 4, "dilation", 1)) if name in self._MAXPOOL else (1, 1)
            return _apply_window(g, k, s, p, d)
        # Anything else keeps the geometry when it keeps the spatial size (elementwise ops,
        # batch norm, concatenation along channels, residual adds: the union of the inputs).
        geos = []
        for t, g in ins:
            if t.dim() != 4 or g is None:
                return None
            if tuple(t.shape[-2:]) != tuple(out.shape[-2:]):
                return None
            geos.append(g)
        return _union(geos)


def _to_rf(g: _Geo | None) -> ReceptiveField | None:
    if g is None:
        return None
    return ReceptiveField((int(g[0]), int(g[1])), (int(g[2]), int(g[3])), (float(g[4]), float(g[5])))


def receptive_field(model: Any, x_shape: tuple[int, ...]) -> dict[str, ReceptiveField | None]:
    """Theoretical receptive field of every layer for inputs of ``x_shape`` (``(N, C, H, W)``
    or ``(C, H, W)``), keyed by the layer names :func:`cnnviz.core.capture.capture` uses.

    ``None`` where it is not defined by local geometry: after adaptive or global pooling,
    linear layers, resampling, transposed convolutions, squeeze-and-excitation gates (units
    there see the whole input) — and for every layer of a TorchScript model.
    """
    shape = tuple(int(v) for v in x_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    runner = _Runner(model)
    device, dtype = _model_device_dtype(runner.module)
    x = torch.zeros(shape, device=device, dtype=dtype or torch.float32)
    if runner.script:
        return {a.name: None for a in capture(model, x).layers}
    result: dict[str, ReceptiveField | None] = {}
    tracker = _GeometryTracker(x)

    def on_output(name, _type, _params, t):
        known, g = tracker.lookup(t)
        result[name] = _to_rf(g) if known else None

    hooks = _HookSet(runner.module, on_output, types=runner.types)
    flags = _enter_eval(runner.module)
    try:
        hooks.active = True
        with torch.no_grad(), tracker:
            runner.module(x)
    finally:
        hooks.active = False
        hooks.remove()
        _restore_flags(flags)
    return result


def theoretical_rf_box(rf: ReceptiveField, unit_yx: tuple[int, int], input_hw: tuple[int, int]
                       ) -> tuple[int, int, int, int]:
    """Input pixels seen by unit ``(y, x)``: ``(y0, x0, y1, x1)``, end exclusive, clipped to
    the image (an empty box is possible for a unit that sees only padding)."""
    box = []
    for ax in range(2):
        centre = rf.start[ax] + unit_yx[ax] * rf.jump[ax]
        lo = round(centre - (rf.size[ax] - 1) / 2)
        hi = lo + rf.size[ax]
        n = int(input_hw[ax])
        box.append((min(max(lo, 0), n), min(max(hi, 0), n)))
    return box[0][0], box[1][0], box[0][1], box[1][1]


def effective_rf(model: Any, x: torch.Tensor, layer: str, channel: int | None = None,
                 unit_yx: tuple[int, int] | None = None) -> np.ndarray:
    """Effective receptive field of one unit: ``|d unit / d input|`` summed over input
    channels, as a float32 ``(H, W)`` map scaled to ``[0, 1]``.

    ``channel=None`` takes the sum over the layer's channels at that position; ``unit_yx``
    defaults to the centre of the layer's map (ignored for a layer without a spatial map).
    """
    runner = _Runner(model)
    with _Eval(runner.module):
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
