"""Record every layer's output of a model, whatever format it was saved in.

One entry point, :func:`capture` (or a :class:`Recorder` kept across frames), for all the
formats :mod:`cnnviz.core.models` loads:

* **eager modules** (torchvision, ``file.py:Class``, whole pickles, the demo): a forward hook
  on every submodule.
* **TorchScript** (scripted or traced): ScriptModules refuse forward hooks, so a copy of the
  forward graph is rewritten to also return a clone of every submodule's output: method calls
  are inlined one level at a time, and where each submodule's ``forward`` returned an
  ``aten::clone`` of its value is inserted, named by the module path of the call. The loaded
  module itself is never changed. Submodules called only inside TorchScript control flow
  (an ``if`` or loop body) cannot be returned from the graph and are not recorded.
* **torch.export programs**: the flattened graph module has no submodules to hook, so the
  program is unflattened (:func:`torch.export.unflatten`) back into the original module
  hierarchy and that is hooked like an eager module (types come from the graph's
  ``nn_module_stack`` metadata).

Which modules count as layers
-----------------------------
Every submodule whose forward runs, named by its qualified path (``layer1.0.conv1``), in the
order their outputs are produced. Leaves (modules without children) are always recorded.
A container (``Sequential``, a residual block, ...) is recorded only when its output is a new
tensor (for example ``return x + self.conv(x)``); when it just hands on a tensor one of its
children produced (a ``Sequential``, torchvision's ``BasicBlock`` ending in its ReLU) that
tensor is already recorded under the child's name. A module called twice in one forward
(torchvision's ``BasicBlock.relu``) is recorded per call: ``layer1.0.relu`` then
``layer1.0.relu#2``. A tuple/list output is recorded per tensor as ``name[0]``, ``name[1]``;
a dict output as ``name.key``.

Layouts and every op
--------------------
Each :class:`LayerActivation` carries its :class:`~cnnviz.core.layouts.Layout` (NCHW, NHWC,
tokens, vector, non-batch...), decided once per input shape from the module and the shapes
(or the user's override, ``layouts=``); :attr:`LayerActivation.maps` gives the ``(C, H, W)``
maps every view draws. ``every_op=True`` also records every tensor op outside leaf modules
(a ``TorchFunctionMode``: residual adds, concatenations, attention matmuls) as
``<module>:<op>`` layers. ONNX models go through :func:`make_recorder`.

Cloning
-------
Activations are detached and independent of the model's later in-place operations: an
in-place ReLU (torchvision's ResNets) overwrites the tensor a hook saw for the preceding
batch norm. Cloning every output costs a copy of every activation, so an eager
:class:`Recorder` learns, on the first frame of each input signature, which outputs are later
modified in place (by watching tensor version counters under ``torch.no_grad``, every output
cloned on that frame) and from then on clones only those, running under
``torch.inference_mode``. Pass ``clone="always"`` to clone everything on every frame (the
safe choice for a model whose forward takes different paths for different inputs).
TorchScript outputs are always cloned (inside the graph, where the module returned).

Devices
-------
Activations stay where the model runs; render them there (:mod:`cnnviz.core.mosaic`) and move
only uint8 images to the host (:func:`layer_to_host_uint8`). CUDA running out of memory moves
the model to the CPU (float32) and runs the frame again, saying so in the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnviz.core.errors import CnnvizError
from cnnviz.core.layouts import Layout, LayoutDecider, count_prefix_tokens, map_shape, parse_layout, to_maps

# Moved out of this module (helpers, backends); re-exported here so existing imports keep working.
from cnnviz.core.capture_backends import (  # noqa: F401
    _FORWARD_RE,
    _NOT_OPS,
    _all_nodes,
    base_module_name,
    _call_name,
    _EagerBackend,
    export_types,
    HookSet,
    _inline_with_marks,
    _mark_call,
    _op_label,
    _OpMode,
    ScriptBackend,
    _ScriptCall,
    StopForward,
    unflatten_output,
)
from cnnviz.core.capture_common import (  # noqa: F401
    _CHANNELS_RE,
    CaptureError,
    channels_error,
    enter_eval,
    _failing_layer,
    flatten_output,
    _forward_error,
    model_device_dtype,
    _own_params,
    prediction_of,
    prepare_model_input,
    restore_flags,
    unwrap_model,
    keep_freed_memory,
    module_of,
)

__all__ = [
    "CaptureError",
    "CaptureResult",
    "LayerActivation",
    "Recorder",
    "capture",
    "keep_freed_memory",
    "layer_to_host_uint8",
    "make_recorder",
    "module_of",
    "topk",
]


@dataclass
class LayerActivation:
    """One layer's output for one input.

    Attributes
    ----------
    name:
        Qualified module path (``layer1.0.conv1``); ``#k`` for the k-th call of a module
        called more than once, ``[i]`` / ``.key`` for an element of a tuple / dict output.
    type:
        The module's class name (``Conv2d``), also for TorchScript and torch.export models.
    shape:
        Output shape without the batch dimension (a ``nonbatch`` tensor's whole shape).
    params:
        Number of parameters the module owns itself (not its children's).
    tensor:
        The output, detached and independent of later in-place operations, with the batch
        dimension kept, on the model's device.
    index:
        Position in :attr:`CaptureResult.layers` (execution order).
    layout:
        What the tensor's axes mean (:mod:`cnnviz.core.layouts`), decided once per input
        shape; every view draws :attr:`maps`.
    kind:
        ``"module"`` (a module's output) or ``"op"`` (a tensor op inside the forward, with
        ``every_op``; then ``type`` is the op, ``add``, ``cat``, ``softmax``).
    """

    name: str
    type: str
    shape: tuple[int, ...]
    params: int
    tensor: torch.Tensor
    index: int
    layout: Layout | None = None
    kind: str = "module"

    @property
    def first(self) -> torch.Tensor:
        """The output for the first item of the batch (shape :attr:`shape`); a ``nonbatch``
        tensor (boxes, RoIs) whole."""
        if self.layout is not None and self.layout.kind == "nonbatch":
            return self.tensor
        return self.tensor[0] if self.tensor.dim() > 0 else self.tensor

    @property
    def maps(self) -> torch.Tensor:
        """The ``(C, H, W)`` maps this layer is shown as (:func:`cnnviz.core.layouts.to_maps`)."""
        return to_maps(self.tensor, self._layout())

    @property
    def map_shape(self) -> tuple[int, int, int]:
        return map_shape(tuple(self.tensor.shape), self._layout())

    def _layout(self) -> Layout:
        if self.layout is None:  # made by hand, not by a Recorder: decide from the shape alone
            self.layout = LayoutDecider(self.tensor.shape[:1] or (1,)).decide(
                self.name, self.type, tuple(self.tensor.shape))
        return self.layout


@dataclass
class CaptureResult:
    """Everything one forward pass recorded.

    ``output`` is the model's prediction tensor (the first tensor of a tuple output, the
    ``"logits"``/``"out"`` entry or first tensor of a dict output), detached. When CUDA ran out
    of memory and the run was repeated on the CPU, ``fell_back_to_cpu`` is true, ``message``
    says so and ``device`` is ``"cpu"`` (the model has been moved there).
    """

    layers: list[LayerActivation]
    output: torch.Tensor | None
    device: str
    fell_back_to_cpu: bool = False
    message: str | None = None
    raw_output: Any = None

    def names(self) -> list[str]:
        return [a.name for a in self.layers]

    def layer(self, name: str) -> LayerActivation:
        for a in self.layers:
            if a.name == name:
                return a
        raise KeyError(name)

    def __contains__(self, name: str) -> bool:
        return any(a.name == name for a in self.layers)


# --------------------------------------------------------------------------- recorder


class Recorder:
    """Captures every layer of one model, frame after frame, until :meth:`close`.

    Hooks (eager, torch.export) stay registered between frames and do nothing outside
    :meth:`run`; :meth:`close` removes them (call it when the model is swapped, or use the
    recorder as a context manager). Use one recorder from one thread at a time.

    Parameters
    ----------
    model:
        A ``LoadedModel`` (from :func:`cnnviz.core.models.load_model`), an ``nn.Module``
        (eager or ScriptModule) or a ``torch.export.ExportedProgram``.
    layers:
        ``"all"`` or the names to keep (a module path keeps all of its calls and elements).
    clone:
        ``"auto"`` (clone only outputs the forward later modifies in place; see the module
        docstring) or ``"always"``.
    every_op:
        Also record every tensor op the forward runs outside leaf modules (residual adds,
        concatenations, matmuls and softmax in attention written in Python, reshapes), named
        ``<module path>:<op>`` (``layer1.0:iadd``), in execution order, cloned. Eager and
        torch.export models; the default (module outputs only) costs nothing extra.
    layouts:
        The user's layouts for some layers, ``{name: "NHWC" | "tokens:14x14+1" | ...}``
        (:func:`cnnviz.core.layouts.parse_layout`); every other layer's is decided from the
        model and the shapes.
    """

    def __init__(self, model: Any, layers: str | Sequence[str] = "all", *, clone: str = "auto",
                 every_op: bool = False, layouts: Mapping[str, str] | None = None):
        if clone not in ("auto", "always"):
            raise ValueError("clone must be 'auto' or 'always'")
        module, kind, ep, in_ch = unwrap_model(model)
        keep_freed_memory()
        self.model = model
        self.module = module
        self.kind = kind
        self.input_channels = in_ch
        self.layers = None if layers == "all" else set(layers)
        self.every_op = bool(every_op)
        self.layout_overrides = dict(layouts or {})
        self._clone = clone
        self._ep = ep
        self._backend = self._make_backend()
        runnable = self.runnable
        self._modules = dict(runnable.named_modules())
        self._prefix = count_prefix_tokens(list(runnable.named_parameters()))
        self._layout_cache: dict[tuple, list[Layout]] = {}

    def _make_backend(self):
        if isinstance(self.module, torch.jit.ScriptModule):
            if self.every_op:
                raise CaptureError("every-op capture cannot see inside a TorchScript model",
                                   "capture module outputs only, or give the eager model or a .pt2 export")
            return ScriptBackend(self.module, self.layers)
        if self.kind == "export" or self._ep is not None:
            if self._ep is None:
                raise CaptureError("this torch.export model came without its ExportedProgram",
                                   "load it with cnnviz.core.models.load_model")
            device, _ = model_device_dtype(self.module)
            self._hooked = unflatten_output(self._ep, device)
            return _EagerBackend(self._hooked, self.layers, self._clone, types=export_types(self._ep),
                                 every_op=self.every_op)
        return _EagerBackend(self.module, self.layers, self._clone, every_op=self.every_op)

    def _assign_layouts(self, layers: list[LayerActivation], x_shape: tuple[int, ...]) -> None:
        """Decide each layer's layout once per input shape and set of layers (cached)."""
        key = (x_shape, tuple((a.name, tuple(a.tensor.shape)) for a in layers))
        cached = self._layout_cache.get(key)
        if cached is None:
            decider = LayoutDecider(x_shape, *self._prefix)
            cached = []
            for a in layers:
                module = self._modules.get(base_module_name(a.name)) if a.kind == "module" else None
                cached.append(decider.decide(a.name, a.type, tuple(a.tensor.shape), module))
            if self.layout_overrides:
                by_name = {a.name: i for i, a in enumerate(layers)}
                for name, text in self.layout_overrides.items():
                    idx = [by_name[name]] if name in by_name else [
                        i for i, a in enumerate(layers) if base_module_name(a.name) == name]
                    if not idx:
                        raise CaptureError(f"the model has no layer named {name!r} (in a layout override)",
                                           "choose layer names from the model's layer list")
                    for i in idx:
                        cached[i] = parse_layout(text, tuple(layers[i].tensor.shape), layer=layers[i].name,
                                                 batch=x_shape[0] if x_shape else 1)
            self._layout_cache = {key: cached}
        for a, layout in zip(layers, cached):
            a.layout = layout
            if layout.kind == "nonbatch":  # no batch dimension to drop: the shape is the tensor's
                a.shape = tuple(a.tensor.shape)

    @property
    def runnable(self) -> nn.Module:
        """The module the recorder actually runs (the unflattened one for torch.export)."""
        return getattr(self, "_hooked", None) or self.module

    def run(self, x: torch.Tensor) -> CaptureResult:
        """One forward pass of ``x`` (``(N, C, H, W)`` or ``(C, H, W)``), every layer recorded.

        ``x`` is moved to the model's device and floating dtype. CUDA running out of memory
        moves the model to the CPU and runs again (see :class:`CaptureResult`). Other
        failures raise :class:`CaptureError` with the cause.
        """
        if self._backend is None:
            raise RuntimeError("this Recorder is closed")
        try:
            return self._run_once(x)
        except torch.OutOfMemoryError as err:
            return self._retry_on_cpu(x, err)

    def _run_once(self, x: torch.Tensor) -> CaptureResult:
        runnable = self.runnable
        device, dtype = model_device_dtype(runnable)
        x = prepare_model_input(x, device, dtype, self.input_channels)
        flags = enter_eval(runnable)
        try:
            try:
                out, records = self._backend.forward(x)
            except (torch.OutOfMemoryError, CnnvizError, StopForward):
                raise
            except Exception as err:  # noqa: BLE001 - the user's forward can raise anything
                raise _forward_error(err, x, runnable if isinstance(runnable, nn.Module) else None) from err
        finally:
            restore_flags(flags)
        layers = []
        op_names = getattr(self._backend, "op_names", ())
        for name, mtype, params, t in records:
            if self.layers is not None and name not in self.layers and base_module_name(name) not in self.layers:
                continue
            layers.append(LayerActivation(name=name, type=mtype, shape=tuple(t.shape[1:]),
                                          params=params, tensor=t, index=len(layers),
                                          kind="op" if name in op_names else "module"))
        self._assign_layouts(layers, tuple(x.shape))
        if self.layers is not None:
            found = {a.name for a in layers} | {base_module_name(a.name) for a in layers}
            missing = sorted(self.layers - found)
            if missing:
                raise CaptureError(f"the model has no layer named {', '.join(map(repr, missing))}",
                                   "choose layer names from the model's layer list")
        return CaptureResult(layers=layers, output=prediction_of(out), device=str(device), raw_output=out)

    def _retry_on_cpu(self, x: torch.Tensor, err: BaseException) -> CaptureResult:
        was = str(model_device_dtype(self.runnable)[0])
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        # float32 on the CPU: half precision is slow or unsupported there
        self.runnable.to(device="cpu", dtype=torch.float32)
        if self.runnable is not self.module:
            self.module.to(device="cpu", dtype=torch.float32)
        if not isinstance(self.model, nn.Module):  # a LoadedModel says where it is
            for attr, value in (("device", "cpu"), ("dtype", "float32")):
                if isinstance(getattr(self.model, attr, None), str):
                    setattr(self.model, attr, value)
        x = x.to("cpu")
        try:
            result = self._run_once(x)
        except torch.OutOfMemoryError as err2:
            raise CaptureError("the model ran out of memory on the GPU and on the CPU",
                               "use a smaller input size or a smaller model") from err2
        result.fell_back_to_cpu = True
        first = str(err).strip().splitlines()[0] if str(err).strip() else "out of memory"
        result.message = (f"the GPU ({was}) ran out of memory ({first[:120]}); the model now runs "
                          f"on the CPU, which is slower: free GPU memory or use a smaller input, "
                          f"then switch the device back")
        return result

    def close(self) -> None:
        """Remove every hook. Idempotent."""
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


def make_recorder(model: Any, layers: str | Sequence[str] = "all", *, clone: str = "auto",
                  every_op: bool = False, layouts: Mapping[str, str] | None = None):
    """A :class:`Recorder`, or for an ONNX model (``kind == "onnx"``) an
    :class:`cnnviz.core.onnx_model.OnnxRecorder` (every node is a layer already)."""
    if getattr(model, "kind", None) == "onnx":
        from cnnviz.core.onnx_model import OnnxRecorder

        return OnnxRecorder(model, layouts=layouts)
    return Recorder(model, layers, clone=clone, every_op=every_op, layouts=layouts)


def capture(model: Any, x: torch.Tensor, *, layers: str | Sequence[str] = "all",
            clone: str = "always", every_op: bool = False,
            layouts: Mapping[str, str] | None = None) -> CaptureResult:
    """Run ``model`` on ``x`` once and record every layer's output (see :class:`Recorder`).

    All hooks are removed before this returns, whatever happens. A one-off capture clones
    every output (``clone="always"``): learning which outputs need it would cost a pass.
    An ONNX model (``kind == "onnx"``) is run through :mod:`cnnviz.core.onnx_model`.
    """
    if getattr(model, "kind", None) == "onnx":
        from cnnviz.core.onnx_model import OnnxRecorder

        with OnnxRecorder(model, layouts=layouts) as rec:
            return rec.run(x)
    with Recorder(model, layers, clone=clone, every_op=every_op, layouts=layouts) as rec:
        return rec.run(x)


# --------------------------------------------------------------------------- predictions


def topk(logits: torch.Tensor, labels: Sequence[str] | None, k: int = 5) -> list[tuple[int, str, float]]:
    """The ``k`` most probable classes: ``[(index, name, probability), ...]``, best first.

    ``logits`` is ``(N, classes)`` (the first item is used) or ``(classes,)``; extra trailing
    dimensions (a dense prediction) are averaged. Names come from ``labels`` when it has an
    entry for the index, else ``"class <index>"``.
    """
    if not isinstance(logits, torch.Tensor) or logits.numel() == 0 or logits.dim() == 0:
        return []  # no class scores (a detector's empty boxes, a scalar): nothing to rank
    try:
        t = logits.detach()
        if t.dim() >= 2:
            t = t[0]
        if t.dim() >= 2:
            t = t.flatten(1).mean(1)
        t = t.float()
        probs = torch.softmax(t, dim=0)
        k = max(0, min(int(k), probs.numel()))
        values, idx = torch.topk(probs, k)
    except (IndexError, RuntimeError, ValueError, TypeError) as exc:
        from cnnviz.core.errors import SpecError

        raise SpecError(f"the model's output {tuple(logits.shape)} could not be ranked as class scores "
                        f"(top-k step: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                        "the layers are captured; use a classifier to see predictions") from None
    out = []
    for p, i in zip(values.cpu().tolist(), idx.cpu().tolist()):
        name = labels[i] if labels is not None and 0 <= i < len(labels) else f"class {i}"
        out.append((int(i), str(name), float(p)))
    return out


def layer_to_host_uint8(act: LayerActivation | torch.Tensor, **kwargs) -> np.ndarray:
    """Render one layer as a uint8 mosaic on its device and copy only the uint8 image to the
    host: a :class:`LayerActivation` as its layout's ``(C, H, W)`` maps (channels-last and
    token layers as maps). ``kwargs`` go to :func:`cnnviz.core.mosaic.mosaic`."""
    from cnnviz.core.mosaic import mosaic

    t = act.maps if isinstance(act, LayerActivation) else act
    return mosaic(t, **kwargs).image
