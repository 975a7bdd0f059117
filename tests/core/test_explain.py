"""Explanations: Grad-CAM, theoretical and effective receptive fields.

Grad-CAM is checked against a textbook implementation with eager hooks; receptive-field
sizes against numbers worked out by hand; the effective receptive field (an input gradient)
against the theoretical box it must stay inside — and, for a network of positive weights and
no non-linearity, fill exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from modelzoo import TinyLeNet, TinyResNet, TupleNet, example_input, prepare
from torch import nn

from cnnviz.core.capture import CaptureError
from cnnviz.core.explain import (
    ReceptiveField,
    effective_rf,
    grad_cam,
    last_conv_layer,
    receptive_field,
    theoretical_rf_box,
)

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")


def textbook_grad_cam(model: nn.Module, x: torch.Tensor, layer: str, cls: int) -> np.ndarray:
    """Grad-CAM with plain hooks. ``relu#2`` is the module's 2nd call: only that call is
    tapped (a module called twice would otherwise overwrite the gradient in backward)."""
    store = {"calls": 0}
    base, _, nth = layer.partition("#")
    want = int(nth) if nth else 1
    mod = model.get_submodule(base)

    def hook(_m, _i, out):
        store["calls"] += 1
        if store["calls"] != want:
            return None
        store["a"] = out
        out.register_hook(lambda g: store.__setitem__("g", g))
        return None

    h = mod.register_forward_hook(hook)
    try:
        model.eval()
        model(x)[0, cls].backward()
    finally:
        h.remove()
    a, g = store["a"][0].detach(), store["g"][0]
    cam = F.relu((g.mean((1, 2))[:, None, None] * a).sum(0))
    cam = F.interpolate(cam[None, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    return (cam / cam.max()).numpy()


def formats(model, x):
    return {"eager": model, "script": torch.jit.script(model), "export": torch.export.export(model, (x,))}


@pytest.mark.parametrize("cls", [TinyLeNet, TinyResNet], ids=lambda c: c.__name__)
def test_grad_cam_matches_textbook_and_every_format(cls):
    model = prepare(cls())
    x = example_input(model)
    layer = last_conv_layer(model, x)
    assert layer == {"TinyLeNet": "pool2", "TinyResNet": "layer1.1.relu#2"}[cls.__name__]
    want = textbook_grad_cam(prepare(cls()), x, layer, 2)
    for name, m in formats(model, x).items():
        cam, used = grad_cam(m, x, target_class=2)
        assert used == layer
        assert cam.shape == tuple(x.shape[-2:]) and cam.dtype == np.float32
        assert cam.min() >= 0 and cam.max() <= 1
        assert np.allclose(cam, want, atol=1e-5), name


def test_grad_cam_changes_with_class_and_defaults_to_prediction():
    model = prepare(TinyResNet())
    x = example_input(model)
    maps = [grad_cam(model, x, target_class=c)[0] for c in range(5)]
    assert max(np.abs(maps[0] - m).max() for m in maps[1:]) > 0.05
    pred = int(model(x).argmax())
    assert np.array_equal(grad_cam(model, x)[0], maps[pred])


def test_grad_cam_other_layer_hooks_removed_flags_restored():
    model = prepare(TinyResNet())
    model.train()
    x = example_input(model)
    cam, layer = grad_cam(model, x, target_class=1, layer="layer1.0.relu#2")
    assert layer == "layer1.0.relu#2" and cam.shape == (32, 32)
    assert model.training and all(m.training for m in model.modules())
    assert all(not m._forward_hooks for m in model.modules())
    with torch.inference_mode():  # works when the caller is in inference mode too
        cam2, _ = grad_cam(model, x, target_class=1, layer="layer1.0.relu#2")
    assert np.allclose(cam, cam2)


def test_grad_cam_bad_requests_are_messages():
    model = prepare(TinyLeNet())
    x = example_input(model)
    with pytest.raises(CaptureError, match="class 12 does not exist"):
        grad_cam(model, x, target_class=12)
    with pytest.raises(CaptureError, match="no layer named 'conv9'"):
        grad_cam(model, x, layer="conv9")
    with pytest.raises(CaptureError, match="not a \\(C, H, W\\) map"):
        grad_cam(model, x, layer="fc1")


class Stack(nn.Module):
    """conv3 s1 -> conv3 s1 -> maxpool2 s2 -> conv3: receptive fields 3, 5, 6, 10."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 2, 3)
        self.c2 = nn.Conv2d(2, 2, 3)
        self.pool = nn.MaxPool2d(2)
        self.c3 = nn.Conv2d(2, 2, 3)

    def forward(self, x):
        return self.c3(self.pool(self.c2(self.c1(x))))


def test_receptive_field_of_a_known_stack():
    rf = receptive_field(Stack(), (1, 1, 32, 32))
    assert {k: v.size for k, v in rf.items()} == {"c1": (3, 3), "c2": (5, 5), "pool": (6, 6), "c3": (10, 10)}
    assert {k: v.jump for k, v in rf.items()} == {"c1": (1, 1), "c2": (1, 1), "pool": (2, 2), "c3": (2, 2)}
    # unit (0, 0) of c3 sees input pixels 0..9; unit (1, 2) is 2 and 4 pixels further
    assert theoretical_rf_box(rf["c3"], (0, 0), (32, 32)) == (0, 0, 10, 10)
    assert theoretical_rf_box(rf["c3"], (1, 2), (32, 32)) == (2, 4, 12, 14)


def test_receptive_field_padding_dilation_functional_pool_and_undefined_layers():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(1, 1, 3, padding=1)
            self.b = nn.Conv2d(1, 1, 3, dilation=2, padding=2)
            self.c = nn.Conv2d(1, 1, (1, 5), stride=(1, 2))
            self.gap = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(1, 2)

        def forward(self, x):
            x = F.max_pool2d(self.b(self.a(x)), 3, stride=1, padding=1)  # functional: still counted
            x = self.c(x)
            return self.fc(self.gap(x).flatten(1))

    rf = receptive_field(Net(), (1, 1, 16, 16))
    assert rf["a"] == ReceptiveField((3, 3), (1, 1), (0.0, 0.0))  # padding 1: unit 0 centred on pixel 0
    assert rf["b"].size == (7, 7)  # 3 + (5 - 1)
    assert rf["c"].size == (9, 13) and rf["c"].jump == (1, 2)  # + the 3x3 pool, then a 1x5 kernel
    assert rf["gap"] is None and rf["fc"] is None
    assert theoretical_rf_box(rf["a"], (0, 0), (16, 16)) == (0, 0, 2, 2)  # clipped at the border


def test_receptive_field_follows_branches_and_residual_adds():
    model = prepare(TinyResNet())
    rf = receptive_field(model, (1, 3, 32, 32))
    sizes = {k: (v.size[0] if v else None) for k, v in rf.items()}
    assert sizes["conv1"] == 3 and sizes["layer1.0.conv1"] == 5 and sizes["layer1.0.bn2"] == 7
    assert sizes["layer1.0.relu#2"] == 7  # union of the block (7) and the identity (3)
    assert sizes["layer1.1.relu#2"] == 11 and sizes["avgpool"] is None and sizes["fc"] is None
    exported = receptive_field(torch.export.export(model, (example_input(model),)), (1, 3, 32, 32))
    assert exported == rf


def test_receptive_field_of_torchscript_is_reported_as_unknown():
    model = prepare(TinyLeNet())
    rf = receptive_field(torch.jit.script(model), (1, 1, 28, 28))
    assert list(rf) == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc1", "relu3", "fc2"]
    assert all(v is None for v in rf.values())


def support(m: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(m)
    return int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1


class PositiveNet(nn.Module):
    """Convs and average pools with positive weights, no non-linearity: every input pixel in a
    unit's receptive field has a positive gradient, so the effective field fills the box."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 2, 3, padding=1)
        self.p1 = nn.AvgPool2d(2)
        self.c2 = nn.Conv2d(2, 2, 3, stride=2, dilation=2, padding=1)
        self.c3 = nn.Conv2d(2, 1, (3, 5), padding=(0, 2))
        for c in (self.c1, self.c2, self.c3):
            nn.init.uniform_(c.weight, 0.5, 1.0)

    def forward(self, x):
        return self.c3(self.c2(self.p1(self.c1(x))))


@pytest.mark.parametrize("layer", ["c1", "p1", "c2", "c3"])
def test_effective_rf_fills_the_theoretical_box_for_a_positive_linear_net(layer):
    model = PositiveNet().eval()
    x = torch.rand(1, 1, 24, 24)
    rf = receptive_field(model, x.shape)[layer]
    act_hw = {"c1": (24, 24), "p1": (12, 12), "c2": (5, 5), "c3": (3, 5)}[layer]
    for unit in [(0, 0), (act_hw[0] // 2, act_hw[1] // 2), (act_hw[0] - 1, act_hw[1] - 1)]:
        erf = effective_rf(model, x, layer, channel=0, unit_yx=unit)
        assert erf.shape == (24, 24) and erf.max() == pytest.approx(1.0)
        box = theoretical_rf_box(rf, unit, (24, 24))
        got = support(erf)
        if unit == (act_hw[0] // 2, act_hw[1] // 2) and layer != "c3":
            # an inner unit: no padding anywhere on the way, the box is exact (c3's middle
            # unit still reaches c2's border units, whose boxes include padding)
            assert got == box
        else:  # at the border part of the box is padding, which contributes no gradient
            assert box[0] <= got[0] and box[1] <= got[1] and got[2] <= box[2] and got[3] <= box[3]


@pytest.mark.parametrize("cls", [TinyLeNet, TinyResNet, TupleNet], ids=lambda c: c.__name__)
def test_effective_rf_stays_inside_the_theoretical_box(cls):
    model = prepare(cls())
    x = example_input(model)
    rf = receptive_field(model, x.shape)
    h, w = x.shape[-2:]
    for name, field in rf.items():
        if field is None:
            continue
        for unit in [(0, 0), (1, 2), (3, 3)]:
            erf = effective_rf(model, x, name, unit_yx=unit)
            y0, x0, y1, x1 = theoretical_rf_box(field, unit, (h, w))
            outside = erf.copy()
            outside[y0:y1, x0:x1] = 0
            assert (erf > 0).any(), (name, unit)
            assert not outside.any(), (name, unit)


def test_effective_rf_same_in_every_format():
    model = prepare(TinyResNet())
    x = example_input(model)
    maps = {k: effective_rf(m, x, "layer1.0.bn2", channel=3, unit_yx=(5, 7)) for k, m in formats(model, x).items()}
    assert np.allclose(maps["eager"], maps["script"], atol=1e-6)
    assert np.allclose(maps["eager"], maps["export"], atol=1e-6)


def test_effective_rf_bad_unit_or_channel():
    model = prepare(TinyLeNet())
    x = example_input(model)
    with pytest.raises(CaptureError, match="outside layer 'pool1'"):
        effective_rf(model, x, "pool1", unit_yx=(14, 0))
    with pytest.raises(CaptureError, match="no channel 6"):
        effective_rf(model, x, "conv1", channel=6)


def test_a_dense_prediction_names_the_same_class_in_predictions_and_grad_cam():
    """A (1, C, H, W) output: the predictions average each class over the pixels; the class
    Grad-CAM explains by default must be that top class (not an argmax over C*H*W values)."""
    from cnnviz.core.capture import capture, topk
    from cnnviz.core.explain import grad_cam, predicted_class

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(4, 5, 3, padding=1)).eval()
    x = torch.rand(1, 3, 24, 24)
    out = capture(model, x).output
    top = topk(out, None, 1)[0][0]
    assert predicted_class(out) == top and 0 <= top < 5
    default, layer = grad_cam(model, x, layer="1")
    chosen, _ = grad_cam(model, x, target_class=top, layer="1")
    assert np.array_equal(default, chosen)
