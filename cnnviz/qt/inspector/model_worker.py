"""What the model inspector computes off the GUI thread, and the requests that ask for it.

Two :class:`~cnnviz.qt.workers.LatestRequestWorker` s (the house's one worker pattern) run
the functions here:

* the **loader** runs :func:`run_load` on a :class:`LoadRequest`: it imports torch (lazily,
  in its own thread, so the window never freezes on the import), loads the model with
  :func:`cnnviz.core.models.load_model` and returns a :class:`LoadOutcome`;
* the **inference** worker runs an :class:`InspectEngine` on :class:`InspectRequest` s. Every
  request is a complete, frozen snapshot of what the window shows (model, input frame,
  selected layer and channel, the open views and their settings), so when a newer request
  replaces a waiting one nothing is lost. The engine keeps the model's
  :class:`~cnnviz.core.capture.Recorder` (hooks) and the last capture between requests: a
  request for the same frame (the user picked another layer or tab) re-uses the capture
  instead of running the model again.

Everything a result carries is numpy or plain Python: tensors never cross to the GUI thread.
All model work (capture, Grad-CAM, receptive fields, device moves) happens on the inference
thread only, so no two threads ever run one model at once.

Nothing here imports torch at module level and nothing touches a widget.
"""

from __future__ import annotations

import csv
import dataclasses
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "VIEWS",
    "CamData",
    "ChannelStats",
    "ExportJob",
    "InspectEngine",
    "InspectRequest",
    "InspectResult",
    "LayerInfo",
    "LoadOutcome",
    "LoadRequest",
    "OverviewRow",
    "RFData",
    "WeightsData",
    "default_layer",
    "gpu_summary",
    "run_load",
]

#: Views a request can ask for besides the layer list and predictions (always computed).
VIEWS = ("grid", "overview", "weights", "cam", "rf")

#: Layer types whose output is just a reshaped/elementwise copy: skipped as CAM defaults.
_CONV_WORDS = ("conv",)


# ============================================================================================
# Loading
# ============================================================================================


class _TrustView:
    """A trust store plus hashes the user accepted in this session's trust dialog.

    The core only asks ``is_trusted_hash(sha)``; accepting a file "just this once" adds its
    hash here instead of passing ``trust=True``, so what loads is exactly the bytes the
    user was asked about (the core loads the bytes it hashed).
    """

    def __init__(self, store: Any, extra: frozenset[str]):
        self._store = store
        self._extra = frozenset(h.lower() for h in extra)

    def is_trusted_hash(self, sha256: str) -> bool:
        if sha256.lower() in self._extra:
            return True
        return bool(self._store is not None and self._store.is_trusted_hash(sha256))


@dataclass(frozen=True, eq=False)
class LoadRequest:
    """One model to load; see :func:`cnnviz.core.models.load_model` for ``spec``/``weights``.

    Attributes
    ----------
    trust:
        The caller vouches for the file (no dialog, nothing remembered).
    ask:
        On :class:`~cnnviz.core.errors.TrustRequired` the window shows the trust dialog
        (``False``: it just reports the refusal).
    trusted_hashes:
        SHA-256 digests the user accepted in the trust dialog for this load.
    trust_store:
        The persistent :class:`~cnnviz.core.trust.TrustStore` (or ``None``).
    on_stage, on_bytes:
        Called from the loader thread: ``on_stage(text)`` for each step, ``on_bytes(done,
        total)`` while pretrained weights download. They must only emit Qt signals.
    cancel:
        Set to stop a download.
    """

    spec: str
    weights: str | None = None
    ctor_kwargs: str | None = None
    labels_path: str | None = None
    trust: bool = False
    ask: bool = True
    trusted_hashes: frozenset[str] = frozenset()
    trust_store: Any = None
    device: str = "auto"
    dtype: str = "float32"
    on_stage: Callable[[str], None] | None = None
    on_bytes: Callable[[int, Any], None] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def with_trusted(self, sha256: str | None) -> LoadRequest:
        """The same request with one more accepted hash (or ``trust=True`` when the file's
        hash is unknown because no trust store could be read)."""
        if sha256 is None:
            return dataclasses.replace(self, trust=True, cancel=threading.Event())
        return dataclasses.replace(self, trusted_hashes=self.trusted_hashes | {sha256.lower()},
                                   cancel=threading.Event())

    def recent_entry(self) -> dict[str, Any]:
        """What the recent-models list remembers (never the trust decision)."""
        return {"spec": self.spec, "weights": self.weights, "ctor_kwargs": self.ctor_kwargs,
                "labels": self.labels_path}


@dataclass
class LoadOutcome:
    """A loaded model and what the window shows about it (the model object itself crosses
    threads once, into the inference worker; its tensors are never read on the GUI thread)."""

    request: LoadRequest
    model: Any  # cnnviz.core.models.LoadedModel
    info: dict[str, Any]
    preprocessing: dict[str, Any]
    labels: list[str] | None
    devices: list[str]
    gpu: str | None
    seconds: float


def gpu_summary() -> str | None:
    """``"NVIDIA H100 · 1.2 / 79.6 GiB"`` for the first CUDA device, ``"Apple GPU (MPS)"``, or
    ``None`` without a GPU. Imports torch: call it on a worker thread (or once torch is in)."""
    import torch

    if torch.cuda.is_available():
        i = torch.cuda.current_device()
        props = torch.cuda.get_device_properties(i)
        used = torch.cuda.memory_allocated(i) / 2**30
        total = props.total_memory / 2**30
        return f"{props.name} · {used:.2f} / {total:.1f} GiB"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "Apple GPU (MPS)"
    return None


def _count_params(module: Any) -> int:
    try:
        return int(sum(p.numel() for p in module.parameters()))
    except Exception:  # noqa: BLE001 - a display number; never fail a load over it
        return 0


def run_load(req: LoadRequest) -> LoadOutcome:
    """Load ``req`` (runs on the loader thread). Raises the core's errors unchanged."""
    t0 = time.perf_counter()
    if req.on_stage is not None and "torch" not in sys.modules:
        req.on_stage("Loading PyTorch…")
    import torch  # noqa: F401 - the slow import, here and not on the GUI thread

    from cnnviz.core import models

    if req.on_stage is not None:
        req.on_stage(f"Loading {req.spec}…")
    loaded = models.load_model(
        req.spec, weights=req.weights, trust=req.trust,
        trust_store=_TrustView(req.trust_store, req.trusted_hashes),
        ctor_kwargs=req.ctor_kwargs, progress=req.on_bytes, cancel=req.cancel, device=req.device,
    )
    if str(req.dtype).lower() not in ("float32", "fp32", "float"):
        loaded = models.move_model(loaded, loaded.device, req.dtype)
    labels = loaded.labels
    if req.labels_path:
        labels = models.load_labels(req.labels_path)
        loaded = dataclasses.replace(loaded, labels=labels)
    info = {
        "name": loaded.name, "kind": loaded.kind, "source": loaded.source,
        "weights": loaded.weights, "input_channels": loaded.input_channels,
        "input_size": loaded.input_size, "params": _count_params(loaded.module),
        "device": loaded.device, "dtype": loaded.dtype,
    }
    return LoadOutcome(
        request=req, model=loaded, info=info, preprocessing=loaded.preprocessing.to_dict(),
        labels=list(labels) if labels is not None else None, devices=models.available_devices(),
        gpu=gpu_summary(), seconds=time.perf_counter() - t0,
    )


# ============================================================================================
# Inspection requests and results
# ============================================================================================


@dataclass(frozen=True)
class ExportJob:
    """Files the engine writes from the current capture: all layers as ``.npz`` and/or the
    per-layer statistics as CSV. ``job_id`` tells results apart."""

    job_id: int
    npz_path: str | None = None
    csv_path: str | None = None


@dataclass(frozen=True, eq=False)
class InspectRequest:
    """Everything the window shows, frozen. See the module docstring.

    ``pixels`` is an ``HxW`` or ``HxWx3`` float32 image in [0, 1] (or uint8 from a camera),
    never written to after the request is made. ``frame_id`` changes exactly when the
    pixels do. ``preprocessing`` (a :meth:`Preprocessing.to_dict` dict) and ``labels``
    override the model's own when given.
    """

    token: int
    model: Any
    pixels: np.ndarray
    frame_id: int
    device: str = "auto"
    dtype: str = "float32"
    preprocessing: Mapping[str, Any] | None = None
    labels: tuple[str, ...] | None = None
    layer: str | None = None
    channel: int = 0
    views: frozenset[str] = frozenset({"grid"})
    cam_class: int | None = None
    cam_layer: str | None = None
    rf_unit: tuple[int, int] | None = None
    weights_layer: str | None = None
    topk: int = 5
    overview_channels: int = 8
    export: ExportJob | None = None


@dataclass
class LayerInfo:
    """One captured layer as the layer table shows it."""

    index: int
    name: str
    type: str
    shape: tuple[int, ...]
    params: int
    rf_size: tuple[int, int] | None = None
    rf_jump: tuple[int, int] | None = None
    rf_start: tuple[float, float] | None = None
    rf_known: bool = True  # False: the geometry could not be analysed (TorchScript, an error)

    @property
    def spatial(self) -> bool:
        """Whether the output is a ``(C, H, W)`` map (units have positions)."""
        return len(self.shape) == 3

    @property
    def channels(self) -> int:
        """Number of tiles the activation grid shows (see :func:`as_channel_maps`)."""
        s = self.shape
        if len(s) == 0:
            return 1
        if len(s) == 1:
            return int(s[0])
        if len(s) == 2:
            return 1
        return int(np.prod(s[:-2]))

    @property
    def shape_text(self) -> str:
        return "×".join(str(v) for v in self.shape) if self.shape else "scalar"

    @property
    def rf_text(self) -> str:
        if self.rf_size is None:
            if not self.rf_known:
                return "—"
            if not self.spatial or self.shape[1] * self.shape[2] == 1:
                return "whole input"
            return "not local"  # after resampling, a transposed conv, a global gate
        h, w = self.rf_size
        return f"{h}×{w}" if h != w else f"{h}"


@dataclass
class ChannelStats:
    """Per-channel statistics of one layer (population std, as numpy's default).

    ``dead`` marks channels that are zero everywhere for this input (a ReLU that never
    fires); ``constant`` those that are one non-zero value everywhere.
    """

    minimum: np.ndarray
    maximum: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    zeros_pct: np.ndarray

    @property
    def dead(self) -> np.ndarray:
        return (self.minimum == 0) & (self.maximum == 0)

    @property
    def constant(self) -> np.ndarray:
        return (self.minimum == self.maximum) & ~self.dead

    def row(self, i: int) -> dict[str, float]:
        return {"min": float(self.minimum[i]), "max": float(self.maximum[i]),
                "mean": float(self.mean[i]), "std": float(self.std[i]),
                "zeros_pct": float(self.zeros_pct[i]), "dead": bool(self.dead[i])}

    def __len__(self) -> int:
        return int(self.minimum.shape[0])


@dataclass
class OverviewRow:
    name: str
    type: str
    shape: tuple[int, ...]
    image: np.ndarray  # uint8 (h, w): one row of tiles (the core's grey levels, 128 = 0 when signed)
    channels: list[int]
    signed: bool
    tile_hw: tuple[int, int] = (0, 0)
    pad: int = 1


@dataclass
class WeightsData:
    layer: str
    shape: tuple[int, ...]  # (out, in, kh, kw)
    image: np.ndarray  # uint8 (H, W) or (H, W, 3)
    color: bool
    rows: int
    cols: int
    tile_hw: tuple[int, int]
    pad: int
    hist_counts: np.ndarray
    hist_edges: np.ndarray
    first: bool  # the model's first conv layer


@dataclass
class CamData:
    heatmap: np.ndarray  # float32 (H, W) in [0, 1], the model input's size
    layer: str
    default_layer: str | None
    target_class: int
    class_name: str
    chosen_class: int | None  # what the request asked (None: the predicted class)


@dataclass
class RFData:
    layer: str
    channel: int
    unit: tuple[int, int]
    map_hw: tuple[int, int]
    size: tuple[int, int] | None
    jump: tuple[int, int] | None
    box: tuple[int, int, int, int] | None  # (y0, x0, y1, x1) in model-input pixels, end exclusive
    erf: np.ndarray | None  # float32 (H, W) in [0, 1]


@dataclass
class InspectResult:
    """What one request computed; numpy and plain Python only."""

    token: int
    frame_id: int
    layers: list[LayerInfo]
    input_image: np.ndarray  # uint8 (H, W, 3): the model's input, de-normalised for display
    input_shape: tuple[int, ...]  # (C, H, W)
    layer: str | None
    activation: np.ndarray | None  # float32 (C, h, w) of the selected layer
    channel_stats: ChannelStats | None
    predictions: list[tuple[int, str, float]]
    n_classes: int
    labels: list[str] | None
    device: str
    dtype: str
    preprocessing: dict[str, Any]
    overview: list[OverviewRow] | None = None
    weights: WeightsData | None = None
    conv_layers: list[str] = field(default_factory=list)
    act_hist: tuple[np.ndarray, np.ndarray] | None = None
    cam: CamData | None = None
    cam_default_layer: str | None = None
    rf: RFData | None = None
    errors: dict[str, str] = field(default_factory=dict)
    message: str | None = None
    gpu: str | None = None
    reused_capture: bool = False
    timings_ms: dict[str, float] = field(default_factory=dict)
    export_done: ExportJob | None = None
    export_error: str | None = None

    def layer_info(self, name: str | None = None) -> LayerInfo | None:
        name = self.layer if name is None else name
        return next((li for li in self.layers if li.name == name), None)

    def names(self) -> list[str]:
        return [li.name for li in self.layers]


def _error_text(exc: BaseException) -> str:
    if hasattr(exc, "cause"):
        return str(exc)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:400]


def default_layer(layers: Sequence[LayerInfo]) -> str | None:
    """The layer shown first: the first convolution with a spatial map, else the first
    spatial layer, else the first layer."""
    spatial = [li for li in layers if li.spatial]
    for li in spatial:
        if any(w in li.type.lower() for w in _CONV_WORDS):
            return li.name
    if spatial:
        return spatial[0].name
    return layers[0].name if layers else None


def default_cam_layer(layers: Sequence[LayerInfo]) -> str | None:
    """Grad-CAM's default, the core's rule (:func:`cnnviz.core.explain.last_conv_layer`):
    the last spatial map larger than 1×1 at or after the last convolution — the last conv
    block's activated or pooled output."""
    layers = list(layers)
    convs = [i for i, li in enumerate(layers) if li.spatial and any(w in li.type.lower() for w in _CONV_WORDS)]
    if convs:
        after = [li for li in layers[convs[-1]:] if li.spatial and li.shape[1] * li.shape[2] > 1]
        return (after[-1] if after else layers[convs[-1]]).name
    spatial = [li for li in layers if li.spatial]
    return spatial[-1].name if spatial else None


# ============================================================================================
# The engine
# ============================================================================================


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
    import torch

    flat = maps.detach().float().reshape(maps.shape[0], -1)
    finite = torch.isfinite(flat)
    if not bool(finite.all()):
        flat = torch.where(finite, flat, torch.zeros((), device=flat.device))
    out = torch.stack([
        flat.amin(1), flat.amax(1), flat.mean(1), flat.std(1, correction=0),
        (flat == 0).float().mean(1) * 100.0,
    ]).cpu().numpy().astype(np.float64)
    return ChannelStats(out[0], out[1], out[2], out[3], out[4])


def _write_atomic(path: str, write: Callable[[Any], None], mode: str = "wb") -> None:
    from cnnviz.core.errors import CnnvizError
    from cnnviz.core.kernels import atomic_write  # the one atomic-write implementation

    folder = Path(path).parent
    if not folder.is_dir():  # as the PNG export: a mistyped folder is not created behind the user's back
        raise CnnvizError(f"the folder {folder} does not exist", "choose an existing folder")
    atomic_write(path, write, mode)


STATS_CSV_COLUMNS = ("index", "name", "type", "shape", "params", "receptive_field", "min", "max",
                     "mean", "std", "zeros_pct", "channels", "dead_channels")


class InspectEngine:
    """The inference worker's ``compute``: call it with :class:`InspectRequest` s from ONE
    thread. :meth:`close` (after that thread has stopped) removes the model's hooks."""

    def __init__(self) -> None:
        self._token: int | None = None
        self._model: Any = None
        self._recorder: Any = None
        self._capture: Any = None
        self._capture_key: tuple | None = None
        self._x: Any = None
        self._pre_key: tuple | None = None
        self._pre: Any = None
        self._rf_cache: dict[tuple, dict[str, Any]] = {}
        self._conv_layers: list[str] | None = None
        self._weights_cache: dict[str, WeightsData] = {}
        self.runs = 0  # forward passes actually run (tests: reuse of the capture)
        # export_progress(job_id, done, total, layer name), called on the worker thread
        self.export_progress: Callable[[int, int, int, str], None] | None = None

    # -- model state ---------------------------------------------------------------------
    def _set_model(self, token: int, model: Any) -> None:
        self._drop_model()
        self._token = token
        self._model = model

    def _drop_model(self) -> None:
        if self._recorder is not None:
            self._recorder.close()  # remove every hook from the old model
        self._recorder = None
        self._model = None
        self._token = None
        self._capture = None
        self._capture_key = None
        self._x = None
        self._rf_cache.clear()
        self._conv_layers = None
        self._weights_cache.clear()

    def close(self) -> None:
        """Remove hooks and forget the model. Call only when no request is running."""
        self._drop_model()

    @property
    def model(self) -> Any:
        return self._model

    def _ensure_device(self, req: InspectRequest) -> str | None:
        """Move the model to the requested device/precision. Returns a message when that is
        impossible (the model then stays where it was)."""
        from cnnviz.core import models

        try:
            target = models.resolve_device(req.device)
            dtype = str(req.dtype).lower()
            dtype = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16",
                     "float": "float32"}.get(dtype, dtype)
            if target == self._model.device and dtype == self._model.dtype:
                return None
            moved = models.move_model(self._model, target, dtype)
        except Exception as exc:  # noqa: BLE001 - shown to the user; the model stays usable
            return _error_text(exc)
        if self._recorder is not None:
            self._recorder.close()
            self._recorder = None
        self._model = moved
        self._capture = None
        self._capture_key = None
        self._rf_cache.clear()
        self._weights_cache.clear()
        return None

    def _preprocessing(self, req: InspectRequest):
        from cnnviz.core.models import Preprocessing

        if req.preprocessing is None:
            return self._model.preprocessing
        key = tuple(sorted((k, repr(v)) for k, v in req.preprocessing.items()))
        if key != self._pre_key:
            self._pre = Preprocessing.from_dict(dict(req.preprocessing))
            self._pre_key = key
        return self._pre

    # -- the compute function ---------------------------------------------------------------
    def __call__(self, req: InspectRequest) -> InspectResult:
        import torch

        from cnnviz.core.capture import Recorder, topk

        timings: dict[str, float] = {}
        t_start = time.perf_counter()
        if req.token != self._token:
            self._set_model(req.token, req.model)
        device_message = self._ensure_device(req)
        pre = self._preprocessing(req)

        pre_key = repr(sorted(pre.to_dict().items()))
        key = (req.token, req.frame_id, pre_key, self._model.device, self._model.dtype)
        reused = key == self._capture_key and self._capture is not None
        message = None
        if not reused:
            t0 = time.perf_counter()
            pixels = req.pixels
            if pixels.dtype != np.uint8 and not pixels.flags.writeable:
                pixels = pixels.copy()  # torch.from_numpy warns about read-only arrays
            x = pre.apply(pixels)
            timings["preprocess"] = (time.perf_counter() - t0) * 1e3
            if self._recorder is None:
                self._recorder = Recorder(self._model)
            t0 = time.perf_counter()
            cap = self._recorder.run(x)
            timings["capture"] = (time.perf_counter() - t0) * 1e3
            self.runs += 1
            if cap.fell_back_to_cpu:
                self._model = dataclasses.replace(self._model, device="cpu")
                message = cap.message
            # keyed by where the model is now (a CPU fallback moved it)
            self._capture, self._x = cap, x
            self._capture_key = (req.token, req.frame_id, pre_key, self._model.device, self._model.dtype)
        cap, x = self._capture, self._x
        model = self._model

        layers = self._layer_infos(cap, x)
        names = [li.name for li in layers]
        layer = req.layer if req.layer in names else default_layer(layers)
        labels = list(req.labels) if req.labels is not None else model.labels
        errors: dict[str, str] = {}
        if device_message:
            errors["device"] = device_message

        with torch.inference_mode():
            predictions: list[tuple[int, str, float]] = []
            n_classes = 0
            if cap.output is not None and cap.output.numel() > 0:
                try:
                    predictions = topk(cap.output, labels, req.topk)
                    t = cap.output[0] if cap.output.dim() >= 2 else cap.output
                    n_classes = int(t.shape[0]) if t.dim() >= 1 else 1
                except Exception as exc:  # noqa: BLE001 - a model whose output is not scores
                    errors["predictions"] = _error_text(exc)

            activation = None
            stats = None
            act_hist = None
            act_maps = None
            if layer is not None:
                act = cap.layer(layer).first
                act_maps = as_channel_maps(act)
                t0 = time.perf_counter()
                stats = _channel_stats(act_maps)
                activation = act_maps.detach().float().cpu().numpy().copy()
                timings["layer"] = (time.perf_counter() - t0) * 1e3
                if "weights" in req.views:
                    from cnnviz.core.mosaic import histogram

                    act_hist = histogram(act_maps, bins=64)

            overview = None
            if "overview" in req.views:
                t0 = time.perf_counter()
                overview = self._overview(cap, req.overview_channels)
                timings["overview"] = (time.perf_counter() - t0) * 1e3

            conv_layers = self._conv_layer_names(layers)
            weights = None
            if "weights" in req.views and conv_layers:
                wl = req.weights_layer if req.weights_layer in conv_layers else (
                    layer if layer in conv_layers else conv_layers[0])
                try:
                    weights = self._weights(wl, conv_layers)
                except Exception as exc:  # noqa: BLE001
                    errors["weights"] = _error_text(exc)

            input_image = _display_input(x, pre)

        cam_default = default_cam_layer(layers)
        cam = None
        if "cam" in req.views:
            t0 = time.perf_counter()
            try:
                cam = self._cam(req, x, cam_default, labels)
            except Exception as exc:  # noqa: BLE001 - one view failing leaves the others
                errors["cam"] = _error_text(exc)
            timings["cam"] = (time.perf_counter() - t0) * 1e3

        rf = None
        if "rf" in req.views and layer is not None and req.rf_unit is not None:
            t0 = time.perf_counter()
            try:
                rf = self._rf(req, x, layer, layers)
            except Exception as exc:  # noqa: BLE001
                errors["rf"] = _error_text(exc)
            timings["rf"] = (time.perf_counter() - t0) * 1e3

        export_error = None
        if req.export is not None:
            try:
                self._export(req.export, cap, layers)
            except Exception as exc:  # noqa: BLE001 - reported in the status bar
                export_error = _error_text(exc)

        gpu = None
        if str(model.device).startswith(("cuda", "mps")):
            try:
                gpu = gpu_summary()
            except Exception:  # noqa: BLE001
                gpu = None
        timings["total"] = (time.perf_counter() - t_start) * 1e3
        return InspectResult(
            token=req.token, frame_id=req.frame_id, layers=layers, input_image=input_image,
            input_shape=tuple(int(v) for v in x.shape[1:]), layer=layer, activation=activation,
            channel_stats=stats, predictions=predictions, n_classes=n_classes, labels=labels,
            device=str(model.device), dtype=str(model.dtype), preprocessing=pre.to_dict(),
            overview=overview, weights=weights, conv_layers=conv_layers, act_hist=act_hist, cam=cam,
            cam_default_layer=cam_default, rf=rf, errors=errors, message=message, gpu=gpu,
            reused_capture=reused, timings_ms=timings, export_done=req.export,
            export_error=export_error,
        )

    # -- parts ------------------------------------------------------------------------------
    def _layer_infos(self, cap, x) -> list[LayerInfo]:
        rfs = self._receptive_fields(x)
        known = bool(rfs) and any(v is not None for v in rfs.values())
        out = []
        for a in cap.layers:
            rf = rfs.get(a.name)
            out.append(LayerInfo(
                index=a.index, name=a.name, type=a.type, shape=tuple(int(v) for v in a.shape),
                params=int(a.params),
                rf_size=tuple(int(v) for v in rf.size) if rf is not None else None,
                rf_jump=tuple(int(v) for v in rf.jump) if rf is not None else None,
                rf_start=tuple(float(v) for v in rf.start) if rf is not None else None,
                rf_known=known,
            ))
        return out

    def _receptive_fields(self, x) -> dict[str, Any]:
        key = (self._token, tuple(x.shape), self._model.device, self._model.dtype)
        if key not in self._rf_cache:
            from cnnviz.core.explain import receptive_field

            try:
                self._rf_cache[key] = receptive_field(self._model, tuple(x.shape))
            except Exception:  # noqa: BLE001 - geometry is a nicety; the table shows "—"
                self._rf_cache[key] = {}
        return self._rf_cache[key]

    def _overview(self, cap, n: int) -> list[OverviewRow]:
        from cnnviz.core.mosaic import overview_strip

        rows = []
        for a in cap.layers:
            maps = as_channel_maps(a.first)
            if maps.shape[-1] * maps.shape[-2] == 1:
                # a vector: show all of it as one near-square map instead of 1x1 tiles
                m = overview_strip(a.first.reshape(-1), n=1)
            else:
                m = overview_strip(maps, n=n)
            rows.append(OverviewRow(a.name, a.type, tuple(int(v) for v in a.shape), m.image, m.channels,
                                    m.signed, tuple(int(v) for v in m.tile_hw), int(m.pad)))
        return rows

    def _modules(self) -> Any:
        rec = self._recorder
        return rec.runnable if rec is not None else self._model.module

    def _conv_layer_names(self, layers: list[LayerInfo]) -> list[str]:
        if self._conv_layers is None:
            import torch

            from cnnviz.core.capture import _base_name

            root = self._modules()
            found = []
            for li in layers:
                if "#" in li.name or "[" in li.name:
                    continue
                try:
                    mod = root.get_submodule(_base_name(li.name))
                except Exception:  # noqa: BLE001
                    continue
                w = getattr(mod, "weight", None)
                if isinstance(w, torch.Tensor) and w.dim() == 4:
                    found.append(li.name)
            self._conv_layers = found
        return self._conv_layers

    def _weights(self, name: str, conv_layers: list[str]) -> WeightsData:
        if name not in self._weights_cache:
            from cnnviz.core.mosaic import conv_weights_image, histogram

            w = self._modules().get_submodule(name).weight.detach()
            first = name == conv_layers[0]
            color = first and w.shape[1] == 3
            m = conv_weights_image(w, color=color)
            bins = int(np.clip(np.sqrt(w.numel()), 10, 64))
            counts, edges = histogram(w, bins=bins)
            self._weights_cache[name] = WeightsData(
                layer=name, shape=tuple(int(v) for v in w.shape), image=m.image, color=color,
                rows=m.rows, cols=m.cols, tile_hw=tuple(int(v) for v in m.tile_hw), pad=int(m.pad),
                hist_counts=counts, hist_edges=edges, first=first)
        return self._weights_cache[name]

    def _cam(self, req: InspectRequest, x, default: str | None, labels) -> CamData:
        from cnnviz.core.errors import CnnvizError
        from cnnviz.core.explain import grad_cam, predicted_class

        layer = req.cam_layer or default
        if layer is None:
            raise CnnvizError("the model has no layer with a spatial map", "Grad-CAM needs a convolutional layer")
        heat, used = grad_cam(self._model, x, target_class=req.cam_class, layer=layer)
        cls = req.cam_class
        if cls is None:
            out = self._capture.output
            cls = predicted_class(out) if out is not None else 0
        name = labels[cls] if labels is not None and 0 <= cls < len(labels) else f"class {cls}"
        return CamData(heatmap=np.ascontiguousarray(heat, dtype=np.float32), layer=used, default_layer=default,
                       target_class=int(cls), class_name=str(name), chosen_class=req.cam_class)

    def _rf(self, req: InspectRequest, x, layer: str, layers: list[LayerInfo]) -> RFData | None:
        from cnnviz.core.errors import CnnvizError
        from cnnviz.core.explain import ReceptiveField, effective_rf, theoretical_rf_box

        info = next(li for li in layers if li.name == layer)
        if not info.spatial:
            raise CnnvizError(f"{layer} has no spatial map ({info.shape_text})",
                              "choose a convolution or pooling layer to see receptive fields")
        c, h, w = info.shape
        y, xx = req.rf_unit
        if not (0 <= y < h and 0 <= xx < w):
            raise CnnvizError(f"unit ({y}, {xx}) is outside {layer}'s {h}×{w} map", "click inside the map")
        channel = min(max(int(req.channel), 0), c - 1)
        box = None
        if info.rf_size is not None:
            rf = ReceptiveField(info.rf_size, info.rf_jump, info.rf_start)
            box = theoretical_rf_box(rf, (y, xx), tuple(x.shape[-2:]))
        erf = effective_rf(self._model, x, layer, channel, (y, xx))
        return RFData(layer=layer, channel=channel, unit=(int(y), int(xx)), map_hw=(h, w), size=info.rf_size,
                      jump=info.rf_jump, box=box, erf=np.ascontiguousarray(erf, dtype=np.float32))

    def _export(self, job: ExportJob, cap, layers: list[LayerInfo]) -> None:
        import torch

        from cnnviz.core.npz import write_npz

        n = len(cap.layers)
        steps = n * (bool(job.npz_path) + bool(job.csv_path))
        report = self.export_progress
        base = 0

        def tick(done: int, what: str) -> None:
            if report is not None:
                report(job.job_id, base + done, steps, what)

        with torch.inference_mode():
            if job.npz_path:
                # one layer at a time: converted, written, forgotten (memory stays at one layer)
                items = ((a.name, a.first.detach().float().cpu().numpy()) for a in cap.layers)
                _write_atomic(job.npz_path, lambda fh: write_npz(fh, items, n, lambda d, _t, name: tick(d, name)))
                base += n
            if job.csv_path:
                rows = []
                for i, (li, a) in enumerate(zip(layers, cap.layers), 1):
                    tick(i, li.name)
                    maps = as_channel_maps(a.first)
                    st = _channel_stats(maps)
                    whole = _channel_stats(maps.reshape(1, -1))
                    rows.append([li.index, li.name, li.type, li.shape_text, li.params, li.rf_text,
                                 f"{whole.minimum[0]:.6g}", f"{whole.maximum[0]:.6g}", f"{whole.mean[0]:.6g}",
                                 f"{whole.std[0]:.6g}", f"{whole.zeros_pct[0]:.4g}", len(st),
                                 int(st.dead.sum()) if li.spatial else ""])

                def write(fh):
                    wr = csv.writer(fh)
                    wr.writerow(STATS_CSV_COLUMNS)
                    wr.writerows(rows)

                _write_atomic(job.csv_path, write, mode="w")


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
