"""Layer layouts, every-op capture and tasks on small modern models the tests build.

Every layer's (C, H, W) maps must equal the captured tensor permuted / reshaped by hand, the
layout must say how it was decided, and every-op capture must equal a reference recorded
here with plain hooks and a ``__torch_function__`` mode.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from layoutzoo import ChannelsLastBlock, MultiOutput, TinyDetector, TinyViT
from test_inspect_cli import assert_one_clear_line, run_inspect
from torch.overrides import TorchFunctionMode

from cnnviz.core.capture import Recorder, capture
from cnnviz.core.layouts import Layout, LayoutError, map_shape, parse_layout, prefix_tokens, to_maps
from cnnviz.core.tasks import TaskError, interpret, list_outputs

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")


def _model(cls):
    torch.manual_seed(0)
    return cls().eval()


def _x(h=32, w=32):
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1))


def _check_maps(act, expected: torch.Tensor):
    maps = act.maps
    assert tuple(maps.shape) == act.map_shape == tuple(expected.shape), act.name
    assert torch.equal(maps, expected), act.name
    # numpy in, numpy out, same values
    assert np.array_equal(to_maps(act.tensor.numpy(), act.layout), expected.numpy())


def test_channels_last_block_maps_are_the_tensor_permuted():
    res = capture(_model(ChannelsLastBlock), _x())
    by = {a.name: a for a in res.layers}
    expect = {"stem": ("NCHW", "module"), "dw": ("NCHW", "module"), "to_last": ("NHWC", "module"),
              "norm": ("NHWC", "module"), "fc1": ("NHWC", "module"), "act": ("NHWC", "inherited"),
              "fc2": ("NHWC", "module"), "head": ("vector", "shape")}
    for name, (kind, how) in expect.items():
        assert (by[name].layout.kind, by[name].layout.how) == (kind, how), (name, by[name].layout)
        assert by[name].layout.reason
    for name in ("to_last", "norm", "fc1", "act", "fc2"):
        t = by[name].tensor
        _check_maps(by[name], t[0].permute(2, 0, 1))
        assert by[name].map_shape == (t.shape[3], 16, 16)
    _check_maps(by["dw"], by["dw"].tensor[0])
    assert "Permute(0, 2, 3, 1)" in by["to_last"].layout.reason
    assert "LayerNorm over the last dimension" in by["norm"].layout.reason


def test_vit_like_tokens_are_c_maps_of_the_grid_plus_the_class_token():
    res = capture(_model(TinyViT), _x(32, 48))
    tokens = [a for a in res.layers if a.tensor.dim() == 3]
    assert tokens and all(a.layout.kind == "tokens" for a in tokens)
    for a in tokens:
        assert a.layout.grid == (4, 6) and a.layout.n_prefix_tokens == 1
        assert "class_token" in a.layout.reason and a.layout.how == "module"
        t = a.tensor
        _check_maps(a, t[0, 1:].reshape(4, 6, t.shape[-1]).permute(2, 0, 1))
        assert torch.equal(prefix_tokens(t, a.layout), t[0, :1])
    assert res.layer("patch").layout.kind == "NCHW"
    assert res.layer("head").layout.kind == "vector"


def test_tokens_without_model_evidence_are_decided_from_the_grid_and_said_so():
    from cnnviz.core.layouts import LayoutDecider

    d = LayoutDecider((1, 3, 64, 64))
    d.decide("conv", "Conv2d", (1, 8, 8, 8))
    lay = d.decide("t", "Dropout", (1, 65, 8))
    assert lay.kind == "tokens" and lay.grid == (8, 8) and lay.n_prefix_tokens == 1
    assert "class token" in lay.reason and lay.how == "shape"
    assert d.decide("s", "Linear", (1, 7, 8)).kind == "sequence"
    amb = LayoutDecider((1, 3, 8, 8)).decide("x", "Mystery", (1, 4, 4, 4))
    assert amb.how == "ambiguous" and "override" in amb.reason


def test_detector_like_non_batch_tensors_are_kept_whole():
    res = capture(_model(TinyDetector), _x())
    anchors, rois = res.layer("anchors"), res.layer("rois")
    assert anchors.tensor.shape == (256, 4) and rois.tensor.shape == (5, 4, 3, 3)
    for a in (anchors, rois):
        assert a.layout.kind == "nonbatch" and "not the batch" in a.layout.reason
        assert torch.equal(a.first, a.tensor)  # never cut to row 0
    _check_maps(anchors, anchors.tensor[None])
    _check_maps(rois, rois.tensor.reshape(-1, 3, 3))
    assert res.layer("backbone.0").layout.kind == "NCHW"
    task = interpret(res.raw_output, score_threshold=0.0)
    assert task.task == "detection" and len(task.detections) == 5
    d0 = task.detections[0]
    assert d0["box"] == pytest.approx(res.raw_output[0]["boxes"][0].tolist())
    assert d0["score"] == pytest.approx(float(res.raw_output[0]["scores"][0]))
    assert interpret(res.raw_output, score_threshold=1.0).below_threshold == 5


def test_multi_output_model_picks_the_output_by_index_or_name():
    res = capture(_model(MultiOutput), _x())
    raw = res.raw_output
    assert [n for n, _ in list_outputs(raw)] == ["0", "1", "2"]
    task = interpret(raw, output="2", topk=2)
    assert task.task == "classification" and task.output_name == "2"
    probs = torch.softmax(raw[2][0], 0)
    assert task.predictions[0]["index"] == int(probs.argmax())
    assert task.predictions[0]["prob"] == pytest.approx(float(probs.max()), abs=1e-6)
    assert interpret(raw, output=-1).output_name == "2"
    with pytest.raises(TaskError, match=r"no output '7'.*0 '0' \(shape \[1, 4\]\)"):
        interpret(raw, output="7")
    for name in ("conv", "box", "landmarks", "prob"):
        assert res.layer(name).layout.kind in ("NCHW", "vector")


def test_segmentation_output_is_a_class_map_with_a_legend():
    logits = torch.zeros(1, 3, 4, 5)
    logits[0, 2, :2] = 5
    logits[0, 1, 2:, :2] = 5
    task = interpret({"out": logits, "aux": logits}, labels=["bg", "cat", "dog"])
    assert task.task == "segmentation" and task.output_name == "out"
    assert np.array_equal(task.class_map, logits[0].argmax(0).numpy())
    assert [e["name"] for e in task.legend] == ["dog", "bg", "cat"]
    assert task.legend[0]["fraction"] == pytest.approx(0.5)


def test_a_layout_override_that_does_not_fit_is_one_clear_error():
    assert parse_layout("tokens:4x6+1", (1, 25, 8)) == Layout("tokens", "set by the user (tokens:4x6+1)", "user",
                                                             (4, 6), 1)
    with pytest.raises(LayoutError, match=r"needs 4 dimensions.*shape \(1, 25, 8\)"):
        parse_layout("NHWC", (1, 25, 8), layer="x")
    with pytest.raises(LayoutError, match="4x5\\+1 = 21 tokens"):
        parse_layout("tokens:4x5+1", (1, 25, 8))
    with pytest.raises(LayoutError, match="unknown layout"):
        parse_layout("HWCN", (1, 2, 3, 4))
    res = capture(_model(ChannelsLastBlock), _x(), layouts={"dw": "NHWC"})
    a = res.layer("dw")
    assert a.layout.how == "user"
    _check_maps(a, a.tensor[0].permute(2, 0, 1))
    with pytest.raises(LayoutError):
        capture(_model(ChannelsLastBlock), _x(), layouts={"head": "NHWC"})
    assert map_shape((1, 25, 8), parse_layout("tokens", (1, 25, 8))) == (8, 5, 5)  # 5x5, no class token
    assert map_shape((1, 26, 8), parse_layout("tokens", (1, 26, 8))) == (8, 5, 5)  # 1 + 5x5


class _Reference(TorchFunctionMode):
    """Every tensor result of a torch function called outside leaf modules, with plain
    pre/post hooks for the module stack: the reference every-op capture must equal."""

    def __init__(self, model):
        super().__init__()
        self.stack, self.leaf, self.records, self.counts = [], 0, [], {}
        self.handles = []
        for name, m in model.named_modules():
            if not name:
                continue
            leaf = not list(m.children())

            def pre(_m, _a, name=name, leaf=leaf):
                self.stack.append(name)
                self.leaf += leaf

            def post(_m, _a, out, name=name, leaf=leaf):
                if leaf and isinstance(out, torch.Tensor):  # still inside the leaf: not an op
                    self.records.append((name, out.detach().clone()))
                self.stack.pop()
                self.leaf -= leaf

            self.handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = getattr(func, "__name__", "").strip("_")
        items = ([("", out)] if isinstance(out, torch.Tensor) else
                 [(f"[{i}]", t) for i, t in enumerate(out) if isinstance(t, torch.Tensor)]
                 if isinstance(out, (tuple, list)) else [])
        if not self.leaf and items and name not in ("get", "detach"):
            key = f"{self.stack[-1] if self.stack else ''}:{name}"
            self.counts[key] = self.counts.get(key, 0) + 1
            key = key if self.counts[key] == 1 else f"{key}#{self.counts[key]}"
            self.records += [(key + suffix, t.detach().clone()) for suffix, t in items]
        return out


@pytest.mark.parametrize("cls", [TinyViT, ChannelsLastBlock])
def test_every_op_capture_equals_a_plain_torch_function_reference(cls):
    model, x = _model(cls), _x(32, 48)
    ref = _Reference(model)
    with torch.no_grad(), ref:
        model(x)
    for h in ref.handles:
        h.remove()
    rec = Recorder(model, every_op=True)
    try:
        for _ in range(2):  # the first frame learns which outputs need a clone; the second uses it
            res = rec.run(x)
            got = [(a.name, a.tensor) for a in res.layers if a.kind == "op" or not list(
                dict(model.named_modules())[a.name.split("#")[0]].children())]
            assert [n for n, _ in got] == [n for n, _ in ref.records]
            for (n, t), (_, r) in zip(got, ref.records):
                assert torch.equal(t, r), n
    finally:
        rec.close()
    names = [a.name for a in res.layers if a.kind == "op"]
    if cls is TinyViT:
        assert ":cat" in names and "blocks.0.attn:softmax" in names and "blocks.0.attn:matmul" in names
        assert "blocks.0:add" in names
    # the default stays module outputs only, and hooks are gone after close
    plain = capture(model, x)
    assert all(a.kind == "module" for a in plain.layers)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


# --------------------------------------------------------------------------- the CLI

def _py_spec(tmp_path, cls_name: str) -> str:
    py = tmp_path / "net.py"
    py.write_text(f"from layoutzoo import {cls_name} as Net\n")
    return f"{py}:Net"


def test_cli_records_layouts_and_map_shapes_and_draws_maps(tmp_path):
    out = tmp_path / "out"
    proc = run_inspect(_py_spec(tmp_path, "TinyViT"), "--trust", "--input-size", "32,48", "--out", str(out),
                       "--every-op", "--layout", "blocks.0.mlp.0=sequence")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    by = {layer["name"]: layer for layer in summary["layers"]}
    assert by["blocks.0.ln1"]["layout"]["kind"] == "tokens" and by["blocks.0.ln1"]["map_shape"] == [8, 4, 6]
    assert by["blocks.0.ln1"]["layout"]["grid"] == [4, 6] and by["blocks.0.ln1"]["layout"]["prefix_tokens"] == 1
    assert by["blocks.0.mlp.0"]["layout"]["how"] == "user" and by["blocks.0.mlp.0"]["map_shape"] == [1, 25, 16]
    assert by["patch"]["map_shape"] == [8, 4, 6] and by["head"]["layout"]["kind"] == "vector"
    assert by["blocks.0.attn:softmax"]["kind"] == "op"
    with np.load(out / "activations.npz") as z:
        assert z["prefix_tokens/blocks.0.ln1"].shape == (1, 8)
    from cnnviz.core.images import load_image

    png = load_image(out / by["blocks.0.ln1"]["png"]).pixels
    assert png.shape[0] < png.shape[1] * 3  # 8 maps of 4x6 in a grid, not one 25x8 strip


@pytest.mark.parametrize("args, words", [
    (["--layout", "head=NHWC"], ["layout 'NHWC' does not fit", "'head'"]),
    (["--layout", "nope=NCHW"], ["no layer named 'nope'"]),
    (["--output", "7"], ["no output '7'", "'2'"]),
])
def test_cli_bad_layout_or_output_is_one_line_exit_2(tmp_path, args, words):
    spec = _py_spec(tmp_path, "MultiOutput")
    if "head=NHWC" in args:
        spec = _py_spec(tmp_path, "ChannelsLastBlock")
    proc = run_inspect(spec, "--trust", "--input-size", "32,32", "--out", str(tmp_path / "o"), *args)
    assert_one_clear_line(proc, *words)


def test_cli_output_and_detections(tmp_path):
    out = tmp_path / "o"
    proc = run_inspect(_py_spec(tmp_path, "MultiOutput"), "--trust", "--input-size", "32,32", "--out", str(out),
                       "--output", "2", "--topk", "2")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"]["output"] == "2" and summary["output_shape"] == [1, 2]
    assert len(summary["predictions"]) == 2
    out2 = tmp_path / "d"
    proc = run_inspect(_py_spec(tmp_path, "TinyDetector"), "--trust", "--input-size", "32,32", "--out", str(out2),
                       "--score-threshold", "0")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out2 / "summary.json").read_text())
    assert summary["task"]["task"] == "detection" and summary["task"]["fields"] == ["boxes", "labels", "scores"]
    assert len(summary["task"]["detections"]) == 5 and summary["predictions"] == []
    assert (out2 / "prediction.png").is_file()
    by = {layer["name"]: layer for layer in summary["layers"]}
    assert by["anchors"]["shape"] == [256, 4] and by["anchors"]["layout"]["kind"] == "nonbatch"


def test_every_op_on_a_torch_export_program_names_ops_as_eager():
    model, x = _model(ChannelsLastBlock), _x()
    ep = torch.export.export(model, (x,))
    got = capture(ep, x, every_op=True)
    ref = capture(model, x, every_op=True)
    assert [(a.name, a.kind) for a in got.layers] == [(a.name, a.kind) for a in ref.layers]
    assert [a.name for a in got.layers if a.kind == "op"] == [":permute", ":add", ":mean"]
    for a, b in zip(got.layers, ref.layers):
        assert torch.allclose(a.tensor, b.tensor, atol=1e-6) and a.layout.kind == b.layout.kind, a.name


def test_cli_warns_about_ambiguous_layouts(tmp_path):
    py = tmp_path / "cube.py"
    py.write_text("import torch\n\n"
                  "class Mystery(torch.nn.Module):\n"
                  "    def forward(self, x):\n"
                  "        return torch.cat([x, x[:, :1]], 1)[:, :, :4, :4]\n\n"
                  "class Net(torch.nn.Module):\n"
                  "    def __init__(self):\n"
                  "        super().__init__()\n"
                  "        self.cube = Mystery()\n"
                  "    def forward(self, x):\n"
                  "        return self.cube(x).flatten(1)\n")
    out = tmp_path / "o"
    proc = run_inspect(f"{py}:Net", "--trust", "--input-size", "8,8", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "1 layer fits channels-first and channels-last alike (first: cube)" in proc.stderr
    assert "--layout cube=NHWC" in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["layers"][0]["layout"]["how"] == "ambiguous"
    out2 = tmp_path / "o2"
    proc = run_inspect(f"{py}:Net", "--trust", "--input-size", "8,8", "--out", str(out2), "--layout", "cube=NHWC")
    assert proc.returncode == 0 and "alike" not in proc.stderr
    layer = json.loads((out2 / "summary.json").read_text())["layers"][0]
    assert layer["layout"]["how"] == "user" and layer["layout"]["kind"] == "NHWC"
