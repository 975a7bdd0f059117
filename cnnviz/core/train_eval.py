"""Evaluate a trained model on a data set: accuracy and the confusion matrix (JSON + PNG).

Used by ``cnnviz evaluate``; the numbers come from :func:`cnnviz.core.train.evaluate_arrays`,
the function the training loop scores its validation set with, on images prepared by the same
:mod:`cnnviz.core.train_data` functions, so both agree exactly on the same images.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from cnnviz.core.errors import CnnvizError, ModelLoadError


def load_for_evaluation(spec: str, *, trust: bool = False, device: str = "cpu"):
    """``(LoadedModel, checkpoint metadata)`` for a run folder / checkpoint, or ``demo``."""
    from cnnviz.core.train_models import _read_meta, find_checkpoint, load_checkpoint

    if str(spec).strip().lower() == "demo":
        from cnnviz.core.demo import load_demo_model

        loaded = load_demo_model()
        meta = {"labels": loaded.labels, "preprocessing": loaded.preprocessing.to_dict(),
                "data": {"source": "digits", "split_seed": 0, "val_fraction": 0.25}}
    else:
        j = find_checkpoint(spec)
        if j is None:
            if not Path(spec).exists():
                raise ModelLoadError(f"{spec} does not exist", "give a run folder or checkpoint from cnnviz train")
            raise ModelLoadError(f"{spec} is not a cnnviz training checkpoint",
                                 "give a run folder, or an epoch-NNN.json / .safetensors from one, or demo")
        meta = _read_meta(j)
        loaded = load_checkpoint(j, trust=trust)
    if device != "cpu":
        from cnnviz.core.models import move_model

        loaded = move_model(loaded, device, "float32")
    return loaded, meta


def evaluate_model(loaded, meta: dict, data: str, *, device: str = "cpu", split_seed: int | None = None):
    """Score ``loaded`` on ``data`` (``digits``: the held-out split it was validated on).
    Returns ``(EvalResult, labels, skipped files, number of images)``."""
    from cnnviz.core.demo import load_digits_split
    from cnnviz.core.models import Preprocessing
    from cnnviz.core.train import evaluate_arrays
    from cnnviz.core.train_data import load_eval_folder

    labels = list(meta.get("labels") or [])
    pre = meta["preprocessing"]
    skipped: list = []
    if str(data).strip().lower() == "digits":
        if labels != [str(i) for i in range(10)]:
            raise CnnvizError("this model was not trained on the digits (its classes are "
                              f"{', '.join(labels[:8])}…)", "evaluate it on a folder of its classes")
        d = meta.get("data") or {}
        seed = int(d.get("split_seed", 0)) if split_seed is None else int(split_seed)
        _, _, x_img, y = load_digits_split(seed=seed, test_fraction=float(d.get("val_fraction", 0.25)))
        p = Preprocessing.from_dict(pre)
        x = np.concatenate([p.apply(im).numpy() for im in x_img]).astype(np.float32)
    else:
        if not Path(data).is_dir():
            raise CnnvizError(f"{data} is not a folder", "give digits or a folder with one sub-folder per class")
        x, y, _files, skipped = load_eval_folder(data, pre, labels)
    res = evaluate_arrays(loaded.module, x, y, len(labels), device=device)
    return res, labels, skipped, len(y)


def confusion_png(cm: np.ndarray, labels: list[str], cell: int = 36) -> np.ndarray:
    """The confusion matrix as an RGB picture: rows true, columns predicted, counts written in."""
    from PIL import Image, ImageDraw

    k = len(labels)
    margin = 8 + 7 * min(12, max((len(str(s)) for s in labels), default=1))
    w = margin + k * cell + 4
    img = Image.new("RGB", (w, w + 16), (255, 255, 255))
    d = ImageDraw.Draw(img)
    rows = cm.sum(1, keepdims=True).clip(min=1)
    frac = cm / rows
    for r in range(k):
        d.text((2, margin + r * cell + cell // 2 - 5), str(labels[r])[:12], fill=(0, 0, 0))
        d.text((margin + r * cell + 4, margin - 14), str(labels[r])[:4], fill=(0, 0, 0))
        for c in range(k):
            v = float(frac[r, c])
            col = (int(255 - 200 * v), int(255 - 120 * v), 255) if r == c else (255, int(255 - 200 * v), int(255 - 200 * v))
            x0, y0 = margin + c * cell, margin + r * cell
            d.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=col, outline=(200, 200, 200))
            d.text((x0 + 4, y0 + cell // 2 - 5), str(int(cm[r, c])), fill=(0, 0, 0))
    d.text((margin, w + 2), "rows: true class, columns: predicted", fill=(80, 80, 80))
    return np.asarray(img)


def write_confusion(out: Path, res, labels: list[str], **info) -> list[Path]:
    from PIL import Image

    from cnnviz.core.train import atomic_write_bytes

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CnnvizError(f"cannot create {out} ({exc.strerror or exc})", "choose a folder you can write to") from exc
    j = out / "confusion.json"
    body = {"labels": labels, "confusion": res.confusion.tolist(), "accuracy": res.accuracy, "loss": res.loss,
            "rows": "true class", "columns": "predicted class", **info}
    atomic_write_bytes(j, json.dumps(body, indent=1).encode())
    buf = io.BytesIO()
    Image.fromarray(confusion_png(res.confusion, labels)).save(buf, format="PNG")
    png = out / "confusion.png"
    atomic_write_bytes(png, buf.getvalue())
    return [j, png]
