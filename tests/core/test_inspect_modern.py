"""The inspector's engine on today's models (no window): every layer's maps come from the
core's layout (channels-last, tokens with the class token apart, non-batch tensors whole),
the user's layout override (and one that does not fit), every-op capture, tasks (segmentation,
detection, a multi-output model's chosen output, remembered per model) and ONNX files."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from layoutzoo import ChannelsLastBlock, MultiOutput, TinyCNN, TinyDetector, TinyViT  # noqa: E402
from torch import nn  # noqa: E402

from cnnviz.core.capture import capture  # noqa: E402
from cnnviz.core.inspect_engine import InspectEngine, InspectorState, model_key  # noqa: E402
from cnnviz.core.models import LoadedModel, Preprocessing  # noqa: E402


def loaded(module, hw=(32, 48), name="t", source=None, kind="python") -> LoadedModel:
    torch.manual_seed(0)
    return LoadedModel(module=module.eval(), kind=kind, name=name, source=source,
                       preprocessing=Preprocessing(resize=hw), labels=None, input_channels=3)


def pixels(hw=(32, 48)) -> np.ndarray:
    return np.random.default_rng(0).random((*hw, 3), dtype=np.float32)


def run(state: InspectorState, engine: InspectEngine, **changes):
    for k, v in changes.items():
        setattr(state, k, v)
    return engine(state.to_request())


def setup(module, hw=(32, 48), **info):
    st = InspectorState()
    st.set_input(pixels(hw), "t")
    lm = loaded(module, hw)
    st.set_model(lm, {"name": "t", "kind": "python", **info})
    return st, InspectEngine(), lm


def reference(lm, st):
    x = lm.preprocessing.apply(np.array(st.pixels))
    return capture(lm, x)


class Segmenter(nn.Module):
    def __init__(self, k=4):
        super().__init__()
        self.conv = nn.Conv2d(3, k, 3, padding=1)

    def forward(self, x):
        return {"out": self.conv(x) * 10.0}


def test_channels_last_tiles_are_the_tensor_permuted_by_hand():
    torch.manual_seed(0)
    st, eng, lm = setup(ChannelsLastBlock())
    ref = reference(lm, st)
    st.layer = "fc2"
    res = eng(st.to_request())
    info = res.layer_info()
    t = ref.layer("fc2").tensor  # (1, H, W, C)
    assert info.layout == "NHWC" and info.shape == tuple(t.shape[1:])
    assert info.map_shape == (t.shape[3], t.shape[1], t.shape[2]) and info.spatial
    assert "Linear over the last dimension" in info.layout_text
    for c in range(t.shape[3]):
        np.testing.assert_allclose(res.activation[c], t[0, :, :, c].numpy(), atol=1e-6)
    # the overview strips are made of the same maps: as many tiles as channels (up to 8)
    res = run(st, eng, view="overview")
    row = next(r for r in res.overview if r.name == "fc2")
    assert len(row.channels) == min(8, t.shape[3]) and row.tile_hw == (t.shape[1], t.shape[2])


def test_tokens_are_c_maps_on_the_grid_and_the_class_token_is_apart():
    torch.manual_seed(0)
    st, eng, lm = setup(TinyViT())
    ref = reference(lm, st)
    st.layer = "blocks.0"
    res = eng(st.to_request())
    info = res.layer_info()
    t = ref.layer("blocks.0").tensor  # (1, 1 + 4*6, 8)
    assert info.layout == "tokens" and info.map_shape == (8, 4, 6)
    by_hand = t[0, 1:].reshape(4, 6, 8).permute(2, 0, 1).numpy()
    np.testing.assert_allclose(res.activation, by_hand, atol=1e-6)
    np.testing.assert_allclose(res.extras.prefix_tokens, t[0, :1].numpy(), atol=1e-6)
    # Grad-CAM's default is the core's: the input of the last attention, a token layer
    res = run(st, eng, view="cam")
    assert res.cam is not None and res.cam_default_layer == "blocks.1.ln1"
    assert res.cam.heatmap.shape == (32, 48)


def test_nonbatch_tensors_are_kept_whole():
    torch.manual_seed(0)
    st, eng, lm = setup(TinyDetector())
    ref = reference(lm, st)
    res = run(st, eng, layer="anchors")
    info = res.layer_info()
    t = ref.layer("anchors").tensor  # (H*W, 4): no batch dimension
    assert info.layout == "nonbatch" and info.shape == tuple(t.shape)
    np.testing.assert_allclose(res.activation[0], t.numpy(), atol=1e-6)  # all rows, not row 0
    assert res.extras.table_rows == t.shape[0]
    np.testing.assert_allclose(res.extras.table, t.numpy()[:res.extras.table.shape[0]])
    res = run(st, eng, layer="rois")
    t = ref.layer("rois").tensor  # (R, C, 3, 3): R*C maps
    assert res.layer_info().map_shape == (t.shape[0] * t.shape[1], 3, 3)
    np.testing.assert_allclose(res.activation, t.reshape(-1, 3, 3).numpy(), atol=1e-6)


def test_detection_boxes_are_drawn_and_the_threshold_filters_them():
    torch.manual_seed(0)
    st, eng, lm = setup(TinyDetector())
    res = run(st, eng, score_threshold=0.0)
    assert res.task.task == "detection" and len(res.task.detections) == 5
    assert res.task.image is not None and res.task.image.shape == res.input_image.shape
    assert not np.array_equal(res.task.image, res.input_image)  # boxes drawn
    scores = sorted(d["score"] for d in res.task.detections)
    res = run(st, eng, score_threshold=(scores[2] + scores[3]) / 2)
    assert len(res.task.detections) == 2 and res.task.below_threshold == 3
    assert res.predictions == []  # boxes are not classes


def test_segmentation_class_map_overlay_and_legend():
    torch.manual_seed(0)
    st, eng, lm = setup(Segmenter())
    res = eng(st.to_request())
    assert res.task.task == "segmentation" and res.task.class_map.shape == (32, 48)
    ref = Segmenter.forward(lm.module, lm.preprocessing.apply(np.array(st.pixels)))["out"][0].argmax(0)
    np.testing.assert_array_equal(res.task.class_map, ref.numpy())
    assert abs(sum(e["fraction"] for e in res.task.legend) - 1) < 1e-6
    assert all(len(e["color"]) == 3 for e in res.task.legend)
    fg = res.task.class_map > 0
    assert fg.any() and not np.array_equal(res.task.image[fg], res.input_image[fg])


def test_multi_output_pick_changes_the_predictions_and_is_remembered_per_model():
    torch.manual_seed(0)
    st, eng, lm = setup(MultiOutput())
    res = eng(st.to_request())
    assert [o["name"] for o in res.task.outputs] == ["0", "1", "2"]
    assert res.task.output_name == "0" and res.n_classes == 4
    st.set_output("2")
    res = eng(st.to_request())
    assert res.task.output_name == "2" and res.n_classes == 2
    probs = lm.module(lm.preprocessing.apply(np.array(st.pixels)))[2][0]
    assert res.predictions[0][0] == int(probs.argmax())
    # a bad choice: said, and the default output read instead
    st.output = "landmarks"
    res = eng(st.to_request())
    assert "no output 'landmarks'" in res.errors["output"] and res.task.output_name == "0"
    # remembered for this model, not another
    st.set_output("2")
    st.set_model(lm, {"name": "other", "kind": "python"})
    assert st.output is None
    st.set_model(lm, {"name": "t", "kind": "python"})
    assert st.output == "2" and st.outputs_by_model == {model_key({"name": "t", "kind": "python"}): "2"}


def test_layout_override_applies_and_a_bad_one_is_a_message():
    torch.manual_seed(0)
    st, eng, lm = setup(ChannelsLastBlock())
    ref = reference(lm, st)
    st.layer = "fc2"
    st.set_layout("fc2", "NCHW")  # wrong, but it fits a 4-D tensor: the user's word
    res = eng(st.to_request())
    t = ref.layer("fc2").tensor
    assert res.layer_info().layout == "NCHW" and res.layer_info().layout_how == "user"
    np.testing.assert_allclose(res.activation, t[0].numpy(), atol=1e-6)
    st.set_layout("fc2", "tokens:3x3")  # does not fit a 4-D tensor
    res = eng(st.to_request())
    assert "does not fit" in res.errors["layout"] and "fc2" in res.errors["layout"]
    assert res.layer_info().layout == "NHWC"  # the core's layout kept: the views still work
    st.set_layout("fc2", "auto")
    assert st.layouts == {}


def test_every_op_capture_lists_ops_in_execution_order():
    torch.manual_seed(0)
    st, eng, lm = setup(ChannelsLastBlock())
    res = eng(st.to_request())
    assert all(li.kind == "module" for li in res.layers)
    res = run(st, eng, every_op=True)
    assert res.every_op and any(li.kind == "op" for li in res.layers)
    names = res.names()
    ops = [li for li in res.layers if li.kind == "op"]
    assert any(":add" in li.name or ":iadd" in li.name for li in ops)
    assert names.index("fc2") < names.index(next(li.name for li in ops if "add" in li.name))
    assert [li.index for li in res.layers] == list(range(len(res.layers)))


def test_onnx_model_same_views(tmp_path):
    from cnnviz.core.models import load_model

    torch.manual_seed(0)
    model = TinyCNN().eval()
    path = tmp_path / "cnn.onnx"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, 16, 16),), str(path), dynamo=False,
                          input_names=["input"], output_names=["logits"])
    lm = load_model(str(path))  # no trust asked: ONNX carries no code
    st = InspectorState()
    st.set_input(pixels((16, 16)), "t")
    st.set_model(lm, {"name": "cnn", "kind": lm.kind, "source": str(path)})
    eng = InspectEngine()
    res = eng(st.to_request())
    conv = next(li for li in res.layers if li.type == "Conv")
    res = run(st, eng, layer=conv.name, view="weights")
    x = lm.preprocessing.apply(np.array(st.pixels))
    ref = model.conv1(x)[0].detach().numpy()
    np.testing.assert_allclose(res.activation, ref, atol=1e-4)
    assert res.weights is not None and res.weights.shape == tuple(model.conv1.weight.shape)
    assert res.task.task == "classification" and len(res.predictions) == 3


class KeypointNet(nn.Module):
    """torchvision-style keypoint detections: boxes, labels, scores and 2 keypoints each."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)

    def forward(self, x):
        s = torch.sigmoid(self.conv(x).mean((2, 3)))[0]  # 2 scores
        boxes = torch.tensor([[2.0, 2.0, 20.0, 14.0], [10.0, 4.0, 40.0, 30.0]])
        kps = torch.tensor([[[5.0, 5.0, 1.0], [15.0, 10.0, 1.0]], [[20.0, 8.0, 1.0], [30.0, 20.0, 1.0]]])
        return [{"boxes": boxes, "labels": torch.tensor([1, 1]), "scores": s, "keypoints": kps}]


def test_keypoints_are_drawn():
    torch.manual_seed(0)
    st, eng, lm = setup(KeypointNet())
    res = run(st, eng, score_threshold=0.0)
    assert res.task.task == "keypoints" and len(res.task.detections) == 2
    assert res.task.detections[0]["keypoints"][1][:2] == [15.0, 10.0]
    assert not np.array_equal(res.task.image, res.input_image)


def test_the_chosen_outputs_round_trip_and_a_bad_file_says_so(tmp_path):
    from cnnviz.core.inspect_state import OUTPUTS_FILE, read_model_outputs, write_model_outputs

    assert read_model_outputs(tmp_path) == ({}, None)  # nothing saved yet
    write_model_outputs(tmp_path / "cfg", {"m1": "2", "m0": "logits"})
    assert read_model_outputs(tmp_path / "cfg") == ({"m0": "logits", "m1": "2"}, None)
    (tmp_path / OUTPUTS_FILE).write_text("[" * 100 + "]" * 100)  # too deep: read bounded, refused
    outputs, message = read_model_outputs(tmp_path)
    assert outputs == {} and "could not be read" in message and OUTPUTS_FILE in message
    (tmp_path / OUTPUTS_FILE).write_text('{"a": 1, "b": [1], "c": "x"}')  # only names and indices kept
    assert read_model_outputs(tmp_path) == ({"a": "1", "c": "x"}, None)
