"""The kernel editor: a grid of weights you can type into and paint on like a canvas.

:class:`KernelEditor` holds one immutable :class:`~cnnviz.core.kernels.Kernel`. Every edit
(typing, painting, an operation, a preset, a size change, divisor/offset) makes a new
kernel and pushes it onto a :class:`QUndoStack` as one command holding the kernel before
and after, so undo/redo restore kernels exactly. A painting drag or a run of wheel nudges
on one cell pushes many commands that share a merge key; the stack merges them into ONE
undo step.

The editor never throttles: it emits ``kernelChanged`` once per change (once per cell a
drag changes) and the window decides how often to recompute.

Run this file to preview the widget on its own.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPoint, QPointF, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtCore import QRandomGenerator
from PySide6.QtGui import (QAction, QColor, QFont, QKeyEvent, QKeySequence, QLinearGradient,
                           QMouseEvent, QPainter, QPen, QUndoCommand, QUndoStack, QWheelEvent)
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QDoubleSpinBox, QFileDialog, QGridLayout, QHBoxLayout,
                               QLabel, QLineEdit, QMenu, QSizePolicy, QToolButton, QToolTip, QVBoxLayout, QWidget)

from cnnviz.core.errors import CnnvizError
from cnnviz.core.kernels import Kernel, load_kernel_file, presets, save_kernel_file

from ..colors import (cell_text_candidates, diverging_color, fit_text, format_sig, grid_font, lookup_table, mute,
                     symmetric_max, text_color_for)

GESTURES_HELP = """\
Kernel editor — mouse
  Left-drag across cells      paint the brush value
  Right-drag                  paint minus the brush value
  Middle-click (or -drag)     set the cell(s) to 0
  Mouse wheel over a cell     nudge the cell by ± step
  Ctrl+left-click             take the cell's value as the brush
  Double-click                type a value
  (a whole drag, or a run of wheel nudges on one cell, is one undo step)

Kernel editor — keyboard (click the grid or Tab to it first)
  Arrow keys                  move the focused cell
  1–9 . or Enter / F2         start typing a value (fractions like 1/16 work)
  Tab / Shift+Tab             while typing: commit and move to the next / previous cell
  Enter                       commit the typed value; Esc cancels
  + / −                       nudge the focused cell by ± step
  0, Delete or Backspace      set the focused cell to 0
  N                           negate the focused cell
  Space                       paint the brush value into the focused cell
  Ctrl+Z / Ctrl+Shift+Z, Ctrl+Y   undo / redo every edit
"""

SIZES = (1, 3, 5, 7)
_MERGEABLE_ID = 0x6B45  # any constant != -1: QUndoStack only merges commands with equal ids


def parse_value(text: str) -> float | None:
    """A typed cell value: a number (``-0.5``, ``1e-3``, ``0,25``) or a fraction (``1/16``).

    Returns None when the text is not a finite number.
    """
    s = text.strip().replace("−", "-").replace(",", ".").replace(" ", "")
    if not s:
        return None
    try:
        if "/" in s:
            num, den = s.split("/", 1)
            value = float(num) / float(den)
        else:
            value = float(s)
    except (ValueError, ZeroDivisionError):
        return None
    if not math.isfinite(value) or abs(value) > 3.0e38:
        return None
    return value


def _cells_on_line(a: tuple[int, int], b: tuple[int, int]) -> list[tuple[int, int]]:
    """Cells from ``a`` (exclusive) to ``b`` (inclusive) along a Bresenham line.

    A fast drag jumps several cells between two mouse events; painting the line between
    them paints every cell the pointer crossed, like a paint program.
    """
    (r0, c0), (r1, c1) = a, b
    dr, dc = abs(r1 - r0), abs(c1 - c0)
    sr, sc = (1 if r1 > r0 else -1), (1 if c1 > c0 else -1)
    err = dc - dr
    out = []
    r, c = r0, c0
    while (r, c) != (r1, c1):
        e2 = 2 * err
        if e2 > -dr:
            err -= dr
            c += sc
        if e2 < dc:
            err += dc
            r += sr
        out.append((r, c))
    return out


class _KernelCommand(QUndoCommand):
    """One undo step: the kernel before and after. Commands with the same non-zero
    ``merge_key`` (one drag, one run of wheel nudges) merge into a single step."""

    def __init__(self, editor: "KernelEditor", before: Kernel, after: Kernel, text: str, merge_key: int = 0):
        super().__init__(text)
        self._editor = editor
        self.before = before
        self.after = after
        self.merge_key = merge_key

    def id(self) -> int:  # noqa: A003 - Qt's name
        return _MERGEABLE_ID if self.merge_key else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt's name
        if not isinstance(other, _KernelCommand) or other.merge_key != self.merge_key:
            return False
        self.after = other.after
        # A stroke that put every cell back as it was is no undo step at all.
        self.setObsolete(self.after == self.before)
        return True

    def redo(self) -> None:
        self._editor._apply(self.after)

    def undo(self) -> None:
        self._editor._apply(self.before)


class KernelGrid(QWidget):
    """The painted grid of weights (one channel of the kernel) and all its gestures.

    It never changes a kernel itself: it asks through ``cellEdit(row, col, value, merge_key)``
    (merge key 0: its own undo step) and the editor answers with :meth:`setWeights`.
    """

    cellEdit = Signal(int, int, float, int)
    strokeRevoked = Signal(int)  # merge key of a one-cell stroke a double-click turned into "type a value"
    brushPicked = Signal(float)
    hoverChanged = Signal(object)  # (row, col) or None

    MAX_CELL = 64
    MIN_CELL = 22

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._w = np.zeros((3, 3), np.float32)
        self._vmax = 1.0
        self.brush = 1.0
        self.step = 0.1
        self._focus = (1, 1)
        self._hover: tuple[int, int] | None = None
        self._stroke_value: float | None = None
        self._stroke_key = 0
        self._last_cell: tuple[int, int] | None = None
        self._stroke_cells: set[tuple[int, int]] = set()
        self._finished_stroke: tuple[int, set] = (0, set())
        self._next_key = 1
        self._wheel_key = 0
        self._wheel_cell: tuple[int, int] | None = None
        self._wheel_accum = 0
        self._editing: tuple[int, int] | None = None
        self._editor = QLineEdit(self)
        self._editor.hide()
        self._editor.setAlignment(Qt.AlignCenter)
        self._editor.installEventFilter(self)
        self._editor.setObjectName("cell-editor")
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.StrongFocus)
        self.setContextMenuPolicy(Qt.PreventContextMenu)  # right button paints
        self.setAttribute(Qt.WA_OpaquePaintEvent, False)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setAccessibleName("Kernel weights")
        self.setAccessibleDescription(GESTURES_HELP)
        self.setToolTip(GESTURES_HELP)

    # -- data --------------------------------------------------------------------
    def setWeights(self, weights: np.ndarray) -> None:
        w = np.asarray(weights, dtype=np.float32)
        if w.shape != self._w.shape:
            self.cancelEdit()
            r, c = self._focus
            self._focus = (min(r, w.shape[0] - 1), min(c, w.shape[1] - 1))
            if self._focus == (r, c) and w.shape[0] > self._w.shape[0]:
                self._focus = (w.shape[0] // 2, w.shape[1] // 2)
            self.updateGeometry()
        self._w = w.copy()
        self._vmax = symmetric_max(self._w)
        self.update()

    def weights(self) -> np.ndarray:
        return self._w.copy()

    def focusCell(self) -> tuple[int, int]:
        return self._focus

    def setFocusCell(self, row: int, col: int) -> None:
        rows, cols = self._w.shape
        self._focus = (max(0, min(rows - 1, row)), max(0, min(cols - 1, col)))
        self.update()

    def isEditing(self) -> bool:
        return self._editing is not None

    def lineEdit(self) -> QLineEdit:
        """The inline editor (for tests and accessibility tools)."""
        return self._editor

    # -- geometry ----------------------------------------------------------------
    def _cell_size(self) -> int:
        rows, cols = self._w.shape
        avail = min((self.width() - 2) / cols, (self.height() - 2) / rows)
        return int(max(8, min(self.MAX_CELL, avail)))

    def _origin(self) -> QPoint:
        rows, cols = self._w.shape
        s = self._cell_size()
        return QPoint((self.width() - cols * s) // 2, (self.height() - rows * s) // 2)

    def cellRect(self, row: int, col: int) -> QRect:
        s = self._cell_size()
        o = self._origin()
        return QRect(o.x() + col * s, o.y() + row * s, s, s)

    def cellCenter(self, row: int, col: int) -> QPoint:
        return self.cellRect(row, col).center()

    def cellAt(self, pos: QPoint | QPointF) -> tuple[int, int] | None:
        s = self._cell_size()
        o = self._origin()
        x, y = pos.x() - o.x(), pos.y() - o.y()
        rows, cols = self._w.shape
        if x < 0 or y < 0:
            return None
        r, c = int(y // s), int(x // s)
        if r >= rows or c >= cols:
            return None
        return r, c

    def sizeHint(self) -> QSize:
        rows, cols = self._w.shape
        s = 56 if max(rows, cols) <= 3 else 46 if max(rows, cols) <= 5 else 38
        return QSize(cols * s + 2, rows * s + 2)

    def minimumSizeHint(self) -> QSize:
        rows, cols = self._w.shape
        return QSize(cols * self.MIN_CELL + 2, rows * self.MIN_CELL + 2)

    # -- painting ----------------------------------------------------------------
    def paintEvent(self, event) -> None:  # noqa: ARG002
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing, False)
        p.setRenderHint(QPainter.TextAntialiasing, True)
        rows, cols = self._w.shape
        s = self._cell_size()
        base = max(9, int(s * (0.30 if s >= 40 else 0.34)))
        font, fm = grid_font(self.font(), base, self._w, s - 4)
        p.setFont(font)
        grid_pen = QPen(self.palette().color(self.foregroundRole()).darker(100), 1)
        grid_pen.setColor(QColor(0, 0, 0, 70) if self.palette().window().color().lightness() > 128
                          else QColor(255, 255, 255, 60))
        for r in range(rows):
            for c in range(cols):
                rect = self.cellRect(r, c)
                v = float(self._w[r, c])
                bg = diverging_color(v, self._vmax)
                p.fillRect(rect, bg)
                text = fit_text(fm, cell_text_candidates(v), rect.width() - 4)
                if text is not None:
                    p.setPen(text_color_for(bg))
                    p.drawText(rect, Qt.AlignCenter, text)
        # grid lines over the fills, then the outer frame
        p.setPen(grid_pen)
        o = self._origin()
        for r in range(rows + 1):
            p.drawLine(o.x(), o.y() + r * s, o.x() + cols * s, o.y() + r * s)
        for c in range(cols + 1):
            p.drawLine(o.x() + c * s, o.y(), o.x() + c * s, o.y() + rows * s)
        # the centre tap (the kernel's anchor for odd sizes): a small corner mark
        if rows % 2 and cols % 2 and rows * cols > 1:
            rect = self.cellRect(rows // 2, cols // 2)
            bg = diverging_color(float(self._w[rows // 2, cols // 2]), self._vmax)
            mark = text_color_for(bg)
            mark.setAlpha(150)
            p.setPen(Qt.NoPen)
            p.setBrush(mark)
            k = max(4, s // 7)
            p.drawPolygon([QPoint(rect.left() + 1, rect.top() + 1), QPoint(rect.left() + 1 + k, rect.top() + 1),
                           QPoint(rect.left() + 1, rect.top() + 1 + k)])
        p.setBrush(Qt.NoBrush)
        p.setRenderHint(QPainter.Antialiasing, True)
        if self._hover is not None and self._hover != self._focus:
            hv = self._hover
            if hv[0] < rows and hv[1] < cols:
                col = text_color_for(diverging_color(float(self._w[hv]), self._vmax))
                col.setAlpha(140)
                p.setPen(QPen(col, 1.5))
                p.drawRect(QRectF(self.cellRect(*hv)).adjusted(2, 2, -2, -2))
        if self.hasFocus() or self._editing is not None:
            fr, fc = self._focus
            rect = QRectF(self.cellRect(fr, fc)).adjusted(1.5, 1.5, -1.5, -1.5)
            p.setPen(QPen(QColor(0, 0, 0), 3.5))
            p.drawRect(rect)
            p.setPen(QPen(QColor(255, 200, 0), 2))
            p.drawRect(rect)
        p.end()

    # -- tooltips show the exact value under the pointer -----------------------------
    def event(self, e: QEvent) -> bool:
        if e.type() == QEvent.ToolTip:
            cell = self.cellAt(e.pos())
            if cell is not None:
                v = float(self._w[cell])
                QToolTip.showText(e.globalPos(), f"row {cell[0] + 1}, column {cell[1] + 1}: {v:.6g}\n\n{GESTURES_HELP}", self)
                return True
        return super().event(e)

    # -- mouse ---------------------------------------------------------------------
    def _new_key(self) -> int:
        key = self._next_key
        self._next_key += 1
        return key

    def _paint_cell(self, cell: tuple[int, int]) -> None:
        if self._stroke_value is None:
            return
        self._focus = cell
        self.cellEdit.emit(cell[0], cell[1], float(self._stroke_value), self._stroke_key)

    def mousePressEvent(self, e: QMouseEvent) -> None:
        if self._editing is not None:
            self.commitEdit()
        self.setFocus(Qt.MouseFocusReason)
        cell = self.cellAt(e.position())
        self._wheel_cell = None
        if cell is None:
            return super().mousePressEvent(e)
        button = e.button()
        if button == Qt.LeftButton and e.modifiers() & Qt.ControlModifier:
            self._focus = cell
            self.brushPicked.emit(float(self._w[cell]))
            self.update()
            return
        if button == Qt.LeftButton:
            self._stroke_value = self.brush
        elif button == Qt.RightButton:
            self._stroke_value = -self.brush if self.brush != 0 else 0.0
        elif button == Qt.MiddleButton:
            self._stroke_value = 0.0
        else:
            return super().mousePressEvent(e)
        self._stroke_key = self._new_key()
        self._last_cell = cell
        self._stroke_cells = {cell}
        self._paint_cell(cell)
        e.accept()

    def mouseMoveEvent(self, e: QMouseEvent) -> None:
        cell = self.cellAt(e.position())
        if cell != self._hover:
            self._hover = cell
            self.hoverChanged.emit(cell)
            self.update()
        if self._stroke_value is None:
            return
        if cell is None:
            self._last_cell = None  # left the grid: restart the line where it re-enters
            return
        if self._last_cell is None:
            path = [cell]
        elif cell == self._last_cell:
            return
        else:
            path = _cells_on_line(self._last_cell, cell)
        self._last_cell = cell
        for c in path:
            self._stroke_cells.add(c)
            self._paint_cell(c)

    def mouseReleaseEvent(self, e: QMouseEvent) -> None:
        if self._stroke_value is not None and not (e.buttons() & (Qt.LeftButton | Qt.RightButton | Qt.MiddleButton)):
            self._finished_stroke = (self._stroke_key, set(self._stroke_cells))
            self._stroke_value = None
            self._stroke_key = 0
            self._last_cell = None
            self.update()
        e.accept()

    def mouseDoubleClickEvent(self, e: QMouseEvent) -> None:
        cell = self.cellAt(e.position())
        if cell is None or e.button() != Qt.LeftButton:
            return super().mouseDoubleClickEvent(e)
        # The first press of a double-click painted the brush into this cell; a double-click
        # means "type a value", so that one-cell stroke is taken back before editing.
        self._stroke_value = None
        key, cells = self._finished_stroke
        if key and cells == {cell}:
            self.strokeRevoked.emit(key)
        self._finished_stroke = (0, set())
        self._focus = cell
        self.openEditor()

    def leaveEvent(self, e) -> None:
        if self._hover is not None:
            self._hover = None
            self.hoverChanged.emit(None)
            self.update()
        super().leaveEvent(e)

    def wheelEvent(self, e: QWheelEvent) -> None:
        cell = self.cellAt(e.position())
        if cell is None:
            return super().wheelEvent(e)
        dy = e.angleDelta().y() or e.angleDelta().x()
        if cell != self._wheel_cell:
            self._wheel_cell = cell
            self._wheel_key = self._new_key()
            self._wheel_accum = 0
        # high-resolution wheels send fractions of a 120-unit notch: add them up
        self._wheel_accum += dy
        notches = int(self._wheel_accum / 120)
        if notches:
            self._wheel_accum -= notches * 120
            self._focus = cell
            value = float(self._w[cell]) + notches * self.step
            value = _tidy(value, self.step)
            self.cellEdit.emit(cell[0], cell[1], value, self._wheel_key)
        e.accept()

    # -- keyboard ------------------------------------------------------------------
    def keyPressEvent(self, e: QKeyEvent) -> None:
        if e.modifiers() & (Qt.ControlModifier | Qt.AltModifier | Qt.MetaModifier):
            return super().keyPressEvent(e)
        key = e.key()
        r, c = self._focus
        rows, cols = self._w.shape
        self._wheel_cell = None
        moves = {Qt.Key_Left: (0, -1), Qt.Key_Right: (0, 1), Qt.Key_Up: (-1, 0), Qt.Key_Down: (1, 0)}
        if key in moves:
            dr, dc = moves[key]
            self.setFocusCell(r + dr, c + dc)
            return
        if key == Qt.Key_Home:
            self.setFocusCell(r, 0)
            return
        if key == Qt.Key_End:
            self.setFocusCell(r, cols - 1)
            return
        value = float(self._w[r, c])
        if key in (Qt.Key_Plus, Qt.Key_Equal):
            self.cellEdit.emit(r, c, _tidy(value + self.step, self.step), 0)
            return
        if key in (Qt.Key_Minus, Qt.Key_Underscore):
            self.cellEdit.emit(r, c, _tidy(value - self.step, self.step), 0)
            return
        if key in (Qt.Key_0, Qt.Key_Delete, Qt.Key_Backspace):
            self.cellEdit.emit(r, c, 0.0, 0)
            return
        if key == Qt.Key_N:
            self.cellEdit.emit(r, c, -value if value != 0 else 0.0, 0)
            return
        if key == Qt.Key_Space:
            self.cellEdit.emit(r, c, float(self.brush), 0)
            return
        if key in (Qt.Key_Return, Qt.Key_Enter, Qt.Key_F2):
            self.openEditor()
            return
        text = e.text()
        if text and text in "123456789.,":
            self.openEditor(initial=text)
            return
        super().keyPressEvent(e)

    # -- inline editor ---------------------------------------------------------------
    def openEditor(self, initial: str | None = None) -> None:
        r, c = self._focus
        self._editing = (r, c)
        ed = self._editor
        ed.setStyleSheet("")
        ed.setToolTip("Type a number or a fraction (1/16); Enter commits, Tab moves on, Esc cancels")
        rect = self.cellRect(r, c).adjusted(1, 1, -1, -1)
        if rect.width() < 60:  # widen a small cell's editor so the number is readable
            rect = QRect(rect.center().x() - 30, rect.y(), 60, rect.height()).intersected(self.rect())
        ed.setGeometry(rect)
        f = QFont(self.font())
        f.setPixelSize(max(11, min(18, rect.height() // 2)))
        ed.setFont(f)
        if initial is None:
            ed.setText(f"{float(self._w[r, c]):.6g}")
            ed.selectAll()
        else:
            ed.setText(initial)
            ed.end(False)
        ed.show()
        ed.setFocus(Qt.OtherFocusReason)
        self.update()

    def commitEdit(self) -> bool:
        """Commit the typed value; False (editor stays open, marked) when it is no number."""
        if self._editing is None:
            return True
        value = parse_value(self._editor.text())
        if value is None:
            self._editor.setStyleSheet("QLineEdit { border: 2px solid #c62828; }")
            self._editor.setToolTip(f"'{self._editor.text()}' is not a number: type e.g. -1, 0.25 or 1/16 (Esc cancels)")
            return False
        r, c = self._editing
        self._close_editor()
        self.cellEdit.emit(r, c, float(value), 0)
        return True

    def cancelEdit(self) -> None:
        if self._editing is not None:
            self._close_editor()

    def _close_editor(self) -> None:
        self._editing = None  # first: hiding the editor moves focus and must not commit again
        had_focus = self._editor.hasFocus()
        self._editor.hide()
        if had_focus:
            self.setFocus(Qt.OtherFocusReason)
        self.update()

    def eventFilter(self, obj: QObject, e: QEvent) -> bool:
        if obj is self._editor and self._editing is not None:
            if e.type() == QEvent.KeyPress:
                key = e.key()
                if key in (Qt.Key_Tab, Qt.Key_Backtab):
                    back = key == Qt.Key_Backtab or bool(e.modifiers() & Qt.ShiftModifier)
                    r, c = self._editing
                    if self.commitEdit():
                        rows, cols = self._w.shape
                        idx = r * cols + c + (-1 if back else 1)
                        if 0 <= idx < rows * cols:
                            self._focus = divmod(idx, cols)
                            self.openEditor()
                    return True
                if key in (Qt.Key_Return, Qt.Key_Enter):
                    self.commitEdit()
                    return True
                if key == Qt.Key_Escape:
                    self.cancelEdit()
                    return True
                if key in (Qt.Key_Up, Qt.Key_Down):
                    r, c = self._editing
                    if self.commitEdit():
                        self.setFocusCell(r + (1 if key == Qt.Key_Down else -1), c)
                    return True
            elif e.type() == QEvent.FocusOut:
                # clicking elsewhere commits a valid value (like a spreadsheet), drops an invalid one
                if not self.commitEdit():
                    self.cancelEdit()
        return super().eventFilter(obj, e)

    def focusInEvent(self, e) -> None:
        self.update()
        super().focusInEvent(e)

    def focusOutEvent(self, e) -> None:
        self.update()
        super().focusOutEvent(e)


def _tidy(value: float, step: float) -> float:
    """Round away float dust from repeated nudges (0.1 + 0.2 → 0.3), keeping the step's precision."""
    if step <= 0 or not math.isfinite(step):
        return value
    decimals = max(0, min(9, -math.floor(math.log10(step)) + 3))
    return round(value, decimals)


class _ScaleBar(QWidget):
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


class KernelEditor(QWidget):
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
    bankRequested = Signal(object)

    OPERATIONS = ("normalize", "negate", "flip_h", "flip_v", "rotate90", "transpose", "clear", "random")

    def __init__(self, kernel: Kernel | None = None, parent: QWidget | None = None):
        if isinstance(kernel, QWidget):  # KernelEditor(parent), like every other widget
            kernel, parent = None, kernel
        super().__init__(parent)
        if kernel is None:
            try:
                kernel = presets()["sobel-x"].kernel
            except Exception:  # noqa: BLE001 - presets file missing: still usable
                kernel = Kernel(np.zeros((3, 3), np.float32))
        self._kernel: Kernel = kernel
        self._channel = 0
        self._rng = QRandomGenerator(QRandomGenerator.global_().generate())
        self._last_dir = str(Path.home())
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
        self._channel_box = QComboBox(self)
        self._channel_box.setToolTip("Which channel slice of this (C×kH×kW) kernel the grid shows")
        self._channel_box.currentIndexChanged.connect(self._on_channel)
        top.addWidget(self._channel_box)
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

    # -- public API ---------------------------------------------------------------------
    def kernel(self) -> Kernel:
        return self._kernel

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

    # -- files ---------------------------------------------------------------------------------
    def saveToFile(self) -> None:
        start = str(Path(self._last_dir) / f"{_slug(self._kernel.name)}.json")
        path, _ = QFileDialog.getSaveFileName(self, "Save kernel", start, "Kernel files (*.json);;All files (*)")
        if not path:
            return
        p = Path(path)
        if not p.suffix:
            p = p.with_suffix(".json")
        try:
            save_kernel_file(p, self._kernel)
        except CnnvizError as exc:
            self._show_error(f"Could not save the kernel: {exc.cause}", exc.fix or "")
            return
        except OSError as exc:
            self._show_error(f"Could not save the kernel to '{p}': {exc.strerror or exc}",
                             "choose a folder you can write to")
            return
        self._last_dir = str(p.parent)
        self._show_message(f"Saved '{self._kernel.name}' to {p}", "note")

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
        if len(kernels) > 1:
            self._show_message(f"Loaded {len(kernels)} kernels from {p.name} into the bank.", "note")
            self.bankRequested.emit(tuple(kernels))
        else:
            self.setKernel(kernels[0])
            self._show_message(f"Loaded '{kernels[0].name}' from {p.name}", "note")
        return True

    # -- internals ----------------------------------------------------------------------------
    def _push(self, new: Kernel, text: str, merge_key: int = 0) -> None:
        if new == self._kernel:
            return
        self._undo.push(_KernelCommand(self, self._kernel, new, text, merge_key))

    def _apply(self, k: Kernel, *, emit: bool = True) -> None:
        """Make ``k`` the current kernel and refresh every control (undo commands call this)."""
        changed = not (k == self._kernel)
        self._kernel = k
        self._refresh()
        if changed:
            self._message.hide()
        if emit and changed:
            self.kernelChanged.emit(k)

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
            self._channel_box.blockSignals(True)
            self._channel_box.clear()
            self._channel_box.addItems([f"channel {i + 1}" for i in range(k.channels)])
            self._channel_box.setCurrentIndex(self._channel)
            self._channel_box.blockSignals(False)
            self._channel_box.show()
            w2 = k.weights[self._channel]
        else:
            self._channel = 0
            self._channel_box.hide()
            w2 = k.weights
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

    def _on_size(self, n: int) -> None:
        k = self._kernel
        if k.size == (n, n):
            return
        self._grid.cancelEdit()
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
        self._message.setStyleSheet("QLabel { background: #fdecea; color: #8a1c1c; border: 1px solid #e0a8a8;"
                                    " border-radius: 3px; padding: 4px; }")
        self._message.show()

    def _show_message(self, text: str, kind: str = "note") -> None:  # noqa: ARG002
        self._message.setText(text)
        self._message.setStyleSheet("QLabel { background: #eef4fb; color: #1b3a5c; border: 1px solid #b9cde4;"
                                    " border-radius: 3px; padding: 4px; }")
        self._message.show()


def _slug(name: str) -> str:
    s = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name.strip()).strip("-")
    return s or "kernel"


if __name__ == "__main__":  # preview: python -m cnnviz.qt.playground.kernel_editor
    import sys

    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv)
    w = KernelEditor()
    w.kernelChanged.connect(lambda k: print(k.name, k.weights.tolist()))
    w.show()
    sys.exit(app.exec())
