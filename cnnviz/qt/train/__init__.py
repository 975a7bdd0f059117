"""The Train window: train a CNN and watch its filters learn (see :mod:`.window`).

The playground and the inspector each reach it through one menu action,
:func:`add_train_action`; the window itself imports torch only when a run starts.
"""

from __future__ import annotations

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication

__all__ = ["TrainWindow", "add_train_action", "open_train_window"]


def __getattr__(name: str):
    if name == "TrainWindow":
        from .window import TrainWindow

        return TrainWindow
    raise AttributeError(name)


def open_train_window(owner, *, playground=None, inspector=None):
    """Show ``owner``'s Train window (made on first use) and return it."""
    w = getattr(owner, "train_window", None)
    if w is None:
        from .window import TrainWindow

        w = TrainWindow(playground=playground, inspector=inspector)
        owner.train_window = w
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(w.shutdown)  # a run in progress stops with the app
        owner.destroyed.connect(w.shutdown)
    w.show()
    w.raise_()
    w.activateWindow()
    return w


def add_train_action(owner, menu, *, playground=None, inspector=None) -> QAction:
    """Add "Train a CNN…" to ``menu``; it opens the Train window tied to ``owner``."""
    act = QAction("&Train a CNN…", owner)
    act.setObjectName("act-train")
    tip = "Train a CNN on the digits or your own images and watch its first-layer filters learn"
    act.setStatusTip(tip)
    act.setToolTip(tip)
    act.triggered.connect(lambda: open_train_window(owner, playground=playground, inspector=inspector))
    menu.addAction(act)
    return act
