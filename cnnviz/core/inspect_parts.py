"""The parts of an inspection (the recorder, layouts, layer infos, the task's output, Grad-CAM,
receptive fields, the overview, weights, exports), as a mixin of
:class:`cnnviz.core.inspect_engine.InspectEngine`, whose ``_compute`` puts them together."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from typing import Any

import numpy as np

from cnnviz.core.inspect_helpers import (  # noqa: F401  (moved; names kept here)
    STATS_CSV_COLUMNS, TABLE_ROWS, _channel_stats, _display_input, _error_text, _extras,
    _onnx_conv_weights, _write_atomic, as_channel_maps,
)
from cnnviz.core.inspect_results import (
    CamData,
    ExportJob,
    LayerInfo,
    OverviewRow,
    RFData,
    TaskData,
    WeightsData,
    default_cam_layer,
)
from cnnviz.core.inspect_state import InspectRequest


class EngineParts:
    """The steps :meth:`InspectEngine._compute` runs; they read the engine's model and caches."""

    def _make_recorder(self, every_op: bool):
        """The model's recorder (ONNX: every node already). Every-op capture a model cannot
        do (TorchScript) falls back to module outputs, and each result says why."""
        from cnnviz.core.capture import make_recorder
        from cnnviz.core.errors import CnnvizError

        self._rec_every_op = every_op
        self._every_op_error = None
        if every_op and getattr(self._model, "kind", None) != "onnx":
            try:
                return make_recorder(self._model, every_op=True)
            except CnnvizError as exc:
                self._every_op_error = f"every-op capture is off for this model: {exc}"
        return make_recorder(self._model)

    @staticmethod
    def _layouts(cap, overrides, errors: dict[str, str]) -> dict[str, Any]:
        """Each layer's layout: the core's, or the user's where it fits the tensor (one that
        does not is reported in ``errors["layout"]`` and the core's is kept)."""
        from cnnviz.core.layouts import LayoutError, parse_layout

        out = {a.name: a.layout for a in cap.layers}
        by_name = {a.name: a for a in cap.layers}
        bad = []
        for name, text in overrides:
            a = by_name.get(name)
            if a is None:
                continue  # a layer of another capture mode (every op): nothing to override here
            try:
                out[name] = parse_layout(text, tuple(a.tensor.shape), layer=name)
            except LayoutError as exc:
                bad.append(str(exc))
        if bad:
            errors["layout"] = bad[0] + ("" if len(bad) == 1 else f" (and {len(bad) - 1} more)")
        for a in cap.layers:
            if out[a.name] is None:  # a capture made by hand: decided from the shape alone
                out[a.name] = a._layout()
        return out

    def _layer_infos(self, cap, x, layouts: Mapping[str, Any]) -> list[LayerInfo]:
        from cnnviz.core.layouts import map_shape

        rfs = self._receptive_fields(x)
        known = bool(rfs) and any(v is not None for v in rfs.values())
        out = []
        for a in cap.layers:
            rf = rfs.get(a.name)
            lay = layouts[a.name]
            shape = tuple(int(v) for v in (a.tensor.shape if lay.kind == "nonbatch" else a.shape))
            out.append(LayerInfo(
                index=a.index, name=a.name, type=a.type, shape=shape,
                params=int(a.params),
                rf_size=tuple(int(v) for v in rf.size) if rf is not None else None,
                rf_jump=tuple(int(v) for v in rf.jump) if rf is not None else None,
                rf_start=tuple(float(v) for v in rf.start) if rf is not None else None,
                rf_known=known,
                map_shape=tuple(int(v) for v in map_shape(tuple(a.tensor.shape), lay)),
                layout=lay.kind, layout_text=lay.describe(), layout_how=lay.how,
                kind=getattr(a, "kind", "module"),
            ))
        return out

    def _task(self, req: InspectRequest, cap, labels, input_image: np.ndarray, errors: dict[str, str]):
        """``(top-k, number of classes, TaskData)`` of the output the user chose as the
        prediction (:func:`cnnviz.core.tasks.interpret`). An output that does not exist is
        reported in ``errors["output"]`` and the default output is read instead."""
        from cnnviz.core.capture import topk
        from cnnviz.core.tasks import (TaskError, draw_detections, interpret, overlay_class_map, palette,
                                       select_output)

        raw = cap.raw_output if cap.raw_output is not None else cap.output
        if raw is None:
            return [], 0, None
        chosen = req.output
        kwargs = dict(labels=labels, topk=req.topk, score_threshold=float(req.score_threshold))
        try:
            try:
                tr = interpret(raw, output=chosen, **kwargs)
            except TaskError as exc:
                if chosen is None:
                    raise
                errors["output"] = str(exc).replace("give --output", "choose")
                chosen = None
                tr = interpret(raw, **kwargs)
        except Exception as exc:  # noqa: BLE001 - an output that is not scores: the views still show
            errors["predictions"] = _error_text(exc)
            return [], 0, None
        _, value = select_output(raw, chosen)
        predictions: list[tuple[int, str, float]] = []
        n_classes = 0
        if hasattr(value, "dim") and value.numel() > 0:
            t = value[0] if value.dim() >= 2 else value
            n_classes = int(t.shape[0]) if t.dim() >= 1 else 1
        if tr.task == "classification":
            predictions = [(int(p["index"]), str(p["name"]), float("nan") if p["prob"] is None else float(p["prob"]))
                           for p in tr.predictions]
        elif tr.task == "segmentation":  # the classes by their share of the pixels
            predictions = [(int(e["index"]), str(e["name"]), float(e["fraction"])) for e in tr.legend[:req.topk]]
        elif tr.task == "tensor" and hasattr(value, "dim") and value.numel() > 0:
            try:  # as before: scores averaged over the trailing dimensions
                predictions = topk(value, labels, req.topk)
            except Exception as exc:  # noqa: BLE001
                errors["predictions"] = _error_text(exc)
        image = None
        legend = [dict(e) for e in tr.legend]
        if tr.class_map is not None:
            image = overlay_class_map(input_image, tr.class_map)
            colors = palette(int(tr.class_map.max()) + 1 if tr.class_map.size else 1)
            for e in legend:
                e["color"] = tuple(int(c) for c in colors[e["index"]]) if 0 <= e["index"] < len(colors) else (0, 0, 0)
        if tr.task in ("detection", "keypoints"):
            image = draw_detections(image if image is not None else input_image, tr.detections)
        return predictions, n_classes, TaskData(
            task=tr.task, output_name=tr.output_name, outputs=list(tr.outputs), chosen=chosen,
            class_map=tr.class_map, legend=legend, detections=list(tr.detections),
            score_threshold=tr.score_threshold, below_threshold=tr.below_threshold, image=image)

    def _default_cam(self, cap, layers: list[LayerInfo]) -> str | None:
        """Grad-CAM's default layer, the core's rule (a ViT: the input of its last attention;
        channels-last and token layers count as maps), once per capture."""
        if self._cam_default[0] == self._capture_key and self._capture_key is not None:
            return self._cam_default[1]
        try:
            from cnnviz.core.explain import cam_layer_of

            name = cam_layer_of(cap, self._model)
        except Exception:  # noqa: BLE001 - no spatial layer (or no module, ONNX): the table's rule
            name = default_cam_layer(layers)
        self._cam_default = (self._capture_key, name)
        return name

    def _receptive_fields(self, x) -> dict[str, Any]:
        key = (self._token, tuple(x.shape), self._model.device, self._model.dtype)
        if key not in self._rf_cache:
            from cnnviz.core.explain import receptive_field

            try:
                self._rf_cache[key] = receptive_field(self._model, tuple(x.shape))
            except Exception:  # noqa: BLE001 - geometry is a nicety; the table shows "—"
                self._rf_cache[key] = {}
        return self._rf_cache[key]

    def _overview(self, cap, layouts: Mapping[str, Any], n: int) -> list[OverviewRow]:
        """One strip per layer, of the maps its layout gives (:func:`cnnviz.core.layouts.to_maps`)."""
        from cnnviz.core.layouts import to_maps
        from cnnviz.core.mosaic import overview_strip, overview_strips

        maps = [to_maps(a.tensor, layouts[a.name]) for a in cap.layers]
        try:
            strips = overview_strips(maps, n=n)
        except Exception:  # noqa: BLE001 - one odd layer (an empty box list) must not hide the others
            strips = []
            for m in maps:
                try:
                    strips.append(overview_strip(m, n=n))
                except Exception:  # noqa: BLE001
                    strips.append(None)
        rows = []
        for a, m in zip(cap.layers, strips):
            shape = tuple(int(v) for v in (a.tensor.shape if layouts[a.name].kind == "nonbatch" else a.shape))
            if m is None:
                rows.append(OverviewRow(a.name, a.type, shape, np.zeros((0, 0), np.uint8), [], False))
                continue
            rows.append(OverviewRow(a.name, a.type, shape, m.image, m.channels,
                                    m.signed, tuple(int(v) for v in m.tile_hw), int(m.pad)))
        return rows

    def _modules(self) -> Any:
        rec = self._recorder
        runnable = getattr(rec, "runnable", None) if rec is not None else None
        return runnable if runnable is not None else self._model.module

    def _conv_layer_names(self, layers: list[LayerInfo]) -> list[str]:
        if self._conv_layers is None and getattr(self._model, "kind", None) == "onnx":
            self._onnx_weights = _onnx_conv_weights(self._model)
            self._conv_layers = [li.name for li in layers if li.name in self._onnx_weights]
        if self._conv_layers is None:
            import torch

            from cnnviz.core.capture import base_module_name

            root = self._modules()
            found = []
            for li in layers:
                if "#" in li.name or "[" in li.name:
                    continue
                try:
                    mod = root.get_submodule(base_module_name(li.name))
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

            onnx_w = getattr(self, "_onnx_weights", None)
            if getattr(self._model, "kind", None) == "onnx" and onnx_w is not None:
                import torch

                w = torch.from_numpy(np.array(onnx_w[name], dtype=np.float32))
            else:
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

    def _cam(self, req: InspectRequest, x, default: str | None, labels, task: TaskData | None = None) -> CamData:
        from cnnviz.core.errors import CnnvizError
        from cnnviz.core.explain import grad_cam, predicted_class

        layer = req.cam_layer or default
        if layer is None:
            raise CnnvizError("the model has no layer with a spatial map", "Grad-CAM needs a convolutional layer")
        cls = req.cam_class
        if cls is None and task is not None and task.task == "segmentation" and task.legend:
            cls = int(task.legend[0]["index"])  # the class covering most pixels, first in the predictions
        heat, used = grad_cam(self._model, x, target_class=cls, layer=layer)
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
            raise CnnvizError(f"{layer} has no spatial map ({info.shape_text}, {info.layout})",
                              "choose a convolution or pooling layer to see receptive fields")
        c, h, w = info.grid_shape
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
        """Write ``job`` from ``cap``; the maps follow this request's layouts."""
        import torch

        from cnnviz.core.layouts import to_maps
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
                    maps = to_maps(a.tensor, self._current_layouts.get(a.name) or a._layout())
                    st = _channel_stats(maps)
                    whole = _channel_stats(maps.reshape(1, -1))
                    rows.append([li.index, li.name, li.type, li.shape_text, li.params, li.rf_text,
                                 f"{whole.minimum[0]:.6g}", f"{whole.maximum[0]:.6g}", f"{whole.mean[0]:.6g}",
                                 f"{whole.std[0]:.6g}", f"{whole.zeros_pct[0]:.4g}", len(st),
                                 int(st.dead.sum()) if li.spatial else "", li.layout,
                                 "x".join(str(v) for v in li.map_shape or ())])

                def write(fh):
                    wr = csv.writer(fh)
                    wr.writerow(STATS_CSV_COLUMNS)
                    wr.writerows(rows)

                _write_atomic(job.csv_path, write, mode="w")
