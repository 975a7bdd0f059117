"""The model inspector's computation: what the window chose (:class:`InspectorState`) →
a frozen :class:`InspectRequest` → :class:`InspectEngine` → a numpy-only
:class:`~cnnviz.core.inspect_results.InspectResult`.

The inspector window keeps one :class:`InspectorState` (the model, the input frame, the
selected layer and channel, the open view and its settings); its widgets write through it,
and every change makes a new request with :meth:`InspectorState.to_request`. Every request is
a complete snapshot, so when a newer request replaces a waiting one nothing is lost.

:class:`InspectEngine` is the compute function of the window's inference worker (a
:class:`~cnnviz.qt.workers.LatestRequestWorker`). It keeps the model's
:class:`~cnnviz.core.capture.Recorder` (hooks) and the last capture between requests: a request
for the same frame (the user picked another layer or tab) re-uses the capture instead of
running the model again. All model work (capture, Grad-CAM, receptive fields, device moves)
happens on that one thread, so no two threads ever run one model at once.
:meth:`InspectEngine.close` removes every hook and forgets the model; called while a request is
running, it does so as soon as that request returns.

Loading lives in :mod:`cnnviz.core.inspect_load`, the state and request in
:mod:`cnnviz.core.inspect_state`, stateless helpers in :mod:`cnnviz.core.inspect_helpers`, the result types in
:mod:`cnnviz.core.inspect_results`. Nothing here imports torch at module level and nothing
touches a widget.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from cnnviz.core.inspect_helpers import (  # noqa: F401  (moved; names kept here)
    STATS_CSV_COLUMNS, TABLE_ROWS, _channel_stats, _display_input, _error_text, _extras,
    _onnx_conv_weights, _write_atomic, as_channel_maps,
)
from cnnviz.core.inspect_load import gpu_summary
from cnnviz.core.inspect_results import (
    InspectResult,
    WeightsData,
    default_layer,
)
from cnnviz.core.inspect_state import InspectorState, InspectRequest, as_input_pixels, model_key

from cnnviz.core.inspect_parts import EngineParts

__all__ = [
    "STATS_CSV_COLUMNS",
    "InspectEngine",
    "InspectRequest",
    "InspectorState",
    "TABLE_ROWS",
    "as_channel_maps",
    "as_input_pixels",
    "model_key",
]


# ============================================================================================
# The engine
# ============================================================================================


class InspectEngine(EngineParts):
    """The inference worker's ``compute``: call it with :class:`InspectRequest` s from ONE
    thread. :meth:`close` removes the model's hooks and forgets it (deferred to the end of a
    running request)."""

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
        self._rec_every_op = False
        self._every_op_error: str | None = None
        self._current_layouts: dict[str, Any] = {}
        self._cam_default: tuple[tuple | None, str | None] = (None, None)
        self.runs = 0  # forward passes actually run (tests: reuse of the capture)
        # export_progress(job_id, done, total, layer name), called on the worker thread
        self.export_progress: Callable[[int, int, int, str], None] | None = None
        self._lock = threading.Lock()  # close() from the GUI thread vs. a running request
        self._running = False
        self._close_requested = False

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
        self._onnx_weights = None
        self._weights_cache.clear()
        self._every_op_error = None
        self._cam_default = (None, None)

    def close(self) -> bool:
        """Remove every hook from the model and forget it (and its capture).

        Safe from any thread: when a request is running (an inference that outlived the
        window's close wait), the model is dropped on the worker thread as soon as that
        request returns. Returns True when it was dropped now, False when deferred.
        """
        with self._lock:
            if self._running:
                self._close_requested = True
                return False
            self._drop_model()
            return True

    def __call__(self, req: InspectRequest) -> InspectResult:
        with self._lock:
            self._running = True
        try:
            return self._compute(req)
        finally:
            with self._lock:
                self._running = False
                if self._close_requested:
                    self._close_requested = False
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
    def _compute(self, req: InspectRequest) -> InspectResult:
        import torch

        timings: dict[str, float] = {}
        t_start = time.perf_counter()
        if req.token != self._token:
            self._set_model(req.token, req.model)
        device_message = self._ensure_device(req)
        pre = self._preprocessing(req)

        pre_key = repr(sorted(pre.to_dict().items()))
        if self._recorder is not None and self._rec_every_op != bool(req.every_op):
            self._recorder.close()  # every-op capture switched: a recorder of the other kind
            self._recorder = None
            self._capture = None
            self._capture_key = None
        key = (req.token, req.frame_id, pre_key, self._model.device, self._model.dtype, bool(req.every_op))
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
                self._recorder = self._make_recorder(bool(req.every_op))
            t0 = time.perf_counter()
            cap = self._recorder.run(x)
            timings["capture"] = (time.perf_counter() - t0) * 1e3
            self.runs += 1
            if cap.fell_back_to_cpu:
                self._model = dataclasses.replace(self._model, device="cpu")
                message = cap.message
            # keyed by where the model is now (a CPU fallback moved it)
            self._capture, self._x = cap, x
            self._capture_key = (req.token, req.frame_id, pre_key, self._model.device, self._model.dtype,
                                 bool(req.every_op))
        cap, x = self._capture, self._x
        model = self._model

        errors: dict[str, str] = {}
        if device_message:
            errors["device"] = device_message
        if self._every_op_error and req.every_op:
            errors["every_op"] = self._every_op_error
        layouts = self._layouts(cap, req.layouts, errors)
        self._current_layouts = layouts
        layers = self._layer_infos(cap, x, layouts)
        names = [li.name for li in layers]
        layer = req.layer if req.layer in names else default_layer(layers)
        labels = list(req.labels) if req.labels is not None else model.labels

        with torch.inference_mode():
            input_image = _display_input(x, pre)
            predictions, n_classes, task = self._task(req, cap, labels, input_image, errors)

            activation = None
            stats = None
            act_hist = None
            act_maps = None
            extras = None
            if layer is not None:
                from cnnviz.core.layouts import to_maps

                a = cap.layer(layer)
                act_maps = to_maps(a.tensor, layouts[layer])
                t0 = time.perf_counter()
                stats = _channel_stats(act_maps)
                activation = act_maps.detach().float().cpu().numpy().copy()
                extras = _extras(a.tensor, layouts[layer])
                timings["layer"] = (time.perf_counter() - t0) * 1e3
                if "weights" in req.views:
                    from cnnviz.core.mosaic import histogram

                    act_hist = histogram(act_maps, bins=64)

            overview = None
            if "overview" in req.views:
                t0 = time.perf_counter()
                overview = self._overview(cap, layouts, req.overview_channels)
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

        cam_default = self._default_cam(cap, layers)
        cam = None
        if "cam" in req.views:
            t0 = time.perf_counter()
            try:
                cam = self._cam(req, x, cam_default, labels, task)
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
            export_error=export_error, task=task, extras=extras, every_op=bool(req.every_op),
        )
