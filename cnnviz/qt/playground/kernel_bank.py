"""The kernel bank: several kernels at once, each giving its own output map.

A pure view of :class:`~cnnviz.core.playground.PlaygroundState`: the state holds the bank
(kernels, selection, the gradient-magnitude pair) and its rules (one size per bank,
reversible crops: :mod:`cnnviz.core.bank`); the widget turns clicks into state changes and
shows the state with its signals blocked, so nothing echoes and there is no second copy.
One kernel is *selected*: the kernel editor edits that one. A "gradient magnitude" option
combines a derivative pair (Sobel x and y by default) into √(a² + b²).

Run this file to preview the widget on its own.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSignalBlocker, QSize, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QHBoxLayout, QLabel, QListWidget,
                               QListWidgetItem, QToolButton, QVBoxLayout, QWidget)

from cnnviz.core.bank import named_pair
from cnnviz.core.kernels import Kernel
from cnnviz.core.playground import BankChange, PlaygroundState

from ..colors import diverging_color, symmetric_max

THUMB = 36


def kernel_thumbnail(kernel: Kernel, size: int = THUMB) -> QPixmap:
    """A small picture of the weights (diverging tint, symmetric around 0)."""
    w = np.asarray(kernel.weights, dtype=np.float64)
    if w.ndim == 3:
        w = w.sum(axis=0)
    rows, cols = w.shape
    vmax = symmetric_max(w)
    # drawn at the screen's pixel density, so it stays sharp on a HiDPI display
    app = QGuiApplication.instance()
    dpr = max(1.0, float(app.devicePixelRatio())) if app is not None else 1.0
    pm = QPixmap(int(round(size * dpr)), int(round(size * dpr)))
    pm.setDevicePixelRatio(dpr)
    pm.fill(Qt.transparent)
    p = QPainter(pm)
    cell = max(1, (size - 2) // max(rows, cols))
    ox = (size - cols * cell) // 2
    oy = (size - rows * cell) // 2
    for r in range(rows):
        for c in range(cols):
            p.fillRect(ox + c * cell, oy + r * cell, cell, cell, diverging_color(float(w[r, c]), vmax))
    p.setPen(QPen(QColor(0, 0, 0, 110), 1))
    p.drawRect(ox, oy, cols * cell - 1, rows * cell - 1)
    p.end()
    return pm


class KernelBank(QWidget):
    """A list of kernels with add / remove / select / rename and a gradient-magnitude pair,
    showing (and writing to) a :class:`PlaygroundState` — the window's, or its own.

    Signals
    -------
    bankChanged((kernels, selected, magnitude_pair))
        ``kernels``: tuple[Kernel, ...] (one size), ``selected``: int, ``magnitude_pair``:
        (i, j) or None. Emitted once per change made through the widget: setBank, add,
        remove, select, rename, magnitude changes, and replaceSelected when the kernel differs.
    edited(BankChange)
        Emitted with ``bankChanged``: what the change changed (the window updates the
        editor and the views from the state with it).
    selectedChanged(int)
        The selection moved (also reported through bankChanged).
    """

    bankChanged = Signal(object)
    edited = Signal(object)
    selectedChanged = Signal(int)

    def __init__(self, kernels=None, parent: QWidget | None = None, *, state: PlaygroundState | None = None):
        if isinstance(kernels, QWidget):  # KernelBank(parent), like every other widget
            kernels, parent = None, kernels
        super().__init__(parent)
        self._state = state if state is not None else PlaygroundState()
        self._build()
        if kernels:
            self._state.set_bank(tuple(kernels), 0)
        self.refresh()

    def state(self) -> PlaygroundState:
        return self._state

    # -- construction -------------------------------------------------------------------
    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(6, 6, 6, 6)
        root.setSpacing(4)
        self._list = QListWidget(self)
        self._list.setObjectName("kernels")
        self._list.setIconSize(QSize(THUMB, THUMB))
        self._list.setSelectionMode(QAbstractItemView.SingleSelection)
        self._list.setEditTriggers(QAbstractItemView.DoubleClicked | QAbstractItemView.EditKeyPressed)
        self._list.setUniformItemSizes(True)
        self._list.setSpacing(1)
        self._list.setToolTip("Each kernel gives its own output map; the selected one is in the editor.\n"
                              "Double-click or F2 renames.")
        self._list.currentRowChanged.connect(self._on_row)
        self._list.itemChanged.connect(self._on_item_changed)
        root.addWidget(self._list, 1)

        buttons = QHBoxLayout()
        buttons.setSpacing(3)
        self._add = self._button("Add", "add", "Add a copy of the selected kernel", self.addCopy)
        self._remove = self._button("Remove", "remove", "Remove the selected kernel (a bank keeps at least one)",
                                    self.removeSelected)
        self._rename = self._button("Rename", "rename", "Rename the selected kernel", self._start_rename)
        for b in (self._add, self._remove, self._rename):
            buttons.addWidget(b)
        buttons.addStretch(1)
        self._count = QLabel(self)
        self._count.setObjectName("count")
        buttons.addWidget(self._count)
        root.addLayout(buttons)

        mag = QHBoxLayout()
        mag.setSpacing(4)
        self._mag_box = QCheckBox("Gradient magnitude √(a² + b²)", self)
        self._mag_box.setObjectName("magnitude")
        self._mag_box.setToolTip("Combine a derivative pair (e.g. Sobel x and y) into edge strength, "
                                 "whatever the edge's direction")
        self._mag_box.toggled.connect(self._on_magnitude)
        root.addWidget(self._mag_box)
        self._combo_a = QComboBox(self)
        self._combo_a.setObjectName("magnitude-a")
        self._combo_a.setToolTip("The first derivative kernel of the pair (e.g. Sobel x, the change from left to right).")
        self._combo_b = QComboBox(self)
        self._combo_b.setObjectName("magnitude-b")
        self._combo_b.setToolTip("The second derivative kernel (e.g. Sobel y); √(a² + b²) is the edge strength "
                                 "in any direction.")
        for label, combo in (("a", self._combo_a), ("b", self._combo_b)):
            lab = QLabel(label)
            lab.setBuddy(combo)
            mag.addWidget(lab)
            combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)
            combo.currentIndexChanged.connect(self._on_pair)
            mag.addWidget(combo, 1)
        root.addLayout(mag)
        self._mag_note = QLabel(self)
        self._mag_note.setObjectName("magnitude-note")
        self._mag_note.setWordWrap(True)
        self._mag_note.hide()
        root.addWidget(self._mag_note)

    def _button(self, text: str, name: str, tip: str, slot) -> QToolButton:  # noqa: ANN001
        b = QToolButton(self)
        b.setText(text)
        b.setObjectName(name)
        b.setToolTip(tip)
        b.clicked.connect(slot)
        return b

    # -- public API: writes go to the state -------------------------------------------------
    def setBank(self, kernels, selected: int = 0, magnitude_pair="auto") -> None:
        """Show ``kernels`` with ``selected`` selected and emit ``bankChanged`` once.

        Mixed sizes are resized to the selected kernel's size. ``magnitude_pair``: "auto"
        turns the magnitude on for a named derivative pair (sobel-x / sobel-y, or any
        "…-x" / "…-y") and off otherwise; None turns it off; (i, j) turns it on for that pair.
        """
        ks = tuple(kernels)
        if not ks:
            raise ValueError("a kernel bank needs at least one kernel")
        for k in ks:
            if not isinstance(k, Kernel):
                raise TypeError(f"setBank needs Kernel objects, got {type(k).__name__}")
        pair = named_pair(ks) if isinstance(magnitude_pair, str) else magnitude_pair
        self._changed(self._state.set_bank(ks, selected, pair), always=True)

    def bank(self) -> tuple[Kernel, ...]:
        return self._state.kernels

    def selectedIndex(self) -> int:
        return self._state.selected

    def selectedKernel(self) -> Kernel:
        return self._state.selected_kernel

    def magnitudePair(self) -> tuple[int, int] | None:
        """The pair to combine, or None when the option is off, unavailable or a == b."""
        return self._state.magnitude_pair

    def setMagnitudePair(self, pair: tuple[int, int] | None) -> None:
        """Turn the magnitude on for ``pair`` (indices) or off with None. Emits when it changes."""
        self._changed(self._state.set_magnitude(pair is not None, pair))

    def replaceSelected(self, kernel: Kernel) -> None:
        """Put ``kernel`` in the selected slot (the editor changed it). When its size differs,
        the other kernels are resized to it. Emits ``bankChanged`` only if something changed."""
        if not isinstance(kernel, Kernel):
            raise TypeError(f"replaceSelected needs a Kernel, got {type(kernel).__name__}")
        self._changed(self._state.replace_selected(kernel))

    def addCopy(self) -> None:
        """Insert a copy of the selected kernel after it and select the copy."""
        self._changed(self._state.add_copy())

    def removeSelected(self) -> None:
        """Remove the selected kernel (never the last one)."""
        self._changed(self._state.remove_selected())

    def renameSelected(self, name: str) -> None:
        change = self._state.rename_selected(name)
        if change is None:
            self.refresh()  # the list shows the kernel's name again
        self._changed(change)

    def setSelected(self, index: int) -> None:
        self._changed(self._state.select(int(index)), items=False)

    def wouldCrop(self, kh: int, kw: int) -> list[str]:
        """Names of the other kernels whose non-zero weights a resize of the bank to kh×kw
        would crop away (they come back when the size grows again)."""
        return self._state.would_crop(kh, kw)

    # -- reading the state ----------------------------------------------------------------
    def refresh(self, items: bool = True) -> None:
        """Show the state (after it changed elsewhere); emits nothing. ``items`` False: only
        the selection moved, the tiles stay."""
        st = self._state
        ks = st.kernels
        n = len(ks)
        blockers = [QSignalBlocker(w) for w in (self._list, self._combo_a, self._combo_b, self._mag_box)]
        try:
            if items or self._list.count() != n:
                self._list.clear()
                for k in ks:
                    kh, kw = k.size
                    item = QListWidgetItem(QIcon(kernel_thumbnail(k)), k.name)
                    item.setFlags(item.flags() | Qt.ItemIsEditable)
                    item.setToolTip(f"{k.name}: {kh}×{kw}, Σ = {k.sum:.4g}"
                                    + (f", ÷ {k.divisor:g}" if k.divisor != 1 else ""))
                    self._list.addItem(item)
                for combo in (self._combo_a, self._combo_b):
                    combo.clear()
                    for i, k in enumerate(ks):
                        combo.addItem(QIcon(kernel_thumbnail(k, 16)), f"{i + 1} · {k.name}")
            self._list.setCurrentRow(st.selected if n else -1)
            self._combo_a.setCurrentIndex(st.pair_choice[0] if n else -1)
            self._combo_b.setCurrentIndex(st.pair_choice[1] if n else -1)
            self._mag_box.setChecked(st.magnitude_on)
            self._remove.setEnabled(n > 1)
            for w in (self._mag_box, self._combo_a, self._combo_b):
                w.setEnabled(n > 1)
            kh, kw = ks[0].size if ks else (0, 0)
            self._count.setText(f"{n} kernel{'s' if n != 1 else ''} · {kh}×{kw}")
        finally:
            for b in blockers:
                b.unblock()
        self._update_note()

    # -- internals ------------------------------------------------------------------------
    def _changed(self, change: BankChange | None, *, always: bool = False, items: bool = True) -> None:
        """Show the state and report a change made through the widget."""
        self.refresh(items)
        if change is None and not always:
            return
        change = change or BankChange(False, False, False)
        st = self._state
        self.bankChanged.emit((st.kernels, st.selected, st.magnitude_pair))
        self.edited.emit(change)
        if change.selection_moved and not always:
            self.selectedChanged.emit(st.selected)

    def _update_note(self) -> None:
        st = self._state
        if st.magnitude_on and len(st.kernels) > 1 and st.pair_choice[0] == st.pair_choice[1]:
            self._mag_note.setText("Pick two different kernels for a and b (e.g. Sobel x and Sobel y).")
            self._mag_note.show()
        else:
            self._mag_note.hide()

    def _on_row(self, row: int) -> None:
        if row >= 0:
            self.setSelected(row)

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        row = self._list.row(item)
        if row != self._state.selected:
            self._changed(self._state.select(row), items=False)
        self.renameSelected(item.text())

    def _start_rename(self) -> None:
        item = self._list.item(self._state.selected)
        if item is not None:
            self._list.setFocus()
            self._list.editItem(item)

    def _on_magnitude(self, on: bool) -> None:
        self._changed(self._state.set_magnitude(on))

    def _on_pair(self, _idx: int) -> None:
        pair = (max(0, self._combo_a.currentIndex()), max(0, self._combo_b.currentIndex()))
        self._changed(self._state.set_magnitude(pair=pair))


if __name__ == "__main__":  # preview: python -m cnnviz.qt.playground.kernel_bank
    import sys

    from PySide6.QtWidgets import QApplication

    from cnnviz.core.kernels import presets

    app = QApplication(sys.argv)
    w = KernelBank(presets()["oriented-bank"].kernels)
    w.bankChanged.connect(lambda t: print(len(t[0]), t[1], t[2]))
    w.show()
    sys.exit(app.exec())
