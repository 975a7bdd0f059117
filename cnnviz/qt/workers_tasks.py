"""Long cancellable jobs off the GUI thread: :class:`TaskRunner` (progress, partial results,
pause and cancel through :class:`cnnviz.core.taskstate.TaskState`; the latest task wins).
One of the app's ways to run work, listed in :mod:`cnnviz.qt.workers`, which re-exports it."""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, Signal

log = logging.getLogger("cnnviz.worker")


# ---------------------------------------------------------------------------------------
# Long cancellable jobs
# ---------------------------------------------------------------------------------------
class _TaskRelay(QObject):
    """Signals the task's thread emits; Qt queues them to the runner's (GUI) thread."""

    update = Signal(int)                 # task id: progress or a partial result changed
    done = Signal(int, str, object)      # task id, "ok" | "cancelled" | "error", value


class TaskRunner(QObject):
    """Run a long ``fn(state)`` on a daemon thread with a :class:`~cnnviz.core.taskstate.TaskState`
    (Orange3's ``run(request, state)``): progress, status, partial results, pause and cancel.

    The task writes into its state and never waits for a view. Updates are coalesced: at most
    one "the state changed" notification is queued to the GUI thread, whose slot reads the
    state's latest progress and partial result — a slow repaint never builds a queue. Every
    signal is emitted on the runner's (GUI) thread, so slots may touch widgets.

    One task at a time, the latest wins: :meth:`start` while a task runs cancels it and keeps
    the new one pending (one slot, replacing an older pending one, which never runs) until the
    old thread has ended, so two tasks never use the same model at once. A replaced task ends
    silently. After :meth:`shutdown` (closing the window) nothing more is delivered; a task
    that does not stop in time is abandoned (a daemon thread ends with its computation).

    Signals
    -------
    progress(task id, fraction, status), partial(task id, partial result),
    finished(task id, result), failed(task id, exception), cancelled(task id), busyChanged(bool)
    """

    progress = Signal(int, float, str)
    partial = Signal(int, object)
    finished = Signal(int, object)
    failed = Signal(int, object)
    cancelled = Signal(int)
    busyChanged = Signal(bool)

    def __init__(self, parent: QObject | None = None, name: str = "cnnviz-task"):
        super().__init__(parent)
        self._name = name
        self._relay = _TaskRelay(self)
        self._relay.update.connect(self._on_update, Qt.ConnectionType.QueuedConnection)
        self._relay.done.connect(self._on_done, Qt.ConnectionType.QueuedConnection)
        self._thread: threading.Thread | None = None
        self._state = None
        self._task_id = 0
        self._running_id = 0
        self._notified = threading.Event()   # an update is queued and not yet read
        self._seen_partial = 0
        self._pending: tuple[int, Callable[[Any], Any], Any] | None = None
        self._closed = False

    # -- GUI thread -----------------------------------------------------------------------
    def start(self, fn: Callable[[Any], Any], state=None) -> int:
        """Run ``fn(state)`` (``state``: a fresh :class:`TaskState` unless given, e.g. a
        ``TrainState``); a running task is cancelled first. Returns the new task's id."""
        if self._closed:
            raise RuntimeError("the task runner has been shut down")
        self._task_id += 1
        tid = self._task_id
        if self.is_busy():
            self._state.cancel()
            self._pending = (tid, fn, state)
        else:
            self._launch(tid, fn, state)
        return tid

    def cancel(self) -> None:
        """Cancel the running task (it stops at its next check) and drop a pending one."""
        self._pending = None
        if self._state is not None:
            self._state.cancel()

    def pause(self) -> None:
        if self._state is not None:
            self._state.pause()

    def resume(self) -> None:
        if self._state is not None:
            self._state.resume()

    def is_paused(self) -> bool:
        return self._state is not None and self._state.paused

    def is_busy(self) -> bool:
        return self._thread is not None

    @property
    def state(self):
        """The running task's state (None when idle)."""
        return self._state

    @property
    def current_id(self) -> int:
        return self._task_id

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Join the task's thread (tests, shutdown); its outcome is still delivered by a
        signal. True when no thread is left."""
        t = self._thread
        if t is not None:
            t.join(max(0, timeout_ms) / 1000.0)
            return not t.is_alive()
        return True

    def shutdown(self, timeout_ms: int = 3000) -> bool:
        """Cancel, deliver nothing more and wait up to ``timeout_ms`` for the thread (a daemon:
        if it does not end in time it is abandoned). True when it ended."""
        self._closed = True
        self.cancel()
        ended = self.wait(timeout_ms)
        if ended and self._thread is not None:
            self._thread = None
            self._state = None
            self.busyChanged.emit(False)
        return ended

    def _launch(self, tid: int, fn, state) -> None:
        from cnnviz.core.taskstate import Cancelled, TaskState

        state = state if state is not None else TaskState()
        relay, notified = self._relay, self._notified
        notified.clear()
        self._seen_partial = 0

        def notify(*_args) -> None:  # task thread: one queued notification at a time
            if not notified.is_set():
                notified.set()
                try:
                    relay.update.emit(tid)
                except RuntimeError:  # the runner was deleted (window closed)
                    pass

        def chain(old):
            return notify if old is None else (lambda *a: (old(*a), notify()))

        state.on_progress = chain(state.on_progress)
        state.on_partial = chain(state.on_partial)
        state.on_status = chain(state.on_status)

        def work() -> None:
            try:
                kind, value = "ok", fn(state)
            except Cancelled:
                kind, value = "cancelled", None
            except BaseException as exc:  # noqa: BLE001 - every failure becomes a value for the GUI
                kind, value = "error", exc
                if not hasattr(exc, "cause"):
                    exc.cnnviz_traceback = traceback.format_exc()  # type: ignore[attr-defined]
                    log.error("%s: %s: %s\n%s", self._name, type(exc).__name__, exc,
                              exc.cnnviz_traceback.rstrip())
            try:
                relay.done.emit(tid, kind, value)
            except RuntimeError:  # the runner was deleted while the task ran
                pass

        self._state = state
        self._running_id = tid
        self._thread = threading.Thread(target=work, name=self._name, daemon=True)
        self._thread.start()
        self.busyChanged.emit(True)

    def _report(self, tid: int) -> None:
        """Emit the running task's latest progress and (new) partial result."""
        state = self._state
        if state is None or tid != self._running_id or tid != self._task_id or self._closed:
            return
        self.progress.emit(tid, state.progress, state.status)
        seq, part = state.latest_partial()
        if seq != self._seen_partial and part is not None:
            self._seen_partial = seq
            self.partial.emit(tid, part)

    def _on_update(self, tid: int) -> None:
        if tid == self._running_id:
            self._notified.clear()  # from here on a newer change sends a new notification
        self._report(tid)

    def _on_done(self, tid: int, kind: str, value) -> None:
        if tid != self._running_id or self._thread is None:
            return  # already reported by shutdown
        self._report(tid)  # the last progress and partial result come before the outcome
        t = self._thread
        t.join(1.0)  # it has emitted its outcome: only returning is left
        self._thread = None
        self._state = None
        if tid == self._task_id and not self._closed:
            if kind == "ok":
                self.finished.emit(tid, value)
            elif kind == "cancelled":
                self.cancelled.emit(tid)
            else:
                self.failed.emit(tid, value)
        pending, self._pending = self._pending, None
        if pending is not None and not self._closed:
            self._launch(*pending)
        else:
            self.busyChanged.emit(False)
