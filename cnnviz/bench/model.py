"""``cnnviz bench --model``: what capturing and rendering every layer costs.

resnet18 (random init, nothing downloaded) on one 224x224 input:

- ``forward_ms``: the bare forward pass under ``torch.inference_mode``;
- ``hooked_ms``: the same forward through :class:`cnnviz.core.capture.Recorder`, every layer
  captured (the recorder the inspector uses, after its first frame);
- ``mosaic_ms``: every captured layer rendered to a uint8 mosaic and copied to the host
  (:func:`cnnviz.core.mosaic.mosaic_many`, as the inspector's layer overview does).

The three are interleaved (A B C A B C ...) and medians reported, so a noisy machine cannot
tilt the ratios: ``ratio_hooked`` = hooked / forward (target <= 1.15) and ``ratio_mosaic`` =
mosaic / forward (target <= 0.5).

Today's models (``capture`` cases, each measured side by side in one interleaved run,
medians): module-output capture vs the plain forward on resnet50, swin_t and vit_b_16
(target <= 1.15), every-op capture on resnet50 (target <= 1.5), and an ONNX export of
resnet50: every node captured through onnxruntime vs a plain onnxruntime run of the same
file (target <= 1.5). The plain forward runs on its own copy of the model (no hooks).

On a CUDA device also resnet50 on a 1280x720 frame resized and cropped per its torchvision
transforms on the GPU: frames per second for upload + preprocessing + capture of every layer
+ render of one selected layer to host uint8 (target >= 60).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from ..core.capture import Recorder
from ..core.mosaic import mosaic_many, mosaic_tensor

TARGET_RATIO_HOOKED = 1.15
TARGET_RATIO_EVERY_OP = 1.5
TARGET_RATIO_ONNX = 1.5
TARGET_RATIO_MOSAIC = 0.5
TARGET_FPS = 60.0


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elif device == "mps":
        torch.mps.synchronize()


def _timed(fn, device: str) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return (time.perf_counter() - t0) * 1000.0


def _resnet(name: str, device: str) -> torch.nn.Module:
    import torchvision

    torch.manual_seed(0)
    return getattr(torchvision.models, name)(weights=None).eval().to(device)


def resnet18_case(device: str, repeats: int) -> dict:
    model = _resnet("resnet18", device)
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0)).to(device)
    rec = Recorder(model)
    try:
        result = rec.run(x)  # first frame: learns which outputs need a clone
        n_layers = len(result.layers)

        def forward():
            with torch.inference_mode():
                model(x)

        def hooked():
            rec.run(x)

        firsts = [act.first for act in result.layers]

        def render():
            mosaic_many(firsts)

        for f in (forward, hooked, render):  # warm-up
            f()
        times = {"forward": [], "hooked": [], "render": []}
        for _ in range(repeats):
            times["forward"].append(_timed(forward, device))
            times["hooked"].append(_timed(hooked, device))
            times["render"].append(_timed(render, device))
    finally:
        rec.close()
    fwd = statistics.median(times["forward"])
    hk = statistics.median(times["hooked"])
    mo = statistics.median(times["render"])
    return {
        "case": "resnet18 224x224",
        "layers": n_layers,
        "forward_ms": fwd,
        "hooked_ms": hk,
        "mosaic_ms": mo,
        "ratio_hooked": hk / fwd,
        "ratio_mosaic": mo / fwd,
        "ok_hooked": hk / fwd <= TARGET_RATIO_HOOKED,
        "ok_mosaic": mo / fwd <= TARGET_RATIO_MOSAIC,
    }


def resnet50_live_case(device: str, frames: int = 120) -> dict:
    """resnet50 on 1280x720 frames: preprocessing on the device, every layer captured, one
    layer rendered to host uint8, per frame."""
    import torchvision

    model = _resnet("resnet50", device)
    t = torchvision.models.ResNet50_Weights.DEFAULT.transforms()
    resize, crop = int(t.resize_size[0]), int(t.crop_size[0])
    mean = torch.tensor(t.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(t.std, device=device).view(1, 3, 1, 1)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    pinned = torch.from_numpy(frame).pin_memory() if device.startswith("cuda") else torch.from_numpy(frame)
    h, w = 720, 1280
    size = (resize, int(resize * w / h))  # shorter side -> resize, aspect kept
    top, left = (size[0] - crop) // 2, (size[1] - crop) // 2
    rec = Recorder(model)
    selected = "layer3.5.conv2"

    def one_frame():
        with torch.inference_mode():
            img = pinned.to(device, non_blocking=True).permute(2, 0, 1)[None].float().div_(255)
            img = F.interpolate(img, size=size, mode="bilinear", antialias=True, align_corners=False)
            img = (img[..., top:top + crop, left:left + crop] - mean) / std
        res = rec.run(img)
        u8, _ = mosaic_tensor(res.layer(selected).first)
        return u8.cpu().numpy()

    try:
        for _ in range(5):
            one_frame()
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(frames):
            one_frame()
        _sync(device)
        elapsed = time.perf_counter() - t0
    finally:
        rec.close()
    fps = frames / elapsed
    return {"case": "resnet50 1280x720 live (capture all + render 1 layer)", "frames": frames,
            "fps": fps, "ms_per_frame": 1000.0 * elapsed / frames, "ok_fps": fps >= TARGET_FPS}


def _interleaved(fns: dict, device: str, repeats: int) -> dict[str, float]:
    """Median milliseconds of each function, run A B C A B C ... after one warm-up each."""
    for f in fns.values():
        f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            times[k].append(_timed(f, device))
    return {k: statistics.median(v) for k, v in times.items()}


def capture_case(name: str, device: str, repeats: int, *, every_op: bool = False, model=None, x=None) -> dict:
    """``name`` (a torchvision builder, or ``model`` given): the plain forward (its own copy,
    no hooks), every module output captured, and with ``every_op`` every op too."""
    import copy

    if model is None:
        import torchvision

        torch.manual_seed(0)
        model = torchvision.models.get_model(name, weights=None).eval().to(device)
    if x is None:
        x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0)).to(device)
    plain = copy.deepcopy(model)
    rec = Recorder(model)
    ops_model = copy.deepcopy(model) if every_op else None
    rec_ops = Recorder(ops_model, every_op=True) if every_op else None
    try:
        n_layers = len(rec.run(x).layers)

        def forward():
            with torch.inference_mode():
                plain(x)

        fns = {"forward": forward, "hooked": lambda: rec.run(x)}
        if rec_ops is not None:
            n_ops = len(rec_ops.run(x).layers)
            fns["every_op"] = lambda: rec_ops.run(x)
        ms = _interleaved(fns, device, repeats)
    finally:
        rec.close()
        if rec_ops is not None:
            rec_ops.close()
    out = {"case": f"{name} 224x224 capture", "layers": n_layers, "forward_ms": ms["forward"],
           "hooked_ms": ms["hooked"], "ratio_hooked": ms["hooked"] / ms["forward"],
           "ok_hooked": ms["hooked"] / ms["forward"] <= TARGET_RATIO_HOOKED}
    if rec_ops is not None:
        out.update({"every_op_layers": n_ops, "every_op_ms": ms["every_op"],
                    "ratio_every_op": ms["every_op"] / ms["forward"],
                    "ok_every_op": ms["every_op"] / ms["forward"] <= TARGET_RATIO_EVERY_OP})
    return out


def onnx_case(name: str, device: str, repeats: int, *, model=None, x=None) -> dict:
    """An ONNX export of ``name``: every node captured (:class:`OnnxRecorder`) vs a plain
    onnxruntime session of the same file."""
    import tempfile
    import warnings
    from pathlib import Path

    from ..core.onnx_model import OnnxRecorder, load_onnx

    if model is None:
        import torchvision

        torch.manual_seed(0)
        model = torchvision.models.get_model(name, weights=None).eval()
    if x is None:
        x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model.cpu(), (x.cpu(),), str(path), dynamo=False, input_names=["input"])
        loaded = load_onnx(path, device=device)
    plain = loaded.session()
    rec = OnnxRecorder(loaded)
    arr = x.cpu().numpy()
    n_layers = len(rec.run(arr).layers)
    ms = _interleaved({"plain": lambda: plain.run(None, {loaded.input_name: arr}),
                       "captured": lambda: rec.run(arr)}, "cpu", repeats)
    rec.close()
    return {"case": f"{name} 224x224 ONNX ({loaded.providers[0]})", "layers": n_layers,
            "plain_ms": ms["plain"], "captured_ms": ms["captured"], "ratio_onnx": ms["captured"] / ms["plain"],
            "ok_onnx": ms["captured"] / ms["plain"] <= TARGET_RATIO_ONNX}


def run_model_bench(device: str = "cpu", json: bool = False, repeats: int | None = None,
                    modern: bool = True) -> dict:
    """Run the model benchmark on ``device``; returns ``{"cases": [...], ...}`` for printing.

    ``json`` is accepted for symmetry with the command line (the caller prints). ``modern``
    adds the ``capture`` cases (resnet50 with every op, swin_t, vit_b_16, ONNX resnet50).
    """
    device = str(device)
    if repeats is None:
        repeats = 30 if device.startswith("cuda") else 9
    result: dict = {
        "benchmark": "model",
        "device": device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "cases": [resnet18_case(device, repeats)],
        "targets": {"ratio_hooked": TARGET_RATIO_HOOKED, "ratio_mosaic": TARGET_RATIO_MOSAIC,
                    "live_fps": TARGET_FPS},
    }
    if modern:
        result["capture"] = [
            capture_case("resnet50", device, repeats, every_op=True),
            capture_case("swin_t", device, repeats),
            capture_case("vit_b_16", device, repeats),
            onnx_case("resnet50", device, repeats),
        ]
        result["targets"].update({"ratio_every_op": TARGET_RATIO_EVERY_OP, "ratio_onnx": TARGET_RATIO_ONNX})
    if device.startswith("cuda"):
        result["live_resnet50"] = resnet50_live_case(device)
    return result
