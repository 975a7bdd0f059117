"""Shared helpers of :mod:`cnnviz.core.capture` (moved out of it; import them from there).

The error type, unwrapping of loaded models, device/dtype, input preparation and the
error messages a failed forward gives.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import re
import sys
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnviz.core.errors import CnnvizError


class CaptureError(CnnvizError):
    """The model cannot run on this input (wrong channels, its forward raised, ...)."""


# --------------------------------------------------------------------------- helpers


def unwrap_model(model: Any) -> tuple[Any, str | None, Any, int | None]:
    """``(module, kind, exported_program, input_channels)`` for a LoadedModel, module or EP."""
    if isinstance(model, torch.export.ExportedProgram):
        return model.module(), "export", model, None
    if isinstance(model, nn.Module):
        kind = "torchscript" if isinstance(model, torch.jit.ScriptModule) else None
        return model, kind, None, None
    module = getattr(model, "module", None)
    if isinstance(module, nn.Module):
        return (module, getattr(model, "kind", None), getattr(model, "exported", None),
                getattr(model, "input_channels", None))
    raise TypeError(f"cannot capture from a {type(model).__name__}: give an nn.Module or a LoadedModel")


def module_of(model: Any) -> nn.Module:
    """The ``nn.Module`` inside a LoadedModel (or the module itself)."""
    return unwrap_model(model)[0]


def model_device_dtype(module: nn.Module) -> tuple[torch.device, torch.dtype | None]:
    for t in module.parameters():
        return t.device, (t.dtype if t.is_floating_point() else None)
    for t in module.buffers():
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), None


def _own_params(module: nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters(recurse=False)))


def flatten_output(name: str, out: Any) -> list[tuple[str, torch.Tensor]]:
    """Named tensors of a module output: a tensor, or tuples/lists/dicts of them."""
    if isinstance(out, torch.Tensor):
        return [(name, out)]
    items: list[tuple[str, torch.Tensor]] = []
    if isinstance(out, (tuple, list)):
        for i, v in enumerate(out):
            items.extend(flatten_output(f"{name}[{i}]", v))
    elif isinstance(out, dict):
        for k, v in out.items():
            items.extend(flatten_output(f"{name}.{k}", v))
    return items


def prediction_of(out: Any) -> torch.Tensor | None:
    """The tensor a classifier's predictions come from."""
    if isinstance(out, torch.Tensor):
        return out.detach()
    if isinstance(out, dict):
        for key in ("logits", "out", "output"):
            if isinstance(out.get(key), torch.Tensor):
                return out[key].detach()
    for _, t in flatten_output("", out):
        return t.detach()
    return None


def enter_eval(module: nn.Module) -> list[nn.Module]:
    """Put every submodule in eval mode; return those that were training.

    Only modules that change are touched (``nn.Module.__setattr__`` costs microseconds and
    this runs every frame), and :func:`restore_flags` puts back exactly those: a user's
    model may keep some parts (frozen batch norms) in eval while the rest trains.
    """
    changed = [m for m in module.modules() if m.training]
    for m in changed:
        m.training = False
    return changed


def restore_flags(changed: list[nn.Module]) -> None:
    for m in changed:
        m.training = True


_CHANNELS_RE = re.compile(r"expected input\[([\d, ]+)\] to have (\d+) channels, but got (\d+) channels")


def _failing_layer(err: BaseException, model: nn.Module | None) -> str | None:
    """The qualified name and type of the deepest module of ``model`` on the traceback."""
    if model is None:
        return None
    names = {id(m): n for n, m in model.named_modules()}
    deepest = None
    tb = err.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, nn.Module) and names.get(id(owner)):
            deepest = owner
        tb = tb.tb_next
    return f"layer '{names[id(deepest)]}' ({type(deepest).__name__})" if deepest is not None else None


def _forward_error(err: BaseException, x: torch.Tensor, model: nn.Module | None = None) -> CaptureError:
    text = str(err).strip()
    m = _CHANNELS_RE.search(text)
    if m:
        return channels_error(int(m.group(2)), int(m.group(3)))
    first = text.splitlines()[0] if text else type(err).__name__
    if "mat1 and mat2 shapes cannot be multiplied" in text or "size mismatch" in text:
        fix = ("the input size does not fit the model's fully connected layers: give the size it "
               "was trained on (--input-size H,W)")
    else:
        fix = "check that the input size, channels and preprocessing match what the model expects"
    where = _failing_layer(err, model)
    return CaptureError(f"the model's forward failed on an input of shape {tuple(x.shape)}"
                        f"{' in ' + where if where else ''}: {type(err).__name__}: {first}", fix)


def channels_error(expected: int, given: int) -> CaptureError:
    def word(n: int) -> str:
        return f"{n} channel" + ("" if n == 1 else "s")
    hint = {1: "gray", 3: "rgb"}.get(expected)
    fix = (f"set the preprocessing colour to {hint} (--color {hint} on the command line)" if hint
           else f"images give 1 (gray) or 3 (colour) channels: wrap the model so that it takes one of them, "
                f"or call it on a tensor with {word(expected)} from Python")
    return CaptureError(f"the model expects {word(expected)} of input, but the input has {word(given)}", fix)


def prepare_model_input(x: torch.Tensor, device: torch.device, dtype: torch.dtype | None,
                   input_channels: int | None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x))
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if input_channels is not None and x.dim() == 4 and x.shape[1] != input_channels:
        raise channels_error(int(input_channels), int(x.shape[1]))
    if dtype is not None and x.is_floating_point():
        x = x.to(device=device, dtype=dtype)
    else:
        x = x.to(device=device)
    return x


# --------------------------------------------------------------------------- host memory

_HEAP_TUNED: bool | None = None


def keep_freed_memory() -> bool:
    """Let glibc keep freed memory for reuse instead of returning it to the system.

    Capturing every layer keeps every activation alive until the frame is done, so each frame
    allocates tens of megabytes afresh. With glibc's defaults those blocks are mapped from the
    system and unmapped again every frame, and touching fresh pages (a page fault each) cost
    about 20 % of a resnet18 forward on the CPU; with the memory kept (up to the peak of one
    frame) capture costs about 5 %. Linux/glibc only (elsewhere a no-op returning False);
    process-wide; idempotent. Set ``CNNVIZ_KEEP_FREED_MEMORY=0`` to disable.
    """
    global _HEAP_TUNED
    if _HEAP_TUNED is not None:
        return _HEAP_TUNED
    _HEAP_TUNED = False
    import os

    if os.environ.get("CNNVIZ_KEEP_FREED_MEMORY", "1") == "0":
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        # blocks up to 32 MiB (glibc's maximum) from the heap; trim it only above 1 GiB free
        ok = libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024) == 1
        ok = libc.mallopt(m_trim_threshold, 1024 * 1024 * 1024) == 1 and ok
    except (OSError, AttributeError):
        return False
    _HEAP_TUNED = ok
    return ok
