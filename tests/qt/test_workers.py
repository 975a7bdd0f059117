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
    assert w.max_pending == 0                          # nothing has waited behind a computation yet
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
    errors, drops = [], []
    w.errorRaised.connect(lambda rid, exc: errors.append(exc))
    w.requestDropped.connect(lambda rid, reason: drops.append((rid, reason)))
    bad = w.submit("bad")
    assert gate.started.wait(5)
    good = w.submit("good")             # the user already moved on
    gate.release.set()
    with qtbot.waitSignal(w.resultReady, timeout=5000, check_params_cb=lambda rid, res: rid == good):
        pass
    assert errors == []
    assert w.dropped == 1 and drops == [(bad, "superseded")]


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


def test_a_flood_of_requests_is_dropped_and_each_drop_is_announced(qtbot, worker):
    gate = Gate()
    w = worker(gate)
    drops: list[tuple[int, str]] = []
    w.requestDropped.connect(lambda rid, reason: drops.append((rid, reason)))
    w.submit("block")
    assert gate.started.wait(5)
    flood = [w.submit(f"frame{i}") for i in range(200)]    # a camera far faster than the pipeline
    assert w.pending == 1                                   # one slot, never a queue
    assert w.max_pending == 1                               # measured: one waited behind the running one
    assert drops == [(rid, "replaced") for rid in flood[:-1]]
    gate.release.set()
    with qtbot.waitSignal(w.resultReady, timeout=5000, check_params_cb=lambda rid, res: rid == flood[-1]):
        pass
    assert gate.calls == ["block", "frame199"]             # the 199 replaced requests never ran
    assert w.dropped == len(drops) == 199 and w.completed == 2


def test_max_pending_stays_zero_when_no_request_waits(qtbot, worker):
    w = worker(Gate())
    for i in range(5):       # each request is done before the next: none ever waits behind another
        with qtbot.waitSignal(w.resultReady, timeout=5000):
            w.submit(f"r{i}")
        qtbot.waitUntil(lambda: not w.is_busy())
    assert w.max_pending == 0 and w.dropped == 0 and w.completed == 5


def test_a_stale_result_is_announced_as_a_drop(qtbot, worker):
    gate = Gate()
    w = worker(gate)
    drops = []
    w.requestDropped.connect(lambda rid, reason: drops.append((rid, reason)))
    old = w.submit("block")
    assert gate.started.wait(5)
    w.invalidate()
    gate.release.set()
    qtbot.waitUntil(lambda: drops == [(old, "stale")], timeout=5000)
    assert w.dropped == 1 and w.completed == 0


def test_run_in_thread_delivers_the_outcome_on_the_gui_thread(qtbot):
    from cnnviz.qt.workers import run_in_thread

    got, where = [], []
    release = threading.Event()

    def slow():
        assert release.wait(5)
        return threading.get_ident()

    t = run_in_thread(slow, lambda v: (got.append(v), where.append(threading.get_ident())), name="cnnviz-test-call")
    assert got == []                     # the call does not block the caller
    release.set()
    qtbot.waitUntil(lambda: got != [], timeout=5000)
    assert got[0] != threading.get_ident() and where == [threading.get_ident()]
    t.join(5)
    errors = []
    t = run_in_thread(lambda: 1 / 0, got.append, errors.append)
    qtbot.waitUntil(lambda: errors != [], timeout=5000)
    assert isinstance(errors[0], ZeroDivisionError) and len(got) == 1
    t.join(5)


def test_run_in_thread_delivers_nothing_once_its_context_is_gone(qtbot):
    from PySide6.QtCore import QObject

    from cnnviz.qt.workers import run_in_thread

    context = QObject()
    release = threading.Event()
    got = []
    t = run_in_thread(lambda: release.wait(5), got.append, name="cnnviz-test-call", context=context)
    context.deleteLater()
    qtbot.waitUntil(lambda: not _alive(context), timeout=5000)
    release.set()
    t.join(5)
    qtbot.wait(50)
    assert got == [] and not t.is_alive()


def _alive(obj) -> bool:
    from shiboken6 import isValid

    return isValid(obj)


def test_the_frame_feed_hands_over_one_frame_at_a_time_always_the_newest(qtbot):
    from cnnviz.core.sources import SyntheticSource
    from cnnviz.qt.workers import FrameFeed

    source = SyntheticSource(64, 48, 200)
    feed = FrameFeed()
    got = []
    feed.frameReady.connect(got.append)
    source.start()
    try:
        feed.start(source)
        qtbot.waitUntil(lambda: len(got) == 1, timeout=5000)
        assert feed.holding()
        made_while_held = source.buffer.latest_id
        qtbot.waitUntil(lambda: source.buffer.latest_id >= made_while_held + 5, timeout=5000)
        assert len(got) == 1                          # held: the capture thread overwrote the slot instead
        feed.release()
        qtbot.waitUntil(lambda: len(got) == 2, timeout=5000)
        assert got[1].id >= made_while_held + 5       # the newest frame, the ones in between were dropped
        feed.halt()
    finally:
        source.stop()
    assert feed.join(2.0) and feed.thread() is None
    feed.release()
    qtbot.wait(50)
    assert len(got) == 2                              # nothing arrives after halt
