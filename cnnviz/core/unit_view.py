"""The unit's view of the input (the Deep Visualization Toolbox's backward pass).

:func:`guided_backprop` — guided backpropagation (Springenberg et al. 2015) of one unit onto
the input: the gradient of the unit with respect to the input pixels, where every ReLU on the
way back passes only positive gradient through units that were on. It shows which input
pixels, pushed brighter, would excite the unit — sharper than the plain gradient (which
:func:`cnnviz.core.explain.effective_rf` shows as a magnitude) and local, where Grad-CAM
(:func:`cnnviz.core.explain.grad_cam`) answers "where" at the resolution of a layer.

Guided backpropagation is known to look much the same whatever the unit above it (Adebayo et
al. 2018, "Sanity checks for saliency maps"): it shows the image's edges that the ReLU path
lets through. It is shown beside Grad-CAM, which does pass those checks, for that reason.

Which ReLUs are guided: every ``nn.ReLU`` module (in place or not) of an eager or
torch.export model. ReLUs called as functions (``F.relu`` inside a ``forward``) keep their
plain gradient. TorchScript models cannot be hooked: :class:`UnitViewError`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cnnviz.core.errors import CnnvizError

__all__ = ["UnitViewError", "guided_backprop", "gradient_to_rgb"]


class UnitViewError(CnnvizError):
    """A unit view that cannot be computed."""


class _GuidedGrad(torch.autograd.Function):
    """Identity forward; backward keeps only the positive gradient (the ReLU's own backward,
    before it, has already zeroed the units that were off)."""

    @staticmethod
    def forward(ctx, y):
        return y.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp(min=0)


def guided_backprop(model: Any, x: torch.Tensor, layer: str, channel: int,
                    unit: tuple[int, int] | None = None) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Guided backpropagation of one unit onto the input.

    Parameters
    ----------
    model:
        A ``LoadedModel`` or ``nn.Module``.
    x:
        The input, ``(1, C, H, W)`` or ``(C, H, W)`` (preprocessed, as the model takes it).
    layer, channel:
        The unit's layer and channel.
    unit:
        ``(y, x)`` on the layer's map; ``None``: the channel's strongest unit for this input.
        Ignored for a ``(N, C)`` layer.

    Returns
    -------
    (gradient, unit):
        ``gradient`` float32 ``(H, W, C)`` of the unit with respect to the input (signed), and
        the unit used (``None`` for a layer without a map).
    """
    from cnnviz.core.explain import EvalMode, TapRunner

    runner = TapRunner(model)
    if runner.script:
        raise UnitViewError("guided backpropagation needs an eager model; TorchScript cannot be hooked",
                            "load the model from its Python class or a torch.export file")
    handles = []

    def guide(_mod, _inp, out):
        return _GuidedGrad.apply(out) if isinstance(out, torch.Tensor) and out.requires_grad else None

    for m in runner.module.modules():
        if isinstance(m, torch.nn.ReLU):
            handles.append(m.register_forward_hook(guide))
    try:
        with EvalMode(runner.module):
            xg = runner.prepare(x)
            _, act = runner.forward_tap(xg, layer, stop=True)
            a = act[0]
            if a.dim() not in (1, 3):
                raise UnitViewError(f"layer {layer!r} has output shape {tuple(a.shape)}, neither maps nor a vector",
                                    "choose a convolutional or linear layer")
            if not 0 <= int(channel) < a.shape[0]:
                raise UnitViewError(f"layer {layer!r} has {a.shape[0]} channels; there is no channel {channel}",
                                    f"choose a channel from 0 to {a.shape[0] - 1}")
            used = None
            if a.dim() == 3:
                maps = a[int(channel)]
                if unit is None:
                    pos = int(torch.argmax(maps.detach().flatten()))
                    unit = (pos // maps.shape[1], pos % maps.shape[1])
                y, xx = int(unit[0]), int(unit[1])
                if not (0 <= y < maps.shape[0] and 0 <= xx < maps.shape[1]):
                    raise UnitViewError(f"unit ({y}, {xx}) is outside layer {layer!r}'s "
                                        f"{maps.shape[0]}x{maps.shape[1]} map", "choose a unit inside the map")
                value, used = maps[y, xx], (y, xx)
            else:
                value = a[int(channel)]
            (grad,) = torch.autograd.grad(value, xg)
    finally:
        for h in handles:
            h.remove()
    return grad[0].detach().float().permute(1, 2, 0).cpu().numpy(), used


def gradient_to_rgb(grad: np.ndarray) -> np.ndarray:
    """A signed gradient ``(H, W, C)`` as a display image in [0, 1]: gray 0.5 for zero, scaled
    so the largest magnitude reaches 0 or 1 (DeepVis's rendering); one channel stays gray."""
    g = np.asarray(grad, dtype=np.float32)
    peak = float(np.max(np.abs(g))) if g.size else 0.0
    if not np.isfinite(peak) or peak == 0:
        return np.full(g.shape, 0.5, np.float32)
    return np.clip(0.5 + 0.5 * g / peak, 0.0, 1.0).astype(np.float32)
