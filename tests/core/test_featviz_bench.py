"""`cnnviz bench --featviz`: both cases are ratios measured side by side in one run."""

from __future__ import annotations


def test_featviz_bench_cases_are_ratios_of_one_run(monkeypatch):
    """`cnnviz bench --featviz` measures both cases side by side (tiny sizes here: shape only)."""
    from cnnviz.bench import featviz as fb

    monkeypatch.setattr(fb, "_model", lambda device, size: _tiny_model(size))
    sweep = fb.sweep_case("cpu", 1, n_images=4, size=16, batch=2)
    step = fb.step_case("cpu", 1, batch=2, size=16, steps=(2, 4))
    for c in (sweep, step):
        assert c["baseline_ms"] > 0 and c["measured_ms"] > 0 and isinstance(c["ok"], bool)
    assert sweep["ratio"] == sweep["baseline_ms"] / sweep["measured_ms"]
    assert step["ratio"] == step["measured_ms"] / step["baseline_ms"]


def _tiny_model(size):
    import torch
    from torch import nn

    from cnnviz.core.models import LoadedModel, Preprocessing

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.layer3 = nn.Module()
            self.layer3.add_module("1", nn.Module())
            getattr(self.layer3, "1").relu = nn.ReLU()
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            r = getattr(self.layer3, "1").relu
            x = r(self.conv(x))
            x = r(x)
            return self.fc(self.pool(x).flatten(1))

    torch.manual_seed(0)
    return LoadedModel(module=Net().eval(), kind="python", name="tiny", source="t",
                       preprocessing=Preprocessing(resize=(size, size)), labels=None, input_channels=3,
                       input_size=(size, size))
