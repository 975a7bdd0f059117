"""The cnnviz window: a thin Qt view over :mod:`cnnviz.core`.

Importing this package imports PySide6 *before* pyqtgraph (so pyqtgraph binds to PySide6
rather than whatever other Qt binding happens to be installed) and sets pyqtgraph's
``imageAxisOrder`` to ``'row-major'`` once, before any view exists: every array the core
produces is (rows, columns), and so is every image the views show.
"""

from __future__ import annotations

from .app import configure_pyqtgraph

configure_pyqtgraph()
