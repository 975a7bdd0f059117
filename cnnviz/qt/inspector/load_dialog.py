"""The "Open model" dialog (every format the models core loads) and the recent-models list.

Tabs: the bundled demo; a torchvision architecture with pretrained (downloaded) / local /
random weights; a Python file and class with optional constructor arguments and weights;
a model file (TorchScript, ``torch.export`` ``.pt2`` or a whole pickled module — the format
is read from the file's bytes); and recently opened models. Nothing here loads anything:
the dialog returns a :class:`LoadChoice` and the window loads it on its loader thread.
Trust is never remembered here: code-bearing files always go through the trust store.
"""

from __future__ import annotations

import ast
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem, QPushButton,
                               QRadioButton, QTabWidget, QVBoxLayout, QWidget)

from cnnviz.core.errors import CnnvizError
from cnnviz.core.files import backup_path_for, check_regular_file, load_json_bounded, read_bounded
from cnnviz.core.kernels import atomic_write_text
from cnnviz.qt.colors import mute

__all__ = ["TORCHVISION_NAMES", "LoadChoice", "LoadDialog", "RecentModels"]

#: Offered in the name box (any other torchvision classification name can be typed).
TORCHVISION_NAMES = (
    "resnet18", "resnet34", "resnet50", "resnet101", "vgg11", "vgg16", "vgg19_bn", "alexnet",
    "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", "efficientnet_b3",
    "convnext_tiny", "densenet121", "googlenet", "inception_v3", "squeezenet1_1", "shufflenet_v2_x1_0",
    "regnet_y_400mf", "mnasnet1_0",
)

RECENT_FILE = "inspector_recent.json"
#: The recent-models list holds ten entries: a few KB. Anything far larger is damaged.
RECENT_LIMIT = 1 << 20
#: A model definition read for its class names; a larger file is not a model's source.
PYTHON_FILE_LIMIT = 16 << 20
MAX_RECENT = 10


@dataclass(frozen=True)
class LoadChoice:
    """What to load: arguments of :func:`cnnviz.core.models.load_model` plus a labels file."""

    spec: str
    weights: str | None = None
    ctor_kwargs: str | None = None
    labels: str | None = None

    def title(self) -> str:
        text = self.spec
        if self.weights:
            w = self.weights if self.weights in ("pretrained", "random") else Path(self.weights).name
            text += f" ({w})"
        return text


class RecentModels:
    """Recently opened models in ``<config dir>/inspector_recent.json`` (written atomically).

    A file that cannot be read is moved aside to ``.bak`` and :attr:`warning` says so.
    """

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / RECENT_FILE
        self.warning: str | None = None
        self._items: list[LoadChoice] = self._read()

    def _read(self) -> list[LoadChoice]:
        # through core.files: a FIFO or a device in its place cannot hang the window, a huge
        # or deeply nested file cannot exhaust it (bounded read, JSON depth checked first)
        if not os.path.lexists(self.path):
            return []
        try:
            too_big = check_regular_file(self.path, "the recent-models list").st_size > RECENT_LIMIT
            raw = b"" if too_big else read_bounded(self.path, RECENT_LIMIT, "the recent-models list")
        except CnnvizError as exc:  # not a regular file, unreadable: said, left alone
            self.warning = str(exc)
            return []
        try:
            if too_big:
                raise ValueError(f"more than {RECENT_LIMIT >> 20} MB")
            data = load_json_bounded(raw, RECENT_LIMIT, "its text")
            items = [LoadChoice(**{k: (None if v is None else str(v)) for k, v in d.items()
                                   if k in ("spec", "weights", "ctor_kwargs", "labels")})
                     for d in data["recent"] if isinstance(d, dict) and d.get("spec")]
            return items[:MAX_RECENT]
        except (ValueError, KeyError, TypeError) as err:  # CnnvizError is a ValueError
            exc = err.cause if isinstance(err, CnnvizError) else err
            backup = backup_path_for(self.path)  # never over an earlier backup
            try:
                os.replace(self.path, backup)
                self.warning = (f"the recent-models list was damaged ({exc}); it was kept as {backup} "
                                "and a new one started")
            except OSError:
                self.warning = f"the recent-models list {self.path} is damaged ({exc})"
            return []

    def items(self) -> list[LoadChoice]:
        return list(self._items)

    def add(self, choice: LoadChoice) -> None:
        self._items = [choice] + [c for c in self._items if c != choice]
        del self._items[MAX_RECENT:]
        try:
            atomic_write_text(self.path, json.dumps({"version": 1, "recent": [asdict(c) for c in self._items]},
                                                    indent=1) + "\n")
        except OSError as exc:
            self.warning = f"cannot save the recent-models list {self.path}: {exc.strerror or exc}"

    def clear(self) -> None:
        self._items = []
        try:
            atomic_write_text(self.path, json.dumps({"version": 1, "recent": []}) + "\n")
        except OSError:
            pass


def python_classes(path: str | os.PathLike) -> list[str]:
    """Class names defined at the top of a Python file, read with ``ast`` (nothing runs)."""
    try:  # bounded and FIFO-safe (core.files); absurd nesting is a RecursionError/MemoryError
        tree = ast.parse(read_bounded(path, PYTHON_FILE_LIMIT, "Python file").decode("utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError, RecursionError, MemoryError):
        return []  # CnnvizError is a ValueError
    return [n.name for n in tree.body if isinstance(n, ast.ClassDef)]


def _path_row(edit: QLineEdit, caption: str, filters: str, parent: QWidget) -> QWidget:
    w = QWidget()
    lay = QHBoxLayout(w)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(edit, 1)
    b = QPushButton("Browse…")

    def browse() -> None:
        path, _ = QFileDialog.getOpenFileName(parent, caption, edit.text() or str(Path.home()), filters)
        if path:
            edit.setText(path)

    b.clicked.connect(browse)
    lay.addWidget(b)
    return w


class LoadDialog(QDialog):
    """Choose a model to open; :meth:`choice` after ``exec()`` returns Accepted."""

    TABS = ("demo", "torchvision", "python", "file", "recent")

    def __init__(self, parent: QWidget | None = None, recent: RecentModels | None = None):
        super().__init__(parent)
        self.setObjectName("load-dialog")
        self.setWindowTitle("Open a model")
        self.recent = recent
        lay = QVBoxLayout(self)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("load-tabs")
        lay.addWidget(self.tabs, 1)

        # demo
        demo = QWidget()
        dl = QVBoxLayout(demo)
        t = QLabel("<b>The bundled demo</b>: a small CNN (two blocks of two 3×3 convolutions and a 2×2 max "
                   "pool, then two linear layers) trained on scikit-learn's handwritten digits. Draw a digit "
                   "on the canvas and watch every layer.")
        t.setWordWrap(True)
        dl.addWidget(t)
        dl.addStretch(1)
        self.tabs.addTab(demo, "Demo")

        # torchvision
        tv = QWidget()
        form = QFormLayout(tv)
        self.tv_name = QComboBox()
        self.tv_name.setObjectName("tv-name")
        self.tv_name.setEditable(True)
        self.tv_name.addItems(TORCHVISION_NAMES)
        form.addRow("Architecture", self.tv_name)
        self.tv_pretrained = QRadioButton("Pretrained weights (downloaded once into torchvision's cache; "
                                          "progress and Cancel in the status bar)")
        self.tv_local = QRadioButton("Local weights file (state_dict .pth or .safetensors)")
        self.tv_random = QRadioButton("Random initialisation (untrained: see what training changes)")
        self.tv_pretrained.setChecked(True)
        group = QButtonGroup(self)
        for b in (self.tv_pretrained, self.tv_local, self.tv_random):
            group.addButton(b)
            form.addRow(b)
        self.tv_weights = QLineEdit()
        self.tv_weights.setObjectName("tv-weights")
        form.addRow("Weights file", _path_row(self.tv_weights, "Weights file",
                                              "Weights (*.pth *.pt *.bin *.safetensors *.ckpt);;All files (*)", self))
        self.tv_weights.textChanged.connect(lambda s: s and self.tv_local.setChecked(True))
        self.tabs.addTab(tv, "torchvision")

        # python
        py = QWidget()
        form = QFormLayout(py)
        self.py_file = QLineEdit()
        self.py_file.setObjectName("py-file")
        form.addRow("Python file", _path_row(self.py_file, "Model code", "Python (*.py);;All files (*)", self))
        self.py_class = QComboBox()
        self.py_class.setObjectName("py-class")
        self.py_class.setEditable(True)
        form.addRow("Class", self.py_class)
        self.py_kwargs = QLineEdit()
        self.py_kwargs.setObjectName("py-kwargs")
        self.py_kwargs.setPlaceholderText('constructor arguments as JSON, e.g. {"n_classes": 10}')
        form.addRow("Arguments", self.py_kwargs)
        self.py_weights = QLineEdit()
        self.py_weights.setObjectName("py-weights")
        self.py_weights.setPlaceholderText("empty: random initialisation")
        form.addRow("Weights file", _path_row(self.py_weights, "Weights file",
                                              "Weights (*.pth *.pt *.bin *.safetensors *.ckpt);;All files (*)", self))
        note = QLabel("Importing a Python file runs it: cnnviz asks before it does.")
        mute(note)
        form.addRow(note)
        self.py_file.textChanged.connect(self._fill_classes)
        self.tabs.addTab(py, "Python class")

        # model file
        mf = QWidget()
        form = QFormLayout(mf)
        self.file_path = QLineEdit()
        self.file_path.setObjectName("model-file")
        form.addRow("Model file", _path_row(self.file_path, "Model file",
                                            "Models (*.pt *.pth *.pt2 *.ts *.jit *.pkl *.onnx);;ONNX (*.onnx);;All files (*)", self))
        self.file_weights = QLineEdit()
        self.file_weights.setObjectName("model-file-weights")
        self.file_weights.setPlaceholderText("optional: replace its weights with a state_dict / .safetensors")
        form.addRow("Weights file", _path_row(self.file_weights, "Weights file",
                                              "Weights (*.pth *.pt *.bin *.safetensors *.ckpt);;All files (*)", self))
        note = QLabel("TorchScript (torch.jit.save), torch.export programs (.pt2) and whole pickled models "
                      "(torch.save(model)). The format is read from the file's bytes. These files can run code: "
                      "cnnviz asks before loading one it has not been told to trust.")
        note.setWordWrap(True)
        mute(note)
        form.addRow(note)
        self.tabs.addTab(mf, "Model file")

        # recent
        rc = QWidget()
        rl = QVBoxLayout(rc)
        self.recent_list = QListWidget()
        self.recent_list.setObjectName("recent-list")
        for c in (recent.items() if recent is not None else []):
            item = QListWidgetItem(c.title())
            item.setData(Qt.ItemDataRole.UserRole, c)
            item.setToolTip(c.spec)
            self.recent_list.addItem(item)
        self.recent_list.itemDoubleClicked.connect(lambda _i: self.accept())
        rl.addWidget(self.recent_list)
        if self.recent_list.count():
            self.recent_list.setCurrentRow(0)
        self.tabs.addTab(rc, "Recent")

        # labels (all kinds)
        form = QFormLayout()
        self.labels = QLineEdit()
        self.labels.setObjectName("labels-file")
        self.labels.setPlaceholderText("optional: class names, one per line or JSON")
        form.addRow("Labels file", _path_row(self.labels, "Labels file",
                                             "Labels (*.txt *.json);;All files (*)", self))
        lay.addLayout(form)
        self.error = QLabel("")
        self.error.setObjectName("load-error")
        self.error.setStyleSheet("color: #d33")
        self.error.setWordWrap(True)
        lay.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.resize(640, 420)

    def set_tab(self, name: str) -> None:
        self.tabs.setCurrentIndex(self.TABS.index(name))

    def _fill_classes(self, path: str) -> None:
        current = self.py_class.currentText()
        self.py_class.clear()
        classes = python_classes(path) if path and Path(path).is_file() else []
        self.py_class.addItems(classes)
        if current in classes:
            self.py_class.setCurrentText(current)

    def choice(self) -> LoadChoice:
        """The model chosen; raises ValueError with a message for an incomplete form."""
        tab = self.TABS[self.tabs.currentIndex()]
        labels = self.labels.text().strip() or None
        if labels and not Path(labels).is_file():
            raise ValueError(f"labels file {labels} does not exist")
        if tab == "demo":
            return LoadChoice("demo", labels=labels)
        if tab == "torchvision":
            name = self.tv_name.currentText().strip()
            if not name:
                raise ValueError("name an architecture, e.g. resnet18")
            if self.tv_random.isChecked():
                weights = "random"
            elif self.tv_local.isChecked():
                weights = self.tv_weights.text().strip()
                if not weights or not Path(weights).is_file():
                    raise ValueError("choose an existing weights file, or pretrained / random")
            else:
                weights = "pretrained"
            return LoadChoice(name, weights=weights, labels=labels)
        if tab == "python":
            path = self.py_file.text().strip()
            cls = self.py_class.currentText().strip()
            if not path or not Path(path).is_file():
                raise ValueError("choose the Python file that defines the model")
            if not cls:
                raise ValueError("name the model class")
            weights = self.py_weights.text().strip() or None
            if weights and not Path(weights).is_file():
                raise ValueError(f"weights file {weights} does not exist")
            kwargs = self.py_kwargs.text().strip() or None
            if kwargs:
                try:
                    if not isinstance(json.loads(kwargs), dict):
                        raise ValueError
                except ValueError:
                    raise ValueError('constructor arguments must be a JSON object, e.g. {"n_classes": 10}') from None
            return LoadChoice(f"{path}:{cls}", weights=weights, ctor_kwargs=kwargs, labels=labels)
        if tab == "file":
            path = self.file_path.text().strip()
            if not path or not Path(path).is_file():
                raise ValueError("choose an existing model file")
            weights = self.file_weights.text().strip() or None
            if weights and not Path(weights).is_file():
                raise ValueError(f"weights file {weights} does not exist")
            return LoadChoice(path, weights=weights, labels=labels)
        item = self.recent_list.currentItem()
        if item is None:
            raise ValueError("no recent model chosen")
        c: LoadChoice = item.data(Qt.ItemDataRole.UserRole)
        return LoadChoice(c.spec, c.weights, c.ctor_kwargs, labels or c.labels)

    def accept(self) -> None:
        try:
            self.choice()
        except ValueError as exc:
            self.error.setText(str(exc))
            return
        super().accept()
