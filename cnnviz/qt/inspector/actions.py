"""The inspector's menus and toolbar: actions that call the window's public API."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QDialog, QFileDialog, QLabel, QMainWindow, QToolBar

if TYPE_CHECKING:
    from .window import InspectorWindow

__all__ = ["PRECISIONS", "build_menus", "load_labels_dialog", "open_image_dialog", "open_model_dialog",
           "open_video_dialog", "open_webcam"]

PRECISIONS = ("float32", "float16", "bfloat16")


def _action(window: QMainWindow, text: str, slot, shortcut=None, tip: str = "", name: str = "") -> QAction:
    a = QAction(text, window)
    if shortcut is not None:
        a.setShortcut(QKeySequence(shortcut))
    if tip:
        a.setToolTip(tip)
        a.setStatusTip(tip)
    a.setObjectName(name or text)
    a.triggered.connect(slot)
    return a


def build_menus(w: InspectorWindow) -> None:
    """The Model, Input, Export and View menus and the toolbar (device and precision boxes)."""
    ex = w.exporter
    w.act_open = _action(w, "&Open model…", lambda: open_model_dialog(w), QKeySequence.StandardKey.Open,
                         "Open a torchvision model, a Python class, TorchScript, .pt2 or a pickled model",
                         "act-open-model")
    w.act_demo = _action(w, "&Demo model", lambda: w.load_model_spec("demo"), None,
                         "The bundled handwritten-digits CNN", "act-demo")
    w.act_labels = _action(w, "Load &labels…", lambda: load_labels_dialog(w), None, "Class names for the outputs",
                           "act-labels")
    w.act_draw = _action(w, "&Draw", w.use_canvas, None, "Draw the input with the mouse", "act-draw")
    w.act_image = _action(w, "Open &image…", lambda: open_image_dialog(w), "Ctrl+Shift+O",
                          "Use a picture as the input", "act-image")
    w.act_video = _action(w, "Open &video…", lambda: open_video_dialog(w), None, "Play a video file into the model",
                          "act-video")
    w.act_webcam = _action(w, "&Webcam", lambda: open_webcam(w), None, "Use the first webcam as the input",
                           "act-webcam")
    w.act_export_png = _action(w, "Layer grid as &PNG…", ex.grid_dialog, "Ctrl+S",
                               "The selected layer's tiles as one picture", "act-export-png")
    w.act_export_npz = _action(w, "All layers as .&npz…", ex.npz_dialog, None,
                               "Every layer's activation for this input", "act-export-npz")
    w.act_export_csv = _action(w, "Layer &statistics as CSV…", ex.csv_dialog, None,
                               "min, max, mean, std, % zeros and dead channels of every layer",
                               "act-export-csv")
    w.act_close = _action(w, "&Close", w.close, QKeySequence.StandardKey.Close, "", "act-close")

    mb = w.menuBar()
    m = mb.addMenu("&Model")
    m.addAction(w.act_open)
    w.recent_menu = m.addMenu("Open &recent")
    w.recent_menu.aboutToShow.connect(lambda: _fill_recent_menu(w))
    m.addAction(w.act_demo)
    from cnnviz.qt.train import add_train_action  # noqa: PLC0415
    w.act_train = add_train_action(w, m, inspector=w)
    m.addSeparator()
    m.addAction(w.act_labels)
    m.addSeparator()
    from cnnviz.qt.featureviz import add_featureviz_action  # noqa: PLC0415 - "What a channel looks for…"

    w.act_featviz = add_featureviz_action(w, m)
    m.addSeparator()
    m.addAction(w.act_close)
    m = mb.addMenu("&Input")
    for a in (w.act_draw, w.act_image, w.act_video, w.act_webcam):
        m.addAction(a)
    m = mb.addMenu("&Export")
    for a in (w.act_export_png, w.act_export_npz, w.act_export_csv):
        m.addAction(a)
    m = mb.addMenu("&View")
    for d in (w.dock_input, w.dock_layers, w.dock_layer, w.dock_model):
        m.addAction(d.toggleViewAction())

    tb = QToolBar("Inspector")
    tb.setObjectName("inspector-toolbar")
    tb.addAction(w.act_open)
    tb.addAction(w.act_demo)
    tb.addSeparator()
    tb.addWidget(QLabel(" Device "))
    w.device_box = QComboBox()
    w.device_box.setObjectName("device-box")
    w.device_box.addItems(["auto", "cpu"])
    w.device_box.setToolTip("auto: CUDA, then Apple MPS, then the CPU")
    w.device_box.currentTextChanged.connect(w._on_device)
    tb.addWidget(w.device_box)
    tb.addWidget(QLabel(" Precision "))
    w.dtype_box = QComboBox()
    w.dtype_box.setObjectName("dtype-box")
    w.dtype_box.addItems(PRECISIONS)
    w.dtype_box.setToolTip("float16 / bfloat16 run on GPUs only")
    w.dtype_box.currentTextChanged.connect(w._on_dtype)
    tb.addWidget(w.dtype_box)
    tb.addSeparator()
    tb.addAction(w.act_draw)
    tb.addAction(w.act_image)
    tb.addSeparator()
    tb.addAction(w.act_export_png)
    w.addToolBar(tb)
    w.toolbar = tb



def _fill_recent_menu(w: InspectorWindow) -> None:
    w.recent_menu.clear()
    items = w.recent.items()
    if not items:
        a = w.recent_menu.addAction("(none yet)")
        a.setEnabled(False)
        return
    for c in items:
        a = w.recent_menu.addAction(c.title())
        a.setToolTip(c.spec)
        # never trusted here: a code-bearing file goes through the trust store / dialog
        a.triggered.connect(lambda _=False, c=c: w.load_model_spec(c.spec, c.weights, None,
                                                                   ctor_kwargs=c.ctor_kwargs, labels=c.labels))


# -- the dialogs behind the actions --------------------------------------------------------
def open_model_dialog(w: InspectorWindow) -> None:
    from .load_dialog import LoadDialog

    dlg = LoadDialog(w, w.recent)
    try:
        if dlg.exec() != QDialog.DialogCode.Accepted:
            return
        c = dlg.choice()
    finally:
        dlg.deleteLater()
    w.load_model_spec(c.spec, c.weights, None, ctor_kwargs=c.ctor_kwargs, labels=c.labels)


def load_labels_dialog(w: InspectorWindow) -> None:
    path, _ = QFileDialog.getOpenFileName(w, "Class names", str(Path.home()), "Labels (*.txt *.json);;All files (*)")
    if path:
        w.load_labels(path)


def open_image_dialog(w: InspectorWindow) -> None:
    from cnnviz.core.images import SUPPORTED_EXTENSIONS

    exts = " ".join(f"*{e}" for e in SUPPORTED_EXTENSIONS) if SUPPORTED_EXTENSIONS else "*"
    path, _ = QFileDialog.getOpenFileName(w, "Input image", str(Path.home()), f"Images ({exts});;All files (*)")
    if path:
        w.open_image(path)


def open_video_dialog(w: InspectorWindow) -> None:
    path, _ = QFileDialog.getOpenFileName(w, "Video file", str(Path.home()),
                                          "Videos (*.mp4 *.avi *.mkv *.mov *.webm);;All files (*)")
    if path:
        from cnnviz.core.sources import VideoFileSource

        w.set_source(VideoFileSource(path))


def open_webcam(w: InspectorWindow) -> None:
    from cnnviz.core.sources import WebcamSource

    w.set_source(WebcamSource(0))
