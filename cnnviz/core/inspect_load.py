"""Loading a model for the inspector, off the GUI thread: :func:`run_load` runs a
:class:`LoadRequest` (imports torch lazily, loads with :func:`cnnviz.core.models.load_model`,
applies the precision and a labels file) and returns a :class:`LoadOutcome`.

The inspector window runs it on its loader :class:`~cnnviz.qt.workers.LatestRequestWorker`.
Nothing here imports torch at module level and nothing touches a widget.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LoadOutcome", "LoadRequest", "gpu_summary", "run_load"]


class _TrustView:
    """A trust store plus hashes the user accepted in this session's trust dialog.

    The core only asks ``is_trusted_hash(sha)``; accepting a file "just this once" adds its
    hash here instead of passing ``trust=True``, so what loads is exactly the bytes the
    user was asked about (the core loads the bytes it hashed).
    """

    def __init__(self, store: Any, extra: frozenset[str]):
        self._store = store
        self._extra = frozenset(h.lower() for h in extra)

    def is_trusted_hash(self, sha256: str) -> bool:
        if sha256.lower() in self._extra:
            return True
        return bool(self._store is not None and self._store.is_trusted_hash(sha256))


@dataclass(frozen=True, eq=False)
class LoadRequest:
    """One model to load; see :func:`cnnviz.core.models.load_model` for ``spec``/``weights``.

    Attributes
    ----------
    trust:
        The caller vouches for the file (no dialog, nothing remembered).
    ask:
        On :class:`~cnnviz.core.errors.TrustRequired` the window shows the trust dialog
        (``False``: it just reports the refusal).
    trusted_hashes:
        SHA-256 digests the user accepted in the trust dialog for this load.
    trust_store:
        The persistent :class:`~cnnviz.core.trust.TrustStore` (or ``None``).
    on_stage, on_bytes:
        Called from the loader thread: ``on_stage(text)`` for each step, ``on_bytes(done,
        total)`` while pretrained weights download. They must only emit Qt signals.
    cancel:
        Set to stop a download.
    """

    spec: str
    weights: str | None = None
    ctor_kwargs: str | None = None
    labels_path: str | None = None
    trust: bool = False
    ask: bool = True
    trusted_hashes: frozenset[str] = frozenset()
    trust_store: Any = None
    device: str = "auto"
    dtype: str = "float32"
    on_stage: Callable[[str], None] | None = None
    on_bytes: Callable[[int, Any], None] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def with_trusted(self, sha256: str | None) -> LoadRequest:
        """The same request with one more accepted hash (or ``trust=True`` when the file's
        hash is unknown because no trust store could be read)."""
        if sha256 is None:
            return dataclasses.replace(self, trust=True, cancel=threading.Event())
        return dataclasses.replace(self, trusted_hashes=self.trusted_hashes | {sha256.lower()},
                                   cancel=threading.Event())

    def recent_entry(self) -> dict[str, Any]:
        """What the recent-models list remembers (never the trust decision)."""
        return {"spec": self.spec, "weights": self.weights, "ctor_kwargs": self.ctor_kwargs,
                "labels": self.labels_path}


@dataclass
class LoadOutcome:
    """A loaded model and what the window shows about it (the model object itself crosses
    threads once, into the inference worker; its tensors are never read on the GUI thread)."""

    request: LoadRequest
    model: Any  # cnnviz.core.models.LoadedModel
    info: dict[str, Any]
    preprocessing: dict[str, Any]
    labels: list[str] | None
    devices: list[str]
    gpu: str | None
    seconds: float


def gpu_summary() -> str | None:
    """``"NVIDIA H100 · 1.2 / 79.6 GiB"`` for the first CUDA device, ``"Apple GPU (MPS)"``, or
    ``None`` without a GPU. Imports torch: call it on a worker thread (or once torch is in)."""
    import torch

    if torch.cuda.is_available():
        i = torch.cuda.current_device()
        props = torch.cuda.get_device_properties(i)
        used = torch.cuda.memory_allocated(i) / 2**30
        total = props.total_memory / 2**30
        return f"{props.name} · {used:.2f} / {total:.1f} GiB"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "Apple GPU (MPS)"
    return None


def _count_params(module: Any) -> int:
    try:
        return int(sum(p.numel() for p in module.parameters()))
    except Exception:  # noqa: BLE001 - a display number; never fail a load over it
        return 0


def run_load(req: LoadRequest) -> LoadOutcome:
    """Load ``req`` (runs on the loader thread). Raises the core's errors unchanged."""
    t0 = time.perf_counter()
    if req.on_stage is not None and "torch" not in sys.modules:
        req.on_stage("Loading PyTorch…")
    import torch  # noqa: F401 - the slow import, here and not on the GUI thread

    from cnnviz.core import models

    if req.on_stage is not None:
        req.on_stage(f"Loading {req.spec}…")
    loaded = models.load_model(
        req.spec, weights=req.weights, trust=req.trust,
        trust_store=_TrustView(req.trust_store, req.trusted_hashes),
        ctor_kwargs=req.ctor_kwargs, progress=req.on_bytes, cancel=req.cancel, device=req.device,
    )
    if str(req.dtype).lower() not in ("float32", "fp32", "float"):
        loaded = models.move_model(loaded, loaded.device, req.dtype)
    labels = loaded.labels
    if req.labels_path:
        labels = models.load_labels(req.labels_path)
        loaded = dataclasses.replace(loaded, labels=labels)
    info = {
        "name": loaded.name, "kind": loaded.kind, "source": loaded.source,
        "weights": loaded.weights, "input_channels": loaded.input_channels,
        "input_size": loaded.input_size, "params": _count_params(loaded.module),
        "device": loaded.device, "dtype": loaded.dtype,
    }
    return LoadOutcome(
        request=req, model=loaded, info=info, preprocessing=loaded.preprocessing.to_dict(),
        labels=list(labels) if labels is not None else None, devices=models.available_devices(),
        gpu=gpu_summary(), seconds=time.perf_counter() - t0,
    )

