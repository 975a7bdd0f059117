"""A real (not bomb) 20000×15000 photo in the window: the user is asked before a downscale,
memory stays bounded, and file, drag-and-drop and paste give the same array.

The JPEG is written once per module by a subprocess (300 MB while it encodes, none of it in
this process); libjpeg's reduced ("draft") decode opens it in a fraction of a second.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QImage
from PySide6.QtWidgets import QApplication, QMessageBox

from cnnviz.core.images import load_image
from cnnviz.qt.playground import picture_input
from cnnviz.qt.playground.window import LIVE_MAX_SIDE, MainWindow

REPO = Path(__file__).resolve().parents[2]
W, H = 20000, 15000

MAKE = textwrap.dedent("""
    import sys, numpy as np, cv2
    h, w = 15000, 20000
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :]
    img = np.empty((h, w), np.uint8)
    for y0 in range(0, h, 1000):
        y = np.arange(y0, min(h, y0 + 1000), dtype=np.float32)[:, None]
        img[y0:y0 + 1000] = (0.5 * x + 0.5 * y / h * 255 + 40 * np.sin(y / 300) * np.cos(x / 50)).clip(0, 255)
    assert cv2.imwrite(sys.argv[1], img, [cv2.IMWRITE_JPEG_QUALITY, 80])
""")


@pytest.fixture(scope="module")
def huge_jpeg(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("huge") / "panorama.jpg"
    subprocess.run([sys.executable, "-c", MAKE, str(path)], check=True, timeout=120)
    return path


def answer_dialog(qtbot, button_text: str, seen: list[str]) -> None:
    """Click ``button_text`` on the next modal question, recording its text."""

    def click():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, click)
            return
        seen.append(box.text())
        for b in box.buttons():
            if b.text() == button_text:
                b.click()
                return
        box.reject()

    QTimer.singleShot(0, click)


def test_opening_a_huge_photo_asks_first_and_downscale_gives_2048px(qtbot, window, huge_jpeg):
    before = window.current_image()
    seen: list[str] = []
    answer_dialog(qtbot, "Cancel", seen)
    assert not window.open_image(huge_jpeg)
    assert seen and "This image is 15000×20000 H×W (300 MP)" in seen[0]
    assert "panorama.jpg" in seen[0] and "1536×2048" in seen[0]
    assert "cancelled" in window.status_text()
    assert window.current_image() is before                        # nothing changed

    answer_dialog(qtbot, f"Downscale to {LIVE_MAX_SIDE} px", seen)
    assert window.open_image(huge_jpeg)
    assert len(seen) == 2
    img = window.current_image()
    assert img.shape == (1536, 2048) and img.dtype == np.float32
    np.testing.assert_array_equal(img, load_image(huge_jpeg, downscale_to=LIVE_MAX_SIDE).pixels)
    assert "downscaled from 15000×20000" in window.status_text()
    qtbot.waitUntil(lambda: window.current_result().input.shape == (1536, 2048), timeout=10_000)


def test_file_drop_and_paste_of_a_huge_photo_give_the_same_array(qtbot, window, huge_jpeg, monkeypatch):
    asked: list[tuple[int, int]] = []

    def agree(self, label, w, h):
        asked.append((w, h))
        return True

    monkeypatch.setattr(MainWindow, "confirm_downscale", agree)
    assert window.open_image(huge_jpeg)
    opened = window.current_image().copy()
    assert opened.shape == (1536, 2048)

    def reset():
        window.open_sample("checkerboard")
        assert window.current_image().shape != opened.shape

    # drag-and-drop of the file: accepted at once, asked and loaded back in the event loop
    reset()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(huge_jpeg))])
    enter = QDragEnterEvent(QPoint(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)
    assert drop.isAccepted()
    qtbot.waitUntil(lambda: window.current_image().shape == opened.shape, timeout=5000)
    np.testing.assert_array_equal(window.current_image(), opened)

    # paste a file from a file manager
    reset()
    m2 = QMimeData()
    m2.setUrls([QUrl.fromLocalFile(str(huge_jpeg))])
    QGuiApplication.clipboard().setMimeData(m2)
    assert window.paste_from_clipboard()
    np.testing.assert_array_equal(window.current_image(), opened)

    # paste the encoded bytes (a browser's "copy image")
    reset()
    m3 = QMimeData()
    m3.setData("image/jpeg", huge_jpeg.read_bytes())
    QGuiApplication.clipboard().setMimeData(m3)
    assert window.paste_from_clipboard()
    np.testing.assert_array_equal(window.current_image(), opened)

    assert asked == [(W, H)] * 4                                       # every path asked once
    qtbot.waitUntil(lambda: window.current_result().input.shape == (1536, 2048), timeout=10_000)


def test_a_huge_bitmap_on_the_clipboard_is_asked_about_and_shrunk_in_qt(qtbot, window, monkeypatch):
    monkeypatch.setattr(picture_input, "ASK_DOWNSCALE_PIXELS", 1_000_000)         # a 2.4 MP bitmap counts as huge here
    asked = []
    monkeypatch.setattr(MainWindow, "confirm_downscale", lambda self, label, w, h: asked.append((w, h)) or True)
    img = QImage(2400, 1000, QImage.Format.Format_RGB888)
    img.fill(Qt.GlobalColor.darkCyan)
    m = QMimeData()
    m.setImageData(img)
    QGuiApplication.clipboard().setMimeData(m)
    assert window.paste_from_clipboard()
    assert asked == [(2400, 1000)]
    assert window.current_image().shape == (853, 2048, 3)


MEASURE = textwrap.dedent("""
    import json, sys
    from cnnviz.qt import app as qtapp
    app = qtapp.create_app(["t"])
    from cnnviz.qt.playground.window import MainWindow

    def peak_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024

    MainWindow.confirm_downscale = lambda self, label, w, h: True
    w = MainWindow(load_settings_file=False, settings_file=sys.argv[2])
    w.show()
    while w.current_result() is None:
        app.processEvents()
    before = peak_mb()
    ok = w.open_image(sys.argv[1])
    w.submit_now()
    while w.current_result() is None or w.current_result().input.shape != (1536, 2048):
        app.processEvents()
    after = peak_mb()
    w.close()
    print("RESULT" + json.dumps({"ok": ok, "growth_mb": after - before}))
""")


def test_opening_a_huge_photo_keeps_memory_bounded(huge_jpeg, tmp_path):
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux's /proc/self/status")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", CNNVIZ_CONFIG_DIR=str(tmp_path), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", MEASURE, str(huge_jpeg), str(tmp_path / "s.json")], env=env,
                          capture_output=True, text=True, timeout=120)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    assert proc.returncode == 0 and lines, proc.stdout + proc.stderr
    r = json.loads(lines[-1][6:])
    assert r["ok"]
    # a full decode would be 300 MB (8-bit) and 1.2 GB as float32; the draft decode plus the
    # 2048×1536 picture, its pipeline maps and display images stay far below
    assert r["growth_mb"] < 150, r
