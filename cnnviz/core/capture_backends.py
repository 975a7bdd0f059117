"""Capture backends of :mod:`cnnviz.core.capture` (moved out of it; import them from there).

Eager forward hooks (plus the every-op ``TorchFunctionMode`` recorder), TorchScript graphs
marked per call, and ``torch.export`` programs unflattened back to modules.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cnnviz.core.capture_common import CaptureError, flatten_output, _own_params


# --------------------------------------------------------------------------- eager hooks


class StopForward(Exception):
    """Raised from a hook to end a forward pass early (nothing later is needed)."""


def _call_name(counts: dict[str, int], base: str) -> str:
    k = counts.get(base, 0) + 1
    counts[base] = k
    return base if k == 1 else f"{base}#{k}"


class HookSet:
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
            for item_name, t in flatten_output(name, out):
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
            tensors = flatten_output("", out)
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
        only = None if layers is None else {base_module_name(n) for n in layers}
        self.hooks = HookSet(module, self._on_output, types=types, only=only)
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


def base_module_name(name: str) -> str:
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


class ScriptBackend:
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


def export_types(ep: torch.export.ExportedProgram) -> dict[str, str]:
    types: dict[str, str] = {}
    for node in ep.graph.nodes:
        for path, typ in (node.meta.get("nn_module_stack") or {}).values():
            if path and path not in types:
                name = typ if isinstance(typ, str) else getattr(typ, "__name__", str(typ))
                types[path.split("@")[0]] = name.rsplit(".", 1)[-1]
    return types


def unflatten_output(ep: torch.export.ExportedProgram, device: torch.device) -> nn.Module:
    try:
        module = torch.export.unflatten(ep)
    except Exception as err:  # noqa: BLE001 - any failure here is the program's shape
        raise CaptureError(f"this torch.export program cannot be split back into its modules: {err}",
                           "export the model again with a current torch (torch.export.export)") from err
    return module.to(device)
