"""`cnnviz convolve` end to end, in a subprocess, like a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
PHOTO = ROOT / "resources" / "samples" / "photo.png"


def cnnviz(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "cnnviz.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=120)


@pytest.fixture(scope="module")
def small_png(tmp_path_factory):
    import cv2
    p = tmp_path_factory.mktemp("img") / "small.png"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(p), (rng.random((21, 30, 3)) * 255).astype(np.uint8))
    return p


def test_convolve_npz_matches_pytorch(small_png, tmp_path):
    out = tmp_path / "o.npz"
    png = tmp_path / "o.png"
    r = cnnviz("convolve", small_png, "--kernel", "sobel-x", "--kernel", "[[0,1,0],[1,-4,1],[0,1,0]]",
               "--stride", "2", "--padding", "1", "--padding-mode", "reflect", "--activation", "relu",
               "--pool", "max", "--pool-size", "2", "--npz", out, "--png", png)
    assert r.returncode == 0, r.stderr
    assert "⌊(21 + 2·1 − 1·(3−1) − 1) / 2⌋ + 1 = 11" in r.stdout
    d = np.load(out)
    assert set(d.files) == {"conv", "activation", "pool"}
    assert d["conv"].dtype == np.float32 and d["conv"].shape == (2, 11, 15)
    assert d["pool"].shape == (2, 5, 7)
    from cnnviz.core.images import load_image
    img = load_image(small_png).pixels
    gray = img @ np.array([0.299, 0.587, 0.114], np.float32)
    t = F.pad(torch.from_numpy(gray)[None, None].double(), (1, 1, 1, 1), mode="reflect")
    w = torch.tensor([[[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]], [[[0, 1, 0], [1, -4, 1], [0, 1, 0]]]], dtype=torch.float64)
    ref = F.conv2d(t, w, stride=2)[0].numpy()
    np.testing.assert_allclose(d["conv"], ref, atol=1e-5)
    np.testing.assert_allclose(d["pool"], F.max_pool2d(F.relu(torch.from_numpy(ref)), 2).numpy(), atol=1e-5)
    import cv2
    shown = cv2.imread(str(png))
    assert shown is not None and shown.ndim == 3


def test_convolve_each_mode_shape(small_png, tmp_path):
    out = tmp_path / "e.npz"
    r = cnnviz("convolve", small_png, "-k", "sobel-pair", "--channels", "each", "--npz", out)
    assert r.returncode == 0, r.stderr
    assert np.load(out)["conv"].shape == (2, 3, 19, 28)


def test_list_presets():
    r = cnnviz("convolve", "--list-presets")
    assert r.returncode == 0 and "sobel-x" in r.stdout and "oriented-bank" in r.stdout


@pytest.mark.parametrize("args, needle", [
    (["convolve", "nope.png", "-k", "sobel-x"], "does not exist"),
    (["convolve", "{img}"], "no kernel given"),
    (["convolve", "{img}", "-k", "sobel-z"], "unknown preset"),
    (["convolve", "{img}", "-k", "[[1,2],[3]]"], "ragged"),
    (["convolve", "{img}", "-k", "[[1,2"], "not valid JSON"),
    (["convolve", "{img}", "-k", "[[1,NaN]]"], "not finite"),
    (["convolve", "{img}", "-k", "sobel-x", "--stride", "0"], "stride must be ≥ 1"),
    (["convolve", "{img}", "-k", "sobel-x", "--stride", "a"], "stride 'a' is not"),
    (["convolve", "{img}", "-k", "sobel-x", "--padding", "same", "--stride", "2"], "needs stride 1"),
    (["convolve", "{img}", "-k", "sobel-x", "--padding", "1000000000"], "use a smaller padding"),
    (["convolve", "{img}", "-k", "sobel-x", "--padding-mode", "mirror"], "invalid choice"),
    (["convolve", "{img}", "-k", "sobel-x", "--dilation", "20"], "spans 41 pixels"),
    (["convolve", "{img}", "-k", "sobel-x", "--pool", "max", "--pool-size", "2", "--pool-padding", "2"], "half the pool size"),
    (["convolve", "{img}", "-k", "sobel-x", "--bias", "nan"], "finite"),
    (["convolve", "{img}", "-k", "sobel-x", "--npz", "/nonexistent/dir/o.npz"], "does not exist"),
    (["convolve", "{img}", "-k", "sobel-x", "--npz", "out.txt"], ".npz"),
    (["convolve", "{img}", "-k", "sobel-x", "--device", "tpu"], "not known"),
    (["convolve", "{img}", "-k", "sobel-x", "-k", "box-5"], "share a size"),
    (["convolve", "{txt}", "-k", "sobel-x"], "not an image"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_one_line_exit_2(args, needle, small_png, tmp_path):
    txt = tmp_path / "fake.png"
    txt.write_text("hello, I am not a picture")
    args = [a.format(img=small_png, txt=txt) for a in args]
    r = cnnviz(*args, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert needle in lines[0]
    assert "Traceback" not in r.stderr
