"""The code paths an accelerator takes, exercised on the CPU.

On a GPU, feature visualization reads its per-step checks and values back every few steps
(not every step: a read-back stalls the queue); it must give exactly what the plain CPU path
gives: the same images, values, history, errors at the same step. A folder sweep decodes a
chunk ahead on a thread (on a GPU it waits for the decoder): order, boxes and threads hold.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnviz.core import dataset_examples as dx
from cnnviz.core import featureviz as fv
from cnnviz.core.images import save_png
from cnnviz.core.taskstate import TaskState


@pytest.fixture(scope="module")
def demo():
    from cnnviz.core.demo import load_demo_model

    return load_demo_model()


def _featviz(model, objective, settings):
    state = TaskState()
    r = fv.run(model, fv.FeatureVizRequest(objective, settings), state, cache=False, preview_every=5)
    return r, state


@pytest.mark.parametrize("interval", [3, 8])
def test_deferred_read_back_gives_the_same_result(demo, monkeypatch, interval):
    settings = fv.FeatureVizSettings(steps=21, lr=0.2, batch=2)
    plain, plain_state = _featviz(demo, fv.Objective.channel_of("relu2", 3), settings)
    monkeypatch.setattr(fv, "_sync_interval", lambda device, every: interval)
    deferred, state = _featviz(demo, fv.Objective.channel_of("relu2", 3), settings)
    np.testing.assert_array_equal(deferred.images, plain.images)
    np.testing.assert_array_equal(deferred.values, plain.values)
    np.testing.assert_array_equal(deferred.history, plain.history)
    assert np.all(np.isfinite(deferred.history)) and deferred.history[-1] > deferred.history[0]
    assert state.progress == plain_state.progress == 1.0
    # the last status line names the last step's activation, read back at the end
    assert f"step 21/21: activation {float(plain.history[-1]):.4g}" in state.status


class _NaNAfterConv(nn.Module):
    """A conv whose output (or only its gradient) turns NaN from its ``after + 1``-th call on."""

    def __init__(self, after: int, where: str):
        super().__init__()
        self.inner = nn.Conv2d(1, 2, 3)
        self.after, self.where, self.calls = after, where, 0

    def forward(self, x):
        self.calls += 1
        y = self.inner(x)
        if self.calls > self.after:
            y = y * float("nan") if self.where == "loss" else _NaNGrad.apply(y)
        return y


class _NaNAfter(nn.Module):
    def __init__(self, after: int, where: str):
        super().__init__()
        self.conv = _NaNAfterConv(after, where)

    def forward(self, x):
        return self.conv(x)


class _NaNGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y):
        return y.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


@pytest.mark.parametrize("where, text", [("loss", r"at step 5 \(conv channel 1\); lower"),
                                          ("grad", r"at step 5 \(conv channel 1\): in the gradient")])
@pytest.mark.parametrize("interval", [1, 4, 8])
def test_nan_is_reported_at_its_step_whatever_the_read_back(monkeypatch, where, text, interval):
    monkeypatch.setattr(fv, "_sync_interval", lambda device, every: interval)
    net = _NaNAfter(after=5, where=where).eval()  # call 1 is the probe: steps 1-4 are clean
    with pytest.raises(fv.FeatureVizError, match=text):
        fv.run(net, fv.FeatureVizRequest(fv.Objective.channel_of("conv", 1),
                                         fv.FeatureVizSettings(steps=12, size=(8, 8), transforms=False)),
               cache=False)


def test_sync_interval_is_every_step_on_the_cpu():
    assert fv._sync_interval(torch.device("cpu"), 16) == 1
    assert fv._sync_interval(torch.device("cuda"), 16) == 8
    assert fv._sync_interval(torch.device("cuda"), 2) == 2


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("decode")
    rng = np.random.default_rng(1)
    for i in range(19):
        save_png(root / f"img_{i:02d}.png", rng.integers(0, 256, (28, 28, 3), dtype=np.uint8))
    (root / "img_05b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # corrupt, mid-folder
    (root / "readme.txt").write_text("not an image")
    return root


@pytest.mark.filterwarnings("ignore:TF32 acceleration")
def test_a_sweep_with_a_bad_file_mid_folder_keeps_order_boxes_and_no_thread(demo, folder):
    """The decoder runs a chunk ahead on its thread: a corrupt file and a text file in the
    middle are skipped in folder order, every kept entry has its box, and the decoder ends
    with the sweep."""
    import threading

    req = dx.SweepRequest(folder, ("relu2", "conv3"), k=5, batch_size=4)
    with torch.backends.mkldnn.flags(enabled=False):
        res = dx.run(demo, req, cache=False)
    assert res.processed == 19
    assert [p for p, _ in res.skipped] == [str(folder / "img_05b.png"), str(folder / "readme.txt")]
    for name in req.layers:
        ex = res.layers[name]
        assert (ex.items >= 0).all() and (ex.boxes[ex.items >= 0] >= 0).all()
    assert not [t for t in threading.enumerate() if t.name.startswith("cnnviz-sweep-decode")]
