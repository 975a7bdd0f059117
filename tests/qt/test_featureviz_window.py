"""The "What a channel looks for" window on the demo model: live feature visualization,
cancel, dataset examples, guided backprop beside Grad-CAM, adversarial chart; no thread or
timer left running."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import QTimer

from cnnviz.core.images import save_png
from cnnviz.core.resources import resources_dir


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path / "cache"))
    from cnnviz.qt.featureviz.window import FeatureVizWindow

    threads = threading.active_count()
    w = FeatureVizWindow(layer="relu2")
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.probe is not None and w.state.layer == "relu2", timeout=30_000)
    yield w
    w.close()
    assert not [t for t in w.findChildren(QTimer) if t.isActive()]
    qtbot.waitUntil(lambda: threading.active_count() <= threads, timeout=10_000)


def test_featviz_grid_beside_activations_live_and_cached(window, qtbot, tmp_path):
    w = window
    assert w.act_grid.count() == 8 and w.viz_grid.count() == 0
    w.steps_spin.setValue(20)
    partials = []
    w.runner.partial.connect(lambda tid, p: partials.append(p.step))
    w.viz_all_button.click()
    qtbot.waitUntil(lambda: "relu2" in w.state.featviz, timeout=60_000)
    assert w.viz_grid.count() == 8 and partials and partials[-1] <= 20
    assert "activation up to" in w.value_label.text()
    # a click on a tile selects that channel everywhere
    rect = w.viz_grid.tile_rect(5)
    qtbot.mouseClick(w.viz_grid, __import__("PySide6.QtCore", fromlist=["Qt"]).Qt.MouseButton.LeftButton,
                     pos=rect.center())
    assert w.state.channel == 5 and w.channel_spin.value() == 5 and w.act_grid._selected == 5
    assert w.channel_viz.count() == 1
    # the same settings again: from the cache
    w.viz_all_button.click()
    qtbot.waitUntil(lambda: "(cached)" in w.value_label.text(), timeout=30_000)
    w.grab().save(str(tmp_path / "featviz.png"))


def test_cancel_leaves_no_cache_entry_and_window_keeps_working(window, qtbot, tmp_path):
    w = window
    w.steps_spin.setValue(4000)
    w.viz_all_button.click()
    qtbot.waitUntil(lambda: w.progress.value() > 0, timeout=30_000)
    assert w.cancel_button.isEnabled()
    w.cancel_button.click()
    qtbot.waitUntil(lambda: not w.runner.is_busy(), timeout=30_000)
    assert "cancelled" in w.statusBar().currentMessage()
    assert not list((tmp_path / "cache").rglob("*.npz"))
    assert "relu2" not in w.state.featviz


def test_dataset_examples_tab(window, qtbot, tmp_path):
    w = window
    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in (resources_dir() / "samples").glob("*.png"):
        (folder / p.name).write_bytes(p.read_bytes())
    save_png(folder / "noise.png", np.random.default_rng(0).integers(0, 256, (30, 30, 3), dtype=np.uint8))
    (folder / "junk.png").write_bytes(b"not a png")
    w.tabs.setCurrentIndex(1)
    w.folder_edit.setText(str(folder))
    w.k_spin.setValue(3)
    w.sweep_button.click()
    qtbot.waitUntil(lambda: w.state.sweep is not None, timeout=60_000)
    assert "5 images swept, 1 skipped" in w.sweep_label.text()
    assert "junk.png" in w.skipped_text.toPlainText()
    assert w.top_grid.count() == 3
    w.channel_spin.setValue(2)
    assert w.top_grid.count() == 3


def test_unit_view_and_adversarial(window, qtbot, tmp_path):
    w = window
    w.tabs.setCurrentIndex(2)
    w.unit_button.click()
    qtbot.waitUntil(lambda: w.guided_view.count() == 1 and w.cam_view.count() == 1, timeout=30_000)
    assert "unit" in w.unit_label.text()
    w.tabs.setCurrentIndex(3)
    w.attack_button.click()
    qtbot.waitUntil(lambda: getattr(w, "divergence", None) is not None, timeout=60_000)
    assert len(w.divergence) >= 10 and w.divergence_bars is not None
    assert "→" in w.attack_label.text() and w.adv_view.count() == 1
    w.grab().save(str(tmp_path / "adversarial.png"))


def test_lesson_tabs_exist(window):
    from cnnviz.core.lessons import lesson
    from cnnviz.qt.featureviz.window import TAB_KEYS

    for key in ("what-a-channel-looks-for", "a-change-you-cannot-see"):
        tab = lesson(key).inspector["featureviz"]
        window.show_tab(tab)
        assert TAB_KEYS[window.tabs.currentIndex()] == tab


def test_bad_folder_is_a_message(window, qtbot, tmp_path):
    w = window
    w.folder_edit.setText(str(tmp_path / "missing"))
    w.sweep_button.click()
    qtbot.waitUntil(lambda: "does not exist" in w.statusBar().currentMessage(), timeout=30_000)
    assert w.isVisible()


def test_opened_from_the_inspector_on_a_copy_of_its_model(qtbot, config_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path / "cache"))
    from cnnviz.qt.inspector.window import InspectorWindow

    insp = InspectorWindow()
    qtbot.addWidget(insp)
    insp.show()
    qtbot.waitUntil(lambda: insp.current_capture() is not None, timeout=30_000)
    insp.select_layer("conv3")
    insp.act_featviz.trigger()
    w = insp._featviz_window
    qtbot.addWidget(w)
    qtbot.waitUntil(lambda: w.probe is not None, timeout=30_000)
    assert w.state.layer == "conv3" and w.layer_box.currentText() == "conv3"
    assert w.model is not insp.current_model() and w.model.module is not insp.current_model().module
    np.testing.assert_array_equal(w.pixels, insp.current_input())
    # a top image opens in the inspector on that layer, channel and unit
    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in (resources_dir() / "samples").glob("*.png"):
        (folder / p.name).write_bytes(p.read_bytes())
    w.folder_edit.setText(str(folder))
    w.channel_spin.setValue(4)
    w.sweep_button.click()
    qtbot.waitUntil(lambda: w.state.sweep is not None, timeout=30_000)
    best = w.state.sweep.entries("conv3", 4)[0]
    qtbot.mouseClick(w.top_grid, __import__("PySide6.QtCore", fromlist=["Qt"]).Qt.MouseButton.LeftButton,
                     pos=w.top_grid.tile_rect(0).center())
    from cnnviz.core.images import load_image

    np.testing.assert_array_equal(insp.current_input(), load_image(best["item"]).pixels)
    assert insp.selected_layer() == "conv3" and insp.selected_channel() == 4
    w.close()
    insp.close()
    assert not w.runner.is_busy()


def test_task_runner_one_at_a_time_latest_wins(qtbot):
    import time

    from cnnviz.qt.featureviz.tasks import TaskRunner   # the old path: the app's one runner

    r = TaskRunner(name="test-runner")
    running, most = [0], [0]
    lock = threading.Lock()
    done, cancelled = [], []
    r.finished.connect(lambda tid, v: done.append((tid, v)))
    r.cancelled.connect(cancelled.append)

    def job(value, loops):
        def fn(state):
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            try:
                for _ in range(loops):
                    state.check()
                    state.set_progress(0.5, "working")
                    time.sleep(0.005)
                return value
            finally:
                with lock:
                    running[0] -= 1
        return fn

    first = r.start(job("first", 10_000))
    second = r.start(job("second", 10_000))
    third = r.start(job("third", 3))  # replaces the pending second: it never runs
    qtbot.waitUntil(lambda: bool(done), timeout=10_000)
    assert done == [(third, "third")] and most[0] == 1
    assert first < second < third and cancelled == []
    r.start(job("long", 100_000))
    qtbot.waitUntil(lambda: r.state is not None and r.state.progress > 0, timeout=10_000)
    r.cancel()
    qtbot.waitUntil(lambda: not r.is_busy(), timeout=10_000)
    assert len(cancelled) == 1
    assert r.shutdown(1000) and not r.is_busy()


@pytest.mark.parametrize("key, tab, layer_kind", [("what-a-channel-looks-for", "featviz", "first"),
                                                  ("a-change-you-cannot-see", "adversarial", "last")])
def test_lessons_open_the_window_on_their_tab(qtbot, window_main, key, tab, layer_kind, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path / "cache"))
    from PySide6.QtCore import Qt

    from cnnviz.qt.featureviz.window import TAB_KEYS

    w = window_main
    qtbot.mouseClick(w.learn_panel.buttons[key], Qt.MouseButton.LeftButton)
    insp = w.inspector
    qtbot.waitUntil(lambda: w.learn_panel._pending_inspector is None and insp.current_capture() is not None,
                    timeout=60_000)
    fvw = insp._featviz_window
    qtbot.addWidget(fvw)
    qtbot.waitUntil(lambda: fvw.probe is not None, timeout=30_000)
    assert TAB_KEYS[fvw.tabs.currentIndex()] == tab
    convs = [la.name for la in insp.current_capture().layers if "Conv" in la.type]
    assert fvw.state.layer == (convs[0] if layer_kind == "first" else convs[-1])
    fvw.close()


@pytest.fixture
def window_main(make_window):
    return make_window()


def test_vector_layer_sweeps_whole_images(window, qtbot, tmp_path):
    w = window
    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in (resources_dir() / "samples").glob("*.png"):
        (folder / p.name).write_bytes(p.read_bytes())
    w.layer_box.setCurrentText("fc1")
    assert w.state.layer == "fc1" and w.act_grid.count() == 64
    w.folder_edit.setText(str(folder))
    w.k_spin.setValue(2)
    w.sweep_button.click()
    qtbot.waitUntil(lambda: w.state.sweep is not None, timeout=60_000)
    assert w.top_grid.count() == 2 and (w.state.sweep.layers["fc1"].boxes == -1).all()


def test_unit_view_for_a_picked_unit_matches_core(window, qtbot):
    from cnnviz.core.unit_view import guided_backprop

    w = window
    w.tabs.setCurrentIndex(2)
    w.unit_y_spin.setValue(1)  # only y set: nothing recomputed yet
    w.unit_x_spin.setValue(1)
    qtbot.waitUntil(lambda: getattr(w, "unit_shown", None) == (1, 1) and not w.runner.is_busy(), timeout=30_000)
    first = w.unit_gradient.copy()
    ref, unit = guided_backprop(w.model, w.probe.x, w.state.layer, w.state.channel, (1, 1))
    assert unit == (1, 1)
    np.testing.assert_allclose(first, ref, rtol=1e-5, atol=1e-7)
    w.unit_x_spin.setValue(3)
    w.unit_y_spin.setValue(2)
    qtbot.waitUntil(lambda: w.unit_shown == (2, 3) and not w.runner.is_busy(), timeout=30_000)
    ref2, _ = guided_backprop(w.model, w.probe.x, w.state.layer, w.state.channel, (2, 3))
    np.testing.assert_allclose(w.unit_gradient, ref2, rtol=1e-5, atol=1e-7)
    assert not np.allclose(w.unit_gradient, first)  # a different unit, a different view


def test_a_click_on_the_channels_map_picks_the_unit(window, qtbot):
    """The unit tab shows the chosen channel's activation map; a click on it selects the unit
    under the cursor, frames it, sets y/x and shows that unit's guided backprop (as core)."""
    from PySide6.QtCore import Qt

    from cnnviz.core.unit_view import guided_backprop

    w = window
    w.tabs.setCurrentIndex(2)
    w.channel_spin.setValue(3)
    m = w.unit_map
    assert m.map_shape() == w.probe.maps["relu2"].shape[1:] and m.count() == 1
    qtbot.waitUntil(lambda: m.image_rect().width() > 0, timeout=5_000)
    h, wd = m.map_shape()
    for unit in ((2, 5), (h - 1, 0)):
        qtbot.mouseClick(m, Qt.MouseButton.LeftButton, pos=m.unit_center(*unit))
        assert m.marker() == unit
        assert (w.unit_y_spin.value(), w.unit_x_spin.value()) == unit
        qtbot.waitUntil(lambda u=unit: getattr(w, "unit_shown", None) == u and not w.runner.is_busy(), timeout=30_000)
        ref, got_unit = guided_backprop(w.model, w.probe.x, "relu2", 3, unit)
        assert got_unit == unit
        np.testing.assert_allclose(w.unit_gradient, ref, rtol=1e-5, atol=1e-7)
    # the cell's edges: the pixel just inside unit (0, 1)'s left edge is unit (0, 1)
    r = m.image_rect()
    assert m.unit_at(r.x() + r.width() / wd + 0.5, r.y() + 0.5) == (0, 1)
    assert m.unit_at(r.x() - 1, r.y()) is None  # beside the map: nothing
    # another channel: its map, the picked unit kept
    w.channel_spin.setValue(4)
    np.testing.assert_array_equal(m.image(0).width(), wd)
    assert m.marker() == (h - 1, 0)


def test_live_source_sweep_shows_top_frames(window, qtbot):
    w = window
    w.tabs.setCurrentIndex(1)
    w.live_check.setChecked(True)
    w.live_frames_spin.setValue(6)
    w.k_spin.setValue(2)
    w.sweep_button.click()
    qtbot.waitUntil(lambda: w.state.sweep is not None and not w.runner.is_busy(), timeout=60_000)
    sweep = w.state.sweep
    assert len(sweep.items) == 6 and all(i.startswith("live frame") for i in sweep.items)
    assert sweep.pictures and set(sweep.pictures) <= set(range(6))
    assert w.top_grid.count() == 2  # the two top frames of the channel, from their kept pictures
    assert "6 images swept" in w.sweep_label.text()
    # each shown as the receptive-field crop around its strongest unit, as folder images are
    for rank, e in enumerate(sweep.entries(w.state.layer, w.state.channel)):
        y0, x0, y1, x1 = e["box"]
        assert y0 >= 0 and (w.top_grid.image(rank).height(), w.top_grid.image(rank).width()) == (y1 - y0, x1 - x0)
        assert y1 - y0 < w.probe.x.shape[-2]  # a crop, not the whole frame


def test_live_source_sweep_reads_the_inspectors_live_source(window, qtbot):
    from types import SimpleNamespace

    from cnnviz.core.sources.synthetic import SyntheticSource

    w = window
    src = SyntheticSource(64, 48, fps=100)
    src.start()
    try:
        w.inspector = SimpleNamespace(input=SimpleNamespace(live=SimpleNamespace(source=src)))
        w.live_check.setChecked(True)
        w.live_frames_spin.setValue(3)
        w.sweep_button.click()
        qtbot.waitUntil(lambda: w.state.sweep is not None and not w.runner.is_busy(), timeout=60_000)
        # the inspector's 64x48 frames, not the window's own 96x72 synthetic source
        assert {p.shape[:2] for p in w.state.sweep.pictures.values()} == {(48, 64)}
        assert src.is_running  # the inspector's source is left running
    finally:
        w.inspector = None
        src.stop()


def test_live_sweep_over_the_inspectors_real_video_source(qtbot, config_dir, tmp_path, monkeypatch):
    """The inspector plays a video file through its real live input (VideoFileSource + the
    shared FrameFeed); the window opened from it ranks those frames, shows them as crops,
    leaves the inspector's source running, and nothing is left running after both close."""
    import cv2

    from cnnviz.core.sources import VideoFileSource
    from cnnviz.qt.inspector.window import InspectorWindow

    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path / "cache"))
    threads = threading.active_count()
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (64, 48))
    assert writer.isOpened()
    rng = np.random.default_rng(0)
    for i in range(20):
        frame = rng.integers(0, 40, (48, 64, 3), dtype=np.uint8)
        frame[10:38, (3 * i) % 56:(3 * i) % 56 + 8] = 255  # a bar that moves
        writer.write(frame)
    writer.release()

    insp = InspectorWindow()
    qtbot.addWidget(insp)
    insp.show()
    qtbot.waitUntil(lambda: insp.current_capture() is not None, timeout=30_000)
    src = VideoFileSource(video, loop=True, fps_limit=200.0)
    assert insp.set_source(src) and src.is_running
    insp.select_layer("relu2")
    insp.act_featviz.trigger()
    w = insp._featviz_window
    qtbot.addWidget(w)
    qtbot.waitUntil(lambda: w.probe is not None and w.state.layer == "relu2", timeout=30_000)
    assert w.live_source() is src  # the inspector's own live source, not a stand-in
    w.tabs.setCurrentIndex(1)
    w.live_check.setChecked(True)
    w.live_frames_spin.setValue(8)
    w.k_spin.setValue(3)
    w.sweep_button.click()
    qtbot.waitUntil(lambda: w.state.sweep is not None and not w.runner.is_busy(), timeout=60_000)
    sweep = w.state.sweep
    assert len(sweep.items) == 8 and sweep.processed == 8 and not sweep.skipped
    ex = sweep.layers["relu2"]
    assert (ex.items >= 0).all()  # every channel's top 3 filled from 8 frames
    assert {p.shape for p in sweep.pictures.values()} == {(48, 64, 3)}  # the video's frames
    assert w.top_grid.count() == 3
    e = sweep.entries("relu2", w.state.channel)[0]
    y0, x0, y1, x1 = e["box"]
    assert (w.top_grid.image(0).height(), w.top_grid.image(0).width()) == (y1 - y0, x1 - x0)
    assert src.is_running  # the inspector keeps its source
    w.close()
    thread = src.capture_thread
    insp.close()
    assert not src.is_running and not thread.is_alive()
    qtbot.waitUntil(lambda: threading.active_count() <= threads, timeout=10_000)
