"""The image side of feature visualization: the parameterization (Fourier basis scaled by
1/frequency, decorrelated colour), the random jitter/scale/rotation every step sees, the
diversity term, and Lucid's redirected ReLU for the first steps. Split from
:mod:`cnnviz.core.featureviz`, which re-exports these names."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

#: Lucid's colour decorrelation: the square root of ImageNet's colour covariance (from its SVD).
COLOR_CORRELATION_SVD_SQRT = np.asarray(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32)
_COLOR = COLOR_CORRELATION_SVD_SQRT / np.max(np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0))


# --------------------------------------------------------------------------- parameterization


class ImageParam:
    """A batch of images as trainable parameters (Fourier or pixels, decorrelated colour or not).

    ``images()`` gives ``(N, C, H, W)`` in ``[0, 1]`` (C = 3 RGB, or 1 gray).
    """

    def __init__(self, n: int, channels: int, hw: tuple[int, int], *, fourier: bool, decorrelate: bool,
                 generator: torch.Generator, device: torch.device, sd: float = 0.01, decay_power: float = 1.0):
        h, w = hw
        self.n, self.channels, self.hw = n, channels, hw
        self.fourier = fourier
        self.decorrelate = decorrelate and channels == 3
        if fourier:
            fy = np.fft.fftfreq(h)[:, None]
            fx = np.fft.rfftfreq(w)[None, :]
            freqs = np.sqrt(fx * fx + fy * fy)
            scale = 1.0 / np.maximum(freqs, 1.0 / max(h, w)) ** decay_power
            self.scale = torch.tensor(scale, dtype=torch.float32, device=device)[None, None, :, :, None]
            init = torch.randn((n, channels, *freqs.shape, 2), generator=generator) * sd
        else:
            init = torch.randn((n, channels, h, w), generator=generator) * sd
        self.param = init.to(device).requires_grad_(True)
        self.color = torch.tensor(_COLOR, device=device)

    def parameters(self) -> list[torch.Tensor]:
        return [self.param]

    def images(self) -> torch.Tensor:
        h, w = self.hw
        if self.fourier:
            spectrum = torch.view_as_complex((self.scale * self.param).contiguous())
            t = torch.fft.irfftn(spectrum, s=(h, w), norm="ortho") / 4.0
        else:
            t = self.param
        if self.decorrelate:
            t = torch.einsum("nchw,dc->ndhw", t, self.color)
        return torch.sigmoid(t)


def _random_affine(n: int, hw: tuple[int, int], jitter: int, generator: torch.Generator,
                   device: torch.device) -> torch.Tensor:
    """``(n, 2, 3)`` affine matrices: a scale in [0.9, 1.1], a rotation in [-10, 10] degrees and
    a shift of up to ``jitter`` pixels (Lucid's standard transformations), per image."""
    h, w = hw
    scales = torch.tensor([1 + (i - 5) / 50 for i in range(11)])
    s = scales[torch.randint(0, 11, (n,), generator=generator)]
    angle = torch.randint(-10, 11, (n,), generator=generator).float() * math.pi / 180
    shift = torch.randint(-jitter, jitter + 1, (n, 2), generator=generator).float()
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * h / w
    theta[:, 1, 0], theta[:, 1, 1] = sin * w / h, cos
    theta[:, 0, 2] = 2 * shift[:, 1] / w
    theta[:, 1, 2] = 2 * shift[:, 0] / h
    return theta.to(device)


def _sync_interval(device: torch.device, every: int) -> int:
    """How many optimization steps run between read-backs of the per-step checks and values:
    1 on the CPU (nothing to overlap), up to 8 on an accelerator (no stall per step)."""
    return 1 if device.type == "cpu" else max(1, min(every, 8))


def _transform(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample ``images`` through ``theta``; what comes in from outside the image is gray 0.5
    (Lucid pads with 0.5 before it jitters)."""
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images - 0.5, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + 0.5


def _diversity(act: torch.Tensor, groups: int) -> torch.Tensor:
    """Lucid's diversity: the mean cosine similarity of the Gram matrices of images of the same
    target (``act`` is ``(groups * b, C, ...)``, consecutive images share a target)."""
    n = act.shape[0]
    b = n // groups
    if b < 2:
        return act.new_zeros(())
    flat = act.reshape(n, act.shape[1], -1)
    gram = torch.bmm(flat, flat.transpose(1, 2)).reshape(groups, b, -1)
    gram = F.normalize(gram, dim=-1)
    sim = torch.bmm(gram, gram.transpose(1, 2))
    off = sim.sum(dim=(1, 2)) - sim.diagonal(dim1=1, dim2=2).sum(-1)
    return off.sum() / (groups * b * (b - 1))


# --------------------------------------------------------------------------- redirected ReLU


class _RedirectedReLUGrad(torch.autograd.Function):
    """Lucid's redirected ReLU gradient: ``y = relu(x)`` forward; backward, an image whose
    gradient through this ReLU is zero everywhere (every unit off: the start from a gray image
    often is) gets the gradient anyway where it pushes ``x`` up, so a channel that starts dead
    can come alive. Used only for the first steps."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x)
        return y.clone()

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        relu_grad = torch.where(x < 0, torch.zeros_like(grad), grad)
        redirected = torch.where((x < 0) & (grad > 0), torch.zeros_like(grad), grad)
        alive = relu_grad.reshape(relu_grad.shape[0], -1).norm(dim=1) > 0
        alive = alive.view(-1, *([1] * (grad.dim() - 1)))
        return torch.where(alive, relu_grad, redirected), None


class _RedirectedReLUs:
    """While entered, every ``nn.ReLU`` module of an eager model uses the redirected gradient
    (an in-place ReLU works on a copy of its input, so the pre-activation stays readable)."""

    def __init__(self, module: torch.nn.Module, active: bool):
        self.module, self.active, self.handles = module, active, []

    def __enter__(self):
        if not self.active or isinstance(self.module, torch.jit.ScriptModule):
            return self
        saved: dict[int, torch.Tensor] = {}

        def pre(mod, args):
            if args and isinstance(args[0], torch.Tensor) and args[0].requires_grad:
                saved[id(mod)] = args[0]
                return (args[0].clone(), *args[1:])
            return None

        def post(mod, _args, out):
            x = saved.pop(id(mod), None)
            if x is None or not isinstance(out, torch.Tensor) or out.shape != x.shape:
                return None
            return _RedirectedReLUGrad.apply(x, out)

        for m in self.module.modules():
            if isinstance(m, torch.nn.ReLU):
                self.handles.append(m.register_forward_pre_hook(pre))
                self.handles.append(m.register_forward_hook(post))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        self.handles = []
