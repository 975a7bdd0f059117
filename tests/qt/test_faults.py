"""Faults reach the user: an exception in a slot, a worker or a thread shows its cause in the
status bar and in a dialog whose details expander holds the traceback, is written to the
rotating log file, and the window keeps working (the next request computes).

These tests install the application's own hooks, so pytest-qt's exception capture is off for
them (``qt_no_exception_capture``); each test removes the hooks again.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QTimer

from cnnviz.core.conv import run_pipeline
from cnnviz.core.sources import CaptureSource
from cnnviz.qt import app as qtapp

pytestmark = pytest.mark.qt_no_exception_capture

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def hooks(window, config_dir):
    """The app's hooks and log file, as ``cnnviz`` installs them, pointed at a temp dir."""
    path = qtapp.setup_logging()
    assert path is not None and str(path).startswith(str(config_dir))
    qtapp.install_excepthook(window.report_exception)
    yield path
    qtapp.uninstall_excepthook()
    qtapp.teardown_logging()


def log_text(path: Path) -> str:
    for h in logging.getLogger("cnnviz").handlers:
        h.flush()
    return path.read_text(encoding="utf-8") if path.exists() else ""


def assert_next_request_works(qtbot, window):
    """The window still computes: a new kernel gives the core's output."""
    from cnnviz.core.kernels import preset

    window.set_kernels([preset("laplacian-4").kernel])
    expected = run_pipeline(window.current_image(), window.build_request()).conv[0]

    def shown():
        arr = window.displayed_array("conv")
        return arr is not None and arr.shape == expected.shape and np.allclose(arr, expected, atol=1e-5)

    qtbot.waitUntil(shown, timeout=10_000)


def close_fault_dialog(window):
    box = window.fault_dialog()
    if box is not None:
        box.close()


# ---------------------------------------------------------------------------------------
# the log file
# ---------------------------------------------------------------------------------------
def test_log_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(qtapp.ENV_LOG_DIR, raising=False)
    monkeypatch.setenv("CNNVIZ_CONFIG_DIR", str(tmp_path / "cfg"))
    assert qtapp.log_dir() == tmp_path / "cfg" / "logs"
    monkeypatch.setenv(qtapp.ENV_LOG_DIR, str(tmp_path / "logs"))
    assert qtapp.log_dir() == tmp_path / "logs"
    monkeypatch.delenv(qtapp.ENV_LOG_DIR)
    monkeypatch.delenv("CNNVIZ_CONFIG_DIR")
    import platformdirs

    assert qtapp.log_dir() == Path(platformdirs.user_log_dir("cnnviz", "cnnviz"))


def test_log_file_rotates_at_1_mb_and_keeps_3_backups(tmp_path):
    path = qtapp.setup_logging(tmp_path)
    try:
        assert path == tmp_path / "cnnviz.log"
        line = "x" * 1000
        for _ in range(5000):                    # ~5 MB through the cnnviz logger
            logging.getLogger("cnnviz.core.sources").error(line)
        names = sorted(p.name for p in tmp_path.glob("cnnviz.log*"))
        assert names == ["cnnviz.log", "cnnviz.log.1", "cnnviz.log.2", "cnnviz.log.3"]
        assert all(p.stat().st_size <= qtapp.LOG_MAX_BYTES + 2000 for p in tmp_path.glob("cnnviz.log*"))
    finally:
        qtapp.teardown_logging()


def test_an_unwritable_log_folder_costs_only_the_log(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert qtapp.setup_logging(blocker / "logs") is None
    assert "cannot write the log file" in capsys.readouterr().err
    assert qtapp.log_path() is None


# ---------------------------------------------------------------------------------------
# faults injected into every place code runs
# ---------------------------------------------------------------------------------------
def test_an_exception_in_a_slot_is_shown_logged_and_the_window_keeps_working(qtbot, window, hooks):
    def broken_slot():
        raise RuntimeError("boom in a slot")

    QTimer.singleShot(0, broken_slot)          # Qt calls it, PySide6 hands it to sys.excepthook
    qtbot.waitUntil(lambda: "boom in a slot" in window.status_text(), timeout=5000)
    assert "Internal error: RuntimeError: boom in a slot" in window.status_text()
    box = window.fault_dialog()
    assert box is not None
    assert "boom in a slot" in box.text() and str(hooks) in box.text()
    assert "Traceback" in box.detailedText() and "broken_slot" in box.detailedText()
    assert "broken_slot" in log_text(hooks)
    close_fault_dialog(window)
    assert_next_request_works(qtbot, window)


def test_a_fault_in_the_playground_worker_is_shown_logged_and_the_next_request_works(qtbot, window, hooks,
                                                                                     monkeypatch):
    real = window.worker._compute
    calls = {"n": 0}

    def faulty(job):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ZeroDivisionError("injected worker fault")
        return real(job)

    monkeypatch.setattr(window.worker, "_compute", faulty)
    before = window.displayed_array("conv").copy()
    window.submit_now()
    qtbot.waitUntil(lambda: "injected worker fault" in window.status_text(), timeout=5000)
    box = window.fault_dialog()
    assert box is not None and "ZeroDivisionError" in box.detailedText() and "faulty" in box.detailedText()
    assert "injected worker fault" in log_text(hooks) and "faulty" in log_text(hooks)
    np.testing.assert_array_equal(window.displayed_array("conv"), before)   # the last good result stays
    close_fault_dialog(window)
    assert_next_request_works(qtbot, window)
    assert window.worker.isRunning()


def test_repeated_faults_never_stack_dialogs(qtbot, window, hooks):
    for i in range(5):
        window.report_exception(f"RuntimeError: fault {i}", f"Traceback …\nRuntimeError: fault {i}\n")
    boxes = [w for w in window.findChildren(type(window.fault_dialog())) if w.isVisible()]
    assert len(boxes) == 1
    assert "5 errors" in boxes[0].text() and "fault 4" in boxes[0].text()
    assert "fault 0" in boxes[0].detailedText() and "fault 4" in boxes[0].detailedText()
    close_fault_dialog(window)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # our hook chains to pytest's
def test_an_exception_in_a_python_thread_is_reported(qtbot, window, hooks):
    def work():
        raise ValueError("thread fault")

    t = threading.Thread(target=work, name="cnnviz-test-helper")
    t.start()
    t.join()
    qtbot.waitUntil(lambda: "thread fault" in window.status_text(), timeout=5000)
    assert "cnnviz-test-helper" in window.status_text()
    assert "thread fault" in log_text(hooks)
    close_fault_dialog(window)
    assert_next_request_works(qtbot, window)


class RaisingCapture:
    """A camera whose driver raises (not just fails) after ``after`` good reads."""

    def __init__(self, after: int = 5):
        self.after, self.reads, self.released = after, 0, False
        self.buf = np.full((60, 80, 3), 90, np.uint8)

    def isOpened(self) -> bool:  # noqa: N802
        return not self.released

    def read(self):
        time.sleep(0.01)
        self.reads += 1
        if self.reads > self.after:
            raise OSError(5, "injected driver fault")
        self.buf[:, :, 0] = self.reads % 256
        return True, self.buf

    def get(self, prop):
        return 0.0

    def set(self, prop, value):
        return False

    def release(self):
        self.released = True


def test_a_fault_in_the_capture_thread_is_shown_logged_and_the_window_keeps_working(qtbot, window, hooks):
    from cnnviz.qt.playground.live_actions import install_live_sources

    live = getattr(window, "live", None) or install_live_sources(window, list_cameras_fn=lambda: [])
    caps: list[RaisingCapture] = []

    def open_capture():
        caps.append(RaisingCapture())
        return caps[-1]

    live.set_source(CaptureSource(open_capture, name="flaky camera", watchdog_same_s=None))
    qtbot.waitUntil(lambda: "flaky camera stopped unexpectedly" in window.status_text(), timeout=10_000)
    assert "injected driver fault" in window.status_text()
    assert "reconnect" in window.status_text()                       # the fix
    assert caps and caps[0].released                                 # the thread released the camera
    text = log_text(hooks)
    assert "capture thread failed" in text and "injected driver fault" in text and "Traceback" in text
    qtbot.waitUntil(lambda: not live.threads(), timeout=5000)
    # the window is usable: a picture opens and computes
    assert window.open_sample("pattern")
    assert_next_request_works(qtbot, window)
    assert live.shutdown()


# ---------------------------------------------------------------------------------------
# end to end: the real `cnnviz` start-up path installs all of this
# ---------------------------------------------------------------------------------------
SCRIPT = textwrap.dedent("""
    import json, sys, threading
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    from cnnviz.qt import app as qtapp

    app = qtapp.create_app(["cnnviz"])
    report = {}

    def window():
        from cnnviz.qt.playground.window import MainWindow
        return next(w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow))

    def boom():
        raise RuntimeError("end-to-end slot fault")

    def thread_boom():
        threading.Thread(target=lambda: 1 / 0, name="cnnviz-e2e-thread").start()

    def check():
        w = window()
        box = w.fault_dialog()
        report["status"] = w.status_text()
        report["dialog"] = box.text() if box else None
        report["details"] = box.detailedText() if box else None
        report["log"] = str(qtapp.log_path())
        report["hooked"] = sys.excepthook is qtapp._hook and threading.excepthook is qtapp._thread_hook
        w.close()

    QTimer.singleShot(1500, boom)
    QTimer.singleShot(1700, thread_boom)
    QTimer.singleShot(3500, check)
    code = qtapp.main(["cnnviz"])
    report["exit"] = code
    report["unhooked"] = sys.excepthook is not qtapp._hook
    print("REPORT" + json.dumps(report))
""")


def test_the_real_app_installs_the_hooks_and_the_log_end_to_end(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", CNNVIZ_CONFIG_DIR=str(tmp_path / "cfg"),
               CNNVIZ_LOG_DIR=str(tmp_path / "logs"), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("REPORT")]
    assert proc.returncode == 0 and lines, proc.stdout + proc.stderr
    report = json.loads(lines[-1][len("REPORT"):])
    log = (tmp_path / "logs" / "cnnviz.log").read_text(encoding="utf-8")
    report["log"] = log                     # shown if an assertion below fails
    assert report["exit"] == 0 and report["hooked"] and report["unhooked"]
    # the later thread fault is in the status bar; the dialog gathered both
    assert log.count("Unhandled exception") == 2, report      # exactly the two injected faults
    assert "ZeroDivisionError" in report["status"] and "cnnviz-e2e-thread" in report["status"], report
    assert "2 errors" in report["dialog"] and str(tmp_path / "logs") in report["dialog"]
    assert "end-to-end slot fault" in report["details"] and "ZeroDivisionError" in report["details"]
    assert "starting (playground)" in log and "end-to-end slot fault" in log and "ZeroDivisionError" in log
    # the developer's terminal still gets the traceback
    assert "end-to-end slot fault" in proc.stderr
    assert "QThread: Destroyed while thread is still running" not in proc.stderr


# ---------------------------------------------------------------------------------------
# the model inspector's two workers
# ---------------------------------------------------------------------------------------
@pytest.fixture
def logfile(config_dir):
    path = qtapp.setup_logging()
    yield path
    qtapp.teardown_logging()


@pytest.fixture
def inspector(qtbot, config_dir):
    from cnnviz.qt.inspector import InspectorWindow

    w = InspectorWindow()
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.current_capture() is not None, timeout=60_000)
    yield w
    w.close()


def _fail_once(worker, monkeypatch, exc: BaseException):
    real = worker._compute
    calls = {"n": 0}

    def faulty(request):
        calls["n"] += 1
        if calls["n"] == 1:
            raise exc
        return real(request)

    monkeypatch.setattr(worker, "_compute", faulty)
    return calls


def test_a_fault_in_the_inspector_loader_is_shown_logged_and_the_next_load_works(qtbot, inspector, logfile,
                                                                               monkeypatch):
    w = inspector
    _fail_once(w.loader, monkeypatch, RuntimeError("injected loader fault"))
    w.load_model_spec("demo", trust=True)
    qtbot.waitUntil(lambda: "injected loader fault" in w.statusBar().currentMessage(), timeout=10_000)
    assert "Could not load demo" in w.statusBar().currentMessage()
    box = w.error_box()
    assert box is not None and "Traceback" in box.detailedText() and "injected loader fault" in box.detailedText()
    assert "injected loader fault" in log_text(logfile) and "faulty" in log_text(logfile)
    assert w.current_model() is not None                       # the previous model stays
    box.close()
    w.load_model_spec("demo", trust=True)
    qtbot.waitUntil(lambda: "Loaded" in w.statusBar().currentMessage(), timeout=30_000)
    assert w.loader.isRunning() and w.inference.isRunning()


def test_a_fault_in_the_inspector_inference_is_shown_logged_and_the_next_frame_works(qtbot, inspector, logfile,
                                                                                   monkeypatch):
    w = inspector
    _fail_once(w.inference, monkeypatch, ValueError("injected inference fault"))
    rng = np.random.default_rng(0)
    w.set_image(rng.random((28, 28), dtype=np.float32), label="noise")
    qtbot.waitUntil(lambda: "injected inference fault" in w.statusBar().currentMessage(), timeout=10_000)
    assert "injected inference fault" in log_text(logfile) and "Traceback" in log_text(logfile)
    second = rng.random((28, 28), dtype=np.float32)
    w.set_image(second, label="noise 2")
    qtbot.waitUntil(lambda: w.current_input() is not None and w.current_capture() is not None
                    and not w.inference.is_busy()
                    and "injected" not in w.statusBar().currentMessage(), timeout=20_000)
    assert w.inference.isRunning()


def test_an_internal_inference_error_opens_the_details_dialog(qtbot, inspector, logfile, monkeypatch):
    w = inspector
    _fail_once(w.inference, monkeypatch, ValueError("injected inference fault"))
    w.set_image(np.zeros((28, 28), np.float32), label="zeros")
    qtbot.waitUntil(lambda: "injected inference fault" in w.statusBar().currentMessage(), timeout=10_000)
    assert "Internal error: ValueError: injected inference fault" in w.statusBar().currentMessage()
    box = w.fault_dialog()  # the playground's fault dialog: one for both windows
    assert box is not None and "Traceback" in box.detailedText() and "faulty" in box.detailedText()
    assert box.objectName() == "fault-dialog" and "injected inference fault" in box.text()


def test_repeated_inspector_faults_share_one_dialog_and_closing_closes_it(qtbot, inspector):
    w = inspector
    for i in range(3):
        w.report_exception(f"RuntimeError: fault {i}", f"Traceback …\nRuntimeError: fault {i}\n")
    boxes = [b for b in w.findChildren(type(w.fault_dialog())) if b.isVisible() and b.objectName() == "fault-dialog"]
    assert boxes == [w.fault_dialog()]
    assert "3 errors" in boxes[0].text() and "fault 0" in boxes[0].detailedText() and "fault 2" in boxes[0].detailedText()
    w.close()
    assert w.fault_dialog() is None
