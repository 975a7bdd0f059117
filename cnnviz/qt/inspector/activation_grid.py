"""Every channel of the selected layer as a tile, and a large view of one channel.

The grid is virtual: it renders all tiles to one uint8 array with numpy when the data,
normalisation or colormap change (cheap: a 256-channel 56×56 layer is 2.4 MB), and paints
only the rows in view, so layers with hundreds or thousands of channels scroll smoothly.

Keys (grid and large view): ←/→ previous/next channel, ↑/↓ previous/next layer,
Home/End first/last channel, PgUp/PgDn scroll.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import (QAbstractScrollArea, QComboBox, QGridLayout, QHBoxLayout, QLabel, QSizePolicy,
                               QSlider, QSplitter, QVBoxLayout, QWidget)

from cnnviz.core.display import LayerMosaic, layer_mosaic
from cnnviz.core.inspect_results import ChannelStats
from cnnviz.qt.colors import format_sig, mute

from .imaging import COLORMAP_CHOICES, ImageView, to_qimage

__all__ = ["ActivationGrid", "ActivationPanel", "ChannelDetail", "NORMALISATIONS"]

#: (key, label) of the normalisation choices.
NORMALISATIONS = (("channel", "per channel"), ("layer", "per layer"))

_DEAD = QColor(220, 50, 47)
_SELECTED = QColor(255, 200, 0)


def _arrow_keys(event, owner) -> bool:
    """Shared key handling: emits owner's channelStep / layerStep; True when handled."""
    key = event.key()
    if key == Qt.Key.Key_Left:
        owner.channelStep.emit(-1)
    elif key == Qt.Key.Key_Right:
        owner.channelStep.emit(1)
    elif key == Qt.Key.Key_Up:
        owner.layerStep.emit(-1)
    elif key == Qt.Key.Key_Down:
        owner.layerStep.emit(1)
    else:
        return False
    event.accept()
    return True


class ActivationGrid(QAbstractScrollArea):
    """Tiles of ``(C, h, w)`` maps with virtual scrolling.

    Signals
    -------
    channelClicked(int)
        A tile was clicked (or chosen with Home/End).
    channelStep(int)
        ←/→ asked for the previous (-1) / next (+1) channel.
    layerStep(int)
        ↑/↓ asked for the previous / next layer.
    """

    channelClicked = Signal(int)
    channelStep = Signal(int)
    layerStep = Signal(int)

    GAP = 4

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.viewport().setAutoFillBackground(True)
        self._maps: np.ndarray | None = None
        self._tiles: np.ndarray | None = None  # (C, h, w, 3) uint8
        self._mosaic: LayerMosaic | None = None
        self._images: dict[int, QImage] = {}
        self._dead: np.ndarray | None = None
        self._selected = 0
        self._tile_px = 64
        self.mode = "channel"
        self.cmap = "auto"
        self.signed = False
        self.levels: tuple[float, float] | None = None
        self.painted_tiles = 0  # tiles drawn by the last paint (tests: only visible ones)
        self.empty_text = "No layer selected"  # drawn when there are no tiles

    # -- data
    def set_maps(self, maps: np.ndarray | None, stats: ChannelStats | None = None) -> None:
        """New data (the same layer on a new frame, or another layer)."""
        self._maps = None if maps is None else np.asarray(maps, dtype=np.float32)
        self._dead = None if stats is None else np.asarray(stats.dead)
        if self._maps is not None and self._selected >= len(self._maps):
            self._selected = 0
        self._render()

    def set_style(self, mode: str | None = None, cmap: str | None = None) -> None:
        if mode is not None:
            self.mode = mode
        if cmap is not None:
            self.cmap = cmap
        self._render()

    def _render(self) -> None:
        self._images.clear()
        if self._maps is None or self._maps.size == 0:
            self._tiles = self._mosaic = None
        else:
            # the one path (core): the tiles on screen, the PNG export and `cnnviz inspect`'s mosaic
            m = layer_mosaic(self._maps, self.mode, self.cmap)
            self._mosaic, self._tiles, self.signed, self.levels = m, m.tiles(), m.signed, m.levels
        self._update_scrollbar()
        self.viewport().update()

    def tile_count(self) -> int:
        return 0 if self._maps is None else int(self._maps.shape[0])

    def tiles(self) -> np.ndarray | None:
        """The rendered tiles ``(C, h, w, 3)`` uint8."""
        return self._tiles

    def mosaic(self) -> np.ndarray | None:
        """All tiles as one RGB image at their own resolution (the PNG export; the same bytes
        as ``cnnviz inspect``'s mosaic of the layer: :func:`cnnviz.core.display.layer_mosaic`)."""
        return None if self._mosaic is None else self._mosaic.image

    # -- selection
    @property
    def selected(self) -> int:
        return self._selected

    def set_selected(self, i: int) -> None:
        n = self.tile_count()
        if n == 0:
            return
        self._selected = min(max(int(i), 0), n - 1)
        self.ensure_visible(self._selected)
        self.viewport().update()

    # -- layout
    def set_tile_px(self, px: int) -> None:
        self._tile_px = int(px)
        self._update_scrollbar()
        self.ensure_visible(self._selected)
        self.viewport().update()

    @property
    def tile_px(self) -> int:
        return self._tile_px

    def fit_tile_px(self, n: int, lo: int = 32, hi: int = 160, scroll_px: int = 48) -> int:
        """The largest tile size at which ``n`` tiles fit the view without scrolling (at
        least ``lo``); when they cannot, ``scroll_px`` (the grid then scrolls)."""
        vw, vh = self.viewport().width(), self.viewport().height()
        if vw < 50 or vh < 50 or n <= 0:
            return 64
        for px in range(hi, lo - 1, -2):
            cols = max(1, (vw - self.GAP) // (px + self.GAP))
            if math.ceil(n / cols) * (px + self.GAP) + self.GAP <= vh:
                return px
        return scroll_px

    def _cell(self) -> int:
        return self._tile_px + self.GAP

    def columns(self) -> int:
        return max(1, (self.viewport().width() - self.GAP) // self._cell())

    def rows(self) -> int:
        n = self.tile_count()
        return math.ceil(n / self.columns()) if n else 0

    def _update_scrollbar(self) -> None:
        total = self.rows() * self._cell() + self.GAP
        bar = self.verticalScrollBar()
        bar.setRange(0, max(0, total - self.viewport().height()))
        bar.setPageStep(self.viewport().height())
        bar.setSingleStep(self._cell() // 2)

    def tile_rect(self, i: int) -> QRect:
        """Where tile ``i`` is, in viewport coordinates (may be outside the view)."""
        r, c = divmod(int(i), self.columns())
        cell = self._cell()
        return QRect(self.GAP + c * cell, self.GAP + r * cell - self.verticalScrollBar().value(),
                     self._tile_px, self._tile_px)

    def index_at(self, pos: QPoint) -> int | None:
        cell = self._cell()
        y = pos.y() + self.verticalScrollBar().value() - self.GAP
        x = pos.x() - self.GAP
        if x < 0 or y < 0:
            return None
        c, rx = divmod(x, cell)
        r, ry = divmod(y, cell)
        if rx >= self._tile_px or ry >= self._tile_px or c >= self.columns():
            return None
        i = r * self.columns() + c
        return i if i < self.tile_count() else None

    def ensure_visible(self, i: int) -> None:
        if self.tile_count() == 0:
            return
        r = self.tile_rect(i)
        bar = self.verticalScrollBar()
        if r.top() < 0:
            bar.setValue(bar.value() + r.top() - self.GAP)
        elif r.bottom() > self.viewport().height():
            bar.setValue(bar.value() + r.bottom() - self.viewport().height() + self.GAP)

    def visible_range(self) -> range:
        """Indices of the tiles at least partly in view."""
        n = self.tile_count()
        if n == 0:
            return range(0)
        cell, cols = self._cell(), self.columns()
        top = self.verticalScrollBar().value()
        first = max(0, (top - self.GAP) // cell) * cols
        last = min(n, (math.ceil((top + self.viewport().height()) / cell) + 1) * cols)
        return range(first, last)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._update_scrollbar()

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(520, 420)

    # -- painting
    def _qimage(self, i: int) -> QImage:
        img = self._images.get(i)
        if img is None:
            img = to_qimage(self._tiles[i])
            self._images[i] = img
        return img

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self.viewport())
        self.painted_tiles = 0
        try:
            if self._tiles is None:
                p.setPen(self.palette().color(self.palette().ColorRole.PlaceholderText))
                p.drawText(self.viewport().rect().adjusted(12, 12, -12, -12),
                           int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap), self.empty_text)
                return
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
            font = QFont(self.font())
            font.setPixelSize(10)
            p.setFont(font)
            show_numbers = self._tile_px >= 36
            th, tw = self._tiles.shape[1:3]
            scale = self._tile_px / max(th, tw)  # a map keeps its aspect inside its square cell
            dw, dh = max(1, round(tw * scale)), max(1, round(th * scale))
            for i in self.visible_range():
                r = self.tile_rect(i)
                if not r.intersects(event.rect()):
                    continue
                p.drawImage(QRect(r.x() + (r.width() - dw) // 2, r.y() + (r.height() - dh) // 2, dw, dh),
                            self._qimage(i))
                self.painted_tiles += 1
                dead = self._dead is not None and i < len(self._dead) and bool(self._dead[i])
                if dead:
                    p.setPen(QPen(_DEAD, 2))
                    p.drawRect(r.adjusted(1, 1, -1, -1))
                if show_numbers:
                    label = f"{i}" + (" dead" if dead else "")
                    tw = p.fontMetrics().horizontalAdvance(label) + 4
                    p.fillRect(QRect(r.left(), r.bottom() - 12, tw, 13), QColor(0, 0, 0, 150))
                    p.setPen(_DEAD.lighter(150) if dead else QColor(235, 235, 235))
                    p.drawText(QRect(r.left() + 2, r.bottom() - 12, tw, 13),
                               int(Qt.AlignmentFlag.AlignVCenter), label)
                if i == self._selected:
                    p.setPen(QPen(_SELECTED, 3))
                    p.drawRect(r.adjusted(-2, -2, 1, 1))
        finally:
            p.end()

    # -- input
    def mousePressEvent(self, event) -> None:  # noqa: N802
        i = self.index_at(event.position().toPoint())
        if i is not None and event.button() == Qt.MouseButton.LeftButton:
            self.setFocus()
            self.channelClicked.emit(i)
            return
        super().mousePressEvent(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if _arrow_keys(event, self):
            return
        if event.key() == Qt.Key.Key_Home and self.tile_count():
            self.channelClicked.emit(0)
        elif event.key() == Qt.Key.Key_End and self.tile_count():
            self.channelClicked.emit(self.tile_count() - 1)
        else:
            super().keyPressEvent(event)


class ChannelDetail(QWidget):
    """One channel large, with its statistics (min, max, mean, std, % zeros) and a flag for
    dead channels. Arrow keys work here as in the grid."""

    channelStep = Signal(int)
    layerStep = Signal(int)
    pixelClicked = Signal(int, int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.title = QLabel("")
        self.title.setObjectName("channel-title")
        self.title.setWordWrap(True)
        lay.addWidget(self.title)
        self.view = ImageView(self, min_size=160)
        self.view.setObjectName("channel-view")
        self.view.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.view.pixelClicked.connect(self.pixelClicked)
        lay.addWidget(self.view, 1)
        grid = QGridLayout()
        grid.setHorizontalSpacing(12)
        self.stat_labels: dict[str, QLabel] = {}
        for k, (key, text) in enumerate((("min", "min"), ("max", "max"), ("mean", "mean"), ("std", "std"),
                                         ("zeros_pct", "zeros"), ("value", "clicked unit"))):
            name = QLabel(text)
            mute(name)
            val = QLabel("—")
            val.setObjectName(f"stat-{key}")
            val.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            grid.addWidget(name, k // 3 * 2, k % 3)
            grid.addWidget(val, k // 3 * 2 + 1, k % 3)
            self.stat_labels[key] = val
        lay.addLayout(grid)
        self.flag = QLabel("")
        self.flag.setObjectName("dead-flag")
        self.flag.setWordWrap(True)
        lay.addWidget(self.flag)
        self.stats: dict[str, float] | None = None

    def show_channel(self, layer: str, channel: int, tile: np.ndarray | None, raw: np.ndarray | None,
                     stats: ChannelStats | None, n_channels: int) -> None:
        """``tile`` is the coloured tile (h, w, 3) uint8; ``raw`` the float map."""
        self.view.set_array(tile)
        self.view.set_marker(None)
        if raw is not None:
            h, w = raw.shape
            self.title.setText(f"<b>{layer}</b> — channel {channel} of {n_channels} ({h}×{w})")
        else:
            self.title.setText("")
        if stats is None or channel >= len(stats):
            self.stats = None
            for v in self.stat_labels.values():
                v.setText("—")
            self.flag.setText("")
            return
        row = stats.row(channel)
        self.stats = row
        for key in ("min", "max", "mean", "std"):
            self.stat_labels[key].setText(format_sig(row[key], 4))
        self.stat_labels["zeros_pct"].setText(f"{row['zeros_pct']:.1f} %")
        self.stat_labels["value"].setText("click the map")
        if row["dead"]:
            self.flag.setText("⚠ dead channel: zero everywhere for this input (a ReLU that never fires)")
            self.flag.setStyleSheet(f"color: {_DEAD.name()}; font-weight: bold")
        elif bool(stats.constant[channel]):
            self.flag.setText("constant: the same value everywhere for this input")
            self.flag.setStyleSheet("")
        else:
            self.flag.setText("")
            self.flag.setStyleSheet("")

    def show_value(self, y: int, x: int, value: float) -> None:
        self.stat_labels["value"].setText(f"{format_sig(value, 4)} at ({y}, {x})")
        self.view.set_marker((y, x))

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if not _arrow_keys(event, self):
            super().keyPressEvent(event)


class ActivationPanel(QWidget):
    """The grid, its controls (normalisation, colormap, tile size) and the large view."""

    channelSelected = Signal(int)
    layerStep = Signal(int)
    pixelClicked = Signal(int, int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        self.caption = QLabel("")
        self.caption.setObjectName("grid-caption")
        # a long caption must not widen the window: it is cut, the tooltip has all of it
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        lay.addWidget(self.caption)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Levels"))
        self.norm_box = QComboBox()
        self.norm_box.setObjectName("norm-box")
        for key, text in NORMALISATIONS:
            self.norm_box.addItem(text, key)
        self.norm_box.setToolTip("per channel: each tile uses its own range (shows structure in weak channels)\n"
                                 "per layer: one range for all tiles (channels compare)")
        bar.addWidget(self.norm_box)
        bar.addWidget(QLabel("Colours"))
        self.cmap_box = QComboBox()
        self.cmap_box.setObjectName("cmap-box")
        for name in COLORMAP_CHOICES:
            self.cmap_box.addItem(name, name)
        self.cmap_box.setToolTip("auto: blue-white-red for signed maps (white = 0), grey otherwise")
        bar.addWidget(self.cmap_box)
        bar.addWidget(QLabel("Size"))
        self.size_slider = QSlider(Qt.Orientation.Horizontal)
        self.size_slider.setObjectName("tile-size")
        self.size_slider.setToolTip("Size of each channel's tile: one tile is one feature map, the response of "
                                    "one learned filter over the whole image.")
        self.size_slider.setRange(16, 192)
        self.size_slider.setValue(64)
        self.size_slider.setFixedWidth(110)
        bar.addWidget(self.size_slider)
        bar.addStretch(1)
        lay.addLayout(bar)

        self.split = QSplitter(Qt.Orientation.Horizontal)
        self.grid = ActivationGrid()
        self.grid.setObjectName("activation-grid")
        self.detail = ChannelDetail()
        self.detail.setObjectName("channel-detail")
        self.split.addWidget(self.grid)
        self.split.addWidget(self.detail)
        self.split.setStretchFactor(0, 3)
        self.split.setStretchFactor(1, 2)
        self.split.setSizes([600, 400])
        lay.addWidget(self.split, 1)

        self._layer = ""
        self._stats: ChannelStats | None = None
        self.norm_box.currentIndexChanged.connect(self._on_style)
        self.cmap_box.currentIndexChanged.connect(self._on_style)
        self.size_slider.valueChanged.connect(self.grid.set_tile_px)
        self.grid.channelClicked.connect(self.channelSelected)
        self.grid.channelStep.connect(self._step)
        self.detail.channelStep.connect(self._step)
        self.grid.layerStep.connect(self.layerStep)
        self.detail.layerStep.connect(self.layerStep)
        self.detail.pixelClicked.connect(self._on_detail_click)

    def _on_detail_click(self, y: int, x: int) -> None:
        maps, i = self.grid._maps, self.grid.selected
        if maps is not None and i < len(maps):
            self.detail.show_value(y, x, float(maps[i][y, x]))
        self.pixelClicked.emit(y, x)

    def _step(self, d: int) -> None:
        n = self.grid.tile_count()
        if n:
            self.channelSelected.emit(min(max(self.grid.selected + d, 0), n - 1))

    def _on_style(self) -> None:
        self.grid.set_style(self.norm_box.currentData(), self.cmap_box.currentData())
        self._refresh_detail()

    def show_nothing(self, why: str) -> None:
        """No result to show (the model could not run): empty grid and detail, ``why`` in it."""
        self._layer, self._stats = None, None
        self.grid.empty_text = why
        self.grid.set_maps(None, None)
        self.caption.setText("<b>No result</b>")
        self.caption.setToolTip(why)
        self._refresh_detail()

    def set_layer(self, name: str, type_: str, shape_text: str, maps: np.ndarray | None,
                  stats: ChannelStats | None, channel: int, new_layer: bool) -> None:
        self.grid.empty_text = "No layer selected"
        self._layer = name
        self._stats = stats
        if new_layer and maps is not None:
            px = self.grid.fit_tile_px(len(maps))
            self.size_slider.blockSignals(True)
            self.size_slider.setValue(px)
            self.size_slider.blockSignals(False)
            self.grid.set_tile_px(px)
        self.grid.set_maps(maps, stats)
        self.grid.set_selected(channel)
        n = self.grid.tile_count()
        dead = int(stats.dead.sum()) if stats is not None else 0
        levels = ""
        if self.grid.levels is not None:
            lo, hi = self.grid.levels
            levels = f" · levels {format_sig(lo, 3)} … {format_sig(hi, 3)}"
        self.caption.setToolTip(f"{name} ({type_}, {shape_text}): {n} tiles")
        self.caption.setText(f"<b>{name}</b> ({type_}, {shape_text}) — {n} tile{'s' if n != 1 else ''}"
                             + (f", <span style='color:{_DEAD.name()}'>{dead} dead</span>" if dead else "") + levels)
        self._refresh_detail()

    def select_channel(self, i: int) -> None:
        self.grid.set_selected(i)
        self._refresh_detail()

    def _refresh_detail(self) -> None:
        tiles = self.grid.tiles()
        i = self.grid.selected
        maps = self.grid._maps
        if tiles is None or maps is None or i >= len(tiles):
            self.detail.show_channel(self._layer, i, None, None, None, 0)
            return
        self.detail.show_channel(self._layer, i, tiles[i], maps[i], self._stats, len(tiles))
