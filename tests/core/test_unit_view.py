"""Guided backpropagation against an independent implementation (ReLU modules swapped for a
guided ReLU), and the rendering."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from cnnviz.core.unit_view import UnitViewError, gradient_to_rgb, guided_backprop


class _GuidedReLUFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x > 0) * (g > 0)


class _GuidedReLU(nn.Module):
    def forward(self, x):
        return _GuidedReLUFn.apply(x)


def _reference(module, x, layer, channel, unit):
    ref = copy.deepcopy(module)
    for name, m in list(ref.named_modules()):
        if isinstance(m, nn.ReLU):
            parent = ref.get_submodule(name.rsplit(".", 1)[0]) if "." in name else ref
            setattr(parent, name.rsplit(".", 1)[-1], _GuidedReLU())
    store = {}
    h = ref.get_submodule(layer).register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    xg = x.clone().requires_grad_(True)
    ref(xg)
    h.remove()
    a = store["a"][0, channel]
    val = a[unit] if unit is not None else a
    (g,) = torch.autograd.grad(val, xg)
    return g[0].permute(1, 2, 0).numpy()


def test_guided_backprop_matches_reference_on_the_demo():
    from cnnviz.core.demo import load_demo_model, load_digits_split

    m = load_demo_model()
    x = torch.from_numpy(load_digits_split()[2][:1])[:, None]
    g, unit = guided_backprop(m, x, "relu4", 3)
    assert g.shape == (28, 28, 1) and unit is not None
    # the default unit is the channel's strongest one
    with torch.no_grad():
        acts = {}
        hh = m.module.relu4.register_forward_hook(lambda mod, i, o: acts.__setitem__("a", o))
        m.module(x)
        hh.remove()
    a = acts["a"][0, 3]
    assert a[unit] == a.max()
    ref = _reference(m.module, x, "relu4", 3, unit)
    np.testing.assert_allclose(g, ref, rtol=1e-5, atol=1e-7)
    assert np.abs(g).max() > 0
    # guided: differs from the plain gradient (negative gradient stopped at every ReLU)
    xg = x.clone().requires_grad_(True)
    store = {}
    hh = m.module.relu4.register_forward_hook(lambda mod, i, o: store.__setitem__("a", o))
    m.module(xg)
    hh.remove()
    (plain,) = torch.autograd.grad(store["a"][0, 3][unit], xg)
    assert not np.allclose(plain[0].permute(1, 2, 0).numpy(), g)


def test_in_place_relus_and_errors():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), nn.Conv2d(4, 2, 3), nn.ReLU(inplace=True)).eval()
    x = torch.randn(1, 3, 9, 9)
    g, unit = guided_backprop(net, x, "2", 1, (2, 3))
    np.testing.assert_allclose(g, _reference(net, x, "2", 1, (2, 3)), rtol=1e-5, atol=1e-7)
    with pytest.raises(UnitViewError, match="no channel 2"):
        guided_backprop(net, x, "2", 2)
    with pytest.raises(UnitViewError, match="outside"):
        guided_backprop(net, x, "2", 0, (5, 0))
    rgb = gradient_to_rgb(g)
    assert rgb.min() >= 0 and rgb.max() <= 1 and np.isclose(np.abs(rgb - 0.5).max(), 0.5)
    assert (gradient_to_rgb(np.zeros((2, 2, 1))) == 0.5).all()
