"""Kernels: validation messages, presets, operations, files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnviz.core.errors import KernelError
from cnnviz.core.kernels import (Kernel, load_kernel_file, parse_kernels, preset, presets, save_kernel_file)


@pytest.mark.parametrize("value, needle", [
    ([], "empty"),
    ([[1, 2, 3], [1, 2]], "row 2 has 2 values, row 1 has 3"),
    ([[1, float("nan")]], "not finite"),
    ([[1, float("inf")]], "not finite"),
    ([1, 2, 3], "flat list"),
    (np.ones((12, 3)), "largest supported is 11"),
    ("abc", "numbers, not text"),
    ([["a", "b"]], "not numbers"),
])
def test_bad_kernels_are_named(value, needle):
    with pytest.raises(KernelError, match=needle):
        Kernel(value)


def test_rectangular_and_even_kernels_are_fine():
    for shape in [(1, 1), (2, 4), (11, 11), (1, 7), (6, 6)]:
        assert Kernel(np.ones(shape)).size == shape


def test_kernel_is_immutable():
    k = Kernel([[1, 2], [3, 4]])
    with pytest.raises(ValueError):
        k.weights[0, 0] = 5
    k2 = k.with_value(0, 0, 9)
    assert k.weights[0, 0] == 1 and k2.weights[0, 0] == 9


def test_operations():
    k = Kernel([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    np.testing.assert_array_equal(k.flipped_h().weights, [[3, 2, 1], [6, 5, 4], [9, 8, 7]])
    np.testing.assert_array_equal(k.flipped_v().weights, [[7, 8, 9], [4, 5, 6], [1, 2, 3]])
    np.testing.assert_array_equal(k.rotated90().weights, np.rot90(k.weights))
    np.testing.assert_array_equal(k.transposed().weights, k.weights.T)
    np.testing.assert_array_equal(k.negated().weights, -k.weights)
    assert k.normalized().sum == pytest.approx(1.0)
    z = Kernel([[-1, 0, 1]])
    assert z.normalized() is z  # sum 0: unchanged
    d = k.with_divisor(9).with_offset(0.5)
    np.testing.assert_allclose(d.effective(), k.weights / 9)
    assert d.offset == 0.5
    with pytest.raises(KernelError, match="divisor"):
        k.with_divisor(0)
    r = Kernel(np.ones((3, 3))).resized(5, 5)
    assert r.size == (5, 5) and r.weights[0].sum() == 0 and r.weights[1:4, 1:4].sum() == 9


def test_all_presets_from_the_issue_exist():
    names = set(presets())
    for n in ["identity", "box-3", "box-5", "gaussian-3", "gaussian-5", "sharpen", "unsharp-5", "sobel-x",
              "sobel-y", "prewitt-x", "prewitt-y", "scharr-x", "scharr-y", "laplacian-4", "laplacian-8",
              "log-5", "emboss", "outline", "motion-blur", "oriented-bank"]:
        assert n in names, n
    bank = preset("oriented-bank")
    assert len(bank.kernels) == 12  # 1st and 2nd derivative × 6 orientations
    for k in bank.kernels:
        assert abs(k.sum) < 1e-4  # derivative filters: no response on flat regions
    assert preset("gaussian-3").kernel.effective().sum() == pytest.approx(1.0)
    assert preset("box-5").kernel.effective().sum() == pytest.approx(1.0)
    assert preset("unsharp-5").kernel.effective().sum() == pytest.approx(1.0)


def test_oriented_bank_rotates_with_orientation():
    bank = preset("oriented-bank").kernels
    d0, d90 = bank[0].weights, bank[3].weights  # 0° and 90° first derivative
    np.testing.assert_allclose(np.rot90(d0, -1), d90, atol=1e-5)


def test_unknown_preset_suggests():
    with pytest.raises(KernelError, match="unknown preset 'sobel-z'.*sobel"):
        preset("sobel-z")


def test_parse_literal_preset_and_file(tmp_path):
    assert parse_kernels("[[-1,0,1],[-2,0,2],[-1,0,1]]")[0] == Kernel([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    assert parse_kernels("sobel_x")[0].name == "sobel-x"
    assert len(parse_kernels("sobel-pair")) == 2
    p = tmp_path / "k.json"
    save_kernel_file(p, [Kernel([[1, 2], [3, 4]], name="mine", divisor=2, offset=0.5), preset("log-5").kernel])
    back = load_kernel_file(p)
    assert back[0] == Kernel([[1, 2], [3, 4]], name="mine", divisor=2, offset=0.5)
    assert back[1] == preset("log-5").kernel
    assert parse_kernels(str(p)) == back


@pytest.mark.parametrize("text, needle", [
    ("", "not valid JSON"),
    ("{\"schema\": \"cnnviz.kernels\", \"version\": 1, \"kernels\": []}", "no kernels"),
    ("{\"schema\": \"cnnviz.kernels\", \"version\": 99, \"kernels\": [[[1]]]}", "newer"),
    ("{\"kernels\": [{\"weights\": [[1, NaN]]}]}", "not finite"),
    ("[[1, 2], [3]]", "ragged"),
    ("{\"schema\": \"cnnviz.kernels\", \"version\": \"one\", \"kernels\": [[[1]]]}", "not a whole number"),
    ("{\"kernels\": [[[1]]], \"version\": null}", "not a whole number"),
    ("{\"kernels\": [[[1]]], \"version\": 1e999}", "not a whole number"),
    ("{\"weights\": [[1]], \"divisor\": 1e-40}", "too large for float32"),
    ("{\"weights\": [[3e38]], \"divisor\": 0.5}", "too large for float32"),
    ("{\"weights\": [[1]], \"divisor\": 0}", "non-zero divisor"),
    ("{\"weights\": [[3e37, 3e37], [3e37, 3e37]]}", "its weights are too large"),
    ("{\"weights\": [[1]], \"offset\": Infinity}", "finite offset"),
    ("[[[[1]]]]", "4 dimensions"),
    ("{\"weights\": [[1, 2, 3]] }", None),
])
def test_bad_kernel_files(tmp_path, text, needle):
    p = tmp_path / "bad.json"
    p.write_text(text)
    if needle is None:  # the control row: a good file loads, so the rows above test something
        assert load_kernel_file(p)[0].size == (1, 3)
        return
    with pytest.raises(KernelError, match=needle):
        load_kernel_file(p)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(KernelError, match="does not exist"):
        load_kernel_file(tmp_path / "nope.json")
    b = tmp_path / "b.json"
    b.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(KernelError, match="not text"):
        load_kernel_file(b)
    with pytest.raises(KernelError, match="folder"):
        load_kernel_file(tmp_path)


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    p = tmp_path / "k.json"
    save_kernel_file(p, Kernel([[1]], name="old"))
    before = p.read_text()
    import cnnviz.core.kernels as K

    def boom(*a, **kw):
        raise OSError("disk full")
    monkeypatch.setattr(K.os, "replace", boom)
    with pytest.raises(OSError):
        save_kernel_file(p, Kernel([[2]], name="new"))
    assert p.read_text() == before
    assert [f.name for f in tmp_path.iterdir()] == ["k.json"]  # no temp file left


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_parser_fuzz_never_crashes(text):
    try:
        ks = parse_kernels(text)
    except KernelError:
        return
    for k in ks:
        assert np.all(np.isfinite(k.weights)) and 1 <= k.size[0] <= 11


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.one_of(st.floats(allow_nan=True), st.integers(-10**40, 10**40), st.text(max_size=3), st.none()),
                    lambda c: st.lists(c, max_size=4), max_leaves=30))
def test_literal_fuzz_never_crashes(obj):
    try:
        ks = parse_kernels(json.dumps(obj))
    except KernelError:
        return
    except ValueError as e:  # json.dumps of NaN is fine; anything else must be a KernelError
        raise AssertionError(e)
    for k in ks:
        assert np.all(np.isfinite(k.weights))


_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(), st.text(max_size=4))
_json = st.recursive(_json_leaf, lambda c: st.one_of(st.lists(c, max_size=4),
                                                     st.dictionaries(st.text(max_size=3), c, max_size=3)),
                     max_leaves=25)
_kernel_obj = st.fixed_dictionaries({}, optional={"weights": _json, "name": _json, "divisor": _json,
                                                  "offset": _json, "description": _json})
_kernel_doc = st.one_of(
    _kernel_obj,
    st.fixed_dictionaries({"kernels": st.one_of(st.lists(st.one_of(_kernel_obj, _json), max_size=3), _json)},
                          optional={"schema": st.one_of(st.just("cnnviz.kernels"), _json),
                                    "version": _json}),
)


@settings(max_examples=150, deadline=None)
@given(_kernel_doc)
def test_kernel_file_fuzz_gives_kernels_or_a_kernel_error(doc):
    """Any JSON document shaped like a kernel file: usable kernels or a KernelError, nothing else."""
    try:
        ks = parse_kernels(json.dumps(doc))
    except KernelError:
        return
    for k in ks:
        eff = k.effective()
        assert np.all(np.isfinite(eff)) and np.all(np.isfinite(k.weights)) and 1 <= k.size[0] <= 11


def test_atomic_writes_get_normal_permissions_and_keep_a_files_own(tmp_path):
    """The temporary file is 0600; what lands must be what a plain open() would give a new
    file (0644 under umask 022), and an existing file keeps its permissions."""
    import os
    import stat

    from cnnviz.core.kernels import _umask, atomic_write_text

    new = tmp_path / "new.json"
    atomic_write_text(new, "{}")
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~_umask()
    old = os.umask(0o022)
    os.umask(old)
    assert _umask() == old
    kept = tmp_path / "kept.json"
    kept.write_text("x")
    kept.chmod(0o640)
    atomic_write_text(kept, "{}")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640 and kept.read_text() == "{}"
