"""The kernel bank: several kernels at once, each giving its own output map.

One kernel is *selected*: the kernel editor edits that one (the window calls
:meth:`KernelBank.replaceSelected` on every edit). A "gradient magnitude" option combines
a derivative pair (Sobel x and y by default) into √(a² + b²).

All kernels in a bank share one size, because the core convolves a bank in one pass and
refuses mixed sizes. When sizes differ — a bank set from mixed kernels, or the editor
resizing the selected kernel — every other kernel is resized to the *selected* kernel's
size with :meth:`Kernel.resized` (centre kept: cropped, or zero-padded around it).
A kernel cropped that way keeps its full weights in memory until it is edited, so going
back to the larger size (or Undo) brings them back exactly: a size change is never lossy
for the kernels the user did not touch (:meth:`wouldCrop` lets the window ask first).

Run this file to preview the widget on its own.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QHBoxLayout, QLabel, QListWidget,
                               QListWidgetItem, QToolButton, QVBoxLayout, QWidget)

from cnnviz.core.kernels import Kernel

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


def _named_pair(kernels: tuple[Kernel, ...]) -> tuple[int, int] | None:
    """Indices of sobel-x / sobel-y, or of another "…-x" / "…-y" pair, when present."""
    names = [k.name.lower() for k in kernels]
    if "sobel-x" in names and "sobel-y" in names:
        return names.index("sobel-x"), names.index("sobel-y")
    for i, n in enumerate(names):
        if n.endswith(("-x", "_x", " x")):
            partner = n[:-1] + "y"
            if partner in names:
                return i, names.index(partner)
    return None


def _default_pair(kernels: tuple[Kernel, ...]) -> tuple[int, int]:
    """The named derivative pair when there is one, else (0, 1)."""
    return _named_pair(kernels) or ((0, 1) if len(kernels) > 1 else (0, 0))


class KernelBank(QWidget):
    """A list of kernels with add / remove / select / rename and a gradient-magnitude pair.

    Signals
    -------
    bankChanged((kernels, selected, magnitude_pair))
        ``kernels``: tuple[Kernel, ...] (one size), ``selected``: int, ``magnitude_pair``:
        (i, j) or None. Emitted once per change: setBank, add, remove, select, rename,
        magnitude changes, and replaceSelected when the kernel differs.
    selectedChanged(int)
        The selection moved (also reported through bankChanged); the window loads
        :meth:`selectedKernel` into the editor.
    """

    bankChanged = Signal(object)
    selectedChanged = Signal(int)

    def __init__(self, kernels=None, parent: QWidget | None = None):
        if isinstance(kernels, QWidget):  # KernelBank(parent), like every other widget
            kernels, parent = None, kernels
        super().__init__(parent)
        self._kernels: tuple[Kernel, ...] = ()
        self._originals: tuple[Kernel | None, ...] = ()  # full weights of kernels cropped to the bank's size
        self._selected = 0
        self._pair = (0, 1)
        self._building = False
        self._build()
        if kernels:
            self._set(tuple(kernels), 0)

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

    # -- public API -----------------------------------------------------------------------
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
        sel = max(0, min(int(selected), len(ks) - 1))
        if isinstance(magnitude_pair, str):
            pair, on = _default_pair(ks), _named_pair(ks) is not None
        elif magnitude_pair is None:
            pair, on = _default_pair(ks), False
        else:
            a, b = (int(v) for v in magnitude_pair)
            if not (0 <= a < len(ks) and 0 <= b < len(ks)):
                raise ValueError(f"magnitude pair {magnitude_pair} is outside the bank of {len(ks)} kernels")
            pair, on = (a, b), True
        self._building = True
        self._mag_box.setChecked(on)
        self._building = False
        self._set(ks, sel, pair=pair)
        self._emit()

    def bank(self) -> tuple[Kernel, ...]:
        return self._kernels

    def selectedIndex(self) -> int:
        return self._selected

    def selectedKernel(self) -> Kernel:
        return self._kernels[self._selected]

    def magnitudePair(self) -> tuple[int, int] | None:
        """The pair to combine, or None when the option is off, unavailable or a == b."""
        if not self._mag_box.isChecked() or len(self._kernels) < 2:
            return None
        a, b = self._pair
        return None if a == b else (a, b)

    def setMagnitudePair(self, pair: tuple[int, int] | None) -> None:
        """Turn the magnitude on for ``pair`` (indices) or off with None. Emits when it changes."""
        before = self.magnitudePair()
        self._building = True
        try:
            if pair is not None:
                a, b = (int(v) for v in pair)
                n = len(self._kernels)
                if not (0 <= a < n and 0 <= b < n):
                    raise ValueError(f"magnitude pair {pair} is outside the bank of {n} kernels")
                self._pair = (a, b)
                self._combo_a.setCurrentIndex(a)
                self._combo_b.setCurrentIndex(b)
            self._mag_box.setChecked(pair is not None)
        finally:
            self._building = False
        self._update_note()
        if self.magnitudePair() != before:
            self._emit()

    def replaceSelected(self, kernel: Kernel) -> None:
        """Put ``kernel`` in the selected slot (the editor changed it). When its size differs,
        the other kernels are resized to it. Emits ``bankChanged`` only if something changed."""
        if not isinstance(kernel, Kernel):
            raise TypeError(f"replaceSelected needs a Kernel, got {type(kernel).__name__}")
        if not self._kernels:
            self._set((kernel,), 0)
            self._emit()
            return
        if kernel == self._kernels[self._selected]:
            return
        ks = list(self._kernels)
        ks[self._selected] = kernel
        originals = list(self._originals) + [None] * (len(ks) - len(self._originals))
        originals[self._selected] = None  # the edited kernel is what the editor shows
        self._set(tuple(ks), self._selected, originals=tuple(originals))
        self._emit()

    def addCopy(self) -> None:
        """Insert a copy of the selected kernel after it and select the copy."""
        if not self._kernels:
            return
        src = self.selectedKernel()
        copy = replace(src, name=self._unique_name(f"{src.name} copy"))
        ks = list(self._kernels)
        ks.insert(self._selected + 1, copy)
        a, b = self._pair
        shift = lambda i: i + 1 if i > self._selected else i  # noqa: E731
        self._set(tuple(ks), self._selected + 1, pair=(shift(a), shift(b)))
        self._emit()
        self.selectedChanged.emit(self._selected)

    def removeSelected(self) -> None:
        """Remove the selected kernel (never the last one)."""
        if len(self._kernels) <= 1:
            return
        idx = self._selected
        ks = list(self._kernels)
        del ks[idx]
        a, b = self._pair
        if idx in (a, b):
            pair = _default_pair(tuple(ks))
        else:
            pair = (a - (a > idx), b - (b > idx))
        self._set(tuple(ks), min(idx, len(ks) - 1), pair=pair)
        self._emit()
        self.selectedChanged.emit(self._selected)

    def renameSelected(self, name: str) -> None:
        name = name.strip()
        if not name or name == self.selectedKernel().name:
            self._refresh_items()
            return
        ks = list(self._kernels)
        ks[self._selected] = replace(ks[self._selected], name=name)
        self._set(tuple(ks), self._selected, originals=self._originals)
        self._emit()

    def setSelected(self, index: int) -> None:
        self._list.setCurrentRow(int(index))

    # -- internals ------------------------------------------------------------------------
    def _unique_name(self, base: str) -> str:
        names = {k.name for k in self._kernels}
        if base not in names:
            return base
        i = 2
        while f"{base} {i}" in names:
            i += 1
        return f"{base} {i}"

    def wouldCrop(self, kh: int, kw: int) -> list[str]:
        """Names of the other kernels whose non-zero weights a resize of the bank to kh×kw
        would crop away (they come back when the size grows again)."""
        out = []
        for i, k in enumerate(self._kernels):
            if i == self._selected:
                continue
            full = self._full(i)
            if full.size[0] > kh or full.size[1] > kw:
                if not np.array_equal(full.resized(kh, kw).resized(*full.size).weights, full.weights):
                    out.append(k.name)
        return out

    def _full(self, i: int) -> Kernel:
        """Kernel ``i`` with the weights it had before a crop (when untouched since)."""
        k = self._kernels[i]
        o = self._originals[i] if i < len(self._originals) else None
        if o is not None and o.resized(*k.size) == k:
            return o
        return k

    def _set(self, ks: tuple[Kernel, ...], selected: int, pair: tuple[int, int] | None = None,
             originals: tuple[Kernel | None, ...] | None = None) -> None:
        target = ks[selected].size
        if originals is None:
            originals = (None,) * len(ks)
        # the core convolves a bank in one pass: bring every kernel to the selected one's size,
        # from its full weights when it was cropped before and not edited since
        new, full = [], []
        for k, o in zip(ks, originals):
            if o is not None and o.resized(*k.size) == k:
                k = o
            new.append(k if k.size == target else k.resized(*target))
            big = k.size[0] > target[0] or k.size[1] > target[1]
            full.append(k if big else None)
        ks = tuple(new)
        self._originals = tuple(full)
        self._kernels = ks
        self._selected = selected
        if pair is not None:
            self._pair = pair
        n = len(ks)
        self._pair = (min(self._pair[0], n - 1), min(self._pair[1], n - 1))
        self._refresh_items()

    def _refresh_items(self) -> None:
        self._building = True
        try:
            self._list.clear()
            for i, k in enumerate(self._kernels):
                kh, kw = k.size
                item = QListWidgetItem(QIcon(kernel_thumbnail(k)), k.name)
                item.setFlags(item.flags() | Qt.ItemIsEditable)
                item.setToolTip(f"{k.name}: {kh}×{kw}, Σ = {k.sum:.4g}" + (f", ÷ {k.divisor:g}" if k.divisor != 1 else ""))
                self._list.addItem(item)
            self._list.setCurrentRow(self._selected)
            for combo, idx in ((self._combo_a, self._pair[0]), (self._combo_b, self._pair[1])):
                combo.clear()
                for i, k in enumerate(self._kernels):
                    combo.addItem(QIcon(kernel_thumbnail(k, 16)), f"{i + 1} · {k.name}")
                combo.setCurrentIndex(idx)
            n = len(self._kernels)
            self._remove.setEnabled(n > 1)
            self._mag_box.setEnabled(n > 1)
            self._combo_a.setEnabled(n > 1)
            self._combo_b.setEnabled(n > 1)
            kh, kw = self._kernels[0].size if self._kernels else (0, 0)
            self._count.setText(f"{n} kernel{'s' if n != 1 else ''} · {kh}×{kw}")
        finally:
            self._building = False
        self._update_note()

    def _update_note(self) -> None:
        if self._mag_box.isChecked() and len(self._kernels) > 1 and self._pair[0] == self._pair[1]:
            self._mag_note.setText("Pick two different kernels for a and b (e.g. Sobel x and Sobel y).")
            self._mag_note.show()
        else:
            self._mag_note.hide()

    def _emit(self) -> None:
        self.bankChanged.emit((self._kernels, self._selected, self.magnitudePair()))

    def _on_row(self, row: int) -> None:
        if self._building or row < 0 or row == self._selected:
            return
        self._selected = row
        self._emit()
        self.selectedChanged.emit(row)

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        if self._building:
            return
        row = self._list.row(item)
        if row != self._selected:
            self._selected = row
        self.renameSelected(item.text())

    def _start_rename(self) -> None:
        item = self._list.item(self._selected)
        if item is not None:
            self._list.setFocus()
            self._list.editItem(item)

    def _on_magnitude(self, on: bool) -> None:  # noqa: ARG002
        if self._building:
            return
        self._update_note()
        self._emit()

    def _on_pair(self, _idx: int) -> None:
        if self._building:
            return
        self._pair = (max(0, self._combo_a.currentIndex()), max(0, self._combo_b.currentIndex()))
        self._update_note()
        if self._mag_box.isChecked():  # the pair only matters while the option is on
            self._emit()


if __name__ == "__main__":  # preview: python -m cnnviz.qt.playground.kernel_bank
    import sys

    from PySide6.QtWidgets import QApplication

    from cnnviz.core.kernels import presets

    app = QApplication(sys.argv)
    w = KernelBank(presets()["oriented-bank"].kernels)
    w.bankChanged.connect(lambda t: print(len(t[0]), t[1], t[2]))
    w.show()
    sys.exit(app.exec())
