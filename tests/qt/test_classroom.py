"""Issue 18 (the classroom): the playground's rough edges, driven through the real window."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtWidgets import QMessageBox, QToolButton

from cnnviz.core.kernels import preset


def test_a_size_button_asks_before_cropping_the_bank_and_undo_restores_it(qtbot, window, monkeypatch):
    ks = preset("oriented-bank").kernels
    window.set_kernels(ks, 0)
    qtbot.waitUntil(lambda: len(window.current_request().kernels) == len(ks), timeout=10_000)
    editor = window.kernel_editor
    one = editor.findChild(QToolButton, "size-1")
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.No)
    one.click()
    assert asked and "crops 11 other kernels" in asked[0]
    assert window.kernel_bank.bank() == tuple(ks)            # No: nothing changed
    assert not one.isChecked() and editor.findChild(QToolButton, "size-7").isChecked()
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.Yes)
    one.click()
    assert [k.size for k in window.kernel_bank.bank()] == [(1, 1)] * len(ks)
    editor.undoStack().undo()
    assert window.kernel_bank.bank() == tuple(ks)            # every kernel back, exactly


def test_growing_a_single_kernel_does_not_ask(qtbot, window, monkeypatch):
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: pytest.fail("asked for a lossless resize"))
    window.kernel_editor.findChild(QToolButton, "size-5").click()
    assert window.kernel_bank.selectedKernel().size == (5, 5)
