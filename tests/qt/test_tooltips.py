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
