"""Capturing every layer, in every format: what the inspector shows must be what the model
computed.

For eager modules, TorchScript (scripted and traced), torch.export programs and whole
pickles, each captured layer equals a reference taken with plain eager forward hooks that
clone, to 1e-5, and the in-place ReLUs of a resnet-shaped model do not leak into the conv /
batch-norm captures. Hooks are removed and training flags restored whatever happens.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from modelzoo import DictNet, TinyLeNet, TinyResNet, TupleNet, example_input, prepare
from torch import nn

from cnnviz.core.capture import CaptureError, Recorder, capture, layer_to_host_uint8, topk
from cnnviz.core.models import load_model

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning",
                                        "ignore:Detected pickle protocol 4:UserWarning")

MODELS = [TinyLeNet, TinyResNet, TupleNet, DictNet]


def reference_capture(model: nn.Module, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """The plain way: a forward hook on every leaf module that clones its output.

    A module called twice gets ``name#2``; tuple outputs ``name[i]``.
    """
    records: list[tuple[str, torch.Tensor]] = []
    counts: dict[str, int] = {}
    handles = []

    def make(name):
        def hook(_m, _i, out):
            counts[name] = counts.get(name, 0) + 1
            n = name if counts[name] == 1 else f"{name}#{counts[name]}"
            if isinstance(out, tuple):
                records.extend((f"{n}[{i}]", o.detach().clone()) for i, o in enumerate(out))
            else:
                records.append((n, out.detach().clone()))
        return hook

    for name, mod in model.named_modules():
        if name and not list(mod.children()):
            handles.append(mod.register_forward_hook(make(name)))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return records


def save_in_format(model: nn.Module, x: torch.Tensor, fmt: str, folder) -> nn.Module | object:
    """Save ``model`` in ``fmt`` and load it back the way the app does."""
    path = folder / f"model.{fmt}"
    if fmt == "eager":
        return model
    if fmt == "script":
        torch.jit.save(torch.jit.script(model), path)
    elif fmt == "trace":
        torch.jit.save(torch.jit.trace(model, x, strict=False), path)
    elif fmt == "export":
        torch.export.save(torch.export.export(model, (x,)), path)
    elif fmt == "pickle":
        torch.save(model, path)
    return load_model(str(path), trust=True)


FORMATS = ["eager", "script", "trace", "export", "pickle"]


def all_hooks(module: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_every_format_captures_every_layer_like_plain_hooks(cls, fmt, tmp_path):
    model = prepare(cls())
    x = example_input(model)
    ref = reference_capture(model, x)
    loaded = save_in_format(model, x, fmt, tmp_path)
    result = capture(loaded, x)
    assert [a.name for a in result.layers] == [n for n, _ in ref]
    for act, (name, want) in zip(result.layers, ref):
        assert act.shape == tuple(want.shape[1:]), name
        assert torch.allclose(act.tensor, want, atol=1e-5, rtol=0), name
        assert act.index == result.layers.index(act)
    # the prediction is the model's (first tensor / "logits")
    with torch.no_grad():
        out = model(x)
    logits = out["logits"] if isinstance(out, dict) else out[0] if isinstance(out, tuple) else out
    assert torch.allclose(result.output, logits, atol=1e-5)


@pytest.mark.parametrize("fmt", FORMATS)
def test_types_and_own_parameter_counts(fmt, tmp_path):
    model = prepare(TinyResNet())
    x = example_input(model)
    result = capture(save_in_format(model, x, fmt, tmp_path), x)
    info = {a.name: (a.type, a.params) for a in result.layers}
    assert info["conv1"] == ("Conv2d", 3 * 8 * 9)
    assert info["bn1"] == ("BatchNorm2d", 16)
    assert info["layer1.0.relu#2"] == ("ReLU", 0)
    assert info["fc"] == ("Linear", 8 * 5 + 5)
    assert info["avgpool"][0] == "AdaptiveAvgPool2d"


@pytest.mark.parametrize("fmt", FORMATS)
def test_inplace_relu_does_not_leak_into_conv_or_bn(fmt, tmp_path):
    model = prepare(TinyResNet())
    x = example_input(model)
    result = capture(save_in_format(model, x, fmt, tmp_path), x)
    acts = {a.name: a.tensor for a in result.layers}
    with torch.no_grad():  # computed by hand, before any ReLU touches it
        conv1 = model.conv1(x)
        bn1 = model.bn1(conv1.clone())
        block = model.layer1[0]
        h = F.relu(bn1)
        c1 = block.conv1(h)
        b1 = block.bn1(c1.clone())
        b2 = block.bn2(block.conv2(F.relu(b1)))
    assert (bn1 < 0).any() and (b1 < 0).any() and (b2 < 0).any()  # so a leak would show
    assert torch.allclose(acts["conv1"], conv1, atol=1e-5)
    assert torch.allclose(acts["bn1"], bn1, atol=1e-5)
    assert torch.allclose(acts["layer1.0.bn1"], b1, atol=1e-5)
    assert torch.allclose(acts["layer1.0.bn2"], b2, atol=1e-5)  # before `out += identity`
    assert torch.allclose(acts["relu"], F.relu(bn1), atol=1e-5)
    assert torch.allclose(acts["layer1.0.relu#2"], F.relu(b2 + h), atol=1e-5)


def test_a_hook_that_does_not_clone_would_leak():
    """The bug the clone prevents is real on this model (so the test above can fail)."""
    model = prepare(TinyResNet())
    seen = {}
    h = model.bn1.register_forward_hook(lambda m, i, o: seen.setdefault("bn1", o.detach()))
    with torch.no_grad():
        model(example_input(model))
    h.remove()
    assert (seen["bn1"] >= 0).all()  # overwritten by the in-place ReLU


def test_recorder_reuses_hooks_and_stays_correct_across_frames():
    model = prepare(TinyResNet())
    gen = torch.Generator().manual_seed(3)
    with Recorder(model) as rec:
        n_hooks = all_hooks(model)
        assert n_hooks > 0
        for i in range(4):
            x = torch.randn(1, 3, 32 if i < 2 else 24, 32 if i < 2 else 24, generator=gen)
            result = rec.run(x)
            ref = reference_capture(model, x)
            assert [a.name for a in result.layers] == [n for n, _ in ref]
            for act, (name, want) in zip(result.layers, ref):
                assert torch.allclose(act.tensor, want, atol=1e-5), (i, name)
            assert all_hooks(model) == n_hooks  # no hook added per frame
        # outside run() the hooks do nothing
        with torch.no_grad():
            model(x)
    assert all_hooks(model) == 0


def test_recorder_clone_always_equals_auto():
    model = prepare(TinyResNet())
    x = example_input(model)
    with Recorder(model, clone="always") as a, Recorder(model, clone="auto") as b:
        ra = [a.run(x) for _ in range(2)][-1]
        rb = [b.run(x) for _ in range(2)][-1]
    for p, q in zip(ra.layers, rb.layers):
        assert p.name == q.name and torch.equal(p.tensor, q.tensor)


def test_captured_tensors_are_independent_of_the_next_frame():
    model = prepare(TinyResNet())
    x1 = example_input(model, seed=1)
    x2 = example_input(model, seed=2)
    with Recorder(model) as rec:
        rec.run(x1)
        first = rec.run(x1)
        kept = {a.name: a.tensor.clone() for a in first.layers}
        rec.run(x2)
    for a in first.layers:
        assert torch.equal(a.tensor, kept[a.name]), a.name


def test_hooks_removed_and_training_flags_restored_even_when_forward_raises():
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.bn(self.conv(x))
            raise ValueError("the user's forward broke")

    model = Boom()
    model.train()
    model.bn.eval()  # a frozen batch norm inside a training model must stay as it was
    with pytest.raises(CaptureError, match="the user's forward broke"):
        capture(model, torch.rand(1, 3, 8, 8))
    assert all_hooks(model) == 0
    assert model.training and model.conv.training and not model.bn.training


def test_training_flag_restored_and_eval_used_during_capture():
    model = prepare(TinyResNet())
    model.train()
    x = example_input(model)
    result = capture(model, x)
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    with torch.no_grad():
        want = model(x)
    assert torch.allclose(result.output, want, atol=1e-6)  # eval-mode batch norm was used
    assert all_hooks(model) == 0


def test_inference_mode_is_entered_in_the_calling_thread():
    model = prepare(TinyLeNet())
    x = example_input(model)
    out = {}
    with Recorder(model) as rec:
        rec.run(x)  # first frame (learns which outputs need clones)

        def work():
            out["result"] = rec.run(x)

        t = threading.Thread(target=work)
        t.start()
        t.join()
    result = out["result"]
    assert all(a.tensor.is_inference() for a in result.layers)
    assert not torch.is_inference_mode_enabled()
    ref = reference_capture(model, x)
    for act, (_, want) in zip(result.layers, ref):
        assert torch.allclose(act.tensor, want, atol=1e-6)


def test_tuple_and_dict_outputs_of_submodules():
    class Split(nn.Module):
        def forward(self, x):
            return x[:, :2] * 2, {"rest": x[:, 2:] + 1}

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.split = Split()

        def forward(self, x):
            a, d = self.split(self.conv(x))
            return a.sum((2, 3)) + d["rest"].sum((2, 3))

    model = Net().eval()
    x = torch.rand(1, 3, 6, 6)
    result = capture(model, x)
    assert [a.name for a in result.layers] == ["conv", "split[0]", "split[1].rest"]
    conv = model.conv(x).detach()
    assert torch.allclose(result.layer("split[0]").tensor, conv[:, :2] * 2)
    assert torch.allclose(result.layer("split[1].rest").tensor, conv[:, 2:] + 1)


def test_container_with_a_new_output_is_recorded():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1)

        def forward(self, x):
            return x + self.conv(x)

    model = nn.Sequential(Residual(), nn.ReLU()).eval()
    x = torch.randn(1, 2, 5, 5)
    for m in (model, torch.jit.script(model)):
        names = [a.name for a in capture(m, x).layers]
        assert names == ["0.conv", "0", "1"]


def test_choose_layers_and_unknown_layer_message():
    model = prepare(TinyResNet())
    x = example_input(model)
    result = capture(model, x, layers=["bn1", "layer1.0.relu#2"])
    assert [a.name for a in result.layers] == ["bn1", "layer1.0.relu#2"]
    result = capture(model, x, layers=["layer1.0.relu"])  # a module path keeps all its calls
    assert [a.name for a in result.layers] == ["layer1.0.relu", "layer1.0.relu#2"]
    with pytest.raises(CaptureError, match="no layer named 'nope'"):
        capture(model, x, layers=["nope"])
    assert all_hooks(model) == 0


def test_wrong_channels_names_expected_and_given():
    model = prepare(TinyLeNet(in_ch=1))
    with pytest.raises(CaptureError) as err:
        capture(model, torch.rand(1, 3, 28, 28))
    msg = str(err.value)
    assert "expects 1 channel" in msg and "has 3 channels" in msg
    # with the channel count known up front (a LoadedModel) the same message, before running
    with pytest.raises(CaptureError, match="expects 3 channels of input, but the input has 1 channel"):
        capture(load_model("demo").__class__(module=prepare(TinyResNet()), kind="python", name="n", source=None,
                                             preprocessing=load_model("demo").preprocessing, labels=None,
                                             input_channels=3), torch.rand(1, 1, 32, 32))


def test_forward_that_raises_gives_a_message():
    model = prepare(TinyLeNet())
    with pytest.raises(CaptureError, match=r"forward failed on an input of shape \(1, 1, 20, 20\).*input-size"):
        capture(model, torch.rand(1, 1, 20, 20))  # 20x20 does not fit fc1


def test_cuda_out_of_memory_retries_on_the_cpu():
    class OnceOOM(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            if self.calls == 1:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
            return self.conv(x)

    model = OnceOOM().eval()
    x = torch.rand(1, 1, 6, 6)
    result = capture(model, x)
    assert result.fell_back_to_cpu and result.device == "cpu"
    assert "ran out of memory" in result.message and "CPU" in result.message
    assert torch.allclose(result.layer("conv").tensor, model.conv(x).detach())
    assert all_hooks(model) == 0


def test_activations_stay_on_the_models_device_and_dtype():
    model = prepare(TinyLeNet()).double()
    x = example_input(model)  # float32 input: converted to the model's dtype
    result = capture(model, x)
    assert all(a.tensor.dtype == torch.float64 and a.tensor.device.type == "cpu" for a in result.layers)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_cuda_capture_matches_cpu():
    model = prepare(TinyResNet())
    x = example_input(model)
    ref = capture(model, x)
    model.cuda()
    with Recorder(model) as rec:
        rec.run(x)
        res = rec.run(x)
    for a, b in zip(ref.layers, res.layers):
        assert b.tensor.device.type == "cuda"
        assert torch.allclose(a.tensor, b.tensor.cpu(), atol=1e-4)


def test_torchvision_resnet18_scripted_and_exported_match_eager():
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.rand(1, 3, 64, 64)
    ref = capture(model, x)
    assert len(ref.layers) == 60
    for other in (torch.jit.script(model), torch.export.export(model, (x,))):
        res = capture(other, x)
        assert [a.name for a in res.layers] == [a.name for a in ref.layers]
        for a, b in zip(ref.layers, res.layers):
            assert torch.allclose(a.tensor, b.tensor, atol=1e-5), a.name


def test_topk_probabilities_and_names():
    logits = torch.tensor([[1.0, 3.0, 2.0, -1.0]])
    top = topk(logits, ["a", "b", "c", "d"], 3)
    probs = torch.softmax(logits[0], 0)
    assert [(i, n) for i, n, _ in top] == [(1, "b"), (2, "c"), (0, "a")]
    assert np.allclose([p for *_, p in top], probs[[1, 2, 0]].numpy())
    assert topk(logits, None, 10)[0][1] == "class 1" and len(topk(logits, None, 10)) == 4


def test_layer_to_host_uint8_is_a_mosaic_of_all_channels():
    model = prepare(TinyLeNet())
    result = capture(model, example_input(model))
    img = layer_to_host_uint8(result.layer("conv1"), pad=1)
    assert img.dtype == np.uint8 and img.shape == (2 * 29 - 1, 3 * 29 - 1)  # 6 maps: 2 rows x 3


def test_a_captured_layer_can_be_rendered_directly():
    from cnnviz.core.mosaic import mosaic, mosaic_many

    model = prepare(TinyLeNet())
    result = capture(model, example_input(model))
    act = result.layer("conv1")
    assert np.array_equal(mosaic(act).image, mosaic(act.first).image)
    assert all(np.array_equal(a.image, b.image) for a, b in
               zip(mosaic_many(result.layers), mosaic_many([a.first for a in result.layers])))


def test_recorder_inside_a_callers_inference_mode():
    model = prepare(TinyResNet())
    with torch.inference_mode():
        x = example_input(model) + 0  # an inference tensor
        with Recorder(model) as rec:
            results = [rec.run(x) for _ in range(2)]
    ref = reference_capture(model, example_input(model))
    for result in results:
        for act, (name, want) in zip(result.layers, ref):
            assert torch.allclose(act.tensor, want, atol=1e-5), name


def test_model_bench_reports_the_documented_fields():
    from cnnviz.bench.model import run_model_bench

    data = run_model_bench("cpu", repeats=1, modern=False)
    (case,) = data["cases"]
    assert case["layers"] == 60
    for key in ("forward_ms", "hooked_ms", "mosaic_ms", "ratio_hooked", "ratio_mosaic"):
        assert isinstance(case[key], float) and case[key] > 0
    assert case["ratio_hooked"] == case["hooked_ms"] / case["forward_ms"]
    assert case["ratio_mosaic"] == case["mosaic_ms"] / case["forward_ms"]
    assert "live_resnet50" not in data  # CUDA only


def test_the_resnet50_live_case_runs_and_renders_on_the_cpu(monkeypatch):
    """The CUDA-only case (1280x720 frames, preprocessing on the device, every layer captured,
    one rendered) never runs here unless asked: run two frames of it on the CPU so its shape
    logic, its layer name and its render are exercised; the GPU only changes the timing."""
    from cnnviz.bench import model as bench_model

    rendered = []
    real = bench_model.mosaic_tensor
    monkeypatch.setattr(bench_model, "mosaic_tensor", lambda t, **k: rendered.append(tuple(t.shape)) or real(t, **k))
    out = bench_model.resnet50_live_case("cpu", frames=2)
    assert out["frames"] == 2 and out["fps"] > 0 and isinstance(out["ok_fps"], bool)
    assert out["ms_per_frame"] == pytest.approx(1000.0 / out["fps"])
    assert set(rendered) == {(256, 14, 14)}  # layer3.5.conv2 of a 224x224 crop


@pytest.mark.parametrize("fmt", ["script", "export"])
def test_recorder_on_compiled_formats_stays_exact_over_many_frames(fmt, tmp_path):
    """TorchScript re-optimises a graph after its first runs; the captures must not change."""
    model = prepare(TinyResNet())
    x = example_input(model)
    ref = reference_capture(model, x)
    with Recorder(save_in_format(model, x, fmt, tmp_path)) as rec:
        for _ in range(5):
            result = rec.run(x)
            for act, (name, want) in zip(result.layers, ref):
                assert torch.allclose(act.tensor, want, atol=1e-5), name


def test_capture_and_onnx_bench_cases_report_their_ratios():
    """The modern-model cases of ``cnnviz bench --model``, run on a tiny model (the real
    ones use resnet50, swin_t, vit_b_16): every figure present and the ratio its quotient."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from layoutzoo import TinyCNN

    from cnnviz.bench.model import capture_case, onnx_case

    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 16)
    case = capture_case("tiny", "cpu", 1, every_op=True, model=TinyCNN().eval(), x=x)
    assert case["layers"] == 6 and case["every_op_layers"] == 7  # + the flatten op
    assert case["ratio_hooked"] == case["hooked_ms"] / case["forward_ms"]
    assert case["ratio_every_op"] == case["every_op_ms"] / case["forward_ms"]
    onnx = onnx_case("tiny", "cpu", 1, model=TinyCNN().eval(), x=x)
    assert onnx["layers"] == 7 and onnx["ratio_onnx"] == onnx["captured_ms"] / onnx["plain_ms"]
    assert isinstance(onnx["ok_onnx"], bool)
