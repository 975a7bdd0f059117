"""The one long-task runner (cnnviz.qt.workers.TaskRunner): progress, partial results, pause,
cancel, errors and closing while a task runs; every signal arrives on the GUI thread."""

from __future__ import annotations

import os
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtCore import QTimer

from cnnviz.core.errors import SpecError
from cnnviz.qt.workers import TaskRunner


@pytest.fixture
def runner(qtbot):
    before = {t.ident for t in threading.enumerate()}
    r = TaskRunner(name="cnnviz-test-task")
    yield r
    assert r.shutdown(5000)
    left = [t.name for t in threading.enumerate() if t.ident not in before and t.name == "cnnviz-test-task"]
    assert left == [] and r.findChildren(QTimer) == []       # no thread, no polling timer left


def _record(r):
    got = {"progress": [], "partial": [], "finished": [], "failed": [], "cancelled": [], "busy": [],
           "threads": set()}
    gui = threading.current_thread()
    for name in ("progress", "partial", "finished", "failed", "cancelled"):
        getattr(r, name).connect(lambda *a, n=name: (got[n].append(a), got["threads"].add(threading.current_thread() is gui)))
    r.busyChanged.connect(got["busy"].append)
    return got


def test_progress_and_partials_arrive_on_the_gui_thread_then_the_result(qtbot, runner):
    got = _record(runner)
    worker_threads = []

    def task(state):
        worker_threads.append(threading.current_thread())
        for i in range(1, 6):
            state.check()
            state.set_progress(i / 5, f"step {i}")
            state.set_partial_result(i)
        return "done"

    tid = runner.start(task)
    qtbot.waitUntil(lambda: bool(got["finished"]), timeout=10_000)
    assert got["finished"] == [(tid, "done")] and got["failed"] == [] and got["cancelled"] == []
    assert worker_threads[0] is not threading.current_thread()          # off the GUI thread
    assert got["threads"] == {True}                                       # every signal on the GUI thread
    # coalesced, never more than one per change, and the last state comes before the outcome
    assert 1 <= len(got["progress"]) <= 5 and got["progress"][-1] == (tid, 1.0, "step 5")
    assert got["partial"][-1] == (tid, 5) and len(got["partial"]) <= 5
    assert got["busy"] == [True, False] and not runner.is_busy() and runner.state is None


def test_cancel_stops_the_task_at_its_next_check(qtbot, runner):
    got = _record(runner)
    started = threading.Event()

    def task(state):
        started.set()
        while True:
            state.check()
            state.set_progress(0.5)

    tid = runner.start(task)
    assert started.wait(10)
    runner.cancel()
    qtbot.waitUntil(lambda: bool(got["cancelled"]), timeout=10_000)
    assert got["cancelled"] == [(tid,)] and got["finished"] == [] and not runner.is_busy()


def test_pause_holds_the_task_and_resume_lets_it_finish(qtbot, runner):
    got = _record(runner)
    steps = []
    gate = threading.Event()

    def task(state):
        for i in range(3):
            state.check()
            steps.append(i)
            if i == 0:
                gate.set()
                while not state.paused and not state.cancelled:   # wait until the GUI paused us
                    threading.Event().wait(0.005)
        return len(steps)

    runner.start(task)
    assert gate.wait(10)
    runner.pause()
    assert runner.is_paused()
    qtbot.wait(50)
    assert steps == [0] and got["finished"] == []                # held at its next check
    runner.resume()
    qtbot.waitUntil(lambda: bool(got["finished"]), timeout=10_000)
    assert got["finished"][0][1] == 3


def test_errors_are_delivered_as_values_with_cause_or_traceback(qtbot, runner):
    got = _record(runner)
    runner.start(lambda st: (_ for _ in ()).throw(SpecError("stride must be ≥ 1", "use 1")))
    qtbot.waitUntil(lambda: bool(got["failed"]), timeout=10_000)
    exc = got["failed"][-1][1]
    assert isinstance(exc, SpecError) and exc.cause == "stride must be ≥ 1"
    runner.start(lambda st: 1 / 0)
    qtbot.waitUntil(lambda: len(got["failed"]) == 2, timeout=10_000)
    exc = got["failed"][-1][1]
    assert isinstance(exc, ZeroDivisionError) and "ZeroDivisionError" in exc.cnnviz_traceback
    assert not runner.is_busy()


def test_the_latest_task_wins_and_never_runs_beside_the_old_one(qtbot, runner):
    got = _record(runner)
    running, most = [0], [0]
    lock = threading.Lock()

    def job(value, loops):
        def fn(state):
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            try:
                for _ in range(loops):
                    state.check()
                    threading.Event().wait(0.002)
                return value
            finally:
                with lock:
                    running[0] -= 1
        return fn

    first = runner.start(job("first", 100_000))
    second = runner.start(job("second", 100_000))
    third = runner.start(job("third", 2))            # replaces the pending second: it never runs
    qtbot.waitUntil(lambda: bool(got["finished"]), timeout=10_000)
    assert got["finished"] == [(third, "third")] and most[0] == 1
    assert first < second < third and got["cancelled"] == []   # replaced tasks end silently


def test_closing_while_a_task_runs_cancels_it_and_delivers_nothing(qtbot, runner):
    got = _record(runner)
    started = threading.Event()

    def task(state):
        started.set()
        while True:
            state.check()
            state.set_progress(0.1)

    runner.start(task)
    assert started.wait(10)
    assert runner.shutdown(5000)                       # the task saw the cancel and ended
    n = {k: len(v) for k, v in got.items() if k not in ("threads", "busy")}
    qtbot.wait(50)                                     # whatever was queued is delivered now
    assert got["finished"] == [] and got["failed"] == [] and got["cancelled"] == []
    assert {k: len(v) for k, v in got.items() if k not in ("threads", "busy")} == n
    assert not runner.is_busy() and got["busy"][-1] is False
    with pytest.raises(RuntimeError, match="shut down"):
        runner.start(lambda st: None)
