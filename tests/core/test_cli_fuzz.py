"""Fuzz the ``cnnviz`` command line in-process: any argv gives exit 0 or 2 (or argparse's
SystemExit 0/2), one-line errors, never an "internal error" (exit 1) or a traceback.

Argument lists are drawn from a vocabulary of real options, good and bad values, and random
text. Everything that would leave the process's sandbox is stubbed: the window (``gui`` / no
arguments), ``--self-test`` and the benchmarks return at once, and ``inspect`` gets the demo
model (no download). Outputs go to relative paths inside a temporary working directory, so
no file is written outside ``tmp_path``.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnviz import cli

SUBCOMMANDS = ["convolve", "inspect", "bench", "gui", "--self-test", "--version", "--help", "-h", "nonsense", ""]
OPTIONS = [
    # convolve
    "--kernel", "-k", "--stride", "--padding", "--padding-mode", "--dilation", "--bias", "--flip", "--channels",
    "--activation", "--slope", "--pool", "--pool-size", "--pool-stride", "--pool-padding", "--ceil", "--device",
    "--npz", "--png", "--list-presets",
    # inspect
    "--weights", "--trust", "--input-size", "--mean", "--std", "--topk", "--out", "--labels", "--model-args",
    # bench
    "--json", "--gui", "--live", "--model", "--soak", "--repeats",
    # junk
    "--", "-", "--nope", "-x",
]
VALUES = [
    "small.png", "gray.png", "notes.txt", "missing.png", "k.json", "bad.json", ".", "demo", "resnet18",
    "sobel-x", "sobel-pair", "oriented-bank", "laplacian-4", "nope", "[[1,0,-1]]", "[[1,2],[3]]", "[[NaN]]", "{}",
    "[[[1]],[[2]],[[3]]]", "[[1e39]]", "0", "1", "2", "3", "5", "-1", "3,2", "1,0", "2,2,2", "99999999999",
    "1e400", "nan", "inf", "-inf", "0.5", "same", "valid", "zeros", "reflect", "circular", "replicate", "max",
    "avg", "relu", "leaky_relu", "tanh", "gray", "each", "full", "cpu", "cuda", "mps", "auto", "out.npz",
    "out.png", "outdir", "out.txt", "224,224", "0.5,0.5,0.5", "0,0,0", "{\"n_classes\": 3}", "",
]
TOKENS = st.one_of(st.sampled_from(OPTIONS), st.sampled_from(VALUES), st.text(max_size=6))
_FREE = st.builds(lambda head, rest: ([head] if head else []) + rest,
                  st.sampled_from(SUBCOMMANDS), st.lists(TOKENS, max_size=9))
_PAIRS = st.lists(st.tuples(st.sampled_from(OPTIONS), st.sampled_from(VALUES)), max_size=5)
# mostly-valid command lines, so the fuzzer also gets past argparse into the pipeline and the model
_CONVOLVE = st.builds(lambda img, k, pairs: ["convolve", img, "-k", k] + [t for p in pairs for t in p],
                      st.sampled_from(["small.png", "gray.png", "notes.txt"]),
                      st.sampled_from(["sobel-x", "sobel-pair", "k.json", "[[1,0,-1]]", "[[[1]],[[2]],[[3]]]"]),
                      _PAIRS)
_INSPECT = st.builds(lambda img, pairs: ["inspect", "demo"] + img + ["--out", "outdir"] + [t for p in pairs for t in p],
                     st.sampled_from([[], ["gray.png"], ["small.png"], ["notes.txt"]]), _PAIRS)
ARGV = st.one_of(_FREE, _CONVOLVE, _INSPECT)


@pytest.fixture(scope="module")
def demo_model():
    from cnnviz.core.models import load_model

    return load_model("demo")


@pytest.fixture
def sandbox(tmp_path, monkeypatch, demo_model):
    """A working directory with inputs, and stubs for everything slow or outside the process."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)).save(tmp_path / "small.png")
    Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(tmp_path / "gray.png")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "k.json").write_text('{"kernels": [[[0, 1, 0], [1, -4, 1], [0, 1, 0]]]}')
    (tmp_path / "bad.json").write_text('{"kernels": [[[1, 2], [3]]], "version": "x"}')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CNNVIZ_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("CNNVIZ_DEBUG", raising=False)

    opened = []
    monkeypatch.setattr(cli, "_run_gui", lambda *a, **k: opened.append(a) or 0)
    import cnnviz.selftest

    monkeypatch.setattr(cnnviz.selftest, "run_self_test", lambda *a, **k: 0)
    import importlib

    for mod, fn in (("conv", "run_conv_bench"), ("gui", "run_gui_bench"), ("live", "run_live_bench"),
                    ("model", "run_model_bench"), ("soak", "run_soak_bench")):
        m = importlib.import_module(f"cnnviz.bench.{mod}")
        monkeypatch.setattr(m, fn, lambda **kw: {"stub": True})

    import cnnviz.core.models as models
    from cnnviz.core.errors import ModelLoadError

    def load_model(spec, **kw):
        if spec == "demo" and not kw.get("weights"):
            return demo_model
        raise ModelLoadError(f"stub: not loading {spec!r} in the fuzz test", "use demo")

    monkeypatch.setattr(models, "load_model", load_model)
    return tmp_path


def run_cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:          # argparse's --help / --version / usage errors
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return code, err.getvalue()


def files_outside(root: Path, before: set[Path]) -> set[Path]:
    return {p for p in root.parent.iterdir()} - before


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=ARGV)
def test_any_argv_gives_exit_0_or_2_and_never_an_internal_error(sandbox, argv):
    code, err = run_cli(argv)
    assert code in (0, 2), (argv, code, err)
    assert "internal error" not in err and "Traceback" not in err, (argv, err)
    if code == 2 and err:
        assert err.startswith(("cnnviz", "usage:")) and "error" in err, (argv, err)
        assert err.count("\n") == 1 and err.endswith("\n"), (argv, err)  # one line, whatever the argv holds


def test_an_argument_with_a_line_break_still_gives_one_line(sandbox):
    for argv in (["convolve", "no\nsuch.png", "-k", "sobel-x"],
                 ["convolve", "small.png", "-k", "sob\rel\n"],
                 ["inspect", "demo", "--out", "outdir", "--topk", "3\n4"],
                 ["nonsense\nline"]):
        code, err = run_cli(argv)
        assert code == 2 and err.count("\n") == 1, (argv, err)
        assert "\\n" in err or "\\r" in err, err  # the break is shown, escaped


def test_known_argv_cases(sandbox):
    """Rows the fuzzer might not draw; each was a traceback or an exit 1 once, or would be."""
    cases = {
        ("convolve", "small.png", "-k", "sobel-x", "--padding", "99999999999"): 2,
        ("convolve", "small.png", "-k", "bad.json"): 2,
        ("convolve", "small.png", "-k", "[[1e39]]"): 2,
        ("convolve", "small.png", "-k", "{\"weights\": [[1]], \"divisor\": 1e-40}"): 2,
        ("convolve", "small.png", "-k", "sobel-x", "--bias", "nan"): 2,
        ("convolve", "small.png", "-k", "sobel-x", "--device", "tpu"): 2,
        ("convolve", "notes.txt", "-k", "sobel-x"): 2,
        ("convolve", "small.png", "-k", "sobel-x", "--npz", "out.txt"): 2,
        ("convolve", "small.png", "-k", "sobel-x", "--npz", "out.npz", "--png", "out.png"): 0,
        ("inspect", "demo", "gray.png", "--out", "outdir"): 0,
        ("inspect", "demo", "--topk", "0", "--out", "outdir"): 2,
        ("bench", "--repeats", "0"): 2,
        ("bench", "--soak", "--json"): 0,
        ("--version",): 0,
    }
    for argv, want in cases.items():
        code, err = run_cli(list(argv))
        assert code == want, (argv, code, err)
        assert "internal error" not in err and "Traceback" not in err, (argv, err)
    assert (sandbox / "out.npz").exists() and (sandbox / "outdir" / "summary.json").exists()
