"""A layer's maps as one RGB mosaic: the picture the inspector's grid shows, its PNG export and
the mosaic ``cnnviz inspect`` writes (one core function, :func:`cnnviz.core.display.layer_mosaic`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnviz.core.display import LAYER_PAD_GREY, layer_mosaic, layer_mosaics, lut
from cnnviz.core.mosaic import grid_shape, mosaic_many


def reference_tiles(maps: np.ndarray, mode: str) -> np.ndarray:
    """Grey levels per the documented policy, in float64: signed layers 127.5 + 127.5 x / max|x|,
    others (x - lo) / (hi - lo) * 255; per channel or per layer."""
    x = maps.astype(np.float64)
    axes = (1, 2) if mode == "channel" else (0, 1, 2)
    if (x < 0).any():
        m = np.abs(x).max(axis=axes, keepdims=True)
        t = 127.5 + 127.5 * x / np.where(m > 0, m, 1.0)
    else:
        lo, hi = x.min(axis=axes, keepdims=True), x.max(axis=axes, keepdims=True)
        t = np.where(hi > lo, (x - lo) / np.where(hi > lo, hi - lo, 1.0) * 255.0, 0.0)
    return np.clip(np.round(t), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("mode", ["channel", "layer"])
def test_tiles_follow_the_level_policy_in_grey_or_diverging(signed, mode):
    rng = np.random.default_rng(3)
    maps = rng.standard_normal((7, 5, 9)).astype(np.float32)
    if not signed:
        maps = np.abs(maps) + 0.5
    m = layer_mosaic(maps, mode)
    assert m.signed == signed and m.cmap == ("diverging" if signed else "gray") and m.mode == mode
    tiles = m.tiles()
    assert tiles.shape == (7, 5, 9, 3)
    expected = lut(m.cmap)[reference_tiles(maps, mode)]
    assert np.abs(tiles.astype(int) - expected.astype(int)).max() <= 3  # one grey level (diverging: 3 per level)
    assert (m.levels is None) == (mode == "channel")
    if mode == "layer" and signed:
        assert m.levels == pytest.approx((-np.abs(maps).max(), np.abs(maps).max()))


def test_tiles_sit_in_the_core_tilers_grid_on_grey_padding():
    maps = np.arange(7 * 3 * 4, dtype=np.float32).reshape(7, 3, 4) + 1.0
    m = layer_mosaic(maps, pad=2)
    assert (m.rows, m.cols) == grid_shape(7, (3, 4)) == (3, 3)
    assert m.image.shape == (3 * 5 - 2, 3 * 6 - 2, 3)
    tiles = m.tiles()
    for c in range(7):
        r, k = divmod(c, m.cols)
        np.testing.assert_array_equal(m.image[r * 5: r * 5 + 3, k * 6: k * 6 + 4], tiles[c])
        assert tiles[c].min() == 0 and tiles[c].max() == 255  # per-channel levels: black to white
    assert (m.image[3:5] == LAYER_PAD_GREY).all() and (m.image[:, 4:6] == LAYER_PAD_GREY).all()
    assert (m.image[10:, 6:] == LAYER_PAD_GREY).all()  # the two empty cells of the last row


def test_one_by_one_maps_compare_across_the_layer_and_nan_is_the_colour_of_zero():
    pooled = np.array([1.0, 2.0, 3.0], np.float32).reshape(3, 1, 1)
    m = layer_mosaic(pooled, "channel")  # per channel, every 1x1 map would be black
    assert m.mode == "layer" and [int(t[0, 0, 0]) for t in m.tiles()] == [0, 128, 255]
    maps = np.array([[[-1.0, np.nan], [1.0, 0.0]]], np.float32)
    t = layer_mosaic(maps).tiles()[0]
    assert tuple(t[0, 1]) == tuple(t[1, 1]) == tuple(lut("diverging")[128])


def test_many_layers_at_once_equal_one_at_a_time_for_numpy_and_torch():
    rng = np.random.default_rng(0)
    layers = [rng.standard_normal((8, 6, 6)).astype(np.float32), np.abs(rng.standard_normal((4, 3, 3))).astype(np.float32),
              rng.standard_normal((5, 1, 1)).astype(np.float32)]
    together = layer_mosaics([torch.from_numpy(a) for a in layers], cmap="viridis")
    for a, m in zip(layers, together):
        one = layer_mosaic(a, cmap="viridis")
        np.testing.assert_array_equal(m.image, one.image)
        assert m.cmap == "viridis" and m.mode == one.mode
    with pytest.raises(ValueError, match="unknown colormap"):
        layer_mosaics(layers, cmap="jet")


def test_the_tiler_takes_one_mode_per_layer():
    a = torch.tensor([[[1.0]], [[3.0]]])
    per_layer = mosaic_many([a, a], mode=["channel", "layer"], pad=0, cols=2)
    assert per_layer[0].image.tolist() == [[0, 0]] and per_layer[1].image.tolist() == [[0, 255]]
    with pytest.raises(ValueError):
        mosaic_many([a], mode=["pixel"])
