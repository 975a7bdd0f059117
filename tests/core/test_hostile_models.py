"""Hostile and broken model files, one row each: what the user sees, and that nothing ran.

Each row builds a file in ``tmp_path`` and opens it the two ways a user can: through
:func:`cnnviz.core.models.load_model` (what the inspector's loader thread calls) and through
``cnnviz inspect`` in-process (one line on stderr, exit code 2, no traceback). While a row
runs, every loader that could execute code from a file (``torch.load(weights_only=False)``,
``torch.jit.load``, ``torch.export.load``, ``pickle.load(s)``) fails the test if called, and
payload files write a marker that must never appear. ``docs/ROBUSTNESS.md`` points here.
"""

from __future__ import annotations

import json
import pickle
import socket
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from modelzoo import TinyLeNet, TinyResNet, example_input, prepare, write_model_py
from PIL import Image

from cnnviz import cli
from cnnviz.core.errors import ModelLoadError, TrustRequired
from cnnviz.core.models import load_model
from cnnviz.core.trust import TrustStore, file_sha256

pytestmark = pytest.mark.filterwarnings(
    "ignore::FutureWarning", "ignore::DeprecationWarning", "ignore:Detected pickle protocol 4:UserWarning"
)


class Payload:
    """Unpickling calls ``fn`` (eval or exec) on code that writes the marker file."""

    def __init__(self, fn, marker: Path):
        self.fn, self.marker = fn, str(marker)

    def __reduce__(self):
        return (self.fn, (f"__import__('pathlib').Path({self.marker!r}).write_text('ran')",))


@dataclass
class Case:
    """``build(tmp) -> (spec, weights, py_trusted)``; the message must contain every ``words``.

    ``py_trusted``: the spec is a ``net.py:Net`` the user trusts (by its hash, as the window's
    trust dialog remembers it; ``--trust`` on the command line, which vouches for the model
    file only) while the weights file stays untrusted.
    """

    build: Callable[[Path], tuple[str, str | None, bool]]
    error: type[BaseException]
    words: tuple[str, ...]
    marker: str | None = None            # a payload's marker file name (must never appear)


def _sd_file(tmp: Path, name: str, net=None, **kw) -> Path:
    p = tmp / name
    torch.save(prepare(net or TinyLeNet()).state_dict(), p, **kw)
    return p


def _safetensors(tmp: Path, header: dict, data: bytes, declared: int | None = None) -> Path:
    raw = json.dumps(header).encode()
    p = tmp / "weights.safetensors"
    p.write_bytes(struct.pack("<Q", len(raw) if declared is None else declared) + raw + data)
    return p


def _py(tmp: Path) -> str:
    return f"{write_model_py(tmp)}:Net"


def random_bytes(tmp):
    p = tmp / "model.pth"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return str(p), None, False


def empty(tmp):
    p = tmp / "model.pt"
    p.write_bytes(b"")
    return str(p), None, False


def text_file(tmp):
    p = tmp / "model.pt"
    p.write_text("my notes about the model\n")
    return str(p), None, False


def truncated_zip_weights(tmp):
    full = _sd_file(tmp, "full.pth")
    cut = tmp / "weights.pth"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    return _py(tmp), str(cut), True          # trust covers the .py only, never the weights


def truncated_torchscript(tmp):
    net = prepare(TinyResNet())
    full = tmp / "full.pt"
    torch.jit.save(torch.jit.trace(net, example_input(net)), full)
    cut = tmp / "scripted.pt"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    return str(cut), None, False


def zip_not_pytorch(tmp):
    p = tmp / "model.pt"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("cat.txt", "meow")
    return str(p), None, False


def image_named_pth(tmp):
    p = tmp / "model.pth"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(p, format="PNG")
    return str(p), None, False


def weights_given_as_model(tmp):
    return str(_sd_file(tmp, "weights.pth")), None, False


def safetensors_huge_header(tmp):
    p = _safetensors(tmp, {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8,
                     declared=1 << 40)
    return _py(tmp), str(p), True


def safetensors_offsets_past_end(tmp):
    p = _safetensors(tmp, {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8)
    return _py(tmp), str(p), True


def safetensors_shape_claims_terabytes(tmp):
    p = _safetensors(tmp, {"w": {"dtype": "F32", "shape": [1 << 40], "data_offsets": [0, 8]}}, b"\0" * 8)
    return _py(tmp), str(p), True


def other_architecture_for_py(tmp):
    return _py(tmp), str(_sd_file(tmp, "resnet.pth", TinyResNet())), True


def other_architecture_for_torchvision(tmp):
    return "resnet18", str(_sd_file(tmp, "lenet.pth")), False


def checkpoint_with_builtins_eval(tmp):
    p = tmp / "checkpoint.pth"
    torch.save({"state_dict": prepare(TinyLeNet()).state_dict(), "extra": Payload(eval, tmp / "MARKER")}, p)
    return _py(tmp), str(p), True


def checkpoint_with_builtins_eval_as_model(tmp):
    p = tmp / "checkpoint.pth"
    torch.save({"state_dict": prepare(TinyLeNet()).state_dict(), "extra": Payload(eval, tmp / "MARKER")}, p)
    return str(p), None, False


def legacy_checkpoint_with_exec(tmp):
    p = tmp / "legacy.pth"
    torch.save({"x": Payload(exec, tmp / "MARKER")}, p, _use_new_zipfile_serialization=False)
    return str(p), None, False


def raw_pickle_payload(tmp):
    p = tmp / "model.pkl"
    p.write_bytes(pickle.dumps(Payload(exec, tmp / "MARKER"), protocol=4))
    return str(p), None, False


def raw_pickle_payload_protocol0_as_weights(tmp):
    p = tmp / "weights.pt"
    p.write_bytes(pickle.dumps(Payload(eval, tmp / "MARKER"), protocol=0))
    return _py(tmp), str(p), True


def python_file_untrusted(tmp):
    py = tmp / "evil_net.py"
    py.write_text("import torch\n"
                  f"__import__('pathlib').Path({str(tmp / 'MARKER')!r}).write_text('ran')\n"
                  "class Net(torch.nn.Module):\n    def forward(self, x):\n        return x\n")
    return f"{py}:Net", None, False


def missing_file(tmp):
    return str(tmp / "nowhere" / "model.pt"), None, False


def folder_as_model(tmp):
    return str(tmp), None, False


CASES: dict[str, Case] = {
    "random-bytes": Case(random_bytes, ModelLoadError, ("not a model or weights file",)),
    "empty-file": Case(empty, ModelLoadError, ("empty",)),
    "text-file": Case(text_file, ModelLoadError, ("not a model or weights file",)),
    "truncated-zip-weights": Case(truncated_zip_weights, ModelLoadError, ("truncated or damaged",)),
    "truncated-torchscript": Case(truncated_torchscript, ModelLoadError, ("truncated or damaged",)),
    "zip-not-pytorch": Case(zip_not_pytorch, ModelLoadError, ("zip archive but not one PyTorch wrote",)),
    "wrong-extension-image-as-pth": Case(image_named_pth, ModelLoadError, ("not a model or weights file",)),
    "weights-given-as-model": Case(weights_given_as_model, ModelLoadError, ("weights", "--weights")),
    "safetensors-huge-header-length": Case(safetensors_huge_header, ModelLoadError, ("claims",)),
    "safetensors-offsets-past-end": Case(safetensors_offsets_past_end, ModelLoadError, ("outside",)),
    "safetensors-shape-claims-4-TB": Case(safetensors_shape_claims_terabytes, ModelLoadError, ("needs",)),
    "state-dict-of-another-architecture": Case(other_architecture_for_py, ModelLoadError,
                                               ("do not fit", "missing keys")),
    "state-dict-of-another-architecture-torchvision": Case(other_architecture_for_torchvision, ModelLoadError,
                                                           ("resnet18", "missing keys")),
    "checkpoint-referencing-builtins.eval": Case(checkpoint_with_builtins_eval, TrustRequired,
                                                 ("builtins.eval",), marker="MARKER"),
    "checkpoint-referencing-builtins.eval-as-model": Case(checkpoint_with_builtins_eval_as_model, TrustRequired,
                                                          ("builtins.eval", "--trust"), marker="MARKER"),
    "legacy-checkpoint-with-exec-payload": Case(legacy_checkpoint_with_exec, TrustRequired,
                                                ("builtins.exec",), marker="MARKER"),
    "raw-pickle-payload": Case(raw_pickle_payload, TrustRequired, ("pickled Python object", "--trust"),
                               marker="MARKER"),
    "raw-pickle-payload-as-weights": Case(raw_pickle_payload_protocol0_as_weights, TrustRequired,
                                          ("builtins.eval",), marker="MARKER"),
    "python-model-file-untrusted": Case(python_file_untrusted, TrustRequired, ("importing it runs it",),
                                        marker="MARKER"),
    "missing-file": Case(missing_file, ModelLoadError, ("does not exist",)),
    "folder-as-model": Case(folder_as_model, ModelLoadError, ("folder",)),
}


@pytest.fixture
def sealed(monkeypatch, tmp_path):
    """No network, torchvision's cache in tmp, and every code-running loader forbidden."""
    def refuse(*a, **k):
        raise AssertionError("a test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("CNNVIZ_CONFIG_DIR", str(tmp_path / "config"))
    calls: list[str] = []

    def forbidden(name):
        def f(*a, **k):
            calls.append(name)
            raise AssertionError(f"{name} was called on an untrusted file")
        return f

    real_load = torch.load

    def torch_load(*a, **k):
        if not k.get("weights_only", False):
            calls.append("torch.load(weights_only=False)")
            raise AssertionError("unsafe torch.load on an untrusted file")
        return real_load(*a, **k)

    monkeypatch.setattr(torch.jit, "load", forbidden("torch.jit.load"))
    monkeypatch.setattr(torch.export, "load", forbidden("torch.export.load"))
    monkeypatch.setattr(torch, "load", torch_load)
    monkeypatch.setattr(pickle, "load", forbidden("pickle.load"))
    monkeypatch.setattr(pickle, "loads", forbidden("pickle.loads"))
    return calls


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_model_file_gets_a_message_and_nothing_runs(name, tmp_path, sealed, capsys):
    case = CASES[name]
    work = tmp_path / "files"
    work.mkdir()
    spec, weights, trust = case.build(work)
    marker = work / case.marker if case.marker else None

    store = TrustStore(tmp_path / "trust.json")
    if trust:
        store.trust_hash(file_sha256(spec.rsplit(":", 1)[0]), spec)
    with pytest.raises(case.error) as info:
        load_model(spec, weights=weights, trust_store=store)
    msg = str(info.value)
    for w in case.words:
        assert w in msg, f"{name}: {w!r} not in {msg!r}"
    assert info.value.cause and info.value.fix, f"{name}: no fix named: {msg!r}"

    # the CLI: one line on stderr, exit 2, no traceback
    argv = ["inspect", spec, "--out", str(tmp_path / "out")]
    if weights:
        argv += ["--weights", weights]
    if trust:
        argv += ["--trust"]
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnviz: error:") and "\n" not in err and "Traceback" not in err, err
    for w in case.words:
        assert w in err

    assert sealed == [], f"{name}: a code-running loader was called: {sealed}"
    if marker is not None:
        assert not marker.exists(), f"{name}: the payload ran"


def test_a_state_dict_with_the_wrong_extension_still_loads(tmp_path):
    """Content decides the format: a good state_dict named .safetensors is not refused."""
    net = prepare(TinyLeNet())
    p = tmp_path / "weights.safetensors"
    torch.save(net.state_dict(), p)
    loaded = load_model(_py(tmp_path), weights=str(p), trust=True)
    x = example_input(net)
    with torch.inference_mode():
        assert torch.allclose(loaded.module(x), net(x), atol=1e-6)


def test_the_marker_check_can_fail(tmp_path):
    """With trust the same payload really runs: the 'nothing ran' assertions above mean something."""
    spec, _, _ = checkpoint_with_builtins_eval_as_model(tmp_path)
    with pytest.raises(ModelLoadError):
        load_model(spec, trust=True)
    assert (tmp_path / "MARKER").read_text() == "ran"


def test_cli_trust_for_the_model_file_does_not_trust_the_weights_file(tmp_path, capsys):
    """`cnnviz inspect net.py:Net --weights downloaded.pth --trust`: the user vouched for their
    own net.py, not for a checkpoint from the internet; its payload must not run."""
    spec, weights, _ = checkpoint_with_builtins_eval(tmp_path)
    code = cli.main(["inspect", spec, "--weights", weights, "--trust", "--out", str(tmp_path / "out")])
    assert not (tmp_path / "MARKER").exists(), "the weights file's payload ran"
    assert code == 2 and "builtins.eval" in capsys.readouterr().err
