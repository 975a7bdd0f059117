"""Dataset examples ("top 9") against a brute-force reference: every image's activations
computed with a plain forward hook, every channel's images sorted in the test."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnviz.core import dataset_examples as dx
from cnnviz.core.images import save_png
from cnnviz.core.taskstate import Cancelled, TaskState


@pytest.fixture(scope="module")
def demo():
    from cnnviz.core.demo import load_demo_model

    return load_demo_model()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """23 usable images (digits, noise, duplicates and black images: ties) in two sub-folders,
    plus a corrupt PNG, a text file and one image over the size limit."""
    from cnnviz.core.demo import load_digits_split

    root = tmp_path_factory.mktemp("images")
    (root / "b").mkdir()
    _, _, x_test, _ = load_digits_split()
    rng = np.random.default_rng(0)
    for i in range(12):
        save_png(root / f"digit_{i:02d}.png", np.repeat((x_test[i] * 255).astype(np.uint8)[:, :, None], 3, 2))
    for i in range(5):
        save_png(root / "b" / f"noise_{i}.png", rng.integers(0, 256, (40, 30, 3), dtype=np.uint8))
    for i in range(3):  # identical black images: equal activations everywhere
        save_png(root / "b" / f"black_{i}.png", np.zeros((28, 28, 3), np.uint8))
    for i in range(3):  # duplicates of digit 0, under other names
        (root / f"dup_{i}.png").write_bytes((root / "digit_00.png").read_bytes())
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (root / "notes.txt").write_text("not an image")
    save_png(root / "huge.png", np.zeros((200, 200, 3), np.uint8))  # over max_pixels below
    return root


MAX_PIXELS = 100 * 100


def brute_force(model, folder, layer):
    """(paths, values (N, C), units (N, C, 2)) with one plain hook, one image at a time."""
    from cnnviz.core.images import load_image

    net = model.module
    paths, vals, units = [], [], []
    store = {}
    handle = net.get_submodule(layer).register_forward_hook(lambda m, i, o: store.__setitem__("a", o.detach().clone()))
    try:
        for p in sorted(folder.rglob("*"), key=lambda q: q.relative_to(folder).as_posix()):
            if not p.is_file():
                continue
            try:
                img = load_image(p, max_pixels=MAX_PIXELS)
            except Exception:
                continue
            with torch.no_grad():
                net(model.preprocessing.apply(img.pixels))
            a = store["a"][0]  # (C, H, W)
            flat = a.reshape(a.shape[0], -1)
            v, pos = flat.max(1)
            paths.append(str(p))
            vals.append(v.numpy())
            units.append(np.stack([pos.numpy() // a.shape[-1], pos.numpy() % a.shape[-1]], -1))
    finally:
        handle.remove()
    return paths, np.stack(vals), np.stack(units)


@pytest.mark.filterwarnings("ignore:TF32 acceleration")
@pytest.mark.parametrize("k", [1, 9])
@pytest.mark.parametrize("layer", ["relu2", "conv3"])
def test_top_k_equals_brute_force(demo, folder, layer, k, tmp_path):
    # oneDNN picks its convolution algorithm by batch size, so a batch of 4 and a batch of 1
    # can differ in the last bit; PyTorch's own convolution computes every image alike, which
    # makes "exactly" a fair demand of the bookkeeping.
    with torch.backends.mkldnn.flags(enabled=False):
        req = dx.SweepRequest(folder, (layer,), k=k, batch_size=4, max_pixels=MAX_PIXELS)
        res = dx.run(demo, req, cache_folder=tmp_path)
        paths, vals, units = brute_force(demo, folder, layer)
    ex = res.layers[layer]
    assert res.processed == len(paths) == 23
    assert sorted(p for p, _ in res.skipped) == sorted(str(folder / n) for n in ("broken.png", "huge.png", "notes.txt"))
    ties = 0
    for c in range(ex.channels):
        order = sorted(range(len(paths)), key=lambda i: (-float(vals[i, c]), i))[:k]
        got = [res.items[i] for i in ex.items[c]]
        assert got == [paths[i] for i in order], c
        np.testing.assert_array_equal(ex.values[c], vals[order, c])  # exactly
        np.testing.assert_array_equal(ex.units[c], units[order, c])
        ties += len(set(vals[order, c].tolist())) < len(order)
    if k == 9:
        assert ties > 0  # the black images and duplicates make ties: the rule was exercised


def test_tie_rule_by_sweep_order():
    """Equal values: the earlier image first, whatever the order the candidates come in."""
    v = torch.tensor([[1.0, 2.0]])
    it = torch.tensor([[7, 3]])
    un = torch.zeros(1, 2, 2, dtype=torch.int64)
    nv = torch.tensor([[2.0, 2.0, float("nan"), 1.0]])
    ni = torch.tensor([[5, 1, 0, 2]])
    nu = torch.arange(8).view(1, 4, 2)
    tv, ti, tu = dx.topk_update(v, it, un, nv, ni, nu, 5)
    assert ti.tolist() == [[1, 3, 5, 2, 7]]
    assert tv.tolist() == [[2.0, 2.0, 2.0, 1.0, 1.0]]


def test_cached_resumed_and_crops(demo, folder, tmp_path):
    req = dx.SweepRequest(folder, ("relu4",), k=3, batch_size=4, max_pixels=MAX_PIXELS)
    state = TaskState()
    calls = []

    def on_progress(p, status):
        calls.append(status)
        if len(calls) == 2:
            state.cancel()

    state.on_progress = on_progress
    with pytest.raises(Cancelled):
        dx.run(demo, req, state, cache_folder=tmp_path, checkpoint_every=1)
    assert "ETA" in calls[0]
    resumed = dx.run(demo, req, cache_folder=tmp_path)
    assert resumed.resumed_from == 8 and not resumed.cached
    fresh = dx.run(demo, req, cache=False)
    for a, b in ((resumed.layers["relu4"], fresh.layers["relu4"]),):
        np.testing.assert_array_equal(a.values, b.values)
        np.testing.assert_array_equal(a.items, b.items)
        np.testing.assert_array_equal(a.boxes, b.boxes)
    assert sorted(resumed.skipped) == sorted(fresh.skipped)
    again = dx.run(demo, req, cache_folder=tmp_path)
    assert again.cached and again.layers["relu4"].items.tolist() == fresh.layers["relu4"].items.tolist()
    # the crop box is the winning unit's receptive field (relu4: 14x14 map, 10x10 field, stride 2)
    from cnnviz.core.explain import receptive_field, theoretical_rf_box

    rf = receptive_field(demo, (1, 1, 28, 28))["relu4"]
    ex = fresh.layers["relu4"]
    assert tuple(ex.boxes[0, 0]) == theoretical_rf_box(rf, tuple(ex.units[0, 0]), (28, 28))
    crop = dx.crop_of(fresh, "relu4", 0, 0, demo.preprocessing)
    y0, x0, y1, x1 = ex.boxes[0, 0]
    assert crop.shape == (y1 - y0, x1 - x0, 1)


def test_bad_requests(demo, folder, tmp_path):
    with pytest.raises(dx.DatasetExamplesError, match="no spatial maps.*choose a convolutional layer"):
        dx.run(demo, dx.SweepRequest(folder, ("fc1",), max_pixels=MAX_PIXELS), cache=False)
    res = dx.run(demo, dx.SweepRequest(folder, ("fc1",), k=2, crops=False, max_pixels=MAX_PIXELS), cache=False)
    assert res.layers["fc1"].values.shape == (64, 2)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.txt").write_text("x")
    with pytest.raises(dx.DatasetExamplesError, match="none of the 1 files could be used"):
        dx.run(demo, dx.SweepRequest(tmp_path / "junk", ("conv1",)), cache=False)
    with pytest.raises(dx.DatasetExamplesError, match="does not exist"):
        dx.run(demo, dx.SweepRequest(tmp_path / "nope", ("conv1",)), cache=False)


def test_video_frames(demo, tmp_path):
    import cv2

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 32))
    for i in range(6):
        frame = np.zeros((32, 32, 3), np.uint8)
        frame[:, : 4 + 4 * i] = 255  # more white every frame
        writer.write(frame)
    writer.release()
    res = dx.run(demo, dx.SweepRequest(path, ("conv1",), k=2, batch_size=4, video_every=2), cache=False)
    assert res.items == [f"{path}#frame={i}" for i in (0, 2, 4)]
    assert res.processed == 3 and not res.skipped
    assert dx.item_input(res.items[1], demo.preprocessing).shape == (28, 28, 1)


def test_an_image_the_model_cannot_take_is_skipped_not_fatal(tmp_path):
    """No resize in the preprocessing: a 2x2 image is too small for a 3x3 convolution without
    padding; it is skipped with the model's reason, the images batched with it still count."""
    from torch import nn

    from cnnviz.core.models import LoadedModel, Preprocessing

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).eval()
    model = LoadedModel(module=net, kind="python", name="t", source="t", preprocessing=Preprocessing(),
                        labels=None, input_channels=3)
    rng = np.random.default_rng(1)
    for i in range(3):
        save_png(tmp_path / f"a{i}.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    save_png(tmp_path / "a1_tiny.png", rng.integers(0, 256, (2, 2, 3), dtype=np.uint8))
    save_png(tmp_path / "b_other.png", rng.integers(0, 256, (2, 2, 3), dtype=np.uint8))
    res = dx.run(model, dx.SweepRequest(tmp_path, ("1",), k=2, batch_size=8), cache=False)
    assert res.processed == 3
    assert sorted(p.rsplit("/", 1)[-1] for p, _ in res.skipped) == ["a1_tiny.png", "b_other.png"]
    assert all("kernel size can't be greater" in r or "too small" in r or "size" in r for _, r in res.skipped)
    with pytest.raises(Exception, match="no layer named 'nope'"):
        dx.run(model, dx.SweepRequest(tmp_path, ("nope",)), cache=False)


@pytest.mark.filterwarnings("ignore:TF32 acceleration")
def test_live_stream_top_k_equals_folder_sweep_and_keeps_only_top_pictures(demo, folder, tmp_path):
    from cnnviz.core.images import load_image

    with torch.backends.mkldnn.flags(enabled=False):
        req = dx.SweepRequest(folder, ("relu2",), k=3, batch_size=1, max_pixels=MAX_PIXELS)
        ref = dx.run(demo, req, cache=False)
        used = [p for p in ref.items if p not in {s for s, _ in ref.skipped}]
        frames = ((p, load_image(p).pixels) for p in used)
        live = dx.run_stream(demo, frames, ("relu2", "fc1"), k=3)
    assert live.items == used and live.processed == len(used)
    a, b = ref.layers["relu2"], live.layers["relu2"]
    for c in range(a.channels):
        assert [ref.items[i] for i in a.items[c]] == [live.items[i] for i in b.items[c]], c
        np.testing.assert_array_equal(a.values[c], b.values[c])
        np.testing.assert_array_equal(a.units[c], b.units[c])
        # the same receptive-field boxes, so the same crops
        np.testing.assert_array_equal(a.boxes[c], b.boxes[c])
    assert (b.boxes[b.items >= 0] >= 0).all() and (b.boxes[:, :, 2] > b.boxes[:, :, 0])[b.items >= 0].all()
    assert (live.layers["fc1"].boxes == -1).all()  # a vector layer: whole frames
    for c, rank in ((0, 0), (5, 2)):
        i = int(b.items[c, rank])
        folder_crop = dx.crop_of(ref, "relu2", c, rank, demo.preprocessing)
        y0, x0, y1, x1 = b.boxes[c, rank]
        live_crop = dx.pixels_input(live.pictures[i], demo.preprocessing)[y0:y1, x0:x1]
        np.testing.assert_array_equal(live_crop, folder_crop)
    # only the frames in some channel's top-k keep their picture, and they are the frames' pixels
    kept = {int(i) for ex in live.layers.values() for i in ex.items.flatten() if i >= 0}
    assert set(live.pictures) == kept
    assert len(live.pictures) <= (b.channels + live.layers["fc1"].channels) * 3
    assert len(live.pictures) < len(used)  # others dropped
    for i, pix in live.pictures.items():
        np.testing.assert_array_equal(pix, load_image(live.items[i]).pixels)


def test_live_stream_from_a_synthetic_source_stops_after_n_frames_or_on_cancel(demo):
    import threading

    from cnnviz.core.sources.synthetic import SyntheticSource

    def stream(src):
        last = None
        while True:
            f = src.snapshot()
            if f is not None and f.id != last:
                last = f.id
                yield f"frame {f.id}", f.pixels
            else:
                threading.Event().wait(0.002)  # the next frame is not there yet

    with SyntheticSource(64, 48, fps=200) as src:
        res = dx.run_stream(demo, stream(src), ("relu2",), k=2, max_frames=5)
        assert len(res.items) == 5 and res.processed == 5
        assert all(p.shape == (48, 64, 3) for p in res.pictures.values()) and res.pictures
        st = TaskState()

        def cancelling():
            for n, item in enumerate(stream(src)):
                if n == 3:
                    st.cancel()
                yield item

        res2 = dx.run_stream(demo, cancelling(), ("relu2",), k=2, state=st, max_frames=100)
        assert len(res2.items) == 3
