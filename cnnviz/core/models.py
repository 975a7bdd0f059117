"""Load trained PyTorch models in the forms people save them, without running untrusted code.

Formats (detected from the file's bytes, never its extension):

==============  ==========================================  ==============================
format          how it was saved                            loaded with
==============  ==========================================  ==============================
state_dict      ``torch.save(model.state_dict())`` or a     ``torch.load(weights_only=True)``
                checkpoint dict ``{"state_dict": …}``
safetensors     ``safetensors.torch.save_file``             ``safetensors`` (header checked
                                                            first)
torchscript     ``torch.jit.save``                          ``torch.jit.load`` — needs trust
export          ``torch.export.save`` (``.pt2``)            ``torch.export.load`` — needs trust
pickle          ``torch.save(model)`` / ``pickle.dump``     the unrestricted ``torch.load``
                                                            — needs trust
python          a ``.py`` file named as ``net.py:Net``      imported — needs trust
==============  ==========================================  ==============================

Security
--------
TorchScript archives, ``torch.export`` programs, pickles and Python files are programs: loading
them can run code the file's author chose. Nothing from such a file runs unless the caller
passes ``trust=True`` or the file's SHA-256 is in the :class:`~cnnviz.core.trust.TrustStore`
given; otherwise :class:`~cnnviz.core.errors.TrustRequired` is raised before the file is
opened by any loader. Every loader that can run code from a file is reached through
:func:`_unsafe_load_trusted` and nowhere else. Weights files are loaded with
``torch.load(weights_only=True)`` or safetensors; when weights-only loading refuses a file,
that is reported and nothing falls back to the unrestricted loader (an attacker can make the
safe loader fail at will). Besides torch's own allowlist, weights-only loading accepts numpy's
arrays, scalars and dtypes (checkpoints often hold ``np.float64`` accuracies); the items of an
object array still need allowed globals, so a payload hidden in one is refused.

Format detection reads the pickle opcodes without executing them, to tell a plain state_dict
from a pickled object. Detection is only a routing decision, never the safety boundary: a
file classified ``state_dict`` is still loaded weights-only.

A ``.py`` model is trusted "by the act of choosing code": the CLI passes ``trust=True`` when
the user names ``file.py:Class`` on the command line (they asked for that file to be run),
while anything that loads specs it did not just get from the user — a settings file, a
recent-files list — must go through the trust store like any other code-bearing file.
"""

from __future__ import annotations

import _compat_pickle
import ast
import contextlib
import dataclasses
import difflib
import functools
import hashlib
import importlib.util
import inspect
import io
import json
import math
import os
import pickle
import pickletools
import re
import struct
import sys
import threading
import traceback
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnviz.core import weights_download
from cnnviz.core.devices import available_devices, check_torch_device  # noqa: F401 (re-exported)
from cnnviz.core.errors import ModelLoadError, SettingsError, SpecError, TrustRequired
from cnnviz.core.trust import TrustStore

__all__ = [
    "FORMATS",
    "FORMATS_NEEDING_TRUST",
    "LoadedModel",
    "Preprocessing",
    "apply_state_dict",
    "available_devices",
    "detect_format",
    "load_labels",
    "load_model",
    "load_state_dict_file",
    "move_model",
    "resolve_device",
    "torchvision_model_names",
]

FORMATS = ("torchscript", "export", "pickle", "state_dict", "safetensors", "python")
FORMATS_NEEDING_TRUST = frozenset({"torchscript", "export", "pickle", "python"})

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Bounds that keep a hostile file from making detection allocate or loop without end.
_MAX_PICKLE_RECORD = 256 << 20  # data.pkl inside a torch zip; real ones are kilobytes
_MAX_SAFETENSORS_HEADER = 100 << 20  # the safetensors library's own limit
_MAX_PYTHON_SOURCE = 8 << 20
_LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C  # first pickle of a pre-1.6 torch.save file


# ---------------------------------------------------------------------------------------------
# Preprocessing
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# LoadedModel
# ---------------------------------------------------------------------------------------------


@dataclass
class LoadedModel:
    """A model ready for inference, with what is needed to feed it and name its outputs.

    Attributes
    ----------
    module:
        An eager ``nn.Module``, a ``ScriptModule``, or for ``kind == "export"`` the module from
        ``ExportedProgram.module()``. In eval mode.
    kind:
        ``"torchvision" | "python" | "torchscript" | "export" | "pickle" | "demo"``.
    name:
        Display name.
    source:
        File path or architecture name.
    preprocessing:
        How an image becomes the input tensor.
    labels:
        Class names, or ``None``.
    exported:
        The ``torch.export.ExportedProgram`` for ``kind == "export"``.
    input_channels:
        Input channels from the first conv (or the exported input shape), if known.
    input_size:
        ``(H, W)`` the model needs, when fixed (an exported program's static input shape,
        torchvision's crop size), else ``None``.
    weights:
        Where the weights came from: ``"pretrained IMAGENET1K_V1"``, ``"random"``, a path,
        or ``None`` when they are part of the model file.
    device, dtype:
        Where the parameters live and their precision.
    """

    module: nn.Module
    kind: str
    name: str
    source: str | None
    preprocessing: Preprocessing
    labels: list[str] | None
    exported: object | None = None
    input_channels: int | None = None
    input_size: tuple[int, int] | None = None
    weights: str | None = None
    device: str = "cpu"
    dtype: str = "float32"


# ---------------------------------------------------------------------------------------------
# Format detection (reads bytes; runs nothing from the file)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Detection:
    format: str
    container: str  # "zip" | "legacy-torch" | "pickle" | "safetensors" | "text"
    unsafe_globals: tuple[str, ...] = ()


class _BoundedReader:
    """File wrapper for pickletools: never asks the OS for more than the file holds.

    A hostile length field (``BINBYTES8`` of 2**60) would otherwise make ``read(n)``
    allocate ``n`` bytes up front.
    """

    def __init__(self, f, size: int):
        self._f = f
        self._size = size

    def _remaining(self) -> int:
        return max(0, self._size - self._f.tell())

    def read(self, n: int = -1) -> bytes:
        rem = self._remaining()
        return self._f.read(rem if n is None or n < 0 or n > rem else n)

    def readline(self, limit: int = -1) -> bytes:
        return self._f.readline(min(self._remaining(), 1 << 20))

    def tell(self) -> int:
        return self._f.tell()


_PICKLE_STRING_OPS = frozenset(
    {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
)
_PICKLE_NO_PUSH_OPS = frozenset({"MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "FRAME", "PROTO", "MARK"})


def _global_name(module: str, name: str) -> str:
    # Protocol-2 pickles (torch.save's) say "__builtin__"; unpickling maps the Python 2 names
    # to Python 3 ones, and so does torch's allowlist check.
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"


def _unsafe_first(names: set[str]) -> tuple[str, ...]:
    # Show what is alarming (builtins.eval, posix.system) before torch's own classes.
    return tuple(sorted(names, key=lambda n: (n.startswith("torch."), n)))


def _pickle_scan(stream) -> tuple[set[str], object]:
    """Statically list the globals one pickle refers to; return ``(globals, first_int)``.

    ``first_int`` is the pickle's value when it is just an integer (the legacy torch magic
    number), else ``None``. Nothing is unpickled. ``STACK_GLOBAL`` names are recovered from
    the strings pushed before it; when they cannot be (a name computed at run time) a
    placeholder is reported, which makes the file count as needing trust.
    Raises whatever ``pickletools.genops`` raises on a damaged or non-pickle stream.
    """
    found: set[str] = set()
    memo: dict[int, object] = {}
    recent: list[object] = []
    first_int: object = None
    pushed = False
    for op, arg, _pos in pickletools.genops(stream):
        name = op.name
        if name in ("GLOBAL", "INST"):
            module, _, qual = str(arg).partition(" ")
            found.add(_global_name(module, qual))
            recent.append(None)
        elif name == "STACK_GLOBAL":
            if len(recent) >= 2 and isinstance(recent[-2], str) and isinstance(recent[-1], str):
                found.add(_global_name(recent[-2], recent[-1]))
            else:
                found.add("<a global chosen while unpickling>")
            recent.append(None)
        elif name in _PICKLE_STRING_OPS:
            recent.append(arg.decode("latin-1") if isinstance(arg, bytes) else str(arg))
        elif name == "MEMOIZE":
            memo[len(memo)] = recent[-1] if recent else None
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(arg)] = recent[-1] if recent else None
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            recent.append(memo.get(int(arg)))
        elif name == "STOP":
            return found, first_int
        elif name not in _PICKLE_NO_PUSH_OPS:
            if not pushed and name in ("LONG1", "LONG4", "INT", "BININT", "LONG"):
                first_int = arg
            recent.append(None)
        pushed = pushed or name not in _PICKLE_NO_PUSH_OPS
        del recent[:-2]
    raise ValueError("pickle ended without STOP")


@functools.lru_cache(maxsize=1)
def _numpy_safe_globals() -> tuple:
    """numpy arrays, scalars and dtypes, which training scripts leave in checkpoints
    (``"acc": np.float64(0.93)``), as ``(object, name in the pickle)`` pairs. Rebuilding them
    runs no code from the file (an object array's items still need allowed globals), so
    weights-only loading accepts them (torch documents this allowlist for numpy). Names as
    numpy 1 (``numpy.core``) and numpy 2 (``numpy._core``) write them."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    pairs = [(np.ndarray, "numpy.ndarray"), (np.dtype, "numpy.dtype")]
    for fn in (multiarray._reconstruct, multiarray.scalar):
        for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
            pairs.append((fn, f"{mod}.{fn.__name__}"))
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25 pickles some dtypes by class
    for name in dir(dtypes) if dtypes is not None else ():
        cls = getattr(dtypes, name)
        if name.endswith("DType") and isinstance(cls, type):
            pairs.append((cls, f"numpy.dtypes.{name}"))
    return tuple(pairs)


def _allowed_globals() -> set[str]:
    """The globals ``torch.load(weights_only=True)`` accepts: torch's own allowlist and numpy's
    arrays and scalars (:func:`_numpy_safe_globals`)."""
    numpy_names = {name for _, name in _numpy_safe_globals()}
    try:
        from torch import _weights_only_unpickler as wou

        return set(wou._get_allowed_globals()) | set(wou._get_user_allowed_globals()) | numpy_names
    except Exception:  # private API moved: fall back to what plain state_dicts use
        return {
            "collections.OrderedDict",
            "torch._utils._rebuild_tensor_v2",
            "torch._utils._rebuild_parameter",
            "torch.Size",
            "torch.device",
            *(f"torch.{n}Storage" for n in ("Float", "Double", "Half", "BFloat16", "Long", "Int",
                                            "Short", "Char", "Byte", "Bool")),
        } | numpy_names


def _open_failed(path: Path, exc: OSError) -> ModelLoadError:
    return ModelLoadError(f"cannot read {path}: {exc.strerror or exc}", "check the path and its permissions")


def _detect(path: str | os.PathLike) -> _Detection:
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"{p} does not exist", "check the path")
    if p.is_dir():
        raise ModelLoadError(f"{p} is a folder, not a model file", "choose a file inside it")
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise _open_failed(p, exc) from exc
    if size == 0:
        raise ModelLoadError(f"{p.name} is empty (0 bytes)", "save or download the file again")

    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _detect_zip(p)

    det = _detect_pickle_stream(p, size)
    if det is not None:
        return det

    # safetensors: u64 little-endian header length, then a JSON object. The header's sanity
    # is checked when loading, so that a hostile header gets a precise message.
    if size >= 9 and head[8:9] == b"{":
        return _Detection("safetensors", "safetensors")

    if size <= _MAX_PYTHON_SOURCE and _looks_like_python(p):
        return _Detection("python", "text")
    if p.suffix.lower() == ".py" and size <= _MAX_PYTHON_SOURCE:
        _raise_python_syntax_error(p)

    raise ModelLoadError(
        f"{p.name} is not a model or weights file cnnviz can read: it is not a PyTorch archive "
        "(torch.save, torch.jit.save, torch.export.save), a pickle, a safetensors file or "
        "Python source",
        "choose a file saved by PyTorch or safetensors, or name a Python class as file.py:Class",
    )


def _detect_zip(p: Path) -> _Detection:
    damaged_fix = "save or download the file again"
    try:
        with zipfile.ZipFile(p) as zf:
            infos = zf.infolist()
            rel = set()
            for info in infos:
                parts = info.filename.split("/", 1)
                rel.add(parts[1] if len(parts) == 2 else parts[0])
            if (
                "archive_format" in rel
                or any(r.startswith("models/") and r.endswith(".json") for r in rel)
                or rel & {"serialized_exported_program.json", "serialized_model.json"}
            ):
                return _Detection("export", "zip")
            if "constants.pkl" in rel or any(r.startswith("code/") for r in rel):
                return _Detection("torchscript", "zip")
            records = [i for i in infos if i.filename.endswith("data.pkl") and i.filename.count("/") <= 1]
            if not records:
                raise ModelLoadError(
                    f"{p.name} is a zip archive but not one PyTorch wrote (no data.pkl, code/ or "
                    "archive_format inside)",
                    "choose the model file itself, not an archive that contains it",
                )
            info = records[0]
            if info.file_size > _MAX_PICKLE_RECORD:
                raise ModelLoadError(
                    f"{p.name}: its object record is {info.file_size} bytes, far more than a "
                    "model or checkpoint needs",
                    "this is not a file cnnviz can load safely",
                )
            data = zf.read(info)
    except ModelLoadError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError) as exc:
        raise ModelLoadError(
            f"{p.name} starts like a zip archive (the container PyTorch saves into) but it is "
            f"truncated or damaged ({exc})",
            damaged_fix,
        ) from exc
    except OSError as exc:
        raise _open_failed(p, exc) from exc
    try:
        globals_, _ = _pickle_scan(io.BytesIO(data))
    except Exception as exc:
        raise ModelLoadError(
            f"{p.name} is a PyTorch archive whose object record is damaged ({exc})", damaged_fix
        ) from exc
    unsafe = _unsafe_first(globals_ - _allowed_globals())
    return _Detection("pickle" if unsafe else "state_dict", "zip", unsafe)


def _detect_pickle_stream(p: Path, size: int) -> _Detection | None:
    """Classify a raw pickle (legacy ``torch.save`` or ``pickle.dump``); None if not a pickle."""
    try:
        with open(p, "rb") as f:
            reader = _BoundedReader(f, size)
            try:
                globals_, first = _pickle_scan(reader)
            except Exception:
                return None
            if first != _LEGACY_TORCH_MAGIC:
                unsafe = _unsafe_first(globals_) or ("<a pickled Python object>",)
                return _Detection("pickle", "pickle", unsafe)
            # Legacy torch.save: magic, protocol version, sys info, then the object.
            try:
                for _ in range(3):
                    more, _ = _pickle_scan(reader)
                    globals_ |= more
            except Exception as exc:
                raise ModelLoadError(
                    f"{p.name} is an old-style PyTorch file but it is truncated or damaged ({exc})",
                    "save or download the file again",
                ) from exc
    except OSError as exc:
        raise _open_failed(p, exc) from exc
    unsafe = _unsafe_first(globals_ - _allowed_globals())
    return _Detection("pickle" if unsafe else "state_dict", "legacy-torch", unsafe)


def _python_tree(source: bytes) -> ast.Module | None:
    try:
        return ast.parse(source.decode("utf-8"))
    except (UnicodeDecodeError, SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _raise_python_syntax_error(p: Path) -> None:
    """A ``.py`` file that does not parse: say where (parsing runs nothing from it)."""
    try:
        ast.parse(p.read_bytes().decode("utf-8"), filename=p.name)
    except UnicodeDecodeError as exc:
        raise ModelLoadError(f"{p.name} is not UTF-8 text ({exc.reason} at byte {exc.start})",
                             "save the Python file as UTF-8") from exc
    except SyntaxError as exc:
        where = f"line {exc.lineno}" + (f", column {exc.offset}" if exc.offset else "")
        raise ModelLoadError(f"{p.name} has a Python syntax error at {where}: {exc.msg}",
                             f"fix the file (python -m py_compile {p} shows the same)") from exc
    except (OSError, ValueError, RecursionError, MemoryError):
        return


def _looks_like_python(p: Path) -> bool:
    try:
        tree = _python_tree(p.read_bytes())
    except OSError:
        return False
    # A labels file ("cat\ndog") parses as Python too; real model code defines or imports.
    return tree is not None and any(
        isinstance(node, (ast.Import, ast.ImportFrom, ast.ClassDef, ast.FunctionDef))
        for node in tree.body
    )


def _python_classes(path: Path) -> list[str]:
    tree = _python_tree(path.read_bytes())
    return [n.name for n in tree.body if isinstance(n, ast.ClassDef)] if tree else []


def detect_format(path: str | os.PathLike) -> str:
    """What kind of model file this is, judged from its bytes (never the extension).

    Returns one of ``"torchscript" | "export" | "pickle" | "state_dict" | "safetensors" |
    "python"``. Runs nothing from the file: archives are listed, pickles are disassembled.

    Raises
    ------
    ModelLoadError
        Missing, empty, truncated or unrecognisable file.
    """
    return _detect(path).format


# ---------------------------------------------------------------------------------------------
# Trust gate and the one unsafe loader
# ---------------------------------------------------------------------------------------------

_WHY_UNSAFE = {
    "torchscript": "a TorchScript archive; loading it runs the TorchScript code stored inside",
    "export": "a torch.export program; loading it runs code rebuilt from the file (its graph "
    "and any custom objects stored inside)",
    "pickle": "a pickled Python object (for example a whole model saved with torch.save(model)); "
    "unpickling can run any code the file names",
    "python": "Python source; importing it runs it",
}


def _trust_required(path: Path, det: _Detection, sha256: str | None) -> TrustRequired:
    why = _WHY_UNSAFE[det.format]
    if det.format == "pickle" and det.unsafe_globals:
        shown = ", ".join(det.unsafe_globals[:5]) + (" …" if len(det.unsafe_globals) > 5 else "")
        why += f" (it refers to {shown})"
    err = TrustRequired(
        f"{path.name} is {why}; cnnviz has not loaded it because you have not said you trust it",
        "load it only if you trust where it came from: add --trust on the command line, or "
        "confirm the trust dialog in the window (cnnviz then remembers the file by its SHA-256)",
    )
    # For the window's trust dialog: what to show and what to remember.
    err.path = path
    err.format = det.format
    err.sha256 = sha256
    return err


def _trust_gate(
    path: Path, det: _Detection, trust: bool, trust_store: TrustStore | None
) -> bytes | None:
    """Pass only trusted files. Return the bytes that were hashed (load exactly those), or
    None when ``trust=True`` (load from the path)."""
    if det.format not in FORMATS_NEEDING_TRUST:
        return None
    if trust:
        return None
    sha = None
    if trust_store is not None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise _open_failed(path, exc) from exc
        sha = hashlib.sha256(data).hexdigest()
        if trust_store.is_trusted_hash(sha):
            # Load these very bytes, so the file cannot be swapped between check and load.
            return data
    raise _trust_required(path, det, sha)


def _unsafe_load_trusted(path: Path, det: _Detection, data: bytes | None) -> Any:  # trusted-path
    """!!! RUNS CODE FROM THE FILE. Only ever called after :func:`_trust_gate` passed. !!!

    Every loader in cnnviz that can execute code chosen by a file's author is here:
    ``torch.jit.load``, ``torch.export.load``, the unrestricted ``torch.load``,
    ``pickle.load`` and importing Python source. ``data`` (bytes already hashed for the
    trust store) is loaded instead of re-reading the path when given.
    """
    fmt = det.format
    if fmt in ("torchscript", "export", "pickle"):
        # A file object, never the path: torch.load picks a loader by the file name's
        # extension (".safetensors"), and we go by content.
        with contextlib.ExitStack() as stack:
            src = io.BytesIO(data) if data is not None else stack.enter_context(open(path, "rb"))
            if fmt == "torchscript":
                return torch.jit.load(src, map_location="cpu")  # trusted-path
            if fmt == "export":
                return torch.export.load(src)  # trusted-path
            if det.container in ("zip", "legacy-torch"):
                return torch.load(src, map_location="cpu", weights_only=False)  # trusted-path
            return pickle.load(src)  # noqa: S301  # trusted-path
    if fmt == "python":
        source = data if data is not None else path.read_bytes()
        digest = hashlib.sha256(source).hexdigest()[:16]
        mod_name = f"cnnviz_user_model_{digest}"
        spec = importlib.util.spec_from_file_location(mod_name, str(path))
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        folder = str(path.resolve().parent)
        added = folder not in sys.path
        if added:  # so the file can import its neighbours, as `python net.py` would
            sys.path.insert(0, folder)
        try:
            exec(compile(source, str(path), "exec", dont_inherit=True), module.__dict__)  # noqa: S102  # trusted-path
        except BaseException:
            sys.modules.pop(mod_name, None)
            raise
        finally:
            if added:
                with contextlib.suppress(ValueError):
                    sys.path.remove(folder)
        return module
    raise AssertionError(f"not a code-bearing format: {fmt}")


def _describe_exception(exc: BaseException, in_file: Path | None = None) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    if in_file is not None:
        frames = [fr for fr in traceback.extract_tb(exc.__traceback__) if fr.filename == str(in_file)]
        if frames:
            first += f" (line {frames[-1].lineno})"
    return first[:500]


# ---------------------------------------------------------------------------------------------
# Weights (state_dict / safetensors): safe loaders
# ---------------------------------------------------------------------------------------------

_SAFETENSORS_ITEMSIZE = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}


def _check_safetensors_header(p: Path) -> None:
    """Validate a safetensors header before the library sees it; ModelLoadError if hostile."""
    bad = f"{p.name} is not a valid safetensors file"
    fix = "save or download the file again"
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            if size < 8:
                raise ModelLoadError(f"{bad}: only {size} bytes, shorter than the header length field", fix)
            (n,) = struct.unpack("<Q", f.read(8))
            if n > size - 8:
                raise ModelLoadError(
                    f"{bad}: its header claims {n} bytes but only {size - 8} follow", fix
                )
            if n > _MAX_SAFETENSORS_HEADER:
                raise ModelLoadError(f"{bad}: its header claims {n} bytes (the limit is 100 MB)", fix)
            raw = f.read(n)
    except OSError as exc:
        raise _open_failed(p, exc) from exc
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelLoadError(f"{bad}: its header is not JSON ({exc})", fix) from exc
    if not isinstance(header, dict):
        raise ModelLoadError(f"{bad}: its header is not a JSON object", fix)
    data_len = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise ModelLoadError(f"{bad}: tensor {name!r} has no description", fix)
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in _SAFETENSORS_ITEMSIZE:
            raise ModelLoadError(f"{bad}: tensor {name!r} has unknown dtype {dtype!r}", fix)
        if not (
            isinstance(shape, list)
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        ):
            raise ModelLoadError(f"{bad}: tensor {name!r} has a bad shape {shape!r}", fix)
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        ):
            raise ModelLoadError(f"{bad}: tensor {name!r} has bad data offsets {offsets!r}", fix)
        begin, end = offsets
        if not 0 <= begin <= end <= data_len:
            raise ModelLoadError(
                f"{bad}: tensor {name!r} lies at bytes {begin}..{end}, outside the {data_len} "
                "data bytes in the file",
                fix,
            )
        if (end - begin) != math.prod(shape) * _SAFETENSORS_ITEMSIZE[dtype]:
            raise ModelLoadError(
                f"{bad}: tensor {name!r} of shape {shape} {dtype} needs "
                f"{math.prod(shape) * _SAFETENSORS_ITEMSIZE[dtype]} bytes but has {end - begin}",
                fix,
            )


def _load_safetensors(p: Path) -> dict[str, torch.Tensor]:
    _check_safetensors_header(p)
    try:
        from safetensors.torch import load_file

        return load_file(str(p), device="cpu")
    except Exception as exc:  # SafetensorError and friends: report, never a traceback
        raise ModelLoadError(
            f"{p.name} is not a valid safetensors file ({_describe_exception(exc)})",
            "save or download the file again",
        ) from exc


_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.<>]+)")
_UNPICKLER_ERROR = re.compile(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n\n|$)", re.DOTALL)


class _WeightsOnlyRefused(ModelLoadError):
    """``torch.load(weights_only=True)`` refused the file; ``names`` are the globals found."""

    names: tuple[str, ...] = ()


def _torch_load_weights_only(
    source: str | os.PathLike,
    name: str,
    fix: str = "if you trust the file, load it with --trust (or confirm the trust dialog); "
    "better, save just the weights: torch.save(model.state_dict(), path)",
) -> Any:
    """``torch.load(weights_only=True)`` with errors a person can read. Never falls back."""
    try:
        # A file object: torch.load would pick its loader by a ".safetensors" file name.
        with open(source, "rb") as f, torch.serialization.safe_globals(list(_numpy_safe_globals())):
            return torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        try:  # our scan names globals fully ("builtins.eval"); torch's message says "eval"
            names = list(_detect(source).unsafe_globals)
        except ModelLoadError:
            names = []
        names = names or _UNSUPPORTED_GLOBAL.findall(str(exc))
        if names:
            what = f"refers to {', '.join(dict.fromkeys(names))}"
        else:
            detail = _UNPICKLER_ERROR.search(str(exc))
            what = "uses pickle features" + (f" ({detail.group(1)[:200]})" if detail else "")
        err = _WeightsOnlyRefused(
            f"{name} {what}, which weights-only loading refuses; nothing from it was run", fix
        )
        err.names = tuple(names)
        raise err from exc
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        raise ModelLoadError(
            f"{name} could not be read as PyTorch weights ({_describe_exception(exc)})",
            "save or download the file again",
        ) from exc


_CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "module",
                    "model_ema", "ema", "params", "weights")


def _is_tensor_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, torch.Tensor) or k.endswith("_extra_state") for k, v in obj.items())
    )


def _extract_state_dict(obj: Any, name: str) -> dict[str, torch.Tensor]:
    """A state_dict from what a weights file held: the dict itself, a checkpoint's
    ``state_dict``/``model``/… entry, or a module's ``state_dict()``."""
    if isinstance(obj, nn.Module):
        return dict(obj.state_dict())
    if _is_tensor_dict(obj):
        return dict(obj)
    if isinstance(obj, Mapping):
        for key in _CHECKPOINT_KEYS:
            inner = obj.get(key)
            if isinstance(inner, nn.Module):
                return dict(inner.state_dict())
            if _is_tensor_dict(inner):
                return dict(inner)
        keys = ", ".join(repr(k) for k in list(obj)[:10]) or "none"
        raise ModelLoadError(
            f"{name} holds a dict but no state_dict in it (top-level keys: {keys})",
            "save the weights with torch.save(model.state_dict(), path)",
        )
    raise ModelLoadError(
        f"{name} holds a {type(obj).__name__}, not model weights",
        "save the weights with torch.save(model.state_dict(), path)",
    )


def _pickle_fix(exc: BaseException, det) -> str | None:
    """What to do when a trusted pickle cannot find the code of the classes it holds."""
    if det.format != "pickle" or not isinstance(exc, (AttributeError, ImportError)):
        return None
    missing = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
    where = (f"module {missing!r} is not importable: add the folder that holds {missing.split('.')[0]}.py to "
             "PYTHONPATH" if missing else "make the module that defines its classes importable (PYTHONPATH)")
    return (f"a pickle needs the code of the classes it holds; {where}, or save model.state_dict() "
            "and open it with file.py:Class --weights FILE")


def load_state_dict_file(
    path: str | os.PathLike, *, trust: bool = False, trust_store: TrustStore | None = None
) -> dict[str, torch.Tensor]:
    """Read weights from a state_dict / checkpoint ``.pth`` or a ``.safetensors`` file.

    Plain weights load with ``torch.load(weights_only=True)`` or safetensors. A checkpoint that
    holds other Python objects (classes, numpy scalars) can run code when unpickled, so it
    needs trust like a model file; so does taking weights out of a TorchScript archive or a
    pickled module.
    """
    p = Path(path)
    det = _detect(p)
    if det.format == "safetensors":
        return _load_safetensors(p)
    if det.format == "state_dict":
        try:
            return _extract_state_dict(_torch_load_weights_only(p, p.name), p.name)
        except _WeightsOnlyRefused as refused:
            # Not a silent fallback: the file is now treated as the pickle it is, so it loads
            # only if the user trusts it, and otherwise they are asked (TrustRequired).
            det = _Detection("pickle", det.container, refused.names)
    if det.format in ("pickle", "torchscript"):
        data = _trust_gate(p, det, trust, trust_store)
        try:
            obj = _unsafe_load_trusted(p, det, data)
        except Exception as exc:
            raise ModelLoadError(f"loading {p.name} failed: {_describe_exception(exc)}",
                                 _pickle_fix(exc, det) or "check that the file is complete") from exc
        return _extract_state_dict(obj, p.name)
    raise ModelLoadError(
        f"{p.name} is a {det.format} model, not a weights file",
        f"open it as the model itself: cnnviz inspect {p}",
    )


def _strip_prefixes(sd: dict[str, torch.Tensor], own_keys: set[str]) -> dict[str, torch.Tensor]:
    """Drop wrapper prefixes (DataParallel's ``module.``, torch.compile's ``_orig_mod.``,
    Lightning's ``model.``) when that makes the keys fit."""
    for prefix in ("module.", "_orig_mod.", "model."):
        if sd and all(k.startswith(prefix) for k in sd) and not (set(sd) & own_keys):
            stripped = {k[len(prefix):]: v for k, v in sd.items()}
            if set(stripped) & own_keys:
                sd = stripped
    return sd


def _state_dict_mismatch(model: nn.Module, sd: Mapping[str, torch.Tensor]):
    own = model.state_dict()
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in own]
    shapes = [
        (k, tuple(sd[k].shape), tuple(own[k].shape))
        for k in sd
        if k in own and isinstance(sd[k], torch.Tensor) and tuple(sd[k].shape) != tuple(own[k].shape)
    ]
    return missing, unexpected, shapes


def _few(keys: list[str], n: int = 8) -> str:
    return ", ".join(keys[:n]) + (f", … ({len(keys) - n} more)" if len(keys) > n else "")


def apply_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str,
                     target: str) -> None:
    """Load ``state_dict`` into ``model`` strictly; on mismatch raise ModelLoadError listing
    missing keys, unexpected keys and shape mismatches. Nothing is loaded then."""
    own = model.state_dict()
    sd = _strip_prefixes(dict(state_dict), set(own))
    missing, unexpected, shapes = _state_dict_mismatch(model, sd)
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys: {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_few(unexpected)}")
        if shapes:
            shown = [f"{k} is {tuple(a)} in the file but {tuple(b)} in the model" for k, a, b in shapes]
            parts.append(f"shape mismatches: {_few(shown, 4)}")
        raise ModelLoadError(
            f"the weights in {source} do not fit {target}: " + "; ".join(parts),
            "use weights saved from the same architecture and constructor arguments",
        )
    # Checkpoints from before BatchNorm counted batches lack num_batches_tracked; keep ours.
    for k, v in own.items():
        if k not in sd and k.endswith("num_batches_tracked"):
            sd[k] = v
    try:
        model.load_state_dict(sd, strict=True)
    except Exception as exc:
        raise ModelLoadError(
            f"the weights in {source} do not fit {target}: {_describe_exception(exc)}",
            "use weights saved from the same architecture and constructor arguments",
        ) from exc


# ---------------------------------------------------------------------------------------------
# torchvision architectures
# ---------------------------------------------------------------------------------------------


def torchvision_model_names() -> list[str]:
    """Classification architectures torchvision can build (``list_models(module=models)``)."""
    import torchvision.models as tvm

    return list(tvm.list_models(module=tvm))


def _torchvision_name(spec: str) -> str | None:
    names = torchvision_model_names()
    lower = {n.lower(): n for n in names}
    return lower.get(spec.strip().lower())


def _weights_url(member) -> str:
    """The download URL of a torchvision ``Weights`` enum member (tests replace this)."""
    return member.url


_TV_PATCH_LOCK = threading.Lock()


def _build_torchvision(name: str, member, state_dict: dict[str, torch.Tensor], source: str) -> nn.Module:
    """Build ``name`` exactly as ``torchvision.models.get_model(name, weights=member)`` would,
    but with ``state_dict`` we already loaded weights-only.

    torchvision's builders adjust constructor arguments for their weights (num_classes,
    GoogLeNet/Inception's transform_input and aux heads, ViT's image size) and remap keys
    (DenseNet), then fetch the file with the unrestricted ``torch.load``. We keep the
    builders' logic and replace only the fetch, under a lock, for the duration of the call.
    """
    import torchvision.models as tvm
    from torchvision.models import _api

    def fetch(url, *args, **kwargs):
        return {k: v.clone() for k, v in state_dict.items()}

    try:
        if not hasattr(_api, "load_state_dict_from_url"):
            raise AttributeError
        with _TV_PATCH_LOCK:
            original = _api.load_state_dict_from_url
            _api.load_state_dict_from_url = fetch
            try:
                return tvm.get_model(name, weights=member)
            finally:
                _api.load_state_dict_from_url = original
    except AttributeError:
        pass  # torchvision changed its internals: build and load by hand below
    except RuntimeError as exc:
        raise ModelLoadError(
            f"the weights in {source} do not fit {name}: {_describe_exception(exc)}",
            f"delete {source} so that it is downloaded again",
        ) from exc
    model = tvm.get_model(name, weights=None, num_classes=len(member.meta["categories"]))
    apply_state_dict(model, state_dict, source=source, target=name)
    return model


def _fit_num_classes(
    name: str, model: nn.Module, sd: Mapping[str, torch.Tensor]
) -> tuple[nn.Module, int | None]:
    """A fine-tuned torchvision net may have another number of classes: when the only
    mismatch is the classifier's output size, rebuild with the file's. Returns the model and
    the new class count (None when unchanged)."""
    import torchvision.models as tvm

    sd = _strip_prefixes(dict(sd), set(model.state_dict()))
    missing, unexpected, shapes = _state_dict_mismatch(model, sd)
    if missing or unexpected or not shapes or len(shapes) > 2:
        return model, None
    counts = {a[0] for _, a, b in shapes if len(a) == len(b) and a[1:] == b[1:] and a[0] != b[0]}
    if len(counts) != 1:
        return model, None
    n = counts.pop()
    try:
        return tvm.get_model(name, weights=None, num_classes=n), n
    except Exception:  # builder takes no num_classes: report the mismatch as it is
        return model, None


def _load_torchvision(name: str, weights: str | None, *, trust: bool, trust_store, progress,
                      cancel) -> LoadedModel:
    import torchvision.models as tvm

    enum = tvm.get_model_weights(name)
    members = list(enum)
    default = getattr(enum, "DEFAULT", None) or (members[0] if members else None)
    choice = "pretrained" if weights is None else str(weights)
    categories = list(default.meta.get("categories") or []) if default is not None else []
    preprocessing = (
        _preprocessing_from_torchvision(default) if default is not None
        else Preprocessing(resize=256, center_crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    )

    named_member = enum.__members__.get(choice) if not Path(choice).exists() else None
    if choice.lower() in ("pretrained", "default") or named_member is not None:
        member = named_member or default
        if member is None:
            raise ModelLoadError(f"torchvision has no pretrained weights for {name}",
                                 "use --weights random or a local weights file")
        url = _weights_url(member)
        try:
            path = weights_download.download_weights(url, progress=progress, cancel=cancel)
        except weights_download.DownloadCancelled:
            raise
        except ModelLoadError as exc:
            raise ModelLoadError(
                f"the pretrained weights for {name} are not in the cache and {exc.cause}",
                f"{exc.fix}; for example --weights random, or --weights FILE",
            ) from exc
        # The cache is a shared folder: its files never get the trusted path.
        sd = _extract_state_dict(
            _torch_load_weights_only(path, path.name, fix=f"delete {path} so it is downloaded again"),
            path.name,
        )
        model = _build_torchvision(name, member, sd, str(path))
        categories = list(member.meta.get("categories") or [])
        preprocessing = _preprocessing_from_torchvision(member)
        weights_desc = f"pretrained {member.name}"
    elif choice.lower() == "random":
        model = tvm.get_model(name, weights=None)
        weights_desc = "random"
    else:
        wpath = Path(choice)
        if not wpath.exists():
            choices = ", ".join(["pretrained", "random", *enum.__members__])
            raise ModelLoadError(
                f"weights {choice!r} for {name}: no such file and not a weights name",
                f"give a weights file, or one of: {choices}",
            )
        sd = load_state_dict_file(wpath, trust=trust, trust_store=trust_store)
        model, n_classes = _fit_num_classes(name, tvm.get_model(name, weights=None), sd)
        apply_state_dict(model, sd, source=wpath.name, target=name)
        weights_desc = str(wpath)
        if n_classes is not None and n_classes != len(categories):
            categories = []  # fine-tuned on other classes: ImageNet's names would be wrong
    model.eval()
    labels = categories or None
    crop = preprocessing.center_crop
    input_size = (crop, crop) if isinstance(crop, int) else crop
    return LoadedModel(
        module=model, kind="torchvision", name=name, source=name, preprocessing=preprocessing,
        labels=labels, input_channels=_first_conv_in_channels(model), input_size=input_size,
        weights=weights_desc,
    )


# ---------------------------------------------------------------------------------------------
# Model files and Python classes
# ---------------------------------------------------------------------------------------------

_PY_SPEC = re.compile(r"^(?P<file>.+\.py):(?P<cls>[A-Za-z_][A-Za-z0-9_]*)$", re.DOTALL)


def _first_conv_in_channels(module: nn.Module) -> int | None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            return int(m.in_channels)
    # ScriptModules keep the original class name; their weight has the shape we need.
    for m in module.modules():
        if getattr(m, "original_name", None) in ("Conv2d", "Conv1d", "Conv3d"):
            w = getattr(m, "weight", None)
            if isinstance(w, torch.Tensor) and w.dim() >= 3:
                groups = getattr(m, "groups", 1)
                return int(w.shape[1]) * (int(groups) if isinstance(groups, int) else 1)
    return None


class _FirstConvReached(Exception):
    pass


def _input_channels(module: nn.Module) -> int | None:
    """The input channels of the first convolution the model *runs*.

    Declaration order is only a guess (``self.head`` may be declared before ``self.stem``):
    with more than one convolution, a probe forward on a small zero input stops at the first
    convolution called (a pre-hook raises before it computes anything) and reads its
    ``in_channels``. Anything before it that cares about the channel count, or a model that
    cannot run on the probe, leaves the declaration-order guess. ScriptModules (no hooks)
    keep the guess too."""
    guess = _first_conv_in_channels(module)
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if guess is None or len(convs) < 2 or isinstance(module, torch.jit.ScriptModule):
        return guess
    try:
        p = next(module.parameters())
        device, dtype = p.device, (p.dtype if p.is_floating_point() else torch.float32)
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    found: list[int] = []

    def stop(mod, _args):
        found.append(int(mod.in_channels))
        raise _FirstConvReached

    handles = [c.register_forward_pre_hook(stop) for c in convs]
    try:
        with torch.inference_mode():
            module(torch.zeros(1, guess, 64, 64, device=device, dtype=dtype))
    except _FirstConvReached:
        pass
    except Exception:  # noqa: BLE001 - the probe is best effort; the real run reports errors
        pass
    finally:
        for h in handles:
            h.remove()
    return found[0] if found else guess


def _export_input_shape(ep) -> tuple[int, ...] | None:
    """Static shape of an exported program's first tensor input, if it has one."""
    try:
        names = list(ep.graph_signature.user_inputs)
        for node in ep.graph.nodes:
            if node.op == "placeholder" and node.name in names:
                val = node.meta.get("val")
                shape = getattr(val, "shape", None)
                if shape is not None and all(isinstance(d, int) for d in shape):
                    return tuple(int(d) for d in shape)
                return None
    except Exception:
        return None
    return None


def _load_python(path: Path, class_name: str, *, weights, ctor_kwargs, trust, trust_store) -> LoadedModel:
    det = _detect(path)
    if det.format != "python":
        raise ModelLoadError(
            f"{path.name} is a {det.format} file, not Python source",
            f"open it as the model itself: cnnviz inspect {path}",
        )
    data = _trust_gate(path, det, trust, trust_store)
    try:
        module = _unsafe_load_trusted(path, det, data)
    except Exception as exc:
        raise ModelLoadError(
            f"importing {path.name} failed: {_describe_exception(exc, path)}",
            "fix the error in the file (run it with python to see the full traceback)",
        ) from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        found = [n for n, v in vars(module).items()
                 if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == module.__name__]
        raise ModelLoadError(
            f"{path.name} defines no class {class_name}",
            f"use one of: {', '.join(found)}" if found else "name a torch.nn.Module subclass in the file",
        )
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ModelLoadError(f"{class_name} in {path.name} is not a torch.nn.Module subclass",
                             "name the model class")
    kwargs = _ctor_kwargs(ctor_kwargs)
    try:
        model = cls(**kwargs)
    except TypeError as exc:
        try:
            sig = str(inspect.signature(cls))
        except (TypeError, ValueError):
            sig = "(…)"
        raise ModelLoadError(
            f"cannot build {class_name}(**{kwargs}): {exc}",
            f"its constructor is {class_name}{sig}; pass matching arguments as JSON",
        ) from exc
    except Exception as exc:
        raise ModelLoadError(f"building {class_name} failed: {_describe_exception(exc, path)}",
                             "check the constructor arguments") from exc
    weights_desc = "random"
    if weights is not None and str(weights).lower() != "random":
        if str(weights).lower() == "pretrained":
            raise ModelLoadError(
                f"there are no pretrained weights for {path.name}:{class_name}",
                "give a state_dict or .safetensors file, or random",
            )
        wpath = Path(weights)
        sd = load_state_dict_file(wpath, trust=trust, trust_store=trust_store)
        apply_state_dict(model, sd, source=wpath.name, target=f"{path.name}:{class_name}")
        weights_desc = str(wpath)
    model.eval()
    channels = _input_channels(model)
    return LoadedModel(
        module=model, kind="python", name=f"{path.stem}:{class_name}", source=f"{path}:{class_name}",
        preprocessing=default_preprocessing(channels), labels=None, input_channels=channels,
        weights=weights_desc,
    )


def _ctor_kwargs(ctor_kwargs: Mapping[str, Any] | str | None) -> dict[str, Any]:
    if ctor_kwargs is None:
        return {}
    if isinstance(ctor_kwargs, str):
        try:
            ctor_kwargs = json.loads(ctor_kwargs) if ctor_kwargs.strip() else {}
        except ValueError as exc:
            raise SpecError(f"constructor arguments are not valid JSON: {exc}",
                            'write them as a JSON object, e.g. {"n_classes": 10}') from exc
    if not isinstance(ctor_kwargs, Mapping) or not all(isinstance(k, str) for k in ctor_kwargs):
        raise SpecError("constructor arguments must be a JSON object of name: value",
                        'e.g. {"n_classes": 10}')
    return dict(ctor_kwargs)


def _load_model_file(path: Path, *, weights, trust, trust_store) -> LoadedModel:
    det = _detect(path)
    if det.format in ("state_dict", "safetensors"):
        raise ModelLoadError(
            f"{path.name} holds only weights ({det.format.replace('_', ' ')}), not a model",
            "name the architecture (a torchvision name or file.py:Class) and give this file as "
            f"its weights (--weights {path})",
        )
    if det.format == "python":
        classes = _python_classes(path)
        raise ModelLoadError(
            f"{path.name} is Python source; cnnviz needs to know which class to build",
            f"write {path}:ClassName" + (f" (classes in the file: {', '.join(classes)})" if classes else ""),
        )
    data = _trust_gate(path, det, trust, trust_store)
    try:
        obj = _unsafe_load_trusted(path, det, data)
    except Exception as exc:
        fix = _pickle_fix(exc, det) or "check that the file is complete and was saved by a compatible PyTorch"
        raise ModelLoadError(f"loading {path.name} failed: {_describe_exception(exc)}", fix) from exc

    exported = None
    input_size = None
    channels = None
    if det.format == "export":
        exported = obj
        module = obj.module()
        shape = _export_input_shape(obj)
        if shape is not None and len(shape) == 4:
            channels = shape[1]
            input_size = (shape[2], shape[3])
    elif det.format == "pickle":
        module = obj
        if isinstance(obj, Mapping) and not isinstance(obj, nn.Module):
            module = next((obj[k] for k in _CHECKPOINT_KEYS if isinstance(obj.get(k), nn.Module)), obj)
        if not isinstance(module, nn.Module):
            raise ModelLoadError(
                f"{path.name} holds a {type(obj).__name__}, not a model",
                "if it holds weights, name the architecture and pass the file as --weights",
            )
    else:
        module = obj
    if weights is not None and str(weights).lower() not in ("random",):
        if det.format == "export":
            raise ModelLoadError("a torch.export program carries its own weights",
                                 "leave out --weights, or export the program with the weights you want")
        if str(weights).lower() == "pretrained":
            raise ModelLoadError(f"there are no pretrained weights for {path.name}",
                                 "give a weights file or leave out --weights")
        wpath = Path(weights)
        sd = load_state_dict_file(wpath, trust=trust, trust_store=trust_store)
        apply_state_dict(module, sd, source=wpath.name, target=path.name)
    if det.format != "export":  # an exported graph has its mode baked in; eval() raises
        module.eval()
    if channels is None:
        channels = _input_channels(module)
    preprocessing = default_preprocessing(channels)
    if input_size is not None:  # a static exported program accepts only this size
        preprocessing = dataclasses.replace(preprocessing, resize=input_size)
    return LoadedModel(
        module=module, kind=det.format, name=path.name, source=str(path), preprocessing=preprocessing,
        labels=None, exported=exported, input_channels=channels, input_size=input_size,
        weights=str(weights) if weights is not None else None,
    )


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def load_model(
    spec: str,
    *,
    weights: str | None = None,
    trust: bool = False,
    trust_store: TrustStore | None = None,
    ctor_kwargs: Mapping[str, Any] | str | None = None,
    progress=None,
    cancel=None,
    device: str = "cpu",
) -> LoadedModel:
    """Load a model from a spec; run nothing from a file that is not trusted.

    Parameters
    ----------
    spec:
        ``"demo"``; a torchvision architecture name (``"resnet18"``); ``"path/net.py:Net"``;
        or the path of a TorchScript / ``.pt2`` / pickled-module file (format read from its
        bytes).
    weights:
        For a torchvision name: ``None`` or ``"pretrained"`` (the default weights, downloaded
        into torchvision's cache if needed), a weights enum name (``"IMAGENET1K_V2"``),
        ``"random"``, or a path. For ``file.py:Class``: ``None``/``"random"`` or a path.
        For a model file: ``None`` or a path to replace its weights. Weight files are
        state_dicts/checkpoints (loaded weights-only) or ``.safetensors``.
    trust:
        The user said they trust the model file (and weights file): code-bearing formats may
        load. Without it, only files whose SHA-256 is in ``trust_store`` may.
    ctor_kwargs:
        Constructor arguments for ``file.py:Class`` (a dict or a JSON object string).
    progress, cancel:
        For a pretrained download: ``progress(done_bytes, total_bytes)`` and a
        ``threading.Event`` or callable that stops it.
    device:
        ``"cpu"``, ``"cuda"``, ``"mps"`` or ``"auto"``; see :func:`resolve_device`.

    Raises
    ------
    TrustRequired
        The file can run code and is not trusted; its ``path``, ``format`` and ``sha256``
        attributes say what to ask about.
    ModelLoadError
        Anything else a user can fix, with the cause and the fix in the message.
    """
    if not isinstance(spec, (str, os.PathLike)) or not str(spec).strip():
        raise ModelLoadError("no model given",
                             "name a torchvision model, file.py:Class, a model file or demo")
    spec_str = os.fspath(spec).strip()
    target_device = resolve_device(device)

    if spec_str.lower() == "demo":
        try:
            from cnnviz.core.demo import load_demo_model
        except ImportError as exc:
            raise ModelLoadError(f"the demo model is not available ({exc})",
                                 "reinstall cnnviz") from exc
        loaded = load_demo_model()
    else:
        m = _PY_SPEC.match(spec_str)
        path = Path(spec_str)
        if m is not None and not path.is_file():
            py = Path(m.group("file"))
            if not py.is_file():
                raise ModelLoadError(f"{py} does not exist", "check the path of the Python file")
            loaded = _load_python(py, m.group("cls"), weights=weights, ctor_kwargs=ctor_kwargs,
                                  trust=trust, trust_store=trust_store)
        elif path.exists():
            loaded = _load_model_file(path, weights=weights, trust=trust, trust_store=trust_store)
        else:
            name = _torchvision_name(spec_str)
            if name is None and ("/" in spec_str or os.sep in spec_str or path.suffix):
                raise ModelLoadError(f"{spec_str} does not exist", "check the path of the model file")
            if name is None:
                close = difflib.get_close_matches(spec_str.lower(), torchvision_model_names(), n=3)
                raise ModelLoadError(
                    f"{spec_str!r} is neither a file nor a torchvision model name"
                    + (f" (did you mean {', '.join(close)}?)" if close else ""),
                    "give a model file, file.py:Class, demo, or a name such as resnet18",
                )
            loaded = _load_torchvision(name, weights, trust=trust, trust_store=trust_store,
                                       progress=progress, cancel=cancel)
    if target_device != loaded.device:
        loaded = move_model(loaded, target_device, loaded.dtype)
    return loaded


# ---------------------------------------------------------------------------------------------
# Labels, devices
# ---------------------------------------------------------------------------------------------


def load_labels(path: str | os.PathLike) -> list[str]:
    """Class names from a file: one per line, a JSON list, or a JSON dict ``{index: name}``.

    In the dict form gaps are filled with the index as text; values that are lists
    (``{"0": ["n01440764", "tench"]}``, ImageNet's class index) give their last item.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ModelLoadError(f"labels file {p} does not exist", "check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"cannot read labels file {p.name} ({exc})",
                             "give a UTF-8 text file, one class name per line") from exc
    stripped = text.strip()
    if not stripped:
        raise ModelLoadError(f"labels file {p.name} is empty", "write one class name per line")

    def name_of(v: Any) -> str:
        if isinstance(v, (list, tuple)) and v:
            v = v[-1]
        if isinstance(v, (dict, list, tuple)) or v is None:
            raise ModelLoadError(f"labels file {p.name} has a label that is not text: {v!r}",
                                 "give class names as strings")
        return str(v)

    if stripped[0] in "[{":
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            raise ModelLoadError(f"labels file {p.name} looks like JSON but is not valid ({exc})",
                                 "fix the JSON, or write one class name per line") from exc
        if isinstance(data, list):
            return [name_of(v) for v in data]
        if isinstance(data, dict):
            try:
                items = {int(k): name_of(v) for k, v in data.items()}
            except ValueError:
                raise ModelLoadError(f"labels file {p.name}: keys must be class indices (0, 1, …)",
                                     'write {"0": "cat", "1": "dog"}') from None
            if min(items) < 0 or max(items) > 1_000_000:
                raise ModelLoadError(f"labels file {p.name}: class indices must be 0…1000000",
                                     "number classes from 0")
            return [items.get(i, str(i)) for i in range(max(items) + 1)]
        raise ModelLoadError(f"labels file {p.name} holds JSON {type(data).__name__}, not labels",
                             "give a JSON list or a dict {index: name}")
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def resolve_device(name: str | None = "auto") -> str:
    """``"auto"`` → cuda, then mps, then cpu. Otherwise check the device exists here.

    Raises ModelLoadError naming the available devices for an unknown or absent one.
    (One implementation for the whole app: :mod:`cnnviz.core.devices`.)
    """
    return check_torch_device(name, error=ModelLoadError)


_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}


def move_model(model: LoadedModel, device: str, dtype: str = "float32") -> LoadedModel:
    """Move a model to ``device`` in ``dtype``; returns an updated :class:`LoadedModel`.

    The module is moved in place (``nn.Module.to``), so the returned object shares it.
    float16/bfloat16 are for GPUs only: on the CPU they are slow or unsupported for
    convolutions, so they are refused with a message.
    """
    dev = resolve_device(device)
    key = str(dtype).strip().lower()
    if key not in _DTYPES:
        raise ModelLoadError(f"unknown precision {dtype!r}", "use float32, float16 or bfloat16")
    dt = _DTYPES[key]
    dt_name = str(dt).removeprefix("torch.")
    if dt != torch.float32 and dev == "cpu":
        raise ModelLoadError(
            f"{dt_name} runs only on a GPU; on the CPU cnnviz uses float32",
            "choose float32, or a cuda/mps device",
        )
    if model.kind == "export" and model.exported is not None:
        if dt != torch.float32:
            raise ModelLoadError(
                f"a torch.export program runs in the precision it was exported in, not {dt_name}",
                "use float32, or export the model in the precision you want",
            )
        from torch.export.passes import move_to_device_pass

        exported = move_to_device_pass(model.exported, dev)
        module = exported.module()
        return dataclasses.replace(model, module=module, exported=exported, device=dev, dtype=dt_name)
    try:
        model.module.to(device=dev, dtype=dt)
    except RuntimeError as exc:
        raise ModelLoadError(f"cannot move {model.name} to {dev} in {dt_name}: {_describe_exception(exc)}",
                             "try another device or float32") from exc
    return dataclasses.replace(model, device=dev, dtype=dt_name)
