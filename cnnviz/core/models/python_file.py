"""A model class from a ``.py`` file (``net.py:Net``): imported through the trust gate, built
with the constructor arguments given, optionally with a weights file."""

from __future__ import annotations

import inspect

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from cnnviz.core.errors import ModelLoadError, SpecError
from cnnviz.core.files import load_json_bounded
from cnnviz.core.models.detect import _describe_exception, _detect
from cnnviz.core.models.loaded import LoadedModel, input_channels
from cnnviz.core.models.preprocessing import default_preprocessing
from cnnviz.core.models.trust_gate import _trust_gate, _unsafe_load_trusted
from cnnviz.core.models.weights import apply_state_dict, load_state_dict_file

_PY_SPEC = re.compile(r"^(?P<file>.+\.py):(?P<cls>[A-Za-z_][A-Za-z0-9_]*)$", re.DOTALL)

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
    channels = input_channels(model)
    return LoadedModel(
        module=model, kind="python", name=f"{path.stem}:{class_name}", source=f"{path}:{class_name}",
        preprocessing=default_preprocessing(channels), labels=None, input_channels=channels,
        weights=weights_desc,
    )

def _ctor_kwargs(ctor_kwargs: Mapping[str, Any] | str | None) -> dict[str, Any]:
    if ctor_kwargs is None:
        return {}
    if isinstance(ctor_kwargs, str):
        try:  # bounded: no deep nesting, no 10,000-digit numbers
            ctor_kwargs = (load_json_bounded(ctor_kwargs, 1 << 20, "constructor arguments", error=SpecError)
                           if ctor_kwargs.strip() else {})
        except SpecError as exc:
            raise SpecError(exc.cause, 'write them as a JSON object, e.g. {"n_classes": 10}') from None
    if not isinstance(ctor_kwargs, Mapping) or not all(isinstance(k, str) for k in ctor_kwargs):
        raise SpecError("constructor arguments must be a JSON object of name: value",
                        'e.g. {"n_classes": 10}')
    return dict(ctor_kwargs)
