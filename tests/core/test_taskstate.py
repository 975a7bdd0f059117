"""The one TaskState every long task shares: progress, partials, pause and cancel."""

from __future__ import annotations

import threading

import pytest

from cnnviz.core.taskstate import Cancelled, TaskState


def _worker(state: TaskState, steps: list[int], n: int = 1000) -> threading.Thread:
    """A task that does one unit of work per ``check()`` and records it."""

    def work() -> None:
        try:
            for i in range(n):
                state.check()
                steps.append(i)
                state.set_progress((i + 1) / n, f"step {i + 1}")
        except Cancelled:
            steps.append(-1)

    return threading.Thread(target=work, daemon=True)


def test_check_holds_a_paused_task_until_resumed():
    state = TaskState()
    state.pause()
    steps: list[int] = []
    t = _worker(state, steps, n=3)
    t.start()
    t.join(0.3)
    assert t.is_alive() and steps == [] and state.paused  # no unit of work while paused
    state.resume()
    t.join(30)
    assert not t.is_alive() and steps == [0, 1, 2]
    assert state.progress == 1.0 and state.status == "step 3"


def test_cancel_wakes_a_paused_task_and_stops_it():
    state = TaskState()
    state.pause()
    steps: list[int] = []
    t = _worker(state, steps)
    t.start()
    t.join(0.2)
    assert t.is_alive() and steps == []
    state.cancel()
    t.join(30)
    assert not t.is_alive() and steps == [-1]  # stopped without a single step, no resume needed
    assert state.cancelled and not state.paused


def test_pause_after_cancel_does_not_hold_the_task():
    state = TaskState()
    state.cancel()
    state.pause()
    with pytest.raises(Cancelled):
        state.check()


def test_wait_while_paused_returns_on_cancel_without_raising():
    state = TaskState()
    state.pause()
    done = threading.Event()
    t = threading.Thread(target=lambda: (state.wait_while_paused(), done.set()), daemon=True)
    t.start()
    t.join(0.2)
    assert not done.is_set()
    state.cancel()
    t.join(30)
    assert done.is_set()


def test_callbacks_see_progress_status_and_partials_in_order():
    seen = []
    state = TaskState(on_progress=lambda f, s: seen.append(("progress", f, s)),
                      on_partial=lambda p: seen.append(("partial", p)),
                      on_status=lambda s: seen.append(("status", s)))
    state.set_status("reading")
    state.set_progress(0.5, "half")
    state.set_partial_result("a")
    state.set_progress(2.0)  # clamped; the status stays
    assert seen == [("status", "reading"), ("progress", 0.5, "half"), ("partial", "a"), ("progress", 1.0, "half")]
    assert state.latest_partial() == (1, "a")
