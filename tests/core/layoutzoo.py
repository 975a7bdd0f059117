"""Small modern models for the layout, every-op, task and ONNX tests (random init, no downloads).

Also importable from a ``file.py:Class`` spec in the CLI tests.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Permute(nn.Module):
    def __init__(self, *dims: int):
        super().__init__()
        self.dims = list(dims)

    def forward(self, x):
        return x.permute(*self.dims)


class ChannelsLastBlock(nn.Module):
    """ConvNeXt-style: depthwise conv, then channels-last LayerNorm / Linear MLP (a Permute
    module in, a bare ``x.permute`` out), a residual add."""

    def __init__(self, c: int = 6):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, stride=2, padding=1)
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.to_last = Permute(0, 2, 3, 1)
        self.norm = nn.LayerNorm(c)
        self.fc1 = nn.Linear(c, 4 * c)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(4 * c, c)
        self.head = nn.Linear(c, 5)

    def forward(self, x):
        x = self.stem(x)
        y = self.fc2(self.act(self.fc1(self.norm(self.to_last(self.dw(x))))))
        x = x + y.permute(0, 3, 1, 2)
        return self.head(x.mean((2, 3)))


class Attention(nn.Module):
    def __init__(self, c: int, heads: int = 2):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(c, 3 * c)
        self.proj = nn.Linear(c, c)

    def forward(self, x):
        n, t, c = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-2, -1) * (c // self.heads) ** -0.5, dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(n, t, c))


class Block(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(c)
        self.attn = Attention(c)
        self.ln2 = nn.LayerNorm(c)
        self.mlp = nn.Sequential(nn.Linear(c, 2 * c), nn.GELU(), nn.Linear(2 * c, c))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyViT(nn.Module):
    """ViT-like: 8x8 patches of a 32x48 input (a 4x6 grid), a class token, position
    embeddings, two blocks with attention written out (matmul, softmax), head on the class
    token."""

    def __init__(self, c: int = 8, classes: int = 4):
        super().__init__()
        self.patch = nn.Conv2d(3, c, 8, stride=8)
        self.class_token = nn.Parameter(torch.randn(1, 1, c))
        self.pos = nn.Parameter(torch.randn(1, 1 + 24, c) * 0.1)
        self.blocks = nn.Sequential(Block(c), Block(c))
        self.norm = nn.LayerNorm(c)
        self.head = nn.Linear(c, classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


class Anchors(nn.Module):
    """Anchor boxes for a feature map: (H*W, 4), no batch dimension."""

    def forward(self, feat):
        h, w = feat.shape[-2:]
        ys, xs = torch.meshgrid(torch.arange(h, dtype=feat.dtype), torch.arange(w, dtype=feat.dtype), indexing="ij")
        c = torch.stack([xs, ys], -1).reshape(-1, 2) * 4.0
        return torch.cat([c - 2, c + 2], 1)


class RoIs(nn.Module):
    """The first R anchors' 3x3 feature crops: (R, C, 3, 3)."""

    def __init__(self, r: int = 5):
        super().__init__()
        self.r = r

    def forward(self, feat):
        crops = [feat[0, :, i:i + 3, i:i + 3] for i in range(self.r)]
        return torch.stack(crops)


class TinyDetector(nn.Module):
    """Returns torchvision-style detections: [{"boxes", "labels", "scores"}]."""

    def __init__(self, c: int = 4):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, c, 3, stride=2, padding=1), nn.ReLU())
        self.anchors = Anchors()
        self.rois = RoIs()
        self.score = nn.Linear(c * 9, 1)
        self.cls = nn.Linear(c * 9, 3)

    def forward(self, x):
        f = self.backbone(x)
        boxes = self.anchors(f)[:5]
        r = self.rois(f).flatten(1)
        scores = torch.sigmoid(self.score(r))[:, 0]
        labels = self.cls(r).argmax(1) + 1
        return [{"boxes": boxes, "labels": labels, "scores": scores}]


class MultiOutput(nn.Module):
    """MTCNN-ONet-like: (boxes (N, 4), landmarks (N, 10), face probability (N, 2))."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.box = nn.Linear(16, 4)
        self.landmarks = nn.Linear(16, 10)
        self.prob = nn.Linear(16, 2)

    def forward(self, x):
        f = self.pool(F.relu(self.conv(x))).flatten(1)
        return self.box(f), self.landmarks(f), torch.softmax(self.prob(f), 1)


class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        x = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        return self.fc(self.pool(x).flatten(1))
