"""Loading models for the inspector: the loader worker, the trust dialog, cancel, and errors
that say what went wrong and what to do.

The loader is a :class:`~cnnviz.qt.workers.LatestRequestWorker` running
:func:`cnnviz.core.inspect_load.run_load`: it imports torch lazily in its own thread, so the
window stays responsive while PyTorch loads or weights download. A new choice cancels the
download of the previous one; the model on screen stays until the new one has loaded.
"""

from __future__ import annotations

import dataclasses
import html
import sys
import threading
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QDialog, QMessageBox

from cnnviz.core import inspect_load
from cnnviz.core.errors import CnnvizError, TrustRequired
from cnnviz.core.inspect_load import LoadOutcome, LoadRequest
from cnnviz.qt.workers import LatestRequestWorker

from .trust_dialog import TrustDialog

if TYPE_CHECKING:
    from .window import InspectorWindow

__all__ = ["ModelLoading", "error_text"]


def error_text(err: BaseException) -> str:
    """One line for the status bar: the cause and the fix, or the exception's type and text."""
    if isinstance(err, CnnvizError):
        return err.cause + (f" — fix: {err.fix}" if err.fix else "")
    return f"{type(err).__name__}: {err}"


class ModelLoading(QObject):
    """The window's model loads (one at a time, the newest wins).

    Signals
    -------
    loaded(object)
        A :class:`~cnnviz.core.inspect_load.LoadOutcome` to install.
    failed(str)
        Loading failed, was refused or cancelled (the message shown).
    """

    loaded = Signal(object)
    failed = Signal(str)
    # emitted on the loader thread (LoadRequest.on_stage / on_bytes), queued to the GUI thread
    _stageFromLoader = Signal(str)
    _bytesFromLoader = Signal(object, object)

    def __init__(self, window: InspectorWindow):
        super().__init__(window)
        self._window = window
        self._requests: dict[int, LoadRequest] = {}
        self.current: LoadRequest | None = None
        self.last_loaded: LoadRequest | None = None
        self.active = False
        q = Qt.ConnectionType.QueuedConnection
        self._stageFromLoader.connect(self._on_stage, q)
        self._bytesFromLoader.connect(self._on_bytes, q)
        self.worker = self._new_worker()

    def _new_worker(self) -> LatestRequestWorker:
        # the module attribute, looked up now: tests replace run_load
        w = LatestRequestWorker(inspect_load.run_load, self, name="cnnviz-model-loader")
        w.resultReady.connect(self._on_loaded)
        w.errorRaised.connect(self._on_error)
        return w

    def request(self, spec: str, weights: str | None, trust: bool | None, *, ctor_kwargs: str | None,
                labels: str | None, device: str, dtype: str) -> LoadRequest:
        return LoadRequest(
            spec=str(spec), weights=None if weights is None else str(weights),
            ctor_kwargs=ctor_kwargs, labels_path=None if labels is None else str(labels),
            trust=bool(trust), ask=trust is None, trust_store=self._window.trust_store,
            device=device, dtype=dtype, on_stage=self._stageFromLoader.emit, on_bytes=self._bytesFromLoader.emit,
        )

    def submit(self, req: LoadRequest) -> int:
        if self.current is not None:
            self.current.cancel.set()  # a new choice wins over a running download
        self.current = req
        first = "Loading PyTorch…" if "torch" not in sys.modules else f"Loading {req.spec}…"  # before the thread imports it
        rid = self.worker.submit(req)
        self._requests[rid] = req
        self._set_active(True, first)
        if self._window.state.model is None:
            self._window.predictions.set_predictions([], first)
        return rid

    def cancel(self) -> None:
        """Cancel a download in progress (nothing is left in the cache)."""
        if self.current is not None:
            self.current.cancel.set()
            self._window.status.loading.setText("Cancelling…")

    def shutdown(self, wait_ms: int) -> None:
        """Cancel any download and stop the loader thread (a load that outlives ``wait_ms``
        is abandoned: its result is dropped)."""
        if self.current is not None:
            self.current.cancel.set()
        self.worker.shutdown(wait_ms)
        self._requests.clear()
        self._set_active(False)

    def restart(self) -> LoadRequest | None:
        """A fresh loader after :meth:`shutdown`; returns the load to repeat (the model that
        was on screen, else the one that was loading), with a fresh cancel flag."""
        again = self.current or self.last_loaded
        self.current = None
        old, self.worker = self.worker, self._new_worker()
        old.deleteLater()
        if again is None:
            return None
        # Hashes accepted in the trust dialog still pin the exact bytes; a blanket ``trust=True``
        # is not carried over (the file may have changed since): such a file asks again.
        return dataclasses.replace(again, trust=False, ask=again.ask or again.trust, cancel=threading.Event())

    # -- loader thread → GUI thread ---------------------------------------------------------
    def _set_active(self, on: bool, text: str = "") -> None:
        self.active = on
        self._window.status.set_loading(on, text)

    def _on_stage(self, text: str) -> None:
        if self.active:
            self._window.status.loading.setText(text)
            if self._window.state.model is None:
                self._window.predictions.set_predictions([], text)

    def _on_bytes(self, done: Any, total: Any) -> None:
        if self.active:
            self._window.status.show_download(done, total)

    def _on_loaded(self, rid: int, out: LoadOutcome) -> None:
        self._requests.pop(rid, None)
        if self._window.is_closing():
            return
        self._set_active(False)
        self.current = None
        self.last_loaded = out.request
        self.loaded.emit(out)

    def _on_error(self, rid: int, exc: BaseException) -> None:
        req = self._requests.pop(rid, None)
        if self._window.is_closing():
            return
        self._set_active(False)
        self.current = None
        from cnnviz.core.weights_download import DownloadCancelled

        w = self._window
        if isinstance(exc, TrustRequired) and req is not None and req.ask:
            accepted, remember = self._ask_trust(exc)
            sha = getattr(exc, "sha256", None)
            if accepted:
                if remember and sha and w.trust_store is not None:
                    try:
                        w.trust_store.trust_hash(sha, getattr(exc, "path", None))
                    except (CnnvizError, ValueError) as err:
                        w.show_error(err, "Could not remember the trusted file")
                self.submit(req.with_trusted(sha))
                return
            name = Path(str(getattr(exc, "path", req.spec))).name
            self._fail(f"Not loaded: you did not trust {name}, so nothing from it ran. The previous model stays.",
                       error=True)
            return
        if isinstance(exc, DownloadCancelled):
            self._fail("Download cancelled; nothing was saved and the previous model stays.", error=False)
            return
        self._report(exc, req)

    def _fail(self, msg: str, error: bool) -> None:
        self._window.show_message(msg, error=error)
        self.failed.emit(msg)

    def _ask_trust(self, err: BaseException) -> tuple[bool, bool]:
        """Show the trust dialog (modal). Returns ``(trusted, remember)``."""
        dlg = TrustDialog(err, self._window)
        try:
            ok = dlg.exec() == QDialog.DialogCode.Accepted
            return ok, dlg.remember
        finally:
            dlg.deleteLater()

    def _report(self, exc: BaseException, req: LoadRequest | None) -> None:
        w = self._window
        what = req.spec if req is not None else "the model"
        text = error_text(exc)
        msg = f"Could not load {what}: {text}"
        has_model = w.state.model is not None
        w.show_message(msg + (" (the previous model stays)" if has_model else ""), error=True)
        self.failed.emit(msg)
        if isinstance(exc, CnnvizError):
            body = f"<p><b>What went wrong:</b> {html.escape(exc.cause)}</p>"
            if exc.fix:
                body += f"<p><b>How to fix it:</b> {html.escape(exc.fix)}</p>"
            details = None
        else:
            body = (f"<p><b>What went wrong:</b> {html.escape(text)}</p><p>This looks like a bug in cnnviz or "
                    "in the model's code; the details below help to report it.</p>")
            details = getattr(exc, "cnnviz_traceback", None) or "".join(
                traceback.format_exception(type(exc), exc, exc.__traceback__))
        if has_model:
            body += f"<p>The window keeps showing {html.escape(str(w.state.model_info.get('name')))}.</p>"
        w.show_box(QMessageBox.Icon.Warning, "Could not load the model", body, details)
