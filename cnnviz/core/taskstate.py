"""Long work that reports while it runs: Orange3's ``run(request, state: TaskState)`` pattern.

A long core function (feature visualization, a dataset sweep, an attack) takes one small
:class:`TaskState`. Through it the function reports its progress, a status line and its latest
partial result, and learns that it was paused or cancelled (:meth:`TaskState.check` blocks
while the task is paused and raises :class:`Cancelled` once it is cancelled). The function never
waits for a view: it overwrites one snapshot, and a view reads the latest snapshot when it
repaints (a window polls it with a timer; the CLI prints from the optional callbacks).
Thread-safe: the worker writes, any thread reads, pauses, resumes or cancels.

Training (:mod:`cnnviz.core.train`) uses a subclass that also keeps the histories its views
draw (loss curve, kernel movie).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

__all__ = ["Cancelled", "TaskState"]


class Cancelled(Exception):
    """The task was cancelled through its :class:`TaskState`; nothing it would have written
    (a cache entry, a result file) exists."""


class TaskState:
    """Progress, status, the latest partial result, pausing and cancellation of one task.

    Parameters
    ----------
    on_progress:
        Optional ``on_progress(fraction, status)``, called on the worker's thread by
        :meth:`set_progress` (keep it cheap: a signal emit, a progress-bar print).
    on_partial:
        Optional ``on_partial(partial)``, called on the worker's thread after each partial result.
    on_status:
        Optional ``on_status(status)``, called on the worker's thread by :meth:`set_status`
        (a status that comes with :meth:`set_progress` goes to ``on_progress`` only).

    Notes
    -----
    The callbacks are plain attributes (``state.on_partial = ...`` works after construction).
    """

    def __init__(self, on_progress: Callable[[float, str], None] | None = None,
                 on_partial: Callable[[Any], None] | None = None,
                 on_status: Callable[[str], None] | None = None):
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._running = threading.Event()  # cleared while paused
        self._running.set()
        self._progress = 0.0
        self._status = ""
        self._partial: Any = None
        self._partial_seq = 0
        self.on_progress = on_progress
        self.on_partial = on_partial
        self.on_status = on_status
        self.started = time.perf_counter()

    # -- the task's side -------------------------------------------------------------------
    def set_progress(self, fraction: float, status: str | None = None) -> None:
        with self._lock:
            self._progress = min(max(float(fraction), 0.0), 1.0)
            if status is not None:
                self._status = status
            progress, status_now = self._progress, self._status
        if self.on_progress is not None:
            self.on_progress(progress, status_now)

    def set_status(self, status: str) -> None:
        with self._lock:
            self._status = str(status)
        if self.on_status is not None:
            self.on_status(str(status))

    def set_partial_result(self, partial: Any) -> None:
        with self._lock:
            self._partial = partial
            self._partial_seq += 1
        if self.on_partial is not None:
            self.on_partial(partial)

    def check(self) -> None:
        """The task's checkpoint between two units of work: wait while it is paused, then
        raise :class:`Cancelled` if :meth:`cancel` was called (also while paused)."""
        self.wait_while_paused()
        if self._cancel.is_set():
            raise Cancelled("cancelled")

    def wait_while_paused(self) -> None:
        """Block while the task is paused; return at once when it is resumed or cancelled
        (cancelling never waits for a resume). Does not raise: :meth:`check` does."""
        while not self._running.wait(0.05):
            if self._cancel.is_set():
                return

    # -- anyone's side ---------------------------------------------------------------------
    def cancel(self) -> None:
        """Ask the task to stop at its next :meth:`check` (a paused task wakes up to stop)."""
        self._cancel.set()
        self._running.set()

    def pause(self) -> None:
        """Hold the task at its next :meth:`check` until :meth:`resume` or :meth:`cancel`."""
        if not self._cancel.is_set():
            self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def progress(self) -> float:
        with self._lock:
            return self._progress

    @property
    def status(self) -> str:
        with self._lock:
            return self._status

    def latest_partial(self) -> tuple[int, Any]:
        """``(sequence number, partial result)``: the number grows with every new partial, so
        a view repaints only when it changed."""
        with self._lock:
            return self._partial_seq, self._partial

    def eta_s(self) -> float | None:
        """Seconds left, extrapolated from the progress so far (``None`` before any)."""
        p = self.progress
        if p <= 0.0:
            return None
        elapsed = time.perf_counter() - self.started
        return max(0.0, elapsed * (1.0 - p) / p)


def null_state() -> TaskState:
    """A state nobody watches (for calls from tests and scripts)."""
    return TaskState()
