"""torchvision architectures by name: built as ``torchvision.models.get_model`` builds them,
with pretrained weights fetched into the cache and loaded weights-only."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

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
