#!/usr/bin/env python
"""Screenshots of the real kernel playground window, for docs/ and the README.

Starts the real :class:`~cnnviz.qt.playground.window.MainWindow` on a bundled sample, drives it
through a few scenes (Sobel x with an explained pixel, stride + pooling, a kernel bank,
the dark theme) and saves each with ``QWidget.grab()``.

Works without a display: it uses Qt's ``offscreen`` platform unless a display is set (or
``--platform xcb`` is given, e.g. under ``xvfb-run -a python scripts/screenshots.py
--platform xcb``). Settings go to a temporary directory, never the user's.

Usage::

    python scripts/screenshots.py [--out docs/images] [--size 1560x980] [--only NAME ...]
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


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "images"), help="folder for the PNGs")
    p.add_argument("--size", default="1560x980", help="window size WxH")
    p.add_argument("--platform", default=None, help="Qt platform (default: offscreen unless a display is set)")
    p.add_argument("--only", nargs="*", default=None, help="scene names to take (default: all)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.platform:
        os.environ["QT_QPA_PLATFORM"] = args.platform
    elif not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    tmp = tempfile.TemporaryDirectory(prefix="cnnviz-shots-")
    os.environ["CNNVIZ_CONFIG_DIR"] = tmp.name

    from PySide6.QtCore import QEventLoop, QTimer

    from cnnviz.qt.app import create_app

    app = create_app(["cnnviz-screenshots"])
    from cnnviz.core.kernels import preset
    from cnnviz.qt.playground.window import MainWindow
    from cnnviz.core.settings import PlaygroundParams
    from cnnviz.qt.playground.views import MAGNITUDE, MOSAIC

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    w, h = (int(v) for v in args.size.lower().split("x"))

    win = MainWindow(load_settings_file=False, settings_file=Path(tmp.name) / "settings.json")
    win.apply_theme("light", save=False)
    win.resize(w, h)
    win.show()

    def settle(ms: int = 150) -> None:
        # let layouts, the worker and pyqtgraph's deferred paints finish (script only: the
        # app itself never spins the event loop by hand)
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    def wait_result(timeout_s: float = 20.0) -> None:
        """Submit the current state and wait until the views show it."""
        rid = win.submit_now()
        deadline = time.monotonic() + timeout_s
        while (win.current_result() is None or win.worker.last_delivered_id < (rid or 0)) \
                and time.monotonic() < deadline:
            settle(20)
        settle(250)

    def shot(name: str) -> None:
        if args.only and name not in args.only:
            return
        path = out / f"{name}.png"
        if not win.grab().save(str(path)):
            raise SystemExit(f"could not write {path}")
        print(f"wrote {path}")

    # 1. first screen: photo, Sobel x, one pixel on an edge explained
    wait_result()
    res = win.current_result()
    conv = res.conv[0]
    y, x = divmod(int(abs(conv[100:-100, 100:-100]).argmax()), conv.shape[1] - 200)
    win.explain_pixel("conv", y + 100, x + 100)
    settle(100)
    win.outputs.fit()
    settle(300)
    shot("playground-overview")  # the README's first picture: the whole image, edges found
    win.zoom_to_explained()
    settle(300)
    shot("playground")

    # 2. stride 2 + padding 1 + ReLU + 2×2 max pooling; a pooled pixel explained
    win.set_params(PlaygroundParams(stride=(2, 2), padding=(1, 1), activation="relu", pool="max"))
    wait_result()
    pool = win.current_result().pool[0]
    py, px = divmod(int(pool.argmax()), pool.shape[1])
    win.explain_pixel("pool", py, px)
    settle(100)
    win.zoom_to_explained()
    settle(300)
    shot("playground-pooling")
    win.outputs.fit()

    # 2b. the Learn panel: the stride lesson applied to the photo
    win.unpin()
    win.outputs.fit()
    win.learn_panel.apply(next(les for les in __import__("cnnviz.core.lessons", fromlist=["LESSONS"]).LESSONS
                               if les.key == "stride"))
    win.dock_learn.show()
    win.dock_learn.raise_()
    wait_result()
    shot("playground-learn")
    win.dock_params.raise_()

    # 2c. the animation: the kernel slides over a crop and the map fills in
    win.set_params(PlaygroundParams(padding=(1, 1)))
    wait_result()
    win.dock_animate.show()
    win.dock_animate.raise_()
    win.animate_panel.set_speed(400)
    win.animate_panel.play()
    settle(900)
    win.animate_panel.pause()
    settle(200)
    shot("playground-animate")
    win.animate_panel.stop()
    win.dock_explain.raise_()

    # 2d. a live source: the moving test pattern at 1280×720, 30 fps, through the pipeline
    win.set_params(PlaygroundParams(padding=(1, 1), activation="relu", pool="max"))
    win.live.start_pattern(1280, 720, 30)
    deadline = time.monotonic() + 15
    while win.live.frames_shown < 20 and time.monotonic() < deadline:
        settle(50)
    win.outputs.fit()
    settle(300)
    shot("playground-live")
    win.live.stop()
    win.live.show_still()
    settle(300)

    # 3. the oriented bank as a mosaic on the test pattern
    win.set_params(PlaygroundParams(activation="relu"))
    win.open_sample("pattern")
    win.set_kernels(preset("oriented-bank").kernels, 0)
    wait_result()
    win.outputs.set_selection(MOSAIC)
    settle(300)
    win.unpin()
    shot("playground-bank")

    # 4. dark theme, Sobel pair with gradient magnitude, on the digit
    win.open_sample("digit")
    win.set_kernels(preset("sobel-pair").kernels, 0, (0, 1))
    win.set_params(PlaygroundParams(padding=(1, 1)))
    win.apply_theme("dark", save=False)
    wait_result()
    win.outputs.set_selection(MAGNITUDE)
    mag = win.current_result().magnitude
    my, mx = divmod(int(mag.argmax()), mag.shape[1])
    win.explain_pixel("magnitude", my, mx)
    settle(300)
    shot("playground-dark")

    win.close()
    win.deleteLater()
    settle(50)
    tmp.cleanup()
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
