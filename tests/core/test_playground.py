"""The playground's Qt-free state and computation."""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz.core.conv import ActivationSpec, ConvSpec, PoolSpec, run_pipeline
from cnnviz.core.display import MOSAIC, DisplaySettings, export_rgb
from cnnviz.core.errors import SpecError
from cnnviz.core.kernels import preset
from cnnviz.core.playground import (PlaygroundJob, PlaygroundState, compute_playground, last_stage_picture,
                                    stage_stats)


class Params:
    def __init__(self, conv=None, act=None, pool=None):
        self.specs = (conv or ConvSpec(), act or ActivationSpec(), pool)

    def to_specs(self):
        return self.specs


class BadParams:
    def to_specs(self):
        return (ConvSpec(stride=2, padding="same"), ActivationSpec(), None)


def test_state_freezes_into_the_request_it_describes():
    sx, sy = preset("sobel-pair").kernels
    st = PlaygroundState(params=Params(ConvSpec(stride=2), ActivationSpec("relu"), PoolSpec("max")))
    st.set_bank((sx, sy), 1, (0, 1))
    req = st.to_request()
    assert req.kernels == (sx, sy) and req.magnitude_pair == (0, 1)
    assert req.conv.stride == (2, 2) and req.activation.kind == "relu" and req.pool.kind == "max"
    assert st.selected_kernel == sy


def test_set_bank_reports_what_changed():
    sx, sy = preset("sobel-pair").kernels
    st = PlaygroundState()
    first = st.set_bank((sx,), 0)
    assert first.selection_moved and first.names_changed and first.selected_changed
    edited = sx.with_value(0, 0, 5.0)
    edit = st.set_bank((edited,), 0)          # a cell edit: same selection, same names
    assert not edit.selection_moved and not edit.names_changed and edit.selected_changed
    grow = st.set_bank((edited, sy), 1)
    assert grow.selection_moved and grow.names_changed
    pair = st.set_bank((edited, sy), 1, (0, 1))
    assert pair.names_changed and not pair.selection_moved and not pair.selected_changed


def test_invalid_parameters_raise_a_spec_error():
    st = PlaygroundState(params=BadParams())
    st.set_bank((preset("sobel-x").kernel,))
    with pytest.raises(SpecError):
        st.to_request()


def test_stage_stats_are_robust_levels_over_all_kernels():
    rng = np.random.default_rng(0)
    img = rng.random((64, 64), dtype=np.float32)
    st = PlaygroundState(params=Params())
    st.set_bank(preset("sobel-pair").kernels)
    res = run_pipeline(img, st.to_request())
    stats = stage_stats(res)
    lo, hi, alo, ahi = stats["conv"]
    assert lo == pytest.approx(float(res.conv.min())) and hi == pytest.approx(float(res.conv.max()))
    assert alo == -ahi and 0 < ahi <= max(-lo, hi)          # signed: symmetric, robust (≤ the max)
    assert stats["activation"] == stats["conv"]              # no activation: the same map


def test_the_cli_picture_is_the_window_mosaic():
    rng = np.random.default_rng(1)
    img = rng.random((40, 50), dtype=np.float32)
    st = PlaygroundState(params=Params(pool=PoolSpec("max")))
    st.set_bank(preset("sobel-pair").kernels)
    req = st.to_request()
    out = compute_playground(PlaygroundJob(img, 0, req, display=DisplaySettings(selection=MOSAIC)))
    np.testing.assert_array_equal(last_stage_picture(img, req), export_rgb(out.display.stages["pool"].pixels))


def test_the_state_applies_the_bank_rules_without_qt():
    """The bank's rules live in the state (the widgets only show it): one size per bank,
    reversible crops, add/remove/rename/select and the magnitude pair."""
    bank = preset("oriented-bank").kernels
    st = PlaygroundState()
    st.set_bank(bank)
    assert st.magnitude_pair is None and st.would_crop(1, 1) and st.would_crop(7, 7) == []
    change = st.replace_selected(bank[0].resized(1, 1))           # the size buttons crop every kernel
    assert change.selected_changed and [k.size for k in st.kernels] == [(1, 1)] * len(bank)
    st.replace_selected(bank[0])                                   # Undo: every kernel back, exactly
    assert st.kernels == tuple(bank)
    assert st.replace_selected(bank[0]) is None                    # nothing changed, nothing reported
    sx, sy = preset("sobel-pair").kernels
    st.set_bank((preset("laplacian-4").kernel, sy, sx))
    assert st.pair_choice == (2, 1) and st.magnitude_pair is None  # the named pair, off
    on = st.set_magnitude(True)
    assert on.magnitude_turned_on and st.to_request().magnitude_pair == (2, 1)
    assert st.select(1).selection_moved and st.selected == 1 and st.select(1) is None
    added = st.add_copy()
    assert added.selection_moved and st.selected == 2 and st.kernels[2].name == "sobel-y copy"
    assert st.pair_choice == (3, 1)                                # the pair follows its kernels
    st.rename_selected("mine")
    assert st.selected_kernel.name == "mine" and st.rename_selected("mine") is None
    st.select(1)
    st.remove_selected()                                           # a kernel of the pair: the default pair again
    assert [k.name for k in st.kernels] == ["laplacian-4", "mine", "sobel-x"] and st.selected == 1
    while len(st.kernels) > 1:
        st.remove_selected()
    assert st.remove_selected() is None and len(st.kernels) == 1   # never the last one
