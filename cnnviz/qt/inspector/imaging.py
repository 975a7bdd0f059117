"""numpy → picture helpers and a small image widget shared by the inspector's views.

Everything here runs on the GUI thread on numpy arrays the inference worker produced; no
torch. Colour comes from :func:`cnnviz.core.display.lut` so the inspector and the playground
share one set of colour-blind-safe maps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from cnnviz.core.display import COLORMAPS, lut
from cnnviz.qt.qimages import to_qimage  # the one numpy → QImage converter

__all__ = [
    "COLORMAP_CHOICES",
    "ImageView",
    "blend_heatmap",
    "colorize_maps",
    "to_qimage",
]

#: "auto": diverging for signed maps (levels symmetric around 0), grey otherwise.
COLORMAP_CHOICES = ("auto", *COLORMAPS)


def _is_signed(maps: np.ndarray) -> bool:
    finite = maps[np.isfinite(maps)]
    return bool(finite.size and finite.min() < 0)


def colorize_maps(maps: np.ndarray, mode: str = "channel", cmap: str = "auto",
                  signed: bool | None = None) -> tuple[np.ndarray, bool, tuple[float, float] | None]:
    """``(C, h, w)`` float maps → ``(C, h, w, 3)`` uint8 RGB tiles.

    ``mode="channel"`` gives every map its own levels (structure in weak channels shows);
    ``"layer"`` one range for all (channels compare). Signed maps (any value < 0) get levels
    symmetric around 0, so the middle of the colormap means 0. NaN/inf are drawn as the
    colour of 0. Returns ``(tiles, signed, levels or None)``; levels only for ``"layer"``.
    """
    x = np.asarray(maps, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"colorize_maps needs (C, h, w), got {x.shape}")
    finite = np.isfinite(x)
    x0 = np.where(finite, x, 0.0).astype(np.float32)
    if signed is None:
        signed = _is_signed(x)
    axes = (1, 2) if mode == "channel" else (0, 1, 2)
    levels = None
    if signed:
        scale = np.abs(x0).max(axis=axes, keepdims=True)
        scale = np.where(scale > 0, scale, 1.0)
        t = x0 / scale * 0.5 + 0.5
        if mode != "channel":
            s = float(scale.max())
            levels = (-s, s)
    else:
        lo = np.where(finite, x0, np.inf).min(axis=axes, keepdims=True)
        hi = np.where(finite, x0, -np.inf).max(axis=axes, keepdims=True)
        lo = np.where(np.isfinite(lo), lo, 0.0)
        hi = np.where(np.isfinite(hi), hi, 0.0)
        span = hi - lo
        t = np.where(span > 0, (x0 - lo) / np.where(span > 0, span, 1.0), 0.0)
        if mode != "channel":
            levels = (float(lo.min()), float(hi.max()))
    t = np.where(finite, t, 0.5 if signed else 0.0)
    idx = np.clip(np.round(t * 255.0), 0, 255).astype(np.uint8)
    name = cmap if cmap != "auto" else ("diverging" if signed else "gray")
    return lut(name)[idx], bool(signed), levels


def blend_heatmap(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5, cmap: str = "magma") -> np.ndarray:
    """``image`` (H, W, 3) uint8 with ``heat`` (H, W) in [0, 1] laid over it in ``cmap``.

    The heat's own strength scales its opacity, so cold regions show the picture."""
    img = np.asarray(image, dtype=np.float32)
    h = np.clip(np.nan_to_num(np.asarray(heat, dtype=np.float32)), 0.0, 1.0)
    if h.shape != img.shape[:2]:
        raise ValueError(f"heatmap {h.shape} does not match the image {img.shape[:2]}")
    colour = lut(cmap)[np.round(h * 255).astype(np.uint8)].astype(np.float32)
    a = (alpha * (0.25 + 0.75 * h))[..., None]
    out = img * (1.0 - a) + colour * a
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


class ImageView(QWidget):
    """Shows one image scaled to fit (aspect kept), pixelated by default, with optional
    boxes and a marker in image pixel coordinates; clicks report the image pixel.

    Signals
    -------
    pixelClicked(int y, int x)
        A left click on the image (not on the margins).
    """

    pixelClicked = Signal(int, int)

    def __init__(self, parent: QWidget | None = None, *, smooth: bool = False, min_size: int = 96):
        super().__init__(parent)
        self._image: QImage | None = None
        self._array: np.ndarray | None = None
        self._boxes: list[tuple[tuple[float, float, float, float], QColor, str]] = []
        self._marker: tuple[float, float] | None = None
        self._placeholder = ""
        self.smooth = smooth
        self.setMinimumSize(min_size, min_size)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(False)

    # -- content
    def set_array(self, arr: np.ndarray | None) -> None:
        """uint8 (H, W) or (H, W, 3); ``None`` clears."""
        self._array = None if arr is None else np.array(arr, copy=True)
        self._image = None if arr is None else to_qimage(self._array)
        self.update()

    def array(self) -> np.ndarray | None:
        """The image shown (a copy of what was set)."""
        return self._array

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self.update()

    def set_boxes(self, boxes: Sequence[tuple[tuple[float, float, float, float], QColor, str]]) -> None:
        """Boxes ``((y0, x0, y1, x1), colour, label)`` in image pixels, end exclusive."""
        self._boxes = list(boxes)
        self.update()

    def set_marker(self, yx: tuple[float, float] | None) -> None:
        """A cross-hair on the pixel ``(y, x)``."""
        self._marker = yx
        self.update()

    def image_size(self) -> tuple[int, int] | None:
        return None if self._image is None else (self._image.height(), self._image.width())

    # -- geometry
    def image_rect(self) -> QRectF:
        """Where the image is drawn in widget coordinates."""
        if self._image is None:
            return QRectF()
        iw, ih = self._image.width(), self._image.height()
        W, H = max(1, self.width() - 4), max(1, self.height() - 4)
        s = min(W / iw, H / ih)
        w, h = iw * s, ih * s
        return QRectF(2 + (W - w) / 2, 2 + (H - h) / 2, w, h)

    def widget_point(self, y: float, x: float) -> QPointF:
        """Widget coordinates of the centre of image pixel ``(y, x)`` (tests click here)."""
        r = self.image_rect()
        ih, iw = self.image_size() or (1, 1)
        return QPointF(r.left() + (x + 0.5) * r.width() / iw, r.top() + (y + 0.5) * r.height() / ih)

    def pixel_at(self, pos: QPointF) -> tuple[int, int] | None:
        r = self.image_rect()
        if self._image is None or not r.contains(pos):
            return None
        ih, iw = self.image_size()
        x = int((pos.x() - r.left()) / r.width() * iw)
        y = int((pos.y() - r.top()) / r.height() * ih)
        return min(max(y, 0), ih - 1), min(max(x, 0), iw - 1)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(280, 280)

    # -- events
    def mousePressEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            p = self.pixel_at(event.position())
            if p is not None:
                self.pixelClicked.emit(*p)
                return
        super().mousePressEvent(event)

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        try:
            if self._image is None:
                if self._placeholder:
                    p.setPen(self.palette().color(self.palette().ColorRole.PlaceholderText))
                    p.drawText(self.rect().adjusted(8, 8, -8, -8),
                               int(Qt.AlignmentFlag.AlignCenter) | int(Qt.TextFlag.TextWordWrap), self._placeholder)
                return
            r = self.image_rect()
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.smooth)
            p.drawImage(r, self._image)
            ih, iw = self.image_size()
            sx, sy = r.width() / iw, r.height() / ih
            for (y0, x0, y1, x1), colour, label in self._boxes:
                rect = QRectF(r.left() + x0 * sx, r.top() + y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy)
                p.setPen(QPen(QColor(0, 0, 0, 160), 4))
                p.drawRect(rect)
                p.setPen(QPen(colour, 2))
                p.drawRect(rect)
                if label:
                    p.drawText(rect.adjusted(3, 2, 0, 0).topLeft() + QPointF(0, 12), label)
            if self._marker is not None:
                y, x = self._marker
                cx, cy = r.left() + (x + 0.5) * sx, r.top() + (y + 0.5) * sy
                half = max(4.0, min(sx, sy) / 2)
                p.setPen(QPen(QColor(0, 0, 0, 180), 4))
                p.drawRect(QRectF(cx - half, cy - half, 2 * half, 2 * half))
                p.setPen(QPen(QColor(255, 220, 0), 2))
                p.drawRect(QRectF(cx - half, cy - half, 2 * half, 2 * half))
        finally:
            p.end()


def split_tiles(image: np.ndarray, rows: int, cols: int, tile_hw: tuple[int, int], pad: int, n: int) -> np.ndarray:
    """The ``n`` tiles of a core mosaic (row-major, ``pad`` pixels apart) as ``(n, th, tw[, 3])``."""
    th, tw = tile_hw
    out = []
    for i in range(n):
        r, c = divmod(i, cols)
        y, x = r * (th + pad), c * (tw + pad)
        out.append(image[y:y + th, x:x + tw])
    return np.stack(out) if out else np.zeros((0, th, tw) + image.shape[2:], image.dtype)


def compose_tiles(tiles: np.ndarray, cols: int, scale: int = 1, gap: int = 3, background: int = 110) -> np.ndarray:
    """RGB tiles ``(n, th, tw, 3)`` → one image, each tile enlarged ``scale`` times (nearest)
    and ``gap`` neutral-grey pixels apart, so tile borders never look like data."""
    n, th, tw = tiles.shape[:3]
    cols = max(1, min(int(cols), n)) if n else 1
    rows = -(-n // cols) if n else 0
    s = max(1, int(scale))
    h, w = th * s, tw * s
    out = np.full((max(1, rows * (h + gap) - gap), max(1, cols * (w + gap) - gap), 3), background, np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        big = np.repeat(np.repeat(tiles[i], s, axis=0), s, axis=1)
        out[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = big
    return out


def gray_levels_to_rgb(u8: np.ndarray, signed: bool, cmap: str = "auto") -> np.ndarray:
    """The core's grey levels (for signed maps 128 means 0) through a colormap."""
    name = cmap if cmap != "auto" else ("diverging" if signed else "gray")
    return lut(name)[np.asarray(u8, dtype=np.uint8)]
