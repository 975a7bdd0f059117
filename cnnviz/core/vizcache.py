"""The on-disk cache behind feature visualization and dataset examples.

Entries live under :func:`cache_dir` (``$CNNVIZ_CACHE_DIR``, else ``$XDG_CACHE_HOME/cnnviz``,
else ``~/.cache/cnnviz``), one ``.npz`` per entry, named by the SHA-256 of everything the result
depends on (the model's weights, the layer, the target, the settings; see :func:`entry_key`).
Writes are atomic (a temporary file renamed over the entry), so a crash or a cancelled run
never leaves a half-written or partial entry; an entry that cannot be read is treated as
missing (and is replaced by the next complete run).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import weakref
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["cache_dir", "entry_key", "model_fingerprint", "read_entry", "write_entry"]


def cache_dir(kind: str = "") -> Path:
    """The user cache folder for ``kind`` (``"featviz"``, ``"top-images"``); not created here."""
    env = os.environ.get("CNNVIZ_CACHE_DIR")
    if env:
        base = Path(env)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "cnnviz"
    return base / kind if kind else base


_FP_LOCK = threading.Lock()
_FINGERPRINTS: "weakref.WeakKeyDictionary[Any, tuple[tuple, str]]" = weakref.WeakKeyDictionary()


def model_fingerprint(model: Any) -> str:
    """SHA-256 of a model's class and every parameter and buffer (names, dtypes, shapes, bytes).

    Remembered per module until a parameter changes in place (an optimizer step bumps the
    tensors' version counters), so asking again for the same model is free.
    """
    import torch

    from cnnviz.core.capture import module_of

    module = module_of(model)
    tensors = list(module.state_dict(keep_vars=True).items())
    versions = tuple(getattr(t, "_version", 0) for _, t in tensors) + (len(tensors),)
    with _FP_LOCK:
        known = _FINGERPRINTS.get(module)
        if known is not None and known[0] == versions:
            return known[1]
    h = hashlib.sha256()
    h.update(f"{type(module).__module__}.{type(module).__qualname__}\n".encode())
    for name, t in tensors:
        if not isinstance(t, torch.Tensor):  # packed parameters and other extras: their text
            h.update(f"{name}|{type(t).__name__}|{t!r}\n".encode())
            continue
        t = t.detach()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        if t.numel():
            h.update(_tensor_bytes(t))
    digest = h.hexdigest()
    with _FP_LOCK:
        _FINGERPRINTS[module] = (versions, digest)
    return digest


def _tensor_bytes(t) -> bytes:
    """The bytes of a tensor of any dtype (bfloat16, float8, quantized...)."""
    import torch

    t = t.cpu()
    if t.is_quantized:
        t = t.int_repr()
    flat = t.contiguous().reshape(-1)
    try:
        return flat.numpy().tobytes()
    except (TypeError, RuntimeError):
        return flat.view(torch.uint8).numpy().tobytes()


def entry_key(**parts: Any) -> str:
    """A stable SHA-256 of JSON-serialisable ``parts`` (keys sorted)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _path(kind: str, key: str, folder: str | os.PathLike | None) -> Path:
    base = Path(folder) if folder is not None else cache_dir(kind)
    return base / f"{key}.npz"


def write_entry(kind: str, key: str, arrays: dict[str, np.ndarray], meta: dict[str, Any],
                folder: str | os.PathLike | None = None) -> Path:
    """Write one entry atomically; returns its path. ``meta`` must be JSON-serialisable."""
    from cnnviz.core.kernels import atomic_write

    buf = io.BytesIO()
    payload = dict(arrays)
    payload["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(buf, **payload)
    path = _path(kind, key, folder)
    atomic_write(path, lambda fh: fh.write(buf.getvalue()), "wb")
    return path


def read_entry(kind: str, key: str, folder: str | os.PathLike | None = None
               ) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """``(arrays, meta)`` of an entry, or ``None`` if there is none or it cannot be read."""
    path = _path(kind, key, folder)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k != "__meta__"}
            meta = json.loads(bytes(z["__meta__"]).decode()) if "__meta__" in z.files else {}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None
    return arrays, meta


def remove_entry(kind: str, key: str, folder: str | os.PathLike | None = None) -> None:
    _path(kind, key, folder).unlink(missing_ok=True)
