"""The kernel bank: add / remove / select / rename / magnitude emit the right tuples."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QListWidget, QToolButton

from cnnviz.core.conv import ConvSpec, PipelineRequest, run_pipeline
from cnnviz.core.kernels import Kernel, presets
from cnnviz.qt.playground.kernel_bank import KernelBank

P = presets()


@pytest.fixture
def bank(qtbot):
    w = KernelBank()
    qtbot.addWidget(w)
    w.resize(300, 380)
    w.show()
    qtbot.waitExposed(w)
    return w


def _record(bank):
    got = []
    bank.bankChanged.connect(got.append)
    return got


def _list(bank) -> QListWidget:
    return bank.findChild(QListWidget, "kernels")


def test_set_bank_emits_once_with_named_pair(bank):
    got = _record(bank)
    pair = P["sobel-pair"].kernels
    bank.setBank(pair)
    assert got == [(pair, 0, (0, 1))]
    assert bank.findChild(QCheckBox, "magnitude").isChecked()
    bank.setBank(P["oriented-bank"].kernels, 3)
    assert got[-1] == (P["oriented-bank"].kernels, 3, None)
    assert bank.selectedKernel() == P["oriented-bank"].kernels[3]
    assert _list(bank).count() == 12


def test_mixed_sizes_are_resized_to_the_selected_kernel(bank):
    g5 = P["gaussian-5"].kernel
    sx = P["sobel-x"].kernel
    bank.setBank((sx, g5), selected=1)
    assert [k.size for k in bank.bank()] == [(5, 5), (5, 5)]
    assert bank.bank()[0] == sx.resized(5, 5)
    # the core accepts the bank as it is
    img = np.random.default_rng(0).random((20, 24), dtype=np.float32)
    res = run_pipeline(img, PipelineRequest(bank.bank(), ConvSpec()))
    assert res.conv.shape == (2, 16, 20)


def test_select_add_remove_rename(qtbot, bank):
    bank.setBank((P["sobel-x"].kernel, P["sobel-y"].kernel, P["laplacian-4"].kernel), magnitude_pair=None)
    got = _record(bank)
    selected = []
    bank.selectedChanged.connect(selected.append)
    lst = _list(bank)
    qtbot.mouseClick(lst.viewport(), Qt.LeftButton, pos=lst.visualItemRect(lst.item(2)).center())
    assert got[-1] == (bank.bank(), 2, None) and selected == [2]
    assert bank.selectedKernel().name == "laplacian-4"

    qtbot.mouseClick(bank.findChild(QToolButton, "add"), Qt.LeftButton)
    ks, sel, pair = got[-1]
    assert len(ks) == 4 and sel == 3 and pair is None
    assert ks[3].name == "laplacian-4 copy"
    np.testing.assert_array_equal(ks[3].weights, ks[2].weights)

    bank.setSelected(0)
    qtbot.mouseClick(bank.findChild(QToolButton, "remove"), Qt.LeftButton)
    ks, sel, _ = got[-1]
    assert [k.name for k in ks] == ["sobel-y", "laplacian-4", "laplacian-4 copy"] and sel == 0

    item = lst.item(1)
    bank.setSelected(1)
    item.setText("my laplacian")  # what the inline rename editor does on commit
    assert got[-1][0][1].name == "my laplacian"
    np.testing.assert_array_equal(got[-1][0][1].weights, P["laplacian-4"].kernel.weights)


def test_last_kernel_cannot_be_removed(qtbot, bank):
    bank.setBank((P["sharpen"].kernel,))
    remove = bank.findChild(QToolButton, "remove")
    assert not remove.isEnabled()
    bank.removeSelected()
    assert len(bank.bank()) == 1


def test_magnitude_checkbox_and_pair(qtbot, bank):
    ks = (P["laplacian-4"].kernel, P["sobel-y"].kernel, P["sobel-x"].kernel)
    bank.setBank(ks, magnitude_pair=None)
    got = _record(bank)
    combo_a = bank.findChild(QComboBox, "magnitude-a")
    combo_b = bank.findChild(QComboBox, "magnitude-b")
    # defaults to sobel-x / sobel-y wherever they are
    assert (combo_a.currentIndex(), combo_b.currentIndex()) == (2, 1)
    box = bank.findChild(QCheckBox, "magnitude")
    qtbot.mouseClick(box, Qt.LeftButton)
    assert got[-1] == (ks, 0, (2, 1))
    combo_b.setCurrentIndex(0)
    assert got[-1] == (ks, 0, (2, 0))
    combo_b.setCurrentIndex(2)  # a == b: no magnitude, and the user is told why
    assert got[-1][2] is None
    note = bank.findChild(QLabel, "magnitude-note")
    assert note.isVisible() and "two different" in note.text()
    qtbot.mouseClick(box, Qt.LeftButton)
    assert got[-1][2] is None
    # removing a kernel of the pair re-indexes / resets it
    bank.setMagnitudePair((2, 1))
    bank.setSelected(0)
    bank.removeSelected()
    assert got[-1] == (ks[1:], 0, (1, 0))


def test_replace_selected_resizes_others_and_emits_only_on_change(bank):
    ks = P["sobel-pair"].kernels
    bank.setBank(ks)
    got = _record(bank)
    bank.replaceSelected(ks[0])
    assert got == []
    big = ks[0].resized(5, 5).with_value(0, 0, 9.0)
    bank.replaceSelected(big)
    kernels, sel, pair = got[-1]
    assert kernels[0] == big and sel == 0 and pair == (0, 1)
    assert kernels[1] == ks[1].resized(5, 5)


def test_thumbnails_and_names_are_shown(bank):
    bank.setBank(P["sobel-pair"].kernels)
    lst = _list(bank)
    assert [lst.item(i).text() for i in range(lst.count())] == ["sobel-x", "sobel-y"]
    assert not lst.item(0).icon().isNull()


def test_cropping_the_bank_is_reversible_and_reported(bank):
    """1×1 on a 7×7 bank crops every kernel (one size per bank), but the others keep their
    full weights: going back to 7×7 restores all of them exactly (was: all zeroed)."""
    ks = P["oriented-bank"].kernels
    assert ks[0].size == (7, 7)
    bank.setBank(ks)
    assert len(bank.wouldCrop(1, 1)) == len(ks) - 1
    assert bank.wouldCrop(7, 7) == []
    bank.replaceSelected(ks[0].resized(1, 1))
    assert [k.size for k in bank.bank()] == [(1, 1)] * len(ks)
    bank.replaceSelected(ks[0])  # what Undo (or the 7×7 button on the untouched centre) sends
    assert bank.bank() == tuple(ks)
    # a kernel edited after the crop is no longer restored: the edit wins
    bank.replaceSelected(ks[0].resized(3, 3))
    bank.setSelected(1)
    edited = bank.selectedKernel().with_value(0, 0, 5.0)
    bank.replaceSelected(edited)
    bank.setSelected(0)
    bank.replaceSelected(ks[0])
    assert bank.bank()[1] == edited.resized(7, 7)
    assert bank.bank()[2] == ks[2]


# -- the bank is a view of the state: no second copy ------------------------------------------
def test_the_bank_shows_a_state_changed_directly_and_clicks_change_the_state(qtbot):
    from cnnviz.core.playground import PlaygroundState
    from cnnviz.qt.playground.kernel_editor import KernelEditor

    state = PlaygroundState()
    state.set_bank(P["sobel-pair"].kernels, 0, (0, 1))
    bank = KernelBank(state=state)
    editor = KernelEditor(state=state)
    for w in (bank, editor):
        qtbot.addWidget(w)
    bank.resize(300, 380)
    bank.show()
    qtbot.waitExposed(bank)
    lst = _list(bank)
    got = _record(bank)
    # the state changes (a lesson, a scene): the tiles, the count and the editor show it
    state.set_bank(P["oriented-bank"].kernels, 2)
    bank.refresh()
    editor.showState(new_history=True)
    assert [lst.item(i).text() for i in range(lst.count())] == [k.name for k in P["oriented-bank"].kernels]
    assert lst.currentRow() == 2 and "12 kernels" in bank.findChild(QLabel, "count").text()
    assert editor.kernel() == P["oriented-bank"].kernels[2]
    assert got == []                                   # showing the state reports nothing back
    # a click on a tile is a state change
    qtbot.mouseClick(lst.viewport(), Qt.LeftButton, pos=lst.visualItemRect(lst.item(5)).center())
    assert state.selected == 5 and got[-1][1] == 5
    # an editor edit lands in the state, and the bank shows it after a refresh
    editor.applyOperation("negate")
    assert state.kernels[5] == P["oriented-bank"].kernels[5].negated()
    assert bank.selectedKernel() == state.kernels[5]
    # no second copy: neither widget keeps a kernel list or a kernel of its own
    for w in (bank, editor):
        held = [name for name, v in vars(w).items()
                if isinstance(v, Kernel) or (isinstance(v, (tuple, list)) and v and isinstance(v[0], Kernel))]
        assert held == [], f"{type(w).__name__} keeps {held}"
    state.set_bank((P["sharpen"].kernel,))
    assert bank.bank() == (P["sharpen"].kernel,) and editor.kernel() == P["sharpen"].kernel


def test_the_window_bank_and_editor_share_the_window_state(window):
    w = window
    assert w.kernel_bank.state() is w.state and w.kernel_editor._state is w.state
    w.set_kernels(P["sobel-pair"].kernels, 0, (0, 1))
    w.kernel_bank.setSelected(1)
    assert w.kernel_editor.kernel() == P["sobel-pair"].kernels[1]
    assert w.build_request().kernels == P["sobel-pair"].kernels
