"""The demo model that ships with cnnviz: a small CNN that reads handwritten digits.

Trained by ``scripts/train_demo_model.py`` (seeded, reproducible, under two minutes on two CPU
cores) on scikit-learn's handwritten digits (``sklearn.datasets.load_digits``: 1797 scans of
8x8 pixels, 16 grey levels, white ink on black), each upscaled to 20x20 and centred in a
28x28 frame like MNIST, with small random shifts, rotations, scalings and stroke-width changes
so digits drawn on a canvas are read too. The weights and their metadata (labels,
preprocessing, accuracy on the held-out quarter of the data set) ship in
``resources/models/demo_digits.{safetensors,json}``.

Nothing here needs scikit-learn except :func:`load_digits_split` (the training script and the
accuracy test use it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.core.errors import ModelLoadError
from cnnviz.core.resources import resources_dir

__all__ = [
    "DEMO_ARCHITECTURE",
    "DEMO_LABELS",
    "DEMO_PREPROCESSING",
    "DigitsNet",
    "demo_paths",
    "digits_to_images",
    "load_demo_model",
    "load_digits_split",
    "resources_dir",
]

DEMO_ARCHITECTURE = "DigitsNet"
DEMO_LABELS = [str(i) for i in range(10)]
#: How an image becomes the demo model's input: grey, 28x28, pixels in [0, 1] (no mean/std).
DEMO_PREPROCESSING: dict[str, Any] = {
    "resize": [28, 28],
    "center_crop": None,
    "mean": [0.0],
    "std": [1.0],
    "color": "gray",
    "interpolation": "bilinear",
}
IMAGE_SIZE = 28
DIGIT_SIZE = 20  # the 8x8 scan is upscaled to this and centred, leaving a 4-pixel margin
SPLIT_SEED = 0
TEST_FRACTION = 0.25


def demo_paths() -> tuple[Path, Path]:
    """``(weights .safetensors, metadata .json)`` of the shipped demo model."""
    folder = resources_dir() / "models"
    return folder / "demo_digits.safetensors", folder / "demo_digits.json"


class DigitsNet(nn.Module):
    """A TinyVGG-style CNN for 1x28x28 digits: two blocks of two 3x3 convs and a 2x2 max
    pool, then two linear layers. Flat, readable layer names for the inspector."""

    def __init__(self, n_classes: int = 10, width: int = 16):
        super().__init__()
        w = width
        self.conv1 = nn.Conv2d(1, w, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(w, w, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(w, 2 * w, 3, padding=1)
        self.relu3 = nn.ReLU()
        self.conv4 = nn.Conv2d(2 * w, 2 * w, 3, padding=1)
        self.relu4 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(0.25)
        self.fc1 = nn.Linear(2 * w * 7 * 7, 64)
        self.relu5 = nn.ReLU()
        self.fc2 = nn.Linear(64, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu2(self.conv2(self.relu1(self.conv1(x)))))
        x = self.pool2(self.relu4(self.conv4(self.relu3(self.conv3(x)))))
        x = self.dropout(self.flatten(x))
        return self.fc2(self.relu5(self.fc1(x)))


def digits_to_images(images8: np.ndarray) -> np.ndarray:
    """scikit-learn digit scans ``(N, 8, 8)`` (or ``(N, 64)``) with values 0..16 → ``(N, 28, 28)``
    float32 in [0, 1]: upscaled (bilinear, antialiased) to 20x20 and centred, white on black."""
    arr = np.asarray(images8, dtype=np.float32).reshape(-1, 1, 8, 8) / 16.0
    t = F.interpolate(torch.from_numpy(arr), size=(DIGIT_SIZE, DIGIT_SIZE), mode="bilinear",
                      align_corners=False)
    m = (IMAGE_SIZE - DIGIT_SIZE) // 2
    t = F.pad(t, (m, m, m, m)).clamp_(0.0, 1.0)
    return t[:, 0].numpy()


def load_digits_split(seed: int = SPLIT_SEED, test_fraction: float = TEST_FRACTION):
    """The seeded, stratified train / held-out split the demo model was trained and judged on.

    Returns ``(x_train, y_train, x_test, y_test)`` with images from :func:`digits_to_images`
    and int64 labels. Needs scikit-learn (a test/training dependency, not a runtime one).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(
        data.images, data.target, test_size=test_fraction, random_state=seed, stratify=data.target)
    return (digits_to_images(x_tr), y_tr.astype(np.int64), digits_to_images(x_te), y_te.astype(np.int64))


def load_demo_model():
    """The shipped demo model as a :class:`cnnviz.core.models.LoadedModel` (CPU, eval mode)."""
    from safetensors.torch import load_file

    from cnnviz.core.models import LoadedModel, Preprocessing

    weights, meta_path = demo_paths()
    if not weights.is_file() or not meta_path.is_file():
        raise ModelLoadError(f"the demo model's files are missing ({weights.parent})",
                             "reinstall cnnviz, or run scripts/train_demo_model.py")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        width = int(meta.get("width", 16))
        state = load_file(str(weights))
        net = DigitsNet(n_classes=len(meta.get("labels", DEMO_LABELS)), width=width)
        net.load_state_dict(state)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelLoadError(f"the demo model's files are damaged ({exc})",
                             "reinstall cnnviz, or run scripts/train_demo_model.py") from exc
    net.eval()
    return LoadedModel(
        module=net,
        kind="demo",
        name="demo (handwritten digits)",
        source=str(weights),
        preprocessing=Preprocessing.from_dict(meta.get("preprocessing", DEMO_PREPROCESSING)),
        labels=list(meta.get("labels", DEMO_LABELS)),
        exported=None,
        input_channels=1,
        input_size=(IMAGE_SIZE, IMAGE_SIZE),
        weights=str(weights),
    )
