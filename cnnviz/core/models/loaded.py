"""What a loaded model is (:class:`LoadedModel`) and what can be read off its module: the
input channels of the first convolution it runs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnviz.core.models.preprocessing import Preprocessing


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


def input_channels(module: nn.Module) -> int | None:
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
