"""The selected layer as what it is: its layout and how the core decided it, the user's
layout override (a combo; one that does not fit the tensor is said here and the window keeps
running), every-op capture, the class token's vector of a token layer and the rows of a
non-batch tensor (boxes, anchors) as a table.

It only paints a result and turns the user's choices into signals; the window writes them
into the :class:`~cnnviz.core.inspect_engine.InspectorState`."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QFormLayout, QLabel, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from cnnviz.core.inspect_results import InspectResult

from .imaging import ImageView, colorize_maps

__all__ = ["LAYOUT_CHOICES", "LayerPanel"]

#: What the layout combo offers; "auto" is the core's decision. The combo is editable, so
#: ``tokens:HxW+P`` can be typed.
LAYOUT_CHOICES = ("auto", "NCHW", "NHWC", "tokens", "sequence", "vector", "nonbatch")
TABLE_SHOWN = 200


class LayerPanel(QWidget):
    """See the module docstring. Signals: ``layoutChosen(layer, text)`` (``"auto"``: the
    core's), ``everyOpChanged(bool)``."""

    layoutChosen = Signal(str, str)
    everyOpChanged = Signal(bool)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("layer-panel")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        form = QFormLayout()
        self.name = QLabel("—")
        self.name.setObjectName("layer-panel-name")
        self.name.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("Layer", self.name)
        self.layout_box = QComboBox()
        self.layout_box.setObjectName("layout-box")
        self.layout_box.setEditable(True)
        self.layout_box.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)  # a typed layout is not a new choice
        self.layout_box.addItems(LAYOUT_CHOICES)
        self.layout_box.setToolTip("How this layer's axes are read: auto (the core's decision), NCHW, NHWC "
                                   "(channels last), tokens (or tokens:HxW+P: an HxW patch grid after P class "
                                   "tokens), sequence, vector, nonbatch (first dimension not the batch)")
        self.layout_box.lineEdit().setToolTip(self.layout_box.toolTip())  # the typed part says the same
        form.addRow("Layout", self.layout_box)
        lay.addLayout(form)
        self.how = QLabel("")
        self.how.setObjectName("layout-how")
        self.how.setWordWrap(True)
        lay.addWidget(self.how)
        self.message = QLabel("")
        self.message.setObjectName("layout-message")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #c0392b;")
        self.message.hide()
        lay.addWidget(self.message)
        self.every_op = QCheckBox("Capture every op (adds, concatenations, matmuls, softmax…)")
        self.every_op.setObjectName("every-op")
        self.every_op.setToolTip("Besides each module's output, record every tensor op the forward runs, "
                                 "named module path:op, in execution order")
        lay.addWidget(self.every_op)
        self.prefix_label = QLabel("")
        self.prefix_label.setObjectName("prefix-label")
        self.prefix_label.setWordWrap(True)
        lay.addWidget(self.prefix_label)
        self.prefix_view = ImageView(min_size=24)
        self.prefix_view.setObjectName("prefix-view")
        self.prefix_view.setMaximumHeight(60)
        lay.addWidget(self.prefix_view)
        self.table = QTableWidget(0, 0)
        self.table.setObjectName("nonbatch-table")
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        lay.addWidget(self.table, 1)
        lay.addStretch(0)
        self._layer: str | None = None
        self.prefix_label.hide()
        self.prefix_view.hide()
        self.table.hide()
        self.layout_box.activated.connect(self._on_layout)
        self.layout_box.lineEdit().editingFinished.connect(self._on_layout)
        self.every_op.toggled.connect(self.everyOpChanged)

    # -- user
    def _on_layout(self, *_args) -> None:
        if self._layer is not None:
            self.layoutChosen.emit(self._layer, self.layout_box.currentText().strip() or "auto")

    def choose_layout(self, text: str) -> None:
        """As if the user typed ``text`` into the layout combo (tests, scripts)."""
        self.layout_box.setCurrentText(text)
        self._on_layout()

    # -- results
    def set_every_op(self, on: bool) -> None:
        self.every_op.blockSignals(True)
        self.every_op.setChecked(bool(on))
        self.every_op.blockSignals(False)

    def show_result(self, res: InspectResult, overrides: dict[str, str]) -> None:
        info = res.layer_info()
        self._layer = info.name if info is not None else None
        err = res.errors.get("layout") or res.errors.get("every_op")
        self.message.setText(f"⚠ {err}" if err else "")
        self.message.setVisible(bool(err))
        if info is None:
            self.name.setText("—")
            self.how.setText("")
            return
        self.name.setText(f"{info.name} ({info.type}{', a tensor op' if info.kind == 'op' else ''})")
        self.layout_box.blockSignals(True)
        self.layout_box.setCurrentText(overrides.get(info.name, "auto"))
        self.layout_box.blockSignals(False)
        c, h, w = info.map_shape or (0, 0, 0)
        self.how.setText(f"<b>{info.layout}</b>: shown as {c} map{'s' if c != 1 else ''} of {h}×{w}"
                         f"<br>{info.layout_text}")
        ex = res.extras
        prefix = ex.prefix_tokens if ex is not None else None
        if prefix is not None and prefix.size:
            p, n = prefix.shape
            self.prefix_label.setText(f"{p} class/register token{'s' if p > 1 else ''} kept apart from the grid: "
                                      f"{n} values each (min {np.nanmin(prefix):.3g}, max {np.nanmax(prefix):.3g})")
            tiles, _, _ = colorize_maps(prefix[None].astype(np.float32), cmap="auto")
            self.prefix_view.set_array(np.repeat(tiles[0], max(6, tiles.shape[2] // 16), axis=0))
        self.prefix_label.setVisible(prefix is not None)
        self.prefix_view.setVisible(prefix is not None)
        table = ex.table if ex is not None else None
        self.table.setVisible(table is not None)
        if table is not None:
            shown = table[:TABLE_SHOWN]
            self.table.setRowCount(shown.shape[0])
            self.table.setColumnCount(shown.shape[1])
            heads = ["x1", "y1", "x2", "y2"] if shown.shape[1] == 4 else [str(i) for i in range(shown.shape[1])]
            self.table.setHorizontalHeaderLabels(heads)
            for r in range(shown.shape[0]):
                for col in range(shown.shape[1]):
                    self.table.setItem(r, col, QTableWidgetItem(f"{shown[r, col]:.4g}"))
            self.table.setToolTip(f"{ex.table_rows} rows (the first dimension is not the batch: every row kept)"
                                  + (f"; the first {len(shown)} shown" if ex.table_rows > len(shown) else ""))
