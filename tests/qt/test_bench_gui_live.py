"""`cnnviz bench --gui/--live` in a short mode: the report has its fields and the worker
never queues more than one computation (timings are not asserted: machines differ)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import json
import threading

from cnnviz.bench.gui import run_gui_bench
from cnnviz.bench.live import run_live_bench


def _no_live_threads() -> bool:
    return not [t for t in threading.enumerate() if t.name.startswith("cnnviz-") and t.is_alive()]


def test_gui_bench_short(qtbot):
    r = run_gui_bench(edits=6, interval_ms=5)
    json.dumps(r)  # what --json prints
    assert r["benchmark"] == "gui" and isinstance(r["pass"], bool)
    assert set(r["targets"]) == {"edit_to_pixel_p95_ms", "max_pending", "presentation_step_to_pixel_p95_ms"}
    pres = r["presentation"]
    assert pres["steps"] == 6 and pres["image"] == "1280x720"
    assert 0 < pres["step_to_pixel_p50_ms"] <= pres["step_to_pixel_p95_ms"] <= pres["step_to_pixel_max_ms"]
    assert r["presentation_step_to_pixel_p95_ms"] == pres["step_to_pixel_p95_ms"]
    assert len(r["cases"]) == 2
    for c in r["cases"]:
        assert c["edits"] == 6 and c["image"] == "1280x720"
        for key in ("edit_to_pixel_p50_ms", "edit_to_pixel_p95_ms", "edit_to_result_p95_ms", "compute_ms_median"):
            assert isinstance(c[key], float) and c[key] > 0
        assert c["edit_to_pixel_p95_ms"] >= c["edit_to_result_p95_ms"]  # painted after shown
        assert c["max_pending"] <= 1
        assert 1 <= c["results_shown"] <= 6 + 1
    assert r["max_pending"] <= 1
    assert _no_live_threads()


def test_live_bench_short(qtbot):
    r = run_live_bench(duration_s=1.0, warmup_s=0.3, width=320, height=180)
    json.dumps(r)
    assert r["benchmark"] == "live" and isinstance(r["pass"], bool)
    assert set(r["targets"]) == {"fps_ratio", "latency_p95_ms", "max_pending"}
    (c,) = r["cases"]
    for key in ("source_fps", "shown_fps", "fps_ratio", "latency_p95_ms"):
        assert isinstance(r[key], float) and r[key] == c[key]
    assert r["source_fps"] > 0 and r["shown_fps"] > 0
    assert 0 < r["fps_ratio"] <= 1.2   # a 1 s run shows ~15 frames: one at the edge is 7 %
    assert isinstance(r["dropped"], int) and r["dropped"] >= 0
    assert c["frames_shown"] + c["dropped"] <= c["frames_made"] + 2
    assert r["max_pending"] <= 1 and c["buffer_max_depth"] <= 1
    assert c["histograms_shown"] is False  # the fast live view, as a user gets it by default
    assert c["threads_joined"] and _no_live_threads()
