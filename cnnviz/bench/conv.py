"""``cnnviz bench``: the kernel pipeline against bare ``cv2.filter2D`` and a textbook loop.

For one 1280×720 frame (gray and RGB ``each``) and 3×3 and 5×5 kernels:

- ``pipeline_ms``: conv + ReLU + 2×2 max-pool + colormap to a uint8 RGB display image,
  through the same :func:`run_pipeline` the window uses;
- ``floor_ms``: bare ``cv2.filter2D`` of the same kernel on the same frame (one pass);
- ``naive_ms``: the textbook Python loop (conv, ReLU and pool as loops over pixels), timed
  on a crop (median of five) and scaled by the pixel count.

The pipeline runs on all cores (``threads``: row chunks of the frame, see
``cnnviz.core.conv._banded``); the floor is one single-threaded ``cv2.filter2D`` call, as a
user would write it.

Pipeline and floor runs are interleaved (A B A B …) and medians reported, so a noisy machine
cannot tilt ``ratio_floor`` = pipeline / floor. ``speedup_naive`` = naive / pipeline.
Targets: ratio_floor ≤ 2.0, speedup_naive ≥ 3000.
"""

from __future__ import annotations

import statistics
import time

import cv2
import numpy as np

from ..core.conv import (ActivationSpec, ConvSpec, PipelineRequest, PoolSpec, band_workers, prepare_input,
                         run_pipeline)
from ..core.kernels import preset
from ..core.display import display_image

TARGET_RATIO_FLOOR = 2.0
TARGET_SPEEDUP_NAIVE = 3000.0


def synthetic_frame(h: int = 720, w: int = 1280, seed: int = 0) -> np.ndarray:
    """A reproducible RGB uint8 frame with edges and texture (like a camera image)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 0.5 + 0.25 * np.sin(x / 37.0) * np.cos(y / 23.0)
    img = np.stack([base, np.roll(base, 40, axis=1), (x / w)], axis=2)
    img += rng.normal(0, 0.03, img.shape).astype(np.float32)
    cv2.rectangle(img, (300, 200), (700, 500), (1.0, 0.2, 0.1), -1)
    cv2.circle(img, (1000, 360), 150, (0.1, 0.3, 1.0), -1)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def naive_pipeline(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The textbook version: loops over output pixels (and channels) with numpy dot products."""
    kh, kw = w.shape
    if x.ndim == 2:
        x = x[:, :, None]
    h, wd, c = x.shape
    oh, ow = h - kh + 1, wd - kw + 1
    conv = np.zeros((c, oh, ow), np.float32)
    for ch in range(c):
        for i in range(oh):
            for j in range(ow):
                conv[ch, i, j] = np.sum(x[i:i + kh, j:j + kw, ch] * w)
    act = np.zeros_like(conv)
    for ch in range(c):
        for i in range(oh):
            for j in range(ow):
                act[ch, i, j] = conv[ch, i, j] if conv[ch, i, j] > 0 else 0.0
    ph, pw = oh // 2, ow // 2
    pool = np.zeros((c, ph, pw), np.float32)
    for ch in range(c):
        for i in range(ph):
            for j in range(pw):
                pool[ch, i, j] = act[ch, 2 * i:2 * i + 2, 2 * j:2 * j + 2].max()
    return pool


def _case(frame_u8: np.ndarray, channels: str, kname: str, repeats: int, device: str) -> dict:
    kernel = preset(kname).kernel
    req = PipelineRequest((kernel,), ConvSpec(channels=channels), ActivationSpec("relu"), PoolSpec("max", 2))
    x = prepare_input(frame_u8, channels)
    w = np.ascontiguousarray(kernel.effective())

    def pipeline() -> np.ndarray:
        res = run_pipeline(frame_u8, req, device=device, prepared=x)
        return display_image(res.last)

    def floor() -> np.ndarray:
        return cv2.filter2D(x, cv2.CV_32F, w, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)

    for _ in range(3):  # warm-up (allocator, OpenCV thread pool, torch kernels)
        pipeline(), floor()
    pipe_t, floor_t = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        pipeline()
        t1 = time.perf_counter()
        floor()
        t2 = time.perf_counter()
        pipe_t.append((t1 - t0) * 1e3)
        floor_t.append((t2 - t1) * 1e3)
    pipeline_ms = statistics.median(pipe_t)
    floor_ms = statistics.median(floor_t)
    # textbook loop on a crop, scaled up by output pixel count (median of five runs: a
    # Python loop feels a busy host more than OpenCV does)
    crop = x[:40, :40]
    crop_t = []
    for _ in range(5):
        t0 = time.perf_counter()
        naive_pipeline(crop, w)
        crop_t.append((time.perf_counter() - t0) * 1e3)
    crop_ms = statistics.median(crop_t)
    k = w.shape[0]
    full_px = (x.shape[0] - k + 1) * (x.shape[1] - k + 1)
    crop_px = (crop.shape[0] - k + 1) * (crop.shape[1] - k + 1)
    naive_ms = crop_ms * full_px / crop_px
    return {"image": f"{frame_u8.shape[1]}x{frame_u8.shape[0]}", "channels": channels,
            "kernel": f"{w.shape[0]}x{w.shape[1]}", "device": device,
            "threads": band_workers() if device == "cpu" else None,
            "pipeline_ms": pipeline_ms, "floor_ms": floor_ms, "naive_ms": naive_ms,
            "ratio_floor": pipeline_ms / floor_ms, "speedup_naive": naive_ms / pipeline_ms}


def run_conv_bench(device: str = "cpu", repeats: int = 30) -> dict:
    frame = synthetic_frame()
    cases = []
    for channels in ("gray", "each"):
        for kname in ("sobel-x", "gaussian-5"):
            cases.append(_case(frame, channels, kname, repeats, device))
    return {"benchmark": "conv", "cases": cases,
            "targets": {"ratio_floor": f"<= {TARGET_RATIO_FLOOR}", "speedup_naive": f">= {TARGET_SPEEDUP_NAIVE:.0f}"},
            "pass": all(c["ratio_floor"] <= TARGET_RATIO_FLOOR and c["speedup_naive"] >= TARGET_SPEEDUP_NAIVE
                        for c in cases)}
