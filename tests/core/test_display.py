"""The display path's exactness shortcuts: the same bytes and levels as the plain way."""

from __future__ import annotations

import numpy as np


def test_auto_level_order_statistics_equal_a_full_partition():
    """The auto levels' selection shortcut (most of a ReLU map is its minimum) picks exactly
    the values one np.partition picks, for every kind of map."""
    from cnnviz.core.display import _order_stats

    rng = np.random.default_rng(1)
    for trial in range(2000):
        n = int(rng.integers(1, 400))
        a = rng.standard_normal(n).astype(np.float32)
        a = (a, np.maximum(a, 0), np.round(a * 2) / 2, np.full_like(a, 3.0), np.maximum(a, 0.7))[trial % 5]
        k_lo = int(rng.integers(0, n))
        k_hi = int(rng.integers(k_lo, n))
        part = np.partition(a, (k_lo, k_hi))
        assert _order_stats(a, k_lo, k_hi) == (float(part[k_lo]), float(part[k_hi])), (trial, k_lo, k_hi)


def test_exported_rgb_is_the_displayed_bgra_reordered():
    from cnnviz.core.display import export_rgb

    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, (37, 53, 4), dtype=np.uint8)
    px[..., 3] = 255
    np.testing.assert_array_equal(export_rgb(px), px[..., [2, 1, 0]])
    px[3:9, 4:7, 3] = 0  # transparent gaps: RGBA
    np.testing.assert_array_equal(export_rgb(px), px[..., [2, 1, 0, 3]])
    wide = np.zeros((37, 106, 4), np.uint8)
    wide[:, ::2] = px
    np.testing.assert_array_equal(export_rgb(wide[:, ::2]), px[..., [2, 1, 0, 3]])  # a strided view
