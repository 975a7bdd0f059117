"""Render resources/icons/cnnviz.svg to PNG sizes (run offscreen: QT_QPA_PLATFORM=offscreen)."""
import sys
from PySide6.QtGui import QGuiApplication, QImage, QPainter, QColor
from PySide6.QtSvg import QSvgRenderer
app = QGuiApplication(sys.argv)
r = QSvgRenderer("resources/icons/cnnviz.svg")
assert r.isValid()
for s in (16, 24, 32, 48, 64, 128, 256, 512):
    img = QImage(s, s, QImage.Format_ARGB32); img.fill(QColor(0, 0, 0, 0))
    p = QPainter(img); p.setRenderHint(QPainter.Antialiasing); r.render(p); p.end()
    img.save(f"resources/icons/cnnviz-{s}.png")
print("ok")
