"""The inspector's parts on their own: the open-model dialog and recent models, the download
progress and cancel, the activation grid with many channels, the drawing canvas's throttle,
and the engine that runs on the worker thread."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import QPoint, Qt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))

from cnnviz.qt.inspector.activation_grid import ActivationGrid  # noqa: E402
from cnnviz.qt.inspector.canvas import DrawingCanvas  # noqa: E402
from cnnviz.qt.inspector.load_dialog import LoadChoice, LoadDialog, RecentModels  # noqa: E402
from cnnviz.core.inspect_results import ChannelStats  # noqa: E402

TIMEOUT = 30_000


# ------------------------------------------------------------------------------- dialog, recents


def test_load_dialog_builds_a_choice_for_every_format(qtbot, tmp_path):
    recent = RecentModels(tmp_path)
    recent.add(LoadChoice("resnet18", "random"))
    d = LoadDialog(None, recent)
    qtbot.addWidget(d)
    d.set_tab("demo")
    assert d.choice() == LoadChoice("demo")
    d.set_tab("torchvision")
    d.tv_name.setCurrentText("resnet50")
    assert d.choice() == LoadChoice("resnet50", "pretrained")
    d.tv_random.setChecked(True)
    assert d.choice() == LoadChoice("resnet50", "random")
    d.tv_local.setChecked(True)
    with pytest.raises(ValueError, match="existing weights file"):
        d.choice()
    w = tmp_path / "w.safetensors"
    w.write_bytes(b"x")
    d.tv_weights.setText(str(w))
    assert d.choice() == LoadChoice("resnet50", str(w))

    py = tmp_path / "net.py"
    py.write_text("import torch\nclass Net(torch.nn.Module):\n    pass\nclass Other:\n    pass\n")
    d.set_tab("python")
    d.py_file.setText(str(py))
    assert [d.py_class.itemText(i) for i in range(d.py_class.count())] == ["Net", "Other"]  # read, not run
    d.py_kwargs.setText("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        d.choice()
    d.py_kwargs.setText('{"n_classes": 10}')
    assert d.choice() == LoadChoice(f"{py}:Net", None, '{"n_classes": 10}')

    d.set_tab("file")
    with pytest.raises(ValueError, match="existing model file"):
        d.choice()
    d.file_path.setText(str(w))
    assert d.choice() == LoadChoice(str(w))
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    d.labels.setText(str(labels))
    assert d.choice().labels == str(labels)

    d.set_tab("recent")
    assert d.recent_list.count() == 1
    assert d.choice().spec == "resnet18" and d.choice().weights == "random"
    # an incomplete form is not accepted: the message shows in the dialog
    d.labels.setText(str(tmp_path / "missing.txt"))
    d.accept()
    assert "does not exist" in d.error.text() and d.result() != d.DialogCode.Accepted


def test_recent_models_persist_and_a_damaged_list_is_kept_aside(tmp_path):
    r = RecentModels(tmp_path)
    for i in range(12):
        r.add(LoadChoice(f"m{i}"))
    r.add(LoadChoice("m3"))
    again = RecentModels(tmp_path)
    assert [c.spec for c in again.items()][:3] == ["m3", "m11", "m10"]
    assert len(again.items()) == 10
    (tmp_path / "inspector_recent.json").write_text("{ not json")
    broken = RecentModels(tmp_path)
    assert broken.items() == [] and "damaged" in broken.warning
    assert (tmp_path / "inspector_recent.json.bak").read_text() == "{ not json"
    broken.add(LoadChoice("demo"))
    assert json.loads((tmp_path / "inspector_recent.json").read_text())["recent"][0]["spec"] == "demo"


def test_download_progress_and_cancel_keep_the_window_responsive(qtbot, config_dir, monkeypatch):
    pytest.importorskip("torchvision")
    from cnnviz.core import weights_download
    from cnnviz.qt.inspector import InspectorWindow

    calls = []

    def fake_download(url, *, progress=None, cancel=None, **kw):
        calls.append(url)
        total = 40 << 20
        progress(0, total)
        progress(total // 2, total)
        deadline = time.monotonic() + 20
        while not cancel.is_set():  # a download that never finishes by itself
            if time.monotonic() > deadline:
                raise AssertionError("never cancelled")
            time.sleep(0.01)
        raise weights_download.DownloadCancelled("the download was cancelled", "nothing was saved")

    monkeypatch.setattr(weights_download, "download_weights", fake_download)
    w = InspectorWindow()
    qtbot.addWidget(w)
    w.show()
    try:
        qtbot.waitUntil(lambda: w.current_capture() is not None, timeout=TIMEOUT)
        w.load_model_spec("resnet18", "pretrained")
        qtbot.waitUntil(lambda: w.load_progress.value() == 500, timeout=TIMEOUT)
        assert w.is_loading() and w.load_progress.isVisible() and w.cancel_button.isVisible()
        assert "Downloading weights: 20.0 / 40.0 MB" in w.status_loading.text()
        # the window works while the download runs
        w.select_layer("conv2")
        qtbot.waitUntil(lambda: w.current_capture().layer == "conv2", timeout=TIMEOUT)
        with qtbot.waitSignal(w.loadFailed, timeout=TIMEOUT) as blocker:
            qtbot.mouseClick(w.cancel_button, Qt.MouseButton.LeftButton)
        assert "cancelled" in blocker.args[0]
        assert not w.is_loading() and not w.load_progress.isVisible()
        assert w.current_model().kind == "demo" and len(calls) == 1
    finally:
        w.close()
    assert not w.loader.isRunning() and not w.inference.isRunning()


# ------------------------------------------------------------------------------- grid, canvas


def test_grid_with_many_channels_paints_only_what_is_visible(qtbot):
    g = ActivationGrid()
    qtbot.addWidget(g)
    g.resize(600, 400)
    g.show()
    qtbot.waitExposed(g)
    rng = np.random.default_rng(0)
    maps = rng.standard_normal((1024, 7, 7)).astype(np.float32)
    maps[17] = 0.0
    stats = ChannelStats(maps.reshape(1024, -1).min(1), maps.reshape(1024, -1).max(1), maps.reshape(1024, -1).mean(1),
                         maps.reshape(1024, -1).std(1), (maps.reshape(1024, -1) == 0).mean(1) * 100)
    g.set_maps(maps, stats)
    g.set_tile_px(48)
    g.grab()  # a full paint, now
    assert g.tile_count() == 1024
    assert 0 < g.painted_tiles < 200  # a page of tiles, not all 1024: the paint cost is a page's
    assert g.verticalScrollBar().maximum() > 0
    # selecting a far channel scrolls to it; clicking a tile reports its channel
    g.set_selected(1000)
    assert g.visible_range().start <= 1000 < g.visible_range().stop
    got = []
    g.channelClicked.connect(got.append)
    r = g.tile_rect(1000)
    qtbot.mouseClick(g.viewport(), Qt.MouseButton.LeftButton, pos=r.center())
    assert got == [1000]
    assert g.index_at(QPoint(r.right() + 2, r.center().y())) is None  # the gap between tiles
    # signed maps: per-channel levels are symmetric, so 0 is the colormap's middle (white)
    tile = g.tiles()[17]
    assert tuple(tile[0, 0]) == tuple(g.tiles()[17][3, 3])
    assert stats.dead[17] and not stats.dead[16]


def test_canvas_draws_white_on_black_and_throttles_while_drawing(qtbot):
    c = DrawingCanvas(throttle_ms=40)
    qtbot.addWidget(c)
    c.resize(224, 224)
    c.show()
    got = []
    c.imageChanged.connect(got.append)
    c.clear()
    assert len(got) == 1 and got[0].max() == 0
    qtbot.mousePress(c, Qt.MouseButton.LeftButton, pos=c.widget_point(20, 56).toPoint())
    for x in range(22, 92, 2):  # 35 moves in a burst: far fewer images than moves
        qtbot.mouseMove(c, pos=c.widget_point(x, 56).toPoint())
    qtbot.wait(60)
    qtbot.mouseRelease(c, Qt.MouseButton.LeftButton, pos=c.widget_point(92, 56).toPoint())
    assert 2 <= len(got) < 20
    img = got[-1]
    assert img.shape == (112, 112) and img.dtype == np.float32
    assert img[56, 30:90].min() > 0.9 and img[10, :].max() == 0.0  # a white line, black elsewhere
    c.set_brush(20)
    qtbot.mousePress(c, Qt.MouseButton.RightButton, pos=c.widget_point(56, 56).toPoint())  # erase
    qtbot.mouseRelease(c, Qt.MouseButton.RightButton, pos=c.widget_point(56, 56).toPoint())
    assert got[-1][56, 56] == 0.0 and got[-1][56, 30] > 0.9


# ------------------------------------------------------------------------------- engine


def test_engine_reuses_the_capture_for_the_same_frame_and_drops_hooks_on_swap():
    torch = pytest.importorskip("torch")
    from modelzoo import TinyLeNet, prepare

    from cnnviz.core.models import LoadedModel, Preprocessing
    from cnnviz.core.inspect_engine import InspectEngine, InspectRequest

    def loaded(m):
        return LoadedModel(module=m, kind="python", name="t", source=None,
                           preprocessing=Preprocessing(color="gray", resize=(28, 28)), labels=None, input_channels=1)

    a, b = prepare(TinyLeNet()), prepare(TinyLeNet(), seed=3)
    e = InspectEngine()
    img = np.random.default_rng(0).random((40, 40), dtype=np.float32)
    r1 = e(InspectRequest(token=1, model=loaded(a), pixels=img, frame_id=1))
    r2 = e(InspectRequest(token=1, model=loaded(a), pixels=img, frame_id=1, layer="conv2"))
    assert e.runs == 1 and r2.reused_capture and r2.layer == "conv2" and r1.layer == "conv1"
    r3 = e(InspectRequest(token=1, model=loaded(a), pixels=img, frame_id=2))
    assert e.runs == 2 and not r3.reused_capture
    assert any(len(m._forward_hooks) for m in a.modules())
    e(InspectRequest(token=2, model=loaded(b), pixels=img, frame_id=2))
    assert all(len(m._forward_hooks) == 0 for m in a.modules())
    e.close()
    assert all(len(m._forward_hooks) == 0 for m in b.modules())
    # results carry numpy only
    for v in vars(r3).values():
        assert not isinstance(v, torch.Tensor)
    assert isinstance(r3.activation, np.ndarray) and r3.activation.flags.owndata
    assert threading.current_thread() is threading.main_thread()


def test_grid_tiles_keep_the_maps_aspect(qtbot):
    """A 10x100 map is drawn as a wide strip centred in its square cell, not squashed square."""
    g = ActivationGrid()
    qtbot.addWidget(g)
    g.resize(400, 300)
    g.show()
    qtbot.waitExposed(g)
    maps = np.ones((2, 10, 100), np.float32)
    maps[:, :, ::2] = 0.0
    g.set_maps(maps)
    g.set_tile_px(100)
    g.set_selected(1)  # no selection frame on tile 0
    img = g.viewport().grab().toImage()
    r = g.tile_rect(0)
    above = {img.pixelColor(r.left() + dx, r.top() + 5).rgb() for dx in range(10, 30)}
    centre = {img.pixelColor(r.left() + dx, r.center().y()).rgb() for dx in range(10, 30)}
    assert len(above) == 1  # above the strip: plain background (a squashed tile has stripes there)
    assert len(centre) > 1  # the strip's stripes, at the cell's middle
