"""What the model inspector window shows (:class:`InspectorState`) and the frozen
:class:`InspectRequest` it makes for :class:`cnnviz.core.inspect_engine.InspectEngine`.
Re-exported by :mod:`cnnviz.core.inspect_engine`. Qt-free; no torch at module level.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnviz.core.inspect_results import VIEWS, ExportJob

__all__ = ["InspectRequest", "InspectorState", "as_input_pixels", "model_key"]


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
    every_op: bool = False
    layouts: tuple[tuple[str, str], ...] = ()
    output: str | None = None
    score_threshold: float = 0.5


def model_key(info: Mapping[str, Any]) -> str:
    """What remembers per-model choices (the prediction output): the model's kind and file
    (or name), so that the same model opened again gets them back."""
    return f"{info.get('kind', '')}:{info.get('source') or info.get('name') or ''}"


def as_input_pixels(pixels: np.ndarray) -> np.ndarray:
    """An HxW / HxWx3(x4) image → read-only float32 in [0, 1] (uint8 kept as uint8), so that
    a request can hold it without a copy: nobody can write to it afterwards."""
    a = np.asarray(pixels)
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[..., :3]
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)) or a.size == 0:
        raise ValueError(f"expected an HxW or HxWx3 image, got shape {a.shape}")
    if a.dtype == np.uint8 and not a.flags.writeable:
        return a  # a source's frame: owned by the frame and read-only already
    if a.dtype == np.uint8:
        out = np.array(a, copy=True)
    else:
        out = np.clip(np.nan_to_num(a.astype(np.float32)), 0.0, 1.0)
    out.setflags(write=False)
    return out


@dataclass
class InspectorState:
    """What the inspector window shows, as the user chose it: the one copy, Qt-free.

    The window's widgets write through it (and are updated from it with their signals
    blocked); :meth:`to_request` freezes it into the next :class:`InspectRequest`.

    Attributes
    ----------
    token:
        Changes with every model installed (results for another token are stale).
    model, model_info:
        The :class:`~cnnviz.core.models.LoadedModel` (read only on the GUI thread: it runs
        on the inference thread) and what the window shows about it.
    pixels, frame_id, input_label:
        The input picture (read-only, see :func:`as_input_pixels`); ``frame_id`` changes
        exactly when the pixels do.
    layer, channel:
        The selected layer (``None``: the engine's default) and channel.
    view:
        The open tab: one of :data:`~cnnviz.core.inspect_results.VIEWS`.
    cam_class, cam_layer, rf_unit, weights_layer:
        Choices of the Grad-CAM, receptive-field and weights views (``None``: defaults).
    device, dtype:
        Where and in what precision the model should run.
    preprocessing, labels:
        Overrides of the model's own (``None``: the model's).
    export:
        An export the engine writes with the next result (kept until a result says done).
    every_op:
        Capture every tensor op inside the forward too (not only module outputs).
    layouts:
        The user's layout per layer (``{name: "NHWC" | "tokens:14x14+1" | ...}``,
        :func:`cnnviz.core.layouts.parse_layout`); the others are decided by the core.
    output, score_threshold:
        Which model output is the prediction (a name or index; ``None``: the default) and the
        detection score threshold.
    outputs_by_model:
        The output chosen per model (:func:`model_key`): set again when the model is opened again.
    """

    token: int = 0
    model: Any = None
    model_info: dict[str, Any] = field(default_factory=dict)
    pixels: np.ndarray | None = None
    frame_id: int = 0
    input_label: str = ""
    layer: str | None = None
    channel: int = 0
    view: str = "grid"
    cam_class: int | None = None
    cam_layer: str | None = None
    rf_unit: tuple[int, int] | None = None
    weights_layer: str | None = None
    device: str = "auto"
    dtype: str = "float32"
    preprocessing: dict[str, Any] | None = None
    labels: tuple[str, ...] | None = None
    topk: int = 5
    export: ExportJob | None = None
    every_op: bool = False
    layouts: dict[str, str] = field(default_factory=dict)
    output: str | None = None
    score_threshold: float = 0.5
    outputs_by_model: dict[str, str] = field(default_factory=dict)

    def set_model(self, model: Any, info: Mapping[str, Any]) -> None:
        """A new model: a new token, and every choice made for the old model forgotten
        (except the prediction output chosen for this model before)."""
        self.token += 1
        self.model = model
        self.model_info = dict(info)
        self.layouts = {}
        self.output = self.outputs_by_model.get(model_key(info)) if model is not None else None
        self.preprocessing = None
        self.labels = None
        self.layer = None
        self.channel = 0
        self.cam_class = None
        self.cam_layer = None
        self.rf_unit = None
        self.weights_layer = None
        self.export = None

    def forget_model(self) -> None:
        """Drop the model (the window closed): nothing here keeps it in memory."""
        self.set_model(None, {})

    def set_input(self, pixels: np.ndarray, label: str) -> None:
        self.pixels = as_input_pixels(pixels)
        self.frame_id += 1
        self.input_label = label

    def select_layer(self, name: str | None) -> bool:
        """Select layer ``name``; False when it already is (or no name). A unit picked for
        the receptive field belongs to the old layer's map, so it is forgotten."""
        if not name or name == self.layer:
            return False
        self.layer = name
        self.rf_unit = None
        return True

    def set_output(self, choice: str | int | None) -> None:
        """The output that is the prediction (``None``/``""``: the default), remembered for
        this model."""
        text = None if choice is None or str(choice).strip() == "" else str(choice).strip()
        self.output = text
        key = model_key(self.model_info)
        if text is None:
            self.outputs_by_model.pop(key, None)
        else:
            self.outputs_by_model[key] = text

    def set_layout(self, layer: str, text: str | None) -> None:
        """The user's layout for ``layer`` (``None``/``""``/``"auto"``: the core decides)."""
        if text is None or str(text).strip().lower() in ("", "auto"):
            self.layouts.pop(layer, None)
        else:
            self.layouts[layer] = str(text).strip()

    def views(self) -> frozenset[str]:
        """The views a request computes: the activation grid (always) and the open tab."""
        return frozenset({"grid", self.view})

    def to_request(self, overview_channels: int = 8) -> InspectRequest | None:
        """The frozen request for what the state shows; None without a model or an input."""
        if self.model is None or self.pixels is None:
            return None
        if self.view not in VIEWS:
            raise ValueError(f"unknown view {self.view!r}; one of {', '.join(VIEWS)}")
        return InspectRequest(
            token=self.token, model=self.model, pixels=self.pixels, frame_id=self.frame_id,
            device=self.device, dtype=self.dtype, preprocessing=self.preprocessing, labels=self.labels,
            layer=self.layer, channel=self.channel, views=self.views(), cam_class=self.cam_class,
            cam_layer=self.cam_layer, rf_unit=self.rf_unit, weights_layer=self.weights_layer, topk=self.topk,
            overview_channels=overview_channels, export=self.export, every_op=self.every_op,
            layouts=tuple(sorted(self.layouts.items())), output=self.output,
            score_threshold=float(self.score_threshold),
        )


# ------------------------------------------------------------------ the chosen outputs, on disk
OUTPUTS_FILE = "model_outputs.json"  # the prediction output chosen per model


def read_model_outputs(folder) -> tuple[dict[str, str], str | None]:  # noqa: ANN001 - a path
    """The prediction output chosen per model (:attr:`InspectorState.outputs_by_model`), as
    remembered in ``folder``: ``({}, None)`` when nothing was saved, ``({}, message)`` when
    the file cannot be used (read bounded, like every file the app reads)."""
    from pathlib import Path

    from cnnviz.core.errors import CnnvizError
    from cnnviz.core.files import load_json_bounded

    path = Path(folder) / OUTPUTS_FILE
    if not path.exists():
        return {}, None
    try:
        data = load_json_bounded(path, limit=1_000_000, what="chosen model outputs")
    except (OSError, CnnvizError) as exc:
        return {}, f"The chosen model outputs in {path} could not be read ({exc}); they start empty"
    if not isinstance(data, dict):
        return {}, None
    return {str(k): str(v) for k, v in data.items() if isinstance(v, (str, int))}, None


def write_model_outputs(folder, outputs: Mapping[str, str]) -> None:  # noqa: ANN001 - a path
    """Remember the chosen outputs in ``folder`` (atomically). Raises ``OSError`` or
    :class:`~cnnviz.core.errors.CnnvizError` when it cannot."""
    import json
    from pathlib import Path

    from cnnviz.core.files import atomic_write_text

    Path(folder).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(folder) / OUTPUTS_FILE, json.dumps(dict(outputs), indent=1, sort_keys=True))
