"""``cnnviz bench --train``: does watching slow the training down?

The same SimpleCNN-on-digits run (same seed, same steps) is timed alternately with nothing
watching (:func:`cnnviz.core.train.run` with a bare ``TrainState``) and in the real Train window
(offscreen, its curves, kernel grid, feature maps and per-epoch views repainting live).
``ratio_window`` is the window's training throughput over the bare loop's, medians of
``repeats`` interleaved pairs measured in this one run (target ≥ 0.9). Throughput is training
steps per second of the loop's own clock (data loading and model building excluded for both);
both run on a worker thread (see :func:`_in_thread`).

It also reports ``seconds_to_97``: a 10-epoch SimpleCNN run on the digits (seed 0, the
``cnnviz train`` defaults), seconds of training until the validation accuracy first reaches
97 % (``None`` if it never does), and that run's final accuracy.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

TARGET_RATIO = 0.9


def _request(epochs: int, out_dir: str | None, device: str):
    from cnnviz.core.train import DataSpec, ModelSpec, TrainRequest, TrainSettings

    return TrainRequest(model=ModelSpec("simplecnn"), data=DataSpec("digits"),
                        settings=TrainSettings(epochs=epochs, seed=0, device=device), out_dir=out_dir)


def _throughput(result) -> float:
    return result.steps / max(1e-9, result.final["seconds"])


def _in_thread(fn):
    """Run ``fn`` on a fresh thread, as the Train window does: under CPU contention torch's
    OpenMP team is much slower on the main thread than on a worker, so both sides of the
    ratio must run on the same kind of thread."""
    import threading

    out = {}
    t = threading.Thread(target=lambda: out.setdefault("v", fn()), name="cnnviz-bench-train")
    t.start()
    t.join()
    if "v" not in out:
        raise RuntimeError("the bare training run failed")
    return out["v"]


def _bare(epochs: int, device: str, folder: str) -> float:
    from cnnviz.core.train import TrainState, run

    return _throughput(_in_thread(lambda: run(_request(epochs, folder, device), TrainState())))


def _windowed(app, epochs: int, device: str, folder: str) -> tuple[float, int]:
    from PySide6.QtCore import QEventLoop

    from cnnviz.qt.train import TrainWindow

    w = TrainWindow()
    w.resize(1300, 820)
    w.show()
    painted = []
    w.snapshotShown.connect(painted.append)
    loop = QEventLoop()
    w.runFinished.connect(lambda _s: loop.quit())
    w.start(_request(epochs, folder, device))
    loop.exec()
    result = w.result
    w.close()
    w.deleteLater()
    if result is None:
        raise RuntimeError(f"the windowed run failed: {w.last_message}")
    return _throughput(result), len(painted)


def run_train_bench(device: str = "cpu", repeats: int = 3, epochs: int = 2, to97: bool = True,
                    warmup: bool = True) -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        from cnnviz.qt.app import create_app
    except ImportError as exc:  # a headless machine without Qt (a GPU server): time the loop alone
        app, no_window = None, f"skipped: the window needs Qt ({exc})"
    else:
        app, no_window = create_app(), None
    bare, window, paints = [], [], []
    with tempfile.TemporaryDirectory(prefix="cnnviz-bench-train-") as tmp:
        if warmup:
            _bare(1, device, os.path.join(tmp, "warm"))  # imports, sklearn data, allocator
        for i in range(repeats):
            bare.append(_bare(epochs, device, os.path.join(tmp, f"bare{i}")))
            if app is None:
                continue
            tp, n = _windowed(app, epochs, device, os.path.join(tmp, f"win{i}"))
            window.append(tp)
            paints.append(n)
        from cnnviz.core.train import TrainState, run

        full, wall, hit = None, None, None
        if to97:
            t0 = time.perf_counter()
            full = _in_thread(lambda: run(_request(10, os.path.join(tmp, "to97"), device), TrainState()))
            wall = time.perf_counter() - t0
            hit = next((m for m in full.metrics if m["val_accuracy"] >= 0.97), None)
    b = statistics.median(bare)
    w = statistics.median(window) if window else None
    cases = [{"mode": "bare loop", "steps_per_s": b, "runs": len(bare), "repaints": 0}]
    if w is not None:
        cases.append({"mode": "Train window", "steps_per_s": w, "runs": len(window),
                      "repaints": int(statistics.median(paints))})
    return {
        "cases": cases,
        "ratio_window": None if w is None else w / b,
        "window": no_window or "timed",
        "target_ratio": TARGET_RATIO,
        "meets_target": None if w is None else w / b >= TARGET_RATIO,
        "seconds_to_97": None if hit is None else round(hit["seconds"], 2),
        "epoch_to_97": None if hit is None else hit["epoch"],
        "final_val_accuracy_10_epochs": None if full is None else round(full.final["val_accuracy"], 4),
        "seconds_10_epochs_wall": None if wall is None else round(wall, 2),
        "device": device,
    }
