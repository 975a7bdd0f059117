#!/usr/bin/env python
"""Screenshots of the real "What a channel looks for" window for docs/FEATUREVIZ.md.

Opens :class:`~cnnviz.qt.featureviz.window.FeatureVizWindow` on the demo digits model and the
sample digit, visualizes every channel of ``relu4`` (96 steps, learning rate 0.2), sweeps a
folder of 60 held-out digits plus five scikit-image photos and a text file, shows the unit
view of a unit clicked on the channel's map and a PGD attack, and saves each tab with
``QWidget.grab()`` as ``featureviz-<view>.png``. Offscreen by default; under Xvfb with
``QT_QPA_PLATFORM=xcb DISPLAY=:N``. The cache goes to a temporary folder.

Usage::

    python scripts/featureviz_screenshots.py [--out docs/images]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "docs" / "images"))
    args = ap.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    tmp = Path(tempfile.mkdtemp(prefix="cnnviz-shots-"))
    os.environ["CNNVIZ_CACHE_DIR"] = str(tmp / "cache")

    import numpy as np
    import skimage.data
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    import cnnviz.qt  # noqa: F401
    from cnnviz.core.demo import load_digits_split
    from cnnviz.core.images import save_png
    from cnnviz.qt.featureviz.window import FeatureVizWindow

    folder = tmp / "images"
    folder.mkdir()
    digits = load_digits_split()[2]
    for i in range(60):
        save_png(folder / f"digit_{i:03d}.png", (digits[i] * 255).astype(np.uint8))
    for name in ("camera", "coins", "page", "text", "brick"):
        save_png(folder / f"{name}.png", getattr(skimage.data, name)())
    (folder / "notes.txt").write_text("not an image")

    def wait(cond, timeout=300.0):
        t0 = time.time()
        while not cond():
            app.processEvents()
            time.sleep(0.02)
            if time.time() - t0 > timeout:
                raise SystemExit("timed out")

    out = Path(args.out)
    w = FeatureVizWindow(layer="relu4", channel=3)
    w.resize(1200, 760)
    w.show()
    wait(lambda: w.probe is not None)
    w.steps_spin.setValue(96)
    w.lr_spin.setValue(0.2)
    w.viz_all_button.click()
    wait(lambda: "relu4" in w.state.featviz)
    w.channel_spin.setValue(3)
    w.grab().save(str(out / "featureviz-grid.png"))
    w.show_tab("dataset")
    w.folder_edit.setText(str(folder))
    w.sweep_button.click()
    wait(lambda: w.state.sweep is not None)
    w.grab().save(str(out / "featureviz-top-images.png"))
    w.show_tab("unit")
    app.processEvents()
    h, wd = w.unit_map.map_shape()
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtGui import QMouseEvent

    at = QPointF(w.unit_map.unit_center(h // 2, wd // 2 - 1))  # a click on the map, as a user picks a unit
    press = QMouseEvent(QMouseEvent.Type.MouseButtonPress, at, w.unit_map.mapToGlobal(at), Qt.MouseButton.LeftButton,
                        Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(w.unit_map, press)
    wait(lambda: getattr(w, "unit_shown", None) == (h // 2, wd // 2 - 1) and not w.runner.is_busy())
    app.processEvents()
    w.grab().save(str(out / "featureviz-unit-view.png"))
    w.show_tab("adversarial")
    w.attack_button.click()
    wait(lambda: getattr(w, "divergence", None) is not None)
    w.grab().save(str(out / "featureviz-adversarial.png"))
    w.close()
    print(f"wrote 4 screenshots to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
