"""Loading models in every format, safely: what a user would notice when opening a model.

Every format round-trips on the small models of ``modelzoo`` (outputs equal the original's);
files that can run code are refused without trust and nothing from them runs; damaged or
hostile files get a message instead of a traceback or a huge allocation.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import socket
import struct
import sys
import threading
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from modelzoo import DictNet, TinyLeNet, TinyResNet, TupleNet, example_input, prepare, write_model_py

from cnnviz.core import models
from cnnviz.core.errors import ModelLoadError, SettingsError, SpecError, TrustRequired
from cnnviz.core.models import (
    LoadedModel,
    Preprocessing,
    detect_format,
    load_labels,
    load_model,
    load_state_dict_file,
    move_model,
    resolve_device,
)
from cnnviz.core.trust import TrustStore, file_sha256

pytestmark = pytest.mark.filterwarnings(
    "ignore::FutureWarning", "ignore::DeprecationWarning", "ignore:Detected pickle protocol 4:UserWarning"
)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """No test here may reach the network: any socket connection fails loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(autouse=True)
def torch_home(tmp_path, monkeypatch):
    """torchvision's weights cache lives in the test's folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home"


def outputs_equal(a, b, atol=1e-5):
    if isinstance(a, torch.Tensor):
        return torch.allclose(a, b, atol=atol)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(outputs_equal(x, y, atol) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(outputs_equal(a[k], b[k], atol) for k in a)
    raise TypeError(type(a))


def run(loaded: LoadedModel, x: torch.Tensor):
    with torch.inference_mode():
        return loaded.module(x)


# -------------------------------------------------------------------------------------------
# Payloads: objects whose unpickling writes a marker file. If the marker appears, code ran.
# -------------------------------------------------------------------------------------------


class EvalPayload:
    """Unpickling calls builtins.eval, which writes the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (eval, (f"__import__('pathlib').Path({self.marker!r}).write_text('ran')",))


class ExecPayload:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"__import__('pathlib').Path({self.marker!r}).write_text('ran')",))


def hostile_files(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    """name -> (file, marker) for several ways a payload can hide in a 'weights' file."""
    sd = prepare(TinyLeNet()).state_dict()
    out = {}
    m = tmp_path / "m_zip"
    torch.save({"state_dict": sd, "extra": EvalPayload(m)}, tmp_path / "ckpt_eval.pth")
    out["zip-eval"] = (tmp_path / "ckpt_eval.pth", m)
    m = tmp_path / "m_legacy"
    torch.save({"state_dict": sd, "x": ExecPayload(m)}, tmp_path / "legacy.pth",
               _use_new_zipfile_serialization=False)
    out["legacy-exec"] = (tmp_path / "legacy.pth", m)
    m = tmp_path / "m_raw"
    (tmp_path / "raw.pkl").write_bytes(pickle.dumps(ExecPayload(m), protocol=4))
    out["raw-pickle-p4"] = (tmp_path / "raw.pkl", m)
    m = tmp_path / "m_raw0"
    (tmp_path / "raw0.pt").write_bytes(pickle.dumps(EvalPayload(m), protocol=0))
    out["raw-pickle-p0"] = (tmp_path / "raw0.pt", m)
    m = tmp_path / "m_numpy"  # numpy arrays are allowed in weights; an object array's items are not
    torch.save({"state_dict": sd, "acc": np.float64(0.9), "items": np.array([EvalPayload(m), 1], dtype=object)},
               tmp_path / "numpy_object.pth")
    out["numpy-object-array"] = (tmp_path / "numpy_object.pth", m)
    return out


# -------------------------------------------------------------------------------------------
# Detection by content
# -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One file of every format, each under a misleading extension."""
    d = tmp_path_factory.mktemp("formats")
    net = prepare(TinyResNet(), seed=3)
    x = example_input(net)
    files = {}
    torch.save(net.state_dict(), d / "state_dict.pt2")
    files["state_dict"] = d / "state_dict.pt2"
    torch.save(net.state_dict(), d / "legacy_sd.safetensors", _use_new_zipfile_serialization=False)
    files["state_dict_legacy"] = d / "legacy_sd.safetensors"
    from safetensors.torch import save_file

    save_file(net.state_dict(), d / "weights.pt")
    files["safetensors"] = d / "weights.pt"
    torch.jit.save(torch.jit.script(net), d / "scripted.safetensors")
    files["torchscript"] = d / "scripted.safetensors"
    torch.jit.save(torch.jit.trace(net, x), d / "traced.pth")
    files["torchscript_traced"] = d / "traced.pth"
    torch.export.save(torch.export.export(net, (x,)), d / "program.pth")
    files["export"] = d / "program.pth"
    torch.save(net, d / "whole_model.safetensors")
    files["pickle"] = d / "whole_model.safetensors"
    py = write_model_py(d, "model_code.txt")
    files["python"] = py
    return types.SimpleNamespace(dir=d, net=net, x=x, files=files)


@pytest.mark.parametrize(
    "key, expected",
    [
        ("state_dict", "state_dict"),
        ("state_dict_legacy", "state_dict"),
        ("safetensors", "safetensors"),
        ("torchscript", "torchscript"),
        ("torchscript_traced", "torchscript"),
        ("export", "export"),
        ("pickle", "pickle"),
        ("python", "python"),
    ],
)
def test_detect_format_reads_content_not_extension(saved, key, expected):
    assert detect_format(saved.files[key]) == expected


def test_checkpoint_dicts_are_state_dicts(tmp_path):
    sd = prepare(TinyLeNet()).state_dict()
    torch.save({"state_dict": sd, "epoch": 3, "best": 0.91, "note": "x"}, tmp_path / "a.ckpt")
    torch.save({"model": sd, "optimizer": {"lr": 0.1}}, tmp_path / "b.bin")
    assert detect_format(tmp_path / "a.ckpt") == "state_dict"
    assert detect_format(tmp_path / "b.bin") == "state_dict"


def test_random_bytes_empty_and_text_get_a_message(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "random.pth").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "notes.pt").write_text("these are my notes about the model\n")
    with pytest.raises(ModelLoadError, match="not a model or weights file"):
        detect_format(tmp_path / "random.pth")
    with pytest.raises(ModelLoadError, match="empty"):
        detect_format(tmp_path / "empty.pt")
    with pytest.raises(ModelLoadError, match="not a model or weights file"):
        load_model(str(tmp_path / "notes.pt"))
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "missing.pt"))
    with pytest.raises(ModelLoadError, match="folder"):
        detect_format(tmp_path)


@pytest.mark.parametrize("key", ["state_dict", "torchscript", "export", "pickle"])
def test_truncated_archive_gets_a_message(saved, tmp_path, key):
    data = saved.files[key].read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated or damaged"):
        load_model(str(cut), trust=True)


def test_truncated_legacy_file_gets_a_message(saved, tmp_path):
    data = saved.files["state_dict_legacy"].read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[:20])
    with pytest.raises(ModelLoadError):
        load_state_dict_file(cut)


def test_zip_that_is_not_pytorch(tmp_path):
    with zipfile.ZipFile(tmp_path / "photos.pt", "w") as zf:
        zf.writestr("cat.txt", "meow")
    with pytest.raises(ModelLoadError, match="zip archive but not one PyTorch wrote"):
        detect_format(tmp_path / "photos.pt")


# -------------------------------------------------------------------------------------------
# Round trips: outputs after loading equal the original model's
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["torchscript", "torchscript_traced", "export", "pickle"])
def test_model_files_round_trip_with_trust(saved, key):
    loaded = load_model(str(saved.files[key]), trust=True)
    assert loaded.kind == ("torchscript" if key.startswith("torchscript") else key)
    assert loaded.input_channels == 3
    with torch.inference_mode():
        expected = saved.net(saved.x)
    assert outputs_equal(run(loaded, saved.x), expected)
    if key == "export":
        assert isinstance(loaded.exported, torch.export.ExportedProgram)
        assert loaded.input_size == (32, 32)
        assert loaded.preprocessing.resize == (32, 32)
    else:
        assert loaded.exported is None
        assert not loaded.module.training


@pytest.mark.parametrize("cls", [TupleNet, DictNet])
def test_tuple_and_dict_outputs_survive_every_format(tmp_path, cls):
    net = prepare(cls(), seed=5)
    x = example_input(net)
    with torch.inference_mode():
        expected = net(x)
    torch.jit.save(torch.jit.script(net), tmp_path / "s.pt")
    torch.export.save(torch.export.export(net, (x,)), tmp_path / "e.pt2")
    torch.save(net, tmp_path / "p.pt")
    for name in ("s.pt", "e.pt2", "p.pt"):
        loaded = load_model(str(tmp_path / name), trust=True)
        assert outputs_equal(run(loaded, x), expected), name


def test_python_class_with_kwargs_and_state_dict(tmp_path):
    ref = prepare(TinyLeNet(in_ch=3, n_classes=7), seed=11)
    torch.save(ref.state_dict(), tmp_path / "w.pth")
    py = write_model_py(tmp_path)
    loaded = load_model(f"{py}:Net", weights=str(tmp_path / "w.pth"), trust=True,
                        ctor_kwargs='{"in_ch": 3, "n_classes": 7}')
    x = example_input(ref)
    assert loaded.kind == "python"
    assert loaded.input_channels == 3
    assert loaded.labels is None
    assert loaded.preprocessing.color == "rgb"
    assert outputs_equal(run(loaded, x), ref(x))


def test_python_class_with_safetensors_and_dict_kwargs(tmp_path):
    from safetensors.torch import save_file

    ref = prepare(TinyLeNet(), seed=12)
    save_file(ref.state_dict(), tmp_path / "w.safetensors")
    py = write_model_py(tmp_path)
    loaded = load_model(f"{py}:Net", weights=str(tmp_path / "w.safetensors"), trust=True,
                        ctor_kwargs={"n_classes": 10})
    x = example_input(ref)
    assert outputs_equal(run(loaded, x), ref(x))
    assert loaded.input_channels == 1
    assert loaded.preprocessing.color == "gray"  # one input channel: feed gray


@pytest.mark.parametrize("wrap", ["state_dict", "model", "module_prefix", "legacy", "pickled_module"])
def test_checkpoint_variants_load_as_weights(tmp_path, wrap):
    ref = prepare(TinyLeNet(), seed=13)
    sd = ref.state_dict()
    f = tmp_path / "ckpt.pth"
    if wrap == "state_dict":
        torch.save({"state_dict": sd, "epoch": 7}, f)
    elif wrap == "model":
        torch.save({"model": sd, "optimizer": {"lr": 0.01}}, f)
    elif wrap == "module_prefix":  # saved from nn.DataParallel
        torch.save({f"module.{k}": v for k, v in sd.items()}, f)
    elif wrap == "legacy":
        torch.save(sd, f, _use_new_zipfile_serialization=False)
    else:  # whole model: weights can be taken from it, but only with trust
        torch.save(ref, f)
        with pytest.raises(TrustRequired):
            load_model(f"{write_model_py(tmp_path)}:Net", weights=str(f), trust=False,
                       trust_store=TrustStore(tmp_path / "t.json"))
    loaded = load_model(f"{write_model_py(tmp_path)}:Net", weights=str(f), trust=True)
    x = example_input(ref)
    assert outputs_equal(run(loaded, x), ref(x))


def test_torchscript_with_replacement_weights(tmp_path):
    a, b = prepare(TinyResNet(), seed=1), prepare(TinyResNet(), seed=2)
    torch.jit.save(torch.jit.script(a), tmp_path / "a.pt")
    torch.save(b.state_dict(), tmp_path / "b.pth")
    loaded = load_model(str(tmp_path / "a.pt"), weights=str(tmp_path / "b.pth"), trust=True)
    x = example_input(a)
    assert outputs_equal(run(loaded, x), b(x))
    assert not outputs_equal(a(x), b(x))


def test_weights_file_given_as_model_says_what_to_do(saved):
    for key in ("state_dict", "safetensors"):
        with pytest.raises(ModelLoadError, match="holds only weights") as info:
            load_model(str(saved.files[key]))
        assert "--weights" in str(info.value)


def test_an_input_too_large_to_capture_is_refused_before_anything_is_allocated(monkeypatch):
    allocated = []
    monkeypatch.setattr(models.preprocessing, "_interpolate", lambda *a: allocated.append(a))
    small = np.zeros((8, 8, 3), np.uint8)
    for pp in (Preprocessing(resize=(100_000, 100_000)), Preprocessing(resize=5000),
               Preprocessing(center_crop=(4097, 4096))):
        with pytest.raises(SpecError, match=r"too large to capture every layer") as info:
            pp.apply(small)
        assert "--input-size" in info.value.fix
    assert not allocated
    assert Preprocessing(center_crop=(4096, 4096)).output_size((8, 8)) == (4096, 4096)
    assert Preprocessing(resize=256, center_crop=224).output_size((480, 640)) == (224, 224)
    assert Preprocessing(resize=256).output_size((480, 640)) == (256, 341)


def test_input_channels_come_from_the_first_convolution_that_runs(tmp_path):
    """``head`` is declared before ``stem`` but runs after it: the model takes 1 channel, and
    guessing 8 from the declaration order would make it impossible to inspect."""
    from cnnviz.core.capture import capture

    py = tmp_path / "order.py"
    py.write_text(
        "import torch.nn as nn\n"
        "class Order(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.head = nn.Conv2d(8, 4, 3)\n"
        "        self.stem = nn.Conv2d(1, 8, 3)\n"
        "        self.calls = 0\n"
        "    def forward(self, x):\n"
        "        self.calls += 1\n"
        "        return self.head(self.stem(x)).mean((2, 3))\n")
    loaded = load_model(f"{py}:Order", trust=True)
    assert loaded.input_channels == 1 and loaded.preprocessing.color == "gray"
    assert all(not m._forward_pre_hooks for m in loaded.module.modules())  # the probe's hooks are gone
    result = capture(loaded, loaded.preprocessing.apply(np.random.default_rng(0).random((20, 20, 3))))
    assert [a.name for a in result.layers] == ["stem", "head"]
    # a model that cannot run on the probe keeps the declaration-order guess
    py.write_text(py.read_text().replace("return self.head", "raise ValueError('no')\n        return self.head"))
    assert load_model(f"{py}:Order", trust=True).input_channels == 8


def test_a_python_file_with_a_syntax_error_says_where(tmp_path):
    py = tmp_path / "broken.py"
    py.write_text("import torch\nclass Broken(torch.nn.Module:\n    pass\n")
    for spec in (f"{py}:Broken", str(py)):
        with pytest.raises(ModelLoadError, match=r"broken\.py has a Python syntax error at line 2") as info:
            load_model(spec)  # no trust needed to be told: parsing runs nothing
        assert "py_compile" in info.value.fix


def test_python_file_without_class_lists_classes(tmp_path):
    py = write_model_py(tmp_path)
    with pytest.raises(ModelLoadError, match=r"net\.py:ClassName.*Net"):
        load_model(str(py))


# -------------------------------------------------------------------------------------------
# Trust: nothing from a code-bearing file runs until the user trusts it
# -------------------------------------------------------------------------------------------


@pytest.fixture
def unsafe_loaders_forbidden(monkeypatch):
    """Make every code-running loader fail the test if it is called."""
    calls = []

    def forbidden(name):
        def f(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} was called without trust")

        return f

    real_load = torch.load

    def torch_load(*args, **kwargs):
        if not kwargs.get("weights_only", False):
            calls.append("torch.load(weights_only=False)")
            raise AssertionError("unsafe torch.load without trust")
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch.jit, "load", forbidden("torch.jit.load"))
    monkeypatch.setattr(torch.export, "load", forbidden("torch.export.load"))
    monkeypatch.setattr(torch, "load", torch_load)
    monkeypatch.setattr(pickle, "load", forbidden("pickle.load"))
    monkeypatch.setattr(pickle, "loads", forbidden("pickle.loads"))
    return calls


@pytest.mark.parametrize("key, word", [
    ("torchscript", "TorchScript"), ("torchscript_traced", "TorchScript"),
    ("export", "torch.export"), ("pickle", "pickled Python object"),
])
def test_code_bearing_files_refused_without_trust(saved, unsafe_loaders_forbidden, key, word, tmp_path):
    store = TrustStore(tmp_path / "trust.json")
    with pytest.raises(TrustRequired) as info:
        load_model(str(saved.files[key]), trust_store=store)
    msg = str(info.value)
    assert word in msg
    assert "run" in msg  # says why: it can run code
    assert "--trust" in msg and "trust dialog" in msg  # says how
    assert info.value.sha256 == file_sha256(saved.files[key])
    assert info.value.format == detect_format(saved.files[key])
    assert unsafe_loaders_forbidden == []


@pytest.mark.parametrize("case", ["zip-eval", "legacy-exec", "raw-pickle-p4", "raw-pickle-p0", "numpy-object-array"])
def test_pickle_payload_never_runs_without_trust(tmp_path, unsafe_loaders_forbidden, case):
    path, marker = hostile_files(tmp_path)[case]
    assert detect_format(path) == "pickle"
    with pytest.raises(TrustRequired):
        load_model(str(path))
    with pytest.raises(TrustRequired):
        load_state_dict_file(path)
    py = write_model_py(tmp_path)
    with pytest.raises(TrustRequired):  # as weights of a trusted model file, still refused
        load_model(f"{py}:Net", weights=str(path), trust_store=TrustStore(tmp_path / "t.json"),
                   trust=False)
    assert not marker.exists()
    assert unsafe_loaders_forbidden == []


@pytest.mark.parametrize("case", ["zip-eval", "legacy-exec", "numpy-object-array"])
def test_weights_only_loader_refuses_payload_and_names_it(tmp_path, case):
    """Even if detection were fooled, the weights-only loader runs nothing."""
    path, marker = hostile_files(tmp_path)[case]
    with pytest.raises(ModelLoadError, match="builtins.(eval|exec)") as info:
        models.weights._torch_load_weights_only(path, path.name)
    assert "nothing from it was run" in str(info.value)
    assert not marker.exists()


def test_builtins_eval_checkpoint_message(tmp_path):
    path, marker = hostile_files(tmp_path)["zip-eval"]
    with pytest.raises(TrustRequired, match="builtins.eval"):
        load_state_dict_file(path)
    assert not marker.exists()


def test_payload_does_run_once_trusted(tmp_path):
    """The marker test above can fail: with trust, the same file really runs its payload."""
    path, marker = hostile_files(tmp_path)["zip-eval"]
    with pytest.raises(ModelLoadError, match="not a model"):
        load_model(str(path), trust=True)  # it ran, then held a dict rather than a model
    assert marker.read_text() == "ran"


def test_python_file_is_not_imported_without_trust(tmp_path):
    marker = tmp_path / "imported"
    py = tmp_path / "evil_net.py"
    py.write_text(
        "import torch\n"
        f"__import__('pathlib').Path({str(marker)!r}).write_text('ran')\n"
        "class Net(torch.nn.Module):\n"
        "    def forward(self, x):\n        return x\n"
    )
    with pytest.raises(TrustRequired, match="Python source; importing it runs it"):
        load_model(f"{py}:Net")
    assert not marker.exists()
    load_model(f"{py}:Net", trust=True)
    assert marker.exists()


def test_trust_store_trusts_by_hash_and_forgets_changed_files(saved, tmp_path):
    store = TrustStore(tmp_path / "trust.json")
    f = tmp_path / "model.pt"
    f.write_bytes(saved.files["torchscript"].read_bytes())
    with pytest.raises(TrustRequired):
        load_model(str(f), trust_store=store)
    sha = store.trust(f)
    assert sha == file_sha256(f)
    loaded = load_model(str(f), trust_store=store)
    assert outputs_equal(run(loaded, saved.x), saved.net(saved.x))

    # the same bytes under another name are still trusted; a reopened store remembers
    g = tmp_path / "copy.bin"
    g.write_bytes(f.read_bytes())
    assert load_model(str(g), trust_store=TrustStore(tmp_path / "trust.json")).kind == "torchscript"

    # a file changed after it was trusted is not trusted any more
    other = prepare(TinyResNet(), seed=99)
    torch.jit.save(torch.jit.script(other), f)
    with pytest.raises(TrustRequired):
        load_model(str(f), trust_store=store)


# -------------------------------------------------------------------------------------------
# Mismatched weights, hostile safetensors
# -------------------------------------------------------------------------------------------


def test_mismatched_state_dict_lists_missing_and_unexpected_keys(tmp_path):
    torch.save(prepare(TinyResNet()).state_dict(), tmp_path / "resnet.pth")
    py = write_model_py(tmp_path)
    with pytest.raises(ModelLoadError) as info:
        load_model(f"{py}:Net", weights=str(tmp_path / "resnet.pth"), trust=True)
    msg = str(info.value)
    assert "missing keys: conv1.bias" in msg and "fc1.weight" in msg
    assert "unexpected keys:" in msg and "layer1.0.conv1.weight" in msg
    assert "do not fit" in msg


def test_shape_mismatch_is_named(tmp_path):
    torch.save(prepare(TinyLeNet(n_classes=10)).state_dict(), tmp_path / "w.pth")
    py = write_model_py(tmp_path)
    expected = r"fc2\.weight is \(10, 32\) in the file but \(7, 32\) in the model"
    with pytest.raises(ModelLoadError, match=expected):
        load_model(f"{py}:Net", weights=str(tmp_path / "w.pth"), ctor_kwargs={"n_classes": 7},
                   trust=True)


def _safetensors_bytes(header: dict | bytes, data: bytes, declared_len: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(raw) if declared_len is None else declared_len
    return struct.pack("<Q", n) + raw + data


@pytest.mark.parametrize(
    "blob, match",
    [
        (_safetensors_bytes({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8,
                            declared_len=1 << 40), "claims"),
        (_safetensors_bytes({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8,
                            declared_len=(1 << 64) - 1), "claims"),
        (_safetensors_bytes({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8),
         "outside"),
        (_safetensors_bytes({"w": {"dtype": "F32", "shape": [1 << 40], "data_offsets": [0, 8]}}, b"\0" * 8),
         "needs"),
        (_safetensors_bytes({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, b"\0" * 8),
         "outside"),
        (_safetensors_bytes({"w": {"dtype": "Q99", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8),
         "unknown dtype"),
        (_safetensors_bytes(b"{not json", b""), "not JSON"),
        (_safetensors_bytes({"w": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}}, b"\0" * 8),
         "bad shape"),
        (_safetensors_bytes({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0]}}, b"\0" * 8),
         "bad data offsets"),
    ],
    ids=["len-past-end", "len-2**64-1", "offsets-past-end", "shape-size-mismatch", "offsets-reversed",
         "unknown-dtype", "not-json", "shape-not-list", "offsets-not-pair"],
)
def test_hostile_safetensors_headers(tmp_path, blob, match):
    f = tmp_path / "w.safetensors"
    f.write_bytes(blob)
    assert detect_format(f) == "safetensors"
    with pytest.raises(ModelLoadError, match=match):
        load_state_dict_file(f)
    py = write_model_py(tmp_path)
    with pytest.raises(ModelLoadError):
        load_model(f"{py}:Net", weights=str(f), trust=True)


def test_valid_hand_written_safetensors_loads(tmp_path):
    values = np.arange(4, dtype=np.float32)
    f = tmp_path / "w.safetensors"
    f.write_bytes(_safetensors_bytes({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
                                      "__metadata__": {"format": "pt"}}, values.tobytes()))
    sd = load_state_dict_file(f)
    assert torch.equal(sd["w"], torch.arange(4.0).reshape(2, 2))


# -------------------------------------------------------------------------------------------
# Python model code: errors a user can act on
# -------------------------------------------------------------------------------------------


def test_python_errors_name_the_problem(tmp_path):
    py = write_model_py(tmp_path)
    with pytest.raises(ModelLoadError, match="defines no class Nett; use one of: Net"):
        load_model(f"{py}:Nett", trust=True)
    with pytest.raises(ModelLoadError, match=r"constructor is Net\(in_ch: int = 1, n_classes: int = 10\)"):
        load_model(f"{py}:Net", ctor_kwargs={"channels": 3}, trust=True)
    with pytest.raises(SpecError, match="not valid JSON"):
        load_model(f"{py}:Net", ctor_kwargs="{channels: 3", trust=True)
    with pytest.raises(ModelLoadError, match="no pretrained weights"):
        load_model(f"{py}:Net", weights="pretrained", trust=True)
    broken = tmp_path / "broken.py"
    broken.write_text("import torch\n\nx = 1\nraise RuntimeError('oops in model file')\n")
    expected = r"importing broken.py failed: RuntimeError: oops in model file \(line 4\)"
    with pytest.raises(ModelLoadError, match=expected):
        load_model(f"{broken}:Net", trust=True)
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(f"{tmp_path / 'nope.py'}:Net", trust=True)


def test_python_file_can_import_its_neighbours(tmp_path):
    (tmp_path / "blocks_for_cnnviz_test.py").write_text(
        "import torch\nclass Block(torch.nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.conv = torch.nn.Conv2d(2, 4, 3)\n"
        "    def forward(self, x):\n        return self.conv(x)\n"
    )
    (tmp_path / "main_net.py").write_text(
        "import torch\nfrom blocks_for_cnnviz_test import Block\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.block = Block()\n"
        "    def forward(self, x):\n        return self.block(x)\n"
    )
    try:
        loaded = load_model(f"{tmp_path / 'main_net.py'}:Net", trust=True)
    finally:
        sys.modules.pop("blocks_for_cnnviz_test", None)
    assert loaded.input_channels == 2
    assert str(tmp_path) not in sys.path


# -------------------------------------------------------------------------------------------
# torchvision architectures
# -------------------------------------------------------------------------------------------


def test_torchvision_random_init_has_categories_and_preprocessing():
    loaded = load_model("ResNet18", weights="random")
    assert loaded.kind == "torchvision" and loaded.name == "resnet18"
    assert loaded.weights == "random"
    assert len(loaded.labels) == 1000 and loaded.labels[0] == "tench"
    p = loaded.preprocessing
    assert (p.resize, p.center_crop) == (256, 224)
    assert p.mean == (0.485, 0.456, 0.406) and p.std == (0.229, 0.224, 0.225)
    assert loaded.input_size == (224, 224) and loaded.input_channels == 3
    assert not loaded.module.training


def test_unknown_name_suggests_close_ones():
    with pytest.raises(ModelLoadError, match="did you mean resnet18"):
        load_model("resnet19")


def _squeezenet_state_dict(seed: int, num_classes: int = 1000):
    import torchvision

    torch.manual_seed(seed)
    return torchvision.models.squeezenet1_1(weights=None, num_classes=num_classes).state_dict()


def test_torchvision_with_local_weights_and_other_class_count(tmp_path):
    sd = _squeezenet_state_dict(0, num_classes=6)
    torch.save(sd, tmp_path / "finetuned.pth")
    loaded = load_model("squeezenet1_1", weights=str(tmp_path / "finetuned.pth"))
    assert loaded.labels is None  # not ImageNet's classes any more
    out = run(loaded, torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 6)
    assert all(torch.equal(v, sd[k]) for k, v in loaded.module.state_dict().items())


def test_torchvision_pretrained_download_from_file_url(tmp_path, monkeypatch, torch_home):
    import hashlib

    sd = _squeezenet_state_dict(1)
    src = tmp_path / "server"
    src.mkdir()
    buf = io.BytesIO()
    torch.save(sd, buf)
    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    served = src / f"squeezenet1_1-{sha[:8]}.pth"
    served.write_bytes(buf.getvalue())
    monkeypatch.setattr(models.zoo, "_weights_url", lambda member: served.as_uri())

    seen = []
    loaded = load_model("squeezenet1_1", weights="pretrained", progress=lambda d, t: seen.append((d, t)))
    assert loaded.weights == "pretrained IMAGENET1K_V1"
    assert len(loaded.labels) == 1000
    assert all(torch.equal(v, sd[k]) for k, v in loaded.module.state_dict().items())
    assert seen[-1] == (served.stat().st_size, served.stat().st_size)
    cached = torch_home / "hub" / "checkpoints" / served.name
    assert cached.is_file()

    served.unlink()  # the cache is used: nothing is read from the URL again
    seen.clear()
    again = load_model("squeezenet1_1", progress=lambda d, t: seen.append((d, t)))
    assert seen == []
    assert all(torch.equal(v, sd[k]) for k, v in again.module.state_dict().items())


def test_torchvision_pretrained_offline_names_cache_and_choices(monkeypatch, torch_home, tmp_path):
    monkeypatch.setattr(models.zoo, "_weights_url",
                        lambda member: (tmp_path / "offline" / "resnet18-f37072fd.pth").as_uri())
    with pytest.raises(ModelLoadError) as info:
        load_model("resnet18", weights="pretrained")
    msg = str(info.value)
    assert str(torch_home / "hub" / "checkpoints") in msg
    assert "local weights file" in msg and "random" in msg
    assert not any((torch_home / "hub" / "checkpoints").iterdir())


def test_torchvision_pretrained_cancel(monkeypatch, tmp_path, torch_home):
    served = tmp_path / "squeezenet1_1-00000000.pth"
    served.write_bytes(os.urandom(300_000))
    monkeypatch.setattr(models.zoo, "_weights_url", lambda member: served.as_uri())
    stop = threading.Event()
    from cnnviz.core.weights_download import DownloadCancelled

    with pytest.raises(DownloadCancelled):
        load_model("squeezenet1_1", progress=lambda d, t: stop.set() if d > 0 else None, cancel=stop)
    assert list((torch_home / "hub" / "checkpoints").iterdir()) == []


# -------------------------------------------------------------------------------------------
# Preprocessing
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_b1", "vit_b_16"])
@pytest.mark.parametrize("hw", [(300, 451), (451, 300), (150, 170)])
def test_preprocessing_matches_torchvision_transforms(arch, hw):
    import torchvision

    weights = torchvision.models.get_model_weights(arch).DEFAULT
    p = models.preprocessing._preprocessing_from_torchvision(weights)
    rng = np.random.default_rng(hw[0])
    pixels = rng.random((*hw, 3), dtype=np.float32)
    expected = weights.transforms()(torch.from_numpy(pixels).permute(2, 0, 1))[None]
    got = p.apply(pixels)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-4)


def test_preprocessing_color_orders_and_crop_padding():
    rgb = np.zeros((4, 6, 3), np.float32)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 0.1, 0.5, 0.9
    bgr = Preprocessing(color="bgr").apply(rgb)
    assert bgr.shape == (1, 3, 4, 6) and bgr[0, 0, 0, 0].item() == pytest.approx(0.9)
    gray = Preprocessing(color="gray", mean=(0.5,), std=(0.5,)).apply(rgb)
    assert gray.shape == (1, 1, 4, 6)
    assert gray[0, 0, 0, 0].item() == pytest.approx((0.299 * 0.1 + 0.587 * 0.5 + 0.114 * 0.9 - 0.5) / 0.5)
    as_rgb = Preprocessing().apply(np.full((5, 5), 0.25, np.float32))
    assert as_rgb.shape == (1, 3, 5, 5) and torch.allclose(as_rgb, torch.tensor(0.25))
    padded = Preprocessing(center_crop=(8, 10)).apply(np.ones((4, 6, 3), np.float32))
    assert padded.shape == (1, 3, 8, 10)
    assert padded[0, 0, 0].sum().item() == 0 and padded[0, 0, 4, 4].item() == 1.0
    u8 = Preprocessing().apply(np.full((2, 2, 3), 255, np.uint8))
    assert torch.allclose(u8, torch.tensor(1.0))


def test_preprocessing_dict_round_trip_and_validation():
    p = Preprocessing(resize=(224, 200), center_crop=192, mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2),
                      color="bgr", interpolation="bicubic")
    assert Preprocessing.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    with pytest.raises(SpecError, match="std must be positive"):
        Preprocessing(std=(0.0,))
    with pytest.raises(SpecError, match="mean has 3 values but gray input has 1"):
        Preprocessing(color="gray", mean=(0.1, 0.2, 0.3), std=(1.0,))
    with pytest.raises(SpecError, match="unknown colour order"):
        Preprocessing(color="cmyk")
    with pytest.raises(SpecError, match="resize must be positive"):
        Preprocessing(resize=0)
    with pytest.raises(SettingsError, match="unknown preprocessing setting"):
        Preprocessing.from_dict({"resize": 3, "gamma": 2.2})
    with pytest.raises(SettingsError, match="std must be positive"):
        Preprocessing.from_dict({"std": [-1]})
    with pytest.raises(SpecError, match="HxW or HxWx3"):
        Preprocessing().apply(np.zeros((2, 2, 2), np.float32))


# -------------------------------------------------------------------------------------------
# Labels, devices, demo
# -------------------------------------------------------------------------------------------


def test_load_labels_formats(tmp_path):
    (tmp_path / "a.txt").write_text("cat\ndog\n\n")
    (tmp_path / "b.json").write_text('["cat", "dog"]')
    (tmp_path / "c.json").write_text('{"0": "cat", "2": "bird"}')
    (tmp_path / "d.json").write_text('{"0": ["n01", "tench"], "1": ["n02", "goldfish"]}')
    assert load_labels(tmp_path / "a.txt") == ["cat", "dog"]
    assert load_labels(tmp_path / "b.json") == ["cat", "dog"]
    assert load_labels(tmp_path / "c.json") == ["cat", "1", "bird"]
    assert load_labels(tmp_path / "d.json") == ["tench", "goldfish"]
    (tmp_path / "e.txt").write_text("  \n")
    with pytest.raises(ModelLoadError, match="empty"):
        load_labels(tmp_path / "e.txt")
    (tmp_path / "f.json").write_text('{"x": "cat"}')
    with pytest.raises(ModelLoadError, match="class indices"):
        load_labels(tmp_path / "f.json")
    (tmp_path / "g.json").write_text("[1, 2")
    with pytest.raises(ModelLoadError, match="not valid"):
        load_labels(tmp_path / "g.json")


def test_devices_on_this_machine():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == models.available_devices()[0]
    with pytest.raises(ModelLoadError, match="choose one of: auto, .*cpu"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="'cuda' is not available"):
            resolve_device("cuda")


def test_half_precision_refused_on_cpu(saved):
    loaded = load_model(str(saved.files["pickle"]), trust=True)
    with pytest.raises(ModelLoadError, match="float16 runs only on a GPU"):
        move_model(loaded, "cpu", "float16")
    with pytest.raises(ModelLoadError, match="unknown precision"):
        move_model(loaded, "cpu", "float8")
    assert move_model(loaded, "cpu").dtype == "float32"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_gpu_half_precision(saved, dtype):
    loaded = load_model(str(saved.files["pickle"]), trust=True, device="cuda")
    moved = move_model(loaded, "cuda", dtype)
    x = saved.x.to("cuda", getattr(torch, dtype))
    out = run(moved, x).float().cpu()
    assert torch.allclose(out, saved.net(saved.x), atol=5e-2)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_export_program_moves(saved):
    loaded = load_model(str(saved.files["export"]), trust=True, device="cuda")
    out = run(loaded, saved.x.cuda()).cpu()
    assert torch.allclose(out, saved.net(saved.x), atol=1e-4)


def test_demo_is_loaded_lazily_from_its_module(monkeypatch):
    fake = types.ModuleType("cnnviz.core.demo")
    net = TinyLeNet()
    fake.load_demo_model = lambda: LoadedModel(
        module=net, kind="demo", name="demo", source=None, preprocessing=Preprocessing(color="gray"),
        labels=[str(i) for i in range(10)], input_channels=1,
    )
    monkeypatch.setitem(sys.modules, "cnnviz.core.demo", fake)
    loaded = load_model("demo")
    assert loaded.kind == "demo" and loaded.module is net


# -------------------------------------------------------------------------------------------
# TrustStore
# -------------------------------------------------------------------------------------------


def test_trust_store_persists_atomically_and_forgets(tmp_path):
    f = tmp_path / "m.pt"
    f.write_bytes(b"model bytes")
    store_path = tmp_path / "cfg" / "trusted.json"
    store = TrustStore(store_path)
    assert not store.is_trusted(f) and len(store) == 0
    sha = store.trust(f)
    assert sha == file_sha256(f) == __import__("hashlib").sha256(b"model bytes").hexdigest()
    data = json.loads(store_path.read_text())
    assert data["version"] == 1 and data["trusted"][sha]["path"] == str(f.resolve())
    assert sorted(p.name for p in store_path.parent.iterdir()) == ["trusted.json"]  # no temp left
    assert TrustStore(store_path).is_trusted(f)
    assert store.forget(f) is True and store.forget(sha) is False
    assert not TrustStore(store_path).is_trusted(f)
    with pytest.raises(ValueError):
        store.trust_hash("not-a-hash")


@pytest.mark.parametrize(
    "content",
    [b"{not json", b'{"version": 1, "trusted": []}', b'{"version": 7, "trusted": {}}', b"\xff\xfe"],
)
def test_corrupt_trust_store_is_kept_aside_and_reported(tmp_path, content):
    store_path = tmp_path / "trusted.json"
    store_path.write_bytes(content)
    (tmp_path / "trusted.json.bak").write_bytes(b"an older backup")
    store = TrustStore(store_path)
    assert len(store) == 0
    assert store.backup_path == tmp_path / "trusted.json.bak1"
    assert store.backup_path.read_bytes() == content  # kept, not replaced
    assert (tmp_path / "trusted.json.bak").read_bytes() == b"an older backup"
    assert "corrupt" in store.warning and str(store.backup_path) in store.warning
    f = tmp_path / "m.pt"
    f.write_bytes(b"x")
    store.trust(f)
    assert TrustStore(store_path).is_trusted(f) and TrustStore(store_path).warning is None


def test_trusted_bytes_are_the_bytes_loaded(saved, tmp_path):
    """A file swapped after the hash check cannot slip in: the hashed bytes are loaded."""
    f = tmp_path / "m.pt"
    f.write_bytes(saved.files["torchscript"].read_bytes())
    store = TrustStore(tmp_path / "trust.json")
    store.trust(f)
    other = prepare(TinyResNet(), seed=42)
    real_check = store.is_trusted_hash

    def check_then_swap(sha):
        answer = real_check(sha)
        torch.jit.save(torch.jit.script(other), f)  # an attacker replaces the file now
        return answer

    store.is_trusted_hash = check_then_swap
    loaded = load_model(str(f), trust_store=store)
    assert outputs_equal(run(loaded, saved.x), saved.net(saved.x))
    assert not outputs_equal(run(loaded, saved.x), other(saved.x))


def test_protocol4_files_are_classified_by_their_globals(tmp_path):
    torch.save(prepare(TinyLeNet()).state_dict(), tmp_path / "zip4.pth", pickle_protocol=4)
    torch.save(prepare(TinyLeNet()), tmp_path / "model4.pth", pickle_protocol=4)
    assert detect_format(tmp_path / "zip4.pth") == "state_dict"  # STACK_GLOBAL names resolved
    assert detect_format(tmp_path / "model4.pth") == "pickle"


@pytest.mark.parametrize("zipped", [True, False])
def test_weights_only_refusal_becomes_a_trust_question(tmp_path, zipped):
    """A protocol-4 file holds nothing but tensors, yet torch's weights-only unpickler refuses
    its opcodes: the user is asked; nothing falls back to unsafe loading on its own."""
    sd = prepare(TinyLeNet(), seed=6).state_dict()
    f = tmp_path / "p4.pth"
    torch.save(sd, f, pickle_protocol=4, _use_new_zipfile_serialization=zipped)
    assert detect_format(f) == "state_dict"
    with pytest.raises(TrustRequired, match="pickled Python object"):
        load_state_dict_file(f)
    got = load_state_dict_file(f, trust=True)
    assert all(torch.equal(v, sd[k]) for k, v in got.items())


def test_checkpoints_with_numpy_scalars_and_arrays_load_as_weights_without_trust(tmp_path):
    """Training scripts leave ``np.float64`` accuracies and numpy arrays in checkpoints;
    weights-only loading accepts numpy's arrays, scalars and dtypes (nothing from the file
    runs), so these need no trust."""
    sd = prepare(TinyLeNet()).state_dict()
    f = tmp_path / "ckpt.pth"
    torch.save({"state_dict": sd, "acc": np.float64(0.93), "epoch": np.int64(7), "hist": np.arange(3.0),
                "kind": np.dtype("float32")}, f)
    assert detect_format(f) == "state_dict"
    got = load_state_dict_file(f)
    assert set(got) == set(sd) and all(torch.equal(got[k], sd[k]) for k in sd)


def test_pickled_model_whose_class_is_gone(tmp_path, monkeypatch):
    mod = types.ModuleType("vanishing_models_for_cnnviz")
    exec("import torch\nclass Gone(torch.nn.Module):\n    def forward(self, x):\n        return x\n",
         mod.__dict__)
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    mod.Gone.__module__ = mod.__name__
    torch.save(mod.Gone(), tmp_path / "gone.pt")
    monkeypatch.delitem(sys.modules, mod.__name__)
    with pytest.raises(ModelLoadError, match="needs the code of the classes") as info:
        load_model(str(tmp_path / "gone.pt"), trust=True)
    assert "'vanishing_models_for_cnnviz' is not importable" in info.value.fix and "PYTHONPATH" in info.value.fix
    # the same pickle given as a weights file, trusted
    with pytest.raises(ModelLoadError, match="PYTHONPATH"):
        load_state_dict_file(tmp_path / "gone.pt", trust=True)


def test_move_export_program_on_cpu_keeps_outputs(saved):
    loaded = load_model(str(saved.files["export"]), trust=True)
    moved = move_model(loaded, "cpu")
    assert moved.exported is not None and moved.device == "cpu"
    assert outputs_equal(run(moved, saved.x), saved.net(saved.x))
    with pytest.raises(ModelLoadError):
        move_model(loaded, "cpu", "bfloat16")
