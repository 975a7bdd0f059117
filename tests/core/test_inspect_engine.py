"""The inspector's state and engine without a window: the state is the one copy of what the
user chose and freezes into requests; closing the engine removes every hook from the model,
also when a request is still running (then as soon as it returns)."""

from __future__ import annotations

import dataclasses
import gc
import threading
import weakref

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from modelzoo import TinyLeNet, prepare  # noqa: E402

from cnnviz.core.inspect_engine import InspectEngine, InspectorState, InspectRequest, as_input_pixels  # noqa: E402
from cnnviz.core.inspect_results import VIEWS  # noqa: E402
from cnnviz.core.models import LoadedModel, Preprocessing  # noqa: E402


def _loaded(module) -> LoadedModel:
    return LoadedModel(module=module, kind="python", name="t", source=None,
                       preprocessing=Preprocessing(color="gray", resize=(28, 28)), labels=None, input_channels=1)


def _hooks(module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               + len(getattr(m, "_backward_pre_hooks", {})) for m in module.modules())


def test_state_freezes_into_a_request_and_a_new_model_forgets_the_old_choices():
    st = InspectorState()
    assert st.to_request() is None  # no model, no input
    st.set_input(np.full((10, 12), 2.0, np.float32), "drawing")
    assert st.to_request() is None  # still no model
    st.set_model(_loaded(prepare(TinyLeNet())), {"name": "t"})
    first_token = st.token
    assert st.select_layer("conv2") and not st.select_layer("conv2") and not st.select_layer("")
    st.rf_unit, st.channel, st.cam_class, st.view = (1, 2), 3, 4, "rf"
    req = st.to_request()
    assert isinstance(req, InspectRequest)
    assert (req.layer, req.channel, req.rf_unit, req.cam_class, req.views) == ("conv2", 3, (1, 2), 4,
                                                                                frozenset({"grid", "rf"}))
    assert req.token == first_token and req.frame_id == 1
    # pixels are clipped to [0, 1] and read-only: the request holds them without a copy
    assert not req.pixels.flags.writeable and float(req.pixels.max()) == 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        req.layer = "conv1"
    # picking another layer forgets the unit picked on the old layer's map
    assert st.select_layer("conv1") and st.rf_unit is None
    st.set_input(np.zeros((4, 4, 4), np.uint8), "rgba")
    assert st.frame_id == 2 and st.pixels.shape == (4, 4, 3)
    st.set_model(_loaded(prepare(TinyLeNet(), seed=2)), {"name": "u"})
    assert st.token == first_token + 1
    assert (st.layer, st.channel, st.cam_class, st.rf_unit, st.preprocessing, st.labels) == (None, 0, None, None,
                                                                                             None, None)
    st.view = "no such view"
    with pytest.raises(ValueError, match="unknown view"):
        st.to_request()
    assert set(VIEWS) == {"grid", "overview", "weights", "cam", "rf"}


def test_input_pixels_refuse_what_is_not_an_image():
    with pytest.raises(ValueError, match="HxW"):
        as_input_pixels(np.zeros((2, 3, 5)))
    frame = np.zeros((3, 3, 3), np.uint8)
    frame.setflags(write=False)
    assert as_input_pixels(frame) is frame  # a source's read-only frame is not copied


class _Gate(torch.nn.Module):
    """Blocks its forward until released, once armed (an inference that outlives the close wait)."""

    def __init__(self):
        super().__init__()
        self.armed = False
        self.entered = threading.Event()
        self.release = threading.Event()

    def forward(self, x):
        if self.armed:
            self.entered.set()
            self.release.wait(30)
        return x


def test_closing_the_engine_while_a_request_runs_removes_the_hooks_when_it_returns():
    net = prepare(TinyLeNet())
    gate = _Gate()
    net.conv1 = torch.nn.Sequential(gate, net.conv1)
    model = _loaded(net)
    engine = InspectEngine()
    img = np.random.default_rng(0).random((28, 28), dtype=np.float32)
    engine(InspectRequest(token=1, model=model, pixels=img, frame_id=1))
    assert _hooks(net) > 0  # the recorder's hooks stay between requests

    gate.armed = True
    done = []
    t = threading.Thread(target=lambda: done.append(engine(InspectRequest(token=1, model=model, pixels=img,
                                                                          frame_id=2))))
    t.start()
    assert gate.entered.wait(30)
    assert engine.close() is False  # deferred: the request is running
    assert _hooks(net) > 0 and engine.model is model
    gate.release.set()
    t.join(30)
    assert done and done[0].frame_id == 2  # the running request finished normally
    assert _hooks(net) == 0 and engine.model is None  # and then the model was let go

    ref = weakref.ref(net)
    del net, model, gate, done, t
    gc.collect()
    assert ref() is None


def test_closing_an_idle_engine_removes_the_hooks_at_once():
    net = prepare(TinyLeNet())
    engine = InspectEngine()
    engine(InspectRequest(token=1, model=_loaded(net), pixels=np.zeros((28, 28), np.float32), frame_id=1))
    assert _hooks(net) > 0
    assert engine.close() is True
    assert _hooks(net) == 0 and engine.model is None
