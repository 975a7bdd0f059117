"""Where the model breaks: adversarial examples (FGSM and PGD) and where in the network the
clean and the adversarial input part ways.

* **FGSM** (Goodfellow et al. 2015): one step of size ε along the sign of the input gradient.
* **PGD** (Madry et al. 2018): ``steps`` signed-gradient steps of ``step_size`` (default
  ``2.5 ε / steps``), each projected back into the ε-ball around the clean image and into the
  valid pixel range; an optional random start inside the ball.

Both are untargeted (raise the loss of the true class: the clean prediction unless given) or
targeted (lower the loss of a chosen class). ε and the step size are in **pixel units**
(0-255): the attack works on the image in ``[0, 1]`` *before* the model's mean/std, so
ε = 8 means that no pixel of any channel moves by more than 8 grey levels, whatever the
normalization. The default ε is 16 grey levels (6 %): enough for PGD to fool the demo digits
model on nearly every held-out digit (8, the usual ImageNet figure, fools it on about half).

:func:`layer_divergence` measures, for every layer the inspector shows, the relative L2 change
``||a_adv - a_clean|| / ||a_clean||`` of its output (capture hooks); where it jumps is where
"panda" becomes "gibbon".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cnnviz.core.errors import CnnvizError
from cnnviz.core.taskstate import TaskState

__all__ = ["AdversarialError", "AttackRequest", "AttackResult", "attack_batch", "layer_divergence", "run"]

METHODS = ("fgsm", "pgd")
DEFAULT_EPS = 16.0


class AdversarialError(CnnvizError):
    """An attack that cannot run (bad ε, a class out of range...)."""


@dataclass(frozen=True)
class AttackRequest:
    """An attack on one image. ``eps`` and ``step_size`` in pixel units (0-255)."""

    method: str = "pgd"
    eps: float = DEFAULT_EPS
    target: int | None = None
    true_class: int | None = None
    steps: int = 10
    step_size: float | None = None
    random_start: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise AdversarialError(f"unknown attack {self.method!r}", f"use one of {', '.join(METHODS)}")
        if not (math.isfinite(float(self.eps)) and 0 < float(self.eps) <= 255):
            raise AdversarialError(f"ε must be a number of grey levels in (0, 255], got {self.eps}",
                                   "use e.g. --eps 16 (16 of 255 grey levels)")
        if int(self.steps) < 1:
            raise AdversarialError(f"steps must be at least 1, got {self.steps}", "use e.g. 10")
        if self.step_size is not None and not (math.isfinite(float(self.step_size)) and float(self.step_size) > 0):
            raise AdversarialError(f"the step size must be positive, got {self.step_size}", "leave it out for 2.5 ε / steps")

    @property
    def alpha(self) -> float:
        """The PGD step in pixel units."""
        return float(self.step_size) if self.step_size is not None else 2.5 * float(self.eps) / int(self.steps)


@dataclass
class AttackResult:
    """One attacked image.

    ``clean``, ``adversarial``: ``(H, W, C)`` float32 in [0, 1] (RGB or gray, as the model
    sees it after resize/crop); ``perturbation``: their difference in pixel units (-ε..ε);
    ``amplified``: the perturbation made visible (0.5 + δ / 2ε, so ±ε spans black to white);
    ``clean_top``/``adversarial_top``: ``[(class, name, probability), ...]``; ``divergence``:
    ``[(layer, relative L2 or None when the clean output is all zeros), ...]`` in execution
    order; ``linf``: the largest pixel change in pixel units.
    """

    request: AttackRequest
    clean: np.ndarray
    adversarial: np.ndarray
    perturbation: np.ndarray
    amplified: np.ndarray
    clean_class: int
    adversarial_class: int
    clean_top: list[tuple[int, str, float]]
    adversarial_top: list[tuple[int, str, float]]
    divergence: list[tuple[str, float | None]] = field(default_factory=list)
    linf: float = 0.0

    @property
    def flipped(self) -> bool:
        if self.request.target is not None:
            return self.adversarial_class == int(self.request.target)
        return self.adversarial_class != self.clean_class


class _Space:
    """Between the [0, 1] image the attack perturbs and the model's normalized input."""

    def __init__(self, model, preprocessing=None):
        from cnnviz.core.capture import model_device_dtype
        from cnnviz.core.explain import TapRunner
        from cnnviz.core.featureviz import input_spec

        self.runner = TapRunner(model)
        self.channels, self.color, mean, std = input_spec(model, preprocessing)
        self.device, dtype = model_device_dtype(self.runner.module)
        self.dtype = dtype or torch.float32
        self.mean, self.std = mean.to(self.device, self.dtype), std.to(self.device, self.dtype)

    def to_input(self, x01: torch.Tensor) -> torch.Tensor:
        return (x01.to(self.dtype) - self.mean) / self.std

    def from_input(self, x: torch.Tensor) -> torch.Tensor:
        return (x.to(self.device, self.dtype) * self.std + self.mean).clamp(0, 1)

    def logits(self, x01: torch.Tensor) -> torch.Tensor:
        from cnnviz.core.explain import output_logits

        return output_logits(self.runner.module(self.to_input(x01))).float()


def attack_batch(model: Any, x01: torch.Tensor, request: AttackRequest, labels: torch.Tensor | None = None, *,
                 preprocessing=None, state: TaskState | None = None) -> torch.Tensor:
    """Attack a batch of images ``x01`` ``(N, C, H, W)`` in [0, 1] (model channel order).

    ``labels``: the true classes for an untargeted attack (default: the clean predictions).
    Returns the adversarial images in [0, 1], each within ε (pixel units) of its clean image.
    """
    from cnnviz.core.explain import EvalMode

    space = _Space(model, preprocessing)
    x01 = x01.to(space.device, space.dtype)
    eps = float(request.eps) / 255.0
    alpha = request.alpha / 255.0
    state = state or TaskState()
    with EvalMode(space.runner.module):
        with torch.no_grad():
            n_classes = space.logits(x01[:1]).shape[-1]
            if labels is None:
                labels = space.logits(x01).argmax(1) if request.true_class is None else torch.full(
                    (x01.shape[0],), int(request.true_class))
        for cls, what in ((request.target, "target class"), (request.true_class, "true class")):
            if cls is not None and not 0 <= int(cls) < n_classes:
                raise AdversarialError(f"{what} {cls} does not exist: the model has {n_classes} classes",
                                       f"choose a class from 0 to {n_classes - 1}")
        targeted = request.target is not None
        goal = (torch.full((x01.shape[0],), int(request.target)) if targeted else labels).to(space.device)
        adv = x01.clone()
        if request.method == "pgd" and request.random_start:
            gen = torch.Generator().manual_seed(int(request.seed))
            noise = (torch.rand(x01.shape, generator=gen) * 2 - 1) * eps
            adv = (x01 + noise.to(adv)).clamp(0, 1)
        steps = 1 if request.method == "fgsm" else int(request.steps)
        step = eps if request.method == "fgsm" else alpha
        for i in range(steps):
            state.check()
            adv = adv.detach().requires_grad_(True)
            loss = F.cross_entropy(space.logits(adv), goal, reduction="sum")
            (grad,) = torch.autograd.grad(loss, adv)
            with torch.no_grad():
                direction = -grad.sign() if targeted else grad.sign()
                adv = adv + step * direction
                adv = torch.min(torch.max(adv, x01 - eps), x01 + eps).clamp(0, 1)
            state.set_progress((i + 1) / steps, f"{request.method.upper()} step {i + 1}/{steps}, loss {float(loss.detach()):.4g}")
    return adv.detach()


def layer_divergence(model: Any, clean_input: torch.Tensor, adv_input: torch.Tensor) -> list[tuple[str, float | None]]:
    """Relative L2 change of every captured layer between two model inputs (``(1, C, H, W)``,
    normalized as the model takes them): ``[(layer, ||adv - clean|| / ||clean||), ...]``;
    ``None`` where the clean output is all zeros."""
    from cnnviz.core.capture import capture

    res = capture(model, torch.cat([clean_input, adv_input.to(clean_input)]))
    out = []
    for act in res.layers:
        t = act.tensor.double()
        c, a = t[0], t[1]
        norm = float(torch.linalg.vector_norm(c))
        diff = float(torch.linalg.vector_norm(a - c))
        out.append((act.name, diff / norm if norm > 0 and math.isfinite(norm) else None))
    return out


def run(model: Any, x: torch.Tensor, request: AttackRequest, state: TaskState | None = None, *,
        preprocessing=None, labels: list[str] | None = None) -> AttackResult:
    """Attack one preprocessed input ``x`` (``(1, C, H, W)`` as the model takes it; for example
    ``model.preprocessing.apply(pixels)``) and measure the per-layer divergence."""
    from cnnviz.core.capture import topk

    space = _Space(model, preprocessing)
    x = x if x.dim() == 4 else x[None]
    clean01 = space.from_input(x[:1])
    adv01 = attack_batch(model, clean01, request, preprocessing=preprocessing, state=state)
    names = labels if labels is not None else getattr(model, "labels", None)
    from cnnviz.core.explain import EvalMode

    with EvalMode(space.runner.module), torch.no_grad():
        lc = space.logits(clean01)
        la = space.logits(adv01)
    div = layer_divergence(model, space.to_input(clean01), space.to_input(adv01))
    eps = float(request.eps)

    def hwc(t):
        t = t[0]
        if space.color == "bgr":
            t = t.flip(0)
        return t.permute(1, 2, 0).float().cpu().numpy()

    clean, adv = hwc(clean01), hwc(adv01)
    delta = (adv - clean) * 255.0
    return AttackResult(
        request=request, clean=clean, adversarial=adv, perturbation=delta.astype(np.float32),
        amplified=np.clip(0.5 + delta / (2 * eps), 0, 1).astype(np.float32),
        clean_class=int(lc[0].argmax()), adversarial_class=int(la[0].argmax()),
        clean_top=topk(lc, names, 5), adversarial_top=topk(la, names, 5), divergence=div,
        linf=float(np.max(np.abs(delta))) if delta.size else 0.0)
