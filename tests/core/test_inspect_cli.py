"""``cnnviz inspect`` end to end, in a subprocess, as a user runs it.

The files it writes must hold what the model computed (compared with an in-process capture),
and bad input must give one clear line on stderr, exit code 2 and no traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from modelzoo import TinyResNet, example_input, prepare

from cnnviz.core.capture import capture
from cnnviz.core.demo import resources_dir
from cnnviz.core.images import load_image, save_png
from cnnviz.core.models import load_model

REPO = Path(__file__).resolve().parents[2]
TESTS_CORE = Path(__file__).resolve().parent

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning",
                                        "ignore:Detected pickle protocol 4:UserWarning")


def run_inspect(*args: str, module: str = "cnnviz.commands.inspect") -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(TESTS_CORE), env.get("PYTHONPATH", "")])
    env.pop("CNNVIZ_DEBUG", None)
    env["PYTHONWARNINGS"] = "ignore"
    cmd = [sys.executable, "-m", module] + (["inspect"] if module == "cnnviz.cli" else []) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=240)


def read_outputs(out: Path) -> tuple[dict, dict[str, np.ndarray], list[str]]:
    summary = json.loads((out / "summary.json").read_text())
    with np.load(out / "activations.npz") as z:
        arrays = {k: z[k] for k in z.files}
    with zipfile.ZipFile(out / "activations.npz") as zf:  # npz keeps the write order
        order = [n[:-4] for n in zf.namelist()]
    return summary, arrays, order


def assert_one_clear_line(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and lines[0].startswith("cnnviz")
    for w in words:
        assert w in lines[0], lines[0]


def test_demo_end_to_end(tmp_path):
    out = tmp_path / "out"
    proc = run_inspect("demo", "--out", str(out), "--topk", "3")
    assert proc.returncode == 0, proc.stderr
    summary, arrays, order = read_outputs(out)

    model = load_model("demo")
    image = resources_dir() / "samples" / "digit.png"
    x = model.preprocessing.apply(load_image(image).pixels)
    ref = capture(model, x)
    names = [a.name for a in ref.layers]
    assert [layer["name"] for layer in summary["layers"]] == names == order
    for act, layer in zip(ref.layers, summary["layers"]):
        arr = arrays[act.name]
        assert arr.dtype == np.float32 and arr.shape == act.shape == tuple(layer["shape"])
        assert np.allclose(arr, act.first.numpy(), atol=1e-5)
        assert layer["type"] == act.type and layer["params"] == act.params
        assert layer["min"] == pytest.approx(arr.min(), abs=1e-5)
        assert layer["max"] == pytest.approx(arr.max(), abs=1e-5)
        assert layer["mean"] == pytest.approx(arr.mean(), abs=1e-5)
        assert layer["std"] == pytest.approx(arr.std(), abs=1e-5)
        assert layer["zeros"] == pytest.approx(float((arr == 0).mean()))
        png = load_image(out / layer["png"]).pixels
        assert png.ndim == 3 and png.shape[0] >= 1
        assert (out / "layers" / f"{act.name}.png").is_file()
    assert summary["layers"][0]["params"] == 8 * 9 + 8
    preds = summary["predictions"]
    assert len(preds) == 3 and preds[0]["name"] == "3" and preds[0]["index"] == 3
    assert preds[0]["prob"] > preds[1]["prob"] > preds[2]["prob"]
    assert summary["input_shape"] == [1, 1, 28, 28] and summary["image"].endswith("digit.png")
    assert "3" in proc.stdout


def test_pickled_resnet_with_trust_image_and_preprocessing(tmp_path):
    model = prepare(TinyResNet())
    path = tmp_path / "resnet.pt"
    torch.save(model, path)
    rng = np.random.default_rng(0)
    image = tmp_path / "img.png"
    save_png(image, rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    out = tmp_path / "out"
    proc = run_inspect(str(path), str(image), "--trust", "--input-size", "32,32", "--mean", "0.5,0.4,0.3",
                       "--std", "0.2,0.25,0.3", "--out", str(out), "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    summary, arrays, _ = read_outputs(out)

    pixels = load_image(image).pixels
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None]
    x = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
    x = (x - torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)) / torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    ref = capture(model, x)
    assert list(arrays) == [a.name for a in ref.layers]
    assert "layer1.0.relu#2" in arrays and (out / "layers" / "layer1.0.relu#2.png").is_file()
    for act in ref.layers:
        assert np.allclose(arrays[act.name], act.first.numpy(), atol=1e-4), act.name
    assert (arrays["bn1"] < 0).any()  # not overwritten by the in-place ReLU
    assert summary["preprocessing"]["mean"] == [0.5, 0.4, 0.3]
    assert len(summary["predictions"]) == 5 and summary["predictions"][0]["name"].startswith("class ")


def test_code_bearing_file_needs_trust(tmp_path):
    model = prepare(TinyResNet())
    path = tmp_path / "resnet.pt"
    torch.save(model, path)
    proc = run_inspect(str(path), "--out", str(tmp_path / "out"))
    assert_one_clear_line(proc, "trust")
    assert not (tmp_path / "out" / "summary.json").exists()


@pytest.mark.parametrize("args, words", [
    (["no_such_net"], ["no_such_net"]),
    (["demo", "/no/such/image.png"], ["/no/such/image.png"]),
    (["demo", "--mean", "0.5,0.5,0.5"], ["mean", "3 values"]),
    (["demo", "--input-size", "0,3"], ["input size"]),
    (["demo", "--device", "tpu"], ["tpu"]),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, words):
    proc = run_inspect(*args, "--out", str(tmp_path / "out"))
    assert_one_clear_line(proc, *words)


def test_wrong_input_channels_names_expected_and_given(tmp_path):
    py = tmp_path / "twochan.py"
    py.write_text(
        "from torch import nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = nn.Conv2d(2, 4, 3)\n"
        "        self.pool = nn.AdaptiveAvgPool2d(1)\n"
        "    def forward(self, x):\n"
        "        return self.pool(self.conv(x)).flatten(1)\n", encoding="utf-8")
    proc = run_inspect(f"{py}:Net", "--trust", "--out", str(tmp_path / "out"))
    assert_one_clear_line(proc, "expects 2 channels", "has 3 channels")


def test_wired_into_the_cnnviz_command(tmp_path):
    out = tmp_path / "out"
    proc = run_inspect("demo", "--out", str(out), module="cnnviz.cli")
    assert proc.returncode == 0, proc.stderr
    assert (out / "summary.json").is_file() and (out / "activations.npz").is_file()


def test_trust_covers_the_model_file_and_trust_weights_the_checkpoint(tmp_path):
    """`--trust` vouches for the user's own net.py, not for a checkpoint that can run code."""
    import argparse

    from modelzoo import TinyLeNet, write_model_py

    py = write_model_py(tmp_path)
    ckpt = tmp_path / "ckpt.pth"
    torch.save({"state_dict": prepare(TinyLeNet()).state_dict(), "args": argparse.Namespace(lr=0.1)}, ckpt)
    image = resources_dir() / "samples" / "digit.png"
    proc = run_inspect(f"{py}:Net", str(image), "--weights", str(ckpt), "--trust", "--input-size", "28,28",
                       "--out", str(tmp_path / "out"))
    assert_one_clear_line(proc, "ckpt.pth", "--trust-weights")
    proc = run_inspect(f"{py}:Net", str(image), "--weights", str(ckpt), "--input-size", "28,28",
                       "--trust-weights", "--out", str(tmp_path / "out"))
    assert_one_clear_line(proc, "net.py", "--trust")  # and the model file still needs --trust
    proc = run_inspect(f"{py}:Net", str(image), "--weights", str(ckpt), "--trust", "--trust-weights",
                       "--input-size", "28,28", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    summary, arrays, _ = read_outputs(tmp_path / "out")
    assert list(arrays)[:3] == ["conv1", "relu1", "pool1"] and summary["input_shape"] == [1, 1, 28, 28]


def test_colour_option_and_an_image_named_after_the_options(tmp_path):
    digit = resources_dir() / "samples" / "digit.png"
    proc = run_inspect("demo", "--color", "rgb", "--out", str(tmp_path / "bad"))
    assert_one_clear_line(proc, "expects 1 channel", "--color gray")
    out = tmp_path / "out"
    proc = run_inspect("demo", "--color", "gray", "--topk", "2", "--out", str(out), str(digit), module="cnnviz.cli")
    assert proc.returncode == 0, proc.stderr
    summary, arrays, _ = read_outputs(out)
    assert summary["image"] == str(digit) and summary["preprocessing"]["color"] == "gray"
    assert any("BT.601" in step for step in summary["preprocessing_steps"])
    assert len(summary["predictions"]) == 2 and summary["warnings"] == []
    proc = run_inspect("demo", "--out", str(tmp_path / "two"), str(digit), str(digit), module="cnnviz.cli")
    assert_one_clear_line(proc, "unrecognized arguments")


def test_non_finite_values_give_valid_json_and_a_warning(tmp_path):
    out = tmp_path / "out"
    proc = run_inspect("demo", "--std", "1e-45", "--out", str(out))
    assert proc.returncode == 0, proc.stderr

    def no_nan(token):
        raise AssertionError(f"summary.json holds {token}, which is not JSON")

    summary = json.loads((out / "summary.json").read_text(), parse_constant=no_nan)
    assert any(layer["nonfinite"] > 0 for layer in summary["layers"])
    assert summary["warnings"] and "NaN or infinite" in summary["warnings"][0]
    assert "warning: " in proc.stderr and "NaN or infinite" in proc.stderr and "Traceback" not in proc.stderr


def test_labels_that_do_not_fit_and_random_weights_are_warned_about(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("zero\none\n")
    proc = run_inspect("demo", "--labels", str(labels), "--out", str(tmp_path / "a"))
    assert proc.returncode == 0 and "the labels file has 2 names but the model outputs 10 classes" in proc.stderr
    py = tmp_path / "net.py"
    py.write_text("from torch import nn\n"
                  "class Net(nn.Module):\n"
                  "    def __init__(self):\n"
                  "        super().__init__()\n"
                  "        self.conv = nn.Conv2d(3, 4, 3)\n"
                  "    def forward(self, x):\n"
                  "        return self.conv(x).mean((2, 3))\n")
    proc = run_inspect(f"{py}:Net", "--trust", "--out", str(tmp_path / "b"))
    assert proc.returncode == 0 and "random weights" in proc.stderr
    assert "1 layer on" in proc.stdout and "1 mosaic in" in proc.stdout
    assert_one_clear_line(run_inspect("demo", "--out", ""), "--out is empty")


def test_a_reused_out_folder_holds_only_this_runs_mosaics(tmp_path):
    out = tmp_path / "out"
    assert run_inspect("demo", "--out", str(out)).returncode == 0
    (out / "layers" / "mine.png").write_bytes(b"the user's own file")
    py = tmp_path / "net.py"
    py.write_text("from torch import nn\n"
                  "class Net(nn.Module):\n"
                  "    def __init__(self):\n"
                  "        super().__init__()\n"
                  "        self.stem = nn.Conv2d(3, 4, 3)\n"
                  "    def forward(self, x):\n"
                  "        return self.stem(x).mean((2, 3))\n")
    proc = run_inspect(f"{py}:Net", "--trust", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    summary, _, _ = read_outputs(out)
    assert sorted(p.name for p in (out / "layers").iterdir()) == ["mine.png", "stem.png"]
    assert [layer["png"] for layer in summary["layers"]] == ["layers/stem.png"]
