"""Every control says, in a sentence, what it does and what idea it stands for.

Walks the real playground (every dock, the live-source and Learn panels included) and the
model inspector, and checks every button, combo box, spin box, slider and text field a user
can reach. Qt's own internals (a dock's float/close buttons, a spin box's inner line edit,
tab-bar scroll arrows, the kernel grid's transient cell editor) are skipped: they are parts
of a control that has its own tooltip.
"""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit, QSlider, QToolButton, QWidget

CONTROLS = (QAbstractButton, QComboBox, QAbstractSpinBox, QSlider, QLineEdit)
INTERNAL_NAMES = {"ScrollLeftButton", "ScrollRightButton", "cell-editor"}


def _tip(w: QWidget) -> str:
    tip = w.toolTip()
    if not tip and isinstance(w, QToolButton) and w.defaultAction() is not None:
        tip = w.defaultAction().toolTip()
    return tip.strip()


def _untipped(root: QWidget) -> list[str]:
    missing = []
    for w in root.findChildren(QWidget):
        name = w.objectName()
        if not isinstance(w, CONTROLS) or name.startswith("qt_") or name in INTERNAL_NAMES:
            continue
        tip = _tip(w)
        # a sentence, not a label: several words (the widget's own text does not count)
        text = w.text() if hasattr(w, "text") and callable(w.text) else ""
        if len(tip.split()) < 3 or tip == text:
            label = name or f"{type(w).__name__} '{text}'"
            missing.append(f"{label}: {tip!r}")
    return missing


def test_every_playground_control_has_a_tooltip(window):
    assert _untipped(window) == []


def test_every_inspector_control_has_a_tooltip(qtbot, window):
    window.act_inspector.trigger()
    insp = window.inspector
    qtbot.waitUntil(lambda: insp.current_capture() is not None, timeout=60_000)
    assert _untipped(insp) == []


def test_the_concept_controls_explain_the_concept(window):
    """Spot checks that the tooltips teach, not just name the widget."""
    from PySide6.QtWidgets import QComboBox, QSpinBox

    stride = window.findChild(QSpinBox, "stride-x").toolTip()
    assert "half" in stride                                   # stride 2 halves the map
    assert "ReLU" in window.findChild(QComboBox, "activation").toolTip()
    dilation = window.findChild(QSpinBox, "dilation-y").toolTip()
    assert "wider" in dilation and dilation.startswith("Rows")


def test_long_tooltips_are_shown_word_wrapped(qtbot, window):
    """A sentence-long tooltip is shown as rich text (which Qt wraps), not one long strip;
    the widget keeps its plain text."""
    from PySide6.QtCore import QEvent, QPoint
    from PySide6.QtGui import QHelpEvent
    from PySide6.QtWidgets import QApplication, QComboBox, QToolTip

    from cnnviz.qt.app import ToolTipWrapper, create_app, wrapped_tooltip

    create_app()  # installs the wrapper on the test's application
    assert QApplication.instance().findChild(ToolTipWrapper) is not None
    combo = window.findChild(QComboBox, "activation")
    plain = combo.toolTip()
    assert len(plain) > 100
    ev = QHelpEvent(QEvent.Type.ToolTip, QPoint(5, 5), combo.mapToGlobal(QPoint(5, 5)))
    QApplication.sendEvent(combo, ev)
    qtbot.waitUntil(lambda: QToolTip.isVisible(), timeout=3000)
    assert QToolTip.text() == wrapped_tooltip(plain) and QToolTip.text().startswith("<p>")
    assert combo.toolTip() == plain
    QToolTip.hideText()
    assert wrapped_tooltip("Undo") is None and wrapped_tooltip("a < b & c\n" * 10).count("<br>") == 10
