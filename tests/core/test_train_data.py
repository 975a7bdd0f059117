"""Class-per-folder data: skipped files, odd folders, and `cnnviz train` / `cnnviz evaluate` agreeing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnviz.cli import main
from cnnviz.core.errors import SpecError
from cnnviz.core.train import DataSpec, ModelSpec, TrainRequest, TrainSettings, run
from cnnviz.core.train_data import load_folder_data

ROOT = Path(__file__).resolve().parents[2]


def _shape(kind: str, rng, size: int) -> np.ndarray:
    """A grey picture of a class: a horizontal bar, a vertical bar or a square, jittered."""
    img = rng.random((size, size)) * 0.2
    a = int(rng.integers(size // 4, size // 2))
    b = int(rng.integers(2, 4))
    if kind == "hbar":
        img[a:a + b, size // 8:-size // 8] = 1.0
    elif kind == "vbar":
        img[size // 8:-size // 8, a:a + b] = 1.0
    else:
        img[a:a + size // 3, a:a + size // 3] = 1.0
    return (img * 255).astype(np.uint8)


def write_classes(root: Path, n: int, seed: int, *, odd: bool = False) -> Path:
    """Three classes of ``n`` images; with ``odd`` they come in mixed sizes and modes (grey,
    RGB, palette, RGBA) and each folder gets a corrupt PNG and a text file."""
    rng = np.random.default_rng(seed)
    for kind in ("hbar", "square", "vbar"):
        d = root / kind
        d.mkdir(parents=True)
        for i in range(n):
            size = int(rng.choice([24, 32, 40])) if odd else 32
            im = Image.fromarray(_shape(kind, rng, size))
            if odd and i % 4 == 1:
                im = im.convert("RGB")
            elif odd and i % 4 == 2:
                im = im.convert("P")
            elif odd and i % 4 == 3:
                im = im.convert("RGBA")
            im.save(d / f"{i:03d}.png")
        if odd:
            (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(rng.integers(0, 256, 200, dtype=np.uint8)))
            (d / "notes.txt").write_text("not a picture")
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("shapes")
    return write_classes(base / "train", 24, 0, odd=True), write_classes(base / "unseen", 10, 1)


def test_folder_training_skips_bad_files_and_evaluate_agrees_with_the_loop(folders, tmp_path, capsys):
    train_dir, unseen = folders
    req = TrainRequest(model=ModelSpec("simplecnn"),
                       data=DataSpec(str(train_dir), val_folder=str(unseen), image_size=32),
                       settings=TrainSettings(epochs=3, batch_size=16, seed=0, device="cpu"),
                       out_dir=str(tmp_path / "run"))
    res = run(req)
    assert res.status == "finished"
    assert res.labels == ["hbar", "square", "vbar"]
    names = sorted(Path(p).name for p, _ in res.skipped)
    assert names == ["broken.png"] * 3 + ["notes.txt"] * 3
    assert any("different sizes" in n for n in res.notes) and any("grey and colour" in n for n in res.notes)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert len(info["skipped"]) == 6
    loop_acc = res.final["val_accuracy"]
    assert loop_acc > 1 / 3  # it learned something

    assert main(["evaluate", str(tmp_path / "run"), "--data", str(unseen), "--out", str(tmp_path / "ev")]) == 0
    out = capsys.readouterr().out
    acc = float(re.search(r"accuracy: ([0-9.]+) \((\d+)/30\)", out).group(1))
    assert acc == pytest.approx(loop_acc, abs=1e-4)
    cm = json.loads((tmp_path / "ev" / "confusion.json").read_text())
    assert np.trace(np.array(cm["confusion"])) == round(loop_acc * 30)
    assert np.array(cm["confusion"]).sum() == 30 and cm["labels"] == res.labels
    with Image.open(tmp_path / "ev" / "confusion.png") as im:
        assert im.size[0] > 100


def test_cli_train_lists_the_skipped_files(folders, tmp_path, capsys):
    train_dir, _ = folders
    rc = main(["train", "--model", "tinyvgg", "--data", str(train_dir), "--epochs", "1", "--image-size", "28",
               "--augment", "--out", str(tmp_path / "run")])
    assert rc == 0
    err = capsys.readouterr().err
    assert "skipped 6 file(s)" in err
    listed = [ln for ln in err.splitlines() if ln.startswith("  ")]
    assert len(listed) == 6
    assert sum("broken.png" in ln for ln in listed) == 3 and sum("notes.txt" in ln for ln in listed) == 3
    assert (tmp_path / "run" / "checkpoints" / "epoch-001.safetensors").is_file()


def test_one_image_class_empty_folder_and_loose_files_are_explained(tmp_path):
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for kind, n in (("hbar", 6), ("vbar", 1), ("empty", 0)):
        (root / kind).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(_shape(kind, rng, 16)).save(root / kind / f"{i}.png")
    (root / "stray.png").write_bytes(b"")
    data = load_folder_data(DataSpec(str(root), val_fraction=0.5), {"color": None, "size": None, "min_size": 4})
    assert data.labels == ["hbar", "vbar"]
    notes = " | ".join(data.notes)
    assert "empty" in notes and "'vbar' has only 1 image" in notes and "not in a class folder" in notes
    assert 1 in data.y_train.tolist() and 1 not in data.y_val.tolist()
    assert len(data.y_val) == 3 and len(data.y_train) == 4


def test_folders_that_cannot_train_say_why(tmp_path):
    (tmp_path / "flat").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(SpecError, match="no class sub-folders"):
        load_folder_data(DataSpec(str(tmp_path / "flat")), {})
    one = tmp_path / "one" / "cats"
    one.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(one / "a.png")
    (tmp_path / "one" / "dogs").mkdir()
    (tmp_path / "one" / "dogs" / "x.txt").write_text("hello")
    with pytest.raises(SpecError, match=r"1 class\(es\) with readable images \(1 file\(s\) skipped"):
        load_folder_data(DataSpec(str(tmp_path / "one")), {})


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "cnnviz.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


@pytest.mark.parametrize("args, words", [
    (["train", "--model", "nosuchnet", "--out", "{tmp}/r"], "not a model cnnviz can train"),
    (["train", "--lr", "-1", "--out", "{tmp}/r"], "must be a positive number"),
    (["train", "--data", "{tmp}/missing", "--out", "{tmp}/r"], "is not a folder"),
    (["train", "--model", "{tmp}/net.py:Net", "--out", "{tmp}/r"], "does not exist"),
    (["evaluate", "{tmp}", "--data", "digits"], "not a cnnviz training checkpoint"),
    (["evaluate", "demo", "--data", "{tmp}/missing"], "is not a folder"),
])
def test_cli_bad_input_is_one_line_and_exit_2(args, words, tmp_path):
    r = _cli(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_transfer_learning_run_on_a_folder_reloads_from_its_checkpoint(folders, tmp_path):
    import torch

    from cnnviz.core.models import load_model

    train_dir, unseen = folders
    req = TrainRequest(model=ModelSpec("resnet18", freeze="frozen"),
                       data=DataSpec(str(train_dir), val_folder=str(unseen), image_size=32),
                       settings=TrainSettings(epochs=1, batch_size=32, seed=0, device="cpu"),
                       out_dir=str(tmp_path / "run"))
    res = run(req)
    assert res.status == "finished"
    meta = json.loads((tmp_path / "run" / "checkpoints" / "epoch-001.json").read_text())
    assert meta["preprocessing"]["color"] == "rgb" and meta["preprocessing"]["mean"] == [0.485, 0.456, 0.406]
    loaded = load_model(str(tmp_path / "run"))  # the inspector's loader: weights only
    assert loaded.labels == ["hbar", "square", "vbar"]
    x = torch.randn(2, 3, 32, 32)
    res.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), res.model(x))
