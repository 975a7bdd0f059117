"""The "What a channel looks for" window: feature visualization, dataset examples, the unit's
view and adversarial examples (see :mod:`.window`). Reached from the inspector's Model menu
through :func:`add_featureviz_action` (one call); the window module and torch load only when
the action is used."""

from __future__ import annotations

from PySide6.QtGui import QAction

__all__ = ["add_featureviz_action", "open_from_inspector"]


def open_from_inspector(inspector, tab: str = "featviz"):
    from .window import open_from_inspector as _open

    return _open(inspector, tab)


def add_featureviz_action(inspector, menu) -> QAction:
    """Add "What a channel looks for…" to ``menu``; it opens the window on the inspector's
    model (a copy), input, layer and channel."""
    act = QAction("What a channel &looks for…", inspector)
    act.setObjectName("act-featviz")
    tip = "Feature visualization, top images, guided backprop and adversarial examples for this model"
    act.setStatusTip(tip)
    act.setToolTip(tip)
    act.triggered.connect(lambda: open_from_inspector(inspector))
    menu.addAction(act)
    return act
