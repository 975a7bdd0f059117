"""ONNX models: opened without trust, every node's output captured through onnxruntime.

An ONNX file is a protobuf graph of standard operators: loading it runs no Python code, so
no trust is asked for. It is recognised by its bytes (:func:`looks_like_onnx`), parsed and
checked (a truncated file, an op no runtime knows: one clear :class:`ModelLoadError`), and
run by onnxruntime (CPU; CUDA when the CUDA provider is installed and the device is cuda).

Capture: a copy of the graph lists every node output as a graph output, so one session run
returns them all. Each node is a layer named by the node (``/layer1/conv1/Conv``; an
unnamed node by its op and position), in graph order (ONNX graphs are topologically
sorted), typed by its op (``Conv``), with the same layouts as PyTorch models
(:mod:`cnnviz.core.layouts`: a ``Transpose`` to channels-last, a ``LayerNormalization``
over the last axis, a ``MatMul`` by a weight on a 4-D tensor are NHWC; a ViT's tokens are
found from its ``class_token`` initializer and the grid).

Preprocessing comes from the input's shape: its channels (1: gray, 3: RGB with ImageNet
statistics) and, when static, its height and width.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.core.errors import ModelLoadError

__all__ = ["OnnxModel", "OnnxRecorder", "load_onnx", "looks_like_onnx"]

# ModelProto fields that may follow ir_version (field 1): producer_name (2), producer_version
# (3), domain (4), model_version (5), doc_string (6), graph (7), opset_import (8),
# metadata_props (14), training_info (20), functions (25), configuration (26).
_NEXT_TAGS = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72, 0xA2, 0xCA, 0xD2}


def looks_like_onnx(path: str | os.PathLike) -> bool:
    """True when the file starts like a serialized ``onnx.ModelProto`` (``ir_version`` then
    another model field). Reads 16 bytes; parses nothing."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    if len(head) < 3 or head[0] != 0x08:
        return False
    i, version = 1, 0
    while i < len(head) and head[i] & 0x80:  # varint
        i += 1
    if i >= len(head) - 1:
        return False
    version = head[1] & 0x7F
    return 1 <= version <= 64 and head[i + 1] in _NEXT_TAGS


@dataclass
class OnnxModel:
    """A loaded ONNX model, shaped like :class:`cnnviz.core.models.LoadedModel` (``module``
    is ``None``; capture goes through :class:`OnnxRecorder`)."""

    proto: Any
    kind: str
    name: str
    source: str
    preprocessing: Any
    labels: list[str] | None = None
    input_name: str = "input"
    input_shape: tuple = ()
    input_channels: int | None = None
    input_size: tuple[int, int] | None = None
    weights: str | None = None
    device: str = "cpu"
    dtype: str = "float32"
    providers: list[str] = field(default_factory=lambda: ["CPUExecutionProvider"])
    module: Any = None
    exported: Any = None
    output_names: list[str] = field(default_factory=list)

    def session(self, capture_all: bool = False):
        """An onnxruntime session: the plain model, or with every data node's output exposed."""
        import onnxruntime as ort

        proto = _with_all_outputs(self.proto, data_outputs(self.proto)) if capture_all else self.proto
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        try:
            return ort.InferenceSession(proto.SerializeToString(), sess_options=opts, providers=self.providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise _runtime_error(exc, self.source) from exc


def _runtime_error(exc: BaseException, source: str) -> ModelLoadError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    low = text.lower()
    if "could not find an implementation" in low or "no op registered" in low or "not a registered function" in low:
        return ModelLoadError(f"{Path(source).name} uses an operator onnxruntime does not have: {text[:300]}",
                              "export the model with standard ONNX operators only (no custom ops)")
    return ModelLoadError(f"onnxruntime cannot run {Path(source).name}: {text[:300]}",
                          "check that the file is complete and was exported with a supported opset")


_SHAPE_OPS = frozenset({"Shape", "Size"})


def data_outputs(proto) -> set[str]:
    """Node outputs computed from the input's values: the layers. Constants, initializer
    copies and the shape arithmetic exporters emit (``Shape -> Gather -> Concat`` feeding a
    ``Reshape``) are left out."""
    inits = {i.name for i in proto.graph.initializer}
    data = {i.name for i in proto.graph.input if i.name not in inits}
    for node in proto.graph.node:
        if node.op_type not in _SHAPE_OPS and any(i in data for i in node.input if i):
            data.update(o for o in node.output if o)
    return data


def _with_all_outputs(proto, wanted: set[str] | None = None):
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(proto)
    g = m.graph
    have = {o.name for o in g.output}
    for node in g.node:
        for out in node.output:
            if out and out not in have and (wanted is None or out in wanted):
                g.output.append(onnx.ValueInfoProto(name=out))
                have.add(out)
    return m


def _dims(value_info) -> tuple:
    t = value_info.type.tensor_type
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)


def load_onnx(path: str | os.PathLike, device: str = "cpu") -> OnnxModel:
    """Parse, check and prepare an ONNX file (runs no code from it)."""
    import onnx

    from cnnviz.core.models.preprocessing import default_preprocessing

    p = Path(path)
    try:
        proto = onnx.load(str(p))
    except Exception as exc:  # noqa: BLE001 - DecodeError, truncated external data, ...
        raise ModelLoadError(f"{p.name} is not a readable ONNX model (truncated or corrupt: "
                             f"{type(exc).__name__}: {str(exc).strip()[:200]})",
                             "export or download the file again") from exc
    unknown = sorted({n.op_type for n in proto.graph.node
                      if n.domain in ("", "ai.onnx") and not onnx.defs.has(n.op_type)})
    if unknown:
        raise ModelLoadError(f"{p.name} uses operators ONNX does not define: {', '.join(unknown)}",
                             "export the model with standard ONNX operators only (no custom ops)")
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:  # noqa: BLE001 - ValidationError and friends
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{p.name} is not a valid ONNX model (truncated or corrupt?): {first[:300]}",
                             "export or download the file again") from exc
    inits = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    if not inputs:
        raise ModelLoadError(f"{p.name} has no input", "export the model with its image input")
    first = inputs[0]
    shape = _dims(first)
    channels = shape[1] if len(shape) == 4 and shape[1] else None
    size = (shape[2], shape[3]) if len(shape) == 4 and shape[2] and shape[3] else None
    pp = default_preprocessing(channels)
    if size is not None:
        import dataclasses

        pp = dataclasses.replace(pp, resize=size, center_crop=None)
    providers = ["CPUExecutionProvider"]
    if str(device).startswith("cuda") or device == "auto":
        import onnxruntime as ort

        if "CUDAExecutionProvider" in ort.get_available_providers():
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    model = OnnxModel(proto=proto, kind="onnx", name=p.stem, source=str(p), preprocessing=pp,
                      input_name=first.name, input_shape=shape, input_channels=channels, input_size=size,
                      providers=providers, device="cuda" if providers[0].startswith("CUDA") else "cpu",
                      output_names=[o.name for o in proto.graph.output])
    model.session()  # an op the runtime lacks fails here, at load time, not at the first frame
    return model


class OnnxRecorder:
    """Every node output of an ONNX model, frame after frame (the session is built once)."""

    def __init__(self, model: OnnxModel, layouts=None):
        from cnnviz.core.layouts import count_prefix_tokens

        self.model = model
        self.layout_overrides = dict(layouts or {})
        self._session = model.session(capture_all=True)
        graph = model.proto.graph
        inits = {i.name: i for i in graph.initializer}
        self._outputs = [o.name for o in self._session.get_outputs()]
        self._final = list(model.output_names)
        # node -> (layer name, op type, attrs) per output
        self._meta: dict[str, tuple[str, str, dict]] = {}
        self._order: list[str] = []
        counts: dict[str, int] = {}
        data = data_outputs(model.proto)
        for i, node in enumerate(graph.node):
            if not any(o in data for o in node.output if o):
                continue
            base = node.name or f"{node.op_type}_{i}"
            k = counts.get(base, 0) + 1
            counts[base] = k
            base = base if k == 1 else f"{base}#{k}"
            attrs: dict[str, Any] = {}
            for a in node.attribute:
                if a.name == "perm":
                    attrs["perm"] = list(a.ints)
                elif a.name == "axis":
                    attrs["axis"] = a.i
            if node.op_type in ("MatMul", "Gemm") and len(node.input) > 1 and node.input[1] in inits:
                attrs["linear"] = len(inits[node.input[1]].dims) == 2
            outs = [o for o in node.output if o and o in data]
            for j, out in enumerate(outs):
                self._meta[out] = (base if len(outs) == 1 else f"{base}[{j}]", node.op_type, attrs)
                self._order.append(out)
        self._prefix = count_prefix_tokens([(n, type("S", (), {"shape": tuple(i.dims)})())
                                            for n, i in inits.items()])
        self._layout_cache: dict = {}

    def run(self, x) -> Any:
        import torch

        from cnnviz.core.capture import CaptureResult, LayerActivation, prediction_of

        arr = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
        if arr.ndim == 3:
            arr = arr[None]
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        ch = self.model.input_channels
        if ch is not None and arr.ndim == 4 and arr.shape[1] != ch:
            from cnnviz.core.capture import channels_error

            raise channels_error(int(ch), int(arr.shape[1]))
        try:
            values = self._session.run(self._outputs, {self.model.input_name: arr})
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception types
            from cnnviz.core.capture import CaptureError

            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CaptureError(f"onnxruntime failed on an input of shape {tuple(arr.shape)}: {first[:300]}",
                               "give the input size and channels the model was exported for "
                               "(--input-size H,W)") from exc
        by_name = dict(zip(self._outputs, values))
        layers = []
        for out in self._order:
            v = by_name.get(out)
            if v is None or not isinstance(v, np.ndarray) or v.dtype == object:
                continue
            name, op, _ = self._meta[out]
            t = torch.from_numpy(v)
            layers.append(LayerActivation(name=name, type=op, shape=tuple(t.shape[1:]), params=0,
                                          tensor=t, index=len(layers)))
        self._assign_layouts(layers, tuple(arr.shape))
        finals = [torch.from_numpy(by_name[n]) for n in self._final if isinstance(by_name.get(n), np.ndarray)]
        raw = finals[0] if len(finals) == 1 else {n: torch.from_numpy(by_name[n]) for n in self._final
                                                  if isinstance(by_name.get(n), np.ndarray)}
        return CaptureResult(layers=layers, output=prediction_of(raw), device=self.model.device, raw_output=raw)

    def _assign_layouts(self, layers, x_shape) -> None:
        from cnnviz.core.capture import CaptureError
        from cnnviz.core.layouts import LayoutDecider, parse_layout

        key = (x_shape, tuple((a.name, tuple(a.tensor.shape)) for a in layers))
        cached = self._layout_cache.get(key)
        if cached is None:
            decider = LayoutDecider(x_shape, *self._prefix)
            attrs = {m[0]: m[2] for m in self._meta.values()}
            cached = [decider.decide(a.name, a.type, tuple(a.tensor.shape), None, attrs.get(a.name)) for a in layers]
            by_name = {a.name: i for i, a in enumerate(layers)}
            for name, text in self.layout_overrides.items():
                if name not in by_name:
                    raise CaptureError(f"the model has no layer named {name!r} (in a layout override)",
                                       "choose layer names from the model's layer list")
                i = by_name[name]
                cached[i] = parse_layout(text, tuple(layers[i].tensor.shape), layer=name, batch=x_shape[0])
            self._layout_cache = {key: cached}
        for a, layout in zip(layers, cached):
            a.layout = layout
            if layout.kind == "nonbatch":  # no batch dimension to drop: the shape is the tensor's
                a.shape = tuple(a.tensor.shape)

    def close(self) -> None:
        self._session = None

    def __enter__(self) -> OnnxRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
