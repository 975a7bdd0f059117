"""The output views: input, convolution, activation and pooling maps (pyqtgraph).

Every map is placed in **input-pixel coordinates**: an output pixel is drawn over the centre
of the input window it was computed from, ``stride`` input pixels wide, and a pooled pixel
over the centre of its pool window. Linked zoom/pan therefore keeps the same part of the
image under the cursor in every view, whatever the stride, padding, dilation or pooling.

The views only paint arrays the core computed (:class:`~cnnviz.core.conv.PipelineResult`);
colours come from :mod:`cnnviz.core.display` (diverging with levels symmetric around 0 for
signed maps, grey for magnitudes).

Painting stays cheap on the GUI thread (a kernel drag or a 30 fps camera repaints every
view many times a second):

* :func:`~cnnviz.core.display.display_frame` — a pure core function the window's worker runs next to the pipeline —
  chooses what each view shows (kernel, mosaic, channel, colormap, levels) for the frozen
  :class:`DisplaySettings` of the request and colours it into a ready-to-blit uint8 B, G,
  R, A picture (:func:`cnnviz.core.display.display_bgra`). The views only hand those bytes
  to the image item: no float-to-colour pass on the GUI thread. (A display change the
  worker did not know about — another colormap, a histogram drag — is coloured on the GUI
  thread once.)
* The histograms (pyqtgraph's own image histogram is not connected) are counted
  (:func:`cnnviz.core.display.histogram_counts`, a sample) and redrawn at most a few times a
  second while results stream in, and always once they stop, so the final picture and its
  histogram agree exactly. Counting only what is drawn costs less than counting every
  result on the worker.

Run this file to preview the views on a sample image.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QRectF, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QCheckBox, QComboBox, QGridLayout, QHBoxLayout, QLabel, QToolButton,
                               QVBoxLayout, QWidget)

from cnnviz.core.conv import ConvSpec, PipelineRequest, PipelineResult, PoolSpec
from cnnviz.core.display import (COLORMAPS, MAGNITUDE, MOSAIC, RGB, STAGES, DisplayFrame, DisplaySettings,
                                 display_frame, mosaic_layout)
from cnnviz.core.mosaic import MosaicLayout

from .map_view import MapView
from . import view_histograms
from .placement import conv_placement, pool_placement  # noqa: F401 - re-exported (tests, callers)
from .view_histograms import HISTOGRAM_INTERVAL_MS, HISTOGRAM_SETTLE_MS, HistogramThrottle  # noqa: F401

ACTIVATION_TITLES = {"none": "no activation", "relu": "ReLU", "leaky_relu": "leaky ReLU", "abs": "|x|",
                     "sigmoid": "sigmoid", "tanh": "tanh"}
def _shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(int(s)) for s in shape)


class OutputViews(HistogramThrottle, QWidget):
    """The four stage views with their controls.

    Signals
    -------
    pixelHovered(str stage, int kernel, int y, int x)
        The pointer is over output pixel (y, x) of ``stage`` ("conv", "activation",
        "pool" or "magnitude") for kernel ``kernel`` of the bank.
    pixelClicked(str stage, int kernel, int y, int x)
        The same for a left click (the window pins that pixel).
    pointerLeft()
        The pointer left the output maps.
    inputHovered(int y, int x)
        The pointer is over an input pixel.
    displayChanged()
        The user changed what is shown (kernel, channel, colormap, levels).
    """

    pixelHovered = Signal(str, int, int, int)
    pixelClicked = Signal(str, int, int, int)
    pointerLeft = Signal()
    inputHovered = Signal(int, int)
    displayChanged = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("outputs")
        self._result: PipelineResult | None = None
        self._request: PipelineRequest | None = None
        self._stats: dict[str, tuple[float, float, float, float]] = {}
        self._mosaic: MosaicLayout | None = None
        self._pool_mosaic: MosaicLayout | None = None
        self._kernel_names: list[str] = []
        self._fixed_levels: dict[str, tuple[float, float]] = {}
        self._updating_controls = False
        self._syncing = False
        # histograms are redrawn at most every HISTOGRAM_INTERVAL_MS while results stream
        self._hist_timer = QTimer(self)
        self._hist_timer.setObjectName("histogram-throttle")
        self._hist_timer.setSingleShot(True)
        self._hist_timer.timeout.connect(self._on_hist_timer)
        self._hist_leading = True
        self._hist_next = 0
        self._hist_flushed_at = -math.inf
        self._hist_settle_timer = QTimer(self)
        self._hist_settle_timer.setObjectName("histogram-settle")
        self._hist_settle_timer.setSingleShot(True)
        self._hist_settle_timer.setInterval(HISTOGRAM_SETTLE_MS)
        self._hist_settle_timer.timeout.connect(self.settle_histograms)

        root = QVBoxLayout(self)
        root.setContentsMargins(2, 2, 2, 2)
        root.setSpacing(3)
        bar = QHBoxLayout()
        bar.setSpacing(6)
        self.kernel_box = QComboBox()
        self.kernel_box.setObjectName("show-kernel")
        self.kernel_box.setToolTip("Which kernel's maps to show: one kernel, all of them tiled, or the gradient "
                                   "magnitude √(gx² + gy²) of a pair")
        self.kernel_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.channel_box = QComboBox()
        self.channel_box.setObjectName("show-channel")
        self.channel_box.setToolTip("'each' mode convolves R, G and B separately: show one channel or all three as RGB")
        for text, val in (("RGB", RGB), ("R", 0), ("G", 1), ("B", 2)):
            self.channel_box.addItem(text, val)
        self.cmap_box = QComboBox()
        self.cmap_box.setObjectName("colormap")
        self.cmap_box.setToolTip("auto: diverging (blue < 0 < red, 0 = white) for signed maps, grey otherwise")
        self.cmap_box.addItem("auto", "auto")
        for name in COLORMAPS:
            self.cmap_box.addItem(name, name)
        self.levels_box = QComboBox()
        self.levels_box.setObjectName("levels")
        self.levels_box.setToolTip("auto: levels follow each new result (±99.5th percentile of |x| for signed maps,\n"
                                   "0.5th–99.5th percentile otherwise).\n"
                                   "fixed: keep the current levels (drag the histogram to set them).")
        self.levels_box.addItem("auto levels", "auto")
        self.levels_box.addItem("fixed levels", "fixed")
        self.link_box = QCheckBox("Link zoom")
        self.link_box.setObjectName("link-zoom")
        self.link_box.setToolTip("Zoom and pan all views together (maps are drawn in input-pixel coordinates)")
        self.link_box.setChecked(True)
        self.hist_box = QCheckBox("Histograms")
        self.hist_box.setObjectName("histograms")
        self.hist_box.setToolTip("Show how the values of each map are spread; drag the bars next to a view "
                                 "to set which values get the darkest and brightest colours.")
        self.hist_box.setChecked(True)
        self.fit_button = QToolButton()
        self.fit_button.setText("Fit")
        self.fit_button.setToolTip("Zoom to fit the whole image (double-click a view does the same)")
        for lab, w in (("Show", self.kernel_box), ("Channel", self.channel_box), ("Colours", self.cmap_box)):
            l = QLabel(lab)
            l.setBuddy(w)
            bar.addWidget(l)
            bar.addWidget(w)
            if w is self.channel_box:
                self._channel_label = l
        bar.addWidget(self.levels_box)
        bar.addStretch(1)
        bar.addWidget(self.link_box)
        bar.addWidget(self.hist_box)
        bar.addWidget(self.fit_button)
        # "Linked zoom" and "Fit views" are on the window's toolbar and View menu: the bar
        # keeps its width for the maps (the window fits 1280×720)
        self.link_box.hide()
        self.fit_button.hide()
        root.addLayout(bar)

        grid = QGridLayout()
        grid.setSpacing(4)
        self.views: dict[str, MapView] = {}
        for i, stage in enumerate(STAGES):
            v = MapView(stage, histogram=stage != "input")
            self.views[stage] = v
            grid.addWidget(v, i // 2, i % 2)
            v.hovered.connect(lambda r, c, s=stage: self._pointer(s, r, c, clicked=False))
            v.clicked.connect(lambda r, c, s=stage: self._pointer(s, r, c, clicked=True))
            v.left.connect(self.pointerLeft)
            v.levelsEdited.connect(lambda s=stage: self._on_levels_edited(s))
            v.view_box.sigRangeChangedManually.connect(lambda _mask, view=v: self.sync_views(view))
            v.doubleClicked.connect(self.fit)
        grid.setRowStretch(0, 1)
        grid.setRowStretch(1, 1)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        root.addLayout(grid, 1)

        self.kernel_box.currentIndexChanged.connect(self._on_display_control)
        self.channel_box.currentIndexChanged.connect(self._on_display_control)
        self.cmap_box.currentIndexChanged.connect(self._on_display_control)
        self.levels_box.currentIndexChanged.connect(self._on_levels_mode)
        self.link_box.toggled.connect(self.set_linked)
        self.hist_box.toggled.connect(self.set_histograms_visible)
        self.fit_button.clicked.connect(self.fit)
        self._set_channel_visible(False)
        self.set_linked(True)
        self.views["activation"].clear("")
        self.views["pool"].clear("pooling is off")

    def display_settings(self) -> DisplaySettings:
        """The controls that decide how a result is shown, frozen for the worker."""
        fixed = tuple(sorted(self._fixed_levels.items())) if self.levels_mode() == "fixed" else ()
        return DisplaySettings(self.selection(), self.channel(), self.colormap_choice(), self.levels_mode(), fixed)

    # -- controls --------------------------------------------------------------------------
    def view(self, stage: str) -> MapView:
        return self.views[stage]

    def selection(self) -> int:
        """Kernel index shown, or MOSAIC / MAGNITUDE."""
        v = self.kernel_box.currentData()
        return int(v) if v is not None else 0

    def set_selection(self, value: int) -> None:
        i = self.kernel_box.findData(value)
        if i >= 0:
            self.kernel_box.setCurrentIndex(i)

    def channel(self) -> int:
        v = self.channel_box.currentData()
        return int(v) if v is not None else RGB

    def set_channel(self, value: int) -> None:
        i = self.channel_box.findData(value)
        if i >= 0:
            self.channel_box.setCurrentIndex(i)

    def colormap_choice(self) -> str:
        return str(self.cmap_box.currentData())

    def set_colormap_choice(self, name: str) -> None:
        i = self.cmap_box.findData(name)
        self.cmap_box.setCurrentIndex(i if i >= 0 else 0)

    def levels_mode(self) -> str:
        return str(self.levels_box.currentData())

    def set_levels_mode(self, mode: str) -> None:
        i = self.levels_box.findData(mode)
        self.levels_box.setCurrentIndex(i if i >= 0 else 0)

    def is_linked(self) -> bool:
        return self.link_box.isChecked()

    def set_bank(self, names: list[str], selected: int, magnitude_pair: tuple[int, int] | None) -> None:
        """Refill the kernel selector for a bank (keeps mosaic/magnitude if still possible)."""
        prev = self.selection()
        self._updating_controls = True
        try:
            self._kernel_names = list(names)
            self.kernel_box.clear()
            for i, n in enumerate(names):
                self.kernel_box.addItem(f"{i + 1}: {n}", i)
            if len(names) > 1:
                self.kernel_box.addItem(f"all {len(names)} (mosaic)", MOSAIC)
            if magnitude_pair is not None:
                a, b = magnitude_pair
                self.kernel_box.addItem(f"|∇| = √(k{a + 1}² + k{b + 1}²)", MAGNITUDE)
            want = prev if prev in (MOSAIC, MAGNITUDE) and self.kernel_box.findData(prev) >= 0 else selected
            idx = self.kernel_box.findData(want)
            self.kernel_box.setCurrentIndex(idx if idx >= 0 else 0)
            self.kernel_box.setEnabled(len(names) > 1 or magnitude_pair is not None)
        finally:
            self._updating_controls = False

    def _set_channel_visible(self, visible: bool) -> None:
        self.channel_box.setVisible(visible)
        self._channel_label.setVisible(visible)

    def _on_display_control(self, *_):
        if self._updating_controls:
            return
        if self._result is not None:
            self._render()
        self.displayChanged.emit()

    def _on_levels_mode(self, *_):
        if self.levels_mode() == "fixed":
            for s, v in self.views.items():
                if v.data() is not None:
                    self._fixed_levels[s] = v.current_levels()
        else:
            self._fixed_levels.clear()
        self._on_display_control()

    def _on_levels_edited(self, stage: str) -> None:
        # Dragging a histogram's levels means "keep these": switch to fixed levels.
        self._fixed_levels[stage] = self.views[stage].current_levels()
        if self.levels_mode() != "fixed":
            self._updating_controls = True
            try:
                self.set_levels_mode("fixed")
            finally:
                self._updating_controls = False
            for s, v in self.views.items():
                if s not in self._fixed_levels and v.data() is not None:
                    self._fixed_levels[s] = v.current_levels()
            self.displayChanged.emit()

    def set_linked(self, linked: bool) -> None:
        """Zoom and pan the views together (not the mosaic, whose tiles are not in input
        coordinates)."""
        if self.link_box.isChecked() != linked:
            self.link_box.setChecked(linked)  # re-enters through toggled
            return
        if linked:
            self.sync_views(self.views["input"])

    def _sync_active(self) -> bool:
        return self.is_linked() and self._mosaic is None

    def sync_views(self, source: MapView) -> None:
        """Give every other view the same target region as ``source``.

        pyqtgraph's setXLink/setYLink on aspect-locked views of different shapes feed back
        into each other (each view widens the shared range to keep its aspect) and the
        picture shrinks; copying the *target* rectangle one way, only after a manual
        zoom/pan, keeps each view's own aspect without any feedback.
        """
        if not self._sync_active() or self._syncing:
            return
        self._syncing = True
        try:
            rect = source.view_box.targetRect()
            for v in self.views.values():
                if v is not source:
                    v.view_box.setRange(rect=rect, padding=0.0)
        finally:
            self._syncing = False

    def set_histograms_visible(self, visible: bool) -> None:
        if self.hist_box.isChecked() != visible:
            self.hist_box.setChecked(visible)
            return
        for v in self.views.values():
            v.set_histogram_visible(visible)
        self._hist_flushed_at = view_histograms._clock()

    def fit(self) -> None:
        """Zoom to the whole picture (linked views follow the input view)."""
        if self._sync_active():
            self.views["input"].view_box.autoRange(padding=0.02)
            self.sync_views(self.views["input"])
            return
        for v in self.views.values():
            if v.data() is not None:
                v.view_box.autoRange(padding=0.02)

    def zoom_to(self, y: float, x: float, half: float = 12.0) -> None:
        """Zoom the input view (and the linked views) onto input pixel (y, x)."""
        self.views["input"].view_box.setRange(rect=QRectF(x - half, y - half, 2 * half, 2 * half), padding=0.0)
        self.sync_views(self.views["input"])

    def set_dark(self, dark: bool) -> None:
        bg = QColor(25, 26, 28) if dark else QColor(250, 250, 250)
        for v in self.views.values():
            v.set_background(bg)

    # -- results ---------------------------------------------------------------------------
    def show_result(self, result: PipelineResult, request: PipelineRequest,
                    stats: dict[str, tuple[float, float, float, float]] | None = None,
                    frame: DisplayFrame | None = None) -> None:
        """Paint a result. ``stats`` maps stage → (min, max, auto_lo, auto_hi) over the whole
        stage (all kernels), as computed on the worker by :func:`cnnviz.core.playground.stage_stats`;
        ``frame`` is the result already coloured on the worker (:func:`display_frame`),
        used when it was made with the current :meth:`display_settings`."""
        shape_changed = self._result is None or self._result.input.shape[:2] != result.input.shape[:2]
        self._result, self._request = result, request
        self._stats = dict(stats) if stats else {}
        self._set_channel_visible(request.conv.channels == "each")
        self._render(frame)
        if shape_changed:
            # a new picture size or output shape: show all of it
            self.fit()

    def result(self) -> PipelineResult | None:
        return self._result

    def request(self) -> PipelineRequest | None:
        return self._request

    def displayed_array(self, stage: str) -> np.ndarray | None:
        """The array a view shows now, exactly as given to pyqtgraph ("magnitude" is the
        conv view when the gradient magnitude is selected)."""
        if stage == "magnitude":
            return self.views["conv"].data() if self.selection() == MAGNITUDE else None
        return self.views[stage].data()

    def mosaic_layout(self) -> MosaicLayout | None:
        return self._mosaic

    def _render(self, frame: DisplayFrame | None = None) -> None:
        res, req = self._result, self._request
        if res is None or req is None:
            return
        settings = self.display_settings()
        if frame is None or frame.settings != settings:
            # the display changed since the worker coloured this result (or no worker
            # did): colour it here, once; the input view's picture is reused if it is the same
            frame = display_frame(res, req, self._stats, settings, self.views["input"].image())
        was_mosaic = self._mosaic is not None
        conv_tiles, pool_tiles = mosaic_layout(res, frame.settings)
        mosaic = conv_tiles is not None
        self._mosaic = conv_tiles
        if pool_tiles is not None:
            self._pool_mosaic = pool_tiles
        if was_mosaic != mosaic:
            self.set_linked(self.is_linked())  # tiles are not in input coordinates: unlink
        self._paint(res, req, mosaic, frame)
        self._label_tiles(req, conv_tiles, pool_tiles)
        self._show_stages(req)
        self._schedule_histograms()
        if was_mosaic != mosaic:
            self.fit()

    def _show_stages(self, req: PipelineRequest) -> None:
        """The activation and pool views take room only when they do something: with no
        activation and no pooling the input and its convolution get the whole area."""
        for stage, on in (("activation", req.activation.kind != "none"), ("pool", req.pool is not None)):
            view = self.views[stage]
            if view.isHidden() == on:
                view.setVisible(on)

    def _label_tiles(self, req: PipelineRequest, conv_tiles: MosaicLayout | None,
                     pool_tiles: MosaicLayout | None) -> None:
        """Each mosaic tile wears its kernel's number and name (nothing outside the mosaic)."""
        names = [self._kernel_names[i] if i < len(self._kernel_names) else k.name for i, k in enumerate(req.kernels)]
        for stage, tiles in (("conv", conv_tiles), ("activation", conv_tiles), ("pool", pool_tiles)):
            labels = []
            if conv_tiles is not None and tiles is not None and not (stage == "pool" and req.pool is None):
                for i in range(min(tiles.n, len(names))):
                    oy, ox = tiles.tile_origin(i)
                    labels.append((float(ox), float(oy), f"{i + 1} {names[i]}"))
            self.views[stage].set_tile_labels(labels)

    def _paint(self, res: PipelineResult, req: PipelineRequest, mosaic: bool, frame: DisplayFrame) -> None:
        sel = frame.settings.selection
        n = res.conv.shape[0]
        spec = req.conv
        kernel_hw = req.kernels[0].size
        conv_rect = None if mosaic else conv_placement(spec, kernel_hw, res.conv_shape.out_hw)
        images = frame.stages

        # input
        x = res.input
        iv = self.views["input"]
        iv.set_image(images["input"])
        mode = {"gray": "grey, BT.601 luma", "each": "RGB, channels apart", "full": "RGB"}[spec.channels]
        iv.set_texts(f"Input — {_shape_text(x.shape)} ({mode})", "")

        shape_txt = res.conv_shape.text
        k = min(max(sel, 0), n - 1)
        kname = self._kernel_names[k] if k < len(self._kernel_names) else req.kernels[k].name
        what = f"all {n} kernels" if mosaic else f"kernel {k + 1} '{kname}'"

        if sel == MAGNITUDE and res.magnitude is not None:
            mag = res.magnitude
            self.views["conv"].set_image(images["conv"], conv_rect)
            a, b = req.magnitude_pair or (0, 1)
            self.views["conv"].set_texts(f"Gradient magnitude √(k{a + 1}² + k{b + 1}²) — {_shape_text(mag.shape)}",
                                         shape_txt)
            # activation and pooling apply per kernel: they show the pair's first kernel
            k = a
            kname = self._kernel_names[k] if k < len(self._kernel_names) else req.kernels[k].name
            of = f"kernel {k + 1} '{kname}' (the magnitude combines two kernels)"
            act = ACTIVATION_TITLES.get(req.activation.kind, req.activation.kind)
            if images.get("activation") is not None:
                self.views["activation"].set_image(images["activation"], conv_rect)
                self.views["activation"].set_texts(f"Activated: {act} of {of} — {_shape_text(res.activation.shape)}",
                                                   "same shape as the convolution")
            pv = self.views["pool"]
            if res.pool is None or req.pool is None or images.get("pool") is None:
                pv.clear("pooling is off")
                pv.set_texts("Pooled — off", "turn pooling on in Parameters")
            else:
                pv.set_image(images["pool"], pool_placement(conv_rect, spec.stride, req.pool, res.pool_shape.out_hw))
                pv.set_texts(f"Pooled: kernel {k + 1} '{kname}' — {_shape_text(res.pool.shape)}",
                             res.pool_shape.text)
            return

        for stage in ("conv", "activation"):
            self.views[stage].set_image(images[stage], conv_rect)
        bias = spec.bias + req.kernels[k].offset
        flip = " (flipped: true convolution)" if spec.flip else ""
        self.views["conv"].set_texts(f"Convolution of {what}{flip} — {_shape_text(res.conv.shape)}"
                                     + (f", bias {bias:+g}" if bias else ""), shape_txt)
        act = ACTIVATION_TITLES.get(req.activation.kind, req.activation.kind)
        if req.activation.kind == "leaky_relu":
            act += f" (slope {req.activation.slope:g})"
        self.views["activation"].set_texts(f"Activated: {act} — {_shape_text(res.activation.shape)}",
                                           "same shape as the convolution")
        pv = self.views["pool"]
        if res.pool is None or req.pool is None or images.get("pool") is None:
            pv.clear("pooling is off")
            pv.set_texts("Pooled — off", "turn pooling on in Parameters")
            return
        pool = req.pool
        prect = None if mosaic else pool_placement(conv_rect, spec.stride, pool, res.pool_shape.out_hw)
        pv.set_image(images["pool"], prect)
        desc = (f"{pool.kind} {pool.size[0]}×{pool.size[1]}, stride {pool.stride[0]}×{pool.stride[1]}"
                + (f", pad {pool.padding[0]}×{pool.padding[1]}" if any(pool.padding) else "")
                + (", ceil" if pool.ceil_mode else ""))
        pv.set_texts(f"Pooled: {desc} — {_shape_text(res.pool.shape)}", res.pool_shape.text)

    # -- pointer ---------------------------------------------------------------------------
    def _pointer(self, stage: str, row: int, col: int, clicked: bool) -> None:
        if stage == "input":
            if not clicked:
                self.inputHovered.emit(row, col)
            return
        res = self._result
        if res is None:
            return
        sel = self.selection()
        kernel = min(max(sel, 0), res.conv.shape[0] - 1)
        y, x = row, col
        if sel == MOSAIC and self._mosaic is not None:
            layout = self._mosaic if stage != "pool" else self._pool_mosaic
            if layout is None:
                return
            hit = layout.locate(row, col)
            if hit is None:
                self.pointerLeft.emit()
                return
            kernel, y, x = hit
        if sel == MAGNITUDE and stage == "conv":
            stage = "magnitude"
            kernel = (self._request.magnitude_pair or (0, 1))[0] if self._request else 0
        sig = self.pixelClicked if clicked else self.pixelHovered
        sig.emit(stage, kernel, y, x)

    def output_pixel_rect(self, stage: str, kernel: int, y: int, x: int) -> QRectF | None:
        """View rectangle of output pixel (y, x) of ``stage`` (handles the mosaic)."""
        view = self.views["conv" if stage == "magnitude" else stage]
        if view.data() is None:
            return None
        if self._mosaic is not None and stage in ("conv", "activation", "pool"):
            layout = self._mosaic if stage != "pool" else self._pool_mosaic
            if layout is None:
                return None
            oy, ox = layout.tile_origin(kernel)
            y, x = y + oy, x + ox
        return view.data_rect_to_view(y, x, y + 1, x + 1)

    def data_rect_in_stage(self, stage: str, kernel: int, y0: int, x0: int, y1: int, x1: int) -> QRectF | None:
        """View rectangle of a box of data pixels of ``stage`` for one kernel."""
        view = self.views[stage]
        if view.data() is None:
            return None
        if self._mosaic is not None and stage in ("conv", "activation", "pool"):
            layout = self._mosaic if stage != "pool" else self._pool_mosaic
            if layout is None:
                return None
            oy, ox = layout.tile_origin(kernel)
            y0, y1, x0, x1 = y0 + oy, y1 + oy, x0 + ox, x1 + ox
        return view.data_rect_to_view(y0, x0, y1, x1)

    def clear_overlays(self) -> None:
        for v in self.views.values():
            v.hide_overlays()


if __name__ == "__main__":  # preview: python -m cnnviz.qt.playground.views
    import sys

    from PySide6.QtWidgets import QApplication

    from cnnviz.core.conv import run_pipeline
    from cnnviz.core.kernels import preset

    app = QApplication.instance() or QApplication(sys.argv)
    w = OutputViews()
    yy, xx = np.mgrid[0:120, 0:160]
    img = ((np.sin(xx / 7.0) + np.cos(yy / 11.0)) * 0.25 + 0.5).astype(np.float32)
    req = PipelineRequest(kernels=preset("sobel-pair").kernels, conv=ConvSpec(stride=2, padding=1),
                          pool=PoolSpec(), magnitude_pair=(0, 1))
    w.set_bank([k.name for k in req.kernels], 0, (0, 1))
    w.show_result(run_pipeline(img, req), req)
    w.resize(900, 700)
    w.show()
    sys.exit(app.exec())
