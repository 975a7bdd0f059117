"""Running a model up to one layer and holding that layer's output (a *tap*), with gradients:
what Grad-CAM, guided backpropagation, feature visualization and the effective receptive field
all need. :class:`TapRunner` works for eager modules, torch.export programs and TorchScript;
:class:`EvalMode` puts a model in eval mode for a block and back exactly as it was. Split from
:mod:`cnnviz.core.explain`, which re-exports them."""

from __future__ import annotations

import threading
import weakref
from typing import Any

import torch
from torch import nn

from cnnviz.core.capture import (
    CaptureError,
    base_module_name,
    export_types,
    flatten_output,
    model_device_dtype,
    prepare_model_input,
    restore_flags,
    enter_eval,
    ScriptBackend,
    StopForward,
    unflatten_output,
    unwrap_model,
)


# --------------------------------------------------------------------------- running with a tap


# Built once per model, not per call: unflattening a program and compiling a rewritten
# TorchScript graph (plus its first, profiling runs) take long for a big model.
_CACHE_LOCK = threading.Lock()
_UNFLATTENED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_SCRIPT_TAPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class TapRunner:
    """The module to run for a model of any format, plus the extra bits each format needs."""

    def __init__(self, model: Any):
        module, kind, ep, in_ch = unwrap_model(model)
        self.model = model
        self.input_channels = in_ch
        self.script = isinstance(module, torch.jit.ScriptModule)
        self.types: dict[str, str] | None = None
        if not self.script and (kind == "export" or ep is not None):
            if ep is None:
                raise CaptureError("this torch.export model came without its ExportedProgram",
                                   "load it with cnnviz.core.models.load_model")
            device = model_device_dtype(module)[0]
            with _CACHE_LOCK:
                cached = _UNFLATTENED.get(ep)
                if cached is None:
                    cached = _UNFLATTENED[ep] = (unflatten_output(ep, device), export_types(ep))
            self.module, self.types = cached
            self.module.to(device)
        else:
            self.module = module

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        device, dtype = model_device_dtype(self.module)
        with torch.inference_mode(False):
            x = prepare_model_input(x, device, dtype, self.input_channels)
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
                    backend = per_model[layer] = ScriptBackend(self.module, {layer}, grad_tap=layer)
                    backend.module = None  # the cache must not keep its key (the model) alive
            out, extra = backend.call(x, self.module)
            return out, extra[backend.grad_index]
        return _eager_tap(self.module, x, layer, stop)


def _eager_tap(module: nn.Module, x: torch.Tensor, layer: str, stop: bool) -> tuple[Any, torch.Tensor]:
    base = base_module_name(layer)
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
        items = dict(flatten_output("", out))
        t = items.get(suffix)
        if t is None:
            raise CaptureError(f"layer {layer!r} has no tensor output {suffix!r}",
                               "choose a layer from the model's layer list")
        state["act"] = t
        if stop:
            raise StopForward
        # Downstream code gets a clone, so its in-place ops leave `t` as the layer produced it.
        return _replace(out, suffix, t.clone())

    handle = target.register_forward_hook(hook)
    try:
        try:
            out = module(x)
        except StopForward:
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


class EvalMode:
    """Model in eval mode with autograd on (even inside an inference_mode caller)."""

    def __init__(self, module: nn.Module):
        self.module = module

    def __enter__(self):
        self.flags = enter_eval(self.module)
        self.inf = torch.inference_mode(False)
        self.grad = torch.enable_grad()
        self.inf.__enter__()
        self.grad.__enter__()
        return self

    def __exit__(self, *exc):
        self.grad.__exit__(*exc)
        self.inf.__exit__(*exc)
        restore_flags(self.flags)
