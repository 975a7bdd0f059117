"""Feature visualization: the optimized image excites its target more than natural images do."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnviz.core import featureviz as fv
from cnnviz.core.capture import capture
from cnnviz.core.taskstate import Cancelled, TaskState

from vizrefs import reference_batch, trained_small_cnn

# What the must-show tests run: a short optimization, the recipe switched on in full.
QUICK = fv.FeatureVizSettings(steps=48, lr=0.2)


@pytest.fixture(scope="module")
def demo():
    from cnnviz.core.demo import load_demo_model

    return load_demo_model()


@pytest.fixture(scope="module")
def demo_refs(demo):
    return capture(demo, reference_batch((28, 28), 1))


def _run(model, objective, settings=QUICK, **kw):
    kw.setdefault("cache", False)
    return fv.run(model, fv.FeatureVizRequest(objective, settings), **kw)


def test_demo_channels_beat_every_natural_image(demo, demo_refs):
    """Every channel of the demo's last conv block that any natural image turns on is excited
    at least 5 % more by its feature visualization (mean over the map) than by the best of
    the ~700 natural crops (and their negatives)."""
    r = _run(demo, fv.Objective.all_channels("relu4"))
    best_natural = demo_refs.layer("relu4").tensor.flatten(2).mean(2).max(0).values.numpy()
    alive = best_natural > 0
    assert alive.sum() >= 8
    assert r.images.shape == (16, 28, 28, 1) and r.images.min() >= 0 and r.images.max() <= 1
    np.testing.assert_array_equal(r.channels, np.arange(16))
    assert np.all(r.values[alive] >= 1.05 * best_natural[alive]), (r.values, best_natural)
    # the reported value is what the model says about the image as shown
    x = torch.from_numpy(r.images).permute(0, 3, 1, 2)
    again = capture(demo, x).layer("relu4").tensor.flatten(2).mean(2)
    np.testing.assert_allclose(again[np.arange(16), np.arange(16)].numpy(), r.values, rtol=1e-4, atol=1e-5)


def test_demo_class_beats_every_natural_image(demo, demo_refs):
    best_natural = demo_refs.output.max(0).values.numpy()
    for cls in (3, 8):
        r = _run(demo, fv.Objective.output_class(cls))
        assert r.values[0] >= 1.5 * best_natural[cls], (cls, r.values, best_natural[cls])
        assert demo_refs.output.shape[1] == 10


def test_small_trained_cnn_units_and_classes():
    model, acc = trained_small_cnn()
    assert acc > 0.8
    refs = capture(model, reference_batch((16, 16), 1))
    # every class: its score on its feature visualization is 20 % above the best natural image's
    r = _run(model, fv.Objective.all_channels("fc"))
    best = refs.output.max(0).values.numpy()
    assert np.all(r.values >= 1.2 * best), (r.values, best)
    # the centre unit of a mid-level channel: 10 % above every natural crop
    for ch in (3, 5):
        nat = float(refs.layer("relu2").tensor[:, ch, 4, 4].max())
        u = _run(model, fv.Objective.unit_of("relu2", ch, 4, 4))
        assert nat > 0 and u.values[0] >= 1.10 * nat, (ch, u.values, nat)


def test_rgb_model_all_channels_in_chunks_with_diversity():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 5, 3, padding=1)).eval()
    st = fv.FeatureVizSettings(steps=4, size=(20, 24), batch=2, diversity=1.0, chunk=4)
    seen = []
    state = TaskState(on_partial=seen.append)
    r = fv.run(net, fv.FeatureVizRequest(fv.Objective.all_channels("2"), st), state, cache=False)
    assert r.images.shape == (10, 20, 24, 3)
    np.testing.assert_array_equal(r.channels, np.repeat(np.arange(5), 2))
    assert np.isfinite(r.values).all() and state.progress == 1.0
    assert seen and seen[-1].images.shape[-1] == 3 and "activation" in state.status


def test_cache_hit_slices_and_cancel_writes_nothing(demo, tmp_path):
    st = fv.FeatureVizSettings(steps=3)
    a = fv.run(demo, fv.FeatureVizRequest(fv.Objective.all_channels("conv1"), st), cache_folder=tmp_path)
    assert not a.cached and len(list(tmp_path.glob("*.npz"))) == 1
    # one channel of a layer already done with the same settings comes from that entry
    b = fv.run(demo, fv.FeatureVizRequest(fv.Objective.channel_of("conv1", 2), st), cache_folder=tmp_path)
    assert b.cached
    np.testing.assert_array_equal(b.images, a.for_channel(2))
    np.testing.assert_array_equal(b.values, a.values[a.channels == 2])
    # other settings: computed again
    c = fv.run(demo, fv.FeatureVizRequest(fv.Objective.channel_of("conv1", 2), fv.FeatureVizSettings(steps=3, seed=1)),
               cache_folder=tmp_path)
    assert not c.cached and len(list(tmp_path.glob("*.npz"))) == 2

    state = TaskState()
    state_calls = []

    def on_progress(p, status):
        state_calls.append(p)
        if len(state_calls) == 2:
            state.cancel()

    state.on_progress = on_progress
    with pytest.raises(Cancelled):
        fv.run(demo, fv.FeatureVizRequest(fv.Objective.channel_of("conv3", 1), fv.FeatureVizSettings(steps=50)),
               state, cache_folder=tmp_path)
    assert len(list(tmp_path.glob("*"))) == 2  # no partial entry, no temporary file


def test_bad_targets_say_what_to_do(demo):
    with pytest.raises(fv.FeatureVizError, match="8 channels; there is no channel 16; choose one from 0 to 7"):
        _run(demo, fv.Objective.channel_of("conv1", 16), fv.FeatureVizSettings(steps=1))
    with pytest.raises(fv.FeatureVizError, match="no class 10"):
        _run(demo, fv.Objective.output_class(10), fv.FeatureVizSettings(steps=1))
    with pytest.raises(fv.FeatureVizError, match="outside"):
        _run(demo, fv.Objective.unit_of("conv1", 0, 28, 0), fv.FeatureVizSettings(steps=1))
    with pytest.raises(fv.FeatureVizError, match="no spatial map"):
        _run(demo, fv.Objective.unit_of("fc1", 0, 0, 0), fv.FeatureVizSettings(steps=1))
    with pytest.raises(fv.FeatureVizError, match="optimizer"):
        fv.FeatureVizSettings(optimizer="lbfgs")


def test_nan_during_optimization_is_one_clear_error():
    net = nn.Sequential(nn.Conv2d(1, 2, 3)).eval()
    with torch.no_grad():
        net[0].weight[1].fill_(float("nan"))
    with pytest.raises(fv.FeatureVizError, match="NaN or infinity at step 1"):
        _run(net, fv.Objective.channel_of("0", 1), fv.FeatureVizSettings(steps=2, size=(8, 8)))


class _Tokens(nn.Module):
    """A layer with a token layout: (N, H*W, C)."""

    def forward(self, x):
        return x.flatten(2).transpose(1, 2)


def test_layout_adapter_plugs_in():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), _Tokens()).eval()
    st = fv.FeatureVizSettings(steps=2, size=(6, 6))
    with pytest.raises(fv.FeatureVizError, match="layout adapter"):
        _run(net, fv.Objective.channel_of("1", 1), st)

    def to_maps(t):  # tokens -> (N, C, H, W)
        n, hw, c = t.shape
        return t.transpose(1, 2).reshape(n, c, 6, 6)

    r = _run(net, fv.Objective.unit_of("1", 1, 2, 3), st, to_maps=to_maps)
    x = torch.from_numpy(r.images).permute(0, 3, 1, 2)
    with torch.no_grad():
        ref = net[0](x)[0, 1, 2, 3]
    assert r.values[0] == pytest.approx(float(ref), rel=1e-5, abs=1e-6)


def test_per_item_layout_adapter():
    """A per-item adapter (the signature of layouts.to_maps with the layout bound) plugs in too."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), _Tokens()).eval()
    st = fv.FeatureVizSettings(steps=2, size=(6, 6), batch=2)
    adapter = fv.per_item_adapter(lambda t, i: t[i].transpose(0, 1).reshape(-1, 6, 6))
    r = _run(net, fv.Objective.channel_of("1", 2), st, to_maps=adapter)
    x = torch.from_numpy(r.images).permute(0, 3, 1, 2)
    with torch.no_grad():
        ref = net[0](x)[:, 2].mean((1, 2))
    np.testing.assert_allclose(r.values, ref.numpy(), rtol=1e-5, atol=1e-6)


def test_changed_weights_are_a_cache_miss(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()).eval()
    req = fv.FeatureVizRequest(fv.Objective.channel_of("0", 1), fv.FeatureVizSettings(steps=2, size=(8, 8)))
    assert not fv.run(net, req, cache_folder=tmp_path).cached
    assert fv.run(net, req, cache_folder=tmp_path).cached
    with torch.no_grad():
        net[0].weight.mul_(2)  # an optimizer step changes weights in place like this
    assert not fv.run(net, req, cache_folder=tmp_path).cached
    net16 = nn.Sequential(nn.Conv2d(1, 2, 3)).to(torch.bfloat16)
    from cnnviz.core.vizcache import model_fingerprint

    assert len(model_fingerprint(net16)) == 64
