"""Closing the window while everything is busy: a webcam streaming, a model loading (slowly)
and an export running. The window must close within 2 s, every thread must be stopped, and the
process must exit with code 0 without Qt's "QThread: Destroyed while thread is still running".

The scenario runs in a subprocess (offscreen) because what is checked is the process's own
exit: its code and what Qt prints on stderr while the interpreter shuts down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SLOW_S = 5.0      # how long the fake load and the fake export take: far past the 2 s budget

SCENARIO = textwrap.dedent(r"""
    import json, sys, threading, time
    import numpy as np
    from PySide6.QtCore import QTimer
    from cnnviz.qt import app as qtapp

    app = qtapp.create_app(["cnnviz"])
    qtapp.setup_logging()
    qtapp.install_excepthook()
    from cnnviz.core.sources import CaptureSource
    from cnnviz.qt.playground.window import MainWindow
    from cnnviz.qt.playground.live_actions import install_live_sources
    from cnnviz.core import inspect_engine, inspect_load

    SLOW_S = float(sys.argv[1])
    report = {"events": []}

    class FakeCamera:
        def __init__(self):
            self.n = 0
            self.buf = np.zeros((120, 160, 3), np.uint8)
        def isOpened(self):
            return True
        def read(self):
            time.sleep(0.01)
            self.n += 1
            self.buf[:, :, 0] = self.n % 256
            return True, self.buf
        def get(self, prop):
            return 0.0
        def set(self, prop, value):
            return False
        def release(self):
            report["events"].append("camera released")

    # a model load that takes SLOW_S seconds (a big file on a slow disk, a big download)
    real_load = inspect_load.run_load
    def slow_load(req):
        phase = "busy" if report.get("busy") else "initial"
        report["events"].append(f"load started {phase}")
        time.sleep(SLOW_S if phase == "busy" else 0.0)
        report["events"].append(f"load finished {phase}")
        return real_load(req)
    inspect_load.run_load = slow_load

    # an export that takes SLOW_S seconds
    real_export = inspect_engine.InspectEngine._export
    def slow_export(self, job, cap, layers):
        report["events"].append("export started")
        time.sleep(SLOW_S)
        report["events"].append("export finished")
        return real_export(self, job, cap, layers)
    inspect_engine.InspectEngine._export = slow_export

    win = MainWindow(load_settings_file=False, settings_file=sys.argv[2] + "/settings.json")
    qtapp.set_exception_sink(win.report_exception)
    win.show()
    live = install_live_sources(win, list_cameras_fn=lambda: [])

    def start():
        live.set_source(CaptureSource(FakeCamera, name="fake webcam", watchdog_same_s=None))
        win.open_inspector()
        insp = win.inspector
        insp.loader._compute = slow_load          # the worker holds the function it was given
        report["events"].append("inspector open")

    def busy():
        report["busy"] = True
        insp = win.inspector
        report["live"] = live.state
        report["frames_shown"] = live.frames_shown
        if insp.current_capture() is not None:
            insp.export_npz(sys.argv[2] + "/all_layers.npz")       # runs on the inference thread
        insp.load_model_spec("demo", trust=True)                    # and a second model loads
        QTimer.singleShot(400, close)

    def close():
        report["threads_before_close"] = sorted(t.name for t in threading.enumerate())
        t0 = time.perf_counter()
        win.close()
        report["close_s"] = time.perf_counter() - t0
        report["visible_after_close"] = [w.objectName() for w in app.topLevelWidgets() if w.isVisible()]

    QTimer.singleShot(200, start)

    def ready():
        insp = getattr(win, "inspector", None)
        return (insp is not None and insp.current_capture() is not None and live.state == "live"
                and live.frames_shown > 5)

    poll = QTimer()
    def check_ready():
        if ready():
            poll.stop()
            busy()
    poll.timeout.connect(check_ready)
    poll.start(100)                         # the demo model is in (first load) and frames flow
    QTimer.singleShot(90_000, app.quit)     # never hang the test
    t_exec = time.perf_counter()
    code = app.exec()
    report["exec_s"] = time.perf_counter() - t_exec
    report["exit"] = int(code)
    report["threads_after"] = sorted([t.name, t.daemon] for t in threading.enumerate() if t.is_alive()
                                     and not isinstance(t, threading._DummyThread))
    print("REPORT" + json.dumps(report), flush=True)
    sys.exit(code)
""")


@pytest.mark.slow
def test_closing_while_streaming_loading_and_exporting_is_clean_and_fast(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", CNNVIZ_CONFIG_DIR=str(tmp_path / "cfg"),
               CNNVIZ_LOG_DIR=str(tmp_path / "logs"), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", SCENARIO, str(SLOW_S), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=180, cwd=tmp_path)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("REPORT")]
    assert lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(lines[-1][len("REPORT"):])
    assert "QThread: Destroyed while thread is still running" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-3000:])
    assert report["exit"] == 0
    assert report["live"] == "live" and report["frames_shown"] > 0, report     # the webcam was streaming
    events = report["events"]
    assert "load started busy" in events and "export started" in events and "camera released" in events, report
    assert report["close_s"] < 0.4 * SLOW_S, report   # far less than the load it did not wait for
    assert report["visible_after_close"] == [], report
    # the camera's capture and consumer threads were joined; the only threads still alive are
    # the daemon workers abandoned in the middle of the slow load/export, which end with the process
    left = [(name, daemon) for name, daemon in report["threads_after"] if name != "MainThread"]
    assert all(daemon and name in ("cnnviz-model-loader", "cnnviz-inspector") for name, daemon in left), report
    # closing did not wait for them: the slow load and export were still running at exit
    assert "load finished busy" not in events and "export finished" not in events, report
