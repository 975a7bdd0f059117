"""`cnnviz bench --json` prints one object with the documented fields (speed is not asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from cnnviz.bench.conv import naive_pipeline
from cnnviz.core.conv import ActivationSpec, ConvSpec, PipelineRequest, PoolSpec, run_pipeline
from cnnviz.core.kernels import Kernel


def test_conv_bench_json_fields():
    r = subprocess.run([sys.executable, "-m", "cnnviz.cli", "bench", "--json", "--repeats", "2"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert len(data["cases"]) == 4
    for c in data["cases"]:
        for key in ("pipeline_ms", "floor_ms", "naive_ms", "ratio_floor", "speedup_naive"):
            assert isinstance(c[key], float) and c[key] > 0
        assert c["ratio_floor"] == c["pipeline_ms"] / c["floor_ms"]
    assert {c["channels"] for c in data["cases"]} == {"gray", "each"}
    assert {c["kernel"] for c in data["cases"]} == {"3x3", "5x5"}


def test_naive_reference_equals_pipeline():
    """The textbook loop the benchmark times computes the same numbers as the pipeline."""
    rng = np.random.default_rng(0)
    x = rng.random((12, 14), dtype=np.float32)
    w = rng.normal(size=(3, 3)).astype(np.float32)
    res = run_pipeline(x, PipelineRequest((Kernel(w),), ConvSpec(), ActivationSpec("relu"), PoolSpec("max", 2)))
    np.testing.assert_allclose(naive_pipeline(x, w)[0], res.pool[0], atol=1e-5)


def test_featviz_bench_cases_are_ratios_of_one_run(monkeypatch):
    """`cnnviz bench --featviz` measures both cases side by side (tiny sizes here: shape only)."""
    from cnnviz.bench import featviz as fb

    monkeypatch.setattr(fb, "_model", lambda device, size: _tiny_model(size))
    sweep = fb.sweep_case("cpu", 1, n_images=4, size=16, batch=2)
    step = fb.step_case("cpu", 1, batch=2, size=16, steps=2)
    for c in (sweep, step):
        assert c["baseline_ms"] > 0 and c["measured_ms"] > 0 and isinstance(c["ok"], bool)
    assert sweep["ratio"] == sweep["baseline_ms"] / sweep["measured_ms"]
    assert step["ratio"] == step["measured_ms"] / step["baseline_ms"]


def _tiny_model(size):
    import torch
    from torch import nn

    from cnnviz.core.models import LoadedModel, Preprocessing

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.layer3 = nn.Module()
            self.layer3.add_module("1", nn.Module())
            getattr(self.layer3, "1").relu = nn.ReLU()
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            r = getattr(self.layer3, "1").relu
            x = r(self.conv(x))
            x = r(x)
            return self.fc(self.pool(x).flatten(1))

    torch.manual_seed(0)
    return LoadedModel(module=Net().eval(), kind="python", name="tiny", source="t",
                       preprocessing=Preprocessing(resize=(size, size)), labels=None, input_channels=3,
                       input_size=(size, size))
