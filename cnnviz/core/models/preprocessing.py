"""How an image becomes a model's input tensor: :class:`Preprocessing` (resize, crop,
mean/std, colour order), read from torchvision's weight presets where they exist."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cnnviz.core.errors import SettingsError, SpecError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


_COLORS = ("rgb", "bgr", "gray")
_INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


def _size_or_none(value: Any, what: str) -> int | tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise SpecError(f"{what} must be a size in pixels, not {value!r}")
    if isinstance(value, (int, np.integer)):
        if value <= 0:
            raise SpecError(f"{what} must be positive, got {value}", "give a size of at least 1 pixel")
        return int(value)
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            return _size_or_none(value[0], what)
        if len(value) == 2 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
        ):
            h, w = (int(v) for v in value)
            if h <= 0 or w <= 0:
                raise SpecError(f"{what} must be positive, got {h}x{w}", "give sizes of at least 1 pixel")
            return (h, w)
    raise SpecError(f"{what} must be one size or (height, width), got {value!r}")


def _floats(value: Any, what: str) -> tuple[float, ...]:
    if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
        value = (value,)
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise SpecError(f"{what} must be numbers, got {value!r}") from None
    if not out:
        raise SpecError(f"{what} is empty", "give one value per channel")
    if not all(math.isfinite(v) for v in out):
        raise SpecError(f"{what} has a value that is not finite: {out}")
    return out


@dataclass
class Preprocessing:
    """How an image becomes the model's input tensor; stored with the model's settings.

    Steps, in torchvision's order: colour conversion, resize, center crop, ``(x - mean) / std``.
    Pixels are in [0, 1] before mean/std, so ``mean``/``std`` are in [0, 1] units
    (ImageNet: mean 0.485, 0.456, 0.406 and std 0.229, 0.224, 0.225).

    Attributes
    ----------
    resize:
        ``None``; one int: the shorter side becomes this (aspect kept, torchvision's
        ``Resize(int)``); ``(h, w)``: exactly this size.
    center_crop:
        ``None``, one int (square) or ``(h, w)``; pads with zeros if the image is smaller,
        like torchvision.
    mean, std:
        One value per model input channel, or one value for all.
    color:
        Channel order the model expects: ``"rgb"``, ``"bgr"`` or ``"gray"`` (one channel,
        ITU-R 601 luma). Input pixels are always RGB (or gray).
    interpolation:
        ``"bilinear"`` (torchvision's default, antialiased), ``"bicubic"`` or ``"nearest"``.
    """

    resize: int | tuple[int, int] | None = None
    center_crop: int | tuple[int, int] | None = None
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    color: str = "rgb"
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        self.resize = _size_or_none(self.resize, "resize")
        self.center_crop = _size_or_none(self.center_crop, "center crop")
        self.mean = _floats(self.mean, "mean")
        self.std = _floats(self.std, "std")
        if any(s <= 0 for s in self.std):
            raise SpecError(f"std must be positive, got {self.std}", "std divides the pixels")
        self.color = str(self.color).lower()
        if self.color in ("grey", "grayscale", "l"):
            self.color = "gray"
        if self.color not in _COLORS:
            raise SpecError(f"unknown colour order {self.color!r}", f"use one of {', '.join(_COLORS)}")
        self.interpolation = str(self.interpolation).lower()
        if self.interpolation not in _INTERPOLATIONS:
            raise SpecError(
                f"unknown interpolation {self.interpolation!r}", f"use one of {', '.join(_INTERPOLATIONS)}"
            )
        for what, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, self.channels):
                raise SpecError(
                    f"{what} has {len(values)} values but {self.color} input has {self.channels} "
                    "channel(s)",
                    "give 1 value" if self.channels == 1 else f"give 1 or {self.channels} values",
                )

    @property
    def channels(self) -> int:
        return 1 if self.color == "gray" else 3

    # -- serialisation -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (tuples become lists)."""

        def plain(v):
            return list(v) if isinstance(v, tuple) else v

        return {
            "resize": plain(self.resize),
            "center_crop": plain(self.center_crop),
            "mean": list(self.mean),
            "std": list(self.std),
            "color": self.color,
            "interpolation": self.interpolation,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        """Inverse of :meth:`to_dict`. Raises :class:`SettingsError` for a bad dict."""
        if not isinstance(data, Mapping):
            raise SettingsError(f"preprocessing settings must be a table, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SettingsError(
                f"unknown preprocessing setting(s): {', '.join(map(str, unknown))}",
                f"known settings are {', '.join(sorted(known))}",
            )
        try:
            return cls(**dict(data))
        except SpecError as exc:
            raise SettingsError(f"bad preprocessing setting: {exc.cause}", exc.fix) from exc

    def describe(self) -> str:
        """One line for people, e.g. ``resize 256 (shorter side), crop 224, mean …``."""
        parts = []
        if self.resize is not None:
            parts.append(
                f"resize {self.resize} (shorter side)" if isinstance(self.resize, int)
                else f"resize {self.resize[0]}x{self.resize[1]} (HxW)"
            )
        if self.center_crop is not None:
            c = self.center_crop
            parts.append(f"center crop {c}" if isinstance(c, int) else f"center crop {c[0]}x{c[1]} (HxW)")
        parts.append("mean " + ", ".join(f"{m:g}" for m in self.mean))
        parts.append("std " + ", ".join(f"{s:g}" for s in self.std))
        parts.append(self.color.upper())
        return "; ".join(parts)

    # -- the transform ---------------------------------------------------------------------

    def output_size(self, hw: tuple[int, int]) -> tuple[int, int]:
        """``(H, W)`` of what :meth:`apply` makes of an ``hw`` image (resize, then crop)."""
        h, w = int(hw[0]), int(hw[1])
        if self.resize is not None:
            h, w = _resized_size((h, w), self.resize)
        if self.center_crop is not None:
            h, w = (self.center_crop, self.center_crop) if isinstance(self.center_crop, int) else self.center_crop
        return h, w

    def apply(self, pixels: np.ndarray) -> torch.Tensor:
        """``HxW`` or ``HxWx3`` RGB pixels in [0, 1] → a ``(1, C, H', W')`` float32 tensor.

        ``uint8`` pixels are scaled by 1/255 first; ``HxWx4`` drops alpha. Matches
        torchvision's ``ImageClassification`` transform on a float tensor to float32
        precision.
        """
        arr = np.asarray(pixels)
        if arr.dtype == np.uint8:
            arr = arr.astype(np.float32) / 255.0
        elif arr.dtype.kind != "f":
            raise SpecError(f"pixels must be float in [0, 1] or uint8, got {arr.dtype}")
        arr = arr.astype(np.float32, copy=False)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        elif arr.ndim == 3 and arr.shape[2] == 4:
            arr = arr[:, :, :3]
        if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)) or 0 in arr.shape:
            raise SpecError(f"expected an HxW or HxWx3 image, got shape {arr.shape}")
        out_hw = self.output_size(arr.shape[:2])
        if out_hw[0] * out_hw[1] > MAX_INPUT_PIXELS:
            raise SpecError(
                f"the model input would be {out_hw[0]}x{out_hw[1]} ({out_hw[0] * out_hw[1] / 1e6:.0f} MP): too "
                "large to capture every layer",
                f"resize it to at most {MAX_INPUT_PIXELS / 1e6:.1f} MP, e.g. {MAX_INPUT_SIDE}x{MAX_INPUT_SIDE} "
                "(an input size; --input-size H,W on the command line), or use a smaller image")

        if self.color == "gray":
            if arr.ndim == 3:
                arr = arr @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            chw = arr[None]
        else:
            if arr.ndim == 2:
                arr = np.repeat(arr[:, :, None], 3, axis=2)
            if self.color == "bgr":
                arr = arr[:, :, ::-1]
            chw = arr.transpose(2, 0, 1)
        t = torch.from_numpy(np.ascontiguousarray(chw, dtype=np.float32))[None]

        if self.resize is not None:
            size = _resized_size(tuple(t.shape[-2:]), self.resize)
            if size != tuple(t.shape[-2:]):
                t = _interpolate(t, size, self.interpolation)
        if self.center_crop is not None:
            t = _center_crop(t, self.center_crop)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)
        return ((t - mean) / std).contiguous()


def _resized_size(hw: tuple[int, int], size: int | tuple[int, int]) -> tuple[int, int]:
    if not isinstance(size, int):
        return size
    # torchvision.transforms.functional._compute_resized_output_size with max_size=None
    h, w = hw
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    return (new_h, new_w)


def _interpolate(t: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    if mode == "nearest":
        return torch.nn.functional.interpolate(t, size=size, mode="nearest")
    return torch.nn.functional.interpolate(t, size=size, mode=mode, align_corners=False, antialias=True)


def _center_crop(t: torch.Tensor, crop: int | tuple[int, int]) -> torch.Tensor:
    ch, cw = (crop, crop) if isinstance(crop, int) else crop
    h, w = t.shape[-2:]
    if cw > w or ch > h:  # torchvision pads with zeros, then crops
        left = (cw - w) // 2 if cw > w else 0
        top = (ch - h) // 2 if ch > h else 0
        right = (cw - w + 1) // 2 if cw > w else 0
        bottom = (ch - h + 1) // 2 if ch > h else 0
        t = torch.nn.functional.pad(t, (left, right, top, bottom), value=0.0)
        h, w = t.shape[-2:]
    top = int(round((h - ch) / 2.0))
    left = int(round((w - cw) / 2.0))
    return t[..., top : top + ch, left : left + cw]


# Every layer of a model is kept in memory at once: resnet18 at 4096x4096 holds about 9 GB of
# activations. Larger inputs are refused before anything is allocated.
MAX_INPUT_SIDE = 4096
MAX_INPUT_PIXELS = MAX_INPUT_SIDE * MAX_INPUT_SIDE


def default_preprocessing(channels: int | None) -> Preprocessing:
    """No resize, identity normalisation; gray for one-channel models."""
    if channels == 1:
        return Preprocessing(color="gray", mean=(0.0,), std=(1.0,))
    return Preprocessing(color="rgb", mean=(0.0,), std=(1.0,))


def _preprocessing_from_torchvision(weights) -> Preprocessing:
    """Read the preset transform of a torchvision ``Weights`` as data."""
    try:
        t = weights.transforms()
        return Preprocessing(
            resize=_size_or_none(list(t.resize_size), "resize"),
            center_crop=_size_or_none(list(t.crop_size), "center crop"),
            mean=tuple(t.mean),
            std=tuple(t.std),
            color="rgb",
            interpolation=getattr(t.interpolation, "value", "bilinear"),
        )
    except (AttributeError, TypeError, SpecError):
        # Not an ImageClassification preset: ImageNet's statistics are the honest guess.
        return Preprocessing(resize=256, center_crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD)
