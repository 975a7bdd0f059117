"""The playground pipeline on a torch device (CUDA/MPS) — same semantics as the CPU path.

Imported lazily by :func:`cnnviz.core.conv.run_pipeline` only when a GPU is chosen, so the
kernel playground starts without torch.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from .conv import (PipelineRequest, PipelineResult, check_padding_mode, conv_output_shape,
                   pool_output_shape)
from .errors import SpecError

_TORCH_MODE = {"reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def _weights(request: PipelineRequest, channels: int) -> torch.Tensor:
    ws = []
    mode = request.conv.channels
    for k in request.kernels:
        if mode == "full":
            w = k.expanded(channels).effective()
        else:
            w = k.effective()[None]
        if request.conv.flip:
            w = w[..., ::-1, ::-1]
        ws.append(np.ascontiguousarray(w))
    return torch.from_numpy(np.stack(ws))  # (N, C|1, kH, kW)


def torch_conv(x: torch.Tensor, request: PipelineRequest) -> torch.Tensor:
    """x: (1, C, H, W) on the device. Returns (N, H', W') or (N, 3, H', W')."""
    spec = request.conv
    kh, kw = request.kernels[0].size
    t, b, l, r = spec.pads((kh, kw))
    check_padding_mode(tuple(x.shape[-2:]), (t, b, l, r), spec.padding_mode)
    if any((t, b, l, r)):
        mode = _TORCH_MODE.get(spec.padding_mode, "constant")
        x = F.pad(x, (l, r, t, b), mode=mode)
    w = _weights(request, x.shape[1]).to(x.device, x.dtype)
    bias = torch.tensor([spec.bias + k.offset for k in request.kernels], device=x.device, dtype=x.dtype)
    if spec.channels == "each":
        # the kernel on each channel separately: fold channels into the batch
        xc = x.transpose(0, 1)  # (3, 1, H, W)
        out = F.conv2d(xc, w, bias, stride=spec.stride, dilation=spec.dilation)  # (3, N, H', W')
        return out.transpose(0, 1).contiguous()  # (N, 3, H', W')
    return F.conv2d(x, w, bias, stride=spec.stride, dilation=spec.dilation)[0]


def torch_activate(x: torch.Tensor, request: PipelineRequest) -> torch.Tensor:
    k = request.activation.kind
    if k == "none":
        return x
    if k == "relu":
        return F.relu(x)
    if k == "leaky_relu":
        return F.leaky_relu(x, request.activation.slope)
    if k == "abs":
        return x.abs()
    if k == "sigmoid":
        return torch.sigmoid(x)
    if k == "tanh":
        return torch.tanh(x)
    raise SpecError(f"activation '{k}' is not known", "choose another")


def torch_pool(x: torch.Tensor, request: PipelineRequest) -> torch.Tensor:
    p = request.pool
    assert p is not None
    if p.kind == "max":
        return F.max_pool2d(x, p.size, p.stride, p.padding, ceil_mode=p.ceil_mode)
    return F.avg_pool2d(x, p.size, p.stride, p.padding, ceil_mode=p.ceil_mode, count_include_pad=p.count_include_pad)


def run_pipeline_torch(x_np: np.ndarray, request: PipelineRequest, device: str, t0: float) -> PipelineResult:
    dev = torch.device(device)
    t1 = time.perf_counter()
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(x_np))
        x = (x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]).to(dev, non_blocking=True)
        conv = torch_conv(x, request)
        act = torch_activate(conv, request)
        pooled = torch_pool(act, request) if request.pool is not None else None
        mag = None
        if request.magnitude_pair is not None:
            a, b = request.magnitude_pair
            mag = torch.sqrt(conv[a] * conv[a] + conv[b] * conv[b])
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t2 = time.perf_counter()
        to_np = lambda t: None if t is None else t.float().cpu().numpy()  # noqa: E731
        conv_np, act_np, pool_np, mag_np = to_np(conv), to_np(act), to_np(pooled), to_np(mag)
    shape = conv_output_shape(x_np.shape[:2], request.kernels[0].size, request.conv)
    pshape = pool_output_shape(shape.out_hw, request.pool) if request.pool is not None else None
    return PipelineResult(
        request.request_id, x_np, conv_np, request.activation, pool_np, mag_np, shape, pshape, device,
        {"prepare": (t1 - t0) * 1e3, "compute": (t2 - t1) * 1e3, "total": (time.perf_counter() - t0) * 1e3},
        activation=act_np)
