"""torchvision architectures by name: built as ``torchvision.models.get_model`` builds them,
with pretrained weights fetched into the cache and loaded weights-only."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnviz.core import weights_download
from cnnviz.core.errors import ModelLoadError
from cnnviz.core.models.loaded import LoadedModel, _first_conv_in_channels
from cnnviz.core.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, _preprocessing_from_torchvision
from cnnviz.core.models.weights import (
    _describe_exception,
    _extract_state_dict,
    _state_dict_mismatch,
    _strip_prefixes,
    _torch_load_weights_only,
    apply_state_dict,
    load_state_dict_file,
)


def torchvision_model_names() -> list[str]:
    """Every architecture torchvision can build by name: classification, segmentation,
    detection, video and quantizable (``list_models()``), and optical flow (refused when
    loaded, with the reason)."""
    import torchvision.models as tvm

    return list(tvm.list_models())


def torchvision_task(name: str) -> str:
    """``"classification" | "segmentation" | "detection" | "video" | "optical_flow"`` for a
    torchvision architecture name (from the module its builder lives in)."""
    import torchvision.models as tvm

    module = tvm.get_model_builder(name).__module__.split(".")
    sub = module[2] if len(module) > 3 else ""
    return {"segmentation": "segmentation", "detection": "detection", "video": "video",
            "optical_flow": "optical_flow"}.get(sub, "classification")


VIDEO_FRAMES = 16  # a still image is shown to a video model as a clip of this many frames


def _builder_kwargs(name: str, ctor_kwargs: Mapping[str, Any] | None, random: bool) -> dict[str, Any]:
    """The user's constructor arguments, plus ``weights_backbone=None`` for builders that
    would otherwise download an ImageNet backbone (detection, segmentation) when the model's
    own weights are random or come from a file."""
    import inspect

    import torchvision.models as tvm

    kwargs = dict(ctor_kwargs or {})
    params = inspect.signature(tvm.get_model_builder(name)).parameters
    if "weights_backbone" in params and "weights_backbone" not in kwargs:
        kwargs["weights_backbone"] = None
    return kwargs


def _build(name: str, kwargs: Mapping[str, Any], **extra) -> nn.Module:
    import torchvision.models as tvm

    try:
        return tvm.get_model(name, weights=None, **{**kwargs, **extra})
    except (TypeError, ValueError) as exc:
        shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if k != "weights_backbone")
        raise ModelLoadError(f"torchvision's {name} cannot be built with {shown or 'these arguments'}: "
                             f"{_describe_exception(exc)}",
                             "give --model-args that the builder takes (see torchvision's documentation)") from exc


_AUX_PREFIXES = {"aux1.": "aux_logits", "aux2.": "aux_logits", "AuxLogits.": "aux_logits",
                 "aux_classifier.": "aux_loss"}


def _ctor_hint(missing: list[str], unexpected: list[str]) -> str | None:
    """Constructor arguments that would make the model fit the file, when the keys say so
    (auxiliary heads present in the model but not the file, or the other way round)."""
    import json

    args: dict[str, bool] = {}
    for keys, value in ((missing, False), (unexpected, True)):
        if not keys:
            continue
        flags = {next((a for p, a in _AUX_PREFIXES.items() if k.startswith(p)), None) for k in keys}
        if None in flags:
            return None
        for f in flags:
            args[f] = value
    return json.dumps(args) if args else None


def _apply(model: nn.Module, name: str, sd: Mapping[str, torch.Tensor], source: str,
           kwargs: Mapping[str, Any]) -> None:
    """apply_state_dict, with the constructor arguments that would fit named when the
    mismatch tells them (googlenet's aux heads: ``{"aux_logits": false}``)."""
    sd2 = _strip_prefixes(dict(sd), set(model.state_dict()))
    missing, unexpected, shapes = _state_dict_mismatch(model, sd2)
    hint = _ctor_hint(missing, unexpected) if (missing or unexpected) and not shapes else None
    if hint is not None:
        import json

        merged = {k: v for k, v in kwargs.items() if k != "weights_backbone"}
        merged.update(json.loads(hint))
        what = "lacks" if missing else "has"
        raise ModelLoadError(
            f"the weights in {source} do not fit {name}: the file {what} the auxiliary head "
            f"({_few_keys(missing or unexpected)})",
            f"build it with the constructor arguments that fit: --model-args '{json.dumps(merged)}'")
    apply_state_dict(model, sd, source=source, target=name)


def _few_keys(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def _task_preprocessing(name: str, task: str, member, model: nn.Module | None) -> Preprocessing | None:
    """Preprocessing for the non-classification presets (their transforms are not
    ImageClassification's): detection models normalise and resize inside (pixels in [0, 1],
    the shorter side to their ``min_size``); segmentation resizes the shorter side; video
    crops each frame."""
    if task == "detection":
        size = None
        transform = getattr(model, "transform", None)
        min_size = getattr(transform, "min_size", None)
        if min_size:
            size = int(min_size[0] if isinstance(min_size, (tuple, list)) else min_size)
        return Preprocessing(resize=size, center_crop=None, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    if member is None:
        return None
    try:
        t = member.transforms()
    except Exception:  # noqa: BLE001 - a preset we cannot read: the caller's default stands
        return None
    resize = list(getattr(t, "resize_size", None) or []) or None
    crop = list(getattr(t, "crop_size", None) or []) or None
    mean = tuple(getattr(t, "mean", IMAGENET_MEAN))
    std = tuple(getattr(t, "std", IMAGENET_STD))
    if task == "segmentation":
        return Preprocessing(resize=resize[0] if resize else None, center_crop=None, mean=mean, std=std)
    if task == "video":
        r = (int(resize[0]), int(resize[1])) if resize and len(resize) == 2 else (resize[0] if resize else None)
        c = (int(crop[0]), int(crop[1])) if crop and len(crop) == 2 else (crop[0] if crop else None)
        return Preprocessing(resize=r, center_crop=c, mean=mean, std=std)
    return None


def _as_clip(module: nn.Module, frames: int = VIDEO_FRAMES) -> nn.Module:
    """Let a video model take one image: a pre-hook repeats an ``(N, C, H, W)`` input as an
    ``(N, C, T, H, W)`` clip of ``frames`` identical frames (module names unchanged)."""
    def hook(_m, args):
        x = args[0] if args else None
        if isinstance(x, torch.Tensor) and x.dim() == 4:
            return (x.unsqueeze(2).expand(-1, -1, frames, -1, -1).contiguous(), *args[1:])
        return None

    module.register_forward_pre_hook(hook)
    return module


def _torchvision_name(spec: str) -> str | None:
    names = torchvision_model_names()
    lower = {n.lower(): n for n in names}
    return lower.get(spec.strip().lower())


def _weights_url(member) -> str:
    """The download URL of a torchvision ``Weights`` enum member (tests replace this)."""
    return member.url


_TV_PATCH_LOCK = threading.Lock()


def _build_torchvision(name: str, member, state_dict: dict[str, torch.Tensor], source: str,
                       kwargs: Mapping[str, Any] | None = None) -> nn.Module:
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
                return tvm.get_model(name, weights=member, **{k: v for k, v in (kwargs or {}).items()
                                                              if k != "weights_backbone"})
            finally:
                _api.load_state_dict_from_url = original
    except AttributeError:
        pass  # torchvision changed its internals: build and load by hand below
    except RuntimeError as exc:
        raise ModelLoadError(
            f"the weights in {source} do not fit {name}: {_describe_exception(exc)}",
            f"delete {source} so that it is downloaded again",
        ) from exc
    model = tvm.get_model(name, weights=None, num_classes=len(member.meta["categories"]), **(kwargs or {}))
    apply_state_dict(model, state_dict, source=source, target=name)
    return model


def _fit_num_classes(
    name: str, model: nn.Module, sd: Mapping[str, torch.Tensor], kwargs: Mapping[str, Any] | None = None
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
        return tvm.get_model(name, weights=None, **{**(kwargs or {}), "num_classes": n}), n
    except Exception:  # builder takes no num_classes: report the mismatch as it is
        return model, None


def _load_torchvision(name: str, weights: str | None, *, trust: bool, trust_store, progress,
                      cancel, ctor_kwargs: Mapping[str, Any] | None = None) -> LoadedModel:
    import torchvision.models as tvm

    task = torchvision_task(name)
    if task == "optical_flow":
        raise ModelLoadError(f"{name} is an optical-flow model: it takes two frames and outputs motion, "
                             "not one image's features",
                             "choose a classification, segmentation, detection or video model")
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
        model = _build_torchvision(name, member, sd, str(path), ctor_kwargs)
        categories = list(member.meta.get("categories") or [])
        preprocessing = _preprocessing_from_torchvision(member)
        weights_desc = f"pretrained {member.name}"
    elif choice.lower() == "random":
        model = _build(name, _builder_kwargs(name, ctor_kwargs, True))
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
        kwargs = _builder_kwargs(name, ctor_kwargs, True)
        model, n_classes = _fit_num_classes(name, _build(name, kwargs), sd, kwargs)
        _apply(model, name, sd, wpath.name, kwargs)
        weights_desc = str(wpath)
        if n_classes is not None and n_classes != len(categories):
            categories = []  # fine-tuned on other classes: ImageNet's names would be wrong
    model.eval()
    if task != "classification":
        preprocessing = _task_preprocessing(name, task, default, model) or preprocessing
        if weights_desc.startswith("pretrained"):
            preprocessing = _task_preprocessing(name, task, member, model) or preprocessing
    if task == "video":
        model = _as_clip(model)
    labels = categories or None
    crop = preprocessing.center_crop
    input_size = (crop, crop) if isinstance(crop, int) else crop
    return LoadedModel(
        module=model, kind="torchvision", name=name, source=name, preprocessing=preprocessing,
        labels=labels, input_channels=_first_conv_in_channels(model), input_size=input_size,
        weights=weights_desc,
    )
