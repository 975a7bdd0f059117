"""One output view: a map (the picture the core coloured), its histogram, its title and
worked shape formula, the hover/click pixel and the window/tap overlays (pyqtgraph).

A (H, W, 4) uint8 B, G, R, A picture from :func:`cnnviz.core.display.display_bgra` is
handed to the image item as is: no colouring on the GUI thread except when the user drags
the histogram's levels.
"""

from __future__ import annotations

import math
import sys

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QGraphicsRectItem, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

import pyqtgraph as pg
from pyqtgraph import functions as pg_fn

from cnnviz.core.display import (COLORMAPS, StageImage, clean_levels, export_rgb, histogram_counts, lut,
                                 stage_image)

STAGE_TITLES = {"input": "Input", "conv": "Convolution", "activation": "Activated", "pool": "Pooled"}
_LITTLE_ENDIAN = sys.byteorder == "little"


class _MapImageItem(pg.ImageItem):
    """An ImageItem that scales smoothly when shrunk and shows crisp pixels when zoomed in.

    pyqtgraph's autoDownsample (a mean over blocks on every repaint) would cost more than
    the whole convolution on a 1280×720 map; Qt's bilinear filtering while drawing is
    almost free, and keeps thin edges visible when the map is shown smaller than 1:1.
    """

    def render(self) -> None:  # noqa: D102
        # A (H, W, 4) uint8 B, G, R, A picture (display_bgra) is Qt's native 32-bit format
        # on a little-endian machine: wrap it, no conversion here nor at every paint
        # (pyqtgraph would wrap it as RGBA8888, which the painter converts on each blit).
        img = self.image
        if img is not None and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 4:
            if _LITTLE_ENDIAN:
                self.qimage = pg_fn.ndarray_to_qimage(np.ascontiguousarray(img),
                                                      QImage.Format.Format_ARGB32_Premultiplied)
            else:
                rgba = np.ascontiguousarray(img[..., [2, 1, 0, 3]])
                self.qimage = pg_fn.ndarray_to_qimage(rgba, QImage.Format.Format_RGBA8888_Premultiplied)
            self._renderRequired = False
            self._unrenderable = False
            return
        super().render()

    def paint(self, p, *args):  # noqa: ANN001, D102
        t = p.transform()
        shrunk = abs(t.m11()) + abs(t.m21()) < 1.0 or abs(t.m22()) + abs(t.m12()) < 1.0
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, shrunk)
        super().paint(p, *args)


class ColorBar(QWidget):
    """A slim vertical colour bar: the map's colormap from its low level (bottom) to its
    high level (top), with the two levels written. It stands in for the histogram when
    histograms are hidden (live mode), and costs one small paint when the levels change."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("color-bar")
        self._cmap = "gray"
        self._levels = (0.0, 1.0)
        self.setFixedWidth(48)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)
        self.setToolTip("Colour scale of the map: the value at the top is drawn in the top colour")

    def set_scale(self, cmap: str, levels: tuple[float, float]) -> None:
        levels = (float(levels[0]), float(levels[1]))
        if (cmap, levels) != (self._cmap, self._levels):
            self._cmap, self._levels = cmap, levels
            self.update()

    def scale(self) -> tuple[str, tuple[float, float]]:
        return self._cmap, self._levels

    def labels(self) -> tuple[str, str]:
        """The texts written at the top (high level) and the bottom (low level)."""
        return _level_text(self._levels[1]), _level_text(self._levels[0])

    def paintEvent(self, event) -> None:  # noqa: ARG002, N802 - Qt's name
        from PySide6.QtGui import QLinearGradient

        p = QPainter(self)
        fm = p.fontMetrics()
        th = fm.height()
        bar = QRectF(2, th + 2, 12, max(4, self.height() - 2 * th - 4))
        table = lut(self._cmap) if self._cmap in COLORMAPS else lut("gray")
        grad = QLinearGradient(0, bar.bottom(), 0, bar.top())
        for i in range(0, 256, 15):
            grad.setColorAt(i / 255, QColor(*(int(v) for v in table[i][:3])))
        grad.setColorAt(1.0, QColor(*(int(v) for v in table[255][:3])))
        p.fillRect(bar, grad)
        p.setPen(self.palette().color(self.foregroundRole()))
        p.drawRect(bar)
        hi, lo = self.labels()
        p.drawText(QRectF(0, 0, self.width(), th), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, hi)
        p.drawText(QRectF(0, self.height() - th, self.width(), th),
                   Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, lo)
        p.end()


def _level_text(v: float) -> str:
    if not math.isfinite(v):
        return str(v)
    text = f"{v:.3g}"
    return text.replace("-", "−")


def _colormap(name: str) -> pg.ColorMap:
    table = lut(name)
    # 11 stops are enough to reproduce the tables (they are interpolated from ≤ 11 points)
    idx = np.linspace(0, 255, 11).round().astype(int)
    return pg.ColorMap(np.linspace(0.0, 1.0, len(idx)), table[idx])


class MapView(QWidget):
    """One map: a title with its shape, the image (with an optional histogram) and the
    worked shape formula underneath.

    Signals
    -------
    hovered(int row, int col)
        The pointer moved onto another data pixel of the shown array.
    clicked(int row, int col)
        A left click on a data pixel.
    left()
        The pointer left the image.
    levelsEdited()
        The user dragged the histogram's level region.
    """

    hovered = Signal(int, int)
    clicked = Signal(int, int)
    left = Signal()
    levelsEdited = Signal()
    doubleClicked = Signal()

    def __init__(self, stage: str, parent: QWidget | None = None, histogram: bool = True):
        super().__init__(parent)
        self.stage = stage
        self.setObjectName(f"view-{stage}")
        self._data: np.ndarray | None = None
        self._image: StageImage | None = None
        self._rect = QRectF()
        self._levels: tuple[float, float] = (0.0, 1.0)
        self._cmap = "gray"
        self._gradient_cmap: str | None = None
        self._programmatic = False
        self._hist_wanted = True
        self._hist_shown: bool | None = None
        # the picture whose histogram the next flush draws: (data, levels)
        self._hist_pending: tuple[np.ndarray, tuple[float, float]] | None = None
        self._hist_range: tuple[float, float] | None = None
        self._hist_levels: tuple[float, float] | None = None   # levels of the counts drawn
        self._placeholder_msg: str | None = None
        self._last_hover: tuple[int, int] | None = None

        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.setSpacing(1)
        self.title = QLabel(STAGE_TITLES.get(stage, stage))
        self.title.setObjectName("title")
        f = self.title.font()
        f.setBold(True)
        self.title.setFont(f)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.title.setWordWrap(True)  # a long title takes two lines rather than widening the window
        lay.addWidget(self.title)

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.ci.layout.setContentsMargins(0, 0, 0, 0)
        self.graphics.ci.layout.setSpacing(2)
        self.graphics.setMinimumSize(120, 100)
        self.view_box: pg.ViewBox = self.graphics.addViewBox(row=0, col=0, lockAspect=True, invertY=True,
                                                             enableMenu=True)
        self.view_box.setDefaultPadding(0.02)
        self.image_item = _MapImageItem(axisOrder="row-major")
        self.view_box.addItem(self.image_item)
        self.histogram: pg.HistogramLUTItem | None = None
        if histogram:
            # Not linked to the image item: pyqtgraph would recompute the image's histogram
            # and re-colour the float image on every frame. It gets the worker's counts,
            # and a drag of its levels re-colours the picture here (_on_levels_dragged).
            self.histogram = pg.HistogramLUTItem(fillHistogram=True)
            self.histogram.vb.setMinimumWidth(30)
            self.histogram.vb.setMaximumWidth(60)
            self.histogram.gradient.showTicks(False)
            self.histogram.sigLevelsChanged.connect(self._on_levels_dragged)
            self.histogram.sigLevelChangeFinished.connect(self._on_levels_edited)
            self.graphics.addItem(self.histogram, row=0, col=1)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(2)
        row.addWidget(self.graphics, 1)
        self.color_bar = ColorBar(self)
        self.color_bar.hide()
        row.addWidget(self.color_bar)
        lay.addLayout(row, 1)
        self._tile_labels: list[pg.TextItem] = []

        self.formula = QLabel("")
        self.formula.setObjectName("formula")
        self.formula.setWordWrap(True)
        self.formula.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        mono = QFont("DejaVu Sans Mono")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        mono.setPointSizeF(max(7.0, self.font().pointSizeF() * 0.85))
        self.formula.setFont(mono)
        self.formula.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        lay.addWidget(self.formula)

        # a note over an empty view ("pooling is off"), centred whatever the zoom
        self._placeholder = QLabel("", self.graphics)
        self._placeholder.setObjectName("placeholder")
        self._placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._placeholder.setWordWrap(True)
        self._placeholder.setStyleSheet("color: rgb(140, 140, 140); background: transparent;")
        self._placeholder.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self._placeholder.hide()
        self.graphics.installEventFilter(self)

        # overlays: the receptive/pool window, the taps of the kernel and the pointed pixel
        self._window_item = QGraphicsRectItem()
        pen = QPen(QColor(255, 170, 0))
        pen.setCosmetic(True)
        pen.setWidthF(2.0)
        self._window_item.setPen(pen)
        self._window_item.setZValue(10)
        self._window_item.hide()
        self.view_box.addItem(self._window_item, ignoreBounds=True)
        self._taps_item = pg.ScatterPlotItem(size=5, pen=pg.mkPen(0, 0, 0), brush=pg.mkBrush(255, 170, 0))
        self._taps_item.setZValue(11)
        self.view_box.addItem(self._taps_item, ignoreBounds=True)
        self._marker_item = QGraphicsRectItem()
        mpen = QPen(QColor(0, 200, 90))
        mpen.setCosmetic(True)
        mpen.setWidthF(2.0)
        self._marker_item.setPen(mpen)
        self._marker_item.setZValue(12)
        self._marker_item.hide()
        self.view_box.addItem(self._marker_item, ignoreBounds=True)

        scene = self.graphics.scene()
        scene.sigMouseMoved.connect(self._on_mouse_moved)
        scene.sigMouseClicked.connect(self._on_mouse_clicked)

    # -- data ----------------------------------------------------------------------------
    def set_data(self, data: np.ndarray, levels: tuple[float, float], cmap: str | None,
                 rect: QRectF | None = None) -> None:
        """Show ``data`` ((H, W) or (H, W, 3)) with ``levels``; ``cmap`` for 2-D data.

        Colours on the calling thread; results from the window's worker come ready
        coloured through :meth:`set_image`. ``rect`` places the array in view coordinates
        (None: one unit per pixel at 0, 0).
        """
        if (data is self._data and clean_levels(levels) == self._levels and (rect is None or rect == self._rect)
                and (cmap is None or cmap == self._cmap)):
            return  # the same picture again: no re-colouring
        if cmap is None:
            cmap = self._cmap if self._cmap in COLORMAPS else "gray"
        self.set_image(stage_image(data, levels, cmap), rect)

    def set_image(self, image: StageImage, rect: QRectF | None = None) -> None:
        """Show a coloured :class:`StageImage`; ``rect`` places it in view coordinates
        (None: one unit per pixel at 0, 0). Only what changed is touched: the same
        picture again (the input view on a kernel edit) costs nothing."""
        data = image.data
        if rect is None:
            rect = QRectF(0, 0, data.shape[1], data.shape[0])
        if image is self._image or (
                self._image is not None and data is self._data and image.levels == self._levels
                and image.cmap == self._cmap and image.pixels.shape == self._image.pixels.shape):
            if rect != self._rect:
                self._rect = rect
                self.image_item.setRect(rect)
            return
        first = self._data is None
        if self._placeholder_msg is not None:
            self._placeholder.hide()
            self._placeholder_msg = None
        self._image = image
        self._data = data
        self._levels = image.levels
        self._cmap = image.cmap
        self.image_item.setImage(image.pixels, autoLevels=False)
        if self.histogram is not None and data.ndim == 2:
            if image.cmap != self._gradient_cmap and image.cmap in COLORMAPS:
                self._gradient_cmap = image.cmap
                self.histogram.gradient.setColorMap(_colormap(image.cmap))
                self.histogram.gradient.showTicks(False)
            self._hist_pending = (data, image.levels)
        else:
            self._hist_pending = None
        self._update_histogram()
        if rect != self._rect or first:
            self._rect = rect
            self.image_item.setRect(rect)
        if first:
            self.view_box.autoRange(padding=0.02)

    def image(self) -> StageImage | None:
        """The picture shown now (None when empty)."""
        return self._image

    def displayed_image(self) -> np.ndarray | None:
        """The uint8 RGB (RGBA where the mosaic's gaps are transparent) of the bytes the
        image item draws, as an export writes them (None when empty)."""
        item = self.image_item.image
        if self._image is None or item is None:
            return None
        return export_rgb(item)

    def displayed_rgb(self) -> np.ndarray | None:
        """The (H, W, 3) uint8 RGB the image item draws (None when empty)."""
        item = self.image_item.image
        if self._image is None or item is None:
            return None
        return np.ascontiguousarray(item[..., 2::-1])

    def clear(self, message: str = "") -> None:
        """Show nothing (with an optional grey note in the middle)."""
        if self._data is None and self._placeholder_msg == (message or None):
            return  # already showing exactly this
        self._data = None
        self._image = None
        self._hist_pending = None
        self.image_item.clear()
        self._update_histogram()
        self.hide_overlays()
        self.formula.setText("")
        if message:
            self._placeholder.setText(message)
            self._placeholder.setGeometry(self.graphics.rect())
            self._placeholder.show()
            self._placeholder_msg = message
        else:
            self._placeholder.hide()
            self._placeholder_msg = None

    def placeholder_text(self) -> str:
        return self._placeholder.text() if not self._placeholder.isHidden() else ""

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        if obj is self.graphics and event.type() == QEvent.Type.Resize:
            self._placeholder.setGeometry(self.graphics.rect())
        return super().eventFilter(obj, event)

    def data(self) -> np.ndarray | None:
        """The float array the view pictures (its colours are :meth:`displayed_rgb`)."""
        return self._data

    def levels(self) -> tuple[float, float]:
        return self._levels

    def current_levels(self) -> tuple[float, float]:
        """Levels the picture is coloured with now (after any histogram drag)."""
        return self._levels

    def colormap(self) -> str:
        return self._cmap

    def set_tile_labels(self, labels: list[tuple[float, float, str]]) -> None:
        """Names written at the top-left corner of mosaic tiles: (x, y, text) in view
        coordinates; [] removes them."""
        while len(self._tile_labels) > len(labels):
            self.view_box.removeItem(self._tile_labels.pop())
        while len(self._tile_labels) < len(labels):
            item = pg.TextItem("", color=(255, 255, 255), fill=pg.mkBrush(0, 0, 0, 150), anchor=(0, 0))
            item.setZValue(9)
            self.view_box.addItem(item, ignoreBounds=True)
            self._tile_labels.append(item)
        for item, (x, y, text) in zip(self._tile_labels, labels):
            if item.textItem.toPlainText() != text:
                item.setText(text)
            item.setPos(x, y)

    def tile_labels(self) -> list[str]:
        return [item.textItem.toPlainText() for item in self._tile_labels]

    def set_texts(self, title: str, formula: str) -> None:
        if title != self.title.text():
            self.title.setText(title)
            self.title.setToolTip(title)
        if formula != self.formula.text():
            self.formula.setText(formula)

    def set_histogram_visible(self, visible: bool) -> None:
        self._hist_wanted = visible
        if visible and self._data is not None and self._data.ndim == 2 and self._hist_pending is None:
            # counts were not made while hidden: count what is shown now
            self._hist_pending = (self._data, self._levels)
        self._update_histogram()
        if visible:
            self.flush_histogram()

    def histogram_visible(self) -> bool:
        return bool(self._hist_shown)

    def _update_histogram(self) -> None:
        # the colour bar stands in for a hidden histogram (live mode): a map always says its scale
        bar = (self._data is not None and self._data.ndim == 2 and self.stage != "input"
               and not (self.histogram is not None and self._hist_wanted))
        if bar:
            self.color_bar.set_scale(self._cmap, self._levels)
        if bar != (not self.color_bar.isHidden()):
            self.color_bar.setVisible(bar)
        if self.histogram is not None:
            visible = self._hist_wanted and self._data is not None and self._data.ndim == 2
            if visible != self._hist_shown:  # a relayout only when it really changes
                self._hist_shown = visible
                self.histogram.setVisible(visible)
                self.graphics.ci.layout.setColumnMaximumWidth(1, 10_000 if visible else 0)

    def histogram_pending(self) -> bool:
        """A newer histogram waits for the next (throttled) flush."""
        return self._hist_pending is not None and bool(self._hist_shown)

    def flush_histogram(self, settled: bool = True) -> None:
        """Draw the histogram of the shown picture, if a newer one is waiting.

        ``settled=False`` (results still streaming) keeps the value range unless the
        levels left it or shrank to under a quarter of it."""
        if self._hist_pending is None or self.histogram is None or not self._hist_shown:
            return  # nothing new, or hidden (counted when shown again)
        pending, self._hist_pending = self._hist_pending, None
        data, levels = pending
        counts = histogram_counts(data, levels)  # a sample: ~1 ms, at most a few times a second
        self._programmatic = True
        try:
            self.histogram.plot.setData(*counts)
            if tuple(float(v) for v in self.histogram.getLevels()) != self._levels:
                self.histogram.setLevels(*self._levels)
            self._hist_levels = levels
            r = self._hist_range
            if (settled or r is None or levels[0] < r[0] or levels[1] > r[1]
                    or (levels[1] - levels[0]) < 0.25 * (r[1] - r[0])):
                self._set_histogram_range(levels)
        finally:
            self._programmatic = False

    def settle_histogram(self) -> None:
        """Results stopped: draw any waiting histogram, with the value range exactly its levels."""
        if self._hist_pending is not None:
            self.flush_histogram(settled=True)
        elif self.histogram is not None and self._hist_shown and self._hist_levels is not None:
            self._set_histogram_range(self._hist_levels)

    def _set_histogram_range(self, levels: tuple[float, float]) -> None:
        if levels != self._hist_range:
            self._hist_range = levels
            self.histogram.setHistogramRange(levels[0], levels[1], padding=0.02)

    def histogram_range(self) -> tuple[float, float] | None:
        """The value range the histogram spans (before its 2 % padding)."""
        return self._hist_range

    def histogram_curve(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The (bin centres, counts) the histogram draws now."""
        if self.histogram is None or self.histogram.plot.xData is None:
            return None
        return self.histogram.plot.xData, self.histogram.plot.yData

    def set_background(self, color: QColor) -> None:
        self.graphics.setBackground(color)

    # -- overlays ------------------------------------------------------------------------
    def data_rect_to_view(self, y0: float, x0: float, y1: float, x1: float) -> QRectF:
        """A rectangle in data pixels (end exclusive) → view coordinates."""
        return self.image_item.mapRectToParent(QRectF(x0, y0, x1 - x0, y1 - y0))

    def show_window(self, rect: QRectF | None, taps: list[tuple[float, float]] | None = None) -> None:
        """Draw a window rectangle (view coordinates) and optional tap centres (x, y)."""
        if rect is None:
            self._window_item.hide()
        else:
            self._window_item.setRect(rect)
            self._window_item.show()
        if taps:
            xs, ys = zip(*taps)
            self._taps_item.setData(x=list(xs), y=list(ys))
            self._taps_item.show()
        else:
            self._taps_item.setData(x=[], y=[])
            self._taps_item.hide()

    def show_marker(self, rect: QRectF | None) -> None:
        if rect is None:
            self._marker_item.hide()
        else:
            self._marker_item.setRect(rect)
            self._marker_item.show()

    def hide_overlays(self) -> None:
        self.show_window(None)
        self.show_marker(None)

    def window_rect(self) -> QRectF | None:
        """The window rectangle drawn now (view coordinates), None when hidden."""
        return self._window_item.rect() if self._window_item.isVisible() else None

    def marker_rect(self) -> QRectF | None:
        return self._marker_item.rect() if self._marker_item.isVisible() else None

    # -- pointer -------------------------------------------------------------------------
    def data_pixel_at_scene(self, scene_pos: QPointF) -> tuple[int, int] | None:
        if self._data is None or not self.view_box.sceneBoundingRect().contains(scene_pos):
            return None
        p = self.image_item.mapFromScene(scene_pos)
        if not (math.isfinite(p.x()) and math.isfinite(p.y())):
            return None  # the view is not laid out yet (a pointer event before the first paint)
        col, row = int(math.floor(p.x())), int(math.floor(p.y()))
        h, w = self._data.shape[:2]
        if 0 <= row < h and 0 <= col < w:
            return row, col
        return None

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        px = self.data_pixel_at_scene(scene_pos)
        if px == self._last_hover:
            return
        self._last_hover = px
        if px is None:
            self.left.emit()
        else:
            self.hovered.emit(*px)

    def _on_mouse_clicked(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        if ev.double():
            self.doubleClicked.emit()
            return
        px = self.data_pixel_at_scene(ev.scenePos())
        if px is not None:
            self.clicked.emit(*px)

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self._last_hover is not None:
            self._last_hover = None
            self.left.emit()
        super().leaveEvent(event)

    def _on_levels_dragged(self, *_):
        """The user moves the histogram's levels: re-colour the picture with them."""
        if self._programmatic or self._image is None or self.histogram is None:
            return
        lv = clean_levels(tuple(float(v) for v in self.histogram.getLevels()))
        if lv == self._levels:
            return
        self._levels = lv
        img = self._image
        self._image = stage_image(img.data, lv, img.cmap)
        pixels = self._image.pixels
        self.image_item.setImage(pixels, autoLevels=False)

    def _on_levels_edited(self, *_):
        if not self._programmatic:
            self._on_levels_dragged()
            self.levelsEdited.emit()
