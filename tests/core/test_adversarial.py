"""Adversarial examples on the demo model, and the per-layer divergence against plain hooks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnviz.core import adversarial as adv
from cnnviz.core.demo import load_demo_model, load_digits_split


@pytest.fixture(scope="module")
def demo():
    return load_demo_model()


@pytest.fixture(scope="module")
def held_out():
    _, _, x, y = load_digits_split()
    return torch.from_numpy(x)[:, None], torch.from_numpy(y)


def test_pgd_default_eps_flips_nine_in_ten_held_out_digits(demo, held_out):
    x, y = held_out
    req = adv.AttackRequest()  # PGD, the default ε
    assert req.method == "pgd" and req.eps == adv.DEFAULT_EPS
    a = adv.attack_batch(demo, x, req, y)
    assert float((a - x).abs().max()) * 255 <= req.eps + 1e-3 and a.min() >= 0 and a.max() <= 1
    with torch.no_grad():
        pred = demo.module(a).argmax(1)
    flipped = float((pred != y).float().mean())
    assert flipped >= 0.90, flipped


def test_fgsm_weaker_than_pgd_and_targeted(demo, held_out):
    x, y = held_out
    x, y = x[:60], y[:60]
    with torch.no_grad():
        fgsm = (demo.module(adv.attack_batch(demo, x, adv.AttackRequest("fgsm"), y)).argmax(1) != y).float().mean()
        pgd = (demo.module(adv.attack_batch(demo, x, adv.AttackRequest("pgd"), y)).argmax(1) != y).float().mean()
        assert fgsm <= pgd
        tgt = demo.module(adv.attack_batch(demo, x, adv.AttackRequest(target=3, eps=32, steps=20))).argmax(1)
    assert float((tgt == 3).float().mean()) >= 0.8


def _reference_divergence(module, clean, attacked):
    outs = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, name=name: outs.setdefault(name, []).append(o.detach().clone()))
             for name, m in module.named_modules() if name and not list(m.children())]
    try:
        with torch.no_grad():
            module(clean)
            module(attacked)
    finally:
        for h in hooks:
            h.remove()
    return {n: float(torch.linalg.vector_norm((b - a).double()) / torch.linalg.vector_norm(a.double()))
            for n, (a, b) in outs.items() if float(a.abs().sum()) > 0}


def test_run_reports_divergence_equal_to_plain_hooks(demo, held_out):
    x, y = held_out
    r = adv.run(demo, x[5:6], adv.AttackRequest())
    assert r.clean.shape == r.adversarial.shape == (28, 28, 1)
    assert r.linf <= 16 + 1e-3 and r.perturbation.min() >= -16 - 1e-3
    assert r.amplified.min() >= 0 and r.amplified.max() <= 1
    assert r.clean_class == int(y[5]) and r.flipped and r.adversarial_top[0][0] == r.adversarial_class
    ref = _reference_divergence(demo.module, torch.from_numpy(r.clean).permute(2, 0, 1)[None],
                                torch.from_numpy(r.adversarial).permute(2, 0, 1)[None])
    got = {n: v for n, v in r.divergence if v is not None}
    assert set(got) == set(ref)
    for n in ref:
        assert got[n] == pytest.approx(ref[n], rel=1e-4, abs=1e-7), n
    assert [n for n, _ in r.divergence][:3] == ["conv1", "relu1", "conv2"]


def test_bad_requests(demo, held_out):
    with pytest.raises(adv.AdversarialError, match="grey levels"):
        adv.AttackRequest(eps=0)
    with pytest.raises(adv.AdversarialError, match="grey levels"):
        adv.AttackRequest(eps=300)
    with pytest.raises(adv.AdversarialError, match="unknown attack"):
        adv.AttackRequest(method="cw")
    with pytest.raises(adv.AdversarialError, match="target class 10 does not exist.*0 to 9"):
        adv.run(demo, held_out[0][:1], adv.AttackRequest(target=10))
