"""``cnnviz --self-test``: prove an installation (or a packaged bundle) works, headless.

Loads a bundled sample, runs the kernel pipeline, runs the demo model and captures every
layer, renders one frame of the real window offscreen, prints a summary and exits 0 — or
prints what failed and exits 1.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from .core.resources import resources_dir

RESOURCES = resources_dir()


def _step(name: str, fn, results: list) -> object:
    t0 = time.perf_counter()
    try:
        out = fn()
    except Exception as exc:  # report every failure, keep going
        results.append((name, False, f"{type(exc).__name__}: {exc}", time.perf_counter() - t0))
        return None
    results.append((name, True, out if isinstance(out, str) else "", time.perf_counter() - t0))
    return out


def run_self_test(render_window: bool = True) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    results: list = []

    def sample():
        from .core.images import load_image

        img = load_image(RESOURCES / "samples" / "photo.png")
        return f"photo.png {img.pixels.shape[1]}×{img.pixels.shape[0]}"

    def pipeline():
        import numpy as np

        from .core.conv import ActivationSpec, ConvSpec, PipelineRequest, PoolSpec, run_pipeline
        from .core.images import load_image
        from .core.kernels import preset
        from .core.display import display_image

        img = load_image(RESOURCES / "samples" / "pattern.png").pixels
        res = run_pipeline(img, PipelineRequest((preset("sobel-x").kernel,), ConvSpec(padding=1),
                                                ActivationSpec("relu"), PoolSpec("max", 2)))
        rgb = display_image(res.last)
        if not (rgb.dtype == np.uint8 and rgb.ndim == 3 and res.pool is not None and float(res.pool.max()) > 0):
            raise RuntimeError("the kernel pipeline produced an empty map")
        return f"sobel-x → conv {res.conv.shape[1:]} → pool {res.pool.shape[1:]}"

    def model():
        from .core.capture import capture, topk
        from .core.demo import load_demo_model
        from .core.images import load_image

        m = load_demo_model()
        img = load_image(RESOURCES / "samples" / "digit.png").pixels
        x = m.preprocessing.apply(img)
        cap = capture(m, x)
        top = topk(cap.output, m.labels, 1)[0]
        return f"demo model: {len(cap.layers)} layers captured, predicts '{top[1]}' ({top[2]:.0%})"

    def window():
        from PySide6.QtWidgets import QApplication

        from .qt.app import create_app
        from .qt.playground.window import MainWindow

        with tempfile.TemporaryDirectory() as cfg:
            os.environ["CNNVIZ_CONFIG_DIR"] = cfg
            app = QApplication.instance() or create_app([])
            win = MainWindow()
            win.resize(1280, 800)
            win.show()
            deadline = time.monotonic() + 20
            while win.current_result() is None and time.monotonic() < deadline:
                app.processEvents()  # a headless self-test has no user: pump until the first frame
                time.sleep(0.01)
            shot = win.grab()
            ok = win.current_result() is not None and not shot.isNull()
            win.close()
            app.processEvents()
            if not ok:
                raise RuntimeError("the window did not show a result within 20 s")
            return f"window rendered {shot.width()}×{shot.height()} offscreen"

    steps = [("load sample image", sample), ("kernel pipeline", pipeline), ("demo model", model)]
    if render_window:
        steps.append(("window", window))
    for i, (name, fn) in enumerate(steps, 1):
        # progress as it goes (the model step imports torch: seconds on a cold disk)
        bar = "#" * (i - 1) + "." * (len(steps) - i + 1)
        print(f"[{bar}] {i}/{len(steps)} {name}…", flush=True)
        _step(name, fn, results)
    print(f"[{'#' * len(steps)}] done", flush=True)
    width = max(len(r[0]) for r in results)
    for name, ok, info, dt in results:
        print(f"{'PASS' if ok else 'FAIL'}  {name:{width}s}  {dt * 1e3:7.0f} ms  {info}")
    failed = [r for r in results if not r[1]]
    print(f"self-test: {len(results) - len(failed)} passed, {len(failed)} failed")
    sys.stdout.flush()
    return 1 if failed else 0
