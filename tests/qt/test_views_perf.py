"""The output views paint what the worker coloured, and the histograms stay cheap but exact.

What a user would notice: every view's pixels are exactly the core's colours for the map it
stands for (``cnnviz.core.display.colorize``), whether the worker coloured the result or a
display change (colormap, a histogram drag) re-coloured it here; and while results stream
in, the histograms are redrawn only a few times a second, yet once the stream stops each
histogram is the exact one of the picture shown (its counts, its levels, its range).
No timings are asserted.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

from cnnviz.core.conv import PipelineRequest
from cnnviz.core.kernels import preset
from cnnviz.core.display import colorize, display_bgra, histogram_counts, to_uint8
from cnnviz.qt.playground import view_histograms
from cnnviz.qt.playground import views as views_mod
from cnnviz.core.playground import PlaygroundJob, compute_playground
from cnnviz.core.settings import PlaygroundParams
from cnnviz.core.display import MOSAIC, DisplaySettings

OUTPUTS = ("conv", "activation", "pool")


def wait_shown(qtbot, window, predicate, timeout=10_000):
    qtbot.waitUntil(lambda: window.current_result() is not None and predicate(window), timeout=timeout)


def expected_rgb(view) -> np.ndarray:
    """What the core says the view's map looks like under the view's colormap and levels."""
    data = view.data()
    if data.ndim == 2:
        return colorize(np.nan_to_num(data, nan=view.levels()[0]), view.colormap(), view.levels())
    return to_uint8(data, view.levels())


def assert_pixels_are_the_core_colours(view) -> None:
    data, rgb = view.data(), view.displayed_rgb()
    assert rgb is not None and rgb.shape == data.shape[:2] + (3,)
    finite = np.isfinite(data) if data.ndim == 2 else np.isfinite(data).all(axis=2)
    np.testing.assert_array_equal(rgb[finite], expected_rgb(view)[finite])


def settle(qtbot, window) -> None:
    """Wait until the histograms have been drawn exactly (the stream has stopped)."""
    outputs = window.outputs
    qtbot.waitUntil(lambda: not outputs._hist_timer.isActive() and not outputs._hist_settle_timer.isActive()
                    and not outputs.histograms_pending(), timeout=10_000)


def assert_histogram_exact(view) -> None:
    centres, counts = histogram_counts(view.data(), view.levels())
    x, y = view.histogram_curve()
    np.testing.assert_allclose(x, centres)
    np.testing.assert_array_equal(y, counts)
    assert tuple(view.histogram.getLevels()) == pytest.approx(view.levels())
    assert view.histogram_range() == pytest.approx(view.levels())


# ---------------------------------------------------------------------------------------
# core: the display buffers
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("cmap", ["diverging", "gray", "viridis", "magma"])
def test_display_bgra_is_colorize_in_blit_order(cmap):
    rng = np.random.default_rng(1)
    base = rng.normal(size=(40, 52)).astype(np.float32)
    cropped = base[2:-3, 1:-4]                      # rows with gaps, as the conv maps are
    for arr in (base, cropped):
        bgra = display_bgra(arr, cmap, (-1.5, 2.0))
        assert bgra.dtype == np.uint8 and bgra.shape == arr.shape + (4,) and bgra.flags.c_contiguous
        np.testing.assert_array_equal(bgra[..., 2::-1], colorize(np.ascontiguousarray(arr), cmap, (-1.5, 2.0)))
        assert (bgra[..., 3] == 255).all()


def test_display_bgra_makes_nan_transparent_and_scales_rgb_maps():
    arr = np.linspace(-1, 1, 24, dtype=np.float32).reshape(4, 6)
    arr[1, 2] = np.nan
    bgra = display_bgra(arr, "diverging", (-1.0, 1.0))
    assert tuple(bgra[1, 2]) == (0, 0, 0, 0)
    assert (bgra[..., 3].sum() == 255 * 23)
    rgb = np.random.default_rng(2).random((5, 7, 3)).astype(np.float32) * 3 - 1
    np.testing.assert_array_equal(display_bgra(rgb, "rgb", (-1.0, 2.0))[..., 2::-1], to_uint8(rgb, (-1.0, 2.0)))


def test_histogram_counts_one_bin_per_display_colour_inside_the_levels():
    rng = np.random.default_rng(3)
    arr = rng.normal(size=(60, 70)).astype(np.float32)
    arr[0, :5] = np.nan
    centres, counts = histogram_counts(arr, (-1.0, 2.0))
    assert centres.shape == counts.shape == (256,)
    assert centres[0] == pytest.approx(-1.0) and centres[-1] == pytest.approx(2.0)
    inside = arr[np.isfinite(arr) & (arr >= -1.0) & (arr <= 2.0)]   # small map: every value counted
    np.testing.assert_array_equal(counts, np.bincount(to_uint8(inside, (-1.0, 2.0)).ravel(), minlength=256))
    big = rng.normal(size=(720, 1280)).astype(np.float32)
    _, sampled = histogram_counts(big, (-3.0, 3.0), max_samples=40_000)
    assert 30_000 < sampled.sum() <= 41_000                          # a sample, not every pixel
    np.testing.assert_array_equal(sampled, histogram_counts(big, (-3.0, 3.0), max_samples=40_000)[1])


@pytest.mark.parametrize("cmap", ["diverging", "diverging-po", "gray", "viridis", "magma", "cividis"])
def test_a_views_picture_is_the_colormap_table_applied_to_its_levels(cmap):
    """The bytes a view draws (core.display.stage_image) are the colormap's table looked up
    at each pixel's 0..255 level, as B, G, R, A, NaN gaps transparent — for odd widths and
    cropped rows too."""
    from cnnviz.core.display import lut, stage_image

    rng = np.random.default_rng(5)
    base = rng.normal(size=(37, 53)).astype(np.float32)
    holes = base.copy()
    holes[::5, ::7] = np.nan
    for arr, nan in ((base, False), (base[1:-2, 3:-1], None), (holes, None), (holes, True)):
        st = stage_image(arr, (-1.2, 0.8), cmap, nan=nan)
        assert st.pixels.flags.c_contiguous and st.pixels.shape == arr.shape + (4,)
        level = np.clip(np.round((np.nan_to_num(arr, nan=-1.2) + 1.2) * (255.0 / 2.0)), 0, 255).astype(np.uint8)
        want = np.concatenate([lut(cmap)[level][..., ::-1], np.full(arr.shape + (1,), 255, np.uint8)], axis=2)
        want[np.isnan(arr)] = 0
        diff = np.abs(st.pixels.astype(int) - want.astype(int))
        assert diff.max() <= 1 and (diff == 0).mean() > 0.99      # float rounding at exact halves aside
        np.testing.assert_array_equal(st.pixels, display_bgra(arr, cmap, (-1.2, 0.8)))


# ---------------------------------------------------------------------------------------
# the worker colours, the views blit
# ---------------------------------------------------------------------------------------
def test_the_worker_colours_every_view_as_the_core_does(qtbot, window):
    window.set_params(PlaygroundParams(activation="relu", pool="max"))
    wait_shown(qtbot, window, lambda w: w.current_request().pool is not None)
    out = window._output
    assert out.display is not None                                  # the worker coloured it
    for stage in ("input",) + OUTPUTS:
        view = window.outputs.view(stage)
        assert view.image() is out.display.stages[stage]            # shown as the worker made it
        item = view.image_item.image
        assert item.dtype == np.uint8 and item.ndim == 3 and item.shape[2] == 4 and item.flags.c_contiguous
        assert_pixels_are_the_core_colours(view)
    np.testing.assert_array_equal(window.displayed_array("conv"), out.result.conv[0])   # hover/explain: floats
    conv = window.outputs.view("conv")
    assert conv.colormap() == "diverging" and conv.levels()[0] == pytest.approx(-conv.levels()[1])
    assert window.outputs.view("activation").colormap() == "gray"   # ReLU output is not signed


def test_compute_playground_colours_only_when_asked():
    img = np.random.default_rng(4).random((40, 50)).astype(np.float32)
    req = PipelineRequest((preset("sobel-y").kernel,))
    assert compute_playground(PlaygroundJob(img, 1, req)).display is None
    out = compute_playground(PlaygroundJob(img, 1, req, display=DisplaySettings(colormap="viridis")))
    st = out.display.stages["conv"]
    np.testing.assert_array_equal(st.pixels[..., 2::-1], colorize(out.result.conv[0], "viridis", st.levels))
    assert st.levels[0] == pytest.approx(-st.levels[1])             # still symmetric for a signed map


def test_a_kernel_edit_does_not_recolour_the_unchanged_input(qtbot, window):
    first = window.outputs.view("input").image()
    window.kernel_editor.setKernel(preset("sobel-x").kernel.with_value(1, 1, 2.0))
    wait_shown(qtbot, window, lambda w: float(w.current_request().kernels[0].weights[1, 1]) == 2.0)
    assert window.outputs.view("input").image() is first


def test_display_changes_recolour_at_once(qtbot, window):
    outputs = window.outputs
    conv = outputs.view("conv")
    outputs.set_colormap_choice("viridis")                          # no new computation needed
    assert conv.colormap() == "viridis"
    assert_pixels_are_the_core_colours(conv)
    conv.histogram.region.setRegion((-0.5, 0.5))                     # the user drags the levels
    assert conv.levels() == pytest.approx((-0.5, 0.5)) and outputs.levels_mode() == "fixed"
    assert_pixels_are_the_core_colours(conv)
    window.kernel_editor.setKernel(preset("sobel-x").kernel.with_value(0, 0, 3.0))
    wait_shown(qtbot, window, lambda w: float(w.current_request().kernels[0].weights[0, 0]) == 3.0)
    assert conv.levels() == pytest.approx((-0.5, 0.5))                # fixed levels kept by the worker
    assert_pixels_are_the_core_colours(conv)
    assert conv.image() is window._output.display.stages["conv"]


def test_mosaic_gaps_are_transparent_and_tiles_coloured(qtbot, window):
    window.set_kernels(preset("sobel-pair").kernels, 0, (0, 1))
    wait_shown(qtbot, window, lambda w: len(w.current_request().kernels) == 2)
    window.outputs.set_selection(MOSAIC)
    view = window.outputs.view("conv")
    data = view.data()
    gaps = np.isnan(data)
    assert gaps.any()
    alpha = view.image_item.image[..., 3]
    assert (alpha[gaps] == 0).all() and (alpha[~gaps] == 255).all()
    assert_pixels_are_the_core_colours(view)


def test_each_mode_shows_the_three_channel_maps_as_rgb(qtbot, window):
    window.set_params(PlaygroundParams(channels="each"))
    wait_shown(qtbot, window, lambda w: w.current_request().conv.channels == "each")
    view = window.outputs.view("conv")
    assert view.data().ndim == 3 and view.colormap() == "rgb"
    assert not view.histogram_visible()
    assert_pixels_are_the_core_colours(view)


# ---------------------------------------------------------------------------------------
# histograms: throttled while streaming, exact once settled
# ---------------------------------------------------------------------------------------
def test_histograms_are_throttled_while_results_stream_and_exact_after(qtbot, window, monkeypatch):
    window.set_params(PlaygroundParams(activation="relu", pool="max"))
    wait_shown(qtbot, window, lambda w: w.current_request().pool is not None)
    settle(qtbot, window)
    conv = window.outputs.view("conv")
    draws = []
    real = conv.histogram.plot.setData
    monkeypatch.setattr(conv.histogram.plot, "setData", lambda *a, **k: (draws.append(1), real(*a, **k)))
    # many edits, each waiting for its result: at most one redraw per interval
    def edit(v: float) -> None:
        window.kernel_editor.setKernel(preset("sobel-x").kernel.with_value(1, 2, v))
        wait_shown(qtbot, window, lambda w: float(w.current_request().kernels[0].weights[1, 2]) == v)

    t0 = time.perf_counter()
    for i in range(1, 16):
        edit(1.0 + 0.25 * i)
    elapsed_ms = (time.perf_counter() - t0) * 1e3
    assert len(draws) <= 2 + elapsed_ms / views_mod.HISTOGRAM_INTERVAL_MS
    settle(qtbot, window)
    for stage in OUTPUTS:
        assert_histogram_exact(window.outputs.view(stage))          # ...but the final state is exact
    # weaker and weaker: while streaming, the value range is kept (levels inside it); once
    # settled it is exactly the last result's levels again
    edit(4.25)
    edit(4.0)
    settle(qtbot, window)
    for stage in OUTPUTS:
        assert_histogram_exact(window.outputs.view(stage))


def test_histogram_throttle_limits_redraws_per_interval(qtbot, window, monkeypatch):
    """Deterministic: results delivered back to back with no time passing → the histograms
    are drawn once (the leading edge), the rest waits for its slot (the results are
    re-shown from the worker's own outputs, no computation)."""
    window.set_params(PlaygroundParams(activation="relu", pool="max"))
    wait_shown(qtbot, window, lambda w: w.current_request().pool is not None)
    outputs = window.outputs
    out_a = window._output
    window.kernel_editor.setKernel(preset("sobel-x").kernel.with_value(1, 2, 4.0))
    wait_shown(qtbot, window, lambda w: float(w.current_request().kernels[0].weights[1, 2]) == 4.0)
    out_b = window._output
    settle(qtbot, window)
    draws = []
    for stage in OUTPUTS:
        plot = outputs.view(stage).histogram.plot
        monkeypatch.setattr(plot, "setData", lambda *a, _real=plot.setData, **k: (draws.append(1), _real(*a, **k)))
    clock = [1000.0]
    monkeypatch.setattr(view_histograms, "_clock", lambda: clock[0])   # the throttle's clock
    outputs._hist_flushed_at = -1e9
    for i in range(10):                                   # ten results, no time passes
        out = (out_a, out_b)[i % 2]
        outputs.show_result(out.result, out.job.request, out.stats, out.display)
        if i == 0:
            qtbot.waitUntil(lambda: len(draws) == 3)     # the leading redraw: every histogram, at once
        QApplication.processEvents()                      # (a due slot would be drawn here)
    assert outputs._hist_timer.isActive() and outputs.histograms_pending()   # the rest waits
    assert len(draws) <= 3 + 2                            # not 3 per result (+2: a very slow machine)
    monkeypatch.undo()
    settle(qtbot, window)
    for stage in OUTPUTS:
        assert_histogram_exact(outputs.view(stage))
    np.testing.assert_array_equal(outputs.view("conv").data(), out_b.result.conv[0])   # the last one shown


def test_hidden_histograms_are_not_counted_and_drawn_exactly_when_shown(qtbot, window, monkeypatch):
    outputs = window.outputs
    outputs.set_histograms_visible(False)
    counted = []
    from cnnviz.qt.playground import map_view   # the views count their histograms there

    real = map_view.histogram_counts
    monkeypatch.setattr(map_view, "histogram_counts", lambda *a, **k: (counted.append(1), real(*a, **k))[1])
    window.kernel_editor.setKernel(preset("sobel-x").kernel.with_value(2, 2, 5.0))
    wait_shown(qtbot, window, lambda w: float(w.current_request().kernels[0].weights[2, 2]) == 5.0)
    qtbot.wait(2 * views_mod.HISTOGRAM_INTERVAL_MS)
    assert counted == []                                             # hidden: nothing counted
    assert not outputs.view("conv").histogram_visible()
    outputs.set_histograms_visible(True)
    assert outputs.view("conv").histogram_visible()
    assert_histogram_exact(outputs.view("conv"))


def test_closing_while_a_histogram_redraw_waits_leaves_no_timer(qtbot, make_window):
    win = make_window()
    win.kernel_editor.setKernel(preset("sobel-x").kernel.with_value(1, 1, 6.0))
    wait_shown(qtbot, win, lambda w: float(w.current_request().kernels[0].weights[1, 1]) == 6.0)
    win.close()          # the fixture checks that no timer is left running
    assert not win.outputs._hist_timer.isActive() and not win.outputs._hist_settle_timer.isActive()
