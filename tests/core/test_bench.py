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
