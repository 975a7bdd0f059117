"""Receptive fields: the theoretical receptive field of every layer, traced from the layers'
geometry (kernel, stride, padding, dilation) along the real data flow, and the input box one
unit sees (:func:`receptive_field`, :func:`theoretical_rf_box`). Split from
:mod:`cnnviz.core.explain`, which re-exports both."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from cnnviz.core.explain_tap import TapRunner
from cnnviz.core.capture import (
    HookSet,
    model_device_dtype,
    restore_flags,
    enter_eval,
    capture,
)


# --------------------------------------------------------------------------- receptive fields


class ReceptiveField(NamedTuple):
    """Theoretical receptive field of a layer's units, per axis ``(y, x)``.

    A unit at ``(i, j)`` sees the input box centred at ``start + (i, j) * jump`` (in input
    pixel coordinates, pixel ``p`` centred at ``p``), ``size`` pixels wide, before clipping
    to the image (padding lies outside it).

    ``scope`` says what kind of field it is: ``"local"`` (convolutions, pooling, patch
    embeddings, per-token / per-pixel layers), ``"window"`` (Swin's windowed attention: the
    box bounds the attention window around the unit, which is smaller and shifts), or
    ``"global"`` (after global attention every unit sees the whole input: ``size`` is the
    input's, ``jump`` 0).
    """

    size: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[float, float]
    scope: str = "local"


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


_ATTENTION_OPS = {"multi_head_attention_forward", "scaled_dot_product_attention", "native_multi_head_attention"}
_SCOPES = ("local", "window", "global")


def _norm_dim(d: int, n: int) -> int:
    return d + n if d < 0 else d


class _GeometryTracker(TorchFunctionMode):
    """Follows every torch call of a forward pass and gives each tensor derived from the
    input its receptive-field geometry, where its spatial axes are, and its scope.

    Spatial axes (``hw``) are a pair of dims (``(2, 3)`` channels first, ``(1, 2)`` channels
    last, moved by ``permute``/``transpose``) or ``("flat", dim, offset)`` for tokens: an
    ``H x W`` grid flattened into one dim after ``offset`` prefix (class) tokens. Geometry is
    ``None`` where it depends on the whole input or cannot be worked out (adaptive pooling,
    linear layers across space, resampling...); global attention gives scope ``"global"``.
    """

    _CONV = {"conv2d", "convolution", "conv2d_forward"}
    _MAXPOOL = {"max_pool2d", "max_pool2d_with_indices"}
    _AVGPOOL = {"avg_pool2d"}

    def __init__(self, x: torch.Tensor):
        super().__init__()
        self.input_hw = tuple(int(v) for v in x.shape[-2:])
        self.attention: list = []  # the fields of the attention modules running (innermost last)
        self.geo: dict[int, tuple] = {id(x): (x, _IDENTITY, (2, 3), "local")}

    def lookup(self, t: torch.Tensor) -> tuple[bool, _Geo | None]:
        known, g, _hw, _scope = self.lookup_full(t)
        return known, g

    def lookup_full(self, t: torch.Tensor) -> tuple[bool, _Geo | None, Any, str]:
        entry = self.geo.get(id(t))
        if entry is None or entry[0] is not t:
            return False, None, None, "local"
        return True, entry[1], entry[2], entry[3]

    def set(self, t: torch.Tensor, geo, hw, scope: str) -> None:
        self.geo[id(t)] = (t, geo, hw, scope)

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
                known, g, hw, scope = self.lookup_full(t)
                if known:
                    ins.append((t, g, hw, scope))
        if not ins:
            return  # built from constants / parameters only
        name = _op_name(func).strip("_")
        res = self._geometry(name, args, kwargs, ins, outs[0])
        geo, hw, scope = res if res is not None else (None, None, "local")
        for t in outs:
            same = t.shape == outs[0].shape
            self.set(t, geo if same else None, hw if same else None, scope if same else "local")

    # -- spatial axes
    @staticmethod
    def _hw_sizes(t: torch.Tensor, hw) -> tuple | None:
        if hw is None:
            return None
        if hw[0] == "flat":
            return ("flat", t.shape[hw[1]] if hw[1] < t.dim() else None, hw[2])
        a, b = hw
        if max(a, b) >= t.dim():
            return None
        return (t.shape[a], t.shape[b])

    def _geometry(self, name, args, kwargs, ins, out):
        """``(geo, hw, scope)`` of ``out``, or ``None`` (not local geometry)."""
        first = _arg(args, kwargs, 0, "input")
        known, g0, hw0, sc0 = (self.lookup_full(first) if isinstance(first, torch.Tensor)
                               else (False, None, None, "local"))
        if any(sc == "global" for *_, sc in ins):
            return (None, None, "global")
        if name in _ATTENTION_OPS or (name in ("matmul", "bmm", "baddbmm", "softmax")
                                      and any(hw is not None and hw[0] == "flat" for _, _, hw, _ in ins)):
            return (None, None, "global")
        if name in self._CONV or name in self._MAXPOOL or name in self._AVGPOOL:
            if not known or g0 is None or hw0 != (2, 3) or out.dim() != 4:
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
            return (_apply_window(g0, k, s, p, d), (2, 3), sc0)
        if name == "cat":
            tensors = list(_arg(args, kwargs, 0, "tensors"))
            dim = int(_arg(args, kwargs, 1, "dim", 0))
            dim = _norm_dim(dim, out.dim())
            known_ts = [(i, t) for i, t in enumerate(tensors) if self.lookup_full(t)[0]]
            if len(known_ts) == 1:
                i, t = known_ts[0]
                _, g, hw, sc = self.lookup_full(t)
                if g is not None and hw is not None and hw[0] == "flat" and hw[1] == dim:
                    before = sum(int(tt.shape[dim]) for tt in tensors[:i])
                    return (g, ("flat", dim, hw[2] + before), sc)  # class token(s) put before the grid
            return self._generic(ins, out)
        if not known or g0 is None or hw0 is None:
            return self._generic(ins, out)
        n = first.dim()
        if name == "permute":
            dims = [a for a in args[1:]] if len(args) > 1 else list(kwargs.get("dims", ()))
            if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
                dims = list(dims[0])
            dims = [_norm_dim(int(v), n) for v in dims]
            if hw0[0] == "flat":
                return (g0, ("flat", dims.index(hw0[1]), hw0[2]), sc0)
            return (g0, (dims.index(hw0[0]), dims.index(hw0[1])), sc0)
        if name in ("transpose", "swapaxes", "swapdims"):
            d0 = _norm_dim(int(_arg(args, kwargs, 1, "dim0")), n)
            d1 = _norm_dim(int(_arg(args, kwargs, 2, "dim1")), n)

            def move(d):
                return d1 if d == d0 else d0 if d == d1 else d
            if hw0[0] == "flat":
                return (g0, ("flat", move(hw0[1]), hw0[2]), sc0)
            return (g0, (move(hw0[0]), move(hw0[1])), sc0)
        if name in ("flatten", "reshape", "view"):
            if tuple(out.shape) == tuple(first.shape):
                return (g0, hw0, sc0)
            if (hw0 == (2, 3) and n == 4 and out.dim() == 3 and tuple(out.shape[:2]) == tuple(first.shape[:2])
                    and out.shape[2] == first.shape[2] * first.shape[3]):
                return (g0, ("flat", 2, 0), sc0)  # (N, C, H*W): the grid flattened, row-major
            return None
        if name == "getitem":
            return self._getitem(args[1] if len(args) > 1 else None, g0, hw0, sc0, first, out)
        return self._generic(ins, out)

    def _getitem(self, index, g, hw, sc, t, out):
        """Strided slices along the spatial axes (Swin's patch merging takes x[..., 0::2, 1::2, :])."""
        if hw[0] == "flat":
            return None
        idx = index if isinstance(index, tuple) else (index,)
        if any(not isinstance(i, slice) and i is not Ellipsis for i in idx) or sum(i is Ellipsis for i in idx) > 1:
            return None
        if Ellipsis in idx:
            e = idx.index(Ellipsis)
            idx = idx[:e] + (slice(None),) * (t.dim() - len(idx) + 1) + idx[e + 1:]
        idx = idx + (slice(None),) * (t.dim() - len(idx))
        geo = list(g)
        for ax, d in enumerate(hw):
            sl = idx[d]
            start, _stop, step = sl.indices(int(t.shape[d]))
            if step < 1:
                return None
            geo[4 + ax] = g[4 + ax] + start * g[2 + ax]
            geo[2 + ax] = g[2 + ax] * step
        return (tuple(geo), hw, sc)

    def _generic(self, ins, out):
        """Ops that keep the spatial axes and their sizes (elementwise ops, norms, linear
        layers over channels, concatenation along channels, residual adds): the union of
        the inputs' fields; the widest scope wins."""
        geos, hw_out, scope = [], None, "local"
        for t, g, hw, sc in ins:
            if g is None or hw is None or t.dim() != out.dim():
                return None
            if self._hw_sizes(t, hw) != self._hw_sizes(out, hw):
                return None
            if hw_out is not None and hw != hw_out:
                return None
            hw_out = hw
            geos.append(g)
            scope = max(scope, sc, key=_SCOPES.index)
        u = _union(geos)
        return (u, hw_out, scope) if u is not None else None


def _to_rf(g: _Geo | None, scope: str = "local", input_hw: tuple[int, int] | None = None) -> ReceptiveField | None:
    if scope == "global" and input_hw is not None:
        h, w = input_hw
        return ReceptiveField((int(h), int(w)), (0, 0), ((h - 1) / 2, (w - 1) / 2), "global")
    if g is None:
        return None
    return ReceptiveField((int(g[0]), int(g[1])), (int(g[2]), int(g[3])), (float(g[4]), float(g[5])), scope)


_WINDOW_TYPES = ("ShiftedWindowAttention", "ShiftedWindowAttentionV2", "WindowAttention")


def _attention_hooks(module: nn.Module, tracker: _GeometryTracker, types: dict[str, str] | None) -> list:
    """Forward hooks giving attention modules' outputs their scope: Swin's windowed attention
    bounds a unit's field by the window around it (``2 * window - 1`` tokens: the window
    holding the unit shifts with it), other attention is global."""
    handles = []
    for name, mod in module.named_modules():
        tname = (types or {}).get(name) or type(mod).__name__
        if "attention" not in tname.lower():
            continue
        window = getattr(mod, "window_size", None) if tname in _WINDOW_TYPES else None

        def field(inp, window=window):
            """(geo, hw, scope) of the attention's output for its input, or None."""
            x = next((t for t in tree_flatten(inp)[0] if isinstance(t, torch.Tensor)), None)
            if x is None:
                return None, None
            known, g, hw, sc = tracker.lookup_full(x)
            if not known:
                return x, None
            if window is not None:
                if g is not None and hw is not None and hw[0] != "flat" and sc != "global":
                    ws = _pair(window)
                    k = tuple(2 * w - 1 for w in ws)
                    return x, (_apply_window(g, k, (1, 1), tuple(w - 1 for w in ws), (1, 1)), hw, "window")
                return x, None
            return x, (None, hw, "global")

        def pre(_m, inp, field=field):
            tracker.attention.append(field(inp)[1])

        def post(_m, inp, out, field=field):
            if tracker.attention:
                tracker.attention.pop()
            x, f = field(inp)
            if f is None:
                return None
            for t in (tv for tv in tree_flatten(out)[0] if isinstance(tv, torch.Tensor)):
                if f[2] == "window" or t.shape == x.shape:
                    tracker.set(t, *f)
            return None

        handles.append(mod.register_forward_pre_hook(pre))
        handles.append(mod.register_forward_hook(post))
    return handles


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
    runner = TapRunner(model)
    device, dtype = model_device_dtype(runner.module)
    x = torch.zeros(shape, device=device, dtype=dtype or torch.float32)
    if runner.script:
        return {a.name: None for a in capture(model, x).layers}
    result: dict[str, ReceptiveField | None] = {}
    tracker = _GeometryTracker(x)

    def on_output(name, _type, _params, t):
        known, g, _hw, scope = tracker.lookup_full(t)
        if (not known or (g is None and scope == "local")) and tracker.attention and tracker.attention[-1]:
            # inside attention, where the ops mixing tokens lose track: the attention's own field
            _, g, _hw, scope = (True, *tracker.attention[-1])
            known = True
        result[name] = _to_rf(g, scope, tracker.input_hw) if known else None

    attn = _attention_hooks(runner.module, tracker, runner.types)  # before the recording hooks: they run first
    hooks = HookSet(runner.module, on_output, types=runner.types)
    flags = enter_eval(runner.module)
    try:
        hooks.active = True
        with torch.no_grad(), tracker:
            runner.module(x)
    finally:
        hooks.active = False
        hooks.remove()
        for h in attn:
            h.remove()
        restore_flags(flags)
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
