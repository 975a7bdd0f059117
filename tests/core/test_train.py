"""Training: determinism, the kernel movie, the faults (NaN, full disk, stop), the built models."""

from __future__ import annotations

import errno
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from cnnviz.core import train as T
from cnnviz.core.errors import CnnvizError, SpecError
from cnnviz.core.train import DataSpec, ModelSpec, TrainRequest, TrainSettings, TrainState, run
from cnnviz.core.train_models import build_model, find_checkpoint, load_checkpoint


def _req(tmp_path, name="run", epochs=1, **settings):
    return TrainRequest(model=ModelSpec("simplecnn"), data=DataSpec("digits"),
                        settings=TrainSettings(epochs=epochs, device="cpu", **settings),
                        out_dir=str(tmp_path / name) if tmp_path is not None else None)


def _no_temp_files(folder):
    return [p.name for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_same_seed_same_metrics_other_seed_other_metrics(tmp_path):
    a = run(_req(tmp_path, "a", seed=3))
    b = run(_req(tmp_path, "b", seed=3))
    c = run(_req(None, seed=4))
    assert a.status == b.status == "finished"
    assert a.metrics[0]["val_loss"] == b.metrics[0]["val_loss"]
    assert a.metrics[0]["train_loss"] == b.metrics[0]["train_loss"]
    assert (tmp_path / "a" / "metrics.csv").read_text().splitlines()[1].split(",")[:6] == \
        (tmp_path / "b" / "metrics.csv").read_text().splitlines()[1].split(",")[:6]
    assert c.metrics[0]["train_loss"] != a.metrics[0]["train_loss"]
    # the run learned something in one epoch (10 classes: chance is 10 %)
    assert a.metrics[0]["val_accuracy"] > 0.5


def test_kernel_movie_starts_at_the_initial_weights_and_ends_at_the_final_checkpoint(tmp_path):
    state = TrainState()
    res = run(_req(tmp_path, epochs=2, seed=7), state)
    movie = T.load_movie(tmp_path / "run")
    frames = movie["frames"]
    torch.manual_seed(7)
    fresh = build_model(ModelSpec("simplecnn"), 1, 10, (28, 28))
    np.testing.assert_array_equal(frames[0], fresh.conv1.weight.detach().numpy())
    final = load_file(str(tmp_path / "run" / "checkpoints" / "epoch-002.safetensors"))["conv1.weight"].numpy()
    np.testing.assert_array_equal(frames[-1], final)
    assert frames.shape[1:] == (32, 1, 3, 3)
    assert movie["steps"][0] == 0 and movie["steps"][-1] == res.steps
    assert np.all(np.diff(movie["steps"]) > 0)
    assert not np.array_equal(frames[0], frames[-1])  # the filters learned
    gif = T.export_movie(tmp_path / "run", tmp_path / "movie.gif", fps=20)
    from PIL import Image

    with Image.open(gif) as im:
        assert im.n_frames == len(frames)
    mp4 = T.export_movie(tmp_path / "run" / "kernels.npz", tmp_path / "movie.mp4")
    import cv2

    cap = cv2.VideoCapture(str(mp4))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(frames)
    cap.release()
    with pytest.raises(CnnvizError, match=r"\.gif or \.mp4"):
        T.export_movie(tmp_path / "run", tmp_path / "movie.avi")


def test_checkpoint_reloads_to_the_same_predictions(tmp_path):
    res = run(_req(tmp_path, seed=1))
    with pytest.raises(SpecError, match="already holds a training run"):
        run(_req(tmp_path, seed=2))  # a second run never mixes with (or overwrites) the first
    loaded = load_checkpoint(tmp_path / "run")
    assert loaded.labels == [str(i) for i in range(10)]
    assert loaded.preprocessing.color == "gray"
    x = torch.from_numpy(np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32))
    res.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), res.model(x))
    meta = json.loads((tmp_path / "run" / "checkpoints" / "epoch-001.json").read_text())
    assert meta["architecture"]["model"] == "simplecnn" and meta["epoch"] == 1
    assert find_checkpoint(tmp_path / "run" / "checkpoints" / "epoch-001.safetensors") is not None
    # the inspector's loader opens a run folder or checkpoint weights-only: no trust needed
    from cnnviz.core.models import load_model

    for spec in (tmp_path / "run", tmp_path / "run" / "checkpoints" / "epoch-001.safetensors"):
        via = load_model(str(spec), trust=False)
        assert via.kind == "checkpoint" and via.labels == loaded.labels
        with torch.no_grad():
            torch.testing.assert_close(via.module(x), res.model(x))


BOOM = '''
import torch
from torch import nn

class Boom(nn.Module):
    """Fine for 50 training steps, then its output is NaN (as if the weights had blown up)."""
    def __init__(self, n_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4, n_classes)
        self.calls = 0
    def forward(self, x):
        if self.training:
            self.calls += 1
        y = self.fc(self.conv(x).relu().mean((2, 3)))
        return y * float("nan") if self.calls > 50 else y
'''


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    py = tmp_path / "boom.py"
    py.write_text(BOOM)
    req = TrainRequest(model=ModelSpec(f"{py}:Boom", trust=True), data=DataSpec("digits"),
                       settings=TrainSettings(epochs=3, device="cpu", batch_size=32), out_dir=str(tmp_path / "run"))
    res = run(req)  # 43 steps per epoch: the 51st step is in epoch 2
    assert res.status == "nan"
    assert "step 51" in res.message and "epoch 2" in res.message
    assert "lower the learning rate" in res.message
    assert res.epochs_done == 1
    assert res.checkpoint.endswith("epoch-001.json")
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert ckpts == ["epoch-001.json", "epoch-001.safetensors"]
    assert torch.isfinite(load_file(str(tmp_path / "run" / "checkpoints" / "epoch-001.safetensors"))["fc.weight"]).all()


def test_python_class_needs_trust(tmp_path):
    py = tmp_path / "boom.py"
    py.write_text(BOOM)
    req = TrainRequest(model=ModelSpec(f"{py}:Boom", trust=False), data=DataSpec("digits"),
                       settings=TrainSettings(epochs=1, device="cpu"))
    with pytest.raises(CnnvizError, match="trust"):
        run(req)


def test_full_disk_keeps_the_previous_checkpoint_and_says_so(tmp_path, monkeypatch):
    real = T._write_all

    def failing(fh, data, path):
        if "epoch-002" in path.name:
            fh.write(data[: len(data) // 2])  # half of it lands, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fh, data, path)

    monkeypatch.setattr(T, "_write_all", failing)
    res = run(_req(tmp_path, epochs=3))
    assert res.status == "write_failed"
    assert "No space left on device" in res.message and "epoch-001" in res.message
    folder = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-001.json", "epoch-001.safetensors"]
    assert _no_temp_files(tmp_path / "run") == []
    assert res.checkpoint.endswith("epoch-001.json")
    load_checkpoint(tmp_path / "run")  # the survivor is whole


def test_full_disk_on_the_json_removes_the_orphan_weights(tmp_path, monkeypatch):
    real = T._write_all

    def failing(fh, data, path):
        if "epoch-001.json" in path.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fh, data, path)

    monkeypatch.setattr(T, "_write_all", failing)
    res = run(_req(tmp_path, epochs=2))
    assert res.status == "write_failed" and "no checkpoint was saved" in res.message
    assert list((tmp_path / "run" / "checkpoints").iterdir()) == []


def test_stop_mid_epoch_leaves_no_half_written_file(tmp_path):
    state = TrainState()

    def on_partial(value):
        if isinstance(value, T.Snapshot) and value.step >= 60:  # epoch 2 of 43-step epochs
            state.cancel()

    state.on_partial = on_partial
    res = run(_req(tmp_path, epochs=5), state)
    assert res.status == "stopped" and res.epochs_done == 1
    assert "stopped" in res.message
    assert _no_temp_files(tmp_path / "run") == []
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["epoch-001.json",
                                                                                    "epoch-001.safetensors"]
    movie = T.load_movie(tmp_path / "run")
    assert movie["steps"][-1] == res.steps


def test_pause_blocks_the_loop_until_resumed(tmp_path):
    import threading

    state = TrainState()
    seen = []

    def on_partial(value):
        if isinstance(value, T.Snapshot):
            seen.append(value.step)
            if value.step == 5:
                state.pause()

    state.on_partial = on_partial
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", run(_req(None, snapshot_every=5), state)))
    t.start()
    for _ in range(400):
        if state.paused and seen and seen[-1] == 5:
            break
        t.join(0.01)
    n = len(seen)
    t.join(0.3)
    assert t.is_alive() and len(seen) == n  # paused: no step taken
    state.resume()
    t.join(60)
    assert not t.is_alive() and out["r"].status == "finished" and seen[-1] > 5


def test_stop_while_paused_ends_the_run_without_a_resume():
    state = TrainState()

    def on_partial(value):
        if isinstance(value, T.Snapshot) and value.step == 5:
            state.pause()
            state.cancel()  # the user presses Stop while the run is paused

    state.on_partial = on_partial
    res = run(_req(None, snapshot_every=5), state)  # would hang here if the pause outlived the stop
    assert res.status == "stopped" and res.steps == 5 and res.epochs_done == 0
    assert state.frame_steps[-1] == 5


@pytest.mark.parametrize("bad, match", [
    (dict(lr=-1.0), "learning rate"), (dict(lr=float("nan")), "learning rate"),
    (dict(batch_size=0), "batch size"), (dict(epochs=0), "epochs"), (dict(optimizer="rmsprop"), "optimizer"),
])
def test_bad_settings_are_refused_before_anything_runs(bad, match, tmp_path):
    with pytest.raises(SpecError, match=match):
        run(_req(tmp_path, **bad))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name, size", [("lenet5", (28, 28)), ("tinyvgg", (28, 28)), ("simplecnn", (40, 24)),
                                        ("demo", (28, 28))])
def test_builtin_models_adapt_to_the_input(name, size):
    m = build_model(ModelSpec(name), 1, 7, size)
    assert m(torch.zeros(2, 1, *size)).shape == (2, 7)


def test_transfer_learning_freezes_the_backbone_as_asked():
    def trainable(freeze):
        m = build_model(ModelSpec("resnet18", freeze=freeze), 3, 4, (32, 32))
        return {n for n, p in m.named_parameters() if p.requires_grad}, m

    frozen, m = trainable("frozen")
    assert frozen == {"fc.weight", "fc.bias"}
    assert m(torch.zeros(2, 3, 32, 32)).shape == (2, 4)
    partial, m = trainable("partial")
    everything, _ = trainable("none")
    assert frozen < partial < everything
    assert "conv1.weight" not in partial and "layer4.1.conv2.weight" in partial
    with pytest.raises(SpecError, match="did you mean resnet18"):
        build_model(ModelSpec("resnet81"), 3, 4, (32, 32))


def test_transfer_learning_starts_from_the_given_weights(tmp_path):
    import torchvision
    from safetensors.torch import save_file

    src = torchvision.models.resnet18()
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "r18.safetensors"))
    m = build_model(ModelSpec("resnet18", pretrained=str(tmp_path / "r18.safetensors")), 3, 4, (32, 32))
    torch.testing.assert_close(m.conv1.weight, src.conv1.weight)
    assert m.fc.out_features == 4


def test_the_lesson_puts_hand_made_kernels_the_size_of_simplecnns_first_layer():
    from cnnviz.core.lessons import lesson, playground_request

    les = lesson("filters-learn-themselves")
    req = playground_request(les)
    assert [k.name for k in req.kernels] == ["Sobel x", "Sobel y"] or len(req.kernels) == 2
    conv = build_model(ModelSpec("simplecnn"), 1, 10, (28, 28)).conv1
    assert all(k.weights.shape == tuple(conv.weight.shape[-2:]) for k in req.kernels)
    assert "Train a CNN" in les.text
