"""The four tabs of the "What a channel looks for" window (feature visualization, dataset
examples, the unit's view, adversarial), built as a mixin of :class:`FeatureVizWindow`."""

from __future__ import annotations


from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

import cnnviz.qt  # noqa: F401 - PySide6 before pyqtgraph
import pyqtgraph as pg  # noqa: E402

from .widgets import Picture, TileGrid, UnitMap  # noqa: E402


class FeatureVizTabs:
    """Builds the tabs' widgets and connects them to the window's actions and state."""

    def _build_featviz_tab(self) -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        row = QHBoxLayout()
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 4096)
        self.steps_spin.setValue(self.state.steps)
        self.steps_spin.valueChanged.connect(lambda v: setattr(self.state, "steps", int(v)))
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(3)
        self.lr_spin.setRange(0.001, 2.0)
        self.lr_spin.setSingleStep(0.01)
        self.lr_spin.setValue(self.state.lr)
        self.lr_spin.valueChanged.connect(lambda v: setattr(self.state, "lr", float(v)))
        self.opt_box = QComboBox()
        self.opt_box.addItems(["adam", "sgd"])
        self.opt_box.currentTextChanged.connect(lambda t: setattr(self.state, "optimizer", t))
        self.div_spin = QDoubleSpinBox()
        self.div_spin.setRange(0, 1e4)
        self.div_spin.valueChanged.connect(lambda v: setattr(self.state, "diversity", float(v)))
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 16)
        self.batch_spin.setToolTip("images per channel (with diversity: different answers to the same channel)")
        self.batch_spin.valueChanged.connect(lambda v: setattr(self.state, "batch", int(v)))
        self.div_spin.setToolTip("how hard the images of one channel are pushed apart (0: off)")
        from cnnviz.core.featureviz import default_size

        side = max(default_size(self.model))
        self.state.size = side if side <= 128 else 128  # 224 px over 512 channels is slow without a GPU
        self.size_spin = QSpinBox()
        self.size_spin.setRange(8, 512)
        self.size_spin.setValue(self.state.size)
        self.size_spin.setToolTip("the side of the optimized images, in pixels")
        self.size_spin.valueChanged.connect(lambda v: setattr(self.state, "size", int(v)))
        for label, widget in (("Steps", self.steps_spin), ("Learning rate", self.lr_spin), ("Optimizer", self.opt_box),
                              ("Size", self.size_spin), ("Per channel", self.batch_spin),
                              ("Diversity", self.div_spin)):
            row.addWidget(QLabel(label))
            row.addWidget(widget)
        self.viz_all_button = QPushButton("Visualize every channel")
        self.viz_all_button.setObjectName("viz-all-button")
        self.viz_all_button.clicked.connect(self.visualize_all)
        self.viz_one_button = QPushButton("This channel")
        self.viz_one_button.clicked.connect(self.visualize_channel)
        row.addWidget(self.viz_all_button)
        row.addWidget(self.viz_one_button)
        self.value_label = QLabel("")
        self.value_label.setObjectName("value-label")
        row.addWidget(self.value_label, 1)
        lay.addLayout(row)
        split = QSplitter(Qt.Orientation.Horizontal)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.addWidget(QLabel("Activations for this input"))
        self.act_grid = TileGrid(placeholder="the layer's channels appear here")
        self.act_grid.setObjectName("activation-grid")
        self.act_grid.tileClicked.connect(self.channel_spin.setValue)
        ll.addWidget(self.act_grid, 1)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.addWidget(QLabel("What each channel looks for (feature visualization)"))
        self.viz_grid = TileGrid(placeholder="Visualize every channel: one image per channel, optimized to excite it")
        self.viz_grid.setObjectName("featviz-grid")
        self.viz_grid.tileClicked.connect(self.channel_spin.setValue)
        rl.addWidget(self.viz_grid, 1)
        split.addWidget(left)
        split.addWidget(right)
        lay.addWidget(split, 1)
        return w

    def _build_dataset_tab(self) -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        row = QHBoxLayout()
        row.addWidget(QLabel("Images"))
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("a folder of images or a video file")
        self.folder_edit.textChanged.connect(lambda t: setattr(self.state, "folder", t))
        row.addWidget(self.folder_edit, 1)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row.addWidget(browse)
        row.addWidget(QLabel("k"))
        self.k_spin = QSpinBox()
        self.k_spin.setRange(1, 100)
        self.k_spin.setValue(self.state.k)
        self.k_spin.valueChanged.connect(lambda v: setattr(self.state, "k", int(v)))
        row.addWidget(self.k_spin)
        self.live_check = QCheckBox("Live source")
        self.live_check.setObjectName("live-check")
        self.live_check.setToolTip("rank frames of the inspector's live source (a synthetic one when there is "
                                   "none) instead of the folder; not cached on disk")
        row.addWidget(self.live_check)
        self.live_frames_spin = QSpinBox()
        self.live_frames_spin.setRange(1, 100_000)
        self.live_frames_spin.setValue(200)
        self.live_frames_spin.setToolTip("stop after this many live frames (or Cancel)")
        row.addWidget(self.live_frames_spin)
        self.sweep_button = QPushButton("Find the top images")
        self.sweep_button.setObjectName("sweep-button")
        self.sweep_button.clicked.connect(self.sweep)
        row.addWidget(self.sweep_button)
        lay.addLayout(row)
        self.sweep_label = QLabel("")
        self.sweep_label.setObjectName("sweep-label")
        lay.addWidget(self.sweep_label)
        split = QSplitter(Qt.Orientation.Horizontal)
        self.channel_viz = Picture(placeholder="the channel's feature visualization (Visualize first)")
        self.top_grid = TileGrid(placeholder="the k images that excite this channel most: the receptive field of "
                                             "the strongest unit")
        self.top_grid.setObjectName("top-grid")
        self.top_grid.tileClicked.connect(self.open_top_image)
        split.addWidget(self.channel_viz)
        split.addWidget(self.top_grid)
        split.setSizes([300, 600])
        lay.addWidget(split, 1)
        self.skipped_text = QPlainTextEdit()
        self.skipped_text.setReadOnly(True)
        self.skipped_text.setMaximumHeight(80)
        self.skipped_text.setPlaceholderText("files skipped (not images, corrupt, too large) are listed here")
        lay.addWidget(self.skipped_text)
        return w

    def _build_unit_tab(self) -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        row = QHBoxLayout()
        self.unit_button = QPushButton("Show the unit's view")
        self.unit_button.setObjectName("unit-button")
        self.unit_button.clicked.connect(self.unit_view)
        row.addWidget(self.unit_button)
        # the unit (y, x) on the channel's map; -1 ("strongest"): the channel's strongest unit
        self.unit_y_spin, self.unit_x_spin = QSpinBox(), QSpinBox()
        for name, spin in (("y", self.unit_y_spin), ("x", self.unit_x_spin)):
            spin.setRange(-1, 9999)
            spin.setValue(-1)
            spin.setSpecialValueText("strongest")
            spin.setObjectName(f"unit-{name}-spin")
            spin.setToolTip(f"the unit's {name} on the layer's map (strongest: the channel's strongest unit); "
                            "a change recomputes the view")
            spin.valueChanged.connect(self._on_unit_pick)
            row.addWidget(QLabel(f"{name}:"))
            row.addWidget(spin)
        self.unit_label = QLabel("click a unit on the channel's map (or set y, x): its guided backpropagation, "
                                 "beside Grad-CAM of the predicted class; unset: the channel's strongest unit")
        row.addWidget(self.unit_label, 1)
        lay.addLayout(row)
        split = QSplitter(Qt.Orientation.Horizontal)
        self.unit_map = UnitMap(placeholder="the channel's activation map: click a unit")
        self.unit_map.setObjectName("unit-map")
        self.unit_map.unitClicked.connect(self.pick_unit)
        split.addWidget(self.unit_map)
        self.guided_view = Picture(placeholder="guided backpropagation")
        self.guided_view.setObjectName("guided-view")
        self.cam_view = Picture(placeholder="Grad-CAM")
        self.cam_view.setObjectName("cam-view")
        split.addWidget(self.guided_view)
        split.addWidget(self.cam_view)
        lay.addWidget(split, 1)
        return w

    def _build_adversarial_tab(self) -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        form = QHBoxLayout()
        self.method_box = QComboBox()
        self.method_box.addItems(["pgd", "fgsm"])
        self.method_box.currentTextChanged.connect(lambda t: setattr(self.state, "method", t))
        self.eps_spin = QDoubleSpinBox()
        self.eps_spin.setRange(0.5, 255)
        self.eps_spin.setValue(self.state.eps)
        self.eps_spin.setToolTip("largest change of any pixel, in grey levels (0-255)")
        self.eps_spin.valueChanged.connect(lambda v: setattr(self.state, "eps", float(v)))
        self.target_box = QComboBox()
        self.target_box.setObjectName("target-box")
        self.target_box.addItem("away from the prediction", None)
        self.target_box.currentIndexChanged.connect(
            lambda _i: setattr(self.state, "target", self.target_box.currentData()))
        for label, widget in (("Attack", self.method_box), ("ε (grey levels)", self.eps_spin),
                              ("Target", self.target_box)):
            form.addWidget(QLabel(label))
            form.addWidget(widget)
        self.attack_button = QPushButton("Attack")
        self.attack_button.setObjectName("attack-button")
        self.attack_button.clicked.connect(self.attack)
        form.addWidget(self.attack_button)
        self.attack_label = QLabel("")
        self.attack_label.setObjectName("attack-label")
        form.addWidget(self.attack_label, 1)
        lay.addLayout(form)
        pics = QSplitter(Qt.Orientation.Horizontal)
        self.clean_view = Picture(placeholder="clean")
        self.adv_view = Picture(placeholder="adversarial")
        self.delta_view = Picture(placeholder="the change, amplified")
        for v in (self.clean_view, self.adv_view, self.delta_view):
            pics.addWidget(v)
        lay.addWidget(pics, 1)
        self.divergence_plot = pg.PlotWidget()
        self.divergence_plot.setObjectName("divergence-plot")
        self.divergence_plot.setLabel("left", "relative L2 change")
        self.divergence_plot.setLabel("bottom", "layer (execution order)")
        self.divergence_plot.setMinimumHeight(180)
        self.divergence_bars: pg.BarGraphItem | None = None
        lay.addWidget(self.divergence_plot, 1)
        return w
