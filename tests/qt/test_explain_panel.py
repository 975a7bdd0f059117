"""The explain panel shows the same number the map shows, and the sum that makes it."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import re

import numpy as np
import pytest
from PySide6.QtWidgets import QLabel

from cnnviz.core.conv import ActivationSpec, ConvSpec, PipelineRequest, PoolSpec, prepare_input, run_pipeline
from cnnviz.core.dotproduct import explain_conv_pixel, explain_pool_pixel
from cnnviz.core.kernels import Kernel, presets
from cnnviz.qt.colors import format_sig
from cnnviz.qt.playground.explain_panel import ExplainPanel

NUM = r"−?\d+(?:\.\d+)?(?:e−?\d+)?"


def _numbers(text: str) -> list[float]:
    return [float(t.replace("−", "-")) for t in re.findall(NUM, text)]


@pytest.fixture
def panel(qtbot):
    w = ExplainPanel()
    qtbot.addWidget(w)
    w.resize(640, 320)
    w.show()
    return w


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(3).random((15, 17, 3), dtype=np.float32)


CASES = [
    ("sobel-x", ConvSpec(padding=1), [(0, 0), (7, 8), (14, 16)]),
    ("gaussian-5", ConvSpec(padding=2, padding_mode="reflect", bias=0.25), [(0, 0), (14, 16)]),
    ("laplacian-4", ConvSpec(padding=2, dilation=2, stride=(2, 1)), [(0, 0), (3, 5), (7, 16)]),
    ("emboss", ConvSpec(padding="same", channels="full", bias=-0.5), [(0, 5), (14, 0)]),
    ("sharpen", ConvSpec(padding=1, channels="each"), [(0, 16), (6, 6)]),
]


@pytest.mark.parametrize("name, spec, pixels", CASES)
def test_conv_sum_equals_products_plus_bias_equals_map(panel, image, name, spec, pixels):
    kernel = presets()[name].kernel
    x = prepare_input(image, spec.channels)
    res = run_pipeline(image, PipelineRequest((kernel,), spec))
    for oy, ox in pixels:
        channel = 1 if spec.channels == "each" else None
        expl = explain_conv_pixel(x, kernel, spec, oy, ox, channel=channel)
        panel.show_conv(expl)
        map_value = res.conv[0, 1, oy, ox] if spec.channels == "each" else res.conv[0, oy, ox]
        assert panel.shown_value() == pytest.approx(float(map_value), abs=1e-5)
        total, bias, value = _numbers(panel.shown_sum_text())
        products = np.asarray(expl.products, np.float64)
        assert total == pytest.approx(float(products.sum()), rel=1e-3, abs=1e-4)
        assert abs(bias) == pytest.approx(abs(spec.bias + kernel.offset), abs=1e-4)
        assert value == pytest.approx(float(map_value), rel=1e-3, abs=1e-4)
        assert panel.shown_sum_text() == (f"{format_sig(products.sum())} {'+' if expl.bias >= 0 else '−'} "
                                          f"{format_sig(abs(expl.bias))} = {format_sig(map_value)}")
        # the three grids show the core's arrays (channel 0 in full mode)
        first = (lambda a: a[0] if a.ndim == 3 else a)
        np.testing.assert_allclose(panel.grid("patch").values(), first(expl.patch), rtol=1e-6)
        np.testing.assert_allclose(panel.grid("kernel").values(), first(expl.weights), rtol=1e-6)
        np.testing.assert_allclose(panel.grid("products").values(), first(expl.products), rtol=1e-6)


def test_padding_taps_are_reported(panel, image):
    x = prepare_input(image, "gray")
    expl = explain_conv_pixel(x, presets()["sobel-x"].kernel, ConvSpec(padding=1), 0, 0)
    panel.show_conv(expl)
    legend = panel.findChild(QLabel, "legend").text()
    assert "5 taps outside the image" in legend
    assert "rows −1…1" in panel.findChild(QLabel, "title").text().replace("-", "−")


def test_max_pool_shows_winner(panel):
    act = np.random.default_rng(5).normal(size=(9, 9)).astype(np.float32)
    pool = PoolSpec("max", 3, padding=1)
    ref = run_pipeline(act, PipelineRequest((Kernel([[1.0]]),), ConvSpec(), ActivationSpec(), pool)).pool[0]
    for py, px in [(0, 0), (1, 2), (2, 2)]:
        expl = explain_pool_pixel(act, pool, py, px)
        panel.show_pool(expl)
        assert panel.shown_value() == pytest.approx(float(ref[py, px]))
        assert panel.shown_sum_text() == f"max = {format_sig(ref[py, px])}"
        grid = panel.grid("pool")
        vals = grid.values()
        wy, wx = expl.winner
        assert vals[wy - expl.window[0], wx - expl.window[1]] == pytest.approx(float(ref[py, px]))
        assert grid._highlight == (wy - expl.window[0], wx - expl.window[1])


def test_avg_pool_shows_mean_computation(panel):
    act = np.random.default_rng(6).normal(size=(8, 8)).astype(np.float32)
    pool = PoolSpec("avg", 2)
    ref = run_pipeline(act, PipelineRequest((Kernel([[1.0]]),), ConvSpec(), ActivationSpec(), pool)).pool[0]
    expl = explain_pool_pixel(act, pool, 2, 3)
    panel.show_pool(expl)
    total, div, value = _numbers(panel.shown_sum_text())
    assert div == 4
    assert total == pytest.approx(float(act[4:6, 6:8].sum()), abs=1e-3)
    assert value == pytest.approx(float(ref[2, 3]), rel=1e-3)
    assert panel.shown_value() == pytest.approx(float(ref[2, 3]))


def test_clear(panel, image):
    x = prepare_input(image, "gray")
    panel.show_conv(explain_conv_pixel(x, presets()["sobel-x"].kernel, ConvSpec(), 1, 1))
    panel.clear()
    assert panel.shown_value() is None and panel.shown_sum_text() == ""


def test_every_kernel_and_product_cell_at_7x7_shows_its_number(panel, image):
    """With a 7×7 kernel (small, negative weights) every cell of the kernel and products
    grids shows its number, fitting its cell, even at the grids' minimum size."""
    from cnnviz.qt.playground.kernel_grid import parse_value

    rng = np.random.default_rng(5)
    w = np.round(rng.uniform(-0.2, 0.2, (7, 7)), 3).astype(np.float32)
    kernel = Kernel(w, name="small 7")
    spec = ConvSpec(padding=3)
    x = prepare_input(image, spec.channels)
    panel.show_conv(explain_conv_pixel(x, kernel, spec, 7, 8))
    for name in ("kernel", "products"):
        grid = panel.grid(name)
        grid.resize(grid.minimumSizeHint())
        values = grid.values()
        font, fm, texts = grid.cellTexts()
        for (r, c), v in np.ndenumerate(values):
            text = texts[r, c]
            assert text, f"{name} cell {(r, c)} is blank"
            assert fm.horizontalAdvance(text) <= grid.cellRect(r, c).width() - 3, (name, text)
            shown = parse_value(text)
            assert shown is not None and abs(shown - v) <= 0.5 * 10 ** np.floor(np.log10(abs(v) + 1e-12)) + 1e-9, \
                (name, text, v)
