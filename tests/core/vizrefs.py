"""Shared helpers for the feature-visualization tests: a small CNN trained in seconds on
scikit-learn's digits, and a reference set of natural images (the bundled samples plus
scikit-image's photos) cropped at a model's input size."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SKIMAGE_PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "coins", "moon", "page", "rocket", "text",
                  "grass", "gravel", "brick", "clock", "immunohistochemistry", "colorwheel")


@functools.lru_cache(maxsize=None)
def natural_images() -> tuple[np.ndarray, ...]:
    """Float32 RGB (H, W, 3) images in [0, 1]: resources/samples/*.png and skimage.data photos."""
    import skimage.data

    from cnnviz.core.images import load_image
    from cnnviz.core.resources import resources_dir

    out = []
    for p in sorted((resources_dir() / "samples").glob("*.png")):
        out.append(load_image(p).pixels)
    for name in SKIMAGE_PHOTOS:
        out.append(getattr(skimage.data, name)().astype(np.float32) / 255.0)
    rgb = []
    for a in out:
        a = np.asarray(a, dtype=np.float32)
        if a.ndim == 2:
            a = np.repeat(a[:, :, None], 3, axis=2)
        rgb.append(np.ascontiguousarray(a[:, :, :3]))
    return tuple(rgb)


def reference_batch(size: tuple[int, int], channels: int, *, inverted: bool = True) -> torch.Tensor:
    """Every natural image as a whole (area-resized) and as a 3x3 grid of crops (a third of the
    shorter side, resized to ``size``), gray (BT.601) for one-channel models, plus their
    negatives when ``inverted``: ``(N, channels, H, W)`` in [0, 1]."""
    crops = []
    for a in natural_images():
        t = torch.from_numpy(a).permute(2, 0, 1)[None]
        if channels == 1:
            t = (t * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        h, w = t.shape[-2:]
        crops.append(F.interpolate(t, size=size, mode="area"))
        s = min(h, w) // 3
        for i in range(3):
            for j in range(3):
                y, x = i * (h - s) // 2, j * (w - s) // 2
                crops.append(F.interpolate(t[..., y:y + s, x:x + s], size=size, mode="area"))
    x = torch.cat(crops)
    return torch.cat([x, 1 - x]) if inverted else x


class SmallDigitsCNN(nn.Module):
    """A 16x16 gray digits classifier small enough to train in a few seconds on two cores."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.relu2 = nn.ReLU(inplace=True)
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc(self.flatten(x))


@functools.lru_cache(maxsize=None)
def _trained_state() -> tuple[dict, float]:
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    data = load_digits()
    x = torch.from_numpy(data.images.astype(np.float32) / 16.0)[:, None]
    x = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
    y = torch.from_numpy(data.target.astype(np.int64))
    n_train = 1400
    net = SmallDigitsCNN()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _epoch in range(4):
        perm = torch.randperm(n_train)
        for i in range(0, n_train, 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            F.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = float((net(x[n_train:]).argmax(1) == y[n_train:]).float().mean())
    return {k: v.clone() for k, v in net.state_dict().items()}, acc


def trained_small_cnn():
    """``(LoadedModel, held-out accuracy)`` of :class:`SmallDigitsCNN` trained on sklearn digits."""
    from cnnviz.core.models import LoadedModel, Preprocessing

    state, acc = _trained_state()
    net = SmallDigitsCNN()
    net.load_state_dict(state)
    net.eval()
    model = LoadedModel(module=net, kind="python", name="small digits CNN", source="tests",
                        preprocessing=Preprocessing(resize=(16, 16), color="gray"), labels=[str(i) for i in range(10)],
                        input_channels=1, input_size=(16, 16))
    return model, acc
