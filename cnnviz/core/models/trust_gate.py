"""The trust gate and the one loader that runs code from a file.

Nothing from a code-bearing file (TorchScript, torch.export, pickle, Python) runs unless the
caller passed ``trust=True`` or the file's SHA-256 is in the trust store: :func:`_trust_gate`
decides, :func:`_unsafe_load_trusted` is every such loader in cnnviz."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import pickle
import sys
from pathlib import Path
from typing import Any

import torch

from cnnviz.core.errors import TrustRequired
from cnnviz.core.models.detect import _Detection, _open_failed
from cnnviz.core.quiet import captured_library_logs, first_line
from cnnviz.core.trust import TrustStore

FORMATS_NEEDING_TRUST = frozenset({"torchscript", "export", "pickle", "python"})

_WHY_UNSAFE = {
    "torchscript": "a TorchScript archive; loading it runs the TorchScript code stored inside",
    "export": "a torch.export program; loading it runs code rebuilt from the file (its graph "
    "and any custom objects stored inside)",
    "pickle": "a pickled Python object (for example a whole model saved with torch.save(model)); "
    "unpickling can run any code the file names",
    "python": "Python source; importing it runs it",
}


def _trust_required(path: Path, det: _Detection, sha256: str | None) -> TrustRequired:
    why = _WHY_UNSAFE[det.format]
    if det.format == "pickle" and det.unsafe_globals:
        shown = ", ".join(det.unsafe_globals[:5]) + (" …" if len(det.unsafe_globals) > 5 else "")
        why += f" (it refers to {shown})"
    err = TrustRequired(
        f"{path.name} is {why}; cnnviz has not loaded it because you have not said you trust it",
        "load it only if you trust where it came from: add --trust on the command line, or "
        "confirm the trust dialog in the window (cnnviz then remembers the file by its SHA-256)",
    )
    # For the window's trust dialog: what to show and what to remember.
    err.path = path
    err.format = det.format
    err.sha256 = sha256
    return err


def _trust_gate(
    path: Path, det: _Detection, trust: bool, trust_store: TrustStore | None
) -> bytes | None:
    """Pass only trusted files. Return the bytes that were hashed (load exactly those), or
    None when ``trust=True`` (load from the path)."""
    if det.format not in FORMATS_NEEDING_TRUST:
        return None
    if trust:
        return None
    sha = None
    if trust_store is not None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise _open_failed(path, exc) from exc
        sha = hashlib.sha256(data).hexdigest()
        if trust_store.is_trusted_hash(sha):
            # Load these very bytes, so the file cannot be swapped between check and load.
            return data
    raise _trust_required(path, det, sha)


def _unsafe_load_trusted(path: Path, det: _Detection, data: bytes | None) -> Any:  # trusted-path
    """!!! RUNS CODE FROM THE FILE. Only ever called after :func:`_trust_gate` passed. !!!

    Every loader in cnnviz that can execute code chosen by a file's author is here:
    ``torch.jit.load``, ``torch.export.load``, the unrestricted ``torch.load``,
    ``pickle.load`` and importing Python source. ``data`` (bytes already hashed for the
    trust store) is loaded instead of re-reading the path when given.
    """
    fmt = det.format
    if fmt in ("torchscript", "export", "pickle"):
        # A file object, never the path: torch.load picks a loader by the file name's
        # extension (".safetensors"), and we go by content.
        with contextlib.ExitStack() as stack:
            src = io.BytesIO(data) if data is not None else stack.enter_context(open(path, "rb"))
            logs = stack.enter_context(captured_library_logs())  # torch's tracebacks are not for the user
            try:
                if fmt == "torchscript":
                    return torch.jit.load(src, map_location="cpu")  # trusted-path
                if fmt == "export":
                    return torch.export.load(src)  # trusted-path
                if det.container in ("zip", "legacy-torch"):
                    return torch.load(src, map_location="cpu", weights_only=False)  # trusted-path
                return pickle.load(src)  # noqa: S301  # trusted-path
            except Exception as exc:
                said = first_line(logs)
                if said and ("above" in str(exc) or not str(exc).strip(" ;\n")):
                    raise RuntimeError(said) from exc  # "check the warnings above": say what they said
                raise
    if fmt == "python":
        source = data if data is not None else path.read_bytes()
        digest = hashlib.sha256(source).hexdigest()[:16]
        mod_name = f"cnnviz_user_model_{digest}"
        spec = importlib.util.spec_from_file_location(mod_name, str(path))
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        folder = str(path.resolve().parent)
        added = folder not in sys.path
        if added:  # so the file can import its neighbours, as `python net.py` would
            sys.path.insert(0, folder)
        try:
            exec(compile(source, str(path), "exec", dont_inherit=True), module.__dict__)  # noqa: S102  # trusted-path
        except BaseException:
            sys.modules.pop(mod_name, None)
            raise
        finally:
            if added:
                with contextlib.suppress(ValueError):
                    sys.path.remove(folder)
        return module
    raise AssertionError(f"not a code-bearing format: {fmt}")
