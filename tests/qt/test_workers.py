"""The one worker pattern: latest request wins, at most one pending, stale results dropped,
signals on the GUI thread, clean shutdown."""

from __future__ import annotations

import threading

import pytest

from cnnviz.core.errors import SpecError
from cnnviz.qt.workers import LatestRequestWorker


class Gate:
    """A compute function that blocks on request 'block' until released, recording calls."""

    def __init__(self):
        self.release = threading.Event()
        self.started = threading.Event()
        self.calls: list[object] = []
        self.threads: set[int] = set()

    def __call__(self, request):
        self.threads.add(threading.get_ident())
        self.calls.append(request)
        if request == "block":
            self.started.set()
            assert self.release.wait(10), "test never released the gate"
        if isinstance(request, Exception):
            raise request
        return f"result:{request}"


@pytest.fixture
def worker(qtbot):
    made = []

    def make(fn):
        w = LatestRequestWorker(fn)
        made.append(w)
        return w

    yield make
    for w in made:
        if isinstance(w._compute, Gate):
            w._compute.release.set()
        w.shutdown()
        assert not w.isRunning()


def test_latest_request_wins_and_at_most_one_waits(qtbot, worker):
    gate = Gate()
    w = worker(gate)
    got: list[tuple[int, object]] = []
    w.resultReady.connect(lambda rid, res: got.append((rid, res)))
    first = w.submit("block")
    assert gate.started.wait(5)
    ids = [w.submit(f"edit{i}") for i in range(20)]   # a fast kernel drag
    assert w.pending == 1 and w.max_pending == 1
    gate.release.set()
    with qtbot.waitSignal(w.resultReady, timeout=5000, check_params_cb=lambda rid, res: rid == ids[-1]):
        pass
    # only the running request and the newest one were computed; 19 replaced ones never ran
    assert gate.calls == ["block", "edit19"]
    assert got == [(first, "result:block"), (ids[-1], "result:edit19")]
    assert (w.submitted, w.completed, w.dropped, w.max_pending) == (21, 2, 19, 1)
    assert w.pending == 0
    qtbot.waitUntil(lambda: not w.is_busy())


def test_compute_runs_off_the_gui_thread_and_signals_arrive_on_it(qtbot, worker):
    gate = Gate()
    w = worker(gate)
    slot_threads = []
    w.resultReady.connect(lambda rid, res: slot_threads.append(threading.get_ident()))
    with qtbot.waitSignal(w.resultReady, timeout=5000):
        w.submit("x")
    assert threading.get_ident() not in gate.threads
    assert slot_threads == [threading.get_ident()]


def test_invalidated_results_are_dropped(qtbot, worker):
    gate = Gate()
    w = worker(gate)
    got = []
    w.resultReady.connect(lambda rid, res: got.append(res))
    w.submit("block")
    assert gate.started.wait(5)
    w.invalidate()                      # e.g. a new picture: the running result is stale
    newer = w.submit("fresh")
    gate.release.set()
    with qtbot.waitSignal(w.resultReady, timeout=5000, check_params_cb=lambda rid, res: rid == newer):
        pass
    assert got == ["result:fresh"]
    assert w.dropped == 1 and w.completed == 1


def test_error_of_the_newest_request_is_emitted_with_the_exception(qtbot, worker):
    w = worker(Gate())
    err = SpecError("padding 'same' needs stride 1", "set stride to 1")
    with qtbot.waitSignal(w.errorRaised, timeout=5000) as blocker:
        rid = w.submit(err)
    assert blocker.args[0] == rid
    assert blocker.args[1] is err
    assert w.errors == 1 and w.completed == 0


def test_error_of_a_superseded_request_is_dropped(qtbot, worker):
    gate = Gate()

    def compute(req):
        if req == "bad":
            gate.started.set()
            assert gate.release.wait(10)
            raise ValueError("old failure")
        return req

    w = worker(compute)
    errors = []
    w.errorRaised.connect(lambda rid, exc: errors.append(exc))
    w.submit("bad")
    assert gate.started.wait(5)
    good = w.submit("good")             # the user already moved on
    gate.release.set()
    with qtbot.waitSignal(w.resultReady, timeout=5000, check_params_cb=lambda rid, res: rid == good):
        pass
    assert errors == []
    assert w.dropped == 1


def test_internal_errors_keep_their_traceback(qtbot, worker):
    def compute(req):
        return 1 / 0

    w = worker(compute)
    with qtbot.waitSignal(w.errorRaised, timeout=5000) as blocker:
        w.submit("x")
    exc = blocker.args[1]
    assert isinstance(exc, ZeroDivisionError)
    assert "ZeroDivisionError" in exc.cnnviz_traceback


def test_shutdown_joins_the_thread_and_is_idempotent(qtbot, worker):
    gate = Gate()
    w = worker(gate)
    w.submit("block")
    assert gate.started.wait(5)
    w.submit("waiting")
    threading.Timer(0.05, gate.release.set).start()
    assert w.shutdown(timeout_ms=5000) is True     # waits for the running computation
    assert not w.isRunning()
    assert gate.calls == ["block"]                  # the pending one was dropped
    assert w.shutdown() is True
    with pytest.raises(RuntimeError):
        w.submit("late")


def test_results_arriving_after_shutdown_are_not_emitted(qtbot, worker):
    w = worker(lambda r: r)
    got = []
    w.resultReady.connect(lambda rid, res: got.append(res))
    w.submit("a")
    w.shutdown()          # joins the thread: its result is at most queued, not delivered
    qtbot.wait(50)        # let any queued delivery run
    assert got == []
    assert w.completed == 0
