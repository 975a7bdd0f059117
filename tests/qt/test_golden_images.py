"""Golden images: the bytes the playground draws == its PNG export == `cnnviz convolve --png`.

One display path (:mod:`cnnviz.core.display`) colours every picture, so what the user sees,
what they save and what the CLI writes are the same uint8 pixels. The digests pin the pixels
the window showed before the display code moved into the core (the first screen and a pooled
bank); a change to levels, colormaps or tiling shows up here as a new digest.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from cnnviz.core.kernels import preset
from cnnviz.qt.playground.window import SAMPLES_DIR
from cnnviz.core.settings import PlaygroundParams
from cnnviz.qt.playground.views import MOSAIC

ROOT = Path(__file__).resolve().parents[2]
PHOTO = SAMPLES_DIR / "photo.png"

# sha256 (first 16 hex digits) of the RGB(A) bytes each view drew, recorded before the move
FIRST_SCREEN = {"input": "0fb667b26ae97a53", "conv": "f9ca4faf1b522dc1", "activation": "f9ca4faf1b522dc1"}
POOLED_BANK = {"input": "0fb667b26ae97a53", "conv": "062ca9d8b9fe8001", "activation": "062ca9d8b9fe8001",
               "pool": "f5cd52dcc05be824"}


def digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def read_png(path: Path) -> np.ndarray:
    """A PNG's uint8 RGB or RGBA, exactly as stored."""
    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert a is not None, path
    return cv2.cvtColor(a, cv2.COLOR_BGRA2RGBA if a.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def cli_png(tmp_path: Path, *args: str) -> np.ndarray:
    out = tmp_path / "cli.png"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "cnnviz.cli", "convolve", str(PHOTO), *args, "--png", str(out)],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    return read_png(out)


def shown(window, stage: str) -> np.ndarray:
    """The bytes the view's image item draws, as RGB(A)."""
    view = window.outputs.view(stage)
    item = view.image_item.image      # (H, W, 4) B, G, R, A: what pyqtgraph paints
    rgba = np.ascontiguousarray(item[..., [2, 1, 0, 3]])
    return rgba[..., :3] if (rgba[..., 3] == 255).all() else rgba


def check_same_bytes(window, tmp_path: Path, golden: dict[str, str]) -> dict[str, np.ndarray]:
    pictures = {stage: shown(window, stage) for stage in golden}
    assert {s: digest(p) for s, p in pictures.items()} == golden
    export = tmp_path / "export"
    export.mkdir()
    paths = window.save_pngs(export)
    assert sorted(p.stem.split("_")[-1] for p in paths) == sorted(golden)
    for p in paths:
        saved = read_png(p)
        np.testing.assert_array_equal(saved, pictures[p.stem.split("_")[-1]], err_msg=p.name)
    return pictures


def test_first_screen_window_export_and_cli_are_the_same_bytes(window, tmp_path):
    pictures = check_same_bytes(window, tmp_path, FIRST_SCREEN)
    assert pictures["conv"].shape == (510, 510, 3)
    np.testing.assert_array_equal(cli_png(tmp_path, "--kernel", "sobel-x"), pictures["activation"])


def test_pooled_bank_mosaic_window_export_and_cli_are_the_same_bytes(qtbot, window, tmp_path):
    window.set_kernels(preset("sobel-pair").kernels, 0, (0, 1))
    window.set_params(PlaygroundParams(pool="max"))
    window.outputs.set_selection(MOSAIC)
    qtbot.waitUntil(lambda: window.current_request().pool is not None and len(window.current_request().kernels) == 2
                    and window.outputs.mosaic_layout() is not None
                    and window.outputs.view("pool").image() is not None
                    and window.outputs.view("pool").image().data.shape == (255, 511), timeout=10_000)
    pictures = check_same_bytes(window, tmp_path, POOLED_BANK)
    pool = pictures["pool"]
    assert pool.shape == (255, 511, 4)                      # the gap between the tiles is transparent
    assert (pool[:, 255, 3] == 0).all() and (pool[:, :255, 3] == 255).all()
    np.testing.assert_array_equal(cli_png(tmp_path, "--kernel", "sobel-pair", "--pool", "max"), pool)


@pytest.mark.parametrize("stage", ["conv", "pool"])
def test_a_dragged_histogram_level_is_what_the_export_saves(qtbot, window, tmp_path, stage):
    window.set_params(PlaygroundParams(pool="max"))
    qtbot.waitUntil(lambda: window.outputs.view("pool").image() is not None, timeout=10_000)
    view = window.outputs.view(stage)
    view.histogram.region.setRegion((-0.25, 0.25))          # the user drags the levels
    qtbot.waitUntil(lambda: view.levels() == pytest.approx((-0.25, 0.25)), timeout=5_000)
    paths = {p.stem.split("_")[-1]: p for p in window.save_pngs(tmp_path)}
    np.testing.assert_array_equal(read_png(paths[stage]), shown(window, stage))
