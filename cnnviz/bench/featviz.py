"""``cnnviz bench --featviz``: what feature visualization and the dataset sweep cost.

Ratios measured side by side in one run (interleaved A B A B ..., the fastest of the repeats:
a busy machine only ever slows a run down):

- ``sweep``: the top-images sweep (resnet18's ``layer3.1.relu#2``) (:func:`cnnviz.core.dataset_examples.run`, no cache) over a
  folder of PNGs vs a plain loop over the same files: decode, preprocess, batched forward of
  the same model with the same batch size. ``ratio`` = plain time / sweep time
  (target >= 0.85: the top-k bookkeeping, hooks and receptive fields cost at most 15 %).
- ``featviz_step``: one feature-visualization step (parameterization, random transform,
  forward, gradient, optimizer step: a run of 48 steps minus a run of 32, divided by 16) vs a plain forward + backward (``loss.backward()``) of the same model on a batch
  of the same size. ``ratio`` = featviz step / plain step (target <= 1.3).
- on a CUDA device also ``gpu_all_channels``: every one of the 64 channels of resnet18's
  ``layer1.1.conv2`` at 128x128, 256 steps, in one batched optimization (target <= 10 s).

resnet18 with random weights (nothing is downloaded).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

TARGET_SWEEP = 0.85
TARGET_STEP = 1.3
TARGET_GPU_S = 10.0


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _model(device: str, size: int):
    import torchvision

    from ..core.models import LoadedModel, Preprocessing

    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None).eval().to(device)
    return LoadedModel(module=net, kind="torchvision", name="resnet18 (random)", source="resnet18",
                       preprocessing=Preprocessing(resize=(size, size), mean=(0.485, 0.456, 0.406),
                                                   std=(0.229, 0.224, 0.225)),
                       labels=None, input_channels=3, input_size=(size, size), weights="random", device=device)


def sweep_case(device: str, repeats: int, n_images: int = 128, size: int = 64, batch: int = 32) -> dict:
    from ..core import dataset_examples as dx
    from ..core.images import load_image, save_png

    model = _model(device, size)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i in range(n_images):
            save_png(folder / f"img_{i:04d}.png", rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        files = sorted(folder.glob("*.png"))
        pp = model.preprocessing

        def plain():
            with torch.inference_mode():
                for i in range(0, len(files), batch):
                    x = torch.cat([pp.apply(load_image(f).pixels) for f in files[i:i + batch]]).to(device)
                    model.module(x)
            _sync(device)

        req = dx.SweepRequest(folder, ("layer3.1.relu#2",), k=9, batch_size=batch)

        def sweep():
            dx.run(model, req, cache=False)
            _sync(device)

        sweep()  # warm-up (first-frame learning in the recorder, allocator)
        plain()
        tp, ts = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            plain()
            tp.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            sweep()
            ts.append(time.perf_counter() - t0)
    p, s = min(tp), min(ts)  # the fastest of the repeats: a busy machine only slows
    return {"case": "sweep", "setup": f"{n_images} PNGs {size}x{size}, batch {batch}",
            "baseline_ms": p * 1e3, "measured_ms": s * 1e3, "ratio": p / s, "ratio_is": "throughput sweep/plain",
            "target": f">= {TARGET_SWEEP}", "ok": p / s >= TARGET_SWEEP}


def step_case(device: str, repeats: int, batch: int = 4, size: int = 64, steps: tuple[int, int] = (32, 48)) -> dict:
    """One step is the difference between a run of ``steps[1]`` and one of ``steps[0]`` steps,
    divided by the difference (the probe and final forward passes, and Lucid's redirected-ReLU
    warm-up of the first 16 steps, cancel out)."""
    from ..core import featureviz as fv

    model = _model(device, size)
    net = model.module
    short, long = steps
    x = torch.rand(batch, 3, size, size, device=device)

    def request(n):
        return fv.FeatureVizRequest(fv.Objective.output_class(1), fv.FeatureVizSettings(steps=n, batch=batch))

    def plain():
        net.zero_grad(set_to_none=True)
        net(x)[:, 1].sum().backward()
        _sync(device)

    def featviz(n):
        fv.run(model, request(n), cache=False)
        _sync(device)

    plain()
    featviz(2)
    tp, ts, tl = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(long - short):
            plain()
        tp.append((time.perf_counter() - t0) / (long - short))
        t0 = time.perf_counter()
        featviz(short)
        t1 = time.perf_counter()
        featviz(long)
        ts.append(t1 - t0)
        tl.append(time.perf_counter() - t1)
    net.zero_grad(set_to_none=True)
    # the fastest of the repeats (a busy machine only slows); if noise still swamps the
    # difference, the whole long run per step (an overestimate) is reported instead
    p = min(tp)
    f = (min(tl) - min(ts)) / (long - short)
    if f <= 0:
        f = min(tl) / long
    return {"case": "featviz_step", "setup": f"batch {batch}, {size}x{size}, per step",
            "baseline_ms": p * 1e3, "measured_ms": f * 1e3, "ratio": f / p, "ratio_is": "time featviz/plain",
            "target": f"<= {TARGET_STEP}", "ok": f / p <= TARGET_STEP}


def gpu_case(device: str) -> dict:
    from ..core import featureviz as fv

    model = _model(device, 128)
    req = fv.FeatureVizRequest(fv.Objective.all_channels("layer1.1.conv2"),
                               fv.FeatureVizSettings(steps=256, size=(128, 128), chunk=64))
    fv.run(model, fv.FeatureVizRequest(req.objective, fv.FeatureVizSettings(steps=2, size=(128, 128))), cache=False)
    _sync(device)
    t0 = time.perf_counter()
    r = fv.run(model, req, cache=False)
    _sync(device)
    s = time.perf_counter() - t0
    return {"case": "gpu_all_channels", "setup": f"{len(r.channels)} channels, 128x128, 256 steps",
            "baseline_ms": TARGET_GPU_S * 1e3, "measured_ms": s * 1e3, "ratio": s / TARGET_GPU_S,
            "ratio_is": "time / 10 s budget", "target": f"<= {TARGET_GPU_S} s", "ok": s <= TARGET_GPU_S}


def run_featviz_bench(device: str = "cpu", repeats: int = 3) -> dict:
    cases = [sweep_case(device, repeats), step_case(device, repeats)]
    if device.startswith("cuda"):
        cases.append(gpu_case(device))
    return {"benchmark": "featviz", "device": device, "cases": cases}
