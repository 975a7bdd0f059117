"""The kernel editor's parts: its undo command, the colour scale under the grid, and Save /
Load of kernel files and the Presets menu (mixins of :class:`~cnnviz.qt.playground.kernel_editor.KernelEditor`)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QFont, QLinearGradient, QPainter, QUndoCommand
from PySide6.QtWidgets import QFileDialog, QMenu, QWidget

from cnnviz.core.errors import CnnvizError
from cnnviz.core.kernels import load_kernel_file, presets, save_kernel_file

from ..colors import format_sig, lookup_table

_MERGEABLE_ID = 0x6B45  # any constant != -1: QUndoStack only merges commands with equal ids


class KernelCommand(QUndoCommand):
    """One undo step: the kernel before and after. Commands with the same non-zero
    ``merge_key`` (one drag, one run of wheel nudges) merge into a single step."""

    def __init__(self, editor, before: Kernel, after: Kernel, text: str, merge_key: int = 0):
        super().__init__(text)
        self._editor = editor
        self.before = before
        self.after = after
        self.merge_key = merge_key

    def id(self) -> int:  # noqa: A003 - Qt's name
        return _MERGEABLE_ID if self.merge_key else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt's name
        if not isinstance(other, KernelCommand) or other.merge_key != self.merge_key:
            return False
        self.after = other.after
        # A stroke that put every cell back as it was is no undo step at all.
        self.setObsolete(self.after == self.before)
        return True

    def redo(self) -> None:
        self._editor._apply(self.after)

    def undo(self) -> None:
        self._editor._apply(self.before)


class ScaleBar(QWidget):
    """A thin legend of the diverging tint: −max … 0 … +max."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._vmax = 1.0
        self.setFixedHeight(26)
        self.setToolTip("Cell colours: blue negative, white zero, red positive (symmetric around 0)")

    def setMax(self, vmax: float) -> None:
        self._vmax = vmax
        self.update()

    def paintEvent(self, event) -> None:  # noqa: ARG002
        p = QPainter(self)
        table = lookup_table("diverging")
        bar = QRect(4, 2, self.width() - 8, 8)
        grad = QLinearGradient(bar.left(), 0, bar.right(), 0)
        for i in range(0, 256, 16):
            grad.setColorAt(i / 255, QColor(*(int(v) for v in table[i])))
        grad.setColorAt(1.0, QColor(*(int(v) for v in table[255])))
        p.fillRect(bar, grad)
        p.setPen(self.palette().color(self.foregroundRole()))
        f = QFont(self.font())
        f.setPixelSize(10)
        p.setFont(f)
        m = format_sig(self._vmax, 3)
        text_rect = QRect(4, 11, self.width() - 8, 14)
        p.drawText(text_rect, Qt.AlignLeft | Qt.AlignVCenter, f"−{m}")
        p.drawText(text_rect, Qt.AlignHCenter | Qt.AlignVCenter, "0")
        p.drawText(text_rect, Qt.AlignRight | Qt.AlignVCenter, f"+{m}")
        p.end()


class PresetsMenu:
    """The Presets menu of the editor (``self.applyPreset`` comes from it)."""

    def _build_presets_menu(self) -> QMenu:
        menu = QMenu(self)
        try:
            table = presets()
        except Exception as exc:  # noqa: BLE001 - show why the menu is empty instead of failing
            act = menu.addAction(f"Presets unavailable: {exc}")
            act.setEnabled(False)
            return menu
        groups: dict[str, QMenu] = {}
        for name, pre in table.items():
            sub = groups.get(pre.group)
            if sub is None:
                sub = menu.addMenu(pre.group)
                groups[pre.group] = sub
            title = pre.title + (f"  ({len(pre.kernels)} kernels → bank)" if pre.is_bank else "")
            act = sub.addAction(title)
            act.setObjectName(f"preset-{name}")
            act.setData(name)
            kh, kw = pre.kernel.size
            act.setToolTip(f"{pre.title}: {kh}×{kw}" + (" bank" if pre.is_bank else ""))
            act.triggered.connect(lambda _=False, n=name: self.applyPreset(n))
        return menu


class KernelFiles:
    """Save… / Load… of kernel files for the editor (``self._kernel``, ``self._state``,
    ``self._last_dir``, ``self._bank_provider``, messages and ``setKernel`` come from it)."""

    # -- files ---------------------------------------------------------------------------------
    def saveToFile(self) -> None:
        bank = tuple(self._bank_provider()) if self._bank_provider is not None else self._state.kernels
        whole = len(bank) > 1
        name = f"{_slug(self._kernel.name)}-bank" if whole else _slug(self._kernel.name)
        start = str(Path(self._last_dir) / f"{name}.json")
        title = f"Save the bank of {len(bank)} kernels" if whole else "Save kernel"
        path, _ = QFileDialog.getSaveFileName(self, title, start, "Kernel files (*.json);;All files (*)")
        if not path:
            return
        p = Path(path)
        if not p.suffix:
            p = p.with_suffix(".json")
        try:
            save_kernel_file(p, bank if whole else self._kernel)
        except CnnvizError as exc:
            self._show_error(f"Could not save the kernel: {exc.cause}", exc.fix or "")
            return
        except OSError as exc:
            self._show_error(f"Could not save the kernel to '{p}': {exc.strerror or exc}",
                             "choose a folder you can write to")
            return
        self._last_dir = str(p.parent)
        self.directoryUsed.emit(self._last_dir)
        self._show_message(f"Saved the bank of {len(bank)} kernels to {p}" if whole
                           else f"Saved '{self._kernel.name}' to {p}", "note")

    def loadFromFile(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load kernel", self._last_dir,
                                              "Kernel files (*.json);;All files (*)")
        if not path:
            return
        self.loadFile(path)

    def loadFile(self, path: str | Path) -> bool:
        """Load a kernel file: one kernel replaces this one (undoable), several go to the bank.

        On error the kernel is kept and the message says what is wrong and how to fix it."""
        p = Path(path)
        try:
            kernels = load_kernel_file(p)
        except CnnvizError as exc:
            self._show_error(f"Could not load '{p.name}': {exc.cause}", exc.fix or "")
            return False
        self._last_dir = str(p.parent)
        self.directoryUsed.emit(self._last_dir)
        if len(kernels) > 1:
            self._show_message(f"Loaded {len(kernels)} kernels from {p.name} into the bank.", "note")
            self.bankRequested.emit(tuple(kernels))
        else:
            self.setKernel(kernels[0])
            self._show_message(f"Loaded '{kernels[0].name}' from {p.name}", "note")
        return True

    def setLastDirectory(self, folder: str) -> None:
        """The folder the Save/Load dialogs open in (the window restores it from the settings)."""
        self._last_dir = str(folder)

    def lastDirectory(self) -> str:
        return self._last_dir

    def setBankProvider(self, provider) -> None:
        """``provider() -> tuple[Kernel, ...]``: the whole bank, which Save… writes when it
        holds more than one kernel (Load… of such a file gives the bank back)."""
        self._bank_provider = provider
        self._save_button.setToolTip("Save the kernel bank (every kernel, in order) as a .json file; "
                                     "Load… gives it back")



def _slug(name: str) -> str:
    s = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name.strip()).strip("-")
    return s or "kernel"
