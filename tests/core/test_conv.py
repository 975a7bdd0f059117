"""The convolution core against PyTorch, the reference."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cnnviz.core.conv import (ActivationSpec, ConvSpec, PipelineRequest, PoolSpec, activate, conv_output_shape,
                              convolve, gradient_magnitude, pool2d, pool_output_shape, prepare_input, run_pipeline)
import cnnviz.core.conv as conv_mod
from cnnviz.core.errors import SpecError
from cnnviz.core.kernels import Kernel, preset

TOL = 1e-5


# ------------------------------------------------------------------ torch reference
def torch_reference(img: np.ndarray, kernels, spec: ConvSpec, act: ActivationSpec, pool: PoolSpec | None):
    """The same computation written directly with torch.nn.functional."""
    x = prepare_input(img, spec.channels)
    t = torch.from_numpy(np.ascontiguousarray(x)).double()
    t = t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]
    kh, kw = kernels[0].size
    top, bottom, left, right = spec.pads((kh, kw))
    if spec.padding_mode == "zeros":
        if spec.padding in ("same", "valid"):
            padding = spec.padding
            tp = t
        else:
            padding = 0
            tp = F.pad(t, (left, right, top, bottom))
    else:
        padding = 0
        tp = F.pad(t, (left, right, top, bottom), mode=spec.padding_mode)
    outs = []
    for k in kernels:
        w = torch.from_numpy(k.effective().astype(np.float64))
        if spec.flip:
            w = torch.flip(w, dims=(-2, -1))
        b = torch.tensor([spec.bias + k.offset], dtype=torch.float64)
        if spec.channels == "gray":
            o = F.conv2d(tp, w[None, None], b, stride=spec.stride, padding=padding, dilation=spec.dilation)[0]
        elif spec.channels == "each":
            o = F.conv2d(tp.transpose(0, 1), w[None, None], b, stride=spec.stride, padding=padding,
                         dilation=spec.dilation)[:, 0]
        else:
            w3 = w[None].repeat(3, 1, 1) / 3 if w.ndim == 2 else w
            o = F.conv2d(tp, w3[None], b, stride=spec.stride, padding=padding, dilation=spec.dilation)[0]
        outs.append(o)
    conv = torch.stack(outs)  # (N, 1, H, W) / (N, 3, H, W) / (N, 1, H, W)
    if spec.channels != "each":
        conv = conv[:, 0]
    a = {"none": lambda z: z, "relu": F.relu, "leaky_relu": lambda z: F.leaky_relu(z, act.slope), "abs": torch.abs,
         "sigmoid": torch.sigmoid, "tanh": torch.tanh}[act.kind](conv)
    p = None
    if pool is not None:
        a4 = a if a.ndim == 4 else a[:, None]
        if pool.kind == "max":
            p = F.max_pool2d(a4, pool.size, pool.stride, pool.padding, ceil_mode=pool.ceil_mode)
        else:
            p = F.avg_pool2d(a4, pool.size, pool.stride, pool.padding, ceil_mode=pool.ceil_mode)
        p = p if a.ndim == 4 else p[:, 0]
        p = p.numpy()
    return conv.numpy(), a.numpy(), p


pairs = st.one_of(st.integers(1, 4), st.tuples(st.integers(1, 4), st.integers(1, 4)))


@st.composite
def cases(draw):
    h = draw(st.integers(1, 24))
    w = draw(st.integers(1, 24))
    rgb = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    img = rng.random((h, w, 3) if rgb else (h, w), dtype=np.float32)
    kh, kw = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    n = draw(st.integers(1, 3))
    kernels = tuple(Kernel(rng.normal(size=(kh, kw)).astype(np.float32), name=f"k{i}",
                           divisor=draw(st.sampled_from([1.0, 1.0, 4.0])), offset=draw(st.sampled_from([0.0, 0.5])))
                    for i in range(n))
    stride = draw(pairs)
    dilation = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = draw(st.one_of(st.integers(0, 3), st.tuples(st.integers(0, 3), st.integers(0, 3)),
                             st.sampled_from(["same", "valid"])))
    if padding == "same":
        stride = 1
    mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    channels = draw(st.sampled_from(["gray", "each", "full"]))
    spec = ConvSpec(stride=stride, padding=padding, padding_mode=mode, dilation=dilation,
                    bias=draw(st.sampled_from([0.0, -0.25, 1.0])), flip=draw(st.booleans()), channels=channels)
    act = ActivationSpec(draw(st.sampled_from(["none", "relu", "leaky_relu", "abs", "sigmoid", "tanh"])),
                         slope=draw(st.sampled_from([0.01, 0.2])))
    pool = None
    if draw(st.booleans()):
        size = draw(st.integers(1, 4))
        pool = PoolSpec(draw(st.sampled_from(["max", "avg"])), size, draw(st.one_of(st.none(), st.integers(1, 3))),
                        draw(st.integers(0, size // 2)), draw(st.booleans()))
    return img, kernels, spec, act, pool


def _valid(img, kernels, spec, pool):
    """True when PyTorch itself accepts the case (sizes and padding-mode limits)."""
    kh, kw = kernels[0].size
    h, w = img.shape[:2]
    t, b, l, r = spec.pads((kh, kw))
    if spec.padding_mode == "reflect" and (max(t, b) >= h or max(l, r) >= w):
        return False
    if spec.padding_mode == "circular" and (max(t, b) > h or max(l, r) > w):
        return False
    try:
        shape = conv_output_shape((h, w), (kh, kw), spec)
        if pool is not None:
            pool_output_shape(shape.out_hw, pool)
    except SpecError:
        return False
    return True


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(cases())
def test_pipeline_matches_pytorch(case):
    img, kernels, spec, act, pool = case
    assume(_valid(img, kernels, spec, pool))
    res = run_pipeline(img, PipelineRequest(kernels, spec, act, pool))
    conv_ref, act_ref, pool_ref = torch_reference(img, kernels, spec, act, pool)
    assert res.conv.shape == conv_ref.shape
    assert np.abs(res.conv - conv_ref).max(initial=0) <= TOL * max(1.0, np.abs(conv_ref).max(initial=0))
    assert np.abs(res.activation - act_ref).max(initial=0) <= TOL * max(1.0, np.abs(act_ref).max(initial=0))
    if pool is not None:
        assert res.pool.shape == pool_ref.shape
        assert np.abs(res.pool - pool_ref).max(initial=0) <= TOL * max(1.0, np.abs(pool_ref).max(initial=0))
        assert res.pool_shape.out_hw == pool_ref.shape[-2:]
    assert res.conv_shape.out_hw == conv_ref.shape[-2:]


@contextlib.contextmanager
def _cores(n: int, min_rows: int = 4):
    """Make the CPU path split frames over ``n`` threads, even small ones (the CI machine
    may have one core; the split must give the same bits on any machine)."""
    old = conv_mod._CORES, conv_mod._MIN_ROWS_PER_CHUNK, conv_mod._CHUNK_BYTES
    conv_mod._CORES, conv_mod._MIN_ROWS_PER_CHUNK, conv_mod._CHUNK_BYTES = n, min_rows, 64
    try:
        yield
    finally:
        conv_mod._CORES, conv_mod._MIN_ROWS_PER_CHUNK, conv_mod._CHUNK_BYTES = old


@st.composite
def banded_cases(draw):
    """The cases the row-band path takes: stride 1, dilation 1, gray/each, any pool."""
    img, kernels, spec, act, pool = draw(cases())
    h = draw(st.integers(8, 90))
    seed = draw(st.integers(0, 2**31 - 1))
    img = np.random.default_rng(seed).random((h,) + img.shape[1:], dtype=np.float32)
    spec = replace(spec, stride=(1, 1), dilation=(1, 1), channels=draw(st.sampled_from(["gray", "each"])))
    if draw(st.booleans()):
        pool = PoolSpec("max", 2, None, 0, draw(st.booleans()))  # the fused 2×2 max-pool
    return img, kernels, spec, act, pool


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(banded_cases(), st.integers(2, 5))
def test_multicore_bands_match_pytorch_and_the_single_thread_bits(case, cores):
    img, kernels, spec, act, pool = case
    assume(_valid(img, kernels, spec, pool))
    req = PipelineRequest(kernels, spec, act, pool)
    with _cores(1):
        one = run_pipeline(img, req)
    with _cores(cores):
        many = run_pipeline(img, req)
    conv_ref, act_ref, pool_ref = torch_reference(img, kernels, spec, act, pool)
    assert np.array_equal(many.conv, one.conv)              # row bands change no bit
    assert np.array_equal(many.activation, one.activation)
    assert np.abs(many.conv - conv_ref).max(initial=0) <= TOL * max(1.0, np.abs(conv_ref).max(initial=0))
    assert np.abs(many.activation - act_ref).max(initial=0) <= TOL * max(1.0, np.abs(act_ref).max(initial=0))
    if pool is not None:
        assert np.array_equal(many.pool, one.pool)
        assert many.pool.shape == pool_ref.shape
        assert np.abs(many.pool - pool_ref).max(initial=0) <= TOL * max(1.0, np.abs(pool_ref).max(initial=0))


def test_a_webcam_frame_over_four_threads_matches_pytorch():
    """A 1280×720 frame, both channel modes, the fused pool: the chunk seams are exact."""
    rng = np.random.default_rng(3)
    img = rng.random((720, 1280, 3), dtype=np.float32)
    kernels = (preset("sobel-x").kernel, preset("sobel-y").kernel)
    for channels in ("gray", "each"):
        spec = ConvSpec(channels=channels, bias=0.1)
        act, pool = ActivationSpec("relu"), PoolSpec("max", 2)
        with _cores(4, min_rows=96):
            res = run_pipeline(img, PipelineRequest(kernels, spec, act, pool))
        conv_ref, act_ref, pool_ref = torch_reference(img, kernels, spec, act, pool)
        assert np.abs(res.conv - conv_ref).max() <= TOL * 8
        assert np.abs(res.pool - pool_ref).max() <= TOL * 8
        assert res.pool.shape == pool_ref.shape


def test_band_threads_end_on_shutdown_and_come_back():
    import threading
    img = np.random.default_rng(0).random((200, 64), dtype=np.float32)
    req = PipelineRequest((preset("sobel-x").kernel,), ConvSpec(), ActivationSpec("relu"), PoolSpec("max", 2))
    with _cores(2):
        first = run_pipeline(img, req).pool.copy()
        assert any(t.name.startswith("cnnviz-band") for t in threading.enumerate())
        conv_mod.shutdown_band_pool()
        assert not any(t.name.startswith("cnnviz-band") and t.is_alive() for t in threading.enumerate())
        assert np.array_equal(run_pipeline(img, req).pool, first)   # the next frame restarts them
        conv_mod.shutdown_band_pool()


@settings(max_examples=60, deadline=None)
@given(cases())
def test_torch_device_path_matches_cpu_path(case):
    """The code path used on CUDA (torch) gives the CPU path's numbers (run here on torch's CPU)."""
    from cnnviz.core import conv_torch

    img, kernels, spec, act, pool = case
    assume(_valid(img, kernels, spec, pool))
    req = PipelineRequest(kernels, spec, act, pool)
    cpu = run_pipeline(img, req)
    tor = conv_torch.run_pipeline_torch(cpu.input, req, "cpu", 0.0)
    assert np.allclose(cpu.conv, tor.conv, atol=1e-5, rtol=1e-5)
    if pool is not None:
        assert np.allclose(cpu.pool, tor.pool, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ lesson examples
def test_lesson_horizontal_edge_matches_plain_loop():
    img = np.zeros((5, 5), np.float32)
    img[2:] = 1.0  # bottom three rows 1, top two 0
    k = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], np.float32)
    res = run_pipeline(img, PipelineRequest((Kernel(k),), ConvSpec(padding=1)))
    padded = np.pad(img, 1)
    expected = np.zeros((5, 5), np.float32)
    for i in range(5):
        for j in range(5):
            expected[i, j] = (padded[i:i + 3, j:j + 3] * k).sum()
    assert res.conv.shape == (1, 5, 5)
    np.testing.assert_array_equal(res.conv[0], expected)
    # the edge between rows 1 and 2 lights up: rows 1 and 2 are 4 inside, 3 at the borders
    np.testing.assert_array_equal(res.conv[0][1], [3, 4, 4, 4, 3])
    np.testing.assert_array_equal(res.conv[0][0], [0, 0, 0, 0, 0])


@pytest.mark.parametrize("x, expected", [
    ([[1, 3, 2, 4], [5, 6, 1, 2], [3, 2, 8, 1], [4, 1, 3, 7]], [[6, 4], [4, 8]]),
    ([[1, 3, 2, 4], [5, 6, 1, 8], [3, 2, 7, 1], [9, 4, 8, 3]], [[6, 8], [9, 8]]),
])
def test_lesson_max_pool(x, expected):
    out = pool2d(np.array(x, np.float32)[None], PoolSpec("max", 2, 2))
    np.testing.assert_array_equal(out[0], np.array(expected, np.float32))


# ------------------------------------------------------------------ shapes and formulas
def test_formula_text_has_the_numbers():
    s = conv_output_shape((720, 1280), (3, 3), ConvSpec(stride=2, padding=1))
    assert s.out_hw == (360, 640)
    assert s.formula_h == "⌊(720 + 2·1 − 1·(3−1) − 1) / 2⌋ + 1 = 360"
    assert s.formula_w == "⌊(1280 + 2·1 − 1·(3−1) − 1) / 2⌋ + 1 = 640"


def test_same_padding_with_even_kernel_pads_like_pytorch():
    spec = ConvSpec(padding="same")
    assert spec.pads((4, 2)) == (1, 2, 0, 1)  # extra row/column on the bottom/right
    s = conv_output_shape((10, 7), (4, 2), spec)
    assert s.out_hw == (10, 7)
    assert "(1+2)" in s.formula_h


def test_pool_ceil_mode_formula_and_drop_rule():
    # PyTorch drops a last window that would start in the padding
    s = pool_output_shape((5, 5), PoolSpec("max", 2, 2, 1, ceil_mode=True))
    ref = F.max_pool2d(torch.zeros(1, 1, 5, 5), 2, 2, 1, ceil_mode=True).shape[-2:]
    assert s.out_hw == tuple(ref)
    assert s.formula_h.startswith("⌈")


@pytest.mark.parametrize("kwargs, needle", [
    ({"padding": "same", "stride": 2}, "needs stride 1"),
    ({"padding": "full"}, "not understood"),
    ({"stride": 0}, "at least 1"),
    ({"dilation": 1.5}, "whole number"),
    ({"padding_mode": "mirror"}, "not known"),
    ({"channels": "rgb"}, "not known"),
    ({"bias": float("nan")}, "finite"),
])
def test_bad_specs_have_clear_messages(kwargs, needle):
    with pytest.raises(SpecError, match=needle):
        ConvSpec(**kwargs)


def test_kernel_larger_than_padded_input_is_a_clear_error():
    with pytest.raises(SpecError, match="spans 7 pixels"):
        run_pipeline(np.zeros((4, 4), np.float32), PipelineRequest((Kernel(np.ones((3, 3))),), ConvSpec(dilation=3)))


def test_reflect_padding_larger_than_input_is_refused_like_pytorch():
    with pytest.raises(SpecError, match="reflect padding"):
        run_pipeline(np.zeros((2, 2), np.float32),
                     PipelineRequest((Kernel(np.ones((3, 3))),), ConvSpec(padding=2, padding_mode="reflect")))


def test_pool_padding_over_half_is_refused_like_pytorch():
    with pytest.raises(SpecError, match="half the pool size"):
        PoolSpec("max", 2, 2, 2)


# ------------------------------------------------------------------ channel modes, banks, magnitude
def test_gray_uses_bt601_luminance():
    img = np.zeros((3, 3, 3), np.uint8)
    img[..., 0] = 255
    x = prepare_input(img, "gray")
    assert x.shape == (3, 3)
    assert np.allclose(x, 0.299, atol=1e-6)


def test_each_mode_shape_and_per_channel_values():
    rng = np.random.default_rng(1)
    img = rng.random((9, 11, 3), dtype=np.float32)
    k = preset("sobel-x").kernel
    res = run_pipeline(img, PipelineRequest((k, preset("sobel-y").kernel), ConvSpec(channels="each")))
    assert res.conv.shape == (2, 3, 7, 9)
    for c in range(3):
        single = run_pipeline(img[..., c], PipelineRequest((k,), ConvSpec()))
        np.testing.assert_allclose(res.conv[0, c], single.conv[0], atol=1e-6)


def test_full_mode_with_channel_kernel():
    rng = np.random.default_rng(2)
    img = rng.random((8, 8, 3), dtype=np.float32)
    w = rng.normal(size=(3, 3, 3)).astype(np.float32)
    res = run_pipeline(img, PipelineRequest((Kernel(w),), ConvSpec(channels="full")))
    ref = F.conv2d(torch.from_numpy(img).permute(2, 0, 1)[None], torch.from_numpy(w)[None])[0]
    np.testing.assert_allclose(res.conv, ref.numpy(), atol=1e-5)


def test_gradient_magnitude_of_sobel_pair():
    rng = np.random.default_rng(3)
    img = rng.random((20, 20), dtype=np.float32)
    res = run_pipeline(img, PipelineRequest(preset("sobel-pair").kernels, ConvSpec(padding=1), magnitude_pair=(0, 1)))
    gx, gy = res.conv
    np.testing.assert_allclose(res.magnitude, np.sqrt(gx.astype(np.float64) ** 2 + gy ** 2), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gradient_magnitude(gx, gy), res.magnitude)


def test_flip_is_true_convolution():
    img = np.random.default_rng(4).random((10, 10), dtype=np.float32)
    k = Kernel(np.arange(9, dtype=np.float32).reshape(3, 3))
    a = run_pipeline(img, PipelineRequest((k,), ConvSpec(flip=True))).conv
    b = run_pipeline(img, PipelineRequest((k.flipped(),), ConvSpec())).conv
    np.testing.assert_array_equal(a, b)
    import cv2
    # OpenCV's filter2D of the flipped kernel with anchor at the flipped centre = convolution
    ref = cv2.filter2D(img, -1, np.ascontiguousarray(k.weights[::-1, ::-1]), borderType=cv2.BORDER_CONSTANT)[1:-1, 1:-1]
    np.testing.assert_allclose(a[0], ref, atol=1e-5)


def test_sigmoid_does_not_overflow():
    x = np.array([[-1000, -20, 0, 20, 1000]], np.float32)
    out = activate(x, ActivationSpec("sigmoid"))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, torch.sigmoid(torch.from_numpy(x)).numpy(), atol=1e-7)


def test_mixed_kernel_sizes_in_one_bank_are_refused():
    with pytest.raises(SpecError, match="share a size"):
        convolve(np.zeros((9, 9), np.float32), [Kernel(np.ones((3, 3))), Kernel(np.ones((5, 5)))], ConvSpec())


def test_eleven_by_eleven_kernel_is_exact():
    rng = np.random.default_rng(5)
    img = rng.random((40, 40), dtype=np.float32)
    w = rng.normal(size=(11, 11)).astype(np.float32)
    res = run_pipeline(img, PipelineRequest((Kernel(w),), ConvSpec(padding=5)))
    ref = F.conv2d(torch.from_numpy(img)[None, None], torch.from_numpy(w)[None, None], padding=5)[0, 0]
    np.testing.assert_allclose(res.conv[0], ref.numpy(), atol=1e-5)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_absurd_padding_is_a_spec_error_not_an_allocation(device):
    """padding 10⁹ (a typo, or a hand-edited settings file) would ask OpenCV or torch for exabytes."""
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    req = PipelineRequest((preset("sobel-x").kernel,), ConvSpec(padding=10**9))
    with pytest.raises(SpecError, match="padding 1000000000 makes the padded input"):
        run_pipeline(np.zeros((10, 10), np.float32), req, device=device)
    ok = PipelineRequest((preset("sobel-x").kernel,), ConvSpec(padding=1000))   # large but sane: fine
    assert run_pipeline(np.zeros((10, 10), np.float32), ok).conv.shape == (1, 2008, 2008)


def test_colorize_gray_fast_path_equals_the_table():
    from cnnviz.core.display import colorize, lut, to_uint8
    a = np.random.default_rng(7).random((33, 47), dtype=np.float32)
    ref = lut("gray")[to_uint8(a, (0.0, 1.0))]
    np.testing.assert_array_equal(colorize(a, "gray", (0.0, 1.0)), ref)


def test_cnnviz_threads_sets_the_threads_per_frame(monkeypatch):
    monkeypatch.setenv("CNNVIZ_THREADS", "1")
    assert conv_mod._cores_from_env() == 1
    monkeypatch.setenv("CNNVIZ_THREADS", "3")
    assert conv_mod._cores_from_env() == 3
    for bad in ("0", "-2", "many", ""):
        monkeypatch.setenv("CNNVIZ_THREADS", bad)       # ignored: the machine's cores
        assert 1 <= conv_mod._cores_from_env() <= 8
