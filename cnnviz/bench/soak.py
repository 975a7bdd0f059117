"""``cnnviz bench --soak``: a long run that looks for leaks — memory, threads, hooks.

Two phases, in one process:

1. **Frames** — a synthetic live source (a moving pattern on its own capture thread, paced
   like a fast camera) feeds the real playground window, offscreen, through the real
   :class:`~cnnviz.qt.playground.live.LiveController` and the window's one worker, with a 3×3 kernel +
   ReLU + 2×2 max-pool, until ``frames`` results have been shown. Frames the pipeline had no
   time for are dropped by the one-slot buffer, as in real use; they are counted apart.
2. **Inspections** — ``inspections`` model inspections that alternate between the bundled demo
   model and a second small CNN (a model *swap* every time), as the inspector does on a load:
   a :class:`~cnnviz.core.capture.Recorder` hooks every layer, captures every layer of one
   input, the selected layer is rendered to a uint8 mosaic, and the recorder is closed (its
   hooks removed) before the other model is taken.

Reported:

- ``frames`` (shown), ``frames_made``, ``frames_dropped``, ``inspections``;
- ``rss_growth_mb``: resident memory at the end minus after the warm-up (10 % of each phase,
  at least a few iterations), from ``/proc/self/statm`` (target ≤ 50);
  ``rss_growth_frames_mb`` and ``rss_growth_inspections_mb`` per phase;
- ``threads_before`` / ``threads_after``: Python threads alive before the window opened and
  after everything closed (equal: every capture, consumer and worker thread was joined);
  ``os_threads_before`` / ``os_threads_after`` count the process's native threads (Qt and
  BLAS pools may start lazily, so these are informative, not a target);
- ``hooks_left``: forward (pre-)hooks still registered on any module of any model used (0).
"""

from __future__ import annotations

import gc
import os
import tempfile
import threading
import time
from typing import Any

from .gui import offscreen_app, run_until

TARGET_RSS_GROWTH_MB = 50.0


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux ``/proc/self/statm``; 0.0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            resident_pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def _settled_rss() -> float:
    gc.collect()
    try:  # give freed heap back to the OS so the number is what is really held
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    return rss_mb()


def _python_threads() -> int:
    # threads Python started (capture, consumer, helpers); a QThread that ran Python code
    # leaves a _DummyThread record behind that never ends, so those are not counted
    return sum(1 for t in threading.enumerate() if not isinstance(t, threading._DummyThread) and t.is_alive())


def _os_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0


def count_hooks(modules) -> int:
    """Forward and forward-pre hooks registered on every submodule of ``modules``."""
    n = 0
    for root in modules:
        for m in root.modules():
            n += len(getattr(m, "_forward_hooks", {})) + len(getattr(m, "_forward_pre_hooks", {}))
    return n


# ---------------------------------------------------------------------------------------
# phase 1: frames through the real window
# ---------------------------------------------------------------------------------------
def _soak_frames(app, frames: int, width: int, height: int, fps: float, timeout_s: float) -> dict[str, Any]:
    from PySide6.QtCore import QEvent

    from cnnviz.core.kernels import preset
    from cnnviz.qt.playground.live import LIVE
    from cnnviz.qt.playground.live_actions import install_live_sources
    from cnnviz.qt.playground.window import MainWindow
    from cnnviz.core.settings import PlaygroundParams

    warmup = max(20, frames // 10)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        win = MainWindow(settings_file=os.path.join(tmp, "settings.json"), load_settings_file=False)
        try:
            win.show()
            live = getattr(win, "live", None) or install_live_sources(win, list_cameras_fn=lambda: [])
            win.set_kernels([preset("sobel-x").kernel])
            win.set_params(PlaygroundParams(activation="relu", pool="max"))
            live.start_pattern(width, height, fps)
            if not run_until(app, lambda: live.state == LIVE and live.frames_shown >= warmup, timeout_s):
                raise RuntimeError(f"the synthetic source did not reach the screen (state {live.state}, "
                                   f"error {live.last_error})")
            rss0 = _settled_rss()
            shown0 = live.frames_shown
            src = live.source
            made0 = src.stats()["frames"] if src is not None else 0
            t0 = time.perf_counter()
            run_until(app, lambda: live.frames_shown - shown0 >= frames or live.state != LIVE, timeout_s)
            dt = time.perf_counter() - t0
            shown = live.frames_shown - shown0
            made = (src.stats()["frames"] - made0) if src is not None else 0
            if live.state != LIVE:
                raise RuntimeError(f"the live source stopped during the soak: {live.last_error}")
            joined = live.stop()
            rss1 = _settled_rss()
            out = {"frames": int(shown), "frames_made": int(made), "frames_dropped": int(max(0, made - shown)),
                   "frames_seconds": dt, "shown_fps": shown / dt if dt > 0 else 0.0,
                   "rss_frames_start_mb": rss0, "rss_frames_end_mb": rss1, "rss_growth_frames_mb": rss1 - rss0,
                   "max_pending": int(win.worker.max_pending), "live_threads_joined": bool(joined),
                   "frames_complete": shown >= frames}
        finally:
            win.close()
            win.deleteLater()
            app.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    return out


# ---------------------------------------------------------------------------------------
# phase 2: model inspections with swaps
# ---------------------------------------------------------------------------------------
def _second_model():
    """A small CNN unlike the demo model: 3-channel input, BatchNorm, in-place ReLU."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(16, 10),
    )
    return m.eval()


def _soak_inspections(inspections: int, device: str) -> dict[str, Any]:
    import numpy as np
    import torch

    from cnnviz.core.capture import Recorder
    from cnnviz.core.models import load_model
    from cnnviz.core.mosaic import mosaic

    demo = load_model("demo", device=device)
    second = _second_model().to(device)
    rng = np.random.default_rng(0)
    pixels = rng.random((48, 48, 3), dtype=np.float32)
    inputs = [demo.preprocessing.apply(pixels).to(device), torch.from_numpy(pixels).permute(2, 0, 1)[None].to(device)]
    models_used = [demo.module, second]
    warmup = max(4, inspections // 10)
    rss0 = None
    layers_seen = 0
    hooks_during = 0
    t0 = time.perf_counter()
    for i in range(inspections + warmup):
        if i == warmup:
            rss0 = _settled_rss()
            t0 = time.perf_counter()
        which = i % 2                        # a swap on every inspection
        target = demo if which == 0 else second
        rec = Recorder(target)
        try:
            res = rec.run(inputs[which])
            hooks_during = max(hooks_during, count_hooks(models_used))
            names = res.names() if callable(res.names) else res.names
            t = res.layer(names[i % len(names)]).tensor     # the layer the user selected
            if t.ndim == 4:
                t = t[0]
            if t.ndim == 3:
                mosaic(t)                                    # rendered to uint8, as the grid does
            layers_seen = max(layers_seen, len(names))
        finally:
            rec.close()
        del res
    dt = time.perf_counter() - t0
    rss1 = _settled_rss()
    return {"inspections": int(inspections), "inspection_seconds": dt,
            "inspections_per_s": inspections / dt if dt > 0 else 0.0, "layers_per_inspection": layers_seen,
            "hooks_while_capturing": hooks_during, "hooks_left": count_hooks(models_used),
            "rss_inspections_start_mb": rss0, "rss_inspections_end_mb": rss1,
            "rss_growth_inspections_mb": rss1 - (rss0 if rss0 is not None else rss1)}


def run_soak_bench(device: str = "cpu", frames: int = 10_000, inspections: int = 1_000, *,
                   width: int = 320, height: int = 240, fps: float = 500.0,
                   timeout_s: float | None = None) -> dict[str, Any]:
    """Run both phases; see the module docstring. Tests pass small ``frames``/``inspections``.

    ``width``/``height``/``fps``: the synthetic source (fast, so the soak takes about a minute
    per 10 000 frames on two cores: the point is many frames, not big ones). ``timeout_s``
    bounds the frames phase (default: 30 ms a frame plus a minute).
    """
    app = offscreen_app()
    timeout_s = timeout_s if timeout_s is not None else 60.0 + frames * 0.03
    gc.collect()
    threads_before = _python_threads()
    os_threads_before = _os_threads()
    t_start = time.perf_counter()
    frames_part = _soak_frames(app, frames, width, height, fps, timeout_s) if frames > 0 else {"frames": 0}
    insp_part = _soak_inspections(inspections, device) if inspections > 0 else {"inspections": 0, "hooks_left": 0}
    run_until(app, lambda: _python_threads() <= threads_before, 5.0)   # joined threads finish their exit
    threads_after = _python_threads()
    growth = (frames_part.get("rss_growth_frames_mb", 0.0) or 0.0) + \
        (insp_part.get("rss_growth_inspections_mb", 0.0) or 0.0)
    result: dict[str, Any] = {
        "benchmark": "soak",
        "device": device,
        "frames": frames_part.get("frames", 0),
        "inspections": insp_part.get("inspections", 0),
        "rss_growth_mb": growth,
        "threads_before": threads_before,
        "threads_after": threads_after,
        "hooks_left": insp_part.get("hooks_left", 0),
        "os_threads_before": os_threads_before,
        "os_threads_after": _os_threads(),
        "seconds": time.perf_counter() - t_start,
        "source": f"synthetic {width}x{height}@{fps:g} fps through the real window (offscreen), "
                  "sobel-x 3x3 + relu + max-pool 2x2",
        "models": "demo (cnnviz) and a small 3-channel CNN, swapped on every inspection",
    }
    result.update({k: v for k, v in frames_part.items() if k != "frames"})
    result.update({k: v for k, v in insp_part.items() if k not in ("inspections", "hooks_left")})
    result["targets"] = {"rss_growth_mb": TARGET_RSS_GROWTH_MB, "threads_after": "== threads_before",
                         "hooks_left": 0}
    result["pass"] = bool(growth <= TARGET_RSS_GROWTH_MB and threads_after == threads_before
                          and result["hooks_left"] == 0 and frames_part.get("frames_complete", True))
    return result


__all__ = ["run_soak_bench", "rss_mb", "count_hooks", "TARGET_RSS_GROWTH_MB"]
