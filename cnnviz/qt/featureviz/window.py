""""What a channel looks for": feature visualization beside the activations, dataset examples,
the unit's view (guided backpropagation beside Grad-CAM) and adversarial examples, for one
model and one input.

All computing happens in the core (:mod:`cnnviz.core.featureviz`, ``dataset_examples``,
``unit_view``, ``adversarial``) on one background thread (:class:`cnnviz.qt.workers.TaskRunner`: one task
at a time, the latest wins, so two computations never share the model); the window turns
clicks into requests and results into pixels. Opened from the inspector (Model → What a
channel looks for…) on a copy of its model, or on its own:

    python -m cnnviz.qt.featureviz.window [MODEL] [IMAGE]
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

import cnnviz.qt  # noqa: F401 - PySide6 before pyqtgraph
import pyqtgraph as pg  # noqa: E402

from cnnviz.qt.workers import TaskRunner  # noqa: E402
from .widgets import Picture, TileGrid, UnitMap  # noqa: E402
from .tabs import FeatureVizTabs  # noqa: E402

__all__ = ["TAB_KEYS", "FeatureVizWindow", "open_from_inspector"]

#: The tabs, in order, by the keys lessons use (``Lesson.inspector["featureviz"]``).
TAB_KEYS = ("featviz", "dataset", "unit", "adversarial")


@dataclass
class ViewState:
    """What the user chose (the one copy; widgets write here and are set from here)."""

    layer: str | None = None
    channel: int = 0
    steps: int = 64
    lr: float = 0.1
    optimizer: str = "adam"
    diversity: float = 0.0
    batch: int = 1
    size: int | None = None  # image side; None: the model's input size
    folder: str = ""
    k: int = 9
    method: str = "pgd"
    eps: float = 16.0
    target: int | None = None
    featviz: dict[str, Any] = field(default_factory=dict)  # layer -> FeatureVizResult (all channels)
    sweep: Any = None  # SweepResult of the last dataset sweep


@dataclass
class Probe:
    """One forward pass of the input: the layers, their activations (first item, numpy) and
    the prediction."""

    names: list[str]
    shapes: dict[str, tuple[int, ...]]
    maps: dict[str, np.ndarray]
    top: list[tuple[int, str, float]]
    n_classes: int
    x: Any  # the preprocessed input tensor


def _probe(model, pixels) -> Probe:
    from cnnviz.core.capture import capture, topk

    x = model.preprocessing.apply(pixels)
    res = capture(model, x)
    names, shapes, maps = [], {}, {}
    for a in res.layers:
        if len(a.shape) not in (1, 3):
            continue
        names.append(a.name)
        shapes[a.name] = a.shape
        maps[a.name] = a.first.detach().float().cpu().numpy()
    n = int(res.output.shape[-1]) if res.output is not None and res.output.dim() >= 1 else 0
    top = topk(res.output, model.labels, 5) if res.output is not None else []
    return Probe(names, shapes, maps, top, n, x)


def _map_tiles(maps: np.ndarray) -> list[np.ndarray]:
    from cnnviz.core.display import colorize

    if maps.ndim == 1:  # a vector: one tile per unit, its value as a grey level
        lo, hi = float(np.nanmin(maps)), float(np.nanmax(maps))
        span = hi - lo if hi > lo else 1.0
        return [np.full((4, 4), (v - lo) / span, np.float32) for v in maps]
    return [colorize(np.nan_to_num(m.astype(np.float32))) for m in maps]


class FeatureVizWindow(FeatureVizTabs, QMainWindow):
    def __init__(self, model=None, pixels: np.ndarray | None = None, layer: str | None = None, channel: int = 0,
                 parent=None, tab: str = "featviz"):
        super().__init__(parent)
        self.setWindowTitle("What a channel looks for")
        self.setObjectName("featureviz-window")
        if model is None:
            from cnnviz.core.demo import load_demo_model

            model = load_demo_model()
        if pixels is None:
            from cnnviz.core.resources import default_image
            from cnnviz.core.images import load_image

            pixels = load_image(default_image(model.kind)).pixels
        self.model = model
        self.pixels = np.array(pixels)  # our own copy: the inspector's may change under us
        self.state = ViewState(layer=layer, channel=int(channel))
        self.probe: Probe | None = None
        self.inspector = None  # set when opened from the inspector: top images open there
        self.runner = TaskRunner(self, "cnnviz-featviz")
        self.runner.progress.connect(self._on_progress)
        self.runner.partial.connect(self._on_partial)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)
        self.runner.busyChanged.connect(self._on_busy)
        self._task_kind: dict[int, str] = {}
        self._build()
        self.show_tab(tab)
        self.resize(1100, 720)
        self._start("probe", lambda st: _probe(self.model, self.pixels))

    # -- building --------------------------------------------------------------------------
    def _build(self) -> None:
        top = QWidget()
        bar = QHBoxLayout(top)
        bar.setContentsMargins(6, 4, 6, 4)
        bar.addWidget(QLabel(f"<b>{self.model.name}</b>  Layer"))
        self.layer_box = QComboBox()
        self.layer_box.setObjectName("layer-box")
        self.layer_box.setMinimumWidth(200)
        self.layer_box.currentTextChanged.connect(self._on_layer)
        bar.addWidget(self.layer_box)
        bar.addWidget(QLabel("Channel"))
        self.channel_spin = QSpinBox()
        self.channel_spin.setObjectName("channel-spin")
        self.channel_spin.valueChanged.connect(self._on_channel)
        bar.addWidget(self.channel_spin)
        self.prediction = QLabel("")
        bar.addWidget(self.prediction, 1)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(220)
        bar.addWidget(self.progress)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancel-button")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.runner.cancel)
        bar.addWidget(self.cancel_button)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_featviz_tab(), "Feature visualization")
        self.tabs.addTab(self._build_dataset_tab(), "Dataset examples")
        self.tabs.addTab(self._build_unit_tab(), "Unit view")
        self.tabs.addTab(self._build_adversarial_tab(), "Adversarial")

        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(top)
        lay.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.statusBar().showMessage("running the model on the input…")

    def show_tab(self, key: str) -> None:
        """Raise the tab ``key`` (one of :data:`TAB_KEYS`)."""
        if key not in TAB_KEYS:
            raise KeyError(f"no tab {key!r}; tabs: {', '.join(TAB_KEYS)}")
        self.tabs.setCurrentIndex(TAB_KEYS.index(key))

    # -- state → widgets -------------------------------------------------------------------
    def _set_layers(self, probe: Probe) -> None:
        self.probe = probe
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        self.layer_box.addItems(probe.names)
        self.layer_box.blockSignals(False)
        layer = self.state.layer if self.state.layer in probe.names else (
            [n for n in probe.names if len(probe.shapes[n]) == 3] or probe.names)[-1]
        self.target_box.blockSignals(True)
        for i in range(probe.n_classes):
            name = self.model.labels[i] if self.model.labels and i < len(self.model.labels) else f"class {i}"
            self.target_box.addItem(f"{i}: {name}", i)
        self.target_box.blockSignals(False)
        if probe.top:
            i, name, p = probe.top[0]
            self.prediction.setText(f"  prediction: {name} ({p:.0%})")
        self.state.layer = None
        self.layer_box.setCurrentText(layer)
        self._on_layer(layer)

    def _on_layer(self, name: str) -> None:
        if not name or self.probe is None or name == self.state.layer:
            return
        self.state.layer = name
        maps = self.probe.maps[name]
        self.channel_spin.blockSignals(True)
        self.channel_spin.setRange(0, maps.shape[0] - 1)
        self.channel_spin.setValue(min(self.state.channel, maps.shape[0] - 1))
        self.channel_spin.blockSignals(False)
        self.state.channel = self.channel_spin.value()
        self.act_grid.set_images(_map_tiles(maps))
        self._show_featviz()
        self._show_channel()

    def _on_channel(self, c: int) -> None:
        self.state.channel = int(c)
        self._show_channel()

    def _show_featviz(self) -> None:
        r = self.state.featviz.get(self.state.layer)
        if r is None:
            self.viz_grid.set_images([])
        else:
            self.viz_grid.set_images(list(r.images), [f"{v:.3g}" for v in r.values])

    def _show_channel(self) -> None:
        c = self.state.channel
        self._show_unit_map()
        self.act_grid.set_selected(c)
        self.viz_grid.set_selected(c)
        r = self.state.featviz.get(self.state.layer)
        img = r.for_channel(c) if r is not None else None
        self.channel_viz.set_image(img[0] if img is not None and len(img) else None,
                                   f"channel {c}" if img is not None and len(img) else "")
        sweep = self.state.sweep
        if sweep is not None and self.state.layer in sweep.layers:
            self._show_top_images(sweep)
        else:
            self.top_grid.set_images([])

    def _show_top_images(self, sweep) -> None:
        from cnnviz.core.dataset_examples import item_input, pixels_input

        entries = sweep.entries(self.state.layer, self.state.channel)
        tiles, caps = [], []
        for e in entries:
            try:
                pictures = getattr(sweep, "pictures", None) or {}
                img = (pixels_input(pictures[e["index"]], self.model.preprocessing) if e["index"] in pictures
                       else item_input(e["item"], self.model.preprocessing))
            except Exception:  # noqa: BLE001 - a file changed since the sweep: show a gap
                img = np.zeros((8, 8, 3), np.float32)
            y0, x0, y1, x1 = e["box"]
            tiles.append(img[y0:y1, x0:x1] if y0 >= 0 and y1 > y0 and x1 > x0 else img)
            caps.append(f"{e['value']:.3g}")
        self.top_grid.set_images(tiles, caps, cols=max(1, round(len(tiles) ** 0.5)))

    # -- actions ---------------------------------------------------------------------------
    def _settings(self):
        from cnnviz.core.featureviz import FeatureVizSettings

        size = (self.state.size, self.state.size) if self.state.size else None
        return FeatureVizSettings(steps=self.state.steps, lr=self.state.lr, optimizer=self.state.optimizer,
                                  diversity=self.state.diversity, batch=self.state.batch, size=size)

    def visualize_all(self) -> None:
        from cnnviz.core import featureviz as fv

        if self.state.layer is None:
            return
        req = fv.FeatureVizRequest(fv.Objective.all_channels(self.state.layer), self._settings())
        model = self.model
        self._start("featviz-all", lambda st: fv.run(model, req, st))

    def visualize_channel(self) -> None:
        from cnnviz.core import featureviz as fv

        if self.state.layer is None:
            return
        req = fv.FeatureVizRequest(fv.Objective.channel_of(self.state.layer, self.state.channel), self._settings())
        model = self.model
        self._start("featviz-one", lambda st: fv.run(model, req, st))

    def live_source(self):
        """The frame source a live sweep reads: the inspector's live source when it has one, else
        ``None`` (the sweep then makes its own synthetic source)."""
        insp = self.inspector
        try:
            return insp.input.live.source if insp is not None else None
        except AttributeError:
            return None

    def sweep(self) -> None:
        from cnnviz.core import dataset_examples as dx

        if self.live_check.isChecked() and self.state.layer is not None:
            model, layer, k, n = self.model, self.state.layer, self.state.k, self.live_frames_spin.value()
            shared = self.live_source()

            def work(st):
                from cnnviz.core.sources.synthetic import SyntheticSource

                src = shared if shared is not None else SyntheticSource(96, 72, fps=60)
                own = shared is None
                if own:
                    src.start()
                try:
                    return dx.run_stream(model, dx.frames_of(src, st), (layer,), k, st, max_frames=n)
                finally:
                    if own:
                        src.stop()

            self._start("sweep", work)
            return
        if not self.state.folder.strip():
            self.show_message("choose a folder of images (or a video file) first", error=True)
            return
        if self.state.layer is None:
            return
        spatial = len(self.probe.shapes.get(self.state.layer, ())) == 3  # a vector layer: whole images
        req = dx.SweepRequest(self.state.folder.strip(), (self.state.layer,), k=self.state.k, crops=spatial)
        model = self.model
        self._start("sweep", lambda st: dx.run(model, req, st))

    def pick_unit(self, y: int, x: int) -> None:
        """Show the unit's view of unit (y, x) of the channel's map (a click on the map)."""
        for spin, v in ((self.unit_y_spin, y), (self.unit_x_spin, x)):
            spin.blockSignals(True)
            spin.setValue(int(v))
            spin.blockSignals(False)
        self.unit_map.set_marker((y, x))
        self.unit_view()

    def _show_unit_map(self) -> None:
        maps = None if self.probe is None or self.state.layer is None else self.probe.maps.get(self.state.layer)
        if maps is None or maps.ndim != 3:
            self.unit_map.set_map(None, None)
            self.unit_map.placeholder = ("a vector layer: each channel is one unit" if maps is not None
                                         else "the channel's activation map: click a unit")
            return
        c = min(self.state.channel, maps.shape[0] - 1)
        self.unit_map.set_map(_map_tiles(maps[c:c + 1])[0], maps.shape[1:],
                              f"{self.state.layer} channel {c}: click a unit")
        self.unit_map.set_marker(self.picked_unit())

    def picked_unit(self) -> tuple[int, int] | None:
        """The unit picked in the unit tab, ``None`` for the channel's strongest unit."""
        y, x = self.unit_y_spin.value(), self.unit_x_spin.value()
        return None if y < 0 or x < 0 else (y, x)

    def _on_unit_pick(self, _value: int) -> None:
        # both coordinates set (or both back to "strongest"): recompute the view for that unit
        if (self.unit_y_spin.value() < 0) == (self.unit_x_spin.value() < 0):
            self.unit_map.set_marker(self.picked_unit())
            self.unit_view()

    def unit_view(self) -> None:
        from cnnviz.core.explain import grad_cam
        from cnnviz.core.unit_view import gradient_to_rgb, guided_backprop

        if self.probe is None or self.state.layer is None:
            return
        model, x, layer, ch = self.model, self.probe.x, self.state.layer, self.state.channel
        picked = self.picked_unit()

        def work(st):
            grad, unit = guided_backprop(model, x, layer, ch, picked)
            st.check()
            try:
                cam, cam_layer = grad_cam(model, x)
            except Exception as exc:  # noqa: BLE001 - a model without a conv layer: no Grad-CAM
                cam, cam_layer = None, str(exc)
            return gradient_to_rgb(grad), unit, cam, cam_layer, grad

        self._start("unit", work)

    def attack(self) -> None:
        from cnnviz.core import adversarial as adv

        if self.probe is None:
            return
        req = adv.AttackRequest(method=self.state.method, eps=self.state.eps, target=self.state.target)
        model, x = self.model, self.probe.x
        self._start("attack", lambda st: adv.run(model, x, req, st))

    def open_top_image(self, rank: int) -> None:
        """Open the ``rank``-th top image of the selected channel in the inspector, on that
        layer, channel and unit (its receptive field shown)."""
        sweep = self.state.sweep
        if sweep is None or self.state.layer not in sweep.layers:
            return
        entries = sweep.entries(self.state.layer, self.state.channel)
        if not 0 <= rank < len(entries):
            return
        e = entries[rank]
        insp = self.inspector
        if insp is None:
            self.show_message(f"{e['item']}: value {e['value']:.4g} at unit {tuple(e['unit'])} "
                              "(open this window from the inspector to open images there)")
            return
        try:
            pictures = getattr(sweep, "pictures", None) or {}
            if e["index"] in pictures:  # a live frame: its kept picture
                insp.set_image(pictures[e["index"]], e["item"])
            elif "#frame=" in e["item"] and not __import__("os").path.exists(e["item"]):
                from cnnviz.core.dataset_examples import VideoReader

                path, frame = e["item"].rsplit("#frame=", 1)
                reader = VideoReader(path)
                try:
                    pixels = reader.frame(int(frame))
                finally:
                    reader.close()
                if pixels is None:
                    raise OSError("the frame cannot be decoded")
                insp.set_image(pixels, e["item"].rsplit("/", 1)[-1])
            elif not insp.open_image(e["item"]):
                return
            insp.select_layer(self.state.layer)
            insp.select_channel(self.state.channel)
            insp.show_tab("rf")
            insp.set_rf_unit(*e["unit"])
            insp.raise_()
            insp.activateWindow()
        except (AttributeError, OSError, ValueError) as exc:
            self.show_message(f"cannot open {e['item']} in the inspector: {exc}", error=True)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of images")
        if folder:
            self.folder_edit.setText(folder)

    def _start(self, kind: str, fn) -> int:
        tid = self.runner.start(fn)
        self._task_kind[tid] = kind
        self.progress.setValue(0)
        return tid

    # -- results ---------------------------------------------------------------------------
    def _on_busy(self, busy: bool) -> None:
        self.cancel_button.setEnabled(busy)

    def _on_progress(self, tid: int, fraction: float, status: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        kind = self._task_kind.get(tid)
        if kind and kind.startswith("featviz"):
            self.value_label.setText(status)
        elif kind == "sweep":
            self.sweep_label.setText(status)
        elif kind == "attack":
            self.attack_label.setText(status)

    def _on_partial(self, tid: int, part) -> None:
        if self._task_kind.get(tid) == "featviz-all":
            self.viz_grid.set_images(list(part.images), [f"{v:.3g}" for v in part.values])

    def _on_finished(self, tid: int, result) -> None:
        kind = self._task_kind.pop(tid, None)
        self.progress.setValue(1000)
        if kind == "probe":
            self._set_layers(result)
            self.statusBar().showMessage("ready")
        elif kind == "featviz-all":
            self.state.featviz[result.objective.layer] = result
            if result.objective.layer == self.state.layer:
                self._show_featviz()
                self._show_channel()
            self.value_label.setText(f"done{' (cached)' if result.cached else ''}: activation up to "
                                     f"{float(result.values.max()):.4g}")
        elif kind == "featviz-one":
            self.channel_viz.set_image(result.images[0], f"channel {result.objective.channel}")
            self.value_label.setText(f"channel {result.objective.channel}: activation {float(result.values[0]):.4g}"
                                     f"{' (cached)' if result.cached else ''}")
        elif kind == "sweep":
            self.state.sweep = result
            self.sweep_label.setText(f"{result.processed} images swept, {len(result.skipped)} skipped"
                                     f"{' (from the cache)' if result.cached else ''}")
            self.skipped_text.setPlainText("\n".join(f"{p}: {r}" for p, r in result.skipped))
            self._show_channel()
        elif kind == "unit":
            rgb, unit, cam, cam_layer, self.unit_gradient = result
            self.unit_shown = unit
            if unit is not None:
                self.unit_map.set_marker(tuple(unit))
            self.guided_view.set_image(rgb, f"guided backprop, unit {unit}" if unit else "guided backprop")
            if cam is not None:
                from cnnviz.core.display import lut

                base = np.asarray(self.probe.x[0]).transpose(1, 2, 0)
                base = (base - base.min()) / max(1e-9, float(base.max() - base.min()))
                heat = lut("magma")[np.round(np.clip(cam, 0, 1) * 255).astype(np.uint8)].astype(np.float32) / 255
                if base.shape[2] == 1:
                    base = np.repeat(base, 3, axis=2)
                self.cam_view.set_image(0.5 * base + 0.5 * heat, f"Grad-CAM at {cam_layer}")
            else:
                self.cam_view.set_image(None)
                self.cam_view.placeholder = f"no Grad-CAM: {cam_layer}"
            self.unit_label.setText(f"{self.state.layer} channel {self.state.channel}, unit {unit}")
        elif kind == "attack":
            self._show_attack(result)

    def _show_attack(self, r) -> None:
        self.clean_view.set_image(r.clean, f"clean: {r.clean_top[0][1]} ({r.clean_top[0][2]:.0%})")
        self.adv_view.set_image(r.adversarial, f"adversarial: {r.adversarial_top[0][1]} ({r.adversarial_top[0][2]:.0%})")
        self.delta_view.set_image(r.amplified, f"change ×{255 / (2 * r.request.eps):.0f}")
        fooled = "fooled" if r.flipped else "not fooled"
        self.attack_label.setText(f"{r.clean_top[0][1]} → {r.adversarial_top[0][1]} ({fooled}), "
                                  f"largest pixel change {r.linf:.1f} grey levels")
        values = [v if v is not None else 0.0 for _, v in r.divergence]
        self.divergence_plot.clear()
        self.divergence_bars = pg.BarGraphItem(x=np.arange(len(values)), height=np.asarray(values), width=0.8,
                                               brush=pg.mkBrush(220, 120, 60))
        self.divergence_plot.addItem(self.divergence_bars)
        ticks = [(i, n) for i, (n, _) in enumerate(r.divergence)]
        step = max(1, len(ticks) // 12)
        self.divergence_plot.getAxis("bottom").setTicks([ticks[::step], ticks])
        self.divergence = r.divergence

    def _on_failed(self, tid: int, exc) -> None:
        self._task_kind.pop(tid, None)
        self.progress.setValue(0)
        text = str(exc) if hasattr(exc, "cause") else f"{type(exc).__name__}: {exc}"
        self.show_message(text, error=True)

    def _on_cancelled(self, tid: int) -> None:
        self._task_kind.pop(tid, None)
        self.progress.setValue(0)
        self.statusBar().showMessage("cancelled: nothing was cached")

    def show_message(self, text: str, error: bool = False) -> None:
        self.statusBar().setStyleSheet("color: #d62728;" if error else "")
        self.statusBar().showMessage(text)

    def closeEvent(self, ev) -> None:  # noqa: N802
        self.runner.shutdown(3000)
        super().closeEvent(ev)


def open_from_inspector(inspector, tab: str = "featviz") -> FeatureVizWindow:
    """Open the window on the inspector's model (a copy: the inspector keeps running its own),
    input, layer and channel. Kept alive by the inspector."""
    model = inspector.current_model()
    pixels = inspector.current_input()
    if model is not None:
        try:
            model = copy.deepcopy(model)
        except Exception:  # noqa: BLE001 - an uncopyable model: share it (the inspector's frames may wait)
            pass
    w = FeatureVizWindow(model, pixels, inspector.selected_layer(), inspector.selected_channel(), tab=tab)
    inspector._featviz_window = w
    w.inspector = inspector
    w.show()
    return w


def main(argv: list[str] | None = None) -> int:
    from PySide6.QtWidgets import QApplication

    argv = list(sys.argv[1:] if argv is None else argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    model = pixels = None
    if argv:
        from cnnviz.core.models import load_model

        model = load_model(argv[0])
    if len(argv) > 1:
        from cnnviz.core.images import load_image

        pixels = load_image(argv[1]).pixels
    w = FeatureVizWindow(model, pixels)
    w.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
