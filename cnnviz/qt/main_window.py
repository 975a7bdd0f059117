"""Moved to :mod:`cnnviz.qt.playground.window`; this name stays for code written against it
(the other windows' branches and user scripts)."""

from .playground.window import *  # noqa: F401,F403
from .playground.window import MainWindow, SAMPLES, SAMPLES_DIR  # noqa: F401
