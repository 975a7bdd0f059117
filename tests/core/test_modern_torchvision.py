"""``cnnviz inspect`` on today's torchvision models, opened by name with random-init weights
saved as a state_dict (nothing downloaded): every layer shown with the right map shape, the
detector's and the segmenter's outputs read as what they are. Slow (whole models on the CPU):
inputs are kept at the models' minimum sizes."""

from __future__ import annotations

import json

import pytest
import torch
from test_inspect_cli import assert_one_clear_line, run_inspect

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning", "ignore::UserWarning")]


def _weights(tmp_path, name: str, **kwargs) -> str:
    import torchvision

    import inspect

    torch.manual_seed(0)
    if "weights_backbone" in inspect.signature(torchvision.models.get_model_builder(name)).parameters:
        kwargs.setdefault("weights_backbone", None)  # else the ImageNet backbone is downloaded
    model = torchvision.models.get_model(name, weights=None, **kwargs)
    path = tmp_path / f"{name}.pth"
    torch.save(model.state_dict(), path)
    return str(path)


def _inspect(tmp_path, name: str, *args: str, **kwargs) -> dict:
    out = tmp_path / "out"
    proc = run_inspect(name, "--weights", _weights(tmp_path, name, **kwargs), "--out", str(out), *args)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    for layer in summary["layers"]:  # every map is what to_maps makes of the shape
        kind, shape, ms = layer["layout"]["kind"], layer["shape"], layer["map_shape"]
        if kind == "NHWC":
            assert ms == [shape[2], shape[0], shape[1]], layer["name"]
        elif kind == "NCHW" and len(shape) == 3:
            assert ms == shape, layer["name"]
        elif kind == "tokens":
            g = layer["layout"]["grid"]
            assert ms == [shape[1], *g] and shape[0] == g[0] * g[1] + layer["layout"]["prefix_tokens"]
    summary["by"] = {layer["name"]: layer for layer in summary["layers"]}
    return summary


def test_swin_t_stage_1_blocks_are_96_maps_of_56x56(tmp_path):
    s = _inspect(tmp_path, "swin_t", "--input-size", "224,224")
    by = s["by"]
    for name in ("features.1.0", "features.1.1", "features.1.0.attn", "features.1.0.norm1"):
        assert by[name]["map_shape"] == [96, 56, 56] and by[name]["layout"]["kind"] == "NHWC", name
    assert by["features.1.0.mlp.0"]["map_shape"] == [384, 56, 56]
    assert by["features.7.1"]["map_shape"] == [768, 7, 7]
    assert by["features.0.0"]["layout"]["kind"] == "NCHW"
    assert not [n for n, layer in by.items() if layer["layout"]["how"] == "ambiguous"]


def test_convnext_tiny_channels_last_mlps(tmp_path):
    s = _inspect(tmp_path, "convnext_tiny", "--input-size", "64,64")
    by = s["by"]
    assert by["features.1.0.block.3"]["layout"]["kind"] == "NHWC"
    assert by["features.1.0.block.3"]["map_shape"] == [384, 16, 16]
    assert by["features.1.0.block.4"]["layout"]["how"] == "inherited"
    assert by["features.1.0.block.0"]["map_shape"] == [96, 16, 16]
    assert by["features.1.0.stochastic_depth"]["layout"]["kind"] == "NCHW"


def test_vit_b_16_encoder_layers_are_768_maps_of_14x14(tmp_path):
    s = _inspect(tmp_path, "vit_b_16", "--input-size", "224,224")
    enc = [layer for n, layer in s["by"].items() if n.startswith("encoder.layers.encoder_layer_") and n.count(".") == 2]
    assert len(enc) == 12
    for layer in enc:
        assert layer["map_shape"] == [768, 14, 14] and layer["layout"]["prefix_tokens"] == 1
        assert "class_token" in layer["layout"]["reason"]


def test_deeplabv3_output_is_a_class_map(tmp_path):
    s = _inspect(tmp_path, "deeplabv3_mobilenet_v3_large", "--input-size", "64,64")
    task = s["task"]
    assert task["task"] == "segmentation" and task["output"] == "out"
    assert task["class_map_shape"] == [64, 64] and task["png"] == "prediction.png"
    assert task["legend"] and task["legend"][0]["name"] in ("__background__", "aeroplane", "bicycle", "bird", "boat",
                                                            "bottle", "bus", "car", "cat", "chair", "cow",
                                                            "diningtable", "dog", "horse", "motorbike", "person",
                                                            "pottedplant", "sheep", "sofa", "train", "tvmonitor")
    assert s["predictions"] == []
    assert (tmp_path / "out" / "prediction.png").is_file()


def test_fasterrcnn_mobilenet_320_lists_boxes_labels_scores(tmp_path):
    s = _inspect(tmp_path, "fasterrcnn_mobilenet_v3_large_320_fpn")
    task = s["task"]
    assert task["task"] == "detection" and task["fields"] == ["boxes", "labels", "scores"]
    assert task["outputs"] == [{"name": "detections", "value": "detections (boxes, labels, scores)"}]
    by = s["by"]
    anchors = by["rpn.anchor_generator[0]"]
    assert anchors["layout"]["kind"] == "nonbatch" and anchors["shape"][1] == 4 and anchors["shape"][0] > 1
    rois = by["roi_heads.box_roi_pool"]
    assert rois["layout"]["kind"] == "nonbatch" and rois["shape"][1:] == [256, 7, 7]
    assert rois["map_shape"] == [rois["shape"][0] * 256, 7, 7]


def test_googlenet_without_aux_heads_needs_and_takes_model_args(tmp_path):
    weights = _weights(tmp_path, "googlenet", aux_logits=False, init_weights=True)
    proc = run_inspect("googlenet", "--weights", weights, "--out", str(tmp_path / "o"), "--input-size", "96,96")
    assert_one_clear_line(proc, "auxiliary head", "--model-args '{\"aux_logits\": false}'")
    proc = run_inspect("googlenet", "--weights", weights, "--out", str(tmp_path / "o"), "--input-size", "96,96",
                       "--model-args", '{"aux_logits": false}')
    assert proc.returncode == 0, proc.stderr
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert len(s["predictions"]) == 5
    assert not any(layer["name"].startswith("aux") for layer in s["layers"])


def test_optical_flow_is_refused_with_the_reason(tmp_path):
    proc = run_inspect("raft_small", "--weights", "random", "--out", str(tmp_path / "o"))
    assert_one_clear_line(proc, "optical-flow")
