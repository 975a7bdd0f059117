"""The kernel editor driven like a user: painting gestures, typing, keyboard, undo, files."""

from __future__ import annotations

import json
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QKeySequence, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QComboBox, QDoubleSpinBox, QFileDialog, QLabel, QTabBar, QToolButton

from cnnviz.core.kernels import Kernel, load_kernel_file, presets, save_kernel_file
from cnnviz.qt.playground.kernel_editor import GESTURES_HELP, KernelEditor, parse_value

SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)


@pytest.fixture
def editor(qtbot):
    w = KernelEditor(Kernel(SOBEL_X, name="sobel-x"))
    qtbot.addWidget(w)
    w.resize(360, 560)
    w.show()
    qtbot.waitExposed(w)
    return w


def _w(editor) -> np.ndarray:
    return np.asarray(editor.kernel().weights)


def _move(widget, pos: QPoint, buttons) -> None:
    """A mouse move with buttons held (qtbot.mouseMove cannot hold buttons)."""
    ev = QMouseEvent(QEvent.MouseMove, QPointF(pos), QPointF(widget.mapToGlobal(pos)), Qt.NoButton, buttons,
                     Qt.NoModifier)
    QApplication.sendEvent(widget, ev)


def _drag(qtbot, grid, cells, button=Qt.LeftButton) -> None:
    first = grid.cellCenter(*cells[0])
    qtbot.mousePress(grid, button, pos=first)
    for cell in cells[1:]:
        _move(grid, grid.cellCenter(*cell), button)
    qtbot.mouseRelease(grid, button, pos=grid.cellCenter(*cells[-1]))


def _wheel(widget, pos: QPoint, delta: int) -> None:
    ev = QWheelEvent(QPointF(pos), QPointF(widget.mapToGlobal(pos)), QPoint(0, 0), QPoint(0, delta), Qt.NoButton,
                     Qt.NoModifier, Qt.NoScrollPhase, False)
    QApplication.sendEvent(widget, ev)


def _changes(editor):
    seen = []
    editor.kernelChanged.connect(lambda k: seen.append(np.array(k.weights)))
    return seen


# -- painting gestures -----------------------------------------------------------------
def test_left_drag_paints_brush_over_every_cell_crossed_as_one_undo_step(qtbot, editor):
    editor.setBrushValue(0.5)
    grid = editor.grid()
    seen = _changes(editor)
    before = editor.undoStack().count()
    # (0,0) → (0,2) jumps over (0,1) in one move: the cell crossed is painted too
    _drag(qtbot, grid, [(0, 0), (0, 2), (2, 2)])
    w = _w(editor)
    expected = SOBEL_X.copy()
    expected[0, :] = 0.5
    expected[1:, 2] = 0.5
    np.testing.assert_array_equal(w, expected)
    assert editor.undoStack().count() == before + 1
    # one kernelChanged per changed cell, not more
    assert len(seen) == int(np.sum(expected != SOBEL_X))
    editor.undoAction().trigger()
    np.testing.assert_array_equal(_w(editor), SOBEL_X)
    editor.redoAction().trigger()
    np.testing.assert_array_equal(_w(editor), expected)


def test_right_drag_paints_negative_brush(qtbot, editor):
    editor.setBrushValue(3.0)
    grid = editor.grid()
    _drag(qtbot, grid, [(1, 0), (1, 1), (1, 2)], button=Qt.RightButton)
    np.testing.assert_array_equal(_w(editor)[1], [-3, -3, -3])
    np.testing.assert_array_equal(_w(editor)[[0, 2]], SOBEL_X[[0, 2]])
    assert editor.undoStack().count() == 1


def test_middle_click_zeroes_a_cell(qtbot, editor):
    grid = editor.grid()
    qtbot.mouseClick(grid, Qt.MiddleButton, pos=grid.cellCenter(1, 2))
    expected = SOBEL_X.copy()
    expected[1, 2] = 0
    np.testing.assert_array_equal(_w(editor), expected)


def test_wheel_nudges_by_step_and_a_run_of_notches_is_one_undo_step(qtbot, editor):
    editor.setStep(0.25)
    grid = editor.grid()
    pos = grid.cellCenter(0, 1)
    _wheel(grid, pos, 120)
    _wheel(grid, pos, 120)
    assert _w(editor)[0, 1] == pytest.approx(0.5)
    _wheel(grid, pos, -120)
    assert _w(editor)[0, 1] == pytest.approx(0.25)
    # high-resolution wheels: four 30-unit events are one notch
    for _ in range(4):
        _wheel(grid, grid.cellCenter(2, 2), -30)
    assert _w(editor)[2, 2] == pytest.approx(1 - 0.25)
    assert editor.undoStack().count() == 2  # one step per cell run
    editor.undoAction().trigger()
    editor.undoAction().trigger()
    np.testing.assert_array_equal(_w(editor), SOBEL_X)


def test_ctrl_click_picks_the_brush(qtbot, editor):
    grid = editor.grid()
    qtbot.mouseClick(grid, Qt.LeftButton, Qt.ControlModifier, pos=grid.cellCenter(1, 0))
    assert editor.brushValue() == -2
    np.testing.assert_array_equal(_w(editor), SOBEL_X)


def test_gestures_are_documented(editor):
    for words in ("Left-drag", "Right-drag", "Middle-click", "wheel", "Tab", "Enter", "Ctrl+Z"):
        assert words in GESTURES_HELP
    assert GESTURES_HELP in editor.grid().toolTip()


# -- typing --------------------------------------------------------------------------------
def _double_click(qtbot, grid, cell) -> None:
    """What Qt delivers for a double-click: press, release, double-click, release."""
    pos = grid.cellCenter(*cell)
    qtbot.mouseClick(grid, Qt.LeftButton, pos=pos)
    qtbot.mouseDClick(grid, Qt.LeftButton, pos=pos)


def test_double_click_opens_the_editor_without_painting(qtbot, editor):
    editor.setBrushValue(5)
    grid = editor.grid()
    _double_click(qtbot, grid, (1, 0))
    ed = grid.lineEdit()
    assert ed.isVisible() and ed.text() == "-2"
    qtbot.keyClick(ed, Qt.Key_Escape)
    np.testing.assert_array_equal(_w(editor), SOBEL_X)
    assert not editor.undoStack().canUndo()


def test_typing_with_tab_and_enter(qtbot, editor):
    grid = editor.grid()
    _double_click(qtbot, grid, (0, 0))
    ed = grid.lineEdit()
    assert ed.isVisible() and ed.hasSelectedText()
    qtbot.keyClicks(ed, "0.5")
    qtbot.keyClick(ed, Qt.Key_Tab)
    assert grid.isEditing() and grid.focusCell() == (0, 1)
    qtbot.keyClicks(grid.lineEdit(), "1/4")
    qtbot.keyClick(grid.lineEdit(), Qt.Key_Tab)
    qtbot.keyClicks(grid.lineEdit(), "-2")
    qtbot.keyClick(grid.lineEdit(), Qt.Key_Return)
    assert not grid.isEditing()
    np.testing.assert_allclose(_w(editor)[0], [0.5, 0.25, -2])


def test_invalid_typed_value_keeps_editor_open_and_kernel(qtbot, editor):
    grid = editor.grid()
    grid.setFocus()
    grid.setFocusCell(1, 1)
    qtbot.keyClick(grid, Qt.Key_Return)
    ed = grid.lineEdit()
    ed.setText("abc")
    qtbot.keyClick(ed, Qt.Key_Return)
    assert grid.isEditing()
    assert "not a number" in ed.toolTip()
    qtbot.keyClick(ed, Qt.Key_Escape)
    assert not grid.isEditing()
    np.testing.assert_array_equal(_w(editor), SOBEL_X)


def test_keyboard_only_editing(qtbot, editor):
    editor.setStep(0.5)
    editor.setBrushValue(7)
    grid = editor.grid()
    grid.setFocus()
    grid.setFocusCell(0, 0)
    qtbot.keyClick(grid, Qt.Key_Right)            # (0,1) = 0
    qtbot.keyClick(grid, Qt.Key_Plus)             # 0.5
    qtbot.keyClick(grid, Qt.Key_Plus)             # 1.0
    qtbot.keyClick(grid, Qt.Key_Down)             # (1,1) = 0
    qtbot.keyClick(grid, Qt.Key_Underscore)       # -0.5 (Shift+minus nudges down)
    qtbot.keyClick(grid, Qt.Key_Left)             # (1,0) = -2
    qtbot.keyClick(grid, Qt.Key_N)                # 2
    qtbot.keyClick(grid, Qt.Key_Down)             # (2,0) = -1
    qtbot.keyClick(grid, Qt.Key_Delete)           # 0
    qtbot.keyClick(grid, Qt.Key_Right)            # (2,1)
    qtbot.keyClick(grid, Qt.Key_Space)            # brush 7
    qtbot.keyClick(grid, Qt.Key_Right)            # (2,2) = 1
    qtbot.keyClick(grid, Qt.Key_0)                # 0
    qtbot.keyClick(grid, Qt.Key_Up)               # (1,2) = 2
    qtbot.keyClick(grid, Qt.Key_3)                # starts typing "3"
    qtbot.keyClicks(grid.lineEdit(), ".5")
    qtbot.keyClick(grid.lineEdit(), Qt.Key_Enter)
    expected = np.array([[-1, 1, 1], [2, -0.5, 3.5], [0, 7, 0]], np.float32)
    np.testing.assert_array_equal(_w(editor), expected)
    # every keyboard edit is its own undo step; undoing them all restores the start exactly
    while editor.undoStack().canUndo():
        editor.undoStack().undo()
    np.testing.assert_array_equal(_w(editor), SOBEL_X)


def test_undo_redo_shortcuts(qtbot, editor):
    editor.activateWindow()
    grid = editor.grid()
    grid.setFocus()
    grid.setFocusCell(0, 1)
    qtbot.keyClick(grid, Qt.Key_Plus)
    edited = _w(editor).copy()
    assert editor.undoAction().shortcuts()[0] == QKeySequence("Ctrl+Z")
    assert QKeySequence("Ctrl+Shift+Z") in editor.redoAction().shortcuts()
    assert QKeySequence("Ctrl+Y") in editor.redoAction().shortcuts()
    qtbot.keyClick(grid, Qt.Key_Z, Qt.ControlModifier)
    np.testing.assert_array_equal(_w(editor), SOBEL_X)
    qtbot.keyClick(grid, Qt.Key_Y, Qt.ControlModifier)
    np.testing.assert_array_equal(_w(editor), edited)


# -- sizes, presets, operations --------------------------------------------------------
def test_size_buttons_resize_and_undo(qtbot, editor):
    b5 = editor.findChild(QToolButton, "size-5")
    qtbot.mouseClick(b5, Qt.LeftButton)
    assert editor.kernel().size == (5, 5)
    np.testing.assert_array_equal(_w(editor)[1:4, 1:4], SOBEL_X)
    assert np.count_nonzero(_w(editor)) == np.count_nonzero(SOBEL_X)
    editor.undoAction().trigger()
    assert editor.kernel().size == (3, 3)
    editor.setKernelSize(1)
    np.testing.assert_array_equal(_w(editor), [[0]])


def test_presets_set_the_core_kernel_and_banks_are_requested(qtbot, editor):
    menu = editor.findChild(QToolButton, "presets").menu()
    actions = {a.objectName(): a for sub in menu.actions() if sub.menu() for a in sub.menu().actions()}
    assert set(actions) == {f"preset-{n}" for n in presets()}
    groups = [sub.text() for sub in menu.actions()]
    assert groups == list(dict.fromkeys(p.group for p in presets().values()))
    actions["preset-gaussian-5"].trigger()
    assert editor.kernel() == presets()["gaussian-5"].kernel
    requested = []
    editor.bankRequested.connect(requested.append)
    actions["preset-oriented-bank"].trigger()
    assert requested and requested[0] == presets()["oriented-bank"].kernels
    assert editor.kernel() == presets()["gaussian-5"].kernel  # a bank does not change the editor
    editor.undoAction().trigger()
    assert editor.kernel() == Kernel(SOBEL_X, name="sobel-x")


@pytest.mark.parametrize("op, expect", [
    ("negate", lambda k: k.negated()),
    ("flip_h", lambda k: k.flipped_h()),
    ("flip_v", lambda k: k.flipped_v()),
    ("rotate90", lambda k: k.rotated90(1)),
    ("transpose", lambda k: k.transposed()),
    ("clear", lambda k: k.with_weights(np.zeros((3, 3)))),
])
def test_operations_match_the_core(qtbot, editor, op, expect):
    start = Kernel(np.arange(9, dtype=np.float32).reshape(3, 3) - 3, name="ramp")
    editor.setKernel(start)
    button = editor.findChild(QToolButton, f"op-{op}")
    qtbot.mouseClick(button, Qt.LeftButton)
    assert editor.kernel() == expect(start)
    editor.undoAction().trigger()
    assert editor.kernel() == start


def test_normalize_and_its_zero_sum_note(qtbot, editor):
    editor.applyOperation("normalize")  # Sobel sums to 0
    assert editor.kernel().weights.tolist() == SOBEL_X.tolist()
    assert "sum to 0" in editor.messageText()
    blur = Kernel(np.ones((3, 3), np.float32), name="box")
    editor.setKernel(blur)
    editor.applyOperation("normalize")
    assert editor.kernel() == blur.normalized()
    assert editor.kernel().sum == pytest.approx(1.0, abs=1e-6)


def test_random_values_are_two_decimals_in_range_and_seeded(qtbot, editor):
    editor.setKernelSize(7)
    editor.setRandomSeed(42)
    editor.applyOperation("random")
    a = _w(editor).copy()
    assert a.shape == (7, 7) and np.all(np.abs(a) <= 1)
    np.testing.assert_allclose(a * 100, np.round(a * 100), atol=1e-4)
    assert len(np.unique(a)) > 10
    editor.setRandomSeed(42)
    editor.applyOperation("clear")
    editor.applyOperation("random")
    np.testing.assert_array_equal(_w(editor), a)


def test_divisor_offset_and_sum_label(qtbot, editor):
    editor.setKernel(presets()["gaussian-3"].kernel)
    sum_label = editor.findChild(QLabel, "sum")
    assert "16" in sum_label.text() and "÷ 16 = 1" in sum_label.text()
    div = editor.findChild(QDoubleSpinBox, "divisor")
    div.setValue(8)
    assert editor.kernel().divisor == 8
    assert "= 2" in sum_label.text()
    div.setValue(0)
    assert editor.kernel().divisor == 8
    assert "divisor cannot be 0" in editor.messageText()
    editor.findChild(QDoubleSpinBox, "offset").setValue(0.5)
    assert editor.kernel().offset == 0.5
    editor.undoAction().trigger()
    assert editor.kernel().offset == 0.0 and editor.kernel().divisor == 8


def test_set_kernel_not_undoable_clears_history(qtbot, editor):
    editor.applyOperation("negate")
    seen = _changes(editor)
    other = presets()["sharpen"].kernel
    editor.setKernel(other, undoable=False)
    assert editor.kernel() == other and not editor.undoStack().canUndo()
    assert len(seen) == 1
    editor.setKernel(other)  # same kernel: no step, no signal
    assert len(seen) == 1 and editor.undoStack().count() == 0


def test_parse_value():
    assert parse_value("1/16") == 0.0625
    assert parse_value("−2") == -2
    assert parse_value("0,5") == 0.5
    for bad in ("", "x", "1/0", "nan", "inf", "1e400"):
        assert parse_value(bad) is None


# -- files ----------------------------------------------------------------------------------
def test_save_and_load_round_trip(qtbot, editor, tmp_path, monkeypatch):
    k = Kernel(np.array([[0.125, -1.5], [3, 0]], np.float32), name="odd one", divisor=2.0, offset=0.25)
    editor.setKernel(k)
    target = tmp_path / "mine"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **kw: (str(target), "Kernel files (*.json)"))
    qtbot.mouseClick(editor.findChild(QToolButton, "save"), Qt.LeftButton)
    saved = tmp_path / "mine.json"
    assert saved.exists()
    assert load_kernel_file(saved) == [k]
    editor.setKernel(Kernel(SOBEL_X, name="sobel-x"))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **kw: (str(saved), ""))
    qtbot.mouseClick(editor.findChild(QToolButton, "load"), Qt.LeftButton)
    assert editor.kernel() == k


def test_loading_a_bad_file_shows_cause_and_fix_and_keeps_kernel(qtbot, editor, tmp_path, monkeypatch):
    bad = tmp_path / "bad.json"
    bad.write_text('{"kernels": [{"name": "r", "weights": [[1, 2], [3]]}]}')
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **kw: (str(bad), ""))
    seen = _changes(editor)
    qtbot.mouseClick(editor.findChild(QToolButton, "load"), Qt.LeftButton)
    msg = editor.messageText()
    assert "bad.json" in msg and "ragged" in msg and "Fix:" in msg
    assert seen == [] and editor.kernel() == Kernel(SOBEL_X, name="sobel-x")
    bad.write_text("not json {")
    qtbot.mouseClick(editor.findChild(QToolButton, "load"), Qt.LeftButton)
    assert "not valid JSON" in editor.messageText()


def test_loading_a_multi_kernel_file_requests_a_bank(qtbot, editor, tmp_path, monkeypatch):
    path = tmp_path / "pair.json"
    pair = presets()["sobel-pair"].kernels
    save_kernel_file(path, pair)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **kw: (str(path), ""))
    got = []
    editor.bankRequested.connect(got.append)
    qtbot.mouseClick(editor.findChild(QToolButton, "load"), Qt.LeftButton)
    assert got == [tuple(pair)]
    assert json.loads(path.read_text())["kernels"][1]["name"] == "sobel-y"


def test_channel_kernels_edit_the_shown_channel_only(qtbot, editor):
    w = np.zeros((3, 3, 3), np.float32)
    k = Kernel(w, name="rgb")
    editor.setKernel(k)
    tabs = [c for c in editor.findChildren(QTabBar) if c.isVisible()]
    assert len(tabs) == 1 and [tabs[0].tabText(i) for i in range(tabs[0].count())] == ["R", "G", "B"]
    tabs[0].setCurrentIndex(2)
    editor.setBrushValue(0.5)
    grid = editor.grid()
    qtbot.mouseClick(grid, Qt.LeftButton, pos=grid.cellCenter(1, 1))
    expected = w.copy()
    expected[2, 1, 1] = 0.5
    np.testing.assert_array_equal(_w(editor), expected)
    editor.applyOperation("flip_h")
    assert editor.kernel() == Kernel(expected, name="rgb").flipped_h()


def test_typing_minus_one_into_a_selected_cell_stores_minus_one(qtbot, editor):
    """Click a cell (no double-click), type -1, Enter: the cell holds -1 (the sign is kept)."""
    grid = editor.grid()
    qtbot.mouseClick(grid, Qt.LeftButton, Qt.ControlModifier, pos=grid.cellCenter(1, 1))  # select only
    assert grid.focusCell() == (1, 1)
    qtbot.keyClick(grid, Qt.Key_Minus)
    assert grid.isEditing()
    qtbot.keyClicks(grid.lineEdit(), "1")
    qtbot.keyClick(grid.lineEdit(), Qt.Key_Return)
    assert _w(editor)[1, 1] == -1.0
    # and Shift+minus still nudges down by the step
    editor.setStep(0.5)
    qtbot.keyClick(grid, Qt.Key_Underscore)
    assert _w(editor)[1, 1] == -1.5


@pytest.mark.parametrize("size", [(360, 560), (220, 420)])
def test_every_cell_of_a_7x7_kernel_shows_its_number(qtbot, editor, size):
    """Small and negative cells of a 7×7 kernel are never blank: each cell's painted text
    fits its cell and reads back as the value (to the digits shown)."""
    rng = np.random.default_rng(3)
    w = np.round(rng.uniform(-1, 1, (7, 7)), 3).astype(np.float32)
    w[0, 0], w[0, 1], w[0, 2] = -0.063, 0.0041, -12.5
    editor.resize(*size)
    editor.setKernel(Kernel(w, name="random 7"))
    grid = editor.grid()
    grid.resize(grid.minimumSizeHint())  # the smallest the layout may make it
    _check_every_cell_shows(grid, w, lambda r, c: grid.cellRect(r, c).width() - 4)


def _check_every_cell_shows(grid, values, avail):
    font, fm, texts = grid.cellTexts()
    assert texts.shape == values.shape
    for (r, c), v in np.ndenumerate(values):
        text = texts[r, c]
        assert text, f"cell {(r, c)} is blank"
        assert fm.horizontalAdvance(text) <= avail(r, c), f"cell {(r, c)}: {text!r} does not fit"
        shown = parse_value(text)
        assert shown is not None, text
        assert abs(shown - v) <= 0.5 * 10 ** np.floor(np.log10(abs(v) + 1e-12)) + 1e-9, (text, v)
    assert font.pixelSize() >= 6
