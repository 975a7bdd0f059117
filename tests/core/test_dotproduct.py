"""The explain view's numbers equal the map's numbers."""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz.core.conv import ConvSpec, PipelineRequest, PoolSpec, run_pipeline
from cnnviz.core.dotproduct import (conv_window_in_input, explain_conv_pixel, explain_pool_pixel,
                                    pool_window_to_input, weight_sharing)
from cnnviz.core.kernels import Kernel, preset

SPECS = [
    ConvSpec(),
    ConvSpec(padding=1),
    ConvSpec(padding=2, padding_mode="reflect", stride=2),
    ConvSpec(padding=(1, 3), padding_mode="replicate", dilation=2),
    ConvSpec(padding="same", padding_mode="circular", dilation=(2, 1)),
    ConvSpec(padding=1, flip=True, bias=0.5),
    ConvSpec(padding=1, channels="each"),
    ConvSpec(padding=2, channels="full", stride=(1, 2), dilation=2),
]


@pytest.mark.parametrize("spec", SPECS)
def test_sum_equals_map_value_everywhere_including_borders(spec):
    rng = np.random.default_rng(0)
    img = rng.random((13, 17, 3), dtype=np.float32)
    k = Kernel(rng.normal(size=(3, 4)).astype(np.float32), offset=0.25)
    res = run_pipeline(img, PipelineRequest((k,), spec))
    oh, ow = res.conv.shape[-2:]
    for oy in {0, 1, oh // 2, oh - 1}:
        for ox in {0, ow // 2, ow - 1}:
            ch = 1 if spec.channels == "each" else None
            e = explain_conv_pixel(res.input, k, spec, oy, ox, channel=ch)
            m = res.conv[0, 1, oy, ox] if spec.channels == "each" else res.conv[0, oy, ox]
            assert e.value == pytest.approx(float(m), abs=1e-5)
            assert e.total == pytest.approx(float(e.products.sum()), abs=1e-5)


def test_border_pixel_reads_padding():
    img = np.ones((5, 5), np.float32)
    e = explain_conv_pixel(img, preset("box-3").kernel, ConvSpec(padding=1), 0, 0)
    assert e.window == (-1, -1, 2, 2)
    assert e.in_padding[0].all() and e.in_padding[:, 0].all() and not e.in_padding[1:, 1:].any()
    assert e.patch[0, 0] == 0  # zero padding
    e2 = explain_conv_pixel(img, preset("box-3").kernel, ConvSpec(padding=1, padding_mode="replicate"), 0, 0)
    assert e2.patch[0, 0] == 1 and e2.value == pytest.approx(1.0)


def test_window_geometry_with_stride_and_dilation():
    spec = ConvSpec(stride=2, padding=1, dilation=2)
    assert conv_window_in_input(spec, (3, 3), 3, 4) == (5, 7, 10, 12)


def test_pool_explanation_max_and_avg():
    act = np.array([[1, 3, 2, 4], [5, 6, 1, 2], [3, 2, 8, 1], [4, 1, 3, 7]], np.float32)
    e = explain_pool_pixel(act, PoolSpec("max", 2), 1, 1)
    assert e.value == 8 and e.winner == (2, 2) and e.window == (2, 2, 4, 4)
    a = explain_pool_pixel(act, PoolSpec("avg", 3, 2, 1), 0, 0)
    import torch
    import torch.nn.functional as F
    ref = F.avg_pool2d(torch.from_numpy(act)[None, None], 3, 2, 1)[0, 0, 0, 0].item()
    assert a.value == pytest.approx(ref) and a.divisor == 9


def test_pool_window_maps_back_to_input():
    spec = ConvSpec(padding=1)
    box = pool_window_to_input(spec, (3, 3), PoolSpec("max", 2), (10, 10), 0, 0)
    assert box == (-1, -1, 3, 3)


def test_weight_sharing_numbers():
    ws = weight_sharing((720, 1280), (718, 1278), (3, 3), 1, 1)
    assert ws["conv_params"] == 10
    assert ws["dense_params"] == 720 * 1280 * 718 * 1278 + 718 * 1278
    assert "more" in ws["text"]
