"""Small models the tests build: every format and the capture recorder are checked on these.

The names here are shared by several test modules; keep them stable.

- :class:`TinyLeNet` -- plain conv/relu/pool/linear stack, 1x28x28 input by default.
- :class:`TinyResNet` -- resnet-shaped, like torchvision's: ``conv1/bn1/relu(inplace)/layer1``
  (two :class:`BasicBlock` with in-place ReLUs and an in-place residual add), ``avgpool``, ``fc``.
  The in-place ReLUs are the point: a hook that captured ``bn1`` without cloning sees the
  ReLU'd tensor.
- :class:`TupleNet` -- a submodule returns a tuple and the net returns ``(logits, aux)``.
- :class:`DictNet` -- returns ``{"logits": ..., "aux": ...}`` (eager only; TorchScript
  handles it too, torch.export does as well).
- :func:`write_model_py` -- writes ``net.py`` whose ``Net`` equals :class:`TinyLeNet`, for the
  ``file.py:Class`` format.
- :func:`prepare` -- seeds parameters, gives BatchNorm non-trivial running stats, sets eval().
- :func:`example_input` -- a deterministic input of the right shape for a model.

Import as ``from modelzoo import ...`` (pytest puts ``tests/core`` on ``sys.path`` because the
test folders have no ``__init__.py``) or ``from tests.core.modelzoo import ...`` when the repo
root is on ``sys.path`` (``python -m pytest``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class TinyLeNet(nn.Module):
    """LeNet-5-shaped net for ``in_ch`` x 28 x 28 inputs."""

    example_shape = (1, 28, 28)  # (C, H, W) with the default in_ch

    def __init__(self, in_ch: int = 1, n_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, 6, kernel_size=5, padding=2)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(16 * 5 * 5, 32)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(32, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.flatten(x)
        return self.fc2(self.relu3(self.fc1(x)))


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock (no downsample): in-place ReLU and ``out += identity``."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        out += identity
        out = self.relu(out)
        return out


class TinyResNet(nn.Module):
    """A resnet-shaped net with torchvision's module names, for ``in_ch`` x 32 x 32 inputs."""

    example_shape = (3, 32, 32)

    def __init__(self, in_ch: int = 3, n_classes: int = 5, width: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(BasicBlock(width), BasicBlock(width))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.layer1(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


class TwoHeads(nn.Module):
    """A submodule whose output is a tuple of two feature maps."""

    def __init__(self, channels: int):
        super().__init__()
        self.a = nn.Conv2d(channels, channels, 3, padding=1)
        self.b = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.a(x), self.b(x)


class TupleNet(nn.Module):
    """Returns ``(logits, aux)``; ``heads`` returns a tuple too. Input 3 x 16 x 16."""

    example_shape = (3, 16, 16)

    def __init__(self, in_ch: int = 3, n_classes: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.heads = TwoHeads(4)
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(4, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.relu(self.conv(x))
        a, b = self.heads(x)
        logits = self.fc(torch.flatten(self.pool(a + b), 1))
        return logits, b


class DictNet(nn.Module):
    """Returns ``{"logits": ..., "aux": ...}``. Input 3 x 16 x 16."""

    example_shape = (3, 16, 16)

    def __init__(self, in_ch: int = 3, n_classes: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(4, n_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feat = self.relu(self.conv(x))
        return {"logits": self.fc(torch.flatten(self.pool(feat), 1)), "aux": feat}


def prepare(model: nn.Module, seed: int = 0) -> nn.Module:
    """Re-initialise ``model`` deterministically, give BatchNorm non-trivial stats, set eval().

    Default BatchNorm stats (mean 0, var 1, weight 1, bias 0) make BN almost the identity, so
    a capture that mixed up conv and bn outputs would still pass; random stats make it fail.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def example_input(model: nn.Module | type, batch: int = 1, seed: int = 1) -> torch.Tensor:
    """A deterministic float32 input of shape ``(batch, *model.example_shape)``.

    For a model built with a non-default ``in_ch`` the channel count is read from its first
    conv.
    """
    shape = list(model.example_shape)
    if isinstance(model, nn.Module):
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                shape[0] = m.in_channels
                break
    gen = torch.Generator().manual_seed(seed)
    return torch.rand((batch, *shape), generator=gen)


# Same architecture and parameter names as TinyLeNet, so TinyLeNet's state_dict loads into it.
_NET_PY = '''\
"""A user's model file: cnnviz imports it to build the model (this runs its code)."""
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, in_ch: int = 1, n_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, 6, kernel_size=5, padding=2)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(16 * 5 * 5, 32)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(32, n_classes)

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.flatten(x)
        return self.fc2(self.relu3(self.fc1(x)))
'''


def write_model_py(directory: str | Path, filename: str = "net.py") -> Path:
    """Write a ``.py`` file defining ``Net`` (equivalent to :class:`TinyLeNet`); return its path."""
    path = Path(directory) / filename
    path.write_text(_NET_PY, encoding="utf-8")
    return path
