"""Screenshots of the playground for the user guide (issue 18): the first screen, presentation
mode mid-step, a 7×7 kernel with its explanation and full colour mode, at 1280×720 and
1920×1080, light and dark. Run: QT_QPA_PLATFORM=offscreen python scripts/classroom_screenshots.py docs/images
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("CNNVIZ_CONFIG_DIR", tempfile.mkdtemp(prefix="cnnviz-shots-"))


def main(out: Path, sizes=((1280, 720), (1920, 1080)), themes=("light", "dark")) -> list[Path]:
    import cnnviz.qt  # noqa: F401 - PySide6 before pyqtgraph
    from cnnviz.core.kernels import preset
    from cnnviz.qt.app import create_app
    from cnnviz.qt.playground.window import MainWindow
    from cnnviz.core.settings import PlaygroundParams

    app = create_app([])
    out.mkdir(parents=True, exist_ok=True)
    made = []

    def settle(w, predicate=lambda: True, seconds=15.0):
        t = time.monotonic()
        while time.monotonic() - t < seconds:
            app.processEvents()
            if w.current_result() is not None and predicate():
                break
            time.sleep(0.01)
        for _ in range(30):
            app.processEvents()
            time.sleep(0.005)

    for theme in themes:
        for W, H in sizes:
            w = MainWindow(load_settings_file=False)
            w.apply_theme(theme, save=False)
            w.show()
            w.resize(W, H)
            settle(w)
            w.resize(W, H)
            settle(w)
            tag = f"{W}x{H}-{theme}"

            def shot(name):
                p = out / f"{name}-{tag}.png"
                w.grab().save(str(p))
                made.append(p)

            w.explain_pixel("conv", 200, 230)
            settle(w)
            shot("first-screen")
            w.presentation.enter()
            settle(w)
            w.presentation.set_position(180, 200)
            settle(w)
            shot("presentation")
            w.presentation.leave()
            w.set_kernels(preset("oriented-bank").kernels, 2)
            settle(w, lambda: w.current_request().kernels[0].size == (7, 7))
            w.explain_pixel("conv", 150, 200, kernel=2)
            settle(w)
            shot("kernel-7x7")
            w.set_kernels((preset("sobel-x").kernel,), 0)
            w.set_params(PlaygroundParams(channels="full", padding=(1, 1)))
            settle(w, lambda: w.current_request().conv.channels == "full")
            w.kernel_editor.splitChannels()
            for (r, c), v in (((0, 0), 1.0), ((1, 1), 2.0), ((2, 2), 1.0)):
                w.kernel_editor.grid().cellEdit.emit(r, c, v, 0)
            w.kernel_editor.setChannel(0)
            settle(w, lambda: w.current_request().kernels[0].weights.ndim == 3)
            w.explain_pixel("conv", 200, 230)
            settle(w)
            shot("full-colour")
            w.close()
            w.deleteLater()
            app.processEvents()
    return made


if __name__ == "__main__":
    for p in main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images")):
        print(p)
