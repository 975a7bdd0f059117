"""The inspector's status bar: loading progress with Cancel, export progress, the model's name,
timings and the device it runs on. It only shows what it is told."""

from __future__ import annotations

import time

from PySide6.QtWidgets import QLabel, QMainWindow, QProgressBar, QPushButton

from cnnviz.core.inspect_results import InspectResult

__all__ = ["InspectorStatus"]


def _label(name: str, text: str = "") -> QLabel:
    w = QLabel(text)
    w.setObjectName(name)
    return w


class InspectorStatus:
    """The permanent widgets of ``window``'s status bar (they are the window's children)."""

    def __init__(self, window: QMainWindow):
        sb = window.statusBar()
        self.loading = _label("status-loading")
        self.load_progress = QProgressBar()
        self.load_progress.setObjectName("load-progress")
        self.load_progress.setFixedWidth(160)
        self.load_progress.setRange(0, 0)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("load-cancel")
        self.cancel_button.setToolTip("Stop loading this model; the model shown so far stays.")
        self.model = _label("status-model")
        self.time = _label("status-time")
        self.device = _label("status-device", "device: —")
        self.task_label = _label("task-label")
        self.task_progress = QProgressBar()
        self.task_progress.setObjectName("task-progress")
        self.task_progress.setFixedWidth(140)
        self.task_progress.setToolTip("Writing the export: one step per layer")
        for w in (self.task_label, self.task_progress, self.loading, self.load_progress, self.cancel_button,
                  self.model, self.time, self.device):
            sb.addPermanentWidget(w)
        self._result_times: list[float] = []
        self.set_loading(False)
        self.set_task(None)

    # -- loading --------------------------------------------------------------------------
    def set_loading(self, on: bool, text: str = "") -> None:
        self.loading.setText(text if on else "")
        self.loading.setVisible(on)
        self.load_progress.setVisible(on)
        self.cancel_button.setVisible(on)
        if on:
            self.load_progress.setRange(0, 0)

    def show_download(self, done: int, total: int | None) -> None:
        if total:
            self.load_progress.setRange(0, 1000)
            self.load_progress.setValue(int(1000 * min(1.0, int(done) / int(total))))
            self.loading.setText(f"Downloading weights: {int(done) / 2**20:.1f} / {int(total) / 2**20:.1f} MB")
        else:
            self.loading.setText(f"Downloading weights: {int(done) / 2**20:.1f} MB")

    # -- export ---------------------------------------------------------------------------
    def set_task(self, text: str | None) -> None:
        """Show (text) or hide (None) the export progress."""
        on = text is not None
        self.task_label.setText(text or "")
        self.task_label.setVisible(on)
        self.task_progress.setVisible(on)
        if on:
            self.task_progress.setRange(0, 0)  # busy until the worker reports steps

    def show_task_progress(self, done: int, total: int, what: str) -> None:
        if total > 0:
            self.task_progress.setRange(0, total)
            self.task_progress.setValue(min(done, total))
        self.task_label.setText(f"Exporting {what} ({done}/{total})" if total else "Exporting…")

    # -- model, device, timing ------------------------------------------------------------
    def set_device(self, device: str | None, dtype: str | None, gpu: str | None) -> None:
        if device is None:
            self.device.setText("device: —")
        elif str(device).startswith(("cuda", "mps")) and gpu:
            self.device.setText(f"GPU: {gpu} · {dtype}")
        else:
            self.device.setText(f"CPU · {dtype}")

    def show_timing(self, res: InspectResult) -> None:
        now = time.perf_counter()
        if not res.reused_capture:
            self._result_times.append(now)
            self._result_times = [t for t in self._result_times if now - t <= 2.0]
        times = self._result_times
        ms = res.timings_ms.get("capture")
        fps = ""
        if len(times) >= 2 and times[-1] > times[0]:
            fps = f" · {(len(times) - 1) / (times[-1] - times[0]):.0f} runs/s"
        text = "input " + "×".join(map(str, res.input_shape))
        if ms is not None:
            text += f" · forward {ms:.1f} ms"
        text += f" · total {res.timings_ms.get('total', 0):.1f} ms{fps}"
        self.time.setText(text)
