"""The soak benchmark in a tiny mode: the fields it reports, no hook and no thread left behind.

The full run (``cnnviz bench --soak``: 10 000 frames, 1 000 inspections) is a benchmark, not a
test; this checks the machinery with 200 frames and 20 inspections.
"""

from __future__ import annotations

import json

import pytest

from cnnviz.bench.soak import count_hooks, rss_mb, run_soak_bench


@pytest.mark.slow
def test_tiny_soak_reports_every_field_and_leaves_nothing_behind(qtbot, config_dir):
    r = run_soak_bench(frames=200, inspections=20)
    for key in ("frames", "inspections", "rss_growth_mb", "threads_before", "threads_after", "hooks_left",
                "frames_made", "frames_dropped", "max_pending", "pass"):
        assert key in r, key
    assert r["frames"] >= 200 and r["inspections"] == 20
    assert r["hooks_left"] == 0
    assert r["hooks_while_capturing"] > 0            # the hooks were really there while capturing
    assert r["threads_after"] == r["threads_before"]
    assert r["live_threads_joined"] and r["max_pending"] <= 1
    assert r["frames_made"] >= r["frames"]
    assert r["rss_growth_mb"] < 100                  # a tiny run: only a gross leak would show here
    json.dumps(r)                                    # what --json prints


def test_count_hooks_sees_a_hook_left_on_any_submodule():
    from torch import nn

    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.ReLU()))
    assert count_hooks([m]) == 0
    h = m[1][0].register_forward_hook(lambda *a: None)
    p = m.register_forward_pre_hook(lambda *a: None)
    assert count_hooks([m]) == 2
    h.remove()
    p.remove()
    assert count_hooks([m]) == 0
    assert rss_mb() > 0


def test_cli_dispatches_to_the_soak_bench(monkeypatch, capsys):
    import cnnviz.bench.soak as soak
    from cnnviz import cli

    seen = {}

    def fake(**kw):
        seen.update(kw)
        return {"benchmark": "soak", "frames": 1, "inspections": 1, "rss_growth_mb": 0.0, "threads_before": 1,
                "threads_after": 1, "hooks_left": 0}

    monkeypatch.setattr(soak, "run_soak_bench", fake)
    assert cli.main(["bench", "--soak", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["hooks_left"] == 0 and seen == {"device": "cpu"}
