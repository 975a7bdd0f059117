"""Rendering layers, weights and histograms: the pixels the inspector shows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnviz.core.mosaic import (
    as_maps,
    conv_weights_image,
    grid_shape,
    histogram,
    mosaic,
    mosaic_many,
    normalize_uint8,
    overview_strip,
    overview_strips,
    representative_channels,
)


def tile(m, c):
    """The pixels of channel ``c``'s tile in a Mosaic."""
    th, tw = m.tile_hw
    i = m.channels.index(c)
    r, k = divmod(i, m.cols)
    y, x = r * (th + m.pad), k * (tw + m.pad)
    return m.image[y:y + th, x:x + tw]


def test_per_channel_levels_stretch_every_channel():
    act = torch.stack([torch.linspace(0, 1, 12).reshape(3, 4), torch.linspace(0, 100, 12).reshape(3, 4) + 50])
    m = mosaic(act, mode="channel", pad=2)
    assert m.image.shape == (3, 4 + 2 + 4) and (m.rows, m.cols) == (1, 2)
    for c in range(2):
        t = tile(m, c)
        assert t.min() == 0 and t.max() == 255
        a = act[c].numpy()
        expected = np.round((a - a.min()) / (a.max() - a.min()) * 255)
        assert np.abs(t.astype(int) - expected).max() <= 1
    assert (m.image[:, 4:6] == 0).all()  # padding


def test_per_layer_levels_compare_channels():
    act = torch.stack([torch.full((2, 2), 1.0), torch.full((2, 2), 3.0), torch.full((2, 2), 5.0)])
    m = mosaic(act, mode="layer", pad=0, cols=3)
    assert [int(tile(m, c)[0, 0]) for c in range(3)] == [0, 128, 255]
    assert m.levels == (1.0, 5.0)


def test_signed_maps_are_symmetric_around_128():
    act = torch.tensor([[[-2.0, 0.0, 1.0]]])
    m = mosaic(act, pad=0)
    assert m.signed and m.image.tolist() == [[0, 128, 191]]  # 127.5 + 127.5 * v / 2, rounded
    m = mosaic(torch.tensor([[[0.0, 1.0, 2.0]]]), pad=0)
    assert not m.signed and m.image.tolist() == [[0, 128, 255]]


def test_constant_and_non_finite_channels_do_not_break():
    act = torch.zeros(2, 3, 3)
    act[1, 0, 0] = float("nan")
    act[1, 1, 1] = float("inf")
    act[1, 2, 2] = 4.0
    m = mosaic(act, pad=0, cols=2)
    assert (tile(m, 0) == 0).all()
    t = tile(m, 1)
    assert t[2, 2] == 255 and t[0, 0] == 0 and t[1, 1] == 0


@settings(max_examples=60, deadline=None)
@given(c=st.integers(1, 20), h=st.integers(1, 9), w=st.integers(1, 9), pad=st.integers(0, 3),
       seed=st.integers(0, 10_000), mode=st.sampled_from(["channel", "layer"]))
def test_mosaic_tiles_hold_each_channel(c, h, w, pad, seed, mode):
    act = torch.randn(c, h, w, generator=torch.Generator().manual_seed(seed))
    m = mosaic(act, mode=mode, pad=pad)
    assert m.rows * m.cols >= c > (m.rows - 1) * m.cols
    assert m.image.shape == (m.rows * (h + pad) - pad, m.cols * (w + pad) - pad)
    u8, _, _ = normalize_uint8(act, mode)
    for ch in range(c):
        assert np.array_equal(tile(m, ch), u8[ch].numpy())
        # the tile_at lookup finds the channel from any of its pixels
        r, k = divmod(ch, m.cols)
        assert m.tile_at(r * (h + pad) + h - 1, k * (w + pad)) == ch


def test_vectors_and_other_shapes():
    v = torch.arange(10.0)
    maps = as_maps(v)
    assert maps.shape == (1, 3, 4) and torch.isnan(maps[0, 2, 2:]).all()
    m = mosaic(v)
    assert m.image.shape == (3, 4) and m.image[0, 0] == 0 and m.image[2, 1] == 255
    assert mosaic(torch.rand(5, 7)).image.shape == (5, 7)
    assert as_maps(torch.rand(2, 3, 4, 5)).shape == (6, 4, 5)


def test_overview_strip_shows_the_most_active_channels():
    act = torch.zeros(6, 4, 4)
    for c, v in enumerate([0.1, 5, 0.2, 3, 9, 0.0]):
        act[c] = v * torch.rand(4, 4, generator=torch.Generator().manual_seed(c))
    assert representative_channels(act, 3) == [4, 1, 3]
    m = overview_strip(act, 3, pad=1)
    assert m.channels == [4, 1, 3] and (m.rows, m.cols) == (1, 3) and m.image.shape == (4, 14)


def test_first_layer_weights_in_colour_others_in_grey():
    w = torch.zeros(4, 3, 2, 2)
    w[0, 0] = 1.0   # pure red filter
    w[1, 2] = -1.0  # negative blue
    m = conv_weights_image(w, pad=1, cols=4)
    assert m.image.shape == (2, 4 * 3 - 1, 3) and m.signed
    red = m.image[:2, :2]
    assert (red[..., 0] == 255).all() and (red[..., 1] == 128).all() and (red[..., 2] == 128).all()
    blue = m.image[:2, 3:5]
    assert (blue[..., 2] == 0).all() and (blue[..., 0] == 128).all()
    g = conv_weights_image(torch.randn(8, 16, 3, 3))
    assert g.image.ndim == 2 and len(g.channels) == 8
    g1 = conv_weights_image(torch.randn(8, 16, 3, 3), in_channel=5)
    assert g1.image.shape == g.image.shape
    with pytest.raises(ValueError):
        conv_weights_image(torch.randn(8, 16))


def test_histogram_counts_and_edges():
    vals = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0, float("nan")])
    counts, edges = histogram(vals, bins=2)
    assert counts.tolist() == [2, 3] and np.allclose(edges, [0, 0.5, 1])
    counts, edges = histogram(torch.ones(5), bins=4)
    assert counts.sum() == 5 and edges[0] < 1 < edges[-1]
    ref_counts, _ = np.histogram(np.linspace(-3, 3, 1001), bins=10, range=(-3, 3))
    counts, _ = histogram(torch.linspace(-3, 3, 1001), bins=10)
    assert np.abs(counts - ref_counts).max() <= 1


def test_grid_is_wide_rather_than_tall():
    assert grid_shape(6) == (2, 3)
    assert grid_shape(64) == (8, 8)
    assert grid_shape(10, cols=4) == (3, 4)


def test_mosaic_many_equals_one_call_per_layer(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    acts = [torch.randn(6, 5, 7, generator=gen), torch.rand(3, 4, 4, generator=gen), torch.arange(10.0),
            torch.zeros(2, 3, 3), torch.randn(1, 2, 2, generator=gen) * float("inf"), torch.rand(5, 9, generator=gen)]
    for mode, batched in [("channel", False), ("layer", False), ("channel", True), ("layer", True)]:
        many = mosaic_many(acts, mode=mode, pad=2, batched=batched)
        assert len(many) == len(acts)
        for a, m in zip(acts, many):
            one = mosaic(a, mode=mode, pad=2)
            assert np.array_equal(m.image, one.image)
            assert (m.rows, m.cols, m.tile_hw, m.signed, m.levels) == (one.rows, one.cols, one.tile_hw, one.signed, one.levels)
    assert mosaic_many([]) == []
    # all finite (vectors included): the batched kernels really run, and agree
    finite = [acts[0], acts[1], acts[2], acts[3], acts[5]]
    from cnnviz.core import mosaic as mosaic_module

    calls = []
    real = mosaic_module._render_batched
    monkeypatch.setattr(mosaic_module, "_render_batched", lambda *a, **k: calls.append(1) or real(*a, **k))
    for p, q in zip(mosaic_many(finite, batched=True), mosaic_many(finite, batched=False)):
        assert np.abs(p.image.astype(int) - q.image.astype(int)).max() <= 1
        assert p.image.shape == q.image.shape and (p.image[-1, -1] == q.image[-1, -1])
    assert calls == [1]


def test_overview_strips_of_many_layers_at_once():
    gen = torch.Generator().manual_seed(1)
    acts = [torch.randn(12, 6, 6, generator=gen), torch.rand(3, 4, 5, generator=gen), torch.randn(40, generator=gen)]
    strips = overview_strips(acts, 4)
    for a, m in zip(acts, strips):
        one = overview_strip(a, 4)
        assert m.channels == one.channels == representative_channels(a, 4)
        assert m.rows == 1 and m.cols == len(m.channels) and np.array_equal(m.image, one.image)
        for c in m.channels:  # each tile is that channel's own mosaic tile
            full = mosaic(a, pad=0)
            if a.dim() == 3:
                assert np.array_equal(tile(m, c), tile(full, c))


@settings(max_examples=30, deadline=None)
@given(shapes=st.lists(st.tuples(st.integers(1, 9), st.integers(1, 6), st.integers(1, 6)), min_size=1, max_size=5),
       pad=st.integers(0, 2), seed=st.integers(0, 1000), mode=st.sampled_from(["channel", "layer"]))
def test_batched_kernels_render_exactly_like_the_per_layer_path(shapes, pad, seed, mode):
    """The GPU path (all layers in one sequence of kernels) is checked here on the CPU."""
    gen = torch.Generator().manual_seed(seed)
    acts = [torch.randn(s, generator=gen) * (1 + i) + (i % 2) * 3 for i, s in enumerate(shapes)]
    a = mosaic_many(acts, mode=mode, pad=pad, batched=False)
    b = mosaic_many(acts, mode=mode, pad=pad, batched=True)
    for p, q in zip(a, b):
        assert p.image.shape == q.image.shape
        assert np.abs(p.image.astype(int) - q.image.astype(int)).max() <= 1  # fused multiply-add rounding
        assert (p.signed, p.levels, p.rows, p.cols) == (q.signed, q.levels, q.rows, q.cols)


@settings(max_examples=40, deadline=None)
@given(shapes=st.lists(st.tuples(st.integers(1, 9), st.integers(1, 6), st.integers(1, 6)), min_size=1, max_size=5),
       pad=st.integers(0, 2), seed=st.integers(0, 1000), mode=st.sampled_from(["channel", "layer"]),
       signed=st.sampled_from([None, True, False]), cols=st.sampled_from([None, 1, 3]))
def test_the_planned_cpu_path_renders_exactly_like_the_general_path(shapes, pad, seed, mode, signed, cols):
    """Finite maps on the CPU go through cached plans (bounds and coefficients for every layer
    at once); the general per-layer path (the one NaN/inf maps take) must give the same bytes."""
    from unittest import mock

    from cnnviz.core import mosaic as mosaic_module

    gen = torch.Generator().manual_seed(seed)
    acts = [torch.randn(s, generator=gen) * (1 + i) + (i % 2) * 3 for i, s in enumerate(shapes)]
    acts.append(torch.zeros(2, 3, 3))  # constant maps
    acts.append(torch.randn(7, generator=gen))  # a vector
    planned = mosaic_many(acts, mode=mode, pad=pad, signed=signed, cols=cols)
    with mock.patch.object(mosaic_module, "_render_planned", lambda *a, **k: None):
        general = mosaic_many(acts, mode=mode, pad=pad, signed=signed, cols=cols)
    for p, q in zip(planned, general):
        assert np.array_equal(p.image, q.image)
        assert (p.signed, p.levels, p.rows, p.cols, p.tile_hw, p.channels) == \
               (q.signed, q.levels, q.rows, q.cols, q.tile_hw, q.channels)


def test_a_reused_layout_never_mixes_frames():
    """The second frame of one layout reuses the first one's plan (bounds and coefficient
    slots, scratch); the first frame's images must stay as they were, and the second must
    show its own values."""
    gen = torch.Generator().manual_seed(3)
    first = [torch.randn(8, 5, 5, generator=gen), torch.rand(4, 3, 3, generator=gen)]
    second = [-3 * first[0] + 1, 2 * first[1] + 1]
    want_first = [normalize_uint8(a)[0].numpy() for a in first]
    want_second = [normalize_uint8(a)[0].numpy() for a in second]
    got_first = mosaic_many(first, pad=0, cols=1)
    got_second = mosaic_many(second, pad=0, cols=1)
    for got, want in [(got_first, want_first), (got_second, want_second)]:
        for m, w in zip(got, want):
            assert np.array_equal(m.image, w.reshape(-1, w.shape[-1]))
    assert got_second[0].signed and not got_second[1].signed


def test_threads_rendering_one_layout_at_once_get_their_own_pixels():
    from concurrent.futures import ThreadPoolExecutor

    gen = torch.Generator().manual_seed(4)
    frames = [[torch.randn(16, 12, 12, generator=gen) * (k + 1), torch.rand(32, 6, 6, generator=gen) + k]
              for k in range(6)]
    want = [[m.image.copy() for m in mosaic_many(f)] for f in frames]

    def render(k):
        for _ in range(20):
            got = mosaic_many(frames[k])
            if not all(np.array_equal(m.image, w) for m, w in zip(got, want[k])):
                return False
        return True

    with ThreadPoolExecutor(3) as pool:
        assert all(pool.map(render, range(len(frames))))


def test_a_bigger_layout_replaces_the_scratch_buffer_and_older_layouts_still_render():
    """Each thread keeps one scratch buffer for all its layouts: a bigger layer grows it,
    and the layouts made before render right with the new one (no stale views, no second
    buffer kept alive)."""
    from cnnviz.core import mosaic as mosaic_module

    gen = torch.Generator().manual_seed(5)
    small = [torch.randn(3, 4, 4, generator=gen)]
    big = [torch.randn(4, 300, 301, generator=gen)]
    want_small = mosaic_many(small)[0].image.copy()
    want_big = mosaic_many(big)[0].image.copy()
    plans = list(mosaic_module._PLANS.plans.values())
    scratches = {id(p.scratch) for p in plans if p.scratch is not None}
    assert len(scratches) == 1  # the small layout's views of the old buffer were dropped
    assert np.array_equal(mosaic_many(small)[0].image, want_small)
    assert np.array_equal(mosaic_many(big)[0].image, want_big)
    u8, _, _ = normalize_uint8(big[0])
    assert np.array_equal(tile(mosaic_many(big)[0], 2), u8[2].numpy())
