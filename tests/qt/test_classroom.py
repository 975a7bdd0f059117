"""Issue 18 (the classroom): the playground's rough edges, driven through the real window."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtWidgets import QMessageBox, QToolButton

from cnnviz.core.kernels import preset


def test_a_size_button_asks_before_cropping_the_bank_and_undo_restores_it(qtbot, window, monkeypatch):
    ks = preset("oriented-bank").kernels
    window.set_kernels(ks, 0)
    qtbot.waitUntil(lambda: len(window.current_request().kernels) == len(ks), timeout=10_000)
    editor = window.kernel_editor
    one = editor.findChild(QToolButton, "size-1")
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.No)
    one.click()
    assert asked and "crops 11 other kernels" in asked[0]
    assert window.kernel_bank.bank() == tuple(ks)            # No: nothing changed
    assert not one.isChecked() and editor.findChild(QToolButton, "size-7").isChecked()
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.Yes)
    one.click()
    assert [k.size for k in window.kernel_bank.bank()] == [(1, 1)] * len(ks)
    editor.undoStack().undo()
    assert window.kernel_bank.bank() == tuple(ks)            # every kernel back, exactly


def test_growing_a_single_kernel_does_not_ask(qtbot, window, monkeypatch):
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: pytest.fail("asked for a lossless resize"))
    window.kernel_editor.findChild(QToolButton, "size-5").click()
    assert window.kernel_bank.selectedKernel().size == (5, 5)


def test_a_save_or_load_message_never_moves_the_buttons(qtbot, window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    editor = window.kernel_editor
    buttons = [editor.findChild(QToolButton, n) for n in ("load", "save", "op-random", "undo", "size-3")]
    before = [b.mapTo(editor, b.rect().topLeft()) for b in buttons]
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "k.json"), ""))
    editor.findChild(QToolButton, "save").click()
    qtbot.waitUntil(lambda: editor.messageText() != "")
    after = [b.mapTo(editor, b.rect().topLeft()) for b in buttons]
    assert after == before
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    editor.loadFile(bad)
    assert "Could not load" in editor.messageText()
    assert [b.mapTo(editor, b.rect().topLeft()) for b in buttons] == before


def test_save_writes_the_whole_bank_and_load_gives_it_back(qtbot, window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    from cnnviz.core.kernels import load_kernel_file

    ks = preset("sobel-pair").kernels
    window.set_kernels(ks, 1)
    target = tmp_path / "sub" / "pair.json"
    target.parent.mkdir()
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    window.kernel_editor.saveToFile()
    assert load_kernel_file(target) == list(ks)
    assert "bank of 2 kernels" in window.kernel_editor.messageText()
    window.set_kernels((preset("sharpen").kernel,), 0)
    opened_in = []
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: opened_in.append(a[2]) or (str(target), ""))
    window.kernel_editor.loadFromFile()
    assert window.kernel_bank.bank() == tuple(ks)
    assert opened_in == [str(target.parent)]               # the dialog opened where the file was saved
    assert window.settings.last_dir("kernels") == str(target.parent)   # and the settings remember it


def test_last_used_folders_survive_a_restart(qtbot, make_window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    from cnnviz.qt.playground.window import SAMPLES_DIR
    w = make_window()
    pics = tmp_path / "pictures"
    pics.mkdir()
    (pics / "p.png").write_bytes((SAMPLES_DIR / "photo.png").read_bytes())
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(pics / "p.png"), ""))
    w.open_image_dialog()
    w.close()
    w2 = make_window()
    seen = []
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: seen.append(a[2]) or ("", ""))
    w2.open_image_dialog()
    assert seen == [str(pics)]


def test_ticking_gradient_magnitude_shows_it_and_keeps_the_other_views(qtbot, window):
    """Ticking the option shows the magnitude (no need to pick |∇| under Show), and the
    activation and pool views keep showing a map (the pair's first kernel), never empty."""
    from PySide6.QtWidgets import QCheckBox

    from cnnviz.core.conv import gradient_magnitude
    from cnnviz.qt.playground.views import MAGNITUDE

    window.set_kernels(preset("sobel-pair").kernels, 0, None)
    window.set_params(window.params().__class__(activation="relu", pool="max"))
    qtbot.waitUntil(lambda: len(window.current_request().kernels) == 2 and window.current_request().pool is not None,
                    timeout=10_000)
    assert window.outputs.selection() != MAGNITUDE
    box = [b for b in window.kernel_bank.findChildren(QCheckBox)][0]
    box.click()
    assert window.outputs.selection() == MAGNITUDE
    qtbot.waitUntil(lambda: window.current_request().magnitude_pair == (0, 1), timeout=10_000)
    res = window.current_result()
    qtbot.waitUntil(lambda: window.displayed_array("magnitude") is not None, timeout=10_000)
    np.testing.assert_allclose(window.displayed_array("magnitude"), gradient_magnitude(res.conv[0], res.conv[1]),
                               atol=1e-5)
    np.testing.assert_allclose(window.displayed_array("activation"), res.activation[0], atol=1e-5)
    np.testing.assert_allclose(window.displayed_array("pool"), res.pool[0], atol=1e-5)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_text_contrast_meets_wcag_aa_in_both_themes(qtbot, window, theme):
    """Every text role of the palette, the muted hints and the error text reach 4.5:1."""
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication, QLabel

    from cnnviz.qt.colors import contrast_ratio

    window.apply_theme(theme)
    pal = QApplication.instance().palette()
    R = QPalette.ColorRole
    pairs = [(R.WindowText, R.Window), (R.Text, R.Base), (R.Text, R.AlternateBase), (R.ButtonText, R.Button),
             (R.ToolTipText, R.ToolTipBase), (R.HighlightedText, R.Highlight), (R.PlaceholderText, R.Base),
             (R.PlaceholderText, R.Window), (R.Link, R.Base), (R.Link, R.Window), (R.BrightText, R.Window),
             (R.BrightText, R.Base)]
    low = {f"{f.name}/{b.name}": round(contrast_ratio(pal.color(f), pal.color(b)), 2) for f, b in pairs
           if contrast_ratio(pal.color(f), pal.color(b)) < 4.5}
    assert low == {}, f"{theme}: text roles under 4.5:1: {low}"
    # the labels that were pale (the hint, the lesson's "Look for", the error line) use those roles
    labels = [w for w in window.findChildren(QLabel) if w.foregroundRole() in (R.PlaceholderText, R.BrightText)]
    assert len(labels) >= 3
    for w in labels:
        p = w.palette()
        assert contrast_ratio(p.color(w.foregroundRole()), p.color(R.Window)) >= 4.5, w.objectName() or w.text()
    assert not [w for w in window.findChildren(QLabel) if "palette(mid)" in w.styleSheet()]


def test_mosaic_tiles_are_labelled_with_their_kernels(qtbot, window):
    from cnnviz.qt.playground.views import MOSAIC

    ks = preset("oriented-bank").kernels
    window.set_kernels(ks, 0)
    qtbot.waitUntil(lambda: len(window.current_request().kernels) == len(ks), timeout=10_000)
    window.outputs.set_selection(MOSAIC)
    qtbot.waitUntil(lambda: window.outputs.mosaic_layout() is not None, timeout=10_000)
    labels = window.outputs.view("conv").tile_labels()
    assert labels == [f"{i + 1} {k.name}" for i, k in enumerate(ks)]
    window.outputs.set_selection(0)
    qtbot.waitUntil(lambda: window.outputs.mosaic_layout() is None, timeout=10_000)
    assert window.outputs.view("conv").tile_labels() == []


def test_a_colour_bar_shows_the_scale_when_histograms_are_hidden(qtbot, window):
    """Live mode hides the histograms (speed); each map then shows a colour bar with its levels."""
    conv = window.outputs.view("conv")
    assert window.histograms_visible() and conv.color_bar.isHidden()
    window.set_histograms_visible(False)
    assert not conv.color_bar.isHidden()
    cmap, levels = conv.color_bar.scale()
    assert cmap == conv.colormap() and levels == tuple(conv.levels())
    lo, hi = levels
    assert conv.color_bar.labels() == (f"{hi:.3g}".replace("-", "−"), f"{lo:.3g}".replace("-", "−"))
    assert window.outputs.view("input").color_bar.isHidden()       # the picture needs no scale
    window.set_histograms_visible(True)
    assert conv.color_bar.isHidden()


def test_full_colour_mode_paints_each_channel_and_equals_torch_conv2d(qtbot, window):
    """Full colour mode: split the kernel into R, G, B slices, paint each one apart; the
    conv map equals torch.nn.functional.conv2d with the painted 1×3×kH×kW weight."""
    torch = pytest.importorskip("torch")
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QTabBar

    from cnnviz.core.conv import prepare_input

    window.set_params(window.params().__class__(channels="full", padding=(1, 1)))
    editor = window.kernel_editor
    split = editor.findChild(QToolButton, "split-channels")
    qtbot.waitUntil(lambda: split.isVisible(), timeout=5_000)
    split.click()
    assert editor.kernel().channels == 3
    tabs = editor.findChild(QTabBar, "channel-tabs")
    assert [tabs.tabText(i) for i in range(3)] == ["R", "G", "B"]
    grid = editor.grid()
    editor.findChild(QToolButton, "op-clear").click()
    painted = {0: [((0, 0), 1.0), ((1, 1), 0.5)], 1: [((2, 2), -1.0)], 2: [((0, 2), 0.25), ((2, 0), -0.75)]}
    for ch, cells in painted.items():
        tabs.setCurrentIndex(ch)
        for (r, c), v in cells:
            editor.setBrushValue(v)
            qtbot.mouseClick(grid, Qt.LeftButton, pos=grid.cellCenter(r, c))
    w = np.zeros((3, 3, 3), np.float32)
    for ch, cells in painted.items():
        for (r, c), v in cells:
            w[ch, r, c] = v
    np.testing.assert_array_equal(window.kernel_bank.selectedKernel().weights, w)
    x = prepare_input(window.current_image(), "full")                      # (H, W, 3)
    ref = torch.nn.functional.conv2d(torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None],
                                     torch.from_numpy(w)[None], padding=1)[0, 0].numpy()
    qtbot.waitUntil(lambda: window.current_request().kernels[0].weights.ndim == 3
                    and np.array_equal(window.current_request().kernels[0].weights, w), timeout=10_000)
    qtbot.waitUntil(lambda: window.displayed_array("conv") is not None
                    and window.displayed_array("conv").shape == ref.shape
                    and np.allclose(window.displayed_array("conv"), ref, atol=1e-5), timeout=10_000)
    np.testing.assert_allclose(window.displayed_array("conv"), ref, atol=1e-5)
    # "One slice" makes it 2-D again (the sum of the slices), one undo step
    editor.findChild(QToolButton, "merge-channels").click()
    np.testing.assert_array_equal(editor.kernel().weights, w.sum(axis=0))
    editor.undoStack().undo()
    np.testing.assert_array_equal(editor.kernel().weights, w)


def _clipped_widgets(window):
    """Labels and buttons shown on screen whose given size is smaller than what their text needs."""
    from PySide6.QtWidgets import QAbstractButton, QLabel

    out = []
    for w in window.findChildren(QLabel) + window.findChildren(QAbstractButton):
        if not w.isVisible() or w.visibleRegion().isEmpty() or w.window() is not window:
            continue
        if isinstance(w, QLabel) and not w.text():
            continue
        if isinstance(w, QAbstractButton) and not w.text():
            continue
        size = w.size()
        if isinstance(w, QLabel) and w.wordWrap():
            need_w, need_h = w.minimumSizeHint().width(), w.heightForWidth(size.width())
        elif isinstance(w, QLabel):
            need_w, need_h = w.sizeHint().width(), w.sizeHint().height()
        else:
            need_w, need_h = w.minimumSizeHint().width(), w.minimumSizeHint().height()
        if w.sizePolicy().horizontalPolicy() == w.sizePolicy().Policy.Ignored and isinstance(w, QLabel):
            need_w = 0  # elided on purpose (the whole text is its tooltip)
        if size.width() < need_w or size.height() < need_h:
            out.append(f"{type(w).__name__} {w.objectName() or w.text()[:30]!r}: {size.width()}×{size.height()} "
                       f"< {need_w}×{need_h}")
    return out


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_first_screen_fits_1280x720_without_clipping(qtbot, window, theme):
    """At 1280×720 (a projector) the window is not larger than the screen, and no label or
    button of the first screen is smaller than its text needs; the maps get the most room."""
    window.apply_theme(theme)
    window.resize(1280, 720)
    qtbot.waitUntil(lambda: window.size().width() == 1280 and window.size().height() == 720, timeout=5_000)
    assert window.minimumSizeHint().width() <= 1280 and window.minimumSizeHint().height() <= 720
    qtbot.wait(50)
    assert _clipped_widgets(window) == []
    # the first screen: the kernel, the input and its output, the explanation
    for dock in (window.dock_kernel, window.dock_outputs, window.dock_explain):
        assert not dock.visibleRegion().isEmpty(), dock.objectName()
    conv = window.outputs.view("conv").graphics
    assert conv.width() * conv.height() >= 0.08 * 1280 * 720
    # the explanation reads to its end without scrolling: Σ products + bias = value in view
    from PySide6.QtWidgets import QLabel

    window.explain_pixel("conv", 180, 200)
    qtbot.wait(50)
    equation = window.explain_panel.findChild(QLabel, "equation")
    assert "Σ products + bias = value" in equation.text()
    shown = equation.visibleRegion().boundingRect()
    assert shown.height() == equation.height() and shown.width() == equation.width(), (shown, equation.size())


def test_presentation_mode_shows_a_large_output_and_steps_the_explained_pixel(qtbot, window):
    from PySide6.QtCore import Qt

    from cnnviz.core.dotproduct import explain_conv_pixel

    window.resize(1280, 720)
    qtbot.waitUntil(lambda: window.width() == 1280, timeout=5_000)
    qtbot.keyClick(window, Qt.Key_F5)
    pres = window.presentation
    assert pres.is_active() and window.act_present.isChecked()
    qtbot.waitUntil(lambda: pres.explanation() is not None, timeout=5_000)
    out = pres.output_view.graphics
    assert out.width() * out.height() >= 0.5 * window.width() * window.height()
    assert pres.position() == (0, 0)
    res, req = window.current_result(), window.current_request()
    for key, expect in ((Qt.Key_Right, (0, 1)), (Qt.Key_Right, (0, 2)), (Qt.Key_Down, (1, 2)),
                        (Qt.Key_PageDown, (1, 3)), (Qt.Key_PageUp, (1, 2)), (Qt.Key_Left, (1, 1))):
        qtbot.keyClick(pres, key)
        assert pres.position() == expect
        e = pres.explanation()
        ref = explain_conv_pixel(res.input, req.kernels[0], req.conv, *expect)
        assert e.value == pytest.approx(ref.value) and e.value == pytest.approx(float(res.conv[0][expect]), abs=1e-5)
        assert pres.output_view.marker_rect().topLeft().toTuple() == (expect[1], expect[0])
        assert pres.explain.shown_value() == pytest.approx(float(res.conv[0][expect]), abs=1e-5)
    qtbot.keyClick(pres, Qt.Key_Space)
    assert pres.is_playing()
    qtbot.waitUntil(lambda: pres.position() != (1, 1), timeout=5_000)
    qtbot.keyClick(pres, Qt.Key_Space)
    assert not pres.is_playing()
    qtbot.keyClick(pres, Qt.Key_Escape)
    assert not pres.is_active() and not window.act_present.isChecked()
    assert window.menuBar().isVisible()


def test_font_scaling_is_remembered(qtbot, make_window):
    from PySide6.QtWidgets import QApplication

    w = make_window()
    before = QApplication.instance().font().pointSizeF()
    w.findChild(type(w.act_present), "font-larger").trigger()
    assert w.settings.font_scale > 1.0
    assert QApplication.instance().font().pointSizeF() > before
    w.close()
    w2 = make_window()
    assert w2.settings.font_scale > 1.0
    w2.set_font_scale(1.0)
    assert QApplication.instance().font().pointSizeF() == pytest.approx(before)


def test_a_lesson_opens_on_top_of_my_setup_and_back_restores_it_exactly(qtbot, window):
    from PySide6.QtWidgets import QPushButton

    from cnnviz.core.kernels import Kernel
    from cnnviz.core.settings import PlaygroundParams

    mine = (Kernel(np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32), name="my laplacian", offset=0.25),
            Kernel(np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], np.float32) / 3, name="my edges", divisor=2.0))
    window.open_sample("pattern", quiet=True)
    window.set_params(PlaygroundParams(stride=(2, 1), padding=(1, 2), bias=0.75, activation="relu", pool="max"))
    window.set_kernels(mine, 1)
    qtbot.waitUntil(lambda: window.current_request().kernels == mine, timeout=10_000)
    image_before, params_before = window.current_image(), window.params()
    panel = window.dock_learn.widget().widget()
    back = panel.findChild(QPushButton, "back-to-my-setup")
    assert back.isHidden()
    panel.buttons["weighted-sum"].click()
    panel.buttons["edges-vertical-horizontal"].click()   # a second lesson keeps the first setup
    assert window.kernels() != mine and not back.isHidden()
    back.click()
    assert window.kernels() == mine and window.state.selected == 1
    assert window.params() == params_before
    assert window.current_image() is image_before                    # the very same picture
    assert back.isHidden()
    qtbot.waitUntil(lambda: window.current_request().kernels == mine, timeout=10_000)


def test_a_scene_saved_from_the_window_opens_as_it_was(qtbot, window, tmp_path):
    from cnnviz.core.scenes import load_scenes
    from cnnviz.core.settings import PlaygroundParams
    from cnnviz.qt.playground.views import MOSAIC

    window.open_sample("pattern", quiet=True)
    window.set_params(PlaygroundParams(stride=(1, 2), padding=(2, 2), activation="relu"))
    window.set_kernels(preset("oriented-bank").kernels[:4], 2)
    window.outputs.set_selection(MOSAIC)
    scene = window.scenes.capture()
    p = window.scenes.save_file(tmp_path / "s.json")
    assert load_scenes(p) == [scene]
    window.open_sample("photo", quiet=True)
    window.set_params(PlaygroundParams())
    window.set_kernels((preset("sharpen").kernel,), 0)
    assert window.scenes.open_file(p)
    assert window.scenes.capture() == scene
    assert window.outputs.selection() == MOSAIC
    # a pasted picture (no file) is embedded and comes back
    window.scenes.save_file(tmp_path / "e.json", embed=True)
    img = window.current_image()
    window.open_sample("photo", quiet=True)
    assert window.scenes.open_file(tmp_path / "e.json")
    np.testing.assert_allclose(window.current_image(), img, atol=1 / 65535)


def test_a_deck_of_scenes_steps_in_presentation_mode(qtbot, window, tmp_path):
    from PySide6.QtCore import Qt

    from cnnviz.core.scenes import save_scenes

    a = window.scenes.capture(title="a")
    window.set_kernels((preset("sharpen").kernel,), 0)
    b = window.scenes.capture(title="b")
    save_scenes(tmp_path / "deck.json", [a, b])
    assert window.scenes.open_file(tmp_path / "deck.json")
    assert window.kernels() == a.kernels
    window.act_present.setChecked(True)
    pres = window.presentation
    qtbot.keyClick(pres, Qt.Key_N)
    assert window.kernels() == b.kernels and pres.is_active()
    qtbot.keyClick(pres, Qt.Key_B)
    assert window.kernels() == a.kernels
    qtbot.keyClick(pres, Qt.Key_Escape)


def test_compare_shows_two_parameter_sets_with_their_shapes(qtbot, window):
    from cnnviz.core.conv import PipelineRequest, run_pipeline
    from cnnviz.core.settings import PlaygroundParams

    dlg = window.open_compare()
    a = PlaygroundParams(stride=(1, 1))
    b = PlaygroundParams(stride=(2, 2), pool="max")
    dlg.set_params(a, b)
    res = dlg.recompute()
    k = window.state.selected_kernel
    for p, r in zip((a, b), res):
        ref = run_pipeline(window.current_image(), PipelineRequest((k,), *p.to_specs()))
        last = ref.pool if ref.pool is not None else ref.conv
        np.testing.assert_allclose(r.pool if r.pool is not None else r.conv, last, atol=1e-6)
    assert dlg.views[0].data().shape == (510, 510) and dlg.views[1].data().shape == (127, 127)
    assert "510" in dlg.formulas[0].text() and "255" in dlg.formulas[1].text() and "127" in dlg.formulas[1].text()
    assert "/ 2" in dlg.formulas[1].text()
    dlg.close()


def test_presentation_mode_follows_a_live_source(qtbot, window):
    """New frames (as a live source sends them) are shown in presentation mode and the pixel
    under the window is re-explained on the new frame."""
    window.act_present.setChecked(True)
    pres = window.presentation
    pres.set_position(5, 7)
    rng = np.random.default_rng(1)
    for i in range(3):
        frame = rng.random((90, 120), dtype=np.float32)
        window.set_frame(frame, label="live frame")
        qtbot.waitUntil(lambda: window.current_result() is not None
                        and window.current_result().input.shape == (90, 120)
                        and np.array_equal(window.current_result().input, frame), timeout=10_000)
        qtbot.waitUntil(lambda: pres.explanation() is not None
                        and pres.explanation().value == pytest.approx(float(window.current_result().conv[0][5, 7]),
                                                                      abs=1e-5), timeout=10_000)
        assert np.array_equal(pres.input_view.data(), window.current_result().input)
    assert pres.position() == (5, 7)
    window.act_present.setChecked(False)


# -- the deck editor and presenting a deck ----------------------------------------------------------
def _my_setup(window):
    from cnnviz.core.kernels import Kernel
    from cnnviz.core.settings import PlaygroundParams

    mine = (Kernel(np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32), name="my laplacian", offset=0.25),
            Kernel(np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], np.float32) / 3, name="my edges", divisor=2.0))
    window.open_sample("digit", quiet=True)
    window.set_params(PlaygroundParams(stride=(2, 1), padding=(1, 2), bias=0.75, activation="relu"))
    window.set_kernels(mine, 1)
    return mine


def _deck_of_three(window):
    """Three scenes made in the dialog: photo/sobel, pattern/sharpen stride 2, digit/pool."""
    from cnnviz.core.settings import PlaygroundParams

    dlg = window.scenes.deck_editor()
    window.open_sample("photo", quiet=True)
    window.set_params(PlaygroundParams())
    window.set_kernels((preset("sobel-x").kernel,), 0)
    dlg.title_edit.setText("Edges")
    dlg.add_button.click()
    window.open_sample("pattern", quiet=True)
    window.set_params(PlaygroundParams(stride=(2, 2), padding=(1, 1)))
    window.set_kernels((preset("sharpen").kernel,), 0)
    dlg.add_current("Stride two")
    window.open_sample("checkerboard", quiet=True)
    window.set_params(PlaygroundParams(pool="max", activation="relu"))
    window.set_kernels((preset("sobel-y").kernel,), 0)
    dlg.add_current("Pooling")
    return dlg


def test_the_deck_dialog_adds_reorders_renames_removes_saves_and_opens(qtbot, window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    from cnnviz.core.scenes import Deck, load_scenes

    dlg = _deck_of_three(window)
    assert dlg.isVisible() and window.findChild(type(window.act_present), "scene-deck") is not None
    assert [dlg.list.item(i).text() for i in range(dlg.list.count())] == ["Edges", "Stride two", "Pooling"]
    assert window.scenes.deck[1].params["stride"] == [2, 2] and window.scenes.deck[1].source["name"] == "pattern"
    # the preview says which scene is which
    dlg.list.setCurrentRow(1)
    assert "sample 'pattern'" in dlg.preview.text() and "stride 2×2" in dlg.preview.text()
    assert dlg.thumb.pixmap() is not None and not dlg.thumb.pixmap().isNull()
    # reorder: "Pooling" up to second, then down again, with the buttons
    dlg.list.setCurrentRow(2)
    dlg.buttons["up"].click()
    assert window.scenes.deck.titles() == ["Edges", "Pooling", "Stride two"] and dlg.selected_index() == 1
    dlg.buttons["down"].click()
    assert window.scenes.deck.titles() == ["Edges", "Stride two", "Pooling"]
    # a drag in the list (the model's row move) reorders the deck too
    from PySide6.QtCore import QModelIndex
    assert dlg.list.model().moveRow(QModelIndex(), 2, QModelIndex(), 0)
    assert window.scenes.deck.titles() == ["Pooling", "Edges", "Stride two"] and dlg.selected_index() == 0
    assert [dlg.list.item(i).text() for i in range(3)] == ["Pooling", "Edges", "Stride two"]
    assert dlg.list.model().moveRow(QModelIndex(), 0, QModelIndex(), 3)
    assert window.scenes.deck.titles() == ["Edges", "Stride two", "Pooling"]
    # rename in the list (as a double-click edit would commit)
    dlg.list.item(0).setText("Sobel finds edges")
    assert window.scenes.deck.titles()[0] == "Sobel finds edges"
    dlg.list.item(0).setText("  ")                        # an empty title is refused and said
    assert window.scenes.deck.titles()[0] == "Sobel finds edges" and "title" in dlg.message_text()
    # save through the dialog button, remove one, open the file again
    target = tmp_path / "lesson"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    dlg.buttons["save"].click()
    saved = load_scenes(tmp_path / "lesson.json")
    assert [s.title for s in saved] == ["Sobel finds edges", "Stride two", "Pooling"]
    dlg.list.setCurrentRow(1)
    dlg.buttons["remove"].click()
    assert window.scenes.deck.titles() == ["Sobel finds edges", "Pooling"] and dlg.list.count() == 2
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(tmp_path / "lesson.json"), ""))
    dlg.buttons["open"].click()
    assert window.scenes.deck == Deck(saved) and dlg.list.count() == 3


def test_a_corrupt_deck_file_is_one_message_and_changes_nothing(qtbot, window, tmp_path):
    dlg = _deck_of_three(window)
    before = window.scenes.deck.scenes()
    kernels, params, image = window.kernels(), window.params(), window.current_image()
    for text in ("{not json", '{"schema": "cnnviz.scene", "version": 1, "scenes": []}',
                 '{"schema": "cnnviz.scene", "version": 99, "scenes": []}'):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        assert not dlg.open_file(bad)
        msg = dlg.message_text()
        assert msg.startswith("Could not open bad.json: ") and "\n" not in msg and "Traceback" not in msg
        assert window.scenes.deck.scenes() == before and dlg.list.count() == 3
        assert window.kernels() == kernels and window.params() == params and window.current_image() is image
    assert "newer than this cnnviz" in msg


def test_presenting_a_deck_steps_scenes_and_esc_restores_my_setup_exactly(qtbot, window):
    from PySide6.QtCore import Qt

    dlg = _deck_of_three(window)
    mine = _my_setup(window)
    qtbot.waitUntil(lambda: window.current_request().kernels == mine, timeout=10_000)
    image_before, params_before, sel_before = window.current_image(), window.params(), window.outputs.selection()
    deck = window.scenes.deck
    dlg.buttons["present"].click()
    pres = window.presentation
    assert pres.is_active() and not dlg.isVisible()
    assert window.kernels() == deck[0].kernels and window._image_source == "sample:photo"
    # Page Down past the last step of scene 1 (no pooling: the conv stage only) → scene 2
    qtbot.waitUntil(lambda: window.current_request().kernels == deck[0].kernels and pres.out_hw() is not None,
                    timeout=10_000)
    oh, ow = pres.out_hw()
    pres.set_position(oh - 1, ow - 1)
    qtbot.keyClick(pres, Qt.Key_PageDown)
    assert window.kernels() == deck[1].kernels and window.params().to_dict() == deck[1].params
    assert window._image_source == "sample:pattern" and pres.is_active()
    qtbot.waitUntil(lambda: window.current_request().conv.stride == (2, 2), timeout=10_000)
    assert pres.position() == (0, 0) and pres.stage() == "conv"
    res = window.current_result()
    assert pres.explanation().value == pytest.approx(float(res.conv[0][0, 0]), abs=1e-5)
    qtbot.keyClick(pres, Qt.Key_PageUp)                   # before the first step: back to scene 1
    assert window.kernels() == deck[0].kernels
    qtbot.keyClick(pres, Qt.Key_N)
    qtbot.keyClick(pres, Qt.Key_N)
    assert window.kernels() == deck[2].kernels and window.params().pool == "max"
    qtbot.keyClick(pres, Qt.Key_Escape)
    assert not pres.is_active()
    assert window.kernels() == mine and window.state.selected == 1
    assert window.params() == params_before and window.outputs.selection() == sel_before
    assert window.current_image() is image_before          # the very same picture
    assert dlg.isVisible()                                  # the editor is back for the next rehearsal
    qtbot.waitUntil(lambda: window.current_request().kernels == mine, timeout=10_000)


def test_presentation_steps_on_through_the_pool_windows(qtbot, window):
    from PySide6.QtCore import Qt

    from cnnviz.core.settings import PlaygroundParams

    window.open_sample("digit", quiet=True)
    window.set_params(PlaygroundParams(activation="relu", pool="max", pool_size=(3, 3), pool_stride=(2, 2)))
    qtbot.waitUntil(lambda: window.current_request().pool is not None, timeout=10_000)
    window.act_present.setChecked(True)
    pres = window.presentation
    qtbot.waitUntil(lambda: pres.explanation() is not None, timeout=5_000)
    assert pres.stages() == ("conv", "pool")
    oh, ow = pres.out_hw()
    pres.set_position(oh - 1, ow - 1)
    qtbot.keyClick(pres, Qt.Key_PageDown)                 # after the last conv pixel: the pool stage
    assert pres.stage() == "pool" and pres.position() == (0, 0)
    res = window.current_result()
    ph, pw = res.pool_shape.out_hw
    assert pres.out_hw() == (ph, pw)
    seen = []
    for key, expect in ((Qt.Key_Right, (0, 1)), (Qt.Key_Down, (1, 1)), (Qt.Key_PageDown, (1, 2))):
        qtbot.keyClick(pres, key)
        assert pres.position() == expect
        e = pres.explanation()
        assert e.kind == "max"
        assert e.value == pytest.approx(float(res.pool[0][expect]), abs=1e-5)
        assert pres.explain.shown_value() == pytest.approx(float(res.pool[0][expect]), abs=1e-5)
        # the window on the activated map (left) is the 3×3 pool window at stride 2
        assert pres.input_view.window_rect().getRect() == (expect[1] * 2, expect[0] * 2, 3, 3)
        assert float(res.activation[0][expect[0] * 2:expect[0] * 2 + 3, expect[1] * 2:expect[1] * 2 + 3].max()) \
            == pytest.approx(e.value)
        seen.append(e.value)
    np.testing.assert_array_equal(pres.output_view.image().data, res.pool[0])   # the big map is the pooled map
    np.testing.assert_array_equal(pres.input_view.image().data, res.activation[0])
    qtbot.keyClick(pres, Qt.Key_Tab)                      # Tab: back to the conv stage
    assert pres.stage() == "conv"
    qtbot.keyClick(pres, Qt.Key_PageUp)                   # before conv (0, 0): the last pool window
    assert pres.stage() == "pool" and pres.position() == (ph - 1, pw - 1)
    qtbot.keyClick(pres, Qt.Key_Home)
    assert pres.stage() == "conv" and pres.position() == (0, 0)
    qtbot.keyClick(pres, Qt.Key_Escape)


def test_closing_the_window_while_presenting_a_deck_keeps_my_setup(qtbot, make_window):
    from cnnviz.core.settings import load_settings, settings_path

    w = make_window()
    _deck_of_three(w)
    mine = _my_setup(w)
    params = w.params()
    assert w.scenes.present_deck(start=1)
    assert w.kernels() == w.scenes.deck[1].kernels
    w.close()
    saved, _ = load_settings(settings_path())
    assert tuple(saved.kernel_bank()) == mine and saved.params == params
    assert saved.last_image == "sample:digit"


def test_a_scene_keeps_the_explained_pixel_and_opens_from_the_command_line(qtbot, make_window, tmp_path):
    """`cnnviz gui lesson.json` (or a dropped .json) opens a scene or deck; the clicked pixel the
    Explain panel showed is part of the scene."""
    from cnnviz.core.scenes import Deck
    from cnnviz.core.settings import PlaygroundParams

    w = make_window()
    w.set_kernels(preset("oriented-bank").kernels[:3], 2)
    w.set_params(PlaygroundParams(padding=(3, 3)))
    qtbot.waitUntil(lambda: len(w.current_request().kernels) == 3, timeout=10_000)
    w.explain_pixel("conv", 12, 17, kernel=2)
    scene = w.scenes.capture(title="seven")
    assert scene.view["explained"] == ["conv", 2, 12, 17]
    other = w.scenes.capture(title="other")
    Deck([scene, other]).save(tmp_path / "lesson.json")
    w2 = make_window(image=str(tmp_path / "lesson.json"))
    assert len(w2.scenes.deck) == 2 and w2.kernels() == scene.kernels
    qtbot.waitUntil(lambda: w2.last_explanation is not None and w2.current_request().kernels == scene.kernels,
                    timeout=10_000)
    e = w2.last_explanation
    assert (e.oy, e.ox) == (12, 17)
    assert w2.explain_panel.shown_value() == pytest.approx(float(w2.current_result().conv[2][12, 17]), abs=1e-5)


def test_a_scene_opens_presentation_mode_at_its_step_even_on_a_bigger_map(qtbot, window, tmp_path):
    """A scene saved mid-step in the pool stage opens there; its position is kept although the
    map shown when it is opened (a smaller picture's) does not have it yet."""
    from cnnviz.core.scenes import Scene, save_scenes
    from cnnviz.core.settings import PlaygroundParams

    params = PlaygroundParams(activation="relu", pool="avg", pool_size=(2, 2), pool_stride=(2, 2))
    scene = Scene((preset("sobel-y").kernel,), params=params.to_dict(), source={"kind": "sample", "name": "photo"},
                  view={"presentation": True, "position": [200, 230], "stage": "pool"})
    p = save_scenes(tmp_path / "pool.json", scene)
    window.open_sample("digit", quiet=True)
    qtbot.waitUntil(lambda: window.current_result().input.shape[0] < 200, timeout=10_000)
    assert window.scenes.open_file(p)
    pres = window.presentation
    assert pres.is_active()
    qtbot.waitUntil(lambda: window.current_request().pool is not None and pres.stage() == "pool"
                    and pres.position() == (200, 230), timeout=10_000)
    res = window.current_result()
    assert pres.explanation().kind == "avg"
    assert pres.explain.shown_value() == pytest.approx(float(res.pool[0][200, 230]), abs=1e-5)
    assert window.scenes.capture().view["stage"] == "pool"
    qtbot.keyClick(pres, Qt_key("Escape"))


def Qt_key(name):  # noqa: N802
    from PySide6.QtCore import Qt

    return getattr(Qt.Key, f"Key_{name}")

def test_7x7_kernel_and_product_numbers_are_readable_at_1280x720(qtbot, window, tmp_path):
    """#18: at 1280×720 a 7×7 kernel's numbers — in the kernel grid and in the Explain
    panel's kernel and products — all show, in a font of at least MIN_CELL_FONT_PX, inside
    their cells (was: ~23 px cells with a 6–7 px font)."""
    from cnnviz.core.kernels import presets
    from cnnviz.qt.colors import MIN_CELL_FONT_PX
    from cnnviz.qt.playground.kernel_grid import parse_value

    window.resize(1280, 720)
    window.fit_to_screen()
    qtbot.waitUntil(lambda: window.width() == 1280 and window.height() == 720, timeout=5_000)
    bank = presets()["oriented-bank"].kernels
    assert bank[0].size == (7, 7)
    window.set_kernels(bank, 0)
    qtbot.waitUntil(lambda: window.current_request() is not None and len(window.current_request().kernels) == 12,
                    timeout=10_000)
    window.explain_pixel("conv", 20, 20)
    qtbot.waitUntil(lambda: window.explain_panel.grid("products").values().shape == (7, 7), timeout=5_000)
    qtbot.wait(50)
    grids = {"editor": window.kernel_editor.grid(), "kernel": window.explain_panel.grid("kernel"),
             "products": window.explain_panel.grid("products")}
    for name, grid in grids.items():
        values = grid.weights() if name == "editor" else grid.values()
        assert values.shape == (7, 7) and grid.isVisible(), name
        font, fm, texts = grid.cellTexts()
        assert font.pixelSize() >= MIN_CELL_FONT_PX, (name, font.pixelSize())
        for (r, c), v in np.ndenumerate(values):
            rect, text = grid.cellRect(r, c), texts[r, c]
            assert text, f"{name} cell {(r, c)} is blank"
            assert fm.horizontalAdvance(text) <= rect.width() - 3 and fm.height() <= rect.height(), (name, text, rect)
            shown = parse_value(text)
            assert shown is not None and abs(shown - v) <= 0.5 * 10 ** np.floor(np.log10(abs(v) + 1e-12)) + 1e-9, \
                (name, text, v)
    # the grids are not cut off: each lies inside what its panel shows
    for name in ("kernel", "products"):
        grid = grids[name]
        assert not grid.visibleRegion().isEmpty()
        assert grid.visibleRegion().boundingRect().width() >= grid.cellRect(0, 6).right() - grid.cellRect(0, 0).left(), name
    window.grab().save(str(tmp_path / "kernel-7x7-1280x720.png"))
