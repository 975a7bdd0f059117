"""HiDPI: at a device pixel ratio of 2 the window renders at twice the pixels, not upscaled.

Qt takes the scale factor when the application starts, so this runs the real window in a
subprocess with ``QT_SCALE_FACTOR=2``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, sys, time
from PySide6.QtWidgets import QApplication
from cnnviz.qt.app import create_app
from cnnviz.qt.playground.window import MainWindow
from cnnviz.qt.playground.kernel_bank import kernel_thumbnail
from cnnviz.core.kernels import preset

app = create_app([])
win = MainWindow()
win.resize(900, 600)
win.show()
deadline = time.monotonic() + 30
while win.current_result() is None and time.monotonic() < deadline:
    app.processEvents(); time.sleep(0.01)
shot = win.grab()
img = shot.toImage()
thumb = kernel_thumbnail(preset("sobel-x").kernel, 36)
print("REPORT" + json.dumps({
    "app_dpr": app.devicePixelRatio(), "shot_dpr": shot.devicePixelRatio(),
    "shot_px": [img.width(), img.height()], "logical": [win.width(), win.height()],
    "thumb_dpr": thumb.devicePixelRatio(), "thumb_px": [thumb.width(), thumb.height()],
}))
win.close()
"""


def test_window_and_icons_render_at_twice_the_pixels_on_a_2x_screen(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QT_SCALE_FACTOR="2",
               CNNVIZ_CONFIG_DIR=str(tmp_path / "cfg"), PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120,
                       cwd=tmp_path)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("REPORT")]
    assert r.returncode == 0 and lines, r.stdout[-2000:] + r.stderr[-2000:]
    rep = json.loads(lines[-1][len("REPORT"):])
    assert rep["app_dpr"] == 2.0 and rep["shot_dpr"] == 2.0
    assert rep["shot_px"] == [2 * rep["logical"][0], 2 * rep["logical"][1]]   # drawn, not stretched
    assert rep["thumb_dpr"] == 2.0 and rep["thumb_px"] == [72, 72]             # kernel icons too
