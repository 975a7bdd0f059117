"""ONNX models: opened without trust, every node captured, equal to onnxruntime and PyTorch."""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from layoutzoo import ChannelsLastBlock, TinyCNN
from test_inspect_cli import assert_one_clear_line, run_inspect

from cnnviz.core.capture import capture, make_recorder
from cnnviz.core.errors import ModelLoadError
from cnnviz.core.models import load_model
from cnnviz.core.onnx_model import looks_like_onnx

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning",
                                        "ignore::UserWarning")


def _export(model, x, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["input"], output_names=["logits"])
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    model = TinyCNN().eval()
    x = torch.rand(1, 3, 16, 20, generator=torch.Generator().manual_seed(2))
    return model, x, _export(model, x, tmp_path_factory.mktemp("onnx") / "tiny.bin")


def test_onnx_is_detected_by_content_and_needs_no_trust(tiny):
    model, x, path = tiny
    assert looks_like_onnx(path)  # no .onnx suffix: the bytes tell
    loaded = load_model(str(path), trust=False)
    assert loaded.kind == "onnx" and loaded.input_channels == 3 and loaded.input_size == (16, 20)
    assert loaded.preprocessing.resize == (16, 20)
    assert not looks_like_onnx(__file__)


def test_every_node_equals_onnxruntime_and_pytorch(tiny):
    model, x, path = tiny
    loaded = load_model(str(path))
    res = capture(loaded, x)
    proto = onnx.load(str(path))
    assert [a.name for a in res.layers] == [n.name for n in proto.graph.node]  # graph order
    assert [a.type for a in res.layers] == [n.op_type for n in proto.graph.node]
    # onnxruntime's own values for every node output
    m = onnx.ModelProto()
    m.CopyFrom(proto)
    names = [n.output[0] for n in proto.graph.node]
    for n in names[:-1]:
        m.graph.output.append(onnx.ValueInfoProto(name=n))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": x.numpy()})))
    for act, n in zip(res.layers, names):
        assert np.array_equal(act.tensor.numpy(), ref[n]), act.name
    # PyTorch's activations of the corresponding modules
    torch_res = capture(model, x)
    pairs = {"/conv1/Conv": "conv1", "/relu1/Relu": "relu1", "/conv2/Conv": "conv2", "/relu2/Relu": "relu2",
             "/fc/Gemm": "fc"}
    for onnx_name, torch_name in pairs.items():
        a, b = res.layer(onnx_name), torch_res.layer(torch_name)
        assert a.layout.kind == b.layout.kind
        assert a.map_shape == b.map_shape
        assert np.allclose(a.maps.numpy(), b.maps.numpy(), atol=1e-5, equal_nan=True), onnx_name
    assert res.layer("/conv2/Conv").layout.how == "module"
    assert torch.allclose(res.output, model(x).detach(), atol=1e-5)


def test_channels_last_onnx_layers_get_the_same_layouts(tmp_path):
    torch.manual_seed(0)
    model = ChannelsLastBlock().eval()
    x = torch.rand(1, 3, 16, 16)
    loaded = load_model(str(_export(model, x, tmp_path / "cl.onnx")))
    rec = make_recorder(loaded)
    res = rec.run(x)
    kinds = {a.type: a.layout.kind for a in res.layers if a.tensor.dim() == 4}
    assert kinds["Conv"] == "NCHW"
    transposes = [a for a in res.layers if a.type == "Transpose"]
    assert transposes[0].layout.kind == "NHWC" and "moves channels last" in transposes[0].layout.reason
    t = transposes[0].tensor
    assert torch.equal(transposes[0].maps, t[0].permute(2, 0, 1))
    ref = capture(model, x).layer("dw").tensor
    assert torch.allclose(transposes[0].maps, ref[0], atol=1e-5)


def test_truncated_and_unknown_op_files_are_one_clear_error(tmp_path, tiny):
    _, x, path = tiny
    data = path.read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="cut.onnx"):
        load_model(str(cut))
    proto = onnx.load(str(path))
    proto.graph.node[1].op_type = "FancyRelu"
    bad = tmp_path / "custom.onnx"
    onnx.save(proto, str(bad))
    with pytest.raises(ModelLoadError, match="FancyRelu"):
        load_model(str(bad))
    proto.graph.node[1].domain = "com.example"
    proto.opset_import.add(domain="com.example", version=1)
    onnx.save(proto, str(bad))
    with pytest.raises(ModelLoadError, match="does not have"):
        load_model(str(bad))
    for f, words in ((cut, ["cut.onnx", "truncated"]), (bad, ["custom.onnx", "custom ops"])):
        assert_one_clear_line(run_inspect(str(f), "--out", str(tmp_path / "o")), *words)


def test_cli_inspects_an_onnx_file(tmp_path, tiny):
    _, _, path = tiny
    out = tmp_path / "o"
    proc = run_inspect(str(path), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"]["kind"] == "onnx" and summary["input_shape"] == [1, 3, 16, 20]
    by = {layer["name"]: layer for layer in summary["layers"]}
    assert by["/conv2/Conv"]["map_shape"] == [6, 8, 10] and by["/conv2/Conv"]["layout"]["kind"] == "NCHW"
    assert len(summary["predictions"]) == 3


def test_onnx_vit_tokens_get_the_same_layout_and_maps_as_pytorch(tmp_path):
    from layoutzoo import TinyViT

    torch.manual_seed(0)
    model = TinyViT().eval()
    x = torch.rand(1, 3, 32, 48)
    loaded = load_model(str(_export(model, x, tmp_path / "vit.onnx")))
    res = capture(loaded, x)
    assert not any(a.type in ("Constant", "Shape", "Identity") for a in res.layers)  # only data nodes
    ln = res.layer("/blocks/blocks.0/ln1/LayerNormalization")
    assert ln.layout.kind == "tokens" and ln.layout.grid == (4, 6) and ln.layout.n_prefix_tokens == 1
    assert "class_token" in ln.layout.reason
    ref = capture(model, x).layer("blocks.0.ln1")
    assert ln.map_shape == ref.map_shape == (8, 4, 6)
    assert torch.allclose(ln.maps, ref.maps, atol=1e-5)
    assert torch.allclose(ln.maps, ln.tensor[0, 1:].reshape(4, 6, 8).permute(2, 0, 1))
