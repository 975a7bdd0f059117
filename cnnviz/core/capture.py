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

import contextlib
import ctypes
import ctypes.util
import platform
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnviz.core.errors import CnnvizError
from cnnviz.core.layouts import Layout, LayoutDecider, count_prefix_tokens, map_shape, parse_layout, to_maps

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


class CaptureError(CnnvizError):
    """The model cannot run on this input (wrong channels, its forward raised, ...)."""


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


# --------------------------------------------------------------------------- helpers


def _unwrap(model: Any) -> tuple[Any, str | None, Any, int | None]:
    """``(module, kind, exported_program, input_channels)`` for a LoadedModel, module or EP."""
    if isinstance(model, torch.export.ExportedProgram):
        return model.module(), "export", model, None
    if isinstance(model, nn.Module):
        kind = "torchscript" if isinstance(model, torch.jit.ScriptModule) else None
        return model, kind, None, None
    module = getattr(model, "module", None)
    if isinstance(module, nn.Module):
        return (module, getattr(model, "kind", None), getattr(model, "exported", None),
                getattr(model, "input_channels", None))
    raise TypeError(f"cannot capture from a {type(model).__name__}: give an nn.Module or a LoadedModel")


def module_of(model: Any) -> nn.Module:
    """The ``nn.Module`` inside a LoadedModel (or the module itself)."""
    return _unwrap(model)[0]


def _model_device_dtype(module: nn.Module) -> tuple[torch.device, torch.dtype | None]:
    for t in module.parameters():
        return t.device, (t.dtype if t.is_floating_point() else None)
    for t in module.buffers():
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), None


def _own_params(module: nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters(recurse=False)))


def _flatten_output(name: str, out: Any) -> list[tuple[str, torch.Tensor]]:
    """Named tensors of a module output: a tensor, or tuples/lists/dicts of them."""
    if isinstance(out, torch.Tensor):
        return [(name, out)]
    items: list[tuple[str, torch.Tensor]] = []
    if isinstance(out, (tuple, list)):
        for i, v in enumerate(out):
            items.extend(_flatten_output(f"{name}[{i}]", v))
    elif isinstance(out, dict):
        for k, v in out.items():
            items.extend(_flatten_output(f"{name}.{k}", v))
    return items


def _prediction(out: Any) -> torch.Tensor | None:
    """The tensor a classifier's predictions come from."""
    if isinstance(out, torch.Tensor):
        return out.detach()
    if isinstance(out, dict):
        for key in ("logits", "out", "output"):
            if isinstance(out.get(key), torch.Tensor):
                return out[key].detach()
    for _, t in _flatten_output("", out):
        return t.detach()
    return None


def _enter_eval(module: nn.Module) -> list[nn.Module]:
    """Put every submodule in eval mode; return those that were training.

    Only modules that change are touched (``nn.Module.__setattr__`` costs microseconds and
    this runs every frame), and :func:`_restore_flags` puts back exactly those: a user's
    model may keep some parts (frozen batch norms) in eval while the rest trains.
    """
    changed = [m for m in module.modules() if m.training]
    for m in changed:
        m.training = False
    return changed


def _restore_flags(changed: list[nn.Module]) -> None:
    for m in changed:
        m.training = True


_CHANNELS_RE = re.compile(r"expected input\[([\d, ]+)\] to have (\d+) channels, but got (\d+) channels")


def _forward_error(err: BaseException, x: torch.Tensor) -> CaptureError:
    text = str(err).strip()
    m = _CHANNELS_RE.search(text)
    if m:
        return _channels_error(int(m.group(2)), int(m.group(3)))
    first = text.splitlines()[0] if text else type(err).__name__
    if "mat1 and mat2 shapes cannot be multiplied" in text or "size mismatch" in text:
        fix = ("the input size does not fit the model's fully connected layers: give the size it "
               "was trained on (--input-size H,W)")
    else:
        fix = "check that the input size, channels and preprocessing match what the model expects"
    return CaptureError(f"the model's forward failed on an input of shape {tuple(x.shape)}: "
                        f"{type(err).__name__}: {first}", fix)


def _channels_error(expected: int, given: int) -> CaptureError:
    def word(n: int) -> str:
        return f"{n} channel" + ("" if n == 1 else "s")
    hint = {1: "gray", 3: "rgb"}.get(expected)
    fix = (f"set the preprocessing colour to {hint} (--color {hint} on the command line)" if hint
           else f"images give 1 (gray) or 3 (colour) channels: wrap the model so that it takes one of them, "
                f"or call it on a tensor with {word(expected)} from Python")
    return CaptureError(f"the model expects {word(expected)} of input, but the input has {word(given)}", fix)


def _prepare_input(x: torch.Tensor, device: torch.device, dtype: torch.dtype | None,
                   input_channels: int | None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x))
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if input_channels is not None and x.dim() == 4 and x.shape[1] != input_channels:
        raise _channels_error(int(input_channels), int(x.shape[1]))
    if dtype is not None and x.is_floating_point():
        x = x.to(device=device, dtype=dtype)
    else:
        x = x.to(device=device)
    return x


# --------------------------------------------------------------------------- host memory

_HEAP_TUNED: bool | None = None


def keep_freed_memory() -> bool:
    """Let glibc keep freed memory for reuse instead of returning it to the system.

    Capturing every layer keeps every activation alive until the frame is done, so each frame
    allocates tens of megabytes afresh. With glibc's defaults those blocks are mapped from the
    system and unmapped again every frame, and touching fresh pages (a page fault each) cost
    about 20 % of a resnet18 forward on the CPU; with the memory kept (up to the peak of one
    frame) capture costs about 5 %. Linux/glibc only (elsewhere a no-op returning False);
    process-wide; idempotent. Set ``CNNVIZ_KEEP_FREED_MEMORY=0`` to disable.
    """
    global _HEAP_TUNED
    if _HEAP_TUNED is not None:
        return _HEAP_TUNED
    _HEAP_TUNED = False
    import os

    if os.environ.get("CNNVIZ_KEEP_FREED_MEMORY", "1") == "0":
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        # blocks up to 32 MiB (glibc's maximum) from the heap; trim it only above 1 GiB free
        ok = libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024) == 1
        ok = libc.mallopt(m_trim_threshold, 1024 * 1024 * 1024) == 1 and ok
    except (OSError, AttributeError):
        return False
    _HEAP_TUNED = ok
    return ok


# --------------------------------------------------------------------------- eager hooks


class _StopForward(Exception):
    """Raised from a hook to end a forward pass early (nothing later is needed)."""


def _call_name(counts: dict[str, int], base: str) -> str:
    k = counts.get(base, 0) + 1
    counts[base] = k
    return base if k == 1 else f"{base}#{k}"


class _HookSet:
    """Forward hooks on every submodule of an eager (or unflattened) module.

    Calls ``on_output(name, type, params, tensor)`` for every recorded tensor, applying the
    naming and container rules of this module's docstring. Handles are kept and removed by
    :meth:`remove`. Hooks do nothing unless :attr:`active`.
    """

    def __init__(self, root: nn.Module, on_output: Callable[[str, str, int, torch.Tensor], None],
                 types: dict[str, str] | None = None, only: set[str] | None = None):
        self.active = False
        self.on_output = on_output
        self.counts: dict[str, int] = {}
        self.seen: dict[int, torch.Tensor] = {}  # id -> tensor, for the container rule
        self.handles: list[Any] = []
        try:
            for name, mod in root.named_modules():
                if not name or (only is not None and name not in only):
                    continue
                leaf = next(iter(mod.children()), None) is None
                mtype = (types or {}).get(name) or type(mod).__name__
                self.handles.append(mod.register_forward_hook(
                    self._make_hook(name, mtype, _own_params(mod), leaf)))
        except BaseException:
            self.remove()
            raise

    def _make_hook(self, base: str, mtype: str, params: int, leaf: bool):
        def hook(_mod, _inp, out):
            if not self.active:
                return None
            name = _call_name(self.counts, base)
            seen = self.seen
            if isinstance(out, torch.Tensor):  # the common case, kept short: runs per module
                if leaf or id(out) not in seen:
                    seen[id(out)] = out
                    self.on_output(name, mtype, params, out)
                return None
            for item_name, t in _flatten_output(name, out):
                if not leaf and id(t) in seen:
                    continue  # a container handing on a child's tensor: recorded already
                seen[id(t)] = t
                self.on_output(item_name, mtype, params, t)
            return None

        return hook

    def reset(self) -> None:
        self.counts = {}
        self.seen = {}

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


# Torch functions that are not ops on the data (attribute access, bookkeeping).
_NOT_OPS = frozenset({"get", "set", "detach", "requires_grad", "format", "repr", "bool", "len", "iter",
                      "contains", "is_floating_point"})  # as _op_label names them (underscores stripped)


def _op_label(func) -> str:
    name = getattr(func, "__name__", None) or str(func)
    name = name.split(".")[0]  # an aten overload (torch.export programs): "add.Tensor" -> "add"
    return name.strip("_") or name


class _OpMode(torch.overrides.TorchFunctionMode):
    """Records every tensor op the forward runs outside leaf modules (inside a leaf the op is
    the module's output, recorded by its hook), named ``<module path>:<op>`` after the
    innermost module running, detached and cloned."""

    def __init__(self, backend: _EagerBackend):
        super().__init__()
        self.backend = backend

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        b = self.backend
        if b.leaf_depth or b.in_hook or not b.hooks.active:
            return out
        label = _op_label(func)
        if label in _NOT_OPS:
            return out
        if isinstance(out, torch.Tensor):
            tensors = [("", out)]
        elif isinstance(out, (tuple, list)):
            tensors = _flatten_output("", out)
        else:
            return out
        if not tensors:
            return out
        path = b.stack[-1] if b.stack else ""
        name = _call_name(b.op_counts, f"{path}:{label}")
        for suffix, t in tensors:
            if t.is_floating_point() or t.dtype in (torch.bool, torch.int64, torch.int32, torch.uint8):
                b.op_names.add(name + suffix)
                b.records.append((name + suffix, label, 0, t.detach().clone()))
        return out


class _EagerBackend:
    def __init__(self, module: nn.Module, layers: set[str] | None, clone: str,
                 types: dict[str, str] | None = None, every_op: bool = False):
        self.module = module
        self.clone = clone
        self.records: list[tuple[str, str, int, torch.Tensor]] = []
        self._learning = False
        self._versions: dict[str, tuple[torch.Tensor, int]] = {}
        self._needs_clone: dict[tuple, frozenset[str]] = {}
        self._current: frozenset[str] = frozenset()
        only = None if layers is None else {_base_name(n) for n in layers}
        self.hooks = _HookSet(module, self._on_output, types=types, only=only)
        self.every_op = every_op
        self.op_names: set[str] = set()
        self.op_counts: dict[str, int] = {}
        self.stack: list[str] = []
        self.leaf_depth = 0
        self.in_hook = False
        self._stack_handles: list[Any] = []
        if every_op:
            try:
                self._track_modules()
            except BaseException:
                self.close()
                raise

    def _track_modules(self) -> None:
        """Pre/post hooks keeping the stack of running modules (for naming ops)."""
        for name, mod in self.module.named_modules():
            if not name:
                continue
            leaf = next(iter(mod.children()), None) is None

            def pre(_m, _a, name=name, leaf=leaf):
                self.stack.append(name)
                self.leaf_depth += leaf

            def post(_m, _a, _o, leaf=leaf):
                if self.stack:
                    self.stack.pop()
                self.leaf_depth -= leaf

            self._stack_handles.append(mod.register_forward_pre_hook(pre))
            self._stack_handles.append(mod.register_forward_hook(post, always_call=True))

    def _on_output(self, name: str, mtype: str, params: int, t: torch.Tensor) -> None:
        if self.every_op:
            self.in_hook = True
            try:
                self._record(name, mtype, params, t)
            finally:
                self.in_hook = False
        else:
            self._record(name, mtype, params, t)

    def _record(self, name: str, mtype: str, params: int, t: torch.Tensor) -> None:
        if self._learning:
            self._versions[name] = (t, t._version)
            self.records.append((name, mtype, params, t.detach().clone()))
        elif self.clone == "always" or name in self._current:
            self.records.append((name, mtype, params, t.detach().clone()))
        else:
            self.records.append((name, mtype, params, t.detach() if t.requires_grad else t))

    def forward(self, x: torch.Tensor) -> tuple[Any, list[tuple[str, str, int, torch.Tensor]]]:
        key = (tuple(x.shape), x.dtype, x.device.type)
        learn = self.clone == "auto" and key not in self._needs_clone
        self.records = []
        self.hooks.reset()
        self.op_names = set()
        self.op_counts = {}
        self.stack = []
        self.leaf_depth = 0
        self.hooks.active = True
        self._learning = learn
        mode = _OpMode(self) if self.every_op else contextlib.nullcontext()
        try:
            if learn:
                # Not in inference mode (even if the caller is): inference tensors have no
                # version counter to watch.
                self._versions = {}
                with torch.inference_mode(False), torch.no_grad():
                    if x.is_inference():
                        x = x.clone()
                    with mode:
                        out = self.module(x)
                self._needs_clone[key] = frozenset(
                    n for n, (t, v) in self._versions.items() if t._version != v)
            else:
                self._current = self._needs_clone.get(key, frozenset())
                with torch.inference_mode(), mode:
                    out = self.module(x)
            return out, self.records
        finally:
            self.hooks.active = False
            self._learning = False
            self._versions = {}
            self.hooks.reset()
            self.records = []

    def close(self) -> None:
        self.hooks.remove()
        for h in self._stack_handles:
            h.remove()
        self._stack_handles = []


def _base_name(name: str) -> str:
    """``layer1.0.relu#2`` / ``heads[0]`` -> the module path ``layer1.0.relu`` / ``heads``."""
    return name.split("#")[0].split("[")[0]


# --------------------------------------------------------------------------- TorchScript


def _all_nodes(block) -> Iterable[Any]:
    for node in block.nodes():
        yield node
        for sub in node.blocks():
            yield from _all_nodes(sub)


_FORWARD_RE = re.compile(r"forward\d*")


@dataclass
class _ScriptCall:
    path: str
    type: str
    leaf: bool
    marks: list[Any]  # clone nodes, one per output tensor, placed where the call returned
    suffixes: list[str]  # "" for a tensor output, "[i]" for tuple elements


def _inline_with_marks(graph: torch._C.Graph, smod: nn.Module) -> list[_ScriptCall]:
    """Inline every method call of ``graph`` (a copy of ``smod.forward.graph``), marking where
    each submodule's ``forward`` returned with an ``aten::clone`` of its output.

    TorchScript's own inliner loses where a call ended (constants and attribute reads are
    hoisted, control flow has no module), so calls are inlined here one level at a time with
    :meth:`torch._C.Graph.insertGraph`, which tells exactly which value a call returned. The
    callee graphs are copied; the loaded module is never changed. Calls inside control flow
    (an ``if`` or loop body) are inlined but not marked: their values cannot be returned.
    """
    modules = dict(smod.named_modules())
    top = graph.block()
    paths: dict[Any, str] = {next(iter(graph.inputs())): ""}
    calls: list[_ScriptCall] = []
    for _pass in range(1000):
        pending = []
        for node in _all_nodes(top):
            kind = node.kind()
            if kind == "prim::GetAttr":
                owner = paths.get(node.inputsAt(0))
                if owner is not None:
                    child = f"{owner}.{node.s('name')}" if owner else node.s("name")
                    if child in modules:
                        paths[node.output()] = child
            elif kind == "prim::CallMethod" and node.inputsAt(0) in paths:
                pending.append(node)
        if not pending:
            return calls
        for node in pending:
            path = paths[node.inputsAt(0)]
            method = node.s("name")
            callee = modules[path]._c._get_method(method).graph.copy()
            with graph.insert_point_guard(node):
                outs = graph.insertGraph(callee, list(node.inputs()))
            # A traced module called twice gets methods "forward" and "forward1".
            if _FORWARD_RE.fullmatch(method) and path and node.owningBlock() == top:
                calls.append(_mark_call(graph, node, path, modules[path], outs[0]))
            node.output().replaceAllUsesWith(outs[0])
            node.destroy()
    raise CaptureError("this TorchScript model calls its methods too deeply to inline",
                       "export it with torch.export instead")


def _mark_call(graph, call_node, path: str, module: nn.Module, value) -> _ScriptCall:
    typ = getattr(module, "original_name", None) or type(module).__name__
    leaf = next(iter(module.children()), None) is None
    kind = value.type().kind()
    if kind == "TensorType":
        items = [("", value)]
    elif kind == "TupleType" and all(e.kind() == "TensorType" for e in value.type().elements()):
        producer = value.node()
        if producer.kind() == "prim::TupleConstruct":
            elems = list(producer.inputs())
        else:
            unpack = graph.create("prim::TupleUnpack", [value], len(value.type().elements()))
            unpack.insertBefore(call_node)
            elems = list(unpack.outputs())
            for o, e in zip(elems, value.type().elements()):
                o.setType(e)
        items = [(f"[{i}]", v) for i, v in enumerate(elems)]
    else:
        items = []
    marks, suffixes = [], []
    for suffix, v in items:
        none = graph.insertConstant(None)
        clone = graph.create("aten::clone", [v, none], 1)
        clone.insertBefore(call_node)
        none.node().moveBefore(clone)
        clone.output().setType(v.type())
        marks.append(clone)
        suffixes.append(suffix)
    return _ScriptCall(path, typ, leaf, marks, suffixes)


class _ScriptBackend:
    """Run a ScriptModule through a rewritten copy of its forward graph that also returns a
    clone of every submodule output (ScriptModules refuse forward hooks).

    With ``grad_tap`` that one output is returned *uncloned* and later uses of it read a clone
    instead, so gradients can be taken with respect to it while in-place operations
    downstream leave it intact.
    """

    def __init__(self, smod: torch.jit.ScriptModule, layers: set[str] | None,
                 grad_tap: str | None = None):
        self.module = smod
        graph = smod.forward.graph.copy()
        calls = _inline_with_marks(graph, smod)
        modules = dict(smod.named_modules())
        order = {n: i for i, n in enumerate(graph.nodes())}

        # Name the calls in execution order (a module's mark follows its children's).
        marked = sorted(calls, key=lambda c: order.get(c.marks[0], -1) if c.marks else -1)
        counts: dict[str, int] = {}
        seen_sources: set[Any] = set()
        keep: list[tuple[str, str, int, Any]] = []  # name, type, params, mark node
        for call in marked:
            name = _call_name(counts, call.path)
            for mark, suffix in zip(call.marks, call.suffixes):
                src = mark.inputsAt(0)
                item = name + suffix
                wanted = layers is None or item in layers or call.path in layers
                duplicate = not call.leaf and src in seen_sources
                seen_sources.add(src)
                if wanted and not duplicate:
                    keep.append((item, call.type, _own_params(modules[call.path]), mark))
                else:
                    mark.destroy()

        self.meta: list[tuple[str, str, int]] = []
        self.grad_index: int | None = None
        extra: list[Any] = []
        for item, typ, params, mark in keep:
            if item == grad_tap:
                src = mark.inputsAt(0)
                src.replaceAllUsesAfterNodeWith(mark, mark.output())
                self.grad_index = len(extra)
                extra.append(src)
            else:
                extra.append(mark.output())
            self.meta.append((item, typ, params))
        if grad_tap is not None and self.grad_index is None:
            raise CaptureError(f"the model has no layer named {grad_tap!r}",
                               "choose a layer from the model's layer list")

        # A method returns one value: pack (original output, *extra) into a tuple.
        (orig,) = list(graph.outputs())
        values = [orig, *extra]
        pack = graph.create("prim::TupleConstruct", values, 1)
        pack.insertBefore(graph.return_node())
        pack.output().setType(torch._C.TupleType([v.type() for v in values]))
        graph.eraseOutput(0)
        graph.registerOutput(pack.output())
        self.graph = graph
        self.fn = torch._C._create_function_from_graph("cnnviz_capture_forward", graph)

    def call(self, x: torch.Tensor, module: nn.Module | None = None) -> tuple[Any, list[torch.Tensor]]:
        outs = self.fn((module if module is not None else self.module)._c, x)
        return outs[0], list(outs[1:])

    def forward(self, x: torch.Tensor) -> tuple[Any, list[tuple[str, str, int, torch.Tensor]]]:
        with torch.inference_mode():
            out, extra = self.call(x)
        return out, [(name, typ, params, t) for (name, typ, params), t in zip(self.meta, extra)]

    def close(self) -> None:
        pass

# --------------------------------------------------------------------------- torch.export


def _export_types(ep: torch.export.ExportedProgram) -> dict[str, str]:
    types: dict[str, str] = {}
    for node in ep.graph.nodes:
        for path, typ in (node.meta.get("nn_module_stack") or {}).values():
            if path and path not in types:
                name = typ if isinstance(typ, str) else getattr(typ, "__name__", str(typ))
                types[path.split("@")[0]] = name.rsplit(".", 1)[-1]
    return types


def _unflatten(ep: torch.export.ExportedProgram, device: torch.device) -> nn.Module:
    try:
        module = torch.export.unflatten(ep)
    except Exception as err:  # noqa: BLE001 - any failure here is the program's shape
        raise CaptureError(f"this torch.export program cannot be split back into its modules: {err}",
                           "export the model again with a current torch (torch.export.export)") from err
    return module.to(device)


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
        module, kind, ep, in_ch = _unwrap(model)
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
            return _ScriptBackend(self.module, self.layers)
        if self.kind == "export" or self._ep is not None:
            if self._ep is None:
                raise CaptureError("this torch.export model came without its ExportedProgram",
                                   "load it with cnnviz.core.models.load_model")
            device, _ = _model_device_dtype(self.module)
            self._hooked = _unflatten(self._ep, device)
            return _EagerBackend(self._hooked, self.layers, self._clone, types=_export_types(self._ep),
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
                module = self._modules.get(_base_name(a.name)) if a.kind == "module" else None
                cached.append(decider.decide(a.name, a.type, tuple(a.tensor.shape), module))
            if self.layout_overrides:
                by_name = {a.name: i for i, a in enumerate(layers)}
                for name, text in self.layout_overrides.items():
                    idx = [by_name[name]] if name in by_name else [
                        i for i, a in enumerate(layers) if _base_name(a.name) == name]
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
        device, dtype = _model_device_dtype(runnable)
        x = _prepare_input(x, device, dtype, self.input_channels)
        flags = _enter_eval(runnable)
        try:
            try:
                out, records = self._backend.forward(x)
            except (torch.OutOfMemoryError, CnnvizError, _StopForward):
                raise
            except Exception as err:  # noqa: BLE001 - the user's forward can raise anything
                raise _forward_error(err, x) from err
        finally:
            _restore_flags(flags)
        layers = []
        op_names = getattr(self._backend, "op_names", ())
        for name, mtype, params, t in records:
            if self.layers is not None and name not in self.layers and _base_name(name) not in self.layers:
                continue
            layers.append(LayerActivation(name=name, type=mtype, shape=tuple(t.shape[1:]),
                                          params=params, tensor=t, index=len(layers),
                                          kind="op" if name in op_names else "module"))
        self._assign_layouts(layers, tuple(x.shape))
        if self.layers is not None:
            found = {a.name for a in layers} | {_base_name(a.name) for a in layers}
            missing = sorted(self.layers - found)
            if missing:
                raise CaptureError(f"the model has no layer named {', '.join(map(repr, missing))}",
                                   "choose layer names from the model's layer list")
        return CaptureResult(layers=layers, output=_prediction(out), device=str(device), raw_output=out)

    def _retry_on_cpu(self, x: torch.Tensor, err: BaseException) -> CaptureResult:
        was = str(_model_device_dtype(self.runnable)[0])
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
    t = logits.detach()
    if t.dim() >= 2:
        t = t[0]
    if t.dim() >= 2:
        t = t.flatten(1).mean(1)
    t = t.float()
    probs = torch.softmax(t, dim=0)
    k = max(0, min(int(k), probs.numel()))
    values, idx = torch.topk(probs, k)
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
