"""The entry point: :func:`load_model` picks the loader for a spec (demo, torchvision name,
``file.py:Class``, a model file); :func:`move_model` puts a loaded model on a device."""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnviz.core.devices import check_torch_device
from cnnviz.core.errors import ModelLoadError, a_noun
from cnnviz.core.models.detect import _describe_exception, _detect, python_file_classes
from cnnviz.core.models.loaded import LoadedModel, input_channels
from cnnviz.core.models.preprocessing import default_preprocessing
from cnnviz.core.models.python_file import _PY_SPEC, _load_python
from cnnviz.core.models.trust_gate import _trust_gate, _unsafe_load_trusted
from cnnviz.core.models.weights import _CHECKPOINT_KEYS, _pickle_fix, apply_state_dict, load_state_dict_file
from cnnviz.core.models.zoo import _load_torchvision, _torchvision_name, torchvision_model_names
from cnnviz.core.trust import TrustStore

__all__ = ["LoadedModel", "load_model", "move_model", "resolve_device"]


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


def _train_checkpoint(path: Path):
    """:func:`cnnviz.core.train_models.load_checkpoint` when ``path`` is a training run or checkpoint."""
    from cnnviz.core import train_models

    return train_models.load_checkpoint if train_models.find_checkpoint(path) is not None else None


def _load_model_file(path: Path, *, weights, trust, trust_store) -> LoadedModel:
    det = _detect(path)
    if det.format in ("state_dict", "safetensors"):
        raise ModelLoadError(
            f"{path.name} holds only weights ({det.format.replace('_', ' ')}), not a model",
            "name the architecture (a torchvision name or file.py:Class) and give this file as "
            f"its weights (--weights {path})",
        )
    if det.format == "python":
        classes = python_file_classes(path)
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
                f"{path.name} holds {a_noun(type(obj).__name__)}, not a model",
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
        channels = input_channels(module)
    preprocessing = default_preprocessing(channels)
    if input_size is not None:  # a static exported program accepts only this size
        preprocessing = dataclasses.replace(preprocessing, resize=input_size)
    return LoadedModel(
        module=module, kind=det.format, name=path.name, source=str(path), preprocessing=preprocessing,
        labels=None, exported=exported, input_channels=channels, input_size=input_size,
        weights=str(weights) if weights is not None else None,
    )


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
        Constructor arguments for ``file.py:Class`` or a torchvision builder (a dict or a JSON
        object string; ``{"aux_logits": false}`` for googlenet weights without aux heads).
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
        from cnnviz.core.demo import load_demo_model

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
        elif path.exists() and _train_checkpoint(path) is not None:  # `cnnviz train`: weights only
            loaded = _train_checkpoint(path)(path, trust=trust, trust_store=trust_store)
        elif path.exists():
            from cnnviz.core.onnx_model import load_onnx, looks_like_onnx

            if path.is_file() and looks_like_onnx(path):  # no code inside: no trust needed
                if weights not in (None, "", "random"):
                    raise ModelLoadError(f"{path.name} is an ONNX model: its weights are inside it",
                                         "leave out --weights for an ONNX file")
                return load_onnx(path, device=target_device)
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
            from cnnviz.core.models.python_file import _ctor_kwargs

            loaded = _load_torchvision(name, weights, trust=trust, trust_store=trust_store,
                                       progress=progress, cancel=cancel, ctor_kwargs=_ctor_kwargs(ctor_kwargs))
    if target_device != loaded.device:
        loaded = move_model(loaded, target_device, loaded.dtype)
    return loaded


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
