#!/usr/bin/env python
"""Screenshots of the real model inspector window, one per view, for docs/ and the README.

Starts :class:`~cnnviz.qt.inspector.InspectorWindow` on the bundled demo model with the sample
digit on the drawing canvas, shows each view (activation grid, overview, weights, Grad-CAM,
receptive field), then a torchvision ResNet-18 with random weights on the sample photo (a
64-channel layer, colour first-layer kernels; nothing is downloaded), the open-model dialog
and the trust dialog, and saves each with ``QWidget.grab()`` as ``inspector-<view>.png``.

Works without a display: it uses Qt's ``offscreen`` platform unless a display is set (or
``--platform xcb`` is given, e.g. ``xvfb-run -a python scripts/inspector_screenshots.py
--platform xcb``). The trust store and recent models go to a temporary directory.

Usage::

    python scripts/inspector_screenshots.py [--out docs/images] [--size 1500x940] [--only grid cam ...]
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

SCENES = ("grid", "overview", "weights", "cam", "rf", "layers", "resnet", "resnet-weights", "load-dialog",
          "trust-dialog")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "images"), help="folder for the PNGs")
    p.add_argument("--size", default="1500x940", help="window size WxH")
    p.add_argument("--platform", default=None, help="Qt platform (default: offscreen unless a display is set)")
    p.add_argument("--only", nargs="*", default=None, choices=SCENES, help="scenes to take (default: all)")
    p.add_argument("--no-resnet", action="store_true", help="skip the torchvision scenes")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.platform:
        os.environ["QT_QPA_PLATFORM"] = args.platform
    elif not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    tmp = tempfile.TemporaryDirectory(prefix="cnnviz-inspector-shots-")
    os.environ["CNNVIZ_CONFIG_DIR"] = tmp.name

    from PySide6.QtCore import QEventLoop, QTimer

    from cnnviz.qt.app import apply_theme, create_app

    app = create_app(["cnnviz-inspector-screenshots"])
    apply_theme("light", app)
    from cnnviz.qt.inspector import InspectorWindow

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    w, h = (int(v) for v in args.size.lower().split("x"))

    def settle(ms: int = 150) -> None:
        # A QEventLoop, not processEvents(): it releases the GIL so the worker threads run
        # (script only: the app itself never spins the event loop by hand).
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    def wait_until(cond, timeout_s: float = 60.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout_s
        while not cond():
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {what or cond}; status: {win.last_message}")
            settle(30)

    def wait_idle(what: str = "") -> None:
        settle(30)
        wait_until(lambda: win.current_capture() is not None and not win.inference.is_busy()
                   and win.inference.pending == 0, what=what)
        settle(250)

    def shot(name: str, widget=None) -> None:
        if args.only and name not in args.only:
            return
        path = out / f"inspector-{name}.png"
        if not (widget or win).grab().save(str(path)):
            raise SystemExit(f"could not write {path}")
        print(f"wrote {path}")

    win = InspectorWindow()
    win.resize(w, h)
    win.show()
    wait_until(lambda: win.current_capture() is not None, what="the demo model")
    wait_idle("the first result")

    # 1. the activation grid of conv2 with a channel open large and a unit clicked
    win.select_layer("conv2")
    wait_idle("conv2")
    res = win.current_capture()
    ch = int(res.channel_stats.std.argmax())
    win.select_channel(ch)
    act = res.activation[ch]
    y, x = divmod(int(act.argmax()), act.shape[1])
    win.activations._on_detail_click(y, x)
    settle(200)
    shot("grid")

    # 2. the overview: every layer as a strip
    win.show_tab("overview")
    wait_idle("overview")
    shot("overview")

    # 3. weights of conv1 with the histograms
    win.select_layer("conv1")
    win.show_tab("weights")
    wait_idle("weights")
    shot("weights")

    # 4. Grad-CAM at the default layer for the predicted class
    win.show_tab("cam")
    wait_idle("cam")
    shot("cam")

    # 5. receptive field of a unit of conv4
    win.select_layer("conv4")
    wait_idle("conv4")
    act = win.current_capture().activation
    c = int(act.reshape(act.shape[0], -1).max(1).argmax())
    win.select_channel(c)
    win.show_tab("rf")
    win.set_rf_unit(6, 7)
    wait_idle("rf")
    shot("rf")

    # 6. the model panel (preprocessing) instead of the layer table
    win.show_tab("grid")
    win.select_layer("pool1")
    win.dock_model.raise_()
    wait_idle("model panel")
    shot("layers")
    win.dock_layers.raise_()

    # 7. the open-model dialog and the trust dialog
    from cnnviz.core.errors import TrustRequired
    from cnnviz.qt.inspector.load_dialog import LoadDialog
    from cnnviz.qt.inspector.trust_dialog import TrustDialog

    dlg = LoadDialog(win, win.recent)
    dlg.set_tab("torchvision")
    dlg.tv_name.setCurrentText("resnet50")
    dlg.show()
    settle(200)
    shot("load-dialog", dlg)
    dlg.close()
    err = TrustRequired(
        "model.pt is a pickled Python object (for example a whole model saved with torch.save(model)); "
        "unpickling can run any code the file names (it refers to collections.OrderedDict, mynet.Net); "
        "cnnviz has not loaded it because you have not said you trust it",
        "load it only if you trust where it came from")
    err.path, err.format, err.sha256 = Path.home() / "models" / "model.pt", "pickle", "3f" * 32
    td = TrustDialog(err, win)
    td.show()
    settle(200)
    shot("trust-dialog", td)
    td.close()

    # 8. a torchvision ResNet-18 (random weights: nothing to download) on the sample photo
    if not args.no_resnet and (not args.only or {"resnet", "resnet-weights"} & set(args.only)):
        from cnnviz.core.images import load_image

        win.set_image(load_image(ROOT / "resources" / "samples" / "photo.png").pixels, "photo.png")
        win.load_model_spec("resnet18", "random")
        wait_until(lambda: win.current_model() is not None and win.current_model().kind == "torchvision",
                   what="resnet18")
        wait_idle("resnet18")
        win.select_layer("layer1.0.conv1")
        win.show_tab("grid")
        wait_idle("layer1.0.conv1")
        win.select_channel(9)
        settle(200)
        shot("resnet")
        win.select_layer("conv1")
        win.show_tab("weights")
        wait_idle("resnet weights")
        shot("resnet-weights")

    win.close()
    win.deleteLater()
    settle(50)
    tmp.cleanup()
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
