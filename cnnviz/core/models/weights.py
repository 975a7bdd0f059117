"""Weights files (state_dicts, checkpoints, safetensors): loaded weights-only, never by the
unrestricted unpickler unless the file is trusted, and applied to a model strictly."""

from __future__ import annotations

import math
import os
import pickle
import re
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnviz.core.archive_guard import check_tensor_ranges
from cnnviz.core.errors import ModelLoadError, a_noun
from cnnviz.core.files import load_json_bounded, open_regular
from cnnviz.core.models.detect import _describe_exception, _detect, _Detection, _numpy_safe_globals, _open_failed
from cnnviz.core.models.trust_gate import _trust_gate, _unsafe_load_trusted
from cnnviz.core.quiet import captured_library_logs
from cnnviz.core.trust import TrustStore

_MAX_SAFETENSORS_HEADER = 100 << 20  # the safetensors library's own limit

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
        with open_regular(p, "weights file", error=ModelLoadError) as f:
            size = os.fstat(f.fileno()).st_size
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
    try:  # bounded JSON: a header nested 100,000 deep must not recurse
        header = load_json_bounded(raw, _MAX_SAFETENSORS_HEADER, "the header", error=ModelLoadError)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{bad}: its header is not JSON it can use ({exc.cause})", fix) from None
    if not isinstance(header, dict):
        raise ModelLoadError(f"{bad}: its header is not a JSON object", fix)
    data_len = size - 8 - n
    ranges: list[tuple[str, int, int]] = []
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
        ranges.append((name, begin, end))
        if (end - begin) != math.prod(shape) * _SAFETENSORS_ITEMSIZE[dtype]:
            raise ModelLoadError(
                f"{bad}: tensor {name!r} of shape {shape} {dtype} needs "
                f"{math.prod(shape) * _SAFETENSORS_ITEMSIZE[dtype]} bytes but has {end - begin}",
                fix,
            )
    check_tensor_ranges(ranges, data_len, p.name)  # tensors sharing bytes: N copies of the file


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
        with open_regular(source, "weights file", error=ModelLoadError) as f, captured_library_logs(), \
                torch.serialization.safe_globals(list(_numpy_safe_globals())):
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
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - a hostile record can make the loader raise anything
        # (RuntimeError, EOFError, KeyError, a TypeError for a data.pkl that is OrderedDict(1)...)
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
        f"{name} holds {a_noun(type(obj).__name__)}, not model weights",
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
    det = _detect(p, "weights file")
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
