"""Fixtures for the window tests: a private config dir, the real window, and a check that
closing it leaves no thread or timer running."""

from __future__ import annotations

import os
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import QThreadPool, QTimer  # noqa: E402

import cnnviz.qt  # noqa: E402,F401 - PySide6 before pyqtgraph, row-major images


@pytest.fixture(scope="session", autouse=True)
def gui_thread_gc(qapp):
    """As in the app: Python's cycle collector runs on the GUI thread only, so a closed
    window left in a reference cycle is never destroyed by a worker thread (which crashes Qt)."""
    from cnnviz.qt.app import install_gui_thread_gc

    collector = install_gui_thread_gc(qapp)
    yield collector
    collector.stop()


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    """Settings go to a temporary directory, never the user's."""
    d = tmp_path / "config"
    monkeypatch.setenv("CNNVIZ_CONFIG_DIR", str(d))
    return d


def _active_timers(window) -> list[str]:
    return [t.objectName() or repr(t) for t in window.findChildren(QTimer) if t.isActive()]


@pytest.fixture
def make_window(qtbot, config_dir):
    """Factory: ``make_window(**kwargs)`` → a shown MainWindow with its first result on
    screen. At teardown every window is closed and must leave no worker thread, no active
    QTimer and no extra Python thread behind."""
    from cnnviz.qt.playground.window import MainWindow

    made = []
    threads_before = threading.active_count()

    def make(**kwargs) -> MainWindow:
        w = MainWindow(**kwargs)
        qtbot.addWidget(w)
        w.show()
        qtbot.waitUntil(lambda: w.current_result() is not None, timeout=20_000)
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()
        assert not w.worker.isRunning(), "the worker thread is still running after close"
        assert not w.worker._thread.isRunning()
        assert _active_timers(w) == [], f"timers still active after close: {_active_timers(w)}"
    assert QThreadPool.globalInstance().activeThreadCount() == 0
    assert threading.active_count() <= threads_before


@pytest.fixture
def window(make_window):
    return make_window()
