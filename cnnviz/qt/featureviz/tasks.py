"""The window's side of long work: one background thread at a time, a :class:`TaskState` per
task, and a GUI-thread timer that reads the task's latest snapshot.

:class:`TaskRunner` runs ``fn(state)`` on a daemon Python thread (as
:mod:`cnnviz.qt.workers` does, so closing the window never waits on an uninterruptible
forward pass). The worker never emits a signal and never touches a widget: it writes its
progress and partial results into the :class:`~cnnviz.core.taskstate.TaskState` and its outcome
into a slot; a ``QTimer`` on the GUI thread polls both while a task runs and emits
``progress``/``partial``/``finished``/``failed``/``cancelled`` there. The loop never waits for a
view.

One task at a time, the latest wins: :meth:`TaskRunner.start` while a task runs cancels it and
keeps the new one pending (one slot) until the old thread has ended, so two tasks never use
the model at once (their hooks would see each other's forward passes).
"""

from __future__ import annotations

import threading
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, QTimer, Signal

from cnnviz.core.taskstate import Cancelled, TaskState


class TaskRunner(QObject):
    progress = Signal(int, float, str)   # task id, fraction, status
    partial = Signal(int, object)        # task id, partial result
    finished = Signal(int, object)       # task id, result
    failed = Signal(int, object)         # task id, exception
    cancelled = Signal(int)              # task id
    busyChanged = Signal(bool)

    def __init__(self, parent: QObject | None = None, name: str = "cnnviz-featviz", poll_ms: int = 80):
        super().__init__(parent)
        self._name = name
        self._timer = QTimer(self)
        self._timer.setObjectName(f"{name}-poll")
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self._poll)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._state: TaskState | None = None
        self._task_id = 0
        self._outcome: tuple[str, Any] | None = None
        self._pending: tuple[int, Callable[[TaskState], Any]] | None = None
        self._seen_partial = 0
        self._closed = False

    # -- GUI thread -----------------------------------------------------------------------
    def start(self, fn: Callable[[TaskState], Any]) -> int:
        """Run ``fn(state)``; a running task is cancelled first. Returns the new task's id."""
        if self._closed:
            raise RuntimeError("the task runner has been shut down")
        self._task_id += 1
        tid = self._task_id
        if self.is_busy():
            self._state.cancel()
            self._pending = (tid, fn)  # replaces an older pending task, which never runs
        else:
            self._launch(tid, fn)
        return tid

    def cancel(self) -> None:
        self._pending = None
        if self._state is not None:
            self._state.cancel()

    def is_busy(self) -> bool:
        return self._thread is not None

    @property
    def state(self) -> TaskState | None:
        return self._state

    @property
    def current_id(self) -> int:
        return self._task_id

    def shutdown(self, timeout_ms: int = 3000) -> bool:
        """Cancel, stop polling and wait up to ``timeout_ms`` for the thread (a daemon: if it
        does not end in time it is abandoned, and ends with its computation or the process)."""
        self._closed = True
        self.cancel()
        self._timer.stop()
        t = self._thread
        if t is not None:
            t.join(max(0, timeout_ms) / 1000.0)
            return not t.is_alive()
        return True

    def _launch(self, tid: int, fn) -> None:
        state = TaskState()
        self._state = state
        self._outcome = None
        self._seen_partial = 0

        def work():
            try:
                out = ("ok", fn(state))
            except Cancelled:
                out = ("cancelled", None)
            except BaseException as exc:  # noqa: BLE001 - every failure becomes a value for the GUI
                if not hasattr(exc, "cause"):
                    exc.cnnviz_traceback = traceback.format_exc()  # type: ignore[attr-defined]
                out = ("error", exc)
            with self._lock:
                self._outcome = out

        self._running_id = tid
        self._thread = threading.Thread(target=work, name=self._name, daemon=True)
        self._thread.start()
        self._timer.start()
        self.busyChanged.emit(True)

    def _poll(self) -> None:
        state = self._state
        if state is None:
            return
        tid = self._running_id
        stale = tid != self._task_id
        with self._lock:
            outcome = self._outcome
        if not stale:
            self.progress.emit(tid, state.progress, state.status)
            seq, part = state.latest_partial()
            if seq != self._seen_partial and part is not None:
                self._seen_partial = seq
                self.partial.emit(tid, part)
        if outcome is None:
            return
        self._thread = None
        self._state = None
        kind, value = outcome
        if not stale and not self._closed:
            if kind == "ok":
                self.finished.emit(tid, value)
            elif kind == "cancelled":
                self.cancelled.emit(tid)
            else:
                self.failed.emit(tid, value)
        # a task replaced by a newer one ends silently: the newer one speaks for both
        pending, self._pending = self._pending, None
        if pending is not None and not self._closed:
            self._launch(*pending)
        else:
            self._timer.stop()
            self.busyChanged.emit(False)
