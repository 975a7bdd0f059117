"""The kernel grid: the cells of one kernel, typed into and painted on like a canvas
(the kernel editor's central widget; it reports edits, the editor keeps the kernel).
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPoint, QPointF, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QKeyEvent, QMouseEvent, QPainter, QPen, QWheelEvent
from PySide6.QtWidgets import QLineEdit, QSizePolicy, QToolTip, QWidget

from ..colors import MIN_CELL_FONT_PX, cell_font, diverging_color, fit_cell_texts, symmetric_max, text_color_for

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
  1–9 . − or Enter / F2       start typing a value (−1, fractions like 1/16 work)
  Tab / Shift+Tab             while typing: commit and move to the next / previous cell
  Enter                       commit the typed value; Esc cancels
  + / _ (Shift+−)             nudge the focused cell by ± step
  0, Delete or Backspace      set the focused cell to 0
  N                           negate the focused cell
  Space                       paint the brush value into the focused cell
  Ctrl+Z / Ctrl+Shift+Z, Ctrl+Y   undo / redo every edit
"""


def tidy_value(value: float, step: float) -> float:
    """Round away float dust from repeated nudges (0.1 + 0.2 → 0.3), keeping the step's precision."""
    if step <= 0 or not math.isfinite(step):
        return value
    decimals = max(0, min(9, -math.floor(math.log10(step)) + 3))
    return round(value, decimals)


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
    ROOMY_CELL = 36       # cells this tall stay square; shorter ones widen
    MIN_CELL_WIDTH = 30   # room for "−.06" in a MIN_CELL_FONT_PX font

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
        """The cells' height (and their width when there is no spare room across)."""
        rows, cols = self._w.shape
        avail = min((self.width() - 2) / cols, (self.height() - 2) / rows)
        return int(max(8, min(self.MAX_CELL, avail)))

    def _cell_width(self) -> int:
        """Cells are square, but a grid short of height (a 7×7 kernel in a small window)
        widens them — up to twice their height — so the numbers get a readable font."""
        rows, cols = self._w.shape
        s = self._cell_size()
        if s >= self.ROOMY_CELL:  # big enough for a readable number: keep the cells square
            return s
        return int(max(s, min((self.width() - 2) / cols, 2 * s, self.MAX_CELL)))

    def _origin(self) -> QPoint:
        rows, cols = self._w.shape
        return QPoint((self.width() - cols * self._cell_width()) // 2, (self.height() - rows * self._cell_size()) // 2)

    def cellRect(self, row: int, col: int) -> QRect:
        s, sw = self._cell_size(), self._cell_width()
        o = self._origin()
        return QRect(o.x() + col * sw, o.y() + row * s, sw, s)

    def cellCenter(self, row: int, col: int) -> QPoint:
        return self.cellRect(row, col).center()

    def cellAt(self, pos: QPoint | QPointF) -> tuple[int, int] | None:
        s, sw = self._cell_size(), self._cell_width()
        o = self._origin()
        x, y = pos.x() - o.x(), pos.y() - o.y()
        rows, cols = self._w.shape
        if x < 0 or y < 0:
            return None
        r, c = int(y // s), int(x // sw)
        if r >= rows or c >= cols:
            return None
        return r, c

    def sizeHint(self) -> QSize:
        rows, cols = self._w.shape
        s = 56 if max(rows, cols) <= 3 else 46 if max(rows, cols) <= 5 else 38
        return QSize(cols * s + 2, rows * s + 2)

    def minimumSizeHint(self) -> QSize:
        rows, cols = self._w.shape
        return QSize(cols * self.MIN_CELL_WIDTH + 2, rows * self.MIN_CELL + 2)

    # -- painting ----------------------------------------------------------------
    def cellTexts(self):
        """(font, metrics, texts): the number painted in each cell — never blank; fewer
        decimals and a smaller font when cells are small, never under
        :data:`~cnnviz.qt.colors.MIN_CELL_FONT_PX` (the tooltip has the exact value)."""
        s, sw = self._cell_size(), self._cell_width()
        base = max(MIN_CELL_FONT_PX, min(int(s * (0.30 if s >= 40 else 0.5)), int(sw * 0.3)))
        return fit_cell_texts(cell_font(self.font()), base, self._w, sw - 4, min_px=MIN_CELL_FONT_PX)

    def paintEvent(self, event) -> None:  # noqa: ARG002
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing, False)
        p.setRenderHint(QPainter.TextAntialiasing, True)
        rows, cols = self._w.shape
        s = self._cell_size()
        font, _fm, texts = self.cellTexts()
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
                p.setPen(text_color_for(bg))
                p.drawText(rect, Qt.AlignCenter, texts[r, c])
        # grid lines over the fills, then the outer frame
        p.setPen(grid_pen)
        o = self._origin()
        sw = self._cell_width()
        for r in range(rows + 1):
            p.drawLine(o.x(), o.y() + r * s, o.x() + cols * sw, o.y() + r * s)
        for c in range(cols + 1):
            p.drawLine(o.x() + c * sw, o.y(), o.x() + c * sw, o.y() + rows * s)
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
            value = tidy_value(value, self.step)
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
            self.cellEdit.emit(r, c, tidy_value(value + self.step, self.step), 0)
            return
        if key == Qt.Key_Underscore or (key == Qt.Key_Minus and e.modifiers() & Qt.ShiftModifier):
            self.cellEdit.emit(r, c, tidy_value(value - self.step, self.step), 0)
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
        if text and text in "123456789.,-−":  # '-' starts a negative number (typing -1 stores -1)
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
