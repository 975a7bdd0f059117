"""The architectures the Train window and ``cnnviz train`` build, and their checkpoints.

A :class:`ModelSpec` names an architecture; :func:`build_model` makes it for a data set's
channels, input size and classes. A checkpoint is two files side by side, each written
atomically: ``epoch-003.safetensors`` (the weights, never code) and ``epoch-003.json`` (what
to build, the labels, the preprocessing, the epoch's metrics). :func:`load_checkpoint` rebuilds
the model from the JSON and loads the weights weights-only, so a checkpoint of a built-in or
torchvision architecture opens with no trust prompt; one of the user's own ``file.py:Class``
runs that file again and so needs the same trust as when it was trained.

torch is imported lazily (callers import this module from the GUI thread).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cnnviz.core.errors import ModelLoadError, SpecError

CHECKPOINT_FORMAT = "cnnviz-train-checkpoint"
CHECKPOINT_VERSION = 1
BUILTIN = ("simplecnn", "lenet5", "tinyvgg", "demo")
FREEZE_MODES = ("none", "partial", "frozen")
_PY_SPEC = re.compile(r"^(?P<file>.+\.py):(?P<cls>[A-Za-z_][A-Za-z0-9_]*)$", re.DOTALL)


@dataclass(frozen=True)
class ModelSpec:
    """Which network to train.

    Attributes
    ----------
    name:
        ``simplecnn``, ``lenet5``, ``tinyvgg``, ``demo``, ``path/file.py:Class`` or a
        torchvision classifier name (``resnet18``).
    pretrained:
        torchvision only: a weights file (state_dict / .safetensors, loaded weights-only) to
        start from; ``None``: random weights.
    freeze:
        torchvision only: ``none`` (train everything), ``partial`` (train the last half of
        the backbone and the new head), ``frozen`` (train only the new head).
    ctor_kwargs:
        ``file.py:Class`` only: constructor arguments.
    trust:
        ``file.py:Class`` only: the user trusts the file (it is imported, i.e. run).
    """

    name: str = "simplecnn"
    pretrained: str | None = None
    freeze: str = "none"
    ctor_kwargs: dict[str, Any] = field(default_factory=dict)
    trust: bool = False

    @property
    def kind(self) -> str:
        n = self.name.strip()
        if n.lower() in BUILTIN:
            return "builtin"
        if _PY_SPEC.match(n):
            return "python"
        return "torchvision"


def check_spec(spec: ModelSpec) -> None:
    """Refuse a model that cannot be built, before any data is read (names the fix)."""
    name = spec.name.strip()
    if not name:
        raise SpecError("no model given", "use simplecnn, lenet5, tinyvgg, demo, file.py:Class or resnet18")
    if spec.freeze not in FREEZE_MODES:
        raise SpecError(f"freeze must be one of {', '.join(FREEZE_MODES)}", "use none, partial or frozen")
    if spec.kind == "python":
        py = Path(_PY_SPEC.match(name).group("file"))
        if not py.is_file():
            raise ModelLoadError(f"{py} does not exist", "check the path of the Python file")
    elif spec.kind == "torchvision":
        _torchvision_name(name)
        if spec.pretrained and not Path(spec.pretrained).is_file():
            raise ModelLoadError(f"{spec.pretrained} does not exist", "give the pretrained weights file, or none")


def _torchvision_name(name: str) -> str:
    import difflib

    import torchvision.models as tvm

    names = set(tvm.list_models(module=tvm))
    if name not in names:
        close = difflib.get_close_matches(name.lower(), sorted(names), n=3)
        raise SpecError(f"{name!r} is not a model cnnviz can train"
                        + (f" (did you mean {', '.join(close)}?)" if close else ""),
                        "use simplecnn, lenet5, tinyvgg, demo, file.py:Class or a torchvision classifier name")
    return name


def model_constraints(spec: ModelSpec) -> dict[str, Any]:
    """What the model needs from the data: ``{"color": "gray"|"rgb"|None, "size": (h, w)|None,
    "min_size": int, "normalize": "imagenet"|None}`` (``None``: whatever the data has)."""
    name = spec.name.strip().lower()
    if name == "demo":
        return {"color": "gray", "size": (28, 28), "min_size": 28, "normalize": None}
    if name == "lenet5":
        return {"color": None, "size": None, "min_size": 16, "normalize": None}
    if name == "tinyvgg":
        return {"color": None, "size": None, "min_size": 16, "normalize": None}
    if name == "simplecnn":
        return {"color": None, "size": None, "min_size": 4, "normalize": None}
    if spec.kind == "torchvision":
        return {"color": "rgb", "size": None, "min_size": 32, "normalize": "imagenet"}
    return {"color": None, "size": None, "min_size": 1, "normalize": None}


# ---------------------------------------------------------------------------------------------
# Architectures
# ---------------------------------------------------------------------------------------------


def _flat_features(features, in_channels: int, size: tuple[int, int]) -> int:
    import torch

    with torch.no_grad():
        return int(features(torch.zeros(1, in_channels, *size)).numel())


def _classes():
    """The built-in architectures (defined lazily: torch loads only when a model is built)."""
    from torch import nn

    class SimpleCNN(nn.Module):
        """The lessons' CNN: two conv-ReLU-pool blocks (32 and 64 3x3 filters), a 128-unit
        dense layer with dropout, then the classes. The dense layer adapts to the input size."""

        def __init__(self, in_channels: int = 1, n_classes: int = 10, size: tuple[int, int] = (28, 28)):
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, 32, 3, padding=1)
            self.relu1 = nn.ReLU()
            self.pool1 = nn.MaxPool2d(2)
            self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
            self.relu2 = nn.ReLU()
            self.pool2 = nn.MaxPool2d(2)
            self.flatten = nn.Flatten()
            n = _flat_features(self._features, in_channels, tuple(size))
            self.fc1 = nn.Linear(n, 128)
            self.relu3 = nn.ReLU()
            self.dropout = nn.Dropout(0.5)
            self.fc2 = nn.Linear(128, n_classes)

        def _features(self, x):
            x = self.pool1(self.relu1(self.conv1(x)))
            return self.flatten(self.pool2(self.relu2(self.conv2(x))))

        def forward(self, x):
            return self.fc2(self.dropout(self.relu3(self.fc1(self._features(x)))))

    class LeNet5(nn.Module):
        """LeNet-5 (LeCun et al. 1998): 6 and 16 5x5 filters with tanh and average pooling,
        then 120-84-classes. A 28x28 input is padded by 2 to the original 32x32."""

        def __init__(self, in_channels: int = 1, n_classes: int = 10, size: tuple[int, int] = (32, 32)):
            super().__init__()
            pad = 2 if min(size) < 32 else 0
            self.conv1 = nn.Conv2d(in_channels, 6, 5, padding=pad)
            self.tanh1 = nn.Tanh()
            self.pool1 = nn.AvgPool2d(2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.tanh2 = nn.Tanh()
            self.pool2 = nn.AvgPool2d(2)
            self.flatten = nn.Flatten()
            n = _flat_features(self._features, in_channels, tuple(size))
            self.fc1 = nn.Linear(n, 120)
            self.tanh3 = nn.Tanh()
            self.fc2 = nn.Linear(120, 84)
            self.tanh4 = nn.Tanh()
            self.fc3 = nn.Linear(84, n_classes)

        def _features(self, x):
            x = self.pool1(self.tanh1(self.conv1(x)))
            return self.flatten(self.pool2(self.tanh2(self.conv2(x))))

        def forward(self, x):
            return self.fc3(self.tanh4(self.fc2(self.tanh3(self.fc1(self._features(x))))))

    class TinyVGG(nn.Module):
        """CNN Explainer's TinyVGG: two blocks of two 3x3 conv-ReLU (10 filters, no padding)
        and a 2x2 max pool, then one linear layer to the classes."""

        def __init__(self, in_channels: int = 3, n_classes: int = 10, size: tuple[int, int] = (64, 64)):
            super().__init__()
            self.conv_1_1 = nn.Conv2d(in_channels, 10, 3)
            self.relu_1_1 = nn.ReLU()
            self.conv_1_2 = nn.Conv2d(10, 10, 3)
            self.relu_1_2 = nn.ReLU()
            self.max_pool_1 = nn.MaxPool2d(2)
            self.conv_2_1 = nn.Conv2d(10, 10, 3)
            self.relu_2_1 = nn.ReLU()
            self.conv_2_2 = nn.Conv2d(10, 10, 3)
            self.relu_2_2 = nn.ReLU()
            self.max_pool_2 = nn.MaxPool2d(2)
            self.flatten = nn.Flatten()
            n = _flat_features(self._features, in_channels, tuple(size))
            self.output = nn.Linear(n, n_classes)

        def _features(self, x):
            x = self.max_pool_1(self.relu_1_2(self.conv_1_2(self.relu_1_1(self.conv_1_1(x)))))
            x = self.max_pool_2(self.relu_2_2(self.conv_2_2(self.relu_2_1(self.conv_2_1(x)))))
            return self.flatten(x)

        def forward(self, x):
            return self.output(self._features(x))

    return {"simplecnn": SimpleCNN, "lenet5": LeNet5, "tinyvgg": TinyVGG}


_CLASSES: dict | None = None


def builtin_class(name: str):
    global _CLASSES
    if _CLASSES is None:
        _CLASSES = _classes()
    return _CLASSES[name]


def _replace_head(model, n_classes: int) -> str:
    """Swap the last ``nn.Linear`` (the classifier) for a new one with ``n_classes`` outputs;
    return its dotted name."""
    from torch import nn

    last = None
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            last = name
    if last is None:
        raise SpecError(f"{type(model).__name__} has no linear classifier layer to replace",
                        "pick a classifier (resnet18, mobilenet_v3_small, vgg11, …)")
    parent = model
    *path, leaf = last.split(".")
    for p in path:
        parent = getattr(parent, p)
    old = getattr(parent, leaf)
    setattr(parent, leaf, nn.Linear(old.in_features, n_classes))
    return last


def _freeze(model, head: str, mode: str) -> None:
    if mode == "none":
        return
    params = [(n, p) for n, p in model.named_parameters() if not n.startswith(head + ".")]
    keep = len(params) // 2 if mode == "partial" else len(params)
    for _, p in params[:keep]:
        p.requires_grad_(False)


def _build_python(spec: ModelSpec, n_classes: int, trust_store=None):
    from cnnviz.core import models

    loaded = models.load_model(spec.name.strip(), trust=spec.trust, trust_store=trust_store,
                               ctor_kwargs=spec.ctor_kwargs or None)
    return loaded.module


def build_model(spec: ModelSpec, in_channels: int, n_classes: int, size: tuple[int, int], *, trust_store=None):
    """A fresh ``nn.Module`` (train mode, CPU) for ``in_channels`` x ``size`` inputs and
    ``n_classes`` outputs. Raises :class:`SpecError` / :class:`ModelLoadError` naming the fix."""
    import torch

    name = spec.name.strip()
    low = name.lower()
    if n_classes < 2:
        raise SpecError(f"training needs at least 2 classes, the data has {n_classes}",
                        "add a sub-folder of images for every class")
    if low == "demo":
        from cnnviz.core.demo import DigitsNet

        if in_channels != 1 or tuple(size) != (28, 28):
            raise SpecError("the demo architecture reads 1x28x28 images",
                            "train it on grey images resized to 28x28 (the digits)")
        model = DigitsNet(n_classes=n_classes)
    elif low in ("simplecnn", "lenet5", "tinyvgg"):
        model = builtin_class(low)(in_channels, n_classes, tuple(size))
    elif spec.kind == "python":
        model = _build_python(spec, n_classes, trust_store)
    else:
        model = _build_torchvision(spec, n_classes)
    if spec.kind == "python":
        _fit_python_head(model, name, in_channels, n_classes, size)
    model.train()
    with torch.no_grad():
        for p in model.parameters():
            if not p.is_floating_point():
                raise SpecError(f"{name} has non-float parameters", "train a float32 model")
    return model


def _fit_python_head(model, name: str, in_channels: int, n_classes: int, size) -> None:
    import torch

    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, in_channels, *size))
    except Exception as exc:  # noqa: BLE001 - the user's code can raise anything
        raise SpecError(f"{name} cannot read {in_channels}x{size[0]}x{size[1]} inputs ({type(exc).__name__}: {exc})",
                        "make its first layer take that many channels, or choose an image size it accepts") from exc
    finally:
        model.train(was)
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise SpecError(f"{name} must return (batch, classes) logits", "return the classifier's output")
    if out.shape[1] != n_classes:
        _replace_head(model, n_classes)


def _build_torchvision(spec: ModelSpec, n_classes: int):
    import torchvision.models as tvm

    from cnnviz.core import models

    name = _torchvision_name(spec.name.strip())
    if spec.freeze not in FREEZE_MODES:
        raise SpecError(f"freeze must be one of {', '.join(FREEZE_MODES)}", "use none, partial or frozen")
    try:
        model = tvm.get_model(name, weights=None)
    except Exception as exc:  # noqa: BLE001
        raise SpecError(f"cannot build {name}: {exc}", "pick another torchvision classifier") from exc
    if hasattr(model, "aux_logits"):  # inception / googlenet: one output, not a tuple
        model.aux_logits = False
        for aux in ("AuxLogits", "aux1", "aux2"):
            if hasattr(model, aux):
                setattr(model, aux, None)
    if spec.pretrained:
        sd = models.load_state_dict_file(Path(spec.pretrained))
        models.apply_state_dict(model, sd, source=Path(spec.pretrained).name, target=name)
    head = _replace_head(model, n_classes)
    _freeze(model, head, spec.freeze)
    return model


def first_conv(model):
    """``(name, nn.Conv2d)`` of the first 2-D convolution, or ``(None, None)``."""
    from torch import nn

    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d):
            return name, mod
    return None, None


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def checkpoint_meta(spec: ModelSpec, *, in_channels: int, n_classes: int, size: tuple[int, int],
                    labels: list[str], preprocessing: dict, epoch: int, step: int,
                    metrics: dict, weights_file: str, data: dict | None = None) -> dict[str, Any]:
    arch = {"model": spec.name.strip(), "in_channels": int(in_channels), "n_classes": int(n_classes),
            "input_size": [int(size[0]), int(size[1])]}
    if spec.kind == "python":
        arch["ctor_kwargs"] = dict(spec.ctor_kwargs)
    if spec.kind == "torchvision":
        arch["freeze"] = spec.freeze
        arch["pretrained"] = spec.pretrained
    return {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "architecture": arch,
            "labels": list(labels), "preprocessing": dict(preprocessing), "epoch": int(epoch),
            "step": int(step), "metrics": dict(metrics), "weights": weights_file, "data": dict(data or {})}


def is_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a training run folder, or a checkpoint's .json or .safetensors."""
    try:
        return find_checkpoint(path) is not None
    except (OSError, ModelLoadError):
        return False


def _read_meta(p: Path) -> dict | None:
    try:
        if p.stat().st_size > 10_000_000:
            return None
        meta = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == CHECKPOINT_FORMAT else None


def find_checkpoint(path: str | os.PathLike) -> Path | None:
    """The checkpoint JSON for a run folder (its latest complete checkpoint), a .json or a
    .safetensors with its .json beside it; ``None`` when ``path`` is none of these."""
    p = Path(path)
    if p.is_dir():
        folder = p / "checkpoints" if (p / "checkpoints").is_dir() else p
        for j in sorted(folder.glob("epoch-*.json"), reverse=True):
            meta = _read_meta(j)
            if meta is not None and (j.parent / str(meta.get("weights", ""))).is_file():
                return j
        return None
    if p.suffix == ".safetensors":
        p = p.with_suffix(".json")
    if p.suffix == ".json" and p.is_file() and _read_meta(p) is not None:
        return p
    return None


def load_checkpoint(path: str | os.PathLike, *, trust: bool = False, trust_store=None, device: str = "cpu"):
    """A checkpoint as a :class:`cnnviz.core.models.LoadedModel` (eval mode).

    Weights load weights-only from the .safetensors; only a ``file.py:Class`` architecture
    imports (runs) its Python file, and needs ``trust`` for that as in the inspector.
    """
    from safetensors.torch import load_file

    from cnnviz.core import models

    j = find_checkpoint(path)
    if j is None:
        raise ModelLoadError(f"{path} is not a cnnviz training checkpoint",
                             "give a run folder, or an epoch-NNN.json / .safetensors from one")
    meta = _read_meta(j)
    try:
        arch = meta["architecture"]
        labels = [str(x) for x in meta["labels"]]
        pre = models.Preprocessing.from_dict(meta["preprocessing"])
        size = tuple(int(v) for v in arch["input_size"])
        spec = ModelSpec(name=str(arch["model"]), freeze="none",
                         ctor_kwargs=dict(arch.get("ctor_kwargs") or {}), trust=trust)
        wfile = j.parent / str(meta["weights"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"{j.name} is damaged ({exc})", "use another epoch's checkpoint") from exc
    if spec.kind == "torchvision" and arch.get("pretrained"):
        spec = ModelSpec(name=spec.name)  # the checkpoint holds all the weights
    try:
        state = load_file(str(wfile))
    except Exception as exc:  # noqa: BLE001 - a truncated or damaged file
        raise ModelLoadError(f"{wfile.name} cannot be read ({exc})", "use another epoch's checkpoint") from exc
    net = build_model(spec, int(arch["in_channels"]), int(arch["n_classes"]), size, trust_store=trust_store)
    models.apply_state_dict(net, state, source=wfile.name, target=str(arch["model"]))
    net.eval()
    loaded = models.LoadedModel(
        module=net, kind="checkpoint", name=f"{arch['model']} (epoch {meta.get('epoch')})", source=str(j),
        preprocessing=pre, labels=labels, input_channels=int(arch["in_channels"]), input_size=size,
        weights=str(wfile))
    if device != "cpu":
        loaded = models.move_model(loaded, device, "float32")
    return loaded


def spec_to_dict(spec: ModelSpec) -> dict:
    return asdict(spec)
