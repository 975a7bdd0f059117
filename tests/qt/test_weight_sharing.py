"""The weight-sharing panel shows the conv vs dense parameter counts for this image."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

from cnnviz.qt.playground.weight_sharing import WeightSharingPanel, human_bytes, human_count


@pytest.fixture
def panel(qtbot):
    w = WeightSharingPanel()
    qtbot.addWidget(w)
    w.show()
    return w


def test_counts_for_a_gray_3x3_bank_on_a_small_image(panel):
    # 2 kernels 3×3 on a 1-channel 10×12 image, valid padding → 8×10 outputs each
    panel.update_for((10, 12), (8, 10), (3, 3), 1, 2)
    n = panel.numbers()
    assert n["conv_params"] == 2 * (1 * 3 * 3 + 1) == 20
    dense = (10 * 12 * 1) * (8 * 10 * 2) + 8 * 10 * 2
    assert n["dense_params"] == dense == 19360
    assert n["ratio"] == pytest.approx(dense / 20)
    text = panel.shown_text()
    assert "2 × (1·3·3 + 1) = 20" in text
    assert "(10·12·1) · (8·10·2) + 8·10·2 = 19,360" in text
    assert "968×" in text
    assert "Weight sharing" in text


def test_counts_for_rgb_full_mode_on_hd(panel):
    panel.update_for((720, 1280), (720, 1280), (5, 5), 3, 1)
    n = panel.numbers()
    assert n["conv_params"] == 3 * 25 + 1
    assert n["dense_params"] == 720 * 1280 * 3 * 720 * 1280 + 720 * 1280
    assert "trillion" in panel.shown_text()


def test_clear_and_human_formats(panel):
    panel.update_for((4, 4), (2, 2), (3, 3), 1, 1)
    panel.clear()
    assert panel.numbers() == {}
    assert human_count(1_500_000) == "1.5 million"
    assert human_bytes(4e9) == "4 GB"
