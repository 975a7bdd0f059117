"""Layer layouts: what each axis of a captured tensor means, decided once, shown everywhere.

A captured activation is only a picture once we know which axes are channels and which are
space. Every view, export and the CLI turn a tensor into ``(C, H, W)`` maps through
:func:`to_maps` with the tensor's :class:`Layout`; nothing else reshapes activations.

Kinds
-----
``NCHW``
    Spatial maps, channels first (convolutions). 5-D ``(N, C, T, H, W)`` video features
    and more dimensions flatten into channels (``C*T`` maps).
``NHWC``
    Channels last: Swin blocks, ConvNeXt's ``Permute -> LayerNorm -> Linear`` MLPs, any
    ``Linear``/``LayerNorm`` over the last dimension of a 4-D tensor.
``tokens``
    ``(N, P + H*W, C)`` transformer tokens on an ``H x W`` patch grid with ``P`` prefix
    tokens (class / distillation / register tokens) kept apart: shown as ``C`` maps of
    ``H x W``; the prefix tokens' vectors come from :func:`prefix_tokens`.
``sequence``
    ``(N, L, C)`` with no grid that fits: one ``L x C`` map.
``vector``
    ``(N, F)`` features: one near-square map of ``F`` values (NaN-padded).
``nonbatch``
    Tensors whose first dimension is not the batch (boxes ``(K, 4)``, anchors, RoI features
    ``(R, C, 7, 7)``): kept whole, never cut to row 0 (a table as one ``K x 4`` map, RoIs as
    ``R*C`` maps).
``scalar``
    A 0-d tensor.

Deciding
--------
:class:`LayoutDecider` sees the layers in execution order and decides from, in this order,
the module (``how="module"``: a Conv is NCHW, a Swin block or a ``Permute(0, 2, 3, 1)`` is
NHWC, a ``LayerNorm``/``Linear`` over the last dim of a 4-D tensor is NHWC, the model's
``class_token`` fixes the prefix tokens), the layer before with the same shape
(``"inherited"``: a GELU between two channels-last Linears), or the shape compared with the
input and the spatial grids seen so far (``"shape"``). Where the shape leaves it open the
reason says so (``"ambiguous"``). The user overrides any of it with :func:`parse_layout`
(``"NHWC"``, ``"tokens:14x14+1"``); a layout that does not fit the tensor is an error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnviz.core.errors import CnnvizError

__all__ = [
    "KINDS",
    "Layout",
    "LayoutDecider",
    "LayoutError",
    "count_prefix_tokens",
    "map_shape",
    "parse_layout",
    "prefix_tokens",
    "to_maps",
]

KINDS = ("NCHW", "NHWC", "tokens", "sequence", "vector", "nonbatch", "scalar")


class LayoutError(CnnvizError):
    """A layout (a user's override) that does not fit the tensor."""


@dataclass(frozen=True)
class Layout:
    """What the axes of one captured tensor mean, and how that was decided.

    Attributes
    ----------
    kind:
        One of :data:`KINDS`.
    reason:
        One sentence a user can check (``"Permute(0, 2, 3, 1) output"``).
    how:
        ``"module"`` | ``"inherited"`` | ``"shape"`` | ``"ambiguous"`` | ``"user"``.
    grid:
        ``(H, W)`` of the patch grid (tokens only).
    n_prefix_tokens:
        Class / register tokens before the grid (tokens only).
    """

    kind: str
    reason: str
    how: str = "shape"
    grid: tuple[int, int] | None = None
    n_prefix_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "how": self.how, "reason": self.reason}
        if self.kind == "tokens":
            d["grid"] = list(self.grid or ())
            d["prefix_tokens"] = self.n_prefix_tokens
        return d

    def describe(self) -> str:
        extra = ""
        if self.kind == "tokens" and self.grid:
            extra = f" {self.grid[0]}x{self.grid[1]}" + (f"+{self.n_prefix_tokens}" if self.n_prefix_tokens else "")
        return f"{self.kind}{extra} ({self.how}: {self.reason})"


# --------------------------------------------------------------------------- maps


def _near_square(v, torch_mod):
    n = int(v.numel())
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    flat = torch_mod.full((rows * cols,), float("nan"), dtype=torch_mod.float32, device=v.device)
    flat[:n] = v.reshape(-1).float()
    return flat.reshape(1, rows, cols)


def to_maps(tensor, layout: Layout, item: int = 0):
    """The ``(C, H, W)`` maps a layer is shown as.

    ``tensor`` is the captured tensor *with* its batch dimension (a ``nonbatch`` tensor is
    used whole; for the others item ``item`` of the batch). A numpy array gives a numpy
    array; a torch tensor a torch tensor (a view where the layout allows, no copy).
    """
    import torch

    as_numpy = isinstance(tensor, np.ndarray)
    t = torch.from_numpy(np.ascontiguousarray(tensor)) if as_numpy else tensor
    kind = layout.kind
    if kind == "scalar" or t.dim() == 0:
        m = t.reshape(1, 1, 1)
    elif kind == "nonbatch":
        if t.dim() == 1:
            m = _near_square(t, torch)
        elif t.dim() == 2:
            m = t.unsqueeze(0)
        elif t.dim() == 3:
            m = t
        else:
            m = t.reshape(-1, *t.shape[-2:])
    else:
        x = t[item]
        if kind == "NCHW":
            m = x if x.dim() == 3 else x.reshape(-1, *x.shape[-2:])
        elif kind == "NHWC":
            m = x.permute(2, 0, 1)
        elif kind == "tokens":
            h, w = layout.grid
            p = layout.n_prefix_tokens
            m = x[p:].reshape(h, w, x.shape[-1]).permute(2, 0, 1)
        elif kind == "sequence":
            m = x.unsqueeze(0) if x.dim() == 2 else x.reshape(1, 1, -1)
        elif kind == "vector":
            m = _near_square(x, torch)
        else:  # pragma: no cover - KINDS is closed
            raise ValueError(f"unknown layout kind {kind!r}")
    return m.numpy() if as_numpy else m


def map_shape(shape: Sequence[int], layout: Layout) -> tuple[int, int, int]:
    """The ``(C, H, W)`` shape :func:`to_maps` gives for a tensor of ``shape`` (with batch)."""
    shape = tuple(int(s) for s in shape)
    kind = layout.kind
    if kind == "scalar" or not shape:
        return (1, 1, 1)
    if kind == "nonbatch":
        if len(shape) == 1:
            return (1, *_square(shape[0]))
        if len(shape) == 2:
            return (1, *shape)
        if len(shape) == 3:
            return shape  # type: ignore[return-value]
        return (math.prod(shape[:-2]), shape[-2], shape[-1])
    s = shape[1:]
    if kind == "NCHW":
        return (math.prod(s[:-2]), s[-2], s[-1])
    if kind == "NHWC":
        return (s[2], s[0], s[1])
    if kind == "tokens":
        return (s[-1], *layout.grid)
    if kind == "sequence":
        return (1, *s) if len(s) == 2 else (1, 1, math.prod(s))
    if kind == "vector":
        return (1, *_square(math.prod(s)))
    raise ValueError(f"unknown layout kind {kind!r}")


def _square(n: int) -> tuple[int, int]:
    cols = max(1, math.ceil(math.sqrt(n)))
    return (max(1, math.ceil(n / cols)), cols)


def prefix_tokens(tensor, layout: Layout, item: int = 0):
    """The class / register tokens' vectors ``(P, C)`` of a ``tokens`` layer, else ``None``."""
    if layout.kind != "tokens" or not layout.n_prefix_tokens:
        return None
    return tensor[item][: layout.n_prefix_tokens]


# --------------------------------------------------------------------------- user overrides

_OVERRIDE_RE = re.compile(r"^tokens(?::(\d+)x(\d+)(?:\+(\d+))?)?$", re.IGNORECASE)


def parse_layout(text: str, shape: Sequence[int], *, layer: str = "the layer", batch: int = 1) -> Layout:
    """The user's layout ``text`` for a tensor of ``shape`` (with batch); raise
    :class:`LayoutError` naming the cause and the fix when it does not fit.

    ``text``: ``NCHW``, ``NHWC``, ``vector``, ``sequence``, ``nonbatch``, ``tokens`` (grid
    found from the token count, one class token if the count needs it) or
    ``tokens:HxW`` / ``tokens:HxW+P``.
    """
    shape = tuple(int(s) for s in shape)
    raw = str(text).strip()
    key = raw.upper()
    dims = len(shape)
    where = f"layer {layer!r} has shape {shape}"

    def bad(need: str) -> LayoutError:
        return LayoutError(f"layout {raw!r} does not fit: it needs {need}, but {where}",
                           f"choose a layout that fits ({', '.join(KINDS[:-1])}, tokens:HxW+P)")

    reason = f"set by the user ({raw})"
    if key == "NCHW":
        if dims < 4:
            raise bad("at least 4 dimensions (N, C, H, W)")
        return Layout("NCHW", reason, "user")
    if key == "NHWC":
        if dims != 4:
            raise bad("4 dimensions (N, H, W, C)")
        return Layout("NHWC", reason, "user")
    if key == "VECTOR":
        if dims < 1:
            raise bad("a batch dimension")
        return Layout("vector", reason, "user")
    if key == "SEQUENCE":
        if dims != 3:
            raise bad("3 dimensions (N, L, C)")
        return Layout("sequence", reason, "user")
    if key == "NONBATCH":
        if dims < 1:
            raise bad("at least one dimension")
        return Layout("nonbatch", reason, "user")
    m = _OVERRIDE_RE.match(raw)
    if m:
        if dims != 3:
            raise bad("3 dimensions (N, tokens, C)")
        n_tokens = shape[1]
        if m.group(1):
            h, w, p = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
            if h * w + p != n_tokens:
                raise bad(f"{h}x{w}+{p} = {h * w + p} tokens")
            return Layout("tokens", reason, "user", (h, w), p)
        for p in (0, 1):
            g = _factor_grid(n_tokens - p, None)
            if g is not None:
                return Layout("tokens", reason, "user", g, p)
        raise bad("a token count that is a grid H*W (+1 class token)")
    raise LayoutError(f"unknown layout {raw!r} for {layer!r}",
                      "use NCHW, NHWC, tokens, tokens:HxW+P, sequence, vector or nonbatch")


# --------------------------------------------------------------------------- deciding

# Modules whose outputs are channels-last by construction.
_NHWC_TYPES = frozenset({
    "SwinTransformerBlock", "SwinTransformerBlockV2", "PatchMerging", "PatchMergingV2",
    "ShiftedWindowAttention", "ShiftedWindowAttentionV2",
})
# Modules / ONNX ops whose 4-D outputs are channels-first by construction.
_NCHW_TYPES = frozenset({
    "Conv2d", "ConvTranspose2d", "BatchNorm2d", "InstanceNorm2d", "MaxPool2d", "AvgPool2d",
    "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "Conv2dNormActivation", "LayerNorm2d",
    "FrozenBatchNorm2d", "Upsample", "PixelShuffle", "Conv", "ConvTranspose",
    "BatchNormalization", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
    "InstanceNormalization", "Resize",
})
_PREFIX_PARAM_RE = re.compile(r"(^|\.|_)(class_token|cls_token|dist_token|reg_token|register_tokens)$")


def count_prefix_tokens(named_tensors: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> tuple[int, str | None]:
    """``(P, names)``: how many tokens the model puts before its patch grid, from its
    ``class_token`` / ``cls_token`` / ``dist_token`` / ``reg_token`` parameters (torchvision,
    timm, DINOv2), each ``(1, k, C)`` counting ``k``."""
    items = named_tensors.items() if isinstance(named_tensors, Mapping) else named_tensors
    total, names = 0, []
    for name, t in items:
        if _PREFIX_PARAM_RE.search(name):
            shape = tuple(getattr(t, "shape", ()))
            total += int(shape[-2]) if len(shape) >= 2 else 1
            names.append(name)
    return total, (", ".join(names) if names else None)


def _factor_grid(n: int, aspect: float | None, grids: Sequence[tuple[int, int]] = ()) -> tuple[int, int] | None:
    """An ``(h, w)`` with ``h * w == n``: a grid seen before, else the one closest to
    ``aspect`` (h / w; square when unknown) within 15 %."""
    if n <= 0:
        return None
    for g in grids:
        if g[0] * g[1] == n:
            return g
    target = aspect or 1.0
    best = None
    for d in range(1, math.isqrt(n) + 1):
        if n % d:
            continue
        for h, w in ((d, n // d), (n // d, d)):
            err = abs(math.log((h / w) / target))
            if best is None or err < best[0]:
                best = (err, (h, w))
    if best is None or best[0] > math.log(1.15) or min(best[1]) < 2:
        return None
    return best[1]


class LayoutDecider:
    """Decides the layout of each layer of one forward, in execution order.

    Parameters
    ----------
    input_shape:
        The model input's shape (``(N, C, H, W)``): the batch size and the aspect ratio.
    n_prefix_tokens, prefix_source:
        From :func:`count_prefix_tokens` over the model's parameters (``0, None`` if none).
    """

    def __init__(self, input_shape: Sequence[int], n_prefix_tokens: int = 0, prefix_source: str | None = None):
        shape = tuple(int(s) for s in input_shape)
        self.batch = shape[0] if shape else 1
        self.input_hw = shape[-2:] if len(shape) >= 4 else None
        self.aspect = (self.input_hw[0] / self.input_hw[1]) if self.input_hw and self.input_hw[1] else None
        self.n_prefix = int(n_prefix_tokens)
        self.prefix_source = prefix_source
        self.grids: list[tuple[int, int]] = []  # spatial sizes seen on channels-first maps
        self.by_shape: dict[tuple[int, ...], tuple[str, Layout]] = {}

    # -- shape tests
    def _is_grid(self, h: int, w: int) -> bool:
        if (h, w) in self.grids:
            return True
        if self.input_hw is None:
            return h == w and h > 1
        H, W = self.input_hw
        if h > H or w > W or h < 1 or w < 1:
            return False
        return abs(math.log((h / w) / (H / W))) <= math.log(1.15)

    def _remember(self, name: str, shape: tuple[int, ...], layout: Layout) -> Layout:
        if layout.kind == "NCHW" and len(shape) == 4 and (shape[2], shape[3]) not in self.grids:
            self.grids.append((shape[2], shape[3]))
        if layout.kind == "tokens" and layout.grid not in self.grids:
            self.grids.append(layout.grid)
        self.by_shape[shape] = (name, layout)
        return layout

    def decide(self, name: str, type_name: str, shape: Sequence[int], module: Any = None,
               attrs: Mapping[str, Any] | None = None) -> Layout:
        """The layout of layer ``name`` (a module of class ``type_name``, or an ONNX op) whose
        output has ``shape`` (with batch). ``module`` is the nn.Module when there is one;
        ``attrs`` ONNX facts (``perm``, ``axis``, ``linear``)."""
        shape = tuple(int(s) for s in shape)
        return self._remember(name, shape, self._decide(name, type_name, shape, module, attrs or {}))

    def _decide(self, name, type_name, shape, module, attrs) -> Layout:
        dims = len(shape)
        if dims == 0:
            return Layout("scalar", "a single number", "shape")
        if shape[0] != self.batch:
            return Layout("nonbatch", f"first dimension {shape[0]} is not the batch ({self.batch}): "
                                      "kept whole (boxes, anchors, RoIs)", "shape")
        if dims <= 2:
            return Layout("vector", f"{shape[-1] if dims == 2 else 1} features per item", "shape")
        if dims == 3:
            return self._tokens(shape, type_name)
        if dims >= 5:
            return Layout("NCHW", f"{dims}-D: the dimensions between the batch and the last two "
                                  "are shown as channels (C x T for video)", "shape")
        evidence = self._module_evidence(type_name, shape, module, attrs)
        if evidence is not None:
            return evidence
        prev = self.by_shape.get(shape)
        if prev is not None and prev[1].kind in ("NCHW", "NHWC") and prev[1].how != "ambiguous":
            return Layout(prev[1].kind, f"same shape as {prev[0]} before it", "inherited")
        _, a, b, c = shape
        nchw, nhwc = self._is_grid(b, c), self._is_grid(a, b)
        if nhwc and not nchw:
            return Layout("NHWC", f"dimensions 1-2 ({a}x{b}) are a spatial grid of the input, "
                                  f"the last ({c}) the channels", "shape")
        if nchw and not nhwc:
            return Layout("NCHW", f"the last two dimensions ({b}x{c}) are a spatial grid", "shape")
        if nchw and nhwc and (b, c) in self.grids and (a, b) not in self.grids:
            return Layout("NCHW", f"the last two dimensions ({b}x{c}) are a grid seen before", "shape")
        if nchw and nhwc and (a, b) in self.grids and (b, c) not in self.grids:
            return Layout("NHWC", f"dimensions 1-2 ({a}x{b}) are a grid seen before", "shape")
        return Layout("NCHW", f"shape {shape[1:]} fits channels-first and channels-last alike; "
                              "channels-first assumed (override with a layout if wrong)", "ambiguous")

    def _module_evidence(self, type_name, shape, module, attrs) -> Layout | None:
        if type_name in _NHWC_TYPES:
            return Layout("NHWC", f"a {type_name} works channels-last", "module")
        perm = attrs.get("perm")
        if perm is None and module is not None and type_name == "Permute":
            perm = getattr(module, "dims", None)
        if perm is not None:
            perm = [int(p) for p in perm]
            if perm == [0, 2, 3, 1]:
                return Layout("NHWC", f"{type_name}({', '.join(map(str, perm))}) moves channels last", "module")
            if perm == [0, 3, 1, 2]:
                return Layout("NCHW", f"{type_name}({', '.join(map(str, perm))}) moves channels first", "module")
        if type_name in _NCHW_TYPES:
            return Layout("NCHW", f"a {type_name} output (channels first)", "module")
        c = shape[-1]
        if type_name == "LayerNorm" and module is not None:
            ns = tuple(getattr(module, "normalized_shape", ()) or ())
            if ns == (c,) and shape[1] != c:
                return Layout("NHWC", f"LayerNorm over the last dimension ({c} channels)", "module")
        if type_name == "LayerNormalization" and int(attrs.get("axis", -1)) in (-1, 3):
            return Layout("NHWC", f"LayerNormalization over the last dimension ({c} channels)", "module")
        if type_name == "Linear" and module is not None and getattr(module, "out_features", None) == c:
            return Layout("NHWC", f"Linear over the last dimension ({c} channels)", "module")
        if attrs.get("linear"):
            return Layout("NHWC", f"{type_name} with a weight over the last dimension ({c} channels)", "module")
        return None

    def _tokens(self, shape, type_name) -> Layout:
        _, n, c = shape
        if self.n_prefix and n > self.n_prefix:
            g = _factor_grid(n - self.n_prefix, self.aspect, self.grids)
            if g is not None:
                return Layout("tokens", f"{n} tokens = {self.n_prefix} prefix token"
                                        f"{'s' if self.n_prefix > 1 else ''} (the model's {self.prefix_source}) "
                                        f"+ {g[0]}x{g[1]} patches", "module", g, self.n_prefix)
        for p in (0, 1):
            g = _factor_grid(n - p, self.aspect, self.grids)
            if g is not None and (g in self.grids or self._is_grid(*g)):
                seen = " (a grid seen before)" if g in self.grids else ""
                extra = " + 1 leading token taken as a class token" if p else ""
                return Layout("tokens", f"{n} tokens = {g[0]}x{g[1]} patches{seen}{extra}", "shape", g, p)
        return Layout("sequence", f"no patch grid fits {n} tokens: shown as one {n}x{c} map", "shape")
