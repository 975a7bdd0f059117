"""Work off the GUI thread, four ways and no others:

* :class:`LatestRequestWorker` — every computation a window starts (below);
* :class:`TaskRunner` — a long job that reports progress and partial results and can be
  paused or cancelled (training, feature visualization, sweeps, attacks):
  ``fn(state: TaskState)``, one at a time, the latest wins;
* :func:`run_in_thread` — a one-off call that may block (open or list cameras, probe GPUs);
* :class:`FrameFeed` — a live source's frames, the newest one at a time.

The one worker pattern: a single background thread where the latest request wins.

Every computation the window starts (a kernel edit, a stride change, a new webcam frame)
goes through a :class:`LatestRequestWorker`:

* one daemon Python thread runs a pure ``compute(request) -> result`` function;
* there is at most **one pending** request: submitting while one is waiting replaces it
  (the replaced one is never computed) — a kernel drag that fires dozens of edits a second
  never builds a queue;
* every result carries the id of its request; a result whose request was invalidated
  (:meth:`LatestRequestWorker.invalidate`) or that is older than one already delivered is
  dropped, and an error for a request that has since been superseded is dropped too;
* every drop is announced by ``requestDropped(request id, reason)`` — callers that track
  their requests (the live frame loop) learn it from the worker, not from signal order;
* results and errors leave the worker through Qt signals that are always emitted on the
  thread that owns the worker (the GUI thread), so slots may touch widgets; the worker
  itself never touches a widget.

Why the thread is a *daemon Python thread* and not a ``QThread``: a computation cannot be
interrupted (``torch.load`` of a big file, a model's forward), so closing the window may have
to abandon one (:meth:`LatestRequestWorker.shutdown` with a short timeout) rather than keep
the user waiting. A ``QThread`` object destroyed while its thread still runs aborts the
process ("QThread: Destroyed while thread is still running"); a daemon thread simply ends
with the process, and its late result is dropped. Emitting a Qt signal from a Python thread
is fine: the signal's owner lives on the GUI thread, so delivery is queued there.

Why a finished result is shown even when a newer request is already waiting: while the user
drags a kernel cell there is always a newer request, and dropping every finished result would
freeze the picture until the drag stops. Showing each finished result and computing only the
newest pending one keeps the display at most one computation behind the hand.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, Signal, Slot

from .workers_tasks import (  # noqa: E402,F401 - moved to workers_tasks.py, importable from here
    _TaskRelay,
    TaskRunner,
)

__all__ = ["FrameFeed", "LatestRequestWorker", "TaskRunner", "run_in_thread"]

log = logging.getLogger("cnnviz.worker")


class _Thread:
    """The worker loop on a daemon Python thread: wait for the pending slot, compute, hand
    the outcome back. ``isRunning``/``wait``/``objectName`` mirror ``QThread``'s."""

    def __init__(self, owner: "LatestRequestWorker", name: str):
        self._owner = owner
        self._thread = threading.Thread(target=self.run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def isRunning(self) -> bool:  # noqa: N802 - QThread's name
        return self._thread.is_alive()

    def wait(self, timeout_ms: int) -> bool:
        self._thread.join(max(0, timeout_ms) / 1000.0)
        return not self._thread.is_alive()

    def objectName(self) -> str:  # noqa: N802
        return self._thread.name

    def run(self) -> None:  # runs on the worker thread
        owner = self._owner
        cond = owner._cond
        while True:
            with cond:
                while owner._pending is None and not owner._stopping:
                    cond.wait()
                if owner._stopping:
                    return
                rid, request = owner._pending
                owner._pending = None
                owner._waiting -= 1
                owner._running_id = rid
            t0 = time.perf_counter()
            try:
                result = owner._compute(request)
                error = None
            except BaseException as exc:  # noqa: BLE001 - any failure becomes a value for the GUI
                result, error = None, exc
                if not hasattr(exc, "cause"):
                    # keep the traceback text: the GUI shows it for internal errors; and log
                    # it here, once, for every worker, whatever its window does with it
                    exc.cnnviz_traceback = traceback.format_exc()  # type: ignore[attr-defined]
                    log.error("%s: %s: %s\n%s", self.objectName(), type(exc).__name__, exc,
                              exc.cnnviz_traceback.rstrip())
            elapsed_ms = (time.perf_counter() - t0) * 1e3
            with cond:
                owner._running_id = None
                abandoned = owner._stopping
            if abandoned and owner._closed:
                return  # shut down while computing: nobody is waiting for this any more
            # A signal of the GUI-thread owner, emitted here, is queued to the GUI thread.
            try:
                owner._finished.emit(rid, result, error, elapsed_ms)
            except RuntimeError:  # the owner was deleted (window closed) while computing
                return


class LatestRequestWorker(QObject):
    """Run ``compute(request)`` on one background thread; the latest request wins.

    Parameters
    ----------
    compute:
        A pure function of the request (called on the worker thread, never on the GUI
        thread). It must not touch widgets.
    parent:
        Optional QObject parent (the worker must live on the GUI thread).
    name:
        Thread name, shown in debuggers.

    Signals
    -------
    resultReady(int request_id, object result)
        A result that is not stale, emitted on the GUI thread.
    errorRaised(int request_id, object exception)
        ``compute`` raised for the newest request; emitted on the GUI thread.
    busyChanged(bool)
        True when the worker starts on a request after being idle, False when it has
        nothing left to do.
    requestDropped(int request_id, str reason)
        A request that will never produce a result or an error: "replaced" (a newer one
        took its pending slot), "invalidated", "stale" (its result came after a newer one
        or after :meth:`invalidate`), "superseded" (its error, after a newer request) or
        "shutdown". Emitted on the GUI thread.

    Counters (read on the GUI thread)
    ---------------------------------
    submitted, completed (results delivered), dropped (requests dropped, one per
    ``requestDropped``), errors, max_pending (the most requests ever seen waiting behind a
    running computation, counted from the queue itself), last_compute_ms.
    """

    resultReady = Signal(int, object)
    errorRaised = Signal(int, object)
    busyChanged = Signal(bool)
    requestDropped = Signal(int, str)
    _finished = Signal(int, object, object, float)

    def __init__(self, compute: Callable[[Any], Any], parent: QObject | None = None, name: str = "cnnviz-worker"):
        super().__init__(parent)
        self._compute = compute
        self._cond = threading.Condition()
        self._pending: tuple[int, Any] | None = None
        self._waiting = 0             # requests submitted, not yet taken by the thread nor dropped
        self._running_id: int | None = None
        self._stopping = False
        self._closed = False
        self._next_id = 0
        self._latest_id = 0
        self._valid_from = 0          # results of requests with id < this are stale
        self._last_delivered = 0
        self._busy = False
        self.submitted = 0
        self.completed = 0
        self.dropped = 0
        self.errors = 0
        self.max_pending = 0
        self.last_compute_ms = 0.0
        self._finished.connect(self._on_finished, Qt.ConnectionType.QueuedConnection)
        self._thread = _Thread(self, name)
        self._thread.start()

    # -- public API (GUI thread) ----------------------------------------------------------
    def submit(self, request: Any) -> int:
        """Queue ``request`` in the single pending slot and return its id (≥ 1).

        A request already waiting there is replaced and counted as dropped.
        """
        if self._closed:
            raise RuntimeError("the worker has been shut down")
        self._next_id += 1
        rid = self._next_id
        with self._cond:
            replaced = self._take_pending()
            self._pending = (rid, request)
            self._waiting += 1
            self._latest_id = rid
            self.submitted += 1
            if self._running_id is not None:
                self.max_pending = max(self.max_pending, self._waiting)
            self._cond.notify()
        self._dropped(replaced, "replaced")
        self._set_busy(True)
        return rid

    def invalidate(self) -> None:
        """Make every result of a request submitted so far stale (and drop the pending one).

        Use when results computed for the old state must never be shown (for example when
        the window's input changes and the next request will follow at once).
        """
        with self._cond:
            dropped = self._take_pending()
            self._valid_from = self._next_id + 1
            running = self._running_id is not None
        self._dropped(dropped, "invalidated")
        if not running:
            self._set_busy(False)

    @property
    def pending(self) -> int:
        """Requests waiting to be computed (0 or 1)."""
        with self._cond:
            return self._waiting

    @property
    def latest_id(self) -> int:
        """Id of the newest submitted request (0 before the first)."""
        return self._latest_id

    @property
    def last_delivered_id(self) -> int:
        return self._last_delivered

    def is_busy(self) -> bool:
        """True while a request is waiting or being computed."""
        return self._busy

    def isRunning(self) -> bool:  # noqa: N802 - mirrors QThread.isRunning for tests and callers
        return self._thread.isRunning()

    def counters(self) -> dict[str, float]:
        return {"submitted": self.submitted, "completed": self.completed, "dropped": self.dropped,
                "errors": self.errors, "max_pending": self.max_pending, "pending": self.pending,
                "last_compute_ms": self.last_compute_ms}

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Stop the thread and join it; the pending request is dropped. Idempotent.

        Returns False if the current computation did not finish within ``timeout_ms``: it
        is abandoned (its result is dropped) and the thread ends as soon as it returns, or
        with the process — never blocking the exit.
        """
        if self._closed:
            return not self._thread.isRunning()
        self._closed = True
        with self._cond:
            dropped = self._take_pending()
            self._stopping = True
            self._cond.notify_all()
        self._dropped(dropped, "shutdown")
        ok = self._thread.wait(timeout_ms)
        self._set_busy(False)
        return bool(ok)

    # -- GUI-thread side of a finished computation ----------------------------------------
    @Slot(int, object, object, float)
    def _on_finished(self, rid: int, result: Any, error: BaseException | None, elapsed_ms: float) -> None:
        with self._cond:
            idle = self._pending is None and self._running_id is None
        if idle:
            self._set_busy(False)
        if self._closed:
            return
        self.last_compute_ms = elapsed_ms
        stale = rid < self._valid_from or rid <= self._last_delivered
        if error is not None:
            # An error for a request the user has already moved past is noise: drop it.
            if stale or rid != self._latest_id:
                self._dropped(rid, "superseded")
                return
            self.errors += 1
            self._last_delivered = rid
            self.errorRaised.emit(rid, error)
            return
        if stale:
            self._dropped(rid, "stale")
            return
        self._last_delivered = rid
        self.completed += 1
        self.resultReady.emit(rid, result)

    def _take_pending(self) -> int | None:
        """Empty the pending slot (the lock held); the id of the request it held."""
        if self._pending is None:
            return None
        rid = self._pending[0]
        self._pending = None
        self._waiting -= 1
        return rid

    def _dropped(self, rid: int | None, reason: str) -> None:
        if rid is not None:
            self.dropped += 1
            self.requestDropped.emit(rid, reason)

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busyChanged.emit(busy)


# ---------------------------------------------------------------------------------------
# One-off background calls
# ---------------------------------------------------------------------------------------
class _CallRelay(QObject):
    """Carries one background call's outcome to the thread that made the call (the GUI)."""

    done = Signal(object)
    failed = Signal(object)


_RELAYS: set[_CallRelay] = set()   # alive until their call is delivered


def run_in_thread(fn: Callable[[], Any], on_done: Callable[[Any], None],
                  on_error: Callable[[BaseException], None] | None = None, *,
                  name: str = "cnnviz-call", context: QObject | None = None) -> threading.Thread:
    """Run ``fn()`` once on a daemon thread; ``on_done(result)`` or ``on_error(exception)``
    then run on the calling (GUI) thread.

    For one-off calls that may block (open or list cameras, probe the GPUs): no queue, no
    cancellation — a caller that no longer wants the outcome ignores it (or passes
    ``context``: when that QObject is destroyed first, nothing is delivered). The thread is
    returned so a caller can join it when closing. Without ``on_error`` an exception is
    logged (with its traceback) and dropped.
    """
    relay = _CallRelay(context)
    _RELAYS.add(relay)

    def deliver(callback: Callable | None, value: Any) -> None:
        _RELAYS.discard(relay)
        relay.deleteLater()
        if callback is not None:
            callback(value)

    relay.done.connect(lambda value: deliver(on_done, value), Qt.ConnectionType.QueuedConnection)
    relay.failed.connect(lambda exc: deliver(on_error, exc), Qt.ConnectionType.QueuedConnection)

    def run() -> None:
        try:
            value, failed = fn(), False
        except BaseException as exc:  # noqa: BLE001 - the outcome goes to the GUI thread
            value, failed = exc, True
            if on_error is None:
                log.error("%s: %s: %s\n%s", name, type(exc).__name__, exc, traceback.format_exc().rstrip())
        try:
            (relay.failed if failed else relay.done).emit(value)
        except RuntimeError:  # the context (and the relay with it) was destroyed meanwhile
            _RELAYS.discard(relay)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


# ---------------------------------------------------------------------------------------
# The frame feed of live sources
# ---------------------------------------------------------------------------------------
class _FeedThread(threading.Thread):
    """Takes the newest frame from a source's one-slot buffer whenever the feed is released.

    While the gate is clear (a frame is out and not yet shown) the capture thread keeps
    overwriting the one-slot buffer, so nothing queues up and the next frame taken is the
    newest. The waits have timeouts only so that a lost wake-up cannot hang a join.
    """

    def __init__(self, feed: "FrameFeed", source: Any, gate: threading.Event, gen: int):
        super().__init__(name=f"cnnviz-live-consumer {source.name}", daemon=True)
        self._feed = feed
        self._buffer = source.buffer
        self._gate = gate
        self._gen = gen
        self._halt = threading.Event()

    def run(self) -> None:
        buffer, gate, halt, feed, gen = self._buffer, self._gate, self._halt, self._feed, self._gen
        while not halt.is_set():
            if not gate.wait(0.5):
                continue
            if halt.is_set():
                break
            frame = buffer.get(timeout=0.5)
            if frame is None:
                if buffer.closed:    # the source stopped by itself: nothing more will come
                    if not halt.is_set():
                        feed._emit(feed._drained, gen)
                    break
                continue
            gate.clear()
            feed._emit(feed._frame, gen, frame)

    def halt(self) -> None:
        self._halt.set()
        self._gate.set()  # wake a wait on the gate; the buffer is closed by source.stop()


class FrameFeed(QObject):
    """Hands a live source's frames to the GUI thread one at a time, always the newest.

    The one frame feed of the windows: the capture thread (owned by the core source) never
    waits; the feed takes a frame only after the window has :meth:`release`\\ d the previous
    one, so a slow pipeline makes the source's one-slot buffer drop frames instead of a
    queue growing anywhere. News from a source that was stopped or replaced is dropped.

    Signals (GUI thread)
    --------------------
    frameReady(Frame)
        The next frame; the feed holds until :meth:`release`.
    drained()
        The source ended by itself and its last frame has been handed over.
    """

    frameReady = Signal(object)
    drained = Signal()
    _frame = Signal(int, object)
    _drained = Signal(int)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._gate = threading.Event()
        self._gate.set()
        self._thread: _FeedThread | None = None
        self._source: Any = None
        self._gen = 0
        q = Qt.ConnectionType.QueuedConnection
        self._frame.connect(self._on_frame, q)
        self._drained.connect(self._on_drained, q)

    def start(self, source: Any) -> None:
        """Feed the frames of ``source`` (a started :class:`~cnnviz.core.sources.FrameSource`)."""
        self.halt()
        self.join(0.0)
        self._gen += 1
        self._source = source
        self._gate.set()
        self._thread = _FeedThread(self, source, self._gate, self._gen)
        self._thread.start()

    def release(self) -> None:
        """The window is ready for the next frame."""
        self._gate.set()

    def holding(self) -> bool:
        """True while a frame handed out has not been released."""
        return not self._gate.is_set()

    def take_now(self) -> Any:
        """The frame waiting in the buffer right now (None if none): for a window that is
        ready while the feed holds, so the next computation starts without a thread hop."""
        return self._source.buffer.get(timeout=0) if self._source is not None else None

    def halt(self) -> None:
        """Stop feeding (news already on its way is dropped); call :meth:`join` after the
        source has stopped (its closed buffer wakes the feed's thread)."""
        self._gen += 1
        if self._thread is not None:
            self._thread.halt()

    def join(self, timeout: float) -> bool:
        t, self._thread = self._thread, None
        self._source = None
        self._gate.set()
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
            if t.is_alive():
                self._thread = t
                return False
        return True

    def thread(self) -> threading.Thread | None:
        return self._thread if self._thread is not None and self._thread.is_alive() else None

    def _emit(self, signal: Any, *args: Any) -> None:  # feed thread
        try:
            signal.emit(*args)
        except RuntimeError:  # the feed was deleted with its window
            pass

    @Slot(int, object)
    def _on_frame(self, gen: int, frame: Any) -> None:
        if gen == self._gen:
            self.frameReady.emit(frame)

    @Slot(int)
    def _on_drained(self, gen: int) -> None:
        if gen == self._gen:
            self.drained.emit()
