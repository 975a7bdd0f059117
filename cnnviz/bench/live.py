"""``cnnviz bench --live``: a 1280×720 source at 30 fps through the real window, offscreen.

A :class:`~cnnviz.core.sources.SyntheticSource` (a moving pattern made on its own capture
thread, paced like a camera) feeds the real :class:`~cnnviz.qt.playground.window.MainWindow`
through the real :class:`~cnnviz.qt.playground.live.LiveController` with a 5×5 kernel + ReLU + 2×2
max-pool, as a user gets it (the "fast live view" hides the output histograms while a
source runs; ``histograms=True`` keeps them). After a warm-up, for ``duration_s`` seconds:

- ``source_fps``: frames the source made per second;
- ``shown_fps``: frames that reached the screen per second: the window showed their
  result *and* the conv view was repainted with it before a newer frame replaced it;
- ``fps_ratio`` = shown / source (target ≥ 0.97 on a 2-core machine);
- ``latency_p95_ms``: 95th percentile of capture → pixels painted for each frame shown
  (the conv view's paint after the window's ``resultShown``, timed as in ``bench --gui``;
  target ≤ 50 ms); ``latency_p50_ms`` likewise; ``latency_to_result_p95_ms`` stops at
  ``resultShown`` (the controller's own figure, before the paint);
- ``dropped``: frames made but never shown (the pipeline was busy when they came: the
  one-slot buffer replaced them); ``max_pending``: the most computations ever waiting
  in the worker (≤ 1).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from typing import Any

from .gui import PaintProbe, offscreen_app, percentile, run_until

TARGET_FPS_RATIO = 0.97
TARGET_LATENCY_P95_MS = 50.0


def run_live_bench(device: str = "cpu", duration_s: float = 10.0, warmup_s: float = 1.5,
                   width: int = 1280, height: int = 720, fps: float = 30.0,
                   histograms: bool = False) -> dict[str, Any]:
    """Run the live benchmark; see the module docstring. Tests pass a short ``duration_s``.

    ``histograms``: keep the output histograms while live (the window's "fast live view",
    on by default, hides them; True measures the slower view).
    """
    from PySide6.QtCore import QEvent

    from cnnviz.core.kernels import preset
    from cnnviz.qt.playground.live import LIVE
    from cnnviz.qt.playground.live_actions import install_live_sources
    from cnnviz.qt.playground.window import MainWindow
    from cnnviz.core.settings import PlaygroundParams

    app = offscreen_app()
    with tempfile.TemporaryDirectory() as tmp:
        win = MainWindow(settings_file=os.path.join(tmp, "settings.json"), load_settings_file=False)
        try:
            win.resize(1560, 980)
            win.show()
            live = getattr(win, "live", None) or install_live_sources(win)
            win.set_kernels([preset("log-5").kernel])
            win.set_params(PlaygroundParams(activation="relu", pool="max"))
            live.set_fast_live(not histograms)
            live.start_pattern(width, height, fps)
            if not run_until(app, lambda: live.state == LIVE and live.frames_shown >= 3, 30.0):
                raise RuntimeError(f"the synthetic source did not reach the screen (state {live.state}, "
                                   f"error {live.last_error})")

            latencies: list[float] = []          # capture → painted
            to_result: list[float] = []          # capture → resultShown
            compute_ms: list[float] = []
            recording = {"on": False}
            waiting: dict[str, Any] = {"t_capture": None}
            painted = {"n": 0}
            conv_view = win.outputs.view("conv").graphics.viewport()

            def painting() -> float | None:   # the frame this paint draws
                t_capture = waiting["t_capture"]
                waiting["t_capture"] = None
                return t_capture if recording["on"] else None

            def on_painted(t_capture: float | None) -> None:
                if t_capture is not None:
                    latencies.append((time.perf_counter() - t_capture) * 1e3)
                    painted["n"] += 1

            probe = PaintProbe(conv_view, on_painted, snapshot=painting)

            def on_frame(_fid: int) -> None:
                if recording["on"]:
                    to_result.append(live.latencies_ms()[-1])
                    compute_ms.append(float(win.worker.last_compute_ms))
                frame = live.last_frame
                # a frame still waiting for its paint is replaced: it never reached the screen
                waiting["t_capture"] = frame.t_capture if frame is not None else None
                probe.armed = True
                conv_view.update()

            live.frameShown.connect(on_frame)
            run_until(app, lambda: False, warmup_s)

            src = live.source
            assert src is not None
            s0 = src.stats()
            shown0, superseded0 = live.frames_shown, live.frames_superseded
            waiting["t_capture"] = None
            recording["on"] = True
            t0 = time.perf_counter()
            run_until(app, lambda: False, duration_s)
            recording["on"] = False
            dt = time.perf_counter() - t0
            s1 = src.stats()
            probe.remove()
            histograms_shown = bool(win.histograms_visible())
            results_shown = live.frames_shown - shown0
            shown = painted["n"]
            made = s1["frames"] - s0["frames"]
            dropped = ((s1["dropped"] - s0["dropped"]) + (live.frames_superseded - superseded0)
                       + max(0, results_shown - shown))   # shown, but replaced before any paint
            live.frameShown.disconnect(on_frame)
            stopped_cleanly = live.stop()
            source_fps = made / dt
            shown_fps = shown / dt
            case = {
                "case": f"synthetic {width}x{height}@{fps:g} fps, log-5 5x5 + relu + max-pool 2x2",
                "duration_s": dt,
                "source_fps": source_fps,
                "shown_fps": shown_fps,
                "fps_ratio": shown_fps / source_fps if source_fps > 0 else 0.0,
                "latency_p50_ms": percentile(latencies, 50),
                "latency_p95_ms": percentile(latencies, 95),
                "latency_max_ms": max(latencies) if latencies else None,
                "latency_to_result_p95_ms": percentile(to_result, 95),
                "dropped": int(dropped),
                "frames_made": int(made),
                "frames_shown": int(shown),
                "results_shown": int(results_shown),
                "compute_ms_median": statistics.median(compute_ms) if compute_ms else None,
                "histograms_shown": histograms_shown,
                "max_pending": int(win.worker.max_pending),
                "buffer_max_depth": int(src.buffer.max_depth),
                "threads_joined": bool(stopped_cleanly),
                "device": device,
            }
        finally:
            win.close()
            win.deleteLater()
            app.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    ok = (case["fps_ratio"] >= TARGET_FPS_RATIO and case["latency_p95_ms"] is not None
          and case["latency_p95_ms"] <= TARGET_LATENCY_P95_MS and case["max_pending"] <= 1)
    return {
        "benchmark": "live",
        "cases": [case],
        "targets": {"fps_ratio": TARGET_FPS_RATIO, "latency_p95_ms": TARGET_LATENCY_P95_MS, "max_pending": 1},
        "source_fps": case["source_fps"],
        "shown_fps": case["shown_fps"],
        "fps_ratio": case["fps_ratio"],
        "latency_p95_ms": case["latency_p95_ms"],
        "dropped": case["dropped"],
        "max_pending": case["max_pending"],
        "pass": bool(ok),
    }


__all__ = ["run_live_bench", "TARGET_FPS_RATIO", "TARGET_LATENCY_P95_MS"]
