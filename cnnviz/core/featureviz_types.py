"""What feature visualization takes and gives: the settings, the objective (a channel, a unit,
a class, or every channel of a layer), the request, the partial results shown while it runs,
the result, and its error. Split from :mod:`cnnviz.core.featureviz`, which re-exports them."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnviz.core.errors import CnnvizError


OPTIMIZERS = ("adam", "sgd")
MAX_SIDE = 1024


class FeatureVizError(CnnvizError):
    """A feature visualization that cannot run (bad target, diverged optimization...)."""


@dataclass(frozen=True)
class FeatureVizSettings:
    """How the image is optimized. Every field goes into the cache key.

    Attributes
    ----------
    steps, lr, optimizer:
        Number of optimization steps, learning rate, ``"adam"`` or ``"sgd"``.
    size:
        ``(H, W)`` of the image, ``None``: the model's input size (:func:`default_size`).
    batch:
        Images per target (more than one makes sense with ``diversity``).
    diversity:
        Weight of the diversity term (0: off).
    fourier, decorrelate, transforms:
        The three parts of the recipe; switch one off to see what it does.
    jitter:
        Largest random shift in pixels; ``None``: 4 % of the image side (8 px at 224).
    seed:
        Seeds the initial image and the random transformations: same seed, same image.
    chunk:
        At most this many images are optimized at once (all channels of a wide layer are
        split into chunks; each chunk is one batched optimization).
    """

    steps: int = 128
    lr: float = 0.1
    optimizer: str = "adam"
    size: tuple[int, int] | None = None
    batch: int = 1
    diversity: float = 0.0
    fourier: bool = True
    decorrelate: bool = True
    transforms: bool = True
    jitter: int | None = None
    seed: int = 0
    chunk: int = 64

    def __post_init__(self) -> None:
        if int(self.steps) < 1:
            raise FeatureVizError(f"steps must be at least 1, got {self.steps}", "use e.g. 128 steps")
        if not (math.isfinite(float(self.lr)) and float(self.lr) > 0):
            raise FeatureVizError(f"the learning rate must be a positive number, got {self.lr}", "use e.g. 0.05")
        if self.optimizer not in OPTIMIZERS:
            raise FeatureVizError(f"unknown optimizer {self.optimizer!r}", f"use one of {', '.join(OPTIMIZERS)}")
        if int(self.batch) < 1:
            raise FeatureVizError(f"batch must be at least 1, got {self.batch}", "use 1, or more with diversity")
        if int(self.chunk) < 1:
            raise FeatureVizError(f"chunk must be at least 1, got {self.chunk}", "use e.g. 64")
        if not (math.isfinite(float(self.diversity)) and float(self.diversity) >= 0):
            raise FeatureVizError(f"diversity must be 0 or more, got {self.diversity}", "use e.g. 0 or 1e2")
        if self.size is not None:
            h, w = (int(v) for v in self.size)
            if not (4 <= h <= MAX_SIDE and 4 <= w <= MAX_SIDE):
                raise FeatureVizError(f"image size {h}x{w} is out of range",
                                      f"use a size from 4 to {MAX_SIDE} pixels per side")
            object.__setattr__(self, "size", (h, w))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["size"] = list(self.size) if self.size is not None else None
        return d


@dataclass(frozen=True)
class Objective:
    """What to maximize.

    ``kind`` is ``"channel"`` (the mean of channel ``channel`` of ``layer`` over its map),
    ``"unit"`` (channel ``channel`` at map position ``unit``), ``"class"`` (the model's output
    score ``channel``, before softmax; ``layer`` is ``None``) or ``"all"`` (every channel of
    ``layer``, one image each).
    """

    kind: str
    layer: str | None
    channel: int | None = None
    unit: tuple[int, int] | None = None

    @staticmethod
    def channel_of(layer: str, channel: int) -> Objective:
        return Objective("channel", layer, int(channel))

    @staticmethod
    def unit_of(layer: str, channel: int, y: int, x: int) -> Objective:
        return Objective("unit", layer, int(channel), (int(y), int(x)))

    @staticmethod
    def output_class(cls: int) -> Objective:
        return Objective("class", None, int(cls))

    @staticmethod
    def all_channels(layer: str) -> Objective:
        return Objective("all", layer)

    def describe(self) -> str:
        if self.kind == "class":
            return f"class {self.channel}"
        if self.kind == "all":
            return f"every channel of {self.layer}"
        if self.kind == "unit":
            return f"{self.layer} channel {self.channel} at {self.unit}"
        return f"{self.layer} channel {self.channel}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "layer": self.layer, "channel": self.channel,
                "unit": list(self.unit) if self.unit is not None else None}


@dataclass(frozen=True)
class FeatureVizRequest:
    objective: Objective
    settings: FeatureVizSettings = field(default_factory=FeatureVizSettings)


@dataclass
class FeatureVizPartial:
    """What the optimization looks like now (for a live view)."""

    step: int
    steps: int
    images: np.ndarray  # (N, H, W, C) float32 in [0, 1], RGB or gray (C = 1)
    values: np.ndarray  # (N,) current activation per image (on the transformed image)
    channels: np.ndarray  # (N,) the channel (or class) each image maximizes


@dataclass
class FeatureVizResult:
    """The optimized images and how strongly each excites its target.

    Attributes
    ----------
    images:
        ``(N, H, W, C)`` float32 in ``[0, 1]`` (8-bit steps), RGB (``C = 3``) or gray
        (``C = 1``); for ``"all"`` one per channel (``N = channels * batch``).
    values:
        ``(N,)`` the target activation on each image as it is (no transformation).
    channels:
        ``(N,)`` which channel (or class) each image maximizes.
    history:
        ``(steps,)`` the mean target activation during the optimization (transformed images).
    cached:
        True when the result came from the cache.
    """

    objective: Objective
    settings: FeatureVizSettings
    images: np.ndarray
    values: np.ndarray
    channels: np.ndarray
    history: np.ndarray
    cached: bool = False
    key: str = ""

    def images_uint8(self) -> np.ndarray:
        return np.clip(np.rint(self.images * 255.0), 0, 255).astype(np.uint8)

    def for_channel(self, channel: int) -> np.ndarray:
        """The image(s) of one channel, ``(batch, H, W, C)``."""
        return self.images[self.channels == int(channel)]
