"""What the inspector's engine hands the window: numpy and plain Python only (tensors never
cross to the GUI thread). :class:`InspectResult` and its parts, one per view, and the rules
for the layer shown first and Grad-CAM's default layer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["GRID_LAYOUTS", "VIEWS", "CamData", "ChannelStats", "ExportJob", "InspectResult", "LayerInfo",
           "LayerExtras", "OverviewRow", "RFData", "TaskData", "WeightsData", "default_cam_layer", "default_layer"]

#: Views a request can ask for besides the layer list and predictions (always computed).
VIEWS = ("grid", "overview", "weights", "cam", "rf")

#: Layouts whose maps lie on a spatial grid (units have positions; Grad-CAM can use them).
GRID_LAYOUTS = ("NCHW", "NHWC", "tokens")

#: Words in a layer's type that mark a convolution (the layer shown first, Grad-CAM's default).
_CONV_WORDS = ("conv",)


@dataclass(frozen=True)
class ExportJob:
    """Files the engine writes from the current capture: all layers as ``.npz`` and/or the
    per-layer statistics as CSV. ``job_id`` tells results apart."""

    job_id: int
    npz_path: str | None = None
    csv_path: str | None = None


@dataclass
class LayerInfo:
    """One captured layer as the layer table shows it.

    ``shape`` is the tensor's shape without the batch (a ``nonbatch`` tensor's whole shape);
    ``map_shape`` the ``(C, H, W)`` maps every view draws, from the layer's layout
    (:func:`cnnviz.core.layouts.to_maps`); ``layout`` its kind, ``layout_text`` the kind and
    how it was decided; ``kind`` ``"module"`` or ``"op"`` (every-op capture).
    """

    index: int
    name: str
    type: str
    shape: tuple[int, ...]
    params: int
    rf_size: tuple[int, int] | None = None
    rf_jump: tuple[int, int] | None = None
    rf_start: tuple[float, float] | None = None
    rf_known: bool = True  # False: the geometry could not be analysed (TorchScript, an error)
    map_shape: tuple[int, int, int] | None = None
    layout: str = ""
    layout_text: str = ""
    layout_how: str = ""
    kind: str = "module"

    @property
    def grid_shape(self) -> tuple[int, int, int] | None:
        """``(C, H, W)`` of the maps when they lie on a spatial grid, else None."""
        if self.map_shape is not None:
            return tuple(self.map_shape) if self.layout in GRID_LAYOUTS else None  # type: ignore[return-value]
        return tuple(self.shape) if len(self.shape) == 3 else None  # type: ignore[return-value]

    @property
    def spatial(self) -> bool:
        """Whether the maps lie on a spatial grid (channels first, channels last or tokens):
        units have positions."""
        return self.grid_shape is not None

    @property
    def channels(self) -> int:
        """Number of tiles the activation grid shows (the layout's maps)."""
        if self.map_shape is not None:
            return int(self.map_shape[0])
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
    def map_text(self) -> str:
        """``"tokens → 768×14×14"``: the layout and the maps it gives."""
        if self.map_shape is None:
            return ""
        return f"{self.layout} → " + "×".join(str(v) for v in self.map_shape)

    @property
    def rf_text(self) -> str:
        if self.rf_size is None:
            if not self.rf_known:
                return "—"
            g = self.grid_shape
            if g is None or g[1] * g[2] == 1:
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
class TaskData:
    """The prediction output read as a task (:func:`cnnviz.core.tasks.interpret`), numpy only.

    ``outputs``: every output of the model (``{"name", "value"}``), for the output picker;
    ``legend``: ``{"index", "name", "fraction", "color"}`` (RGB as in ``image``);
    ``image``: the input with the class map / boxes drawn on it (uint8 ``(H, W, 3)``), or None.
    """

    task: str
    output_name: str
    outputs: list[dict[str, str]]
    chosen: str | None  # what the request asked (None: the default output)
    class_map: np.ndarray | None = None
    legend: list[dict[str, Any]] = field(default_factory=list)
    detections: list[dict[str, Any]] = field(default_factory=list)
    score_threshold: float | None = None
    below_threshold: int = 0
    image: np.ndarray | None = None


@dataclass
class LayerExtras:
    """What the selected layer has besides its maps: the class / register tokens' vectors
    ``(P, C)`` of a token layer, and a non-batch tensor's rows (boxes, anchors) as a table."""

    prefix_tokens: np.ndarray | None = None
    table: np.ndarray | None = None  # float (rows, cols), at most TABLE_ROWS rows
    table_rows: int = 0  # rows in the tensor (the table may show fewer)


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
    task: TaskData | None = None
    extras: LayerExtras | None = None
    every_op: bool = False

    def layer_info(self, name: str | None = None) -> LayerInfo | None:
        name = self.layer if name is None else name
        return next((li for li in self.layers if li.name == name), None)

    def names(self) -> list[str]:
        return [li.name for li in self.layers]


def default_layer(layers: Sequence[LayerInfo]) -> str | None:
    """The layer shown first: the first convolution with a spatial map, else the first
    spatial layer, else the first layer."""
    spatial = [li for li in layers if li.spatial]
    for li in spatial:
        if li.kind == "module" and any(w in li.type.lower() for w in _CONV_WORDS):
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
        after = [li for li in layers[convs[-1]:] if li.spatial and li.grid_shape[1] * li.grid_shape[2] > 1]
        return (after[-1] if after else layers[convs[-1]]).name
    spatial = [li for li in layers if li.spatial]
    return spatial[-1].name if spatial else None

