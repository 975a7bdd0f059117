"""Convolution, activation and pooling with PyTorch's exact semantics.

Everything here is cross-correlation exactly as ``torch.nn.functional.conv2d``,
``max_pool2d`` and ``avg_pool2d`` compute it (``ConvSpec.flip=True`` turns it into true
convolution by rotating the kernel 180°). Results match PyTorch to float32 precision; the
tests check this against torch with hypothesis.

The CPU path uses OpenCV (``cv2.filter2D`` and ``cv2.copyMakeBorder``) and numpy strided
views, never Python loops over pixels. On a CUDA device the same request runs through torch.

Data flow: ``image -> prepare_input -> convolve -> activate -> pool``; :func:`run_pipeline`
runs all of it for a frozen :class:`PipelineRequest` and returns a :class:`PipelineResult`.
"""

from __future__ import annotations

import atexit
import itertools
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np

# the specs, shape formulas, activation and pooling live in their own modules; every name is
# re-exported here, so ``from cnnviz.core.conv import ...`` keeps working
from .conv_ops import MONOTONE, avg_divisor, _max_pool_2x2, activate, cv_rows, pool2d  # noqa: F401
from .conv_specs import (ACTIVATIONS, CHANNEL_MODES, GRAY_WEIGHTS, MAX_PADDED_PIXELS, PADDING_MODES,  # noqa: F401
                         POOL_KINDS, ActivationSpec, AxisShape, ConvSpec, PoolSpec, ShapeInfo, _pair, conv_axis,
                         conv_output_shape, pool_axis, pool_output_shape)
from .errors import SpecError
from .kernels import Kernel

_BORDER = {
    "zeros": cv2.BORDER_CONSTANT,
    "reflect": cv2.BORDER_REFLECT_101,  # torch 'reflect' does not repeat the edge pixel
    "replicate": cv2.BORDER_REPLICATE,
    "circular": cv2.BORDER_WRAP,
}


# ---------------------------------------------------------------------------------
# Input preparation
# ---------------------------------------------------------------------------------
def to_float_image(image: np.ndarray) -> np.ndarray:
    """uint8/uint16/float image (H, W[, 3|4]) → float32 in [0, 1], RGB or gray."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[..., :3]
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3):
        raise SpecError(f"image must be H×W or H×W×3, got shape {a.shape}", "load a gray or RGB image")
    if a.dtype == np.uint8:
        return a.astype(np.float32) * np.float32(1 / 255)
    if a.dtype == np.uint16:
        return a.astype(np.float32) * np.float32(1 / 65535)
    return np.ascontiguousarray(a, dtype=np.float32)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of a float32 RGB image: 0.299 R + 0.587 G + 0.114 B."""
    if rgb.ndim == 2:
        return rgb
    m = np.array([GRAY_WEIGHTS], dtype=np.float32)
    g = cv2.transform(np.ascontiguousarray(rgb, dtype=np.float32), m)
    return g[..., 0] if g.ndim == 3 else g


def prepare_input(image: np.ndarray, channels: str) -> np.ndarray:
    """The array the kernel slides over: (H, W) for ``gray``, (H, W, 3) for ``each``/``full``."""
    x = to_float_image(image)
    if channels == "gray":
        return luminance(x) if x.ndim == 3 else x
    if x.ndim == 2:
        return np.repeat(x[:, :, None], 3, axis=2)
    return x


# ---------------------------------------------------------------------------------
# Convolution (CPU)
# ---------------------------------------------------------------------------------
def check_padding_mode(in_hw, pads, mode: str) -> None:
    t, b, l, r = pads
    h, w = in_hw
    if mode == "reflect" and (max(t, b) >= h or max(l, r) >= w):
        raise SpecError(f"reflect padding of {max(t, b, l, r)} needs an input larger than the padding (input is {h}×{w})",
                        "use less padding or another padding mode")
    if mode == "circular" and (max(t, b) > h or max(l, r) > w):
        raise SpecError(f"circular padding of {max(t, b, l, r)} is larger than the input ({h}×{w})",
                        "use less padding or another padding mode")


def pad_input(x: np.ndarray, pads: tuple[int, int, int, int], mode: str) -> np.ndarray:
    """Pad (H, W[, C]) exactly like ``F.pad`` with the PyTorch mode (zeros → constant 0)."""
    t, b, l, r = pads
    if not any(pads):
        return x
    check_padding_mode(x.shape[:2], pads, mode)
    return cv2.copyMakeBorder(x, t, b, l, r, _BORDER[mode], value=0)


def _correlate_valid(xp: np.ndarray, w: np.ndarray, stride, dilation, out_hw, out: np.ndarray | None = None) -> np.ndarray:
    """Valid cross-correlation of a padded (H, W[, C]) image with a 2-D kernel.

    Dilation 1: one ``cv2.filter2D`` pass (direct, not DFT, for float32 kernels below
    130 taps, which covers 11×11) and a strided crop. Dilation > 1: a sum over kernel
    taps of strided views, computing only the output pixels that exist.
    """
    oh, ow = out_hw
    sy, sx = stride
    dy, dx = dilation
    kh, kw = w.shape
    if (dy, dx) == (1, 1):
        full = cv2.filter2D(xp, cv2.CV_32F, w, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
        res = full[: (oh - 1) * sy + 1: sy, : (ow - 1) * sx + 1: sx]
        if out is not None:
            out[...] = res
            return out
        return res if (sy, sx) == (1, 1) else np.ascontiguousarray(res)
    acc = np.zeros((oh, ow) + xp.shape[2:], np.float32) if out is None else out
    if out is not None:
        acc.fill(0)
    tmp = np.empty_like(acc)
    for i in range(kh):
        for j in range(kw):
            wij = w[i, j]
            if wij == 0:
                continue
            y0, x0 = i * dy, j * dx
            view = xp[y0: y0 + (oh - 1) * sy + 1: sy, x0: x0 + (ow - 1) * sx + 1: sx]
            np.multiply(view, wij, out=tmp)
            acc += tmp
    return acc


def convolve(x: np.ndarray, kernels: Sequence[Kernel], spec: ConvSpec) -> np.ndarray:
    """Convolve a prepared input with a bank of kernels.

    Parameters
    ----------
    x:
        From :func:`prepare_input`: (H, W) for ``gray``, (H, W, 3) for ``each``/``full``.
    kernels:
        N kernels of the same size. In ``full`` mode a 2-D kernel is applied to every
        channel and divided by C (a (C, kH, kW) kernel is used as is).

    Returns
    -------
    float32 array (N, H', W') for ``gray``/``full``, (N, 3, H', W') for ``each`` (a view of a
    channel-last buffer; use ``np.ascontiguousarray`` if you need contiguous memory).
    """
    out = convolve_channels_last(x, kernels, spec)
    return np.moveaxis(out, -1, 1) if out.ndim == 4 else out


def convolve_channels_last(x: np.ndarray, kernels: Sequence[Kernel], spec: ConvSpec) -> np.ndarray:
    """Like :func:`convolve` but ``each`` mode gives (N, H', W', 3): no transpose pass.

    With stride 1 and dilation 1, ``cv2.filter2D`` writes straight into a full-size buffer
    and the result is a view of its valid part (no copy).
    """
    return _convolve_cl(x, kernels, spec)[0]


def _fusable(spec: ConvSpec, pool: "PoolSpec | None", act: "ActivationSpec") -> bool:
    """Can conv → activation → pool run chunk by chunk (:func:`_banded`)?"""
    return (spec.stride == (1, 1) and spec.dilation == (1, 1) and spec.channels in ("gray", "each")
            and pool is not None and pool.kind == "max" and pool.size == (2, 2) and pool.stride == (2, 2)
            and pool.padding == (0, 0) and act.kind in MONOTONE)


def _convolve_cl(x: np.ndarray, kernels: Sequence[Kernel], spec: ConvSpec, pool: "PoolSpec | None" = None,
                 act: "ActivationSpec | None" = None) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`convolve_channels_last`, and with a fusable ``pool``/``act`` also the pooled maps."""
    if not kernels:
        raise SpecError("no kernel to apply", "add a kernel")
    sizes = {k.size for k in kernels}
    if len(sizes) > 1:
        raise SpecError(f"kernels in one bank must share a size, got {sorted(sizes)}",
                        "resize the kernels to one size or run them separately")
    kh, kw = kernels[0].size
    mode = spec.channels
    if mode == "gray" and x.ndim != 2:
        raise SpecError("gray mode needs a one-channel input", "use prepare_input(image, 'gray')")
    if mode in ("each", "full") and x.ndim != 3:
        raise SpecError(f"{mode} mode needs a 3-channel input", f"use prepare_input(image, '{mode}')")
    for k in kernels:
        if k.channels is not None and mode != "full":
            raise SpecError(f"kernel '{k.name}' has {k.channels} channels; only 'full' mode uses channel kernels",
                            "switch to full mode or use a 2-D kernel")
    pads = spec.pads((kh, kw))
    shape = conv_output_shape(x.shape[:2], (kh, kw), spec)
    oh, ow = shape.out_hw
    xp = pad_input(x, pads, spec.padding_mode)
    n = len(kernels)
    simple = spec.stride == (1, 1) and spec.dilation == (1, 1)
    if simple and mode in ("gray", "each"):
        # one filter2D per kernel (all three channels at once in each mode), in row chunks
        # spread over the cores, written into a full-size stack: the result is a view
        weights = [_oriented(k.effective(), spec.flip) for k in kernels]
        adds = [spec.bias + k.offset for k in kernels]
        pool_hw = None
        if pool is not None and act is not None and _fusable(spec, pool, act):
            pool_hw = pool_output_shape((oh, ow), pool).out_hw
            if 2 * pool_hw[0] > oh or 2 * pool_hw[1] > ow or min(pool_hw) < 1:  # ceil mode's partial windows
                pool_hw = None
        return _banded(xp, weights, adds, oh, ow, pool_hw, act)
    if mode == "each":
        out = np.empty((n, oh, ow, 3), np.float32)
        for idx, k in enumerate(kernels):
            out[idx] = _correlate_valid(xp, _oriented(k.effective(), spec.flip), spec.stride, spec.dilation, (oh, ow))
    elif mode == "gray":
        out = np.empty((n, oh, ow), np.float32)
        for idx, k in enumerate(kernels):
            out[idx] = _correlate_valid(xp, _oriented(k.effective(), spec.flip), spec.stride, spec.dilation, (oh, ow))
    else:  # full: Σ over channels of each channel's correlation
        out = np.empty((n, oh, ow), np.float32)
        planes = [np.ascontiguousarray(xp[:, :, c]) for c in range(xp.shape[2])]
        for idx, k in enumerate(kernels):
            w3 = k.effective() if k.channels is not None else k.expanded(xp.shape[2]).effective()
            w3 = _oriented(w3, spec.flip)
            acc = out[idx]
            _correlate_valid(planes[0], np.ascontiguousarray(w3[0]), spec.stride, spec.dilation, (oh, ow), out=acc)
            for c in range(1, len(planes)):
                acc += _correlate_valid(planes[c], np.ascontiguousarray(w3[c]), spec.stride, spec.dilation, (oh, ow))
    for idx, k in enumerate(kernels):
        add = spec.bias + k.offset
        if add:
            out[idx] += np.float32(add)
    return out, None


# ---------------------------------------------------------------------------------
# Row chunks over the cores: conv → max-pool → activation, one chunk at a time
# ---------------------------------------------------------------------------------
_MIN_ROWS_PER_CHUNK = 96          # below this a second core costs more than it saves
_TAIL_ROWS = 8                    # a chunk's last rows, computed apart (see _banded)
_CHUNKS_PER_WORKER = 3            # at most; fewer for small maps (each chunk costs a few calls)
_CHUNK_BYTES = 4 << 20
_band_lock = threading.Lock()
_band_pool: ThreadPoolExecutor | None = None


def _cores_from_env() -> int:
    """Threads per frame: ``CNNVIZ_THREADS`` (1 keeps every frame on one core, e.g. on a
    shared lab machine), else the machine's cores, at most 8."""
    raw = os.environ.get("CNNVIZ_THREADS", "").strip()
    if raw.isdigit() and int(raw) >= 1:
        return min(64, int(raw))
    return max(1, min(8, os.cpu_count() or 1))


_CORES = _cores_from_env()


def band_workers() -> int:
    """How many threads (the caller's included) share a frame (see :func:`_cores_from_env`)."""
    return _CORES


def _pool_executor() -> ThreadPoolExecutor:
    global _band_pool
    with _band_lock:
        if _band_pool is None:
            _band_pool = ThreadPoolExecutor(max_workers=max(1, band_workers() - 1),
                                            thread_name_prefix="cnnviz-band")
        return _band_pool


def shutdown_band_pool(timeout: float | None = None) -> bool:
    """Stop the band threads (the window calls this on close; the next frame restarts them).

    Waits up to ``timeout`` seconds (forever with None) for them to end; True when they did.
    A frame still being computed finishes its chunks on its own thread.
    """
    global _band_pool
    with _band_lock:
        pool, _band_pool = _band_pool, None
    if pool is None:
        return True
    pool.shutdown(wait=False)
    deadline = None if timeout is None else time.monotonic() + timeout
    for t in list(getattr(pool, "_threads", ())):
        t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
    return not any(t.is_alive() for t in getattr(pool, "_threads", ()))


atexit.register(shutdown_band_pool)


def _chunks(rows: int, parts: int) -> list[tuple[int, int]]:
    """Split output rows [0, rows) into ``parts`` runs whose starts are even (2×2 pooling)."""
    edges = [0] + [2 * ((rows * i // parts) // 2) for i in range(1, parts)] + [rows]
    return [(a, b) for a, b in zip(edges, edges[1:]) if b > a]


def _banded(xp: np.ndarray, weights: list[np.ndarray], adds: list[float], oh: int, ow: int,
            pool_hw: tuple[int, int] | None = None,
            act: "ActivationSpec | None" = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Stride-1, dilation-1 correlation of a padded (H, W[, 3]) image with N kernels.

    Returns the (N, oh, ow[, 3]) valid view of a full-size stack and, with ``pool_hw``,
    the 2×2/2 max-pooled (N, ph, pw[, 3]) maps with ``act`` (monotone) applied after the
    pool — identical to pooling the activated map. The output rows are cut into a few
    chunks (even starts, for the pool); threads take chunks from a shared counter, and each
    chunk is convolved, pooled and activated in one go, while its rows are still warm in
    that core's cache (OpenCV releases the GIL). Finer bands were measured slower: the
    per-call Python cost outweighs the cache gain. Per row this is the same arithmetic as
    one whole-frame ``cv2.filter2D``, so the results are bit-identical.
    """
    n = len(weights)
    kh = weights[0].shape[0]
    stack = np.empty((n,) + xp.shape, np.float32)
    pooled = None if pool_hw is None else np.empty((n,) + tuple(pool_hw) + xp.shape[2:], np.float32)
    workers = max(1, min(band_workers(), oh // _MIN_ROWS_PER_CHUNK))
    # a few chunks per thread, taken from a shared counter: a thread that starts late or
    # is slowed down (a busy or virtual machine) takes fewer, so no one waits long
    out_bytes = n * stack[0].nbytes
    per_worker = max(1, min(_CHUNKS_PER_WORKER, round(out_bytes / _CHUNK_BYTES)))
    chunks = _chunks(oh, workers * per_worker if workers > 1 else 1)

    def conv_rows(idx: int, r0: int, r1: int, scratch: bool) -> None:
        src = xp[r0: r1 + kh - 1]
        if not scratch:
            cv2.filter2D(src, cv2.CV_32F, weights[idx], dst=stack[idx, r0: r1 + kh - 1], anchor=(0, 0),
                         delta=float(adds[idx]), borderType=cv2.BORDER_CONSTANT)
        else:
            tmp = cv2.filter2D(src, cv2.CV_32F, weights[idx], anchor=(0, 0), delta=float(adds[idx]),
                               borderType=cv2.BORDER_CONSTANT)
            stack[idx, r0:r1] = tmp[: r1 - r0]

    def run(a: int, b: int, last_chunk: bool) -> None:
        # filter2D's output rows past its last source row are wrong (the lower border). The
        # rows after a chunk belong to another thread, so a chunk's last few rows are
        # computed apart, in a scratch buffer, and copied in.
        tail = 0 if (last_chunk or kh == 1) else min(_TAIL_ROWS, b - a)
        for idx in range(n):
            if b - tail > a:
                conv_rows(idx, a, b - tail, False)
            if tail:
                conv_rows(idx, b - tail, b, True)
            if pooled is not None:
                p0, p1 = a // 2, min(b // 2, pooled.shape[1])
                if p1 > p0:
                    dst = pooled[idx, p0:p1]
                    _max_pool_2x2(stack[idx, 2 * p0: 2 * p1], p1 - p0, pooled.shape[2], out=dst)
                    if act is not None and act.kind != "none":
                        activate(dst, act, out=dst)

    if len(chunks) == 1:
        run(*chunks[0], True)
    else:
        taken = itertools.count()  # next() is atomic under the GIL

        def drain() -> None:
            for i in iter(taken.__next__, None):
                if i >= len(chunks):
                    return
                run(*chunks[i], i == len(chunks) - 1)

        ex = _pool_executor()
        futures = []
        try:
            for _ in range(workers - 1):
                try:
                    futures.append(ex.submit(drain))
                except RuntimeError:  # the pool was shut down under us (window closing): fewer hands
                    break
            drain()
        finally:
            for f in futures:
                f.result()
    return stack[:, :oh, :ow], pooled


def _oriented(w: np.ndarray, flip: bool) -> np.ndarray:
    return np.ascontiguousarray(w[..., ::-1, ::-1]) if flip else np.ascontiguousarray(w)


def gradient_magnitude(gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """√(gx² + gy²), float32 — the edge strength of a derivative pair."""
    if gx.shape != gy.shape:
        raise SpecError(f"the two maps differ in shape {gx.shape} vs {gy.shape}", "use two kernels of the same size")
    out = np.multiply(gx, gx, dtype=np.float32)
    out += gy * gy
    return np.sqrt(out, out=out)


# ---------------------------------------------------------------------------------
# The pipeline: one frozen request in, one result out
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PipelineRequest:
    """Everything one computation needs; the window makes a new one per change."""

    kernels: tuple[Kernel, ...]
    conv: ConvSpec = field(default_factory=ConvSpec)
    activation: ActivationSpec = field(default_factory=ActivationSpec)
    pool: PoolSpec | None = None
    magnitude_pair: tuple[int, int] | None = None  # indices of a derivative pair
    request_id: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernels", tuple(self.kernels))
        if self.magnitude_pair is not None:
            a, b = self.magnitude_pair
            if not (0 <= a < len(self.kernels) and 0 <= b < len(self.kernels)) or a == b:
                raise SpecError(f"gradient magnitude needs two different kernels of the bank, got {self.magnitude_pair}",
                                "pick two kernels (e.g. Sobel x and Sobel y)")


class PipelineResult:
    """What one request computed. ``conv``/``activation`` are (N, H', W') or (N, 3, H', W').

    The full-size activated map is made on first access (then cached): when pooling is max
    and the activation is monotone, the pooled map is computed as act(maxpool(conv)) —
    identical, because a monotone function commutes with max — so a caller that shows only
    the pooled map never pays for a full-size activation pass.
    """

    def __init__(self, request_id: int, input: np.ndarray, conv: np.ndarray, activation_spec: "ActivationSpec",
                 pool: np.ndarray | None, magnitude: np.ndarray | None, conv_shape: ShapeInfo,
                 pool_shape: ShapeInfo | None, device: str = "cpu", timings_ms: dict | None = None,
                 activation: np.ndarray | None = None, channels_last: bool = False):
        self.request_id = request_id
        self.input = input
        self._conv = conv                    # channel-last in each mode when channels_last
        self._channels_last = channels_last
        self.activation_spec = activation_spec
        self._activation = activation
        self.pool = pool                     # (N, H'', W'') or (N, 3, H'', W'')
        self.magnitude = magnitude
        self.conv_shape = conv_shape
        self.pool_shape = pool_shape
        self.device = device
        self.timings_ms = timings_ms or {}

    @property
    def conv(self) -> np.ndarray:
        return np.moveaxis(self._conv, -1, 1) if self._channels_last else self._conv

    @property
    def activation(self) -> np.ndarray:
        if self._activation is None:
            if self.activation_spec.kind == "none":
                self._activation = self._conv
            else:
                self._activation = activate(self._conv, self.activation_spec)
        return np.moveaxis(self._activation, -1, 1) if self._channels_last else self._activation

    def materialize(self) -> "PipelineResult":
        """Compute every lazy stage now (a worker calls this before handing the result over)."""
        self.activation  # noqa: B018
        return self

    @property
    def last(self) -> np.ndarray:
        """The last stage computed: pooled if pooling is on, else activated."""
        return self.pool if self.pool is not None else self.activation


#: Most output values (kernels × maps per kernel × output pixels) one pipeline run may
#: produce: 1 GiB as float32 for the convolution stage. A bank of 20,000 1×1 kernels on a
#: 512×512 image (5 billion values, 21 GB) is refused with a message instead of exhausting memory.
MAX_OUTPUT_VALUES = 1 << 28


def check_output_budget(in_hw: tuple[int, int], request: PipelineRequest, maps_per_kernel: int = 1) -> int:
    """The number of conv output values ``request`` would produce on an ``in_hw`` input, or a
    SpecError when it exceeds :data:`MAX_OUTPUT_VALUES` (checked before anything is allocated)."""
    if not request.kernels:
        return 0
    shape = conv_output_shape(tuple(in_hw), request.kernels[0].size, request.conv)
    oh, ow = shape.out_hw
    n = len(request.kernels) * maps_per_kernel
    values = n * oh * ow
    if values > MAX_OUTPUT_VALUES:
        raise SpecError(
            f"{len(request.kernels)} kernel(s) × {maps_per_kernel} map(s) × {oh}×{ow} output pixels = "
            f"{values / 1e6:,.0f} million values ({values * 4 / 2**30:.1f} GB as float32), more than the "
            f"{MAX_OUTPUT_VALUES * 4 / 2**30:.0f} GB budget",
            "use fewer kernels, a smaller image, a larger stride, or gray instead of each-channel mode")
    return values


def run_pipeline(image: np.ndarray, request: PipelineRequest, device: str = "cpu",
                 prepared: np.ndarray | None = None) -> PipelineResult:
    """Prepare the input, convolve, activate and pool — the whole playground computation.

    ``prepared`` skips input preparation when the caller already has it (a live source
    converting once per frame).
    """
    t0 = time.perf_counter()
    spec = request.conv
    x = prepared if prepared is not None else prepare_input(image, spec.channels)
    t1 = time.perf_counter()
    # budget before allocation: kernels × maps × output pixels
    check_output_budget(x.shape[:2], request, x.shape[2] if x.ndim == 3 and spec.channels == "each" else 1)
    if device != "cpu":
        if request.kernels:  # refuse impossible shapes before the GPU tries to allocate them
            conv_output_shape(x.shape[:2], request.kernels[0].size, spec)
        from . import conv_torch  # lazy: torch only when a GPU is asked for

        return conv_torch.run_pipeline_torch(x, request, device, t0)
    act_spec = request.activation
    conv_cl, pooled = _convolve_cl(x, request.kernels, spec, request.pool, act_spec)
    cl = conv_cl.ndim == 4
    t2 = time.perf_counter()
    act = None
    if pooled is not None:  # pooled and activated chunk by chunk with the convolution
        if cl:
            pooled = np.moveaxis(pooled, -1, 1)
    elif request.pool is not None:
        if request.pool.kind == "max" and act_spec.kind in MONOTONE:
            pooled = pool2d(conv_cl, request.pool, channels_last=cl)
            if act_spec.kind != "none":
                activate(pooled, act_spec, out=pooled)
        else:
            act = activate(conv_cl, act_spec) if act_spec.kind != "none" else conv_cl
            pooled = pool2d(act, request.pool, channels_last=cl)
        if cl:
            pooled = np.moveaxis(pooled, -1, 1)
    t3 = time.perf_counter()
    mag = None
    if request.magnitude_pair is not None:
        a, b = request.magnitude_pair
        mag = gradient_magnitude(conv_cl[a], conv_cl[b])
        if cl:
            mag = np.moveaxis(mag, -1, 0)
    shape = conv_output_shape(x.shape[:2], request.kernels[0].size, spec)
    pshape = pool_output_shape(shape.out_hw, request.pool) if request.pool is not None else None
    return PipelineResult(
        request.request_id, x, conv_cl, act_spec, pooled, mag, shape, pshape, "cpu",
        {"prepare": (t1 - t0) * 1e3, "conv": (t2 - t1) * 1e3, "activation+pool": (t3 - t2) * 1e3,
         "total": (time.perf_counter() - t0) * 1e3}, activation=act, channels_last=cl)
