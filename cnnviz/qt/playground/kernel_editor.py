"""The kernel editor: a grid of weights you can type into and paint on like a canvas.

:class:`KernelEditor` shows the selected kernel of a
:class:`~cnnviz.core.playground.PlaygroundState` (the window's, or its own when it runs alone)
and keeps no copy of it. Every edit (typing, painting, an operation, a preset, a size change,
divisor/offset) makes a new immutable :class:`~cnnviz.core.kernels.Kernel`, writes it to the
state (whose bank rules resize the other kernels) and pushes it onto a :class:`QUndoStack` as
one command holding the kernel before and after, so undo/redo restore kernels exactly. A
painting drag or a run of wheel nudges on one cell pushes many commands that share a merge
key; the stack merges them into ONE undo step.

The editor never throttles: it emits ``kernelChanged`` once per change (once per cell a
drag changes) and the window decides how often to recompute.

Run this file to preview the widget on its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QRandomGenerator, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence, QUndoStack
from PySide6.QtWidgets import (QButtonGroup, QDoubleSpinBox, QGridLayout, QHBoxLayout, QLabel, QSizePolicy,
                               QTabBar, QToolButton, QVBoxLayout, QWidget)

from cnnviz.core.kernels import Kernel, presets
from cnnviz.core.playground import PlaygroundState

from ..colors import format_sig, mute, symmetric_max
from .kernel_editor_parts import KernelCommand as _KernelCommand, KernelFiles, PresetsMenu, ScaleBar as _ScaleBar
from .kernel_grid import GESTURES_HELP, KernelGrid, parse_value, tidy_value  # noqa: F401 - re-exported

SIZES = (1, 3, 5, 7)


class KernelEditor(KernelFiles, PresetsMenu, QWidget):
    """Edit one kernel: sizes, painted/typed cells, presets, operations, divisor/offset,
    undo/redo, save/load.

    Signals
    -------
    kernelChanged(Kernel)
        Once per change of the kernel (once per cell a drag changes), after undo/redo too.
    bankRequested(tuple[Kernel, ...])
        A bank preset was chosen or a file with several kernels was loaded; the editor's
        own kernel does not change (the kernel bank takes the tuple).
    """

    kernelChanged = Signal(object)
    bankEdited = Signal(object)   # BankChange: an edit changed the state's bank (the window updates the views)
    bankRequested = Signal(object)
    directoryUsed = Signal(str)  # a kernel file was saved or loaded in this folder (the window remembers it)

    OPERATIONS = ("normalize", "negate", "flip_h", "flip_v", "rotate90", "transpose", "clear", "random")

    def __init__(self, kernel: Kernel | None = None, parent: QWidget | None = None, *,
                 state: PlaygroundState | None = None):
        if isinstance(kernel, QWidget):  # KernelEditor(parent), like every other widget
            kernel, parent = None, kernel
        super().__init__(parent)
        # the kernel shown is the state's selected kernel: the one copy (the window's
        # state, or the editor's own when it runs alone)
        self._state = state if state is not None else PlaygroundState()
        if kernel is None and self._state.kernels:
            kernel = self._state.selected_kernel
        elif kernel is None:
            try:
                kernel = presets()["sobel-x"].kernel
            except Exception:  # noqa: BLE001 - presets file missing: still usable
                kernel = Kernel(np.zeros((3, 3), np.float32))
        if not self._state.kernels:
            self._state.set_bank((kernel,), 0)
        self._channel = 0
        self._rng = QRandomGenerator(QRandomGenerator.global_().generate())
        self._last_dir = str(Path.home())
        self._resize_guard = None
        self._bank_provider = None
        self._undo = QUndoStack(self)
        self._undo_action = self._undo.createUndoAction(self, "Undo")
        self._undo_action.setShortcuts([QKeySequence("Ctrl+Z")])
        self._redo_action = self._undo.createRedoAction(self, "Redo")
        self._redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self._undo_action.setToolTip("Undo the last kernel edit (Ctrl+Z); each paint stroke, preset or operation "
                                     "is one step")
        self._redo_action.setToolTip("Redo the kernel edit you undid (Ctrl+Shift+Z)")
        # Window-wide shortcuts: the main window can put these same actions in its Edit menu
        # (one QAction, so no ambiguous-shortcut conflict).
        for a in (self._undo_action, self._redo_action):
            self.addAction(a)
        self._build()
        self._apply(kernel, emit=False)

    # -- construction ------------------------------------------------------------------
    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(6, 6, 6, 6)
        root.setSpacing(6)

        top = QHBoxLayout()
        top.setSpacing(2)
        top.addWidget(QLabel("Size"))
        self._size_group = QButtonGroup(self)
        self._size_group.setExclusive(True)
        self._size_buttons: dict[int, QToolButton] = {}
        for n in SIZES:
            b = QToolButton(self)
            b.setText(f"{n}×{n}")
            b.setCheckable(True)
            b.setObjectName(f"size-{n}")
            b.setToolTip(f"Make the kernel {n}×{n} (the centre is kept; new cells are 0)")
            b.setMinimumWidth(38)
            self._size_group.addButton(b, n)
            self._size_buttons[n] = b
            top.addWidget(b)
        self._size_group.idClicked.connect(self._on_size)
        self._size_other = QLabel("")
        self._size_other.setToolTip("This kernel's size (from a file); pick a size to resize it")
        top.addWidget(self._size_other)
        top.addStretch(1)
        self._presets_button = QToolButton(self)
        self._presets_button.setText("Presets")
        self._presets_button.setObjectName("presets")
        self._presets_button.setToolTip("Load a classic kernel (blur, sharpen, Sobel, Laplacian, an oriented bank…): "
                                        "each is a fixed pattern of weights that looks for one kind of structure.")
        self._presets_button.setPopupMode(QToolButton.InstantPopup)
        self._presets_button.setToolButtonStyle(Qt.ToolButtonTextOnly)
        self._presets_menu = self._build_presets_menu()
        self._presets_button.setMenu(self._presets_menu)
        top.addWidget(self._presets_button)
        root.addLayout(top)

        # full colour mode: a C_in×kH×kW kernel, one grid per input channel (R, G, B tabs)
        chan = QHBoxLayout()
        chan.setSpacing(4)
        self._channel_box = QTabBar(self)
        self._channel_box.setObjectName("channel-tabs")
        self._channel_box.setExpanding(False)
        self._channel_box.setDrawBase(False)
        self._channel_box.setToolTip("Which input channel's slice of this C×kH×kW kernel the grid shows: "
                                     "in full colour mode each output value is the sum over R, G and B of "
                                     "that channel's slice times the picture's channel")
        self._channel_box.currentChanged.connect(self._on_channel)
        chan.addWidget(self._channel_box)
        chan.addStretch(1)
        self._split_button = QToolButton(self)
        self._split_button.setObjectName("split-channels")
        self._split_button.setText("Paint R, G, B apart")
        self._split_button.setToolTip("Full colour mode: make this kernel 3×kH×kW (its weights ÷ 3 on each of R, G "
                                      "and B, so the output does not change) and paint each channel's slice")
        self._split_button.clicked.connect(lambda: self.splitChannels())
        chan.addWidget(self._split_button)
        self._merge_button = QToolButton(self)
        self._merge_button.setObjectName("merge-channels")
        self._merge_button.setText("One slice")
        self._merge_button.setToolTip("Make this kernel 2-D again: the sum of its channel slices (what grey and "
                                      "per-channel modes use)")
        self._merge_button.clicked.connect(lambda: self.mergeChannels())
        chan.addWidget(self._merge_button)
        root.addLayout(chan)
        self._standalone_mode = "gray"   # the channel mode of an editor whose state has no parameters

        self._grid = KernelGrid(self)
        self._grid.cellEdit.connect(self._on_cell_edit)
        self._grid.brushPicked.connect(self.setBrushValue)
        self._grid.strokeRevoked.connect(self._revoke_stroke)
        root.addWidget(self._grid, 1)
        self._scale = _ScaleBar(self)
        root.addWidget(self._scale)

        self._sum_label = QLabel(self)
        self._sum_label.setObjectName("sum")
        self._sum_label.setTextFormat(Qt.PlainText)
        f = self._sum_label.font()
        f.setBold(True)
        self._sum_label.setFont(f)
        self._sum_hint = QLabel(self)
        self._sum_hint.setWordWrap(True)
        self._sum_hint.setTextFormat(Qt.PlainText)
        mute(self._sum_hint)
        root.addWidget(self._sum_label)
        root.addWidget(self._sum_hint)

        form = QGridLayout()
        form.setHorizontalSpacing(6)
        form.setVerticalSpacing(4)
        self._brush = self._spin(-1000, 1000, 3, 1.0, "Value a left-drag paints (right-drag paints its negative)")
        self._brush.valueChanged.connect(self._on_brush)
        self._step = self._spin(0.001, 100, 3, 0.1, "Amount the wheel and +/− keys add or subtract")
        self._step.valueChanged.connect(self._on_step)
        self._divisor = self._spin(-1e6, 1e6, 4, 1.0, "The weights are divided by this (e.g. 16 for a 1-2-1 Gaussian)")
        self._divisor.valueChanged.connect(self._on_divisor)
        self._offset = self._spin(-1e6, 1e6, 4, 0.0, "Added to every output value after the division (like a bias)")
        self._offset.valueChanged.connect(self._on_offset)
        for i, (label, w) in enumerate((("Brush", self._brush), ("Step", self._step),
                                        ("Divisor", self._divisor), ("Offset", self._offset))):
            lab = QLabel(label)
            lab.setBuddy(w)
            form.addWidget(lab, i // 2, (i % 2) * 2)
            form.addWidget(w, i // 2, (i % 2) * 2 + 1)
        self._brush.setObjectName("brush")
        self._step.setObjectName("step")
        self._divisor.setObjectName("divisor")
        self._offset.setObjectName("offset")
        root.addLayout(form)

        ops = QGridLayout()
        ops.setSpacing(3)
        specs = (
            ("normalize", "Normalize", "Divide the weights by their sum so it becomes 1 (keeps brightness)"),
            ("negate", "Negate", "Multiply every weight by −1: the map changes sign, so dark-to-bright and "
                                  "bright-to-dark edges swap colours"),
            ("flip_h", "Flip ↔", "Mirror the kernel left–right: an edge detector then answers to edges "
                                 "of the opposite direction"),
            ("flip_v", "Flip ↕", "Mirror the kernel top–bottom: Sobel y then answers to bright-to-dark "
                                 "instead of dark-to-bright rows"),
            ("rotate90", "Rotate 90°", "Rotate a quarter turn counter-clockwise: the pattern the kernel "
                                         "looks for turns with it (vertical edges become horizontal)"),
            ("transpose", "Transpose", "Swap rows and columns (Sobel x ↔ Sobel y)"),
            ("clear", "Clear", "Set every weight to 0 (the output becomes 0 everywhere): start painting "
                                "your own kernel"),
            ("random", "Random", "Random weights in [−1, 1], two decimals — what a conv layer's kernels "
                                  "look like before training"),
        )
        self._op_actions: dict[str, QAction] = {}
        for i, (key, text, tip) in enumerate(specs):
            act = QAction(text, self)
            act.setToolTip(tip)
            act.setObjectName(f"op-{key}")
            act.triggered.connect(lambda _=False, k=key: self.applyOperation(k))
            self._op_actions[key] = act
            b = QToolButton(self)
            b.setDefaultAction(act)
            b.setObjectName(f"op-{key}")
            b.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
            ops.addWidget(b, i // 4, i % 4)
        root.addLayout(ops)

        bottom = QHBoxLayout()
        bottom.setSpacing(3)
        for act, name in ((self._undo_action, "undo"), (self._redo_action, "redo")):
            b = QToolButton(self)
            b.setDefaultAction(act)
            b.setObjectName(name)
            b.setToolButtonStyle(Qt.ToolButtonTextOnly)
            bottom.addWidget(b)
        # keep the undo/redo buttons short: the actions' text ("Undo Paint cells") stays in
        # menus and tooltips, the buttons show the icon text
        self._undo_action.setIconText("Undo")
        self._redo_action.setIconText("Redo")
        bottom.addStretch(1)
        self._load_button = QToolButton(self)
        self._load_button.setText("Load…")
        self._load_button.setObjectName("load")
        self._load_button.setToolTip("Load a kernel file (.json); a file with several kernels goes to the bank")
        self._load_button.clicked.connect(self.loadFromFile)
        self._save_button = QToolButton(self)
        self._save_button.setText("Save…")
        self._save_button.setObjectName("save")
        self._save_button.setToolTip("Save this kernel as a .json file")
        self._save_button.clicked.connect(self.saveToFile)
        bottom.addWidget(self._load_button)
        bottom.addWidget(self._save_button)
        root.addLayout(bottom)

        self._message = QLabel(self)
        self._message.setObjectName("message")
        self._message.setWordWrap(True)
        self._message.setTextFormat(Qt.PlainText)
        self._message.setTextInteractionFlags(Qt.TextSelectableByMouse)
        # a fixed place: the message's room is reserved (two lines) whether or not it shows,
        # so a save/load message never moves the buttons under the cursor
        self._message.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        self._message.setFixedHeight(self._message.fontMetrics().lineSpacing() * 2 + 12)
        self._message.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Fixed)
        pol = self._message.sizePolicy()
        pol.setRetainSizeWhenHidden(True)
        self._message.setSizePolicy(pol)
        self._message.hide()
        root.addWidget(self._message)
        self.setToolTip("")

    def _spin(self, lo: float, hi: float, decimals: int, value: float, tip: str) -> QDoubleSpinBox:
        s = QDoubleSpinBox(self)
        s.setRange(lo, hi)
        s.setDecimals(decimals)
        s.setValue(value)
        s.setKeyboardTracking(False)  # one change per committed value, not per keystroke
        s.setAlignment(Qt.AlignRight)
        s.setToolTip(tip)
        s.setAccelerated(True)
        return s

    # -- public API ---------------------------------------------------------------------
    @property
    def _kernel(self) -> Kernel:
        return self._state.selected_kernel

    def kernel(self) -> Kernel:
        return self._kernel

    def showState(self, new_history: bool = False) -> None:
        """Show the state's selected kernel (it changed elsewhere); emits nothing.
        ``new_history``: another kernel is selected, so the undo history starts again."""
        if new_history:
            self._grid.cancelEdit()
            self._undo.clear()
            self._message.hide()
        self._refresh()

    def setKernel(self, k: Kernel, *, undoable: bool = True) -> None:
        """Show ``k``. Undoable: one undo step. Not undoable: replaces the kernel and clears
        the undo history (it belonged to the kernel that was replaced, e.g. when the bank
        selects another kernel). Emits ``kernelChanged`` when ``k`` differs from the current one."""
        if not isinstance(k, Kernel):
            raise TypeError(f"setKernel needs a Kernel, got {type(k).__name__}")
        self._grid.cancelEdit()
        if undoable:
            if k == self._kernel:
                return
            self._push(k, f"Set kernel '{k.name}'")
        else:
            self._undo.clear()
            self._apply(k)

    def undoStack(self) -> QUndoStack:
        return self._undo

    def undoAction(self) -> QAction:
        return self._undo_action

    def redoAction(self) -> QAction:
        return self._redo_action

    def brushValue(self) -> float:
        return float(self._grid.brush)

    def setBrushValue(self, v: float) -> None:
        self._brush.setValue(float(v))  # the spin box clamps; _on_brush stores it
        self._grid.brush = float(self._brush.value())

    def step(self) -> float:
        return float(self._grid.step)

    def setStep(self, v: float) -> None:
        self._step.setValue(float(v))
        self._grid.step = float(self._step.value())

    def grid(self) -> KernelGrid:
        """The painted cell grid (tests drive gestures on it)."""
        return self._grid

    def messageText(self) -> str:
        """The inline message shown (errors, notes), '' when none."""
        return self._message.text() if not self._message.isHidden() else ""

    def setRandomSeed(self, seed: int) -> None:
        """Make the Random operation reproducible."""
        self._rng = QRandomGenerator(int(seed) & 0xFFFFFFFF)

    def operationAction(self, name: str) -> QAction:
        return self._op_actions[name]

    def applyOperation(self, name: str) -> None:
        """Apply one of :attr:`OPERATIONS` as one undo step."""
        k = self._kernel
        self._grid.cancelEdit()
        if name == "normalize":
            if abs(k.sum) < 1e-12:
                self._show_message("The weights sum to 0, so there is nothing to divide by (edge and "
                                   "sharpen-like kernels sum to 0 on purpose). Normalize is for blurs.", "note")
                return
            new, text = k.normalized(), "Normalize"
        elif name == "negate":
            new, text = k.negated(), "Negate"
        elif name == "flip_h":
            new, text = k.flipped_h(), "Flip left–right"
        elif name == "flip_v":
            new, text = k.flipped_v(), "Flip top–bottom"
        elif name == "rotate90":
            new, text = k.rotated90(1), "Rotate 90°"
        elif name == "transpose":
            new, text = k.transposed(), "Transpose"
        elif name == "clear":
            new, text = k.with_weights(np.zeros_like(k.weights)), "Clear"
        elif name == "random":
            n = int(k.weights.size)
            vals = np.array([self._rng.bounded(201) for _ in range(n)], dtype=np.float64)
            w = ((vals - 100.0) / 100.0).reshape(k.weights.shape)
            new, text = k.with_weights(w.astype(np.float32)), "Random weights"
        else:
            raise ValueError(f"unknown operation {name!r}; use one of {self.OPERATIONS}")
        self._push(new, text)

    def applyPreset(self, name: str) -> None:
        pre = presets()[name]
        if pre.is_bank:
            self._show_message(f"{pre.title}: {len(pre.kernels)} kernels sent to the bank.", "note")
            self.bankRequested.emit(tuple(pre.kernels))
            return
        self.setKernel(pre.kernel)

    def setKernelSize(self, n: int) -> None:
        """Resize to n×n (centre kept, new cells 0) as one undo step."""
        self._on_size(n)

    # -- internals ----------------------------------------------------------------------------
    def _push(self, new: Kernel, text: str, merge_key: int = 0) -> None:
        if new == self._kernel:
            return
        self._undo.push(_KernelCommand(self, self._kernel, new, text, merge_key))

    def _apply(self, k: Kernel, *, emit: bool = True) -> None:
        """Make ``k`` the current kernel and refresh every control (undo commands call this)."""
        changed = not (k == self._kernel)
        change = self._state.replace_selected(k) if changed else None   # the bank's rules apply
        self._refresh()
        if changed:
            self._message.hide()
        if emit and changed:
            self.kernelChanged.emit(k)
            if change is not None:
                self.bankEdited.emit(change)

    def _refresh(self) -> None:
        k = self._kernel
        kh, kw = k.size
        for n, b in self._size_buttons.items():
            b.blockSignals(True)
            b.setChecked(kh == kw == n)
            b.blockSignals(False)
        self._size_other.setText("" if (kh == kw and kh in SIZES) else f"{kh}×{kw}")
        if k.channels:
            self._channel = min(self._channel, k.channels - 1)
            names = ("R", "G", "B") if k.channels == 3 else tuple(str(i + 1) for i in range(k.channels))
            self._channel_box.blockSignals(True)
            while self._channel_box.count() > k.channels:
                self._channel_box.removeTab(self._channel_box.count() - 1)
            while self._channel_box.count() < k.channels:
                self._channel_box.addTab("")
            for i, n in enumerate(names):
                self._channel_box.setTabText(i, n)
            self._channel_box.setCurrentIndex(self._channel)
            self._channel_box.blockSignals(False)
            self._channel_box.show()
            w2 = k.weights[self._channel]
        else:
            self._channel = 0
            self._channel_box.hide()
            w2 = k.weights
        self._split_button.setVisible(self._channel_mode == "full" and not k.channels)
        self._merge_button.setVisible(bool(k.channels))
        self._grid.setWeights(w2)
        self._scale.setMax(symmetric_max(w2))
        for spin, value in ((self._divisor, k.divisor), (self._offset, k.offset)):
            spin.blockSignals(True)
            spin.setValue(value)
            spin.blockSignals(False)
        s = k.sum
        text = f"Σ weights = {format_sig(s, 4)}"
        if k.divisor != 1.0:
            text += f"   ÷ {format_sig(k.divisor, 6)} = {format_sig(s / k.divisor, 4)}"
        if k.offset:
            text += f"   offset {'+' if k.offset > 0 else '−'} {format_sig(abs(k.offset), 4)}"
        self._sum_label.setText(text)
        eff = s / k.divisor
        if abs(eff) < 1e-6:
            hint = "Sums to 0: flat areas give 0, only changes (edges) respond."
        elif abs(eff - 1.0) < 1e-4:
            hint = "Sums to 1: flat areas keep their brightness."
        else:
            hint = f"Flat areas are scaled by {format_sig(eff, 3)}."
        self._sum_hint.setText(f"{k.name} · {kh}×{kw} · {hint}")

    def _on_cell_edit(self, row: int, col: int, value: float, merge_key: int) -> None:
        k = self._kernel
        ch = self._channel if k.channels else None
        old = float(k.weights[ch, row, col] if ch is not None else k.weights[row, col])
        new = k.with_value(row, col, value, channel=ch)
        if np.float32(value) == np.float32(old):
            return
        text = f"Set ({row + 1}, {col + 1}) to {format_sig(value, 4)}" if not merge_key else "Paint cells"
        self._push(new, text, merge_key)

    def _revoke_stroke(self, merge_key: int) -> None:
        """Undo the last command if it is the stroke ``merge_key`` (see the double-click)."""
        idx = self._undo.index()
        if idx > 0 and idx == self._undo.count():
            cmd = self._undo.command(idx - 1)
            if isinstance(cmd, _KernelCommand) and cmd.merge_key == merge_key:
                self._undo.undo()

    @property
    def _channel_mode(self) -> str:
        """The parameters' channel mode ("gray", "each", "full"), read from the state: in
        full mode a 2-D kernel can be split into R, G and B slices to paint apart."""
        return getattr(self._state.params, "channels", None) or self._standalone_mode

    def setChannelMode(self, mode: str) -> None:
        """The channel mode of an editor on its own (an editor on the window's state reads it
        from the state's parameters: the window calls :meth:`showState`)."""
        self._standalone_mode = mode
        self._refresh()

    def channel(self) -> int:
        """The input channel whose slice the grid shows (0 for a 2-D kernel)."""
        return self._channel

    def setChannel(self, idx: int) -> None:
        if self._kernel.channels:
            self._channel_box.setCurrentIndex(int(idx))

    def splitChannels(self, channels: int = 3) -> None:
        """Make the kernel C×kH×kW (each slice = the 2-D weights ÷ C: the same output) as one undo step."""
        if self._kernel.channels:
            return
        self._grid.cancelEdit()
        self._push(self._kernel.expanded(channels), "Paint R, G, B apart")

    def mergeChannels(self) -> None:
        """Make a C×kH×kW kernel 2-D again (the sum of its slices) as one undo step."""
        k = self._kernel
        if not k.channels:
            return
        self._grid.cancelEdit()
        self._channel = 0
        self._push(k.with_weights(k.weights.sum(axis=0).astype(np.float32)), "One slice for all channels")

    def setResizeGuard(self, guard) -> None:
        """``guard(n) -> bool`` is asked before a size button resizes the kernel to n×n (the
        window asks the user when other kernels of the bank would be cropped); False keeps the size."""
        self._resize_guard = guard

    def _on_size(self, n: int) -> None:
        k = self._kernel
        if k.size == (n, n):
            return
        self._grid.cancelEdit()
        if self._resize_guard is not None and not self._resize_guard(n):
            self._refresh()  # the size buttons show the kernel's size again
            return
        self._push(k.resized(n, n), f"Resize to {n}×{n}")

    def _on_channel(self, idx: int) -> None:
        if idx >= 0:
            self._channel = idx
            self._refresh()

    def _on_brush(self, v: float) -> None:
        self._grid.brush = float(v)

    def _on_step(self, v: float) -> None:
        self._grid.step = float(v)

    def _on_divisor(self, v: float) -> None:
        if v == 0:
            self._show_error("The divisor cannot be 0", "use 1 for no division, or the sum of the weights")
            self._divisor.blockSignals(True)
            self._divisor.setValue(self._kernel.divisor)
            self._divisor.blockSignals(False)
            return
        if float(v) != self._kernel.divisor:
            self._push(self._kernel.with_divisor(float(v)), f"Divisor {format_sig(v, 6)}")

    def _on_offset(self, v: float) -> None:
        if float(v) != self._kernel.offset:
            self._push(self._kernel.with_offset(float(v)), f"Offset {format_sig(v, 6)}")

    def _show_error(self, cause: str, fix: str) -> None:
        text = cause if not fix else f"{cause}.\nFix: {fix}."
        self._message.setText(text.replace("..", "."))
        self._message.setToolTip(self._message.text())
        self._message.setStyleSheet("QLabel { background: #fdecea; color: #8a1c1c; border: 1px solid #e0a8a8;"
                                    " border-radius: 3px; padding: 4px; }")
        self._message.show()

    def _show_message(self, text: str, kind: str = "note") -> None:  # noqa: ARG002
        self._message.setText(text)
        self._message.setToolTip(text)
        self._message.setStyleSheet("QLabel { background: #eef4fb; color: #1b3a5c; border: 1px solid #b9cde4;"
                                    " border-radius: 3px; padding: 4px; }")
        self._message.show()


if __name__ == "__main__":  # preview: python -m cnnviz.qt.playground.kernel_editor
    import sys

    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv)
    w = KernelEditor()
    w.kernelChanged.connect(lambda k: print(k.name, k.weights.tolist()))
    w.show()
    sys.exit(app.exec())
