"""The model inspector window, driven like a user would: the demo model and small test models,
layers and channels chosen with mouse and keys, numbers checked against the core, drawing on
the canvas, the trust dialog, a failing load, a live video, exports, and a clean close."""

from __future__ import annotations

import csv
import gc
import os
import subprocess
import sys
import threading
import weakref
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import QPoint, Qt, QThreadPool, QTimer  # noqa: E402
from PySide6.QtWidgets import QDialog, QLabel  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))

torch = pytest.importorskip("torch")

from modelzoo import TinyLeNet, TinyResNet, prepare  # noqa: E402

from cnnviz.qt.inspector import InspectorWindow  # noqa: E402
from cnnviz.qt.inspector.trust_dialog import TrustDialog  # noqa: E402

TIMEOUT = 30_000


def _active_timers(w) -> list[str]:
    return [t.objectName() or f"{t!r} in {t.parent()!r}" for t in w.findChildren(QTimer) if t.isActive()]


@pytest.fixture
def make_inspector(qtbot, config_dir):
    """``make_inspector(**kw)`` → a shown InspectorWindow with its first result on screen (when
    it loads the demo). At teardown every window is closed and must leave no thread behind."""
    made = []
    threads_before = threading.active_count()

    def make(wait: bool = True, **kwargs) -> InspectorWindow:
        w = InspectorWindow(**kwargs)
        qtbot.addWidget(w)
        w.resize(1400, 900)
        w.show()
        made.append(w)
        if wait:
            qtbot.waitUntil(lambda: w.current_capture() is not None, timeout=TIMEOUT)
        return w

    yield make
    for w in made:
        w.close()
        assert not w.inference.isRunning(), "the inference thread is still running after close"
        assert not w.loader.isRunning(), "the loader thread is still running after close"
        assert _active_timers(w) == [], f"timers still active after close: {_active_timers(w)}"
    assert QThreadPool.globalInstance().activeThreadCount() == 0
    assert threading.active_count() <= threads_before


@pytest.fixture
def inspector(make_inspector):
    return make_inspector()


def wait_for(qtbot, w, cond, timeout=TIMEOUT):
    """Wait until the result on screen satisfies ``cond`` and the worker is idle."""
    qtbot.waitUntil(lambda: w.current_capture() is not None and not w.inference.is_busy()
                    and cond(w.current_capture()), timeout=timeout)
    return w.current_capture()


def core_capture(w):
    """What the core records for the window's current input on the window's model."""
    from cnnviz.core.capture import capture

    model = w.current_model()
    x = model.preprocessing.apply(np.array(w.current_input()))
    return capture(model, x)


def click(qtbot, widget, point):
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton, pos=QPoint(int(point.x()), int(point.y())))


# ------------------------------------------------------------------------------- import


def test_importing_the_inspector_does_not_import_torch():
    code = "import sys, cnnviz.qt.inspector; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.stdout.strip().splitlines()[-1] == "False"


_RESPONSIVE = r"""
import os, sys, time
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtCore import QEventLoop, QTimer
from cnnviz.qt.app import create_app
app = create_app(["t"])
from cnnviz.qt.inspector import InspectorWindow
assert "torch" not in sys.modules
w = InspectorWindow()
w.show()
first = w.status_loading.text()
ticks, gaps, last = [0], [], [time.perf_counter()]
def tick():
    now = time.perf_counter()
    gaps.append(now - last[0]); last[0] = now; ticks[0] += 1
timer = QTimer(); timer.timeout.connect(tick); timer.start(20)
loop = QEventLoop()
w.resultShown.connect(loop.quit)
QTimer.singleShot(90_000, loop.quit)
loop.exec()
timer.stop()
print("FIRST", first)
print("RESULT", w.current_capture() is not None, ticks[0], round(max(gaps), 3), round(sum(gaps), 3))
w.close()
"""


def test_torch_loads_off_the_gui_thread_and_the_window_stays_responsive():
    out = subprocess.run([sys.executable, "-c", _RESPONSIVE], capture_output=True, text=True, timeout=120,
                         cwd=str(Path(__file__).resolve().parents[2]))
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if line.startswith(("FIRST", "RESULT")))
    assert lines.get("FIRST") == "Loading PyTorch…", out.stdout + out.stderr
    ok, ticks, worst_gap, total = lines["RESULT"].split()
    assert ok == "True"
    # the GUI thread kept ticking every 20 ms while torch was imported and the model loaded: no
    # pause took more than a small part of the whole (importing torch on the GUI thread would
    # be one pause of most of it)
    assert int(ticks) >= 20 and float(worst_gap) < float(total) / 3, lines["RESULT"]


# ------------------------------------------------------------------------------- demo model


def test_opens_on_the_demo_with_every_layer_and_reads_the_sample_digit(qtbot, inspector):
    w = inspector
    res = wait_for(qtbot, w, lambda r: True)
    ref = core_capture(w)
    assert res.names() == ref.names()
    assert w.layer_table.table.rowCount() == len(ref.layers)
    assert [w.layer_table.table.item(i, 1).text() for i in range(len(ref.layers))] == ref.names()
    shapes = [w.layer_table.table.item(i, 3).text() for i in range(len(ref.layers))]
    assert shapes == ["×".join(map(str, a.shape)) for a in ref.layers]
    # the bundled sample is a "3" and the trained demo reads it
    assert w.predictions.top()[1] == "3"
    assert res.predictions[0][2] > 0.5
    # the first view is the first convolution, with one tile per channel
    assert w.selected_layer() == "conv1"
    assert w.grid.tile_count() == ref.layer("conv1").shape[0]
    # the receptive-field column is filled from layer geometry
    rf_col = {w.layer_table.table.item(i, 1).text(): w.layer_table.table.item(i, 5).text()
              for i in range(len(ref.layers))}
    assert rf_col["conv1"] == "3" and rf_col["conv2"] == "5" and rf_col["fc2"] == "whole input"


def test_layers_and_channels_with_mouse_and_keys(qtbot, inspector):
    w = inspector
    res = wait_for(qtbot, w, lambda r: True)
    names = res.names()
    # mouse: a row of the layer table
    rect = w.layer_table.row_rect("conv3")
    click(qtbot, w.layer_table.table.viewport(), rect.center())
    res = wait_for(qtbot, w, lambda r: r.layer == "conv3")
    assert w.grid.tile_count() == res.layer_info().shape[0] == res.activation.shape[0]
    # mouse: a tile of the grid
    click(qtbot, w.grid.viewport(), w.grid.tile_rect(5).center())
    assert w.selected_channel() == 5 and w.grid.selected == 5
    assert "channel 5 of" in w.detail.title.text()
    # keys: right / left move between channels, down / up between layers
    w.grid.setFocus()
    qtbot.keyClick(w.grid, Qt.Key.Key_Right)
    assert w.selected_channel() == 6
    qtbot.keyClick(w.grid, Qt.Key.Key_Left)
    qtbot.keyClick(w.grid, Qt.Key.Key_Left)
    assert w.selected_channel() == 4
    qtbot.keyClick(w.grid, Qt.Key.Key_Down)
    nxt = names[names.index("conv3") + 1]
    wait_for(qtbot, w, lambda r: r.layer == nxt)
    assert w.selected_layer() == nxt and w.layer_table.table.currentRow() == names.index(nxt)
    qtbot.keyClick(w.grid, Qt.Key.Key_Up)
    qtbot.keyClick(w.grid, Qt.Key.Key_Up)
    prev = names[names.index("conv3") - 1]
    wait_for(qtbot, w, lambda r: r.layer == prev)
    # keys work in the large view too
    qtbot.keyClick(w.detail, Qt.Key.Key_Right)
    assert w.selected_channel() == 5
    # a vector layer (the core's layout): one near-square map holding all 10 features
    w.select_layer("fc2")
    res = wait_for(qtbot, w, lambda r: r.layer == "fc2")
    assert w.grid.tile_count() == 1 and res.layer_info().layout == "vector"
    vals = res.activation[0][np.isfinite(res.activation[0])]
    np.testing.assert_allclose(vals, core_capture(w).layer("fc2").first.numpy(), atol=1e-5)


def test_channel_stats_match_numpy_on_the_captured_tensor(qtbot, inspector):
    w = inspector
    ref = core_capture(w)
    # fc1 is a vector: one map of all its features (the core's layout), so its stats are the vector's
    for layer, channel in (("conv2", 3), ("relu2", 1), ("pool2", 7), ("fc1", 0)):
        w.select_layer(layer)
        wait_for(qtbot, w, lambda r, layer=layer: r.layer == layer)
        w.select_channel(channel)
        maps = ref.layer(layer).first.numpy()
        a = (maps[channel] if maps.ndim == 3 else maps).astype(np.float64)
        s = w.detail.stats
        assert s["min"] == pytest.approx(a.min(), abs=1e-5)
        assert s["max"] == pytest.approx(a.max(), abs=1e-5)
        assert s["mean"] == pytest.approx(a.mean(), abs=1e-5)
        assert s["std"] == pytest.approx(a.std(), abs=1e-5)
        assert s["zeros_pct"] == pytest.approx(100.0 * np.mean(a == 0), abs=1e-4)
        assert s["dead"] == bool(np.all(a == 0))
        # the large view shows that channel: its grey/colour levels follow the values
        np.testing.assert_array_equal(w.detail.view.array(), w.grid.tiles()[channel])
    # a dead channel (all zeros after a ReLU) is flagged in words
    relu = ref.layer("relu2").first.numpy()
    dead = [c for c in range(relu.shape[0]) if not relu[c].any()]
    w.select_layer("relu2")
    wait_for(qtbot, w, lambda r: r.layer == "relu2")
    if dead:
        w.select_channel(dead[0])
        assert "dead" in w.detail.flag.text()
    w.select_channel(next(c for c in range(relu.shape[0]) if c not in dead))
    assert "dead" not in w.detail.flag.text()


def test_per_layer_levels_and_colormaps(qtbot, inspector):
    w = inspector
    w.select_layer("conv2")
    res = wait_for(qtbot, w, lambda r: r.layer == "conv2")
    w.activations.norm_box.setCurrentIndex(w.activations.norm_box.findData("layer"))
    lo, hi = w.grid.levels
    assert hi == pytest.approx(np.abs(res.activation).max(), rel=1e-6) and lo == -hi  # signed: symmetric
    w.activations.cmap_box.setCurrentIndex(w.activations.cmap_box.findData("gray"))
    t = w.grid.tiles()
    assert np.array_equal(t[..., 0], t[..., 1])  # grey
    # the grid paints only what is in view
    w.activations.size_slider.setValue(160)
    w.grid.grab()  # a full paint, now
    assert 0 < w.grid.painted_tiles <= w.grid.tile_count()


def test_cam_and_receptive_field_overlays_have_the_inputs_shape(qtbot, inspector):
    from cnnviz.core.explain import ReceptiveField, effective_rf, grad_cam, receptive_field, theoretical_rf_box

    w = inspector
    w.show_tab("cam")
    res = wait_for(qtbot, w, lambda r: r.cam is not None)
    hw = res.input_shape[1:]
    assert res.cam.heatmap.shape == hw
    assert w.cam_view.overlay().shape == (*hw, 3)
    assert w.cam_view.heatmap_image().shape == (*hw, 3)
    assert "pool2" in w.cam_view.caption.text() and "default" in w.cam_view.caption.text()
    assert w.cam_view.layer_box.currentText() == "default: pool2"
    model = w.current_model()
    x = model.preprocessing.apply(np.array(w.current_input()))
    heat, layer = grad_cam(model, x)
    assert layer == "pool2"
    np.testing.assert_allclose(res.cam.heatmap, heat, atol=1e-5)
    # another class and layer
    w.set_cam(5, "conv2")
    res = wait_for(qtbot, w, lambda r: r.cam is not None and r.cam.layer == "conv2")
    assert res.cam.target_class == 5 and "conv2" in w.cam_view.caption.text()

    # receptive field: click a unit of conv3's map in the RF tab
    w.select_layer("conv3")
    w.show_tab("rf")
    wait_for(qtbot, w, lambda r: r.layer == "conv3")
    w.select_channel(2)
    click(qtbot, w.rf_view.map_view, w.rf_view.map_view.widget_point(4, 9))
    res = wait_for(qtbot, w, lambda r: r.rf is not None and r.rf.unit == (4, 9))
    assert res.rf.erf.shape == hw
    assert w.rf_view.map_title.text() == "conv3, channel 2: unit (4, 9); click another"
    assert w.rf_view.erf_view.array().shape == (*hw, 3)
    rf = receptive_field(model, x.shape)["conv3"]
    assert res.rf.box == theoretical_rf_box(rf, (4, 9), hw)
    assert res.rf.size == rf.size == (10, 10)
    np.testing.assert_allclose(res.rf.erf, effective_rf(model, x, "conv3", 2, (4, 9)), atol=1e-5)
    # every pixel with gradient lies inside the theoretical box
    y0, x0, y1, x1 = res.rf.box
    outside = res.rf.erf.copy()
    outside[y0:y1, x0:x1] = 0
    assert outside.max() == 0 and res.rf.erf.max() == pytest.approx(1.0)
    assert isinstance(rf, ReceptiveField)


def test_drawing_on_the_canvas_changes_the_prediction(qtbot, inspector):
    w = inspector
    before = wait_for(qtbot, w, lambda r: True).predictions
    canvas = w.canvas
    w.canvas_panel.clear_button.click()
    wait_for(qtbot, w, lambda r: not w.current_input().any())
    blank = w.current_capture().predictions
    # draw a "1": a vertical stroke down the middle, in several mouse moves
    n = w.canvas.emitted
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=canvas.widget_point(58, 20).toPoint())
    for y in range(24, 96, 6):
        qtbot.mouseMove(canvas, pos=canvas.widget_point(56 - (y - 20) // 12, y).toPoint())
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=canvas.widget_point(52, 94).toPoint())
    assert w.canvas.emitted > n
    res = wait_for(qtbot, w, lambda r: r.predictions != blank)
    assert w.current_input().max() == pytest.approx(1.0)
    assert res.predictions[0][1] == "1"
    assert res.predictions != before
    # the layers changed with it
    ref = core_capture(w)
    np.testing.assert_allclose(res.activation, ref.layer(res.layer).first.numpy(), atol=1e-5)


# ------------------------------------------------------------------------------- loading


def _script_model(tmp_path) -> Path:
    path = tmp_path / "lenet.ts"
    torch.jit.save(torch.jit.script(prepare(TinyLeNet())), str(path))
    return path


def test_trust_dialog_blocks_an_untrusted_torchscript_file_until_accepted(qtbot, inspector, tmp_path,
                                                                          monkeypatch):
    from cnnviz.core.trust import file_sha256

    w = inspector
    path = _script_model(tmp_path)
    w.set_image(np.random.default_rng(0).random((28, 28), dtype=np.float32))
    asked = []

    def reject(self):
        asked.append(self.findChild(QLabel, "trust-why").text())
        return QDialog.DialogCode.Rejected

    monkeypatch.setattr(TrustDialog, "exec", reject)
    with qtbot.waitSignal(w.loadFailed, timeout=TIMEOUT) as blocker:
        w.load_model_spec(str(path))
    assert asked and "TorchScript" in asked[0] and "runs" in asked[0]  # it says why
    assert "not trust" in blocker.args[0] and w.status_text_is_error()
    assert w.current_model().kind == "demo"  # nothing loaded
    assert len(w.trust_store) == 0

    monkeypatch.setattr(TrustDialog, "exec", lambda self: QDialog.DialogCode.Accepted)
    with qtbot.waitSignal(w.modelLoaded, timeout=TIMEOUT):
        w.load_model_spec(str(path))
    assert w.current_model().kind == "torchscript"
    assert w.trust_store.is_trusted_hash(file_sha256(path))  # remembered by hash
    res = wait_for(qtbot, w, lambda r: "conv1" in r.names())
    assert res.names()[:3] == ["conv1", "relu1", "pool1"]
    assert res.layers[0].rf_text == "—"  # TorchScript: no geometry, and the table says so

    # remembered: the next load does not ask again
    def fail(self):
        raise AssertionError("asked again for a trusted file")

    monkeypatch.setattr(TrustDialog, "exec", fail)
    w.load_model_spec("demo")
    qtbot.waitUntil(lambda: w.current_model().kind == "demo", timeout=TIMEOUT)
    with qtbot.waitSignal(w.modelLoaded, timeout=TIMEOUT):
        w.load_model_spec(str(path))
    # ...but a changed file is a new file
    path.write_bytes(path.read_bytes() + b"\0")
    with qtbot.waitSignal(w.loadFailed, timeout=TIMEOUT):
        monkeypatch.setattr(TrustDialog, "exec", lambda self: QDialog.DialogCode.Rejected)
        w.load_model_spec(str(path))


def test_trust_dialog_says_why(qtbot, tmp_path):
    from cnnviz.core.errors import TrustRequired

    err = TrustRequired("net.pt is a pickled Python object; unpickling can run any code the file names",
                        "load it only if you trust where it came from")
    err.path, err.format, err.sha256 = tmp_path / "net.pt", "pickle", "ab" * 32
    d = TrustDialog(err)
    qtbot.addWidget(d)
    text = " ".join(label.text() for label in d.findChildren(QLabel))
    assert "can run code" in text and "unpickling can run any code" in text
    assert "ab" * 32 in text and "pickled Python object" in text
    assert d.cancel_button.isDefault()  # Enter does not trust
    assert d.remember


def test_a_model_that_fails_to_load_leaves_the_window_usable(qtbot, inspector, tmp_path):
    w = inspector
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(os.urandom(256))
    with qtbot.waitSignal(w.loadFailed, timeout=TIMEOUT) as blocker:
        w.load_model_spec(str(bad))
    assert "garbage.pt" in blocker.args[0] and "not a model" in blocker.args[0]
    box = w.error_box()
    assert box is not None and box.isVisible()
    assert "How to fix it" in box.text()
    assert w.status_text_is_error() and "previous model stays" in w.last_message
    assert w.current_model().kind == "demo"
    # still usable: a layer change is computed and shown
    w.select_layer("conv2")
    wait_for(qtbot, w, lambda r: r.layer == "conv2")
    # an unknown architecture name says what would work
    with qtbot.waitSignal(w.loadFailed, timeout=TIMEOUT) as blocker:
        w.load_model_spec("resnet18x")
    assert "did you mean" in blocker.args[0] and "resnet18" in blocker.args[0]
    # a model whose forward cannot take this input: the message names the fix, nothing breaks
    w.set_preprocessing({"resize": [40, 40], "center_crop": None, "mean": [0.0], "std": [1.0],
                         "color": "gray", "interpolation": "bilinear"})
    qtbot.waitUntil(lambda: w.inference.errors > 0, timeout=TIMEOUT)
    assert "input size" in w.last_message
    status = w.model_panel.pre.status  # said by the form too, not only in the status bar
    assert status.isVisibleTo(w) and "input size" in status.text() and "last settings that worked" in status.text()
    w.set_preprocessing(None)
    wait_for(qtbot, w, lambda r: r.input_shape == (1, 28, 28))
    assert not status.isVisibleTo(w)
    w.set_preprocessing({"resize": None, "center_crop": None, "mean": [0.5, 0.5], "std": [1.0],
                         "color": "gray", "interpolation": "bilinear"})
    assert status.isVisibleTo(w) and "Not applied" in status.text() and "mean" in status.text()


def test_a_pickled_resnet_shaped_model_with_in_place_relus(qtbot, inspector, tmp_path):
    w = inspector
    model = prepare(TinyResNet())
    path = tmp_path / "resnet.pt"
    torch.save(model, str(path))
    w.set_image(np.random.default_rng(1).random((32, 32, 3), dtype=np.float32))
    with qtbot.waitSignal(w.modelLoaded, timeout=TIMEOUT):
        w.load_model_spec(str(path), trust=True)
    res = wait_for(qtbot, w, lambda r: "layer1.0.relu#2" in r.names())
    ref = core_capture(w)
    assert res.names() == ref.names()
    # every layer: as many tiles as channels, values as the core captured them
    for name in ("bn1", "layer1.0.bn2", "layer1.0.relu#2", "avgpool", "fc"):
        w.select_layer(name)
        res = wait_for(qtbot, w, lambda r, name=name: r.layer == name)
        info = res.layer_info()
        assert w.grid.tile_count() == info.channels
        # the core's maps for the layer's layout (fc: one near-square map, NaN-padded)
        np.testing.assert_allclose(res.activation, ref.layer(name).maps.numpy(), atol=1e-5)
    # bn1 was captured before the in-place ReLU overwrote it: it has negative values
    w.select_layer("bn1")
    res = wait_for(qtbot, w, lambda r: r.layer == "bn1")
    assert res.activation.min() < 0


def test_torchvision_and_torch_export_models(qtbot, inspector, tmp_path):
    pytest.importorskip("torchvision")
    w = inspector
    w.set_image(np.random.default_rng(2).random((120, 160, 3), dtype=np.float32))
    with qtbot.waitSignal(w.modelLoaded, timeout=TIMEOUT):
        w.load_model_spec("resnet18", "random")
    res = wait_for(qtbot, w, lambda r: "layer4.1.conv2" in r.names())
    assert res.input_shape == (3, 224, 224) and res.layer == "conv1"
    assert res.predictions[0][1] in w.current_model().labels  # ImageNet names come with it
    assert w.layer_table.table.item(res.names().index("layer1.0.conv1"), 5).text() == "19"
    w.show_tab("weights")
    res = wait_for(qtbot, w, lambda r: r.weights is not None)
    assert res.weights.color and res.weights.shape == (64, 3, 7, 7)  # the first layer in colour
    assert "in colour" in w.weights_view.info.text()

    model = prepare(TinyLeNet())
    ep = torch.export.export(model, (torch.zeros(1, 1, 28, 28),))
    path = tmp_path / "lenet.pt2"
    torch.export.save(ep, str(path))
    with qtbot.waitSignal(w.modelLoaded, timeout=TIMEOUT):
        w.load_model_spec(str(path), trust=True)
    res = wait_for(qtbot, w, lambda r: r.names()[:2] == ["conv1", "relu1"])
    assert w.current_model().kind == "export" and res.input_shape == (1, 28, 28)
    np.testing.assert_allclose(res.activation, core_capture(w).layer("conv1").first.numpy(), atol=1e-5)


def test_model_swap_removes_every_hook_from_the_old_model(qtbot, inspector):
    w = inspector
    old = w.current_model().module
    assert any(len(m._forward_hooks) for m in old.modules())  # the recorder's hooks
    with qtbot.waitSignal(w.modelLoaded, timeout=TIMEOUT):
        w.load_model_spec("demo")
    qtbot.waitUntil(lambda: w.current_model().module is not old, timeout=TIMEOUT)
    wait_for(qtbot, w, lambda r: w.engine.model is w.current_model())
    assert all(len(m._forward_hooks) == 0 for m in old.modules())


def test_python_class_with_weights_and_labels_and_preprocessing(qtbot, inspector, tmp_path):
    from modelzoo import write_model_py

    w = inspector
    py = write_model_py(tmp_path)
    ref_model = prepare(TinyLeNet())
    weights = tmp_path / "w.pth"
    torch.save(ref_model.state_dict(), str(weights))
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"digit {i}" for i in range(10)))
    with qtbot.waitSignal(w.modelLoaded, timeout=TIMEOUT):
        w.load_model_spec(f"{py}:Net", str(weights), trust=True, labels=str(labels))
    # its default preprocessing has no resize: the 112x112 canvas does not fit its linear layers
    qtbot.waitUntil(lambda: w.inference.errors > 0, timeout=TIMEOUT)
    assert "input size" in w.last_message
    # fixed in the preprocessing editor
    w.model_panel.pre.resize_edit.setText("28, 28")
    w.model_panel.pre.apply_button.click()
    res = wait_for(qtbot, w, lambda r: r.input_shape == (1, 28, 28))
    assert res.predictions[0][1].startswith("digit ")
    assert "⚠" not in w.model_panel.labels_info.text()
    # a labels file that does not fit the model's 10 classes is pointed out next to it
    three = tmp_path / "three.txt"
    three.write_text("a\nb\nc\n")
    assert w.load_labels(three)
    wait_for(qtbot, w, lambda r: r.labels is not None and len(r.labels) == 3)
    qtbot.waitUntil(lambda: "⚠ the model outputs 10 classes, the file names 3" in w.model_panel.labels_info.text(),
                    timeout=TIMEOUT)
    assert w.load_labels(labels)
    qtbot.waitUntil(lambda: "⚠" not in w.model_panel.labels_info.text(), timeout=TIMEOUT)
    x = torch.from_numpy(np.ascontiguousarray(res.input_image[..., 0], dtype=np.float32) / 255.0)
    assert x.shape == (28, 28)
    # the recent list remembers the spec (never the trust)
    assert w.recent.items()[0].spec == f"{py}:Net"


def test_fp16_on_the_cpu_is_refused_and_the_model_keeps_running(qtbot, inspector):
    w = inspector
    w.dtype_box.setCurrentText("float16")
    qtbot.waitUntil(lambda: w.dtype_box.currentText() == "float32", timeout=TIMEOUT)
    assert "GPU" in w.last_message and w.status_text_is_error()
    res = wait_for(qtbot, w, lambda r: True)
    assert res.dtype == "float32" and "CPU" in w.status_device.text()


# ------------------------------------------------------------------------------- live, export, close


def _write_video(path: Path, n: int = 30, size=(64, 48)) -> Path:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, size)
    assert writer.isOpened()
    rng = np.random.default_rng(0)
    for i in range(n):
        frame = np.zeros((size[1], size[0], 3), np.uint8)
        frame[:, (i * 2) % size[0]:(i * 2) % size[0] + 8] = 255
        frame += rng.integers(0, 30, frame.shape, dtype=np.uint8)
        writer.write(frame)
    writer.release()
    return path


def test_live_video_runs_the_latest_frame_and_closes_cleanly(qtbot, make_inspector, tmp_path):
    from cnnviz.core.sources import VideoFileSource

    threads_before = threading.active_count()
    w = make_inspector()
    video = _write_video(tmp_path / "clip.avi")
    src = VideoFileSource(video, loop=True, fps_limit=400.0)
    assert w.set_source(src)
    assert src.is_running
    start = w.inference.completed
    qtbot.waitUntil(lambda: w.inference.completed - start >= 15, timeout=TIMEOUT)
    # frames the model could not keep up with were dropped at the source, never queued
    assert src.buffer.dropped > 0
    assert src.buffer.max_depth <= 1
    assert w.inference.max_pending <= 1 and w.inference.pending <= 1
    # frames arrive by signal from the frame wait; no timer polls the source on the GUI thread
    polls = [t.objectName() for t in w.findChildren(QTimer) if t.isActive() and not t.isSingleShot()
             and t.interval() < 1000]  # (the status bar's message timer runs for seconds)
    assert polls == []
    res = w.current_capture()
    assert res.input_shape == (1, 28, 28) and len(res.predictions) == 5
    # freeze keeps the frame
    w.freeze_button.click()
    qtbot.wait(50)
    frozen_input = w.current_input()
    n = w.inference.submitted
    qtbot.wait(300)
    assert w.current_input() is frozen_input and w.inference.submitted == n
    w.select_layer("conv2")  # the views still work on the frozen frame
    wait_for(qtbot, w, lambda r: r.layer == "conv2")
    w.freeze_button.click()
    qtbot.waitUntil(lambda: w.current_input() is not frozen_input, timeout=TIMEOUT)
    # closing stops the source and joins every thread
    thread = src.capture_thread
    w.close()
    assert not src.is_running and not thread.is_alive()
    assert not w.inference.isRunning() and not w.loader.isRunning()
    assert threading.active_count() <= threads_before


def test_exports_png_npz_and_csv(qtbot, inspector, tmp_path):
    from cnnviz.core.images import load_image

    w = inspector
    w.select_layer("conv2")
    res = wait_for(qtbot, w, lambda r: r.layer == "conv2")
    png = w.export_grid_png(tmp_path / "grid.png")
    img = load_image(png)
    c, h, wd = res.activation.shape
    assert img.pixels.shape[0] >= h and img.pixels.shape[1] >= wd and img.pixels.size >= c * h * wd
    steps = []
    w.exportProgress.connect(lambda job, done, total, name: steps.append((job, done, total, name)))
    with qtbot.waitSignal(w.exportFinished, timeout=TIMEOUT):
        w.export_npz(tmp_path / "all.npz")
        w.export_csv(tmp_path / "stats.csv")
        assert w.task_progress.isVisibleTo(w) and "Exporting" in w.task_label.text()
    assert not w.task_progress.isVisibleTo(w)                      # gone when the files are written
    ref = core_capture(w)
    n = len(ref.names())
    # the worker may have started on the .npz alone before the CSV joined the job; the last
    # job writes both: one step per layer for the .npz and one per layer for the CSV, in order
    last = [(d, t, name) for job, d, t, name in steps if job == steps[-1][0]]
    assert [d for d, _t, _name in last] == list(range(1, 2 * n + 1))
    assert {t for _d, t, _name in last} == {2 * n}
    assert [name for _d, _t, name in last[:n]] == ref.names()
    with np.load(tmp_path / "all.npz") as z:
        assert sorted(z.files) == sorted(ref.names())
        for a in ref.layers:
            np.testing.assert_allclose(z[a.name], a.first.numpy(), atol=1e-6)
    rows = list(csv.DictReader((tmp_path / "stats.csv").open()))
    assert [r["name"] for r in rows] == ref.names()
    conv2 = ref.layer("conv2").first.numpy()
    row = rows[ref.names().index("conv2")]
    assert float(row["max"]) == pytest.approx(conv2.max(), rel=1e-4)
    assert float(row["mean"]) == pytest.approx(conv2.mean(), rel=1e-4, abs=1e-6)
    assert int(row["channels"]) == conv2.shape[0]
    # a folder that does not exist is not created behind the user's back (as the PNG export)
    missing = tmp_path / "no" / "such"
    with qtbot.waitSignal(w.exportFinished, timeout=TIMEOUT):
        w.export_npz(missing / "all.npz")
    assert not missing.parent.exists() and "Export failed" in w.last_message and "does not exist" in w.last_message
    assert w.export_grid_png(missing / "grid.png") is None and "does not exist" in w.last_message


def test_a_model_that_cannot_run_shows_no_stale_results_and_exports_do_not_hang(qtbot, inspector, tmp_path):
    """The demo's layers, predictions and tiles must not stay on screen under the name of a
    model whose forward fails; an export asked for then ends with a message."""
    w = inspector
    assert w.layer_table.names() and w.grid.mosaic() is not None  # the demo is shown
    py = tmp_path / "raiser.py"
    py.write_text("import torch.nn as nn\n"
                  "class Raiser(nn.Module):\n"
                  "    def __init__(self):\n"
                  "        super().__init__()\n"
                  "        self.conv = nn.Conv2d(1, 4, 3)\n"
                  "    def forward(self, x):\n"
                  "        raise RuntimeError('boom: my forward is broken')\n")
    errors = w.inference.errors
    with qtbot.waitSignal(w.modelLoaded, timeout=TIMEOUT):
        w.load_model_spec(f"{py}:Raiser", trust=True)
    qtbot.waitUntil(lambda: w.inference.errors > errors, timeout=TIMEOUT)
    assert w.layer_table.names() == [] and w.grid.mosaic() is None
    assert w.predictions.predictions == [] and "could not run" in w.predictions.note and "boom" in w.predictions.note
    assert w.export_grid_png(tmp_path / "grid.png") is None and "Nothing to export" in w.last_message
    errors = w.inference.errors
    w.export_npz(tmp_path / "all.npz")
    qtbot.waitUntil(lambda: w.inference.errors > errors, timeout=TIMEOUT)
    assert not w.task_progress.isVisibleTo(w) and not (tmp_path / "all.npz").exists()
    # the demo again: everything comes back
    with qtbot.waitSignal(w.modelLoaded, timeout=TIMEOUT):
        w.load_model_spec("demo")
    wait_for(qtbot, w, lambda r: "conv1" in r.names())
    assert w.layer_table.names()[0] == "conv1" and w.grid.mosaic() is not None


def test_grad_cam_explains_the_class_the_predictions_put_first_for_a_dense_output(qtbot, inspector, tmp_path):
    w = inspector
    py = tmp_path / "seg.py"
    py.write_text("import torch.nn as nn\n"
                  "class Seg(nn.Module):\n"
                  "    def __init__(self):\n"
                  "        super().__init__()\n"
                  "        self.conv = nn.Conv2d(1, 5, 3, padding=1)\n"
                  "    def forward(self, x):\n"
                  "        return self.conv(x)\n")
    with qtbot.waitSignal(w.modelLoaded, timeout=TIMEOUT):
        w.load_model_spec(f"{py}:Seg", trust=True)
    w.show_tab("cam")
    res = wait_for(qtbot, w, lambda r: r.cam is not None and "conv" in r.names())
    top = res.predictions[0][0]
    assert 0 <= res.cam.target_class < 5 and res.cam.target_class == top
    assert f"class {top}" in w.cam_view.caption.text()


def test_closing_during_a_load_leaves_no_thread(qtbot, make_inspector):
    threads_before = threading.active_count()
    w = make_inspector(wait=False)  # the demo is still loading
    w.close()
    assert not w.loader.isRunning() and not w.inference.isRunning()
    assert threading.active_count() <= threads_before


_SLOW_PY = '''
import threading

import torch
from torch import nn

ARMED, ENTERED, RELEASE = threading.Event(), threading.Event(), threading.Event()


class Slow(nn.Module):
    """Once ARMED, a forward waits for RELEASE: an inference that outlives the close wait."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)
        self.conv2 = nn.Conv2d(4, 4, 3)

    def forward(self, x):
        if ARMED.is_set():
            ENTERED.set()
            RELEASE.wait(30)
        return self.conv2(torch.relu(self.conv1(x))).mean((2, 3))
'''


def _hooks(module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               + len(getattr(m, "_backward_pre_hooks", {})) for m in module.modules())


def test_an_inference_that_outlives_the_close_wait_still_lets_the_model_go(qtbot, make_inspector, tmp_path):
    w = make_inspector()
    py = tmp_path / "slow.py"
    py.write_text(_SLOW_PY)
    with qtbot.waitSignal(w.modelLoaded, timeout=TIMEOUT):
        w.load_model_spec(f"{py}:Slow", trust=True)
    wait_for(qtbot, w, lambda r: r.names()[:2] == ["conv1", "conv2"])
    module = w.current_model().module
    gates = sys.modules[type(module).__module__]
    gates.ARMED.set()
    w.set_image(np.random.default_rng(0).random((24, 24), dtype=np.float32))
    assert gates.ENTERED.wait(30)
    w.close()  # waits CLOSE_WAIT_MS for the forward, then abandons it: the window closes at once
    assert not w.isVisible() and w.inference.isRunning()
    assert _hooks(module) > 0  # the forward still runs with the capture's hooks
    gates.RELEASE.set()
    qtbot.waitUntil(lambda: not w.inference.isRunning(), timeout=TIMEOUT)
    assert _hooks(module) == 0  # removed on the inference thread as soon as the forward returned
    ref = weakref.ref(module)
    del module
    gc.collect()
    assert ref() is None


def test_a_late_result_for_an_older_request_does_not_undo_the_users_layer_choice(qtbot, inspector):
    w = inspector
    wait_for(qtbot, w, lambda cap: True)
    old_rid, old_res = w.inference.last_delivered_id, w._result
    convs = [la.name for la in w.current_capture().layers if "Conv" in la.type]
    assert old_res.layer != convs[-1]
    w.select_layer(convs[-1])  # a newer request is on its way ...
    w._on_result(old_rid, old_res)  # ... when the older result (another layer) is delivered
    assert w.selected_layer() == convs[-1]
    wait_for(qtbot, w, lambda cap: w._result.layer == convs[-1])
    assert w.selected_layer() == convs[-1]
