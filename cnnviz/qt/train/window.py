"""The Train window: train a CNN and watch its first layer learn.

The training runs :func:`cnnviz.core.train.run` on the app's long-task runner
(:class:`cnnviz.qt.workers.TaskRunner`), which this window owns. The training thread never
touches a widget: it appends to its :class:`~cnnviz.core.train.TrainState`, and the runner's
signals arrive on the GUI thread. Updates are coalesced — at most one notification is pending,
and the views then read the state's latest snapshot and histories (new epochs from
``state.epochs``) — so a slow repaint never makes the loop wait and never builds a queue.

Run on its own as a preview: ``python -m cnnviz.qt.train.window``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QMainWindow,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ..workers import TaskRunner
from .panels import CurvesPanel, EpochPanel, FeatureMapPanel, KernelPanel, SettingsForm

MAX_SENT_KERNELS = 16
REFRESH_MS = 250  # views repaint at most this often while training


def default_run_dir() -> Path:
    from cnnviz.core.settings import config_dir

    base = config_dir() / "runs" / time.strftime("run-%Y%m%d-%H%M%S")
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


class TrainWindow(QMainWindow):
    """Train a CNN live. ``playground`` / ``inspector``: the windows to send kernels to and to
    open checkpoints in (created on demand when not given).

    Signals
    -------
    runStarted(), runFinished(str status), snapshotShown(int step), epochShown(int epoch)
    """

    runStarted = Signal()
    runFinished = Signal(str)
    snapshotShown = Signal(int)
    epochShown = Signal(int)

    def __init__(self, parent: QWidget | None = None, *, playground: Any = None, inspector: Any = None):
        super().__init__(parent)
        self.setObjectName("train-window")
        self.setWindowTitle("cnnviz — train a CNN")
        self.playground = playground
        self.inspector = inspector
        self._own_windows: list[QWidget] = []
        self.runner = TaskRunner(self, "cnnviz-train")
        self._state = None
        self._request = None
        self._trust_next = False
        self._auto_out = False
        self.result = None
        self.last_message = ""
        self._epoch_metrics: list[dict] = []
        self._steps_per_epoch = 1

        self.form = SettingsForm()
        self.curves = CurvesPanel()
        self.kernels = KernelPanel()
        self.features = FeatureMapPanel()
        self.epoch_panel = EpochPanel()
        self._build_ui()
        self.runner.partial.connect(self._on_partial)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)
        self.features.probeChanged.connect(self._on_probe)
        self._refresh = QTimer(self)
        self._refresh.setObjectName("train-refresh")
        self._refresh.setSingleShot(True)
        self._refresh.setInterval(REFRESH_MS)
        self._refresh.timeout.connect(self._paint_latest)
        self.form.out_dir.setText(str(default_run_dir()))
        self._set_running(False)
        self.resize(1300, 820)

    # ------------------------------------------------------------------ layout
    def _build_ui(self) -> None:
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.form)
        dock = QDockWidget("Settings", self)
        dock.setObjectName("train-settings-dock")
        dock.setWidget(scroll)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)

        central = QWidget()
        v = QVBoxLayout(central)
        buttons = QHBoxLayout()
        self.start_button = self._button("Start", "train-start", self.start, "Train with these settings")
        self.pause_button = self._button("Pause", "train-pause", self.toggle_pause, "Pause or resume the training")
        self.pause_button.setCheckable(True)
        self.stop_button = self._button("Stop", "train-stop", self.stop,
                                        "Stop after the current step; finished epochs' checkpoints stay")
        self.inspect_button = self._button("Open in inspector", "train-inspect", self.open_in_inspector,
                                           "Open the last checkpoint in the model inspector (weights only)")
        self.send_button = self._button("Send kernels to the playground", "train-send", self.send_kernels,
                                        "Put the shown first-layer kernels into the playground's kernel bank")
        self.movie_button = self._button("Export movie…", "train-movie", self.export_movie_dialog,
                                         "The kernel movie as a GIF or MP4")
        for b in (self.start_button, self.pause_button, self.stop_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        for b in (self.inspect_button, self.send_button, self.movie_button):
            buttons.addWidget(b)
        v.addLayout(buttons)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.curves)
        mid = QSplitter(Qt.Orientation.Horizontal)
        mid.addWidget(self.kernels)
        mid.addWidget(self.features)
        mid.setSizes([450, 550])
        split.addWidget(mid)
        split.addWidget(self.epoch_panel)
        split.setSizes([230, 330, 260])
        v.addWidget(split, 1)
        self.setCentralWidget(central)
        self.statusBar().showMessage("Choose a model and data, then Start")

    def _button(self, text: str, name: str, slot, tip: str) -> QPushButton:
        b = QPushButton(text)
        b.setObjectName(name)
        b.setToolTip(tip)
        b.clicked.connect(slot)
        return b

    def show_message(self, text: str, error: bool = False) -> None:
        self.last_message = text
        self.statusBar().showMessage(("⚠ " if error else "") + text)

    # ------------------------------------------------------------------ running
    def is_running(self) -> bool:
        return self.runner.is_busy()

    def _set_running(self, on: bool) -> None:
        self.start_button.setEnabled(not on)
        self.pause_button.setEnabled(on)
        self.stop_button.setEnabled(on)
        self.form.setEnabled(not on)
        has_ckpt = bool(self.result is not None and self.result.checkpoint)
        self.inspect_button.setEnabled(has_ckpt and not on)
        self.send_button.setEnabled(self.kernels.current_frame() is not None)
        self.movie_button.setEnabled(bool(self._request and self._request.out_dir) and not on
                                     and self._state is not None and bool(self._state.frames))
        if not on:
            self.pause_button.blockSignals(True)
            self.pause_button.setChecked(False)
            self.pause_button.setText("Pause")
            self.pause_button.blockSignals(False)

    def start(self, request=None) -> bool:
        """Start a run (``request``: a ``TrainRequest``; default: the form's). False if one is running."""
        from cnnviz.core.train import TrainState

        if self.is_running():
            return False
        req = request if request is not None else self.form.request(trust=self._trust_next)
        self._auto_out = bool(req.out_dir) and Path(req.out_dir).name.startswith("run-") and \
            Path(req.out_dir).parent == default_run_dir().parent
        self._trust_next = False
        self._request = req
        self.result = None
        self._epoch_metrics = []
        self.kernels.clear()
        self.curves.set_curves([], [])
        state = TrainState()  # its status text is read with each repaint
        state.probe_index = self.features.index.value()
        self._state = state

        def work(st) -> Any:
            from cnnviz.core.train import run as train_run

            return train_run(req, st)

        self._set_running(True)
        self.show_message("Starting…")
        self.runner.start(work, state)
        self.runStarted.emit()
        return True

    def toggle_pause(self, checked: bool | None = None) -> None:
        if self._state is None or not self.is_running():
            return
        if checked is None:
            checked = not self._state.paused
        if checked:
            self._state.pause()
            self.show_message("Paused: the run waits before its next step")
        else:
            self._state.resume()
            self.show_message("Resumed")
        self.pause_button.blockSignals(True)
        self.pause_button.setChecked(checked)
        self.pause_button.setText("Resume" if checked else "Pause")
        self.pause_button.blockSignals(False)

    def pause(self) -> None:
        self.toggle_pause(True)

    def resume(self) -> None:
        self.toggle_pause(False)

    def is_paused(self) -> bool:
        return self._state is not None and self._state.paused

    def stop(self) -> None:
        if self.is_running():
            self.runner.cancel()
            self.show_message("Stopping after the current step…")

    def wait(self, timeout_s: float = 30.0) -> bool:
        """Join the training thread (tests, shutdown). True when none is left."""
        return self.runner.wait(int(timeout_s * 1000))

    # ------------------------------------------------------------------ results (GUI thread)
    def _on_partial(self, _tid: int, _part) -> None:
        state = self._state
        if state is not None:
            for report in state.epochs[len(self._epoch_metrics):]:   # every epoch, in order
                self._on_epoch(report)
        if not self._refresh.isActive():
            self._refresh.start()

    def _paint_latest(self) -> None:
        state = self._state
        if state is None:
            return
        if self.is_running() and state.status:
            self.show_message(state.status)
        snap = state.latest_snapshot
        if snap is None:
            return
        if state.data is not None:
            self.features.set_count(len(state.data.y_val))
            if snap.step and snap.epoch:
                self._steps_per_epoch = max(1, int(round(snap.step / snap.epoch)))
        n = len(state.frames)
        self.kernels.set_frames(state.frames[:n], state.frame_steps[:n], self._steps_per_epoch)
        self.curves.set_curves(list(state.curve), self._epoch_metrics)
        data = state.data
        if data is not None and snap.probe_maps is not None and len(data.y_val):
            i = snap.probe_index
            px = data.display(data.x_val[i])
            cap = f"true class {data.labels[int(data.y_val[i])]} · {len(snap.probe_maps)} maps at step {snap.step}"
            self.features.show_maps(snap.step, px, snap.probe_maps, cap)
        self.send_button.setEnabled(self.kernels.current_frame() is not None)
        self.snapshotShown.emit(snap.step)

    def _on_epoch(self, report) -> None:
        self._epoch_metrics.append(report.metrics)
        self.curves.set_curves(list(self._state.curve) if self._state else [], self._epoch_metrics)
        data = self._state.data if self._state else None
        if data is not None:
            images = [data.display(data.x_val[i]) for i, *_ in report.wrong]
            self.epoch_panel.show_epoch(report.epoch, report.confusion, data.labels, report.wrong, images)
        m = report.metrics
        self.show_message(f"epoch {report.epoch}: validation accuracy {m['val_accuracy']:.1%}, "
                          f"loss {m['val_loss']:.4f}" + (f" — {report.message}" if report.message else ""),
                          error=bool(report.message))
        self.epochShown.emit(report.epoch)

    def _on_finished(self, _tid: int, result) -> None:
        self._on_partial(_tid, None)   # the epochs the last notification did not cover
        self.result = result
        self._thread_done()
        if self.form.out_dir.text().strip() == str(self._request.out_dir) and self._auto_out:
            self.form.out_dir.setText(str(default_run_dir()))  # the next run gets its own folder
        self._paint_latest()
        bad = result.status in ("nan", "write_failed")
        extra = f"; {len(result.skipped)} file(s) skipped" if result.skipped else ""
        notes = f" ({'; '.join(result.notes)})" if result.notes else ""
        self.show_message(result.message + extra + notes, error=bad)
        self.runFinished.emit(result.status)

    def _on_failed(self, _tid: int, exc: BaseException) -> None:
        from cnnviz.core.errors import CnnvizError, TrustRequired

        if not isinstance(exc, CnnvizError):  # shown to the user, the window keeps running
            exc = RuntimeError(f"internal error: {type(exc).__name__}: {exc}")
        self._thread_done()
        if isinstance(exc, TrustRequired) and self._ask_trust(exc):
            self._trust_next = True
            self.start()
            return
        self.show_message(str(exc), error=True)
        self.runFinished.emit("error")

    def _on_cancelled(self, _tid: int) -> None:  # stopped before the loop started
        self._thread_done()
        self.show_message("Stopped before the first step")
        self.runFinished.emit("stopped")

    def _ask_trust(self, exc) -> bool:
        from cnnviz.qt.inspector.trust_dialog import TrustDialog

        dlg = TrustDialog(exc, self)
        return dlg.exec() == TrustDialog.DialogCode.Accepted

    def _thread_done(self) -> None:
        self._set_running(False)

    def _on_probe(self, i: int) -> None:
        if self._state is not None:
            self._state.probe_index = int(i)  # read by the loop at its next snapshot
        if not self.is_running():
            self._probe_now(int(i))

    def _probe_now(self, i: int) -> None:
        """Between runs: the chosen image through the shown weights (computed here: one tiny conv)."""
        state = self._state
        frame = self.kernels.current_frame()
        if state is None or state.data is None or frame is None or not len(state.data.y_val):
            return
        import torch
        import torch.nn.functional as F

        data = state.data
        i = min(i, len(data.y_val) - 1)
        x = torch.from_numpy(data.x_val[i:i + 1])
        if x.shape[1] != frame.shape[1]:
            return
        with torch.no_grad():
            maps = F.conv2d(x, torch.from_numpy(frame), padding="same")[0].numpy()
        self.features.show_maps(-1, data.display(data.x_val[i]), maps,
                                f"true class {data.labels[int(data.y_val[i])]} · shown kernels")

    # ------------------------------------------------------------------ hand-offs
    def _ensure_playground(self):
        if self.playground is None:
            from cnnviz.qt.playground.window import MainWindow

            self.playground = MainWindow()
            self._own_windows.append(self.playground)
        return self.playground

    def _ensure_inspector(self):
        if self.inspector is None:
            pg = self.playground
            if pg is not None and hasattr(pg, "open_inspector"):
                pg.open_inspector()
                self.inspector = getattr(pg, "inspector", None)
        if self.inspector is None:
            from cnnviz.qt.inspector import InspectorWindow

            self.inspector = InspectorWindow(load_demo=False)
            self._own_windows.append(self.inspector)
        return self.inspector

    def learned_kernels(self, frame: np.ndarray | None = None, limit: int = MAX_SENT_KERNELS):
        """The shown frame's first ``limit`` filters as playground kernels (a multi-channel
        filter is summed over its input channels: its response to a grey image)."""
        from cnnviz.core.kernels import Kernel

        frame = self.kernels.current_frame() if frame is None else frame
        if frame is None:
            return []
        out = []
        for i, w in enumerate(frame[:limit]):
            k = w.sum(axis=0) if w.shape[0] > 1 else w[0]
            out.append(Kernel(np.asarray(k, np.float32), name=f"learned {i + 1}",
                              description=f"first-layer filter {i + 1}, learned by training"))
        return out

    def send_kernels(self) -> int:
        """Add the shown kernels to the playground's bank (replacing earlier learned ones);
        returns how many were sent."""
        ks = self.learned_kernels()
        if not ks:
            self.show_message("No kernels yet: start a run", error=True)
            return 0
        pg = self._ensure_playground()
        # the hand-made kernels stay: learned and hand-made side by side on the same image
        kept = [k for k in pg.kernels() if not k.name.startswith("learned ")]
        pg.set_kernels([*kept, *ks], len(kept))
        pg.show()
        pg.raise_()
        total = len(self.kernels.current_frame())
        self.show_message(f"Sent {len(ks)} of {total} learned kernels to the playground, "
                          f"next to its {len(kept)} own")
        return len(ks)

    def open_in_inspector(self) -> int:
        """Load the last good checkpoint in the inspector (weights only: no trust prompt for a
        built-in or torchvision architecture). Returns the inspector's load request id."""
        if self.result is None or not self.result.checkpoint:
            self.show_message("No checkpoint yet: finish at least one epoch with a run folder", error=True)
            return 0
        insp = self._ensure_inspector()
        is_python = ".py:" in str(self._request.model.name if self._request else "")
        rid = insp.load_model_spec(self.result.checkpoint, trust=None if is_python else False)
        insp.show()
        insp.raise_()
        return rid

    def export_movie_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the kernel movie", "kernels.gif", "GIF (*.gif);;MP4 (*.mp4)")
        if path:
            self.export_movie(path)

    def export_movie(self, path: str | Path) -> Path | None:
        from cnnviz.core.errors import CnnvizError
        from cnnviz.core.train import export_movie

        if self._request is None or not self._request.out_dir:
            self.show_message("No kernel movie yet", error=True)
            return None
        try:
            out = export_movie(self._request.out_dir, path)
        except (CnnvizError, OSError) as exc:
            self.show_message(f"Export failed: {exc}", error=True)
            return None
        self.show_message(f"Wrote {out}")
        return out

    # ------------------------------------------------------------------ shutdown
    def shutdown(self) -> None:
        """Stop the run and join its thread (idempotent)."""
        self._refresh.stop()
        self.runner.shutdown(30_000)
        for w in self._own_windows:
            if hasattr(w, "shutdown"):
                w.shutdown()
            w.close()
        self._own_windows = []

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.shutdown()
        super().closeEvent(event)


if __name__ == "__main__":  # preview: python -m cnnviz.qt.train.window
    import sys

    from PySide6.QtWidgets import QApplication

    import cnnviz.qt  # noqa: F401 - PySide6 before pyqtgraph

    app = QApplication(sys.argv)
    w = TrainWindow()
    w.show()
    sys.exit(app.exec())
