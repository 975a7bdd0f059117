"""The demo model that ships: it loads offline, it reads digits, and its metadata is honest.

The accuracy test evaluates the shipped weights on the seeded held-out quarter of
scikit-learn's digits (the split the training script never trains on); it does not retrain.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cnnviz.core.capture import capture, topk
from cnnviz.core.demo import DEMO_LABELS, DigitsNet, demo_paths, load_demo_model, resources_dir
from cnnviz.core.images import load_image
from cnnviz.core.models import load_model


def test_demo_model_loads_with_labels_and_preprocessing():
    m = load_demo_model()
    assert m.kind == "demo" and isinstance(m.module, DigitsNet) and not m.module.training
    assert m.labels == DEMO_LABELS and m.input_channels == 1
    pp = m.preprocessing
    assert pp.color == "gray" and pp.resize == (28, 28) and pp.mean == (0.0,) and pp.std == (1.0,)
    via_spec = load_model("demo")
    assert via_spec.kind == "demo" and via_spec.labels == DEMO_LABELS


def test_held_out_accuracy_is_at_least_95_percent():
    pytest.importorskip("sklearn")
    from cnnviz.core.demo import load_digits_split

    _, _, x_te, y_te = load_digits_split()
    assert len(y_te) == 450 and np.bincount(y_te).min() >= 43  # stratified quarter (class 8 has 174 scans)
    net = load_demo_model().module
    with torch.inference_mode():
        pred = net(torch.from_numpy(x_te)[:, None]).argmax(1).numpy()
    acc = float((pred == y_te).mean())
    assert acc >= 0.95
    meta = json.loads(demo_paths()[1].read_text())
    assert abs(meta["training"]["held_out_accuracy"] - acc) < 0.003  # the metadata tells the truth


def test_metadata_records_how_it_was_trained():
    weights, meta_path = demo_paths()
    meta = json.loads(meta_path.read_text())
    assert meta["architecture"] == "DigitsNet" and meta["labels"] == DEMO_LABELS
    t = meta["training"]
    assert t["seed"] == 0 and t["split"]["seed"] == 0 and t["split"]["test_fraction"] == 0.25
    assert t["script"] == "scripts/train_demo_model.py" and t["date"]
    assert weights.stat().st_size < 1_000_000  # small enough to ship in the repo


def test_the_bundled_sample_digit_is_read_as_a_three():
    m = load_demo_model()
    x = m.preprocessing.apply(load_image(resources_dir() / "samples" / "digit.png").pixels)
    assert x.shape == (1, 1, 28, 28) and 0 <= float(x.min()) and float(x.max()) <= 1
    result = capture(m, x)
    (idx, name, prob), *_ = topk(result.output, m.labels, 3)
    assert name == "3" and prob > 0.8
    assert [a.name for a in result.layers][:5] == ["conv1", "relu1", "conv2", "relu2", "pool1"]


def test_digits_drawn_with_strokes_are_read():
    """Digits drawn like on a canvas (thick white strokes on black, not from the data set)."""
    cv2 = pytest.importorskip("cv2")
    m = load_demo_model()

    def draw(d: str) -> np.ndarray:
        img = np.zeros((112, 112), np.uint8)
        if d == "1":
            cv2.line(img, (56, 18), (56, 94), 255, 9)
        elif d == "7":
            cv2.line(img, (30, 20), (82, 20), 255, 9)
            cv2.line(img, (82, 20), (50, 94), 255, 9)
        elif d == "0":
            cv2.ellipse(img, (56, 56), (26, 38), 0, 0, 360, 255, 9)
        elif d == "4":
            cv2.line(img, (66, 18), (28, 70), 255, 9)
            cv2.line(img, (28, 70), (86, 70), 255, 9)
            cv2.line(img, (70, 40), (70, 94), 255, 9)
        return img.astype(np.float32) / 255

    read = {d: int(m.module(m.preprocessing.apply(draw(d))).argmax()) for d in "1704"}
    assert read == {"1": 1, "7": 7, "0": 0, "4": 4}
