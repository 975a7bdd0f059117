"""Golden images, inspector side: the grid the inspector shows for a layer == its PNG export
== the layer mosaic `cnnviz inspect` writes.

All three come from one core function, :func:`cnnviz.core.display.layer_mosaic` (the core
tiler's levels and grid; grey for unsigned layers, diverging for signed ones): the export
saves the grid's own bytes, and ``cnnviz inspect`` writes the same bytes for each layer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")

from cnnviz.qt.inspector import InspectorWindow  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DIGIT = ROOT / "resources" / "samples" / "digit.png"
LAYERS = ("conv1", "relu2", "pool2")
TIMEOUT = 30_000


def read_png(path: Path) -> np.ndarray:
    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert a is not None, path
    return cv2.cvtColor(a, cv2.COLOR_BGRA2RGBA if a.shape[2] == 4 else cv2.COLOR_BGR2RGB)


@pytest.fixture
def inspector(qtbot, config_dir):
    w = InspectorWindow()
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    qtbot.waitUntil(lambda: w.current_capture() is not None, timeout=TIMEOUT)
    yield w
    w.close()


def shown_layer(qtbot, w, layer: str) -> np.ndarray:
    w.select_layer(layer)
    qtbot.waitUntil(lambda: w.current_capture() is not None and not w.inference.is_busy()
                    and w.current_capture().layer == layer and w.grid.mosaic() is not None, timeout=TIMEOUT)
    return w.grid.mosaic()


def test_the_inspector_exports_the_grid_it_shows(qtbot, inspector, tmp_path):
    for layer in LAYERS:
        shown = shown_layer(qtbot, inspector, layer)
        path = inspector.export_grid_png(tmp_path / f"{layer}.png")
        assert path is not None
        np.testing.assert_array_equal(read_png(path), shown, err_msg=layer)
        tiles = inspector.grid.tiles()                  # the tiles on screen are in the export
        assert tiles.shape[0] == inspector.grid.tile_count()
        np.testing.assert_array_equal(shown[:tiles.shape[1], :tiles.shape[2]], tiles[0])


def test_the_inspect_command_writes_the_grid_the_inspector_shows(qtbot, inspector, tmp_path):
    out = tmp_path / "cli"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "cnnviz.cli", "inspect", "demo", str(DIGIT), "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    files = {layer["name"]: out / layer["png"] for layer in json.loads((out / "summary.json").read_text())["layers"]}
    for layer in LAYERS:
        np.testing.assert_array_equal(read_png(files[layer]), shown_layer(qtbot, inspector, layer), err_msg=layer)
