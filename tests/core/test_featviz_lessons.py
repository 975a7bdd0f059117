"""The two lessons on feature visualization and adversarial examples promise what the core shows."""

from __future__ import annotations

import torch

from cnnviz.core.lessons import lesson


def test_lessons_exist_and_name_the_window_tabs():
    a, b = lesson("what-a-channel-looks-for"), lesson("a-change-you-cannot-see")
    assert a.target == b.target == "inspector"
    assert a.inspector["featureviz"] == "featviz" and b.inspector["featureviz"] == "adversarial"
    assert "What a channel looks for" in a.text and "Adversarial" in b.text


def test_a_change_you_cannot_see_drifts_more_at_the_end():
    from cnnviz.core import adversarial as adv
    from cnnviz.core.demo import load_demo_model, load_digits_split

    m = load_demo_model()
    x = torch.from_numpy(load_digits_split()[2][:4])[:, None]
    for i in range(4):
        r = adv.run(m, x[i:i + 1], adv.AttackRequest(eps=16))
        d = dict(r.divergence)
        assert r.linf <= 16 + 1e-3
        assert d["fc2"] > d["conv1"], r.divergence
    assert "16 grey levels" in lesson("a-change-you-cannot-see").text
