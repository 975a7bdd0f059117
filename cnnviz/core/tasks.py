"""What a model's output means: classes, a class map, boxes, keypoints, or the output the
user picks.

:func:`interpret` turns the raw output of a forward pass into a :class:`TaskResult`:

* **classification** — ``(N, K)`` scores: the top-k classes (softmax), as before;
* **segmentation** — ``(N, K, H, W)`` per-pixel scores (torchvision's ``{"out": ...}``): the
  per-pixel class map (argmax) and a legend of the classes present, named from the labels;
* **detection** — torchvision's list of ``{"boxes", "labels", "scores"}`` dicts: the boxes
  above a score threshold, with their class names; ``"keypoints"`` make it **keypoints**,
  ``"masks"`` add an instance class map;
* **multi-output models** — a tuple / dict of outputs: :func:`list_outputs` names them
  (``0``, ``1``, ... or the dict keys) and ``output=`` picks the one that is the prediction;
  one that does not exist is a :class:`TaskError` listing those that do.

The render helpers (:func:`overlay_class_map`, :func:`draw_detections`) work on numpy RGB
images (no Qt), for the CLI's files and the window alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnviz.core.errors import CnnvizError

__all__ = [
    "TASKS",
    "TaskError",
    "TaskResult",
    "detect_task",
    "draw_detections",
    "input_to_rgb",
    "interpret",
    "list_outputs",
    "overlay_class_map",
    "palette",
    "select_output",
]

TASKS = ("classification", "segmentation", "detection", "keypoints", "tensor")
_DEFAULT_KEYS = ("logits", "out", "output")


class TaskError(CnnvizError):
    """An output or task the model does not have."""


def _is_tensor(v) -> bool:
    return hasattr(v, "shape") and hasattr(v, "dtype") and not isinstance(v, (dict, list, tuple))


def _is_detection(v) -> bool:
    return (isinstance(v, (list, tuple)) and len(v) > 0
            and all(isinstance(d, dict) and "boxes" in d for d in v))


def _describe(v) -> str:
    if _is_tensor(v):
        return f"shape {list(v.shape)}"
    if _is_detection(v):
        return "detections (boxes, labels, scores)"
    if isinstance(v, dict):
        return f"dict of {len(v)}"
    if isinstance(v, (list, tuple)):
        return f"{type(v).__name__} of {len(v)}"
    return type(v).__name__


def list_outputs(raw: Any) -> list[tuple[str, Any]]:
    """The model's outputs by name: one tensor is ``"output"``; a tuple/list ``"0"``,
    ``"1"``, ...; a dict its keys; torchvision's detections one ``"detections"`` output."""
    if raw is None:
        return []
    if _is_tensor(raw):
        return [("output", raw)]
    if _is_detection(raw):
        return [("detections", raw)]
    if isinstance(raw, dict):
        return [(str(k), v) for k, v in raw.items()]
    if isinstance(raw, (list, tuple)):
        return [(str(i), v) for i, v in enumerate(raw)]
    return [("output", raw)]


def select_output(raw: Any, choice: str | int | None = None) -> tuple[str, Any]:
    """``(name, value)`` of the prediction output: ``choice`` by name or index, else the
    ``logits``/``out``/``output`` entry of a dict, else the first output."""
    outs = list_outputs(raw)
    if not outs:
        raise TaskError("the model returned no output", "check the model's forward")
    if choice is None or (isinstance(choice, str) and not choice.strip()):
        names = dict(outs)
        for key in _DEFAULT_KEYS:
            if key in names:
                return key, names[key]
        for name, v in outs:
            if _is_tensor(v) or _is_detection(v):
                return name, v
        return outs[0]
    text = str(choice).strip()
    for name, v in outs:
        if name == text:
            return name, v
    if text.lstrip("-").isdigit():
        i = int(text)
        if -len(outs) <= i < len(outs):
            return outs[i]
    listing = ", ".join(f"{i} {name!r} ({_describe(v)})" for i, (name, v) in enumerate(outs))
    raise TaskError(f"the model has no output {text!r}; its outputs are: {listing}",
                    "give --output one of those names or indexes")


def detect_task(value: Any) -> str:
    """The task an output looks like (see :data:`TASKS`)."""
    if _is_detection(value):
        return "keypoints" if any("keypoints" in d for d in value) else "detection"
    if _is_tensor(value):
        shape = tuple(value.shape)
        if len(shape) == 2:
            return "classification"
        if len(shape) == 4 and shape[1] > 1 and shape[2] > 1 and shape[3] > 1:
            return "segmentation"
        if len(shape) == 1:
            return "classification"
    return "tensor"


def _np(t) -> np.ndarray:
    if hasattr(t, "detach"):
        t = t.detach()
        if hasattr(t, "float") and t.is_floating_point():
            t = t.float()
        return t.cpu().numpy()
    return np.asarray(t)


def _name(labels: Sequence[str] | None, i: int) -> str:
    return str(labels[i]) if labels is not None and 0 <= i < len(labels) else f"class {i}"


@dataclass
class TaskResult:
    """A forward pass's output read as a task.

    ``class_map`` is ``(H, W)`` int (segmentation, instance masks), ``legend`` the classes
    in it (``{"index", "name", "fraction"}``, most pixels first), ``detections`` the boxes
    above ``score_threshold`` (``{"box": [x1, y1, x2, y2], "label", "name", "score"}`` plus
    ``"keypoints"`` ``[[x, y, visible], ...]``), ``predictions`` the top-k classes.
    """

    task: str
    output_name: str
    outputs: list[dict[str, str]]
    predictions: list[dict[str, Any]] = field(default_factory=list)
    class_map: np.ndarray | None = None
    legend: list[dict[str, Any]] = field(default_factory=list)
    detections: list[dict[str, Any]] = field(default_factory=list)
    score_threshold: float | None = None
    below_threshold: int = 0

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"task": self.task, "output": self.output_name, "outputs": self.outputs}
        if self.task == "classification":
            d["predictions"] = self.predictions
        if self.class_map is not None:
            d["class_map_shape"] = list(self.class_map.shape)
            d["legend"] = self.legend
        if self.task in ("detection", "keypoints"):
            d["fields"] = ["boxes", "labels", "scores"] + (["keypoints"] if self.task == "keypoints" else [])
            d["score_threshold"] = self.score_threshold
            d["detections"] = self.detections
            d["below_threshold"] = self.below_threshold
        return d


def interpret(raw: Any, *, output: str | int | None = None, task: str | None = None,
              labels: Sequence[str] | None = None, topk: int = 5,
              score_threshold: float = 0.5) -> TaskResult:
    """Read the raw model output as ``task`` (default: :func:`detect_task` of the chosen
    output). Only the first item of a batch is read."""
    name, value = select_output(raw, output)
    outs = [{"name": n, "value": _describe(v)} for n, v in list_outputs(raw)]
    task = task or detect_task(value)
    if task not in TASKS:
        raise TaskError(f"unknown task {task!r}", f"choose one of {', '.join(TASKS)}")
    res = TaskResult(task=task, output_name=name, outputs=outs)
    if task == "classification":
        if not _is_tensor(value):
            raise TaskError(f"output {name!r} ({_describe(value)}) holds no class scores",
                            "pick another output with --output")
        from cnnviz.core.capture import topk as _topk

        res.predictions = [{"rank": r + 1, "index": i, "name": n, "prob": p if np.isfinite(p) else None}
                           for r, (i, n, p) in enumerate(_topk(value, labels, topk))]
    elif task == "segmentation":
        if not _is_tensor(value) or value.dim() != 4:
            raise TaskError(f"output {name!r} ({_describe(value)}) is not per-pixel class scores (N, K, H, W)",
                            "pick another output with --output")
        res.class_map = _np(value[0].argmax(0)).astype(np.int32)
        res.legend = _legend(res.class_map, labels)
    elif task in ("detection", "keypoints"):
        if not _is_detection(value):
            raise TaskError(f"output {name!r} ({_describe(value)}) is not a list of detections "
                            "(boxes, labels, scores)", "pick another output with --output")
        res.score_threshold = float(score_threshold)
        det = value[0]
        boxes = _np(det["boxes"]).reshape(-1, 4)
        n = len(boxes)
        scores = _np(det["scores"]) if "scores" in det else np.ones(n, np.float32)
        lbls = _np(det["labels"]).astype(np.int64) if "labels" in det else np.zeros(n, np.int64)
        kps = _np(det["keypoints"]) if "keypoints" in det else None
        keep = np.flatnonzero(scores >= score_threshold)
        res.below_threshold = int(n - len(keep))
        for k in keep:
            item = {"box": [float(v) for v in boxes[k]], "label": int(lbls[k]),
                    "name": _name(labels, int(lbls[k])), "score": float(scores[k])}
            if kps is not None:
                item["keypoints"] = [[float(a) for a in p] for p in kps[k]]
            res.detections.append(item)
        if "masks" in det and len(keep):
            masks = _np(det["masks"])[keep, 0] > 0.5  # (K, H, W), best first
            cmap = np.zeros(masks.shape[1:], np.int32)
            for k in range(len(keep) - 1, -1, -1):  # the best-scoring box on top
                cmap[masks[k]] = int(lbls[keep[k]])
            res.class_map = cmap
            res.legend = _legend(cmap, labels)
    return res


def _legend(class_map: np.ndarray, labels) -> list[dict[str, Any]]:
    idx, counts = np.unique(class_map, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    total = max(1, class_map.size)
    return [{"index": int(idx[o]), "name": _name(labels, int(idx[o])), "fraction": float(counts[o] / total)}
            for o in order]


# --------------------------------------------------------------------------- rendering


def palette(n: int) -> np.ndarray:
    """``(n, 3)`` uint8 colours, class 0 (background) black, the rest distinct (PASCAL VOC's
    bit-interleaved palette)."""
    out = np.zeros((max(1, n), 3), np.uint8)
    for i in range(len(out)):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out[i] = (r, g, b)
    return out


def _resize_nearest(a: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if a.shape[:2] == tuple(hw):
        return a
    ys = np.minimum((np.arange(hw[0]) * a.shape[0] / hw[0]).astype(np.int64), a.shape[0] - 1)
    xs = np.minimum((np.arange(hw[1]) * a.shape[1] / hw[1]).astype(np.int64), a.shape[1] - 1)
    return a[ys][:, xs]


def overlay_class_map(image: np.ndarray, class_map: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with the class map's colours blended in (class 0 left as
    is); the class map is scaled to the image (nearest)."""
    img = np.asarray(image, np.uint8)
    cmap = _resize_nearest(np.asarray(class_map), img.shape[:2]).astype(np.int64)
    colors = palette(int(cmap.max()) + 1 if cmap.size else 1)[np.clip(cmap, 0, None)]
    out = img.astype(np.float32)
    fg = cmap > 0
    out[fg] = (1 - alpha) * out[fg] + alpha * colors[fg]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def draw_detections(image: np.ndarray, detections: Sequence[dict], thickness: int = 2) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with each detection's box, ``name score`` and keypoints."""
    import cv2

    out = np.ascontiguousarray(np.asarray(image, np.uint8).copy())
    colors = palette(256)
    for d in detections:
        x1, y1, x2, y2 = (int(round(v)) for v in d["box"])
        color = tuple(int(c) for c in colors[(int(d.get("label", 1)) % 255) + 1])
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
        text = f"{d.get('name', '')} {d.get('score', 0):.2f}"
        cv2.putText(out, text, (x1 + 2, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, 1, cv2.LINE_AA)
        for x, y, *vis in d.get("keypoints", ()):
            if not vis or vis[0] > 0:
                cv2.circle(out, (int(round(x)), int(round(y))), 2, color, -1)
    return out


def input_to_rgb(x, mean: Sequence[float], std: Sequence[float], color: str = "rgb") -> np.ndarray:
    """The image the model saw: input tensor ``(N, C, H, W)`` / ``(C, H, W)`` with the
    normalisation undone, as (H, W, 3) uint8 RGB."""
    a = _np(x).astype(np.float32)
    if a.ndim == 4:
        a = a[0]
    c = a.shape[0]
    m = np.asarray(mean, np.float32).reshape(-1, 1, 1)[:c]
    s = np.asarray(std, np.float32).reshape(-1, 1, 1)[:c]
    a = a * s + m
    if c == 1:
        a = np.repeat(a, 3, 0)
    elif color == "bgr":
        a = a[::-1]
    a = a[:3].transpose(1, 2, 0)
    return np.clip(a * 255 + 0.5, 0, 255).astype(np.uint8)
