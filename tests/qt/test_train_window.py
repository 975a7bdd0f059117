"""The Train window: a short live run updates the curves and the kernel grid; pause, stop,
the hand-offs to the playground and the inspector; no thread left behind."""

from __future__ import annotations

import threading

import numpy as np
import pytest


@pytest.fixture
def train_window(qtbot, config_dir, tmp_path):
    from cnnviz.qt.train import TrainWindow

    threads_before = {t.ident for t in threading.enumerate()}
    w = TrainWindow()
    qtbot.addWidget(w)
    w.form.out_dir.setText(str(tmp_path / "run"))
    w.form.epochs.setValue(2)
    w.form.batch.setValue(64)
    w.show()
    yield w
    w.close()
    assert not w.is_running()
    assert not [t.objectName() for t in w.findChildren(__import__("PySide6.QtCore").QtCore.QTimer) if t.isActive()]
    left = [t.name for t in threading.enumerate() if t.ident not in threads_before and t.name.startswith("cnnviz")]
    assert left == []


def test_a_short_run_updates_curves_and_kernels_and_finishes(train_window, qtbot, tmp_path):
    w = train_window
    steps = []
    w.snapshotShown.connect(steps.append)
    with qtbot.waitSignal(w.runFinished, timeout=120_000) as fin:
        assert w.start()
        assert not w.start()  # one run at a time
        assert not w.form.isEnabled() and w.stop_button.isEnabled()
    assert fin.args == ["finished"]
    assert not w.is_running() and w.form.isEnabled()
    train_pts, val_pts = w.curves.point_counts()
    assert val_pts == 2 and train_pts >= 2
    # the kernel grid shows the last frame == the final checkpoint, and the scrubber replays frame 0
    frames = w._state.frames
    assert len(frames) >= 3 and w.kernels.slider.maximum() == len(frames) - 1
    np.testing.assert_array_equal(w.kernels.current_frame(), frames[-1])
    before = w.kernels.image.image.copy()
    w.kernels.slider.setValue(0)
    np.testing.assert_array_equal(w.kernels.current_frame(), frames[0])
    assert not np.array_equal(w.kernels.image.image, before)
    assert steps and steps[-1] == w.result.steps
    assert w.epoch_panel.shown_epoch == 2
    assert w.features.shown_step >= 0 and w.features.maps_item.image is not None
    # the chosen validation image is drawn through the shown (initial) kernels between runs
    w.features.index.setValue(3)
    assert w.features.shown_step == -1
    assert w.inspect_button.isEnabled() and w.send_button.isEnabled()


def test_pause_holds_the_run_and_stop_ends_it(train_window, qtbot):
    w = train_window
    w.form.epochs.setValue(50)
    with qtbot.waitSignal(w.snapshotShown, timeout=60_000):
        w.start()
    w.pause()
    assert w.is_paused() and w.pause_button.isChecked() and w.pause_button.text() == "Resume"
    n = len(w._state.frames)
    qtbot.wait(400)
    assert len(w._state.frames) <= n + 1  # at most the step in flight when pause was pressed
    assert w.is_running()
    w.resume()
    assert not w.is_paused()
    with qtbot.waitSignal(w.runFinished, timeout=60_000) as fin:
        w.stop()
    assert fin.args == ["stopped"]
    assert "stopped" in w.last_message
    assert not w.is_running() and w.start_button.isEnabled()


def test_bad_input_is_shown_and_the_window_keeps_running(train_window, qtbot):
    w = train_window
    w.form.model.setEditText("resnet81")
    with qtbot.waitSignal(w.runFinished, timeout=60_000) as fin:
        w.start()
    assert fin.args == ["error"]
    assert "did you mean resnet18" in w.last_message
    assert w.start_button.isEnabled()


def test_send_kernels_to_the_playground_and_open_in_inspector(train_window, qtbot, make_window):
    w = train_window
    w.form.epochs.setValue(1)
    pg = make_window()
    w.playground = pg
    with qtbot.waitSignal(w.runFinished, timeout=120_000):
        w.start()
    own = [k.name for k in pg.kernels()]
    n = w.send_kernels()
    assert n == 16
    bank = pg.kernels()
    assert [k.name for k in bank[:len(own)]] == own  # the hand-made kernels stay
    assert len(bank) == len(own) + 16 and bank[len(own)].name == "learned 1"
    np.testing.assert_allclose(bank[len(own)].weights, w.kernels.current_frame()[0, 0], rtol=1e-6)
    w.send_kernels()  # sending again replaces the learned ones
    assert len(pg.kernels()) == len(own) + 16
    insp = w._ensure_inspector()
    # (the inspector may first finish loading its demo model)
    with qtbot.waitSignal(insp.modelLoaded, timeout=120_000, check_params_cb=lambda name: "simplecnn" in name):
        assert w.open_in_inspector() > 0
    assert insp.error_box() is None  # no trust prompt, no error


def test_reachable_from_the_playground_and_the_inspector(make_window, qtbot, config_dir):
    from cnnviz.qt.inspector import InspectorWindow

    pg = make_window()
    pg.act_train.trigger()
    tw = pg.train_window
    assert tw.isVisible() and tw.playground is pg and tw.inspector is None
    pg.act_train.trigger()
    assert pg.train_window is tw  # one Train window per owner
    tw.close()
    insp = InspectorWindow(load_demo=False)
    qtbot.addWidget(insp)
    insp.act_train.trigger()
    tw2 = insp.train_window
    assert tw2.isVisible() and tw2.inspector is insp and tw2.playground is None
    tw2.close()
    insp.close()


SMALL = '''
from torch import nn

class Small(nn.Module):
    def __init__(self, n_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4, n_classes)
    def forward(self, x):
        return self.fc(self.conv(x).relu().mean((2, 3)))
'''


def test_a_python_model_asks_for_trust_once_then_trains(train_window, qtbot, tmp_path, monkeypatch):
    w = train_window
    py = tmp_path / "small.py"
    py.write_text(SMALL)
    w.form.model.setEditText(f"{py}:Small")
    w.form.epochs.setValue(1)
    asked = []
    monkeypatch.setattr(w, "_ask_trust", lambda exc: asked.append(str(exc)) or True)
    statuses = []
    w.runFinished.connect(statuses.append)
    w.start()
    qtbot.waitUntil(lambda: statuses == ["finished"], timeout=120_000)
    assert len(asked) == 1 and "small.py" in asked[0]
    assert w.result.status == "finished" and w.kernels.current_frame().shape == (4, 1, 3, 3)


def test_refusing_trust_runs_nothing(train_window, qtbot, tmp_path, monkeypatch):
    w = train_window
    py = tmp_path / "small.py"
    py.write_text(SMALL)
    w.form.model.setEditText(f"{py}:Small")
    monkeypatch.setattr(w, "_ask_trust", lambda exc: False)
    with qtbot.waitSignal(w.runFinished, timeout=60_000) as fin:
        w.start()
    assert fin.args == ["error"] and "trust" in w.last_message.lower()
    assert not (tmp_path / "run").exists()
