"""``cnnviz visualize``, ``top-images`` and ``adversarial``: files written, one-line errors, exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnviz.cli import main
from cnnviz.core.resources import resources_dir


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path / "cache"))


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_visualize_channel_all_and_class(tmp_path, capsys):
    out = tmp_path / "v"
    assert main(["visualize", "demo", "--layer", "conv2", "--all", "--steps", "3", "--out", str(out)]) == 0
    summary = json.loads((out / "visualize.json").read_text())
    assert len(summary["images"]) == 8 and summary["grid"] == "grid.png" and (out / "grid.png").is_file()
    assert all((out / im["file"]).is_file() for im in summary["images"])
    assert summary["target"] == {"kind": "all", "layer": "conv2", "channel": None, "unit": None}
    # the same settings for one channel: straight from the cache
    assert main(["visualize", "demo", "--layer", "conv2", "--channel", "3", "--steps", "3", "--out", str(out / "one")]) == 0
    one = json.loads((out / "one" / "visualize.json").read_text())
    assert one["cached"] and one["images"][0]["value"] == summary["images"][3]["value"]
    assert main(["visualize", "demo", "--class", "7", "--steps", "2", "--out", str(out / "c")]) == 0
    assert (out / "c" / "class_7.png").is_file()


@pytest.mark.parametrize("argv, text", [
    (["visualize", "demo", "--layer", "conv1", "--channel", "8", "--steps", "1"], "no channel 8; choose one from 0 to 7"),
    (["visualize", "demo", "--layer", "conv1", "--unit", "0,99,0", "--steps", "1"], "outside"),
    (["visualize", "demo", "--class", "12", "--steps", "1"], "no class 12"),
    (["visualize", "demo", "--layer", "nope", "--channel", "0", "--steps", "1"], "no layer named 'nope'"),
    (["visualize", "demo", "--channel", "0"], "no --layer given"),
    (["visualize", "demo", "--layer", "conv1", "--channel", "0", "--steps", "0"], "steps must be at least 1"),
    (["adversarial", "demo", "IMG", "--eps", "0"], "grey levels"),
    (["adversarial", "demo", "IMG", "--target", "10"], "target class 10 does not exist"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, text):
    argv = [str(resources_dir() / "samples" / "digit.png") if a == "IMG" else a for a in argv]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    assert text in _err_line(capsys)


def test_top_images_json_matches_core_and_skips(tmp_path, capsys):
    from cnnviz.core import dataset_examples as dx
    from cnnviz.core.demo import load_demo_model

    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in (resources_dir() / "samples").glob("*.png"):
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 20)
    out = tmp_path / "t"
    assert main(["top-images", "demo", str(folder), "--layer", "relu2", "--k", "3", "--out", str(out)]) == 0
    summary = json.loads((out / "top_images.json").read_text())
    assert [s["path"] for s in summary["skipped"]] == [str(folder / "broken.jpg")]
    assert summary["processed"] == 4
    ref = dx.run(load_demo_model(), dx.SweepRequest(folder, ("relu2",), k=3), cache=False)
    for c, ch in enumerate(summary["layers"]["relu2"]["channels"]):
        assert [(e["path"], e["value"], e["unit"], e["box"]) for e in ch["images"]] == [
            (e["item"], e["value"], e["unit"], e["box"]) for e in ref.entries("relu2", c)]
        assert (out / ch["png"]).is_file()
    capsys.readouterr()
    assert main(["top-images", "demo", str(folder), "--layer", "fc1", "--out", str(out)]) == 2
    assert "no spatial maps" in _err_line(capsys)
    assert main(["top-images", "demo", str(folder), "--layer", "fc1", "--no-crops", "--k", "1", "--out", str(out)]) == 0


def test_adversarial_writes_images_and_divergence(tmp_path):
    from cnnviz.commands.adversarial import DEFAULT_EPS
    from cnnviz.core.adversarial import DEFAULT_EPS as CORE_EPS

    assert DEFAULT_EPS == CORE_EPS
    out = tmp_path / "a"
    assert main(["adversarial", "demo", str(resources_dir() / "samples" / "digit.png"), "--out", str(out)]) == 0
    s = json.loads((out / "adversarial.json").read_text())
    assert s["max_pixel_change"] <= DEFAULT_EPS + 1e-3
    assert s["divergence"][0]["layer"] == "conv1" and len(s["divergence"]) >= 10
    assert all(v["relative_l2"] is None or v["relative_l2"] >= 0 for v in s["divergence"])
    for f in ("clean.png", "adversarial.png", "perturbation.png"):
        assert (out / f).is_file()
    from cnnviz.core.images import load_image

    assert np.asarray(load_image(out / "perturbation.png").pixels).std() > 0


def test_nan_during_optimization_is_one_line(tmp_path, capsys):
    net = tmp_path / "nannet.py"
    net.write_text(
        "import torch\nfrom torch import nn\n\n\nclass Net(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.conv = nn.Conv2d(1, 2, 3)\n        with torch.no_grad():\n"
        "            self.conv.weight.fill_(float('nan'))\n\n    def forward(self, x):\n        return self.conv(x)\n")
    argv = ["visualize", f"{net}:Net", "--trust", "--layer", "conv", "--channel", "1", "--size", "8,8",
            "--steps", "2", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "NaN or infinity at step 1" in _err_line(capsys)


def test_pictures_become_rgb_bytes_without_relevelling():
    import numpy as np

    from cnnviz.core.display import unit_image_to_rgb8

    gray = np.array([[0.0, 0.5], [1.0, np.nan]], np.float32)
    rgb = unit_image_to_rgb8(gray)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[..., 0].tolist() == [[0, 128], [255, 0]]  # [0, 1] maps to 0..255; NaN is black
    assert (rgb[..., 0] == rgb[..., 2]).all()
    assert unit_image_to_rgb8(np.full((1, 1, 3), 2.0))[0, 0].tolist() == [255, 255, 255]  # clipped
