"""`cnnviz bench --train` reports the documented fields (speed is not asserted in tests)."""

from __future__ import annotations

import threading


def test_train_bench_fields(qapp, config_dir):
    from cnnviz.bench.train import run_train_bench

    before = {t.ident for t in threading.enumerate()}
    r = run_train_bench(repeats=1, epochs=1, to97=False, warmup=False)
    bare, window = r["cases"]
    assert bare["mode"] == "bare loop" and window["mode"] == "Train window"
    assert bare["steps_per_s"] > 0 and window["steps_per_s"] > 0
    assert r["ratio_window"] == window["steps_per_s"] / bare["steps_per_s"]
    assert window["repaints"] >= 1  # the window really watched
    assert r["meets_target"] == (r["ratio_window"] >= r["target_ratio"] == 0.9)
    assert [t for t in threading.enumerate() if t.ident not in before and t.name.startswith("cnnviz")] == []
