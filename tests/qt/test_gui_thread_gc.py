"""Reference cycles are collected on the GUI thread, never by a worker that happens to allocate."""

from __future__ import annotations

import gc
import threading


def test_cycles_made_garbage_in_a_worker_are_freed_on_the_gui_thread(qtbot, qapp):
    from cnnviz.qt.app import install_gui_thread_gc

    collector = install_gui_thread_gc(qapp)
    assert not gc.isenabled()                     # the automatic collector is off
    freed_on = []

    class Node:
        def __del__(self):
            freed_on.append(threading.current_thread().name)

    kept = []

    def worker():
        a, b = Node(), Node()
        a.other, b.other = b, a                   # a cycle: only the collector frees it
        del a, b
        kept.extend([i] for i in range(50_000))   # far past the threshold: Python would collect here

    t = threading.Thread(target=worker, name="worker")
    t.start()
    t.join()
    assert freed_on == []                         # the worker did not collect
    qtbot.waitUntil(lambda: len(freed_on) == 2, timeout=5000)
    assert freed_on == ["MainThread", "MainThread"]
    assert collector.collections >= 1
    kept.clear()
