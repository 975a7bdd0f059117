"""The inspector window on today's models (small ones built here, no downloads): channels-last
and token layers drawn as their maps (each tile equals the tensor permuted/reshaped by hand),
the class token apart, non-batch tensors as a table, every-op capture from the checkbox, the
segmentation overlay and the detection boxes with their threshold, the output picker
(remembered per model, also in a new window), a layout override that does not fit (a message,
and the window keeps running), and an ONNX file opened without a trust prompt."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))

torch = pytest.importorskip("torch")

from layoutzoo import TinyCNN  # noqa: E402
from test_inspector import TIMEOUT, core_capture, make_inspector, wait_for  # noqa: E402,F401

from cnnviz.qt.inspector.imaging import colorize_maps  # noqa: E402

ZOO = Path(__file__).resolve().parents[1] / "core" / "layoutzoo.py"
SEG = '''
import torch
from torch import nn


class Segmenter(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return {"out": self.conv(x) * 10.0}
'''


def open_model(qtbot, w, spec, trust=True, hw=(32, 48)):
    w.set_image(np.random.default_rng(0).random((*hw, 3), dtype=np.float32))
    with qtbot.waitSignal(w.modelLoaded, timeout=TIMEOUT):
        w.load_model_spec(spec, trust=trust)
    return wait_for(qtbot, w, lambda r: r.token == w.state.token)


@pytest.fixture
def window(make_inspector):
    return make_inspector(load_demo=False, wait=False)


def test_channels_last_tiles_equal_the_tensor_permuted_by_hand(qtbot, window):
    w = window
    torch.manual_seed(0)
    open_model(qtbot, w, f"{ZOO}:ChannelsLastBlock")
    w.select_layer("fc2")
    res = wait_for(qtbot, w, lambda r: r.layer == "fc2")
    t = core_capture(w).layer("fc2").tensor  # (1, H, W, C)
    by_hand = t[0].permute(2, 0, 1).numpy()
    assert w.grid.tile_count() == t.shape[3]
    np.testing.assert_allclose(res.activation, by_hand, atol=1e-5)
    ref_tiles, _, _ = colorize_maps(res.activation, w.grid.mode, w.grid.cmap)
    np.testing.assert_array_equal(w.grid.tiles(), ref_tiles)
    # the layout and how it was decided, in the Layer panel and the table
    assert "NHWC" in w.layer_panel.how.text() and "Linear over the last dimension" in w.layer_panel.how.text()
    row = w.layer_table.names().index("fc2")
    assert w.layer_table.table.item(row, 6).text().startswith("NHWC → ")


def test_tokens_as_maps_class_token_apart_and_grad_cam_on_the_token_grid(qtbot, window):
    w = window
    torch.manual_seed(0)
    open_model(qtbot, w, f"{ZOO}:TinyViT")
    w.select_layer("blocks.0")
    res = wait_for(qtbot, w, lambda r: r.layer == "blocks.0")
    t = core_capture(w).layer("blocks.0").tensor  # (1, 1 + 4*6, 8)
    np.testing.assert_allclose(res.activation, t[0, 1:].reshape(4, 6, 8).permute(2, 0, 1).numpy(), atol=1e-5)
    assert w.grid.tile_count() == 8 and w.detail.view.array().shape[:2] == (4, 6)
    assert w.layer_panel.prefix_view.isVisible() and "1 class/register token" in w.layer_panel.prefix_label.text()
    w.show_tab("cam")
    res = wait_for(qtbot, w, lambda r: r.cam is not None)
    assert res.cam.layer == res.cam_default_layer == "blocks.1.ln1"
    assert "cam" not in res.errors


def test_detector_boxes_threshold_and_nonbatch_table(qtbot, window):
    w = window
    torch.manual_seed(0)
    res = open_model(qtbot, w, f"{ZOO}:TinyDetector")
    assert res.task.task == "detection"
    w.task_panel.set_threshold(0.0)
    res = wait_for(qtbot, w, lambda r: r.task.score_threshold == 0.0)
    assert len(res.task.detections) == 5 and w.task_panel.threshold_row.isVisible()
    shown = w.task_panel.image.array()
    assert shown is not None and not np.array_equal(shown, res.input_image)  # boxes drawn on the input
    assert "5 boxes" in w.task_panel.task_label.text()
    w.task_panel.set_threshold(1.0)
    res = wait_for(qtbot, w, lambda r: r.task.score_threshold == 1.0)
    assert res.task.detections == [] and "0 boxes" in w.task_panel.task_label.text()
    # anchors: no batch dimension, every row in the table (not cut to row 0)
    w.select_layer("anchors")
    res = wait_for(qtbot, w, lambda r: r.layer == "anchors")
    anchors = core_capture(w).layer("anchors").tensor
    assert w.layer_panel.table.isVisible() and w.layer_panel.table.rowCount() == min(200, anchors.shape[0])
    assert float(w.layer_panel.table.item(3, 2).text()) == pytest.approx(float(anchors[3, 2]), rel=1e-3)
    np.testing.assert_allclose(res.activation[0], anchors.numpy())


def test_segmentation_overlay_and_legend(qtbot, window, tmp_path):
    w = window
    path = tmp_path / "seg.py"
    path.write_text(SEG)
    torch.manual_seed(0)
    res = open_model(qtbot, w, f"{path}:Segmenter")
    assert res.task.task == "segmentation"
    shown = w.task_panel.image.array()
    fg = res.task.class_map > 0
    assert shown is not None and fg.any() and not np.array_equal(shown[fg], res.input_image[fg])
    assert w.task_panel.legend.isVisible() and "class " in w.task_panel.legend.text()
    # the predictions: the classes by their share of the pixels, as the legend
    top = res.task.legend[0]
    assert w.predictions.predictions[0] == (top["index"], top["name"], pytest.approx(top["fraction"]))


def test_output_picker_changes_the_predictions_and_is_remembered(qtbot, make_inspector, config_dir):
    w = make_inspector(load_demo=False, wait=False)
    torch.manual_seed(0)
    res = open_model(qtbot, w, f"{ZOO}:MultiOutput")
    assert res.task.output_name == "0" and len(w.predictions.predictions) == 4  # the 4 box numbers
    assert w.task_panel.output_box.count() == 4  # default + 3 outputs
    w.task_panel.choose_output("2")
    res = wait_for(qtbot, w, lambda r: r.task.output_name == "2")
    assert len(w.predictions.predictions) == 2  # the face probability's 2 classes
    w.close()
    # a new window, the same model: the chosen output comes back
    w2 = make_inspector(load_demo=False, wait=False)
    res = open_model(qtbot, w2, f"{ZOO}:MultiOutput")
    assert res.task.output_name == "2" and w2.task_panel.output_box.currentData() == "2"
    assert len(w2.predictions.predictions) == 2


def test_a_bad_layout_override_is_a_message_and_the_window_keeps_running(qtbot, window):
    w = window
    torch.manual_seed(0)
    open_model(qtbot, w, f"{ZOO}:ChannelsLastBlock")
    w.select_layer("fc2")
    wait_for(qtbot, w, lambda r: r.layer == "fc2")
    w.layer_panel.choose_layout("tokens:3x3")
    res = wait_for(qtbot, w, lambda r: "layout" in r.errors)
    assert w.layer_panel.message.isVisible() and "does not fit" in w.layer_panel.message.text()
    assert "Layout not applied" in w.last_message
    assert res.layer_info().layout == "NHWC"  # the core's layout still drawn
    # a layout that fits is applied (the user's word) and the window goes on computing
    w.layer_panel.choose_layout("NCHW")
    res = wait_for(qtbot, w, lambda r: r.layer_info().layout_how == "user")
    assert "layout" not in res.errors and not w.layer_panel.message.isVisible()
    t = core_capture(w).layer("fc2").tensor
    assert w.grid.tile_count() == t.shape[1]
    w.select_layer("stem")
    wait_for(qtbot, w, lambda r: r.layer == "stem")


def test_every_op_checkbox_lists_ops_in_execution_order(qtbot, window):
    w = window
    torch.manual_seed(0)
    res = open_model(qtbot, w, f"{ZOO}:ChannelsLastBlock")
    n_modules = len(res.layers)
    w.layer_panel.every_op.setChecked(True)
    res = wait_for(qtbot, w, lambda r: r.every_op)
    names = w.layer_table.names()
    assert len(names) > n_modules and names == res.names()
    add = next(n for n in names if ":add" in n or ":iadd" in n)
    assert names.index("fc2") < names.index(add) < names.index("head")
    assert "tensor ops" in w.layer_table.summary.text()


def test_onnx_file_opens_without_trust_with_the_same_views(qtbot, window, tmp_path):
    w = window
    torch.manual_seed(0)
    model = TinyCNN().eval()
    path = tmp_path / "cnn.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, 16, 16),), str(path), dynamo=False,
                          input_names=["input"], output_names=["logits"])
    res = open_model(qtbot, w, str(path), trust=False, hw=(16, 16))  # trust=False: no code, no prompt
    conv = next(li for li in res.layers if li.type == "Conv")
    w.select_layer(conv.name)
    w.show_tab("weights")
    res = wait_for(qtbot, w, lambda r: r.layer == conv.name and r.weights is not None)
    assert w.grid.tile_count() == 4 and res.weights.shape == (4, 3, 3, 3)
    assert len(w.predictions.predictions) == 3


def test_exports_follow_the_layouts(qtbot, window, tmp_path):
    import csv

    from cnnviz.core.images import load_image

    w = window
    torch.manual_seed(0)
    open_model(qtbot, w, f"{ZOO}:ChannelsLastBlock")
    w.select_layer("fc2")
    res = wait_for(qtbot, w, lambda r: r.layer == "fc2")
    c, h, wd = res.activation.shape  # 6 maps of 16x24 (the tensor is (1, 16, 24, 6))
    assert (c, h, wd) == (6, 16, 24)
    img = load_image(w.export_grid_png(tmp_path / "grid.png"))
    assert img.pixels.shape[0] >= h and img.pixels.shape[1] >= wd and img.pixels.size >= c * h * wd
    with qtbot.waitSignal(w.exportFinished, timeout=TIMEOUT):
        w.export_csv(tmp_path / "stats.csv")
    rows = {r["name"]: r for r in csv.DictReader((tmp_path / "stats.csv").open())}
    assert rows["fc2"]["layout"] == "NHWC" and rows["fc2"]["map_shape"] == "6x16x24"
    assert int(rows["fc2"]["channels"]) == 6 and rows["stem"]["layout"] == "NCHW"
