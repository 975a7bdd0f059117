"""Train a CNN and watch it learn: the loop, its snapshots and what it leaves on disk.

Follows Orange3's long-task pattern: :func:`run` takes a frozen :class:`TrainRequest` and a
:class:`TrainState` (the shared :class:`~cnnviz.core.taskstate.TaskState` plus the histories
the views draw) through which it reports status, progress and partial results
(:class:`Snapshot` every few steps, :class:`EpochReport` after each epoch) and learns that the
user paused or stopped it. The loop never waits for a view: it appends to the state's
histories and hands over the latest snapshot; a window (or the CLI's progress bar) reads it
when it likes.

A run folder holds::

    checkpoints/epoch-001.safetensors + epoch-001.json   (one pair per epoch, atomic writes)
    metrics.csv                                           (one row per epoch)
    kernels.npz                                           (the first conv layer at every snapshot)
    run.json                                              (the request, skipped files, notes)

Every file is written through :func:`cnnviz.core.files.atomic_write` (a temporary name renamed
over the old one), so a crash, a stop or a full disk never leaves a half-written file, and the
last good checkpoint survives.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.core.errors import CnnvizError, SpecError
from cnnviz.core.files import atomic_write
from cnnviz.core.taskstate import Cancelled, TaskState
from cnnviz.core.train_data import DataSpec, TrainData, augment_batch, load_data
from cnnviz.core.train_models import ModelSpec, build_model, check_spec, checkpoint_meta, first_conv, model_constraints

from .train_movie import (  # noqa: E402,F401 - moved to train_movie.py, importable from here
    load_movie,
    movie_frame_image,
    tile_maps,
    export_movie,
)

__all__ = ["DataSpec", "EpochReport", "EvalResult", "ModelSpec", "Snapshot", "TrainRequest",
           "TrainResult", "TrainSettings", "TrainState", "evaluate_arrays", "export_movie", "load_movie", "run"]

OPTIMIZERS = ("sgd", "adam", "adamw")
N_WRONG = 12


@dataclass(frozen=True)
class TrainSettings:
    optimizer: str = "adam"
    lr: float = 1e-3
    batch_size: int = 32
    epochs: int = 10
    weight_decay: float = 0.0
    momentum: float = 0.9
    seed: int = 0
    device: str = "auto"
    snapshot_every: int = 0  # steps between snapshots; 0: about 25 per epoch

    def check(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise SpecError(f"unknown optimizer {self.optimizer!r}", f"use one of {', '.join(OPTIMIZERS)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise SpecError(f"learning rate {self.lr} must be a positive number", "try 0.001")
        if self.batch_size < 1:
            raise SpecError(f"batch size {self.batch_size} must be at least 1", "try 64")
        if self.epochs < 1:
            raise SpecError(f"epochs {self.epochs} must be at least 1", "try 10")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise SpecError(f"weight decay {self.weight_decay} must be 0 or more", "try 0 or 1e-4")
        if not (0 <= self.momentum < 1):
            raise SpecError(f"momentum {self.momentum} must be in [0, 1)", "try 0.9")
        if self.snapshot_every < 0:
            raise SpecError("snapshot interval must be 0 (auto) or more", "use 0")


@dataclass(frozen=True)
class TrainRequest:
    model: ModelSpec = field(default_factory=ModelSpec)
    data: DataSpec = field(default_factory=DataSpec)
    settings: TrainSettings = field(default_factory=TrainSettings)
    out_dir: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Snapshot:
    """The network every few steps: enough for the live views, cheap to make."""

    step: int
    epoch: float            # fractional: 1.5 is half-way through the second epoch
    train_loss: float       # mean since the previous snapshot
    train_accuracy: float
    kernels: np.ndarray     # first conv layer's weights (O, I, kh, kw), a copy
    probe_index: int        # which validation image the feature maps are of
    probe_maps: np.ndarray | None  # that image through the first conv layer (C, H, W)


@dataclass
class EpochReport:
    epoch: int
    step: int
    metrics: dict[str, float]
    confusion: np.ndarray                 # (K, K): rows true class, columns predicted
    wrong: list[tuple[int, int, int, float]]  # (val index, true, predicted, confidence), most confident first
    checkpoint: str | None
    message: str = ""


@dataclass
class TrainResult:
    status: str                  # finished | stopped | nan | write_failed
    message: str
    epochs_done: int
    steps: int
    metrics: list[dict[str, float]]
    checkpoint: str | None       # the last good checkpoint's JSON
    out_dir: str | None
    skipped: list[tuple[str, str]]
    notes: list[str]
    labels: list[str]
    model: Any = field(default=None, repr=False)  # the trained module, eval mode

    @property
    def final(self) -> dict[str, float]:
        return self.metrics[-1] if self.metrics else {}


class TrainState(TaskState):
    """A :class:`~cnnviz.core.taskstate.TaskState` that also keeps what the training views draw.

    The loop reports through the shared interface (:meth:`set_status`, :meth:`set_progress`,
    :meth:`set_partial_result`, :meth:`check`); the watcher pauses, resumes and cancels through
    it and may set :attr:`probe_index` (read at the loop's next snapshot). The histories only
    grow, so a view can read them whole at any time from another thread.

    Attributes
    ----------
    latest_snapshot : Snapshot or None
        The newest :class:`Snapshot`.
    epochs : list of EpochReport
        One report per finished epoch.
    curve : list of (epoch, train loss, train accuracy)
        The training curve, one point per snapshot after the first (``epoch`` fractional).
    frames, frame_steps : list of ndarray, list of int
        The kernel movie so far: the first conv layer's weights and the step of each frame.
    probe_index : int
        Which validation image the live feature maps show.
    data : TrainData or None
        The data, once it has been read.
    """

    def __init__(self, on_progress: Callable[[float, str], None] | None = None,
                 on_partial: Callable[[Any], None] | None = None,
                 on_status: Callable[[str], None] | None = None):
        super().__init__(on_progress=on_progress, on_partial=on_partial, on_status=on_status)
        self.latest_snapshot: Snapshot | None = None
        self.epochs: list[EpochReport] = []
        self.curve: list[tuple[float, float, float]] = []
        self.frames: list[np.ndarray] = []
        self.frame_steps: list[int] = []
        self.probe_index = 0
        self.data: TrainData | None = None

    def set_partial_result(self, partial: Any) -> None:
        if isinstance(partial, Snapshot):
            self.latest_snapshot = partial
        elif isinstance(partial, EpochReport):
            self.epochs.append(partial)
        super().set_partial_result(partial)


# ---------------------------------------------------------------------------------------------
# Atomic files
# ---------------------------------------------------------------------------------------------


def _write_all(fh, data: bytes, path: Path) -> None:
    """Write every byte meant for ``path`` into the open temporary file ``fh`` (the one seam
    tests replace to simulate a full disk, inside the real atomic write)."""
    fh.write(data)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` with :func:`cnnviz.core.files.atomic_write`: readers see the
    old file or the new one, never a half, and no temporary file stays behind. The folder
    must exist."""
    path = Path(path)
    atomic_write(path, lambda fh: _write_all(fh, data, path), "wb", make_parents=False)


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


class RunWriter:
    """Writes a run folder; every write is atomic."""

    def __init__(self, out_dir: str | os.PathLike):
        self.root = Path(out_dir)
        self.ckpt = self.root / "checkpoints"
        if self.root.exists() and not self.root.is_dir():
            raise SpecError(f"the run folder {self.root} is a file", "choose a folder for the run")
        if (self.root / "metrics.csv").exists() or any(self.ckpt.glob("epoch-*.json")):
            # a second run would mix its checkpoints with the first one's: never overwrite a run
            raise SpecError(f"{self.root} already holds a training run",
                            "choose a new run folder (or delete the old run)")
        try:
            self.ckpt.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpecError(f"cannot create the run folder {self.root} ({exc.strerror or exc})",
                            "choose a folder you can write to") from exc
        self.last_good: str | None = None

    def run_info(self, info: dict) -> None:
        atomic_write_bytes(self.root / "run.json", json.dumps(info, indent=1, default=str).encode())

    def checkpoint(self, epoch: int, state_dict: dict, meta: dict) -> str:
        from safetensors.torch import save

        stem = f"epoch-{epoch:03d}"
        weights = self.ckpt / f"{stem}.safetensors"
        sd = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
        meta = dict(meta, weights=weights.name)
        try:
            atomic_write_bytes(weights, save(sd))
            # the JSON last: a checkpoint counts only once both files are whole
            atomic_write_bytes(weights.with_suffix(".json"), json.dumps(meta, indent=1).encode())
        except BaseException:
            with contextlib.suppress(OSError):
                if not weights.with_suffix(".json").exists():
                    weights.unlink()
            raise
        self.last_good = str(weights.with_suffix(".json"))
        return self.last_good

    def metrics(self, rows: list[dict]) -> None:
        if not rows:
            return
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
        atomic_write_bytes(self.root / "metrics.csv", buf.getvalue().encode())

    def movie(self, frames: list[np.ndarray], steps: list[int], layer: str, steps_per_epoch: int) -> None:
        if not frames:
            return
        atomic_write_bytes(self.root / "kernels.npz", _npz_bytes(
            frames=np.stack(frames).astype(np.float32), steps=np.asarray(steps, np.int64),
            epochs=np.asarray(steps, np.float64) / max(1, steps_per_epoch), layer=np.array(layer)))


# ---------------------------------------------------------------------------------------------
# Evaluation (the loop's and `cnnviz evaluate`'s)
# ---------------------------------------------------------------------------------------------


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    confusion: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray

    def most_confident_wrong(self, y: np.ndarray, n: int = N_WRONG) -> list[tuple[int, int, int, float]]:
        wrong = np.flatnonzero(self.predicted != y)
        order = wrong[np.argsort(-self.confidence[wrong], kind="stable")][:n]
        return [(int(i), int(y[i]), int(self.predicted[i]), float(self.confidence[i])) for i in order]


def evaluate_arrays(model, x: np.ndarray, y: np.ndarray, n_classes: int, *, device: str = "cpu",
                    batch_size: int = 256) -> EvalResult:
    """Loss, accuracy and confusion matrix of ``model`` on preprocessed ``x`` (eval mode;
    the model's mode is restored)."""
    import torch
    import torch.nn.functional as F

    was = model.training
    model.eval()
    total, preds, confs = 0.0, [], []
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size])).to(device)
                yb = torch.from_numpy(np.ascontiguousarray(y[i:i + batch_size])).to(device)
                logits = model(xb).float()
                total += float(F.cross_entropy(logits, yb, reduction="sum"))
                p = logits.softmax(1)
                c, k = p.max(1)
                preds.append(k.cpu().numpy())
                confs.append(c.cpu().numpy())
    finally:
        model.train(was)
    pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    conf = np.concatenate(confs) if confs else np.zeros(0, np.float32)
    n = max(1, len(y))
    cm = np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    return EvalResult(total / n, float((pred == y).mean()) if len(y) else float("nan"), cm, pred, conf)


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


def _optimizer(params, s: TrainSettings):
    import torch

    if s.optimizer == "sgd":
        return torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    if s.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    return torch.optim.Adam(params, lr=s.lr, weight_decay=s.weight_decay)


def _probe(conv, data: TrainData, index: int, device) -> tuple[int, np.ndarray | None]:
    import torch

    if conv is None or len(data.y_val) == 0:
        return index, None
    index = int(min(max(0, index), len(data.y_val) - 1))
    with torch.no_grad():
        x = torch.from_numpy(data.x_val[index:index + 1]).to(device)
        return index, conv(x)[0].float().cpu().numpy()


def _nan_message(step: int, epoch: int, batch: int, lr: float) -> str:
    return (f"the loss became NaN at step {step} (epoch {epoch}, batch {batch}): the weights blew up; "
            f"lower the learning rate (e.g. {lr / 10:g}) and train again")


def run(request: TrainRequest, state: TrainState | None = None, *, trust_store=None) -> TrainResult:
    """Train ``request.model`` on ``request.data``; see the module docstring.

    Parameters
    ----------
    request:
        What to train, on what, how, and where the run folder goes (``out_dir``; none: nothing
        is written).
    state:
        Reports progress (the fraction of all steps), status, a :class:`Snapshot` every few
        steps and an :class:`EpochReport` per epoch. Pausing it holds the loop before its next
        step; cancelling it stops the run there (the result's ``status`` is ``"stopped"``:
        a stop is an outcome here, not an exception).
    trust_store:
        Handed to :func:`cnnviz.core.models.load_model` when the model is a ``FILE.py:Class``.

    Returns
    -------
    TrainResult
        ``status`` is finished, stopped, nan or write_failed; ``message`` says what happened
        and which checkpoint is the last good one.

    Raises
    ------
    CnnvizError
        Bad input, before anything is written.
    """
    import torch
    import torch.nn.functional as F

    from cnnviz.core.devices import check_torch_device

    state = state or TrainState()
    s = request.settings
    s.check()
    check_spec(request.model)
    device = check_torch_device(s.device)
    state.set_status("Reading the data…")

    def data_progress(done: int, total: int) -> None:
        state.set_status(f"Reading images {done} / {total}…")

    data = load_data(request.data, model_constraints(request.model), progress=data_progress,
                     cancelled=lambda: state.cancelled)
    state.data = data
    if len(data.y_train) == 0:
        raise SpecError("there are no training images", "add images to the class folders")
    torch.manual_seed(s.seed)
    np.random.seed(s.seed % 2**32)
    gen = torch.Generator().manual_seed(s.seed)
    state.set_status("Building the model…")
    model = build_model(request.model, data.channels, len(data.labels), data.size, trust_store=trust_store)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise SpecError("every parameter is frozen: nothing would learn", "freeze less of the model")
    opt = _optimizer(params, s)
    writer = RunWriter(request.out_dir) if request.out_dir else None
    if writer is not None:
        writer.run_info({"request": request.to_dict(), "labels": data.labels, "preprocessing": data.preprocessing,
                         "data": data.summary(), "skipped": data.skipped, "notes": data.notes,
                         "device": device, "torch": torch.__version__})
    conv_name, conv = first_conv(model)

    def weights_now() -> np.ndarray:
        return conv.weight.detach().float().cpu().numpy().copy() if conv is not None else np.zeros((0, 0, 0, 0))

    x_all = torch.from_numpy(data.x_train)
    y_all = torch.from_numpy(data.y_train)
    if device != "cpu" and x_all.numel() * 4 < 2**30:
        x_all, y_all = x_all.to(device), y_all.to(device)
    n = len(y_all)
    bs = min(s.batch_size, n)
    steps_per_epoch = n // bs + (1 if n % bs > 1 else 0)   # a last batch of 1 would break BatchNorm
    snap_every = s.snapshot_every or max(1, steps_per_epoch // 25)
    total_steps = steps_per_epoch * s.epochs
    flip = request.data.augment and data.source != "digits"
    k = len(data.labels)

    def snapshot(step: int, loss_sum: float, correct: int, seen: int) -> None:
        idx, maps = _probe(conv, data, state.probe_index, device)
        w = weights_now()
        state.frames.append(w)
        state.frame_steps.append(step)
        ep = step / steps_per_epoch
        loss = loss_sum / max(1, seen)
        acc = correct / max(1, seen)
        if seen:
            state.curve.append((ep, loss, acc))
        state.set_partial_result(Snapshot(step, ep, loss, acc, w, idx, maps))

    rows: list[dict[str, float]] = []
    status, message = "finished", ""
    step = 0
    epochs_done = 0
    snapshot(0, 0.0, 0, 0)  # frame 0: the initial weights
    t0 = time.perf_counter()
    try:
        for epoch in range(1, s.epochs + 1):
            model.train()
            perm = torch.randperm(n, generator=gen)
            if device != "cpu" and x_all.device.type != "cpu":
                perm = perm.to(device)
            run_loss, run_correct, run_seen = 0.0, 0, 0
            ep_loss, ep_correct, ep_seen = 0.0, 0, 0
            for b in range(steps_per_epoch):
                try:
                    state.check()  # waits while paused
                except Cancelled:
                    status = "stopped"
                    break
                idx = perm[b * bs:(b + 1) * bs] if b < steps_per_epoch - 1 else perm[b * bs:]
                xb, yb = x_all[idx], y_all[idx]
                if request.data.augment:
                    xb = augment_batch(xb, gen, flip=flip)
                xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
                logits = model(xb)
                loss = F.cross_entropy(logits, yb)
                lv = float(loss.detach())
                if not math.isfinite(lv):
                    status, message = "nan", _nan_message(step + 1, epoch, b + 1, s.lr)
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                with torch.no_grad():
                    c = int((logits.argmax(1) == yb).sum())
                nb = len(yb)
                run_loss += lv * nb
                run_correct += c
                run_seen += nb
                ep_loss += lv * nb
                ep_correct += c
                ep_seen += nb
                if step % snap_every == 0 or b == steps_per_epoch - 1:
                    snapshot(step, run_loss, run_correct, run_seen)
                    run_loss, run_correct, run_seen = 0.0, 0, 0
                    state.set_progress(step / total_steps,
                                       f"epoch {epoch}/{s.epochs}, step {step}/{total_steps}, "
                                       f"loss {ep_loss / max(1, ep_seen):.4f}")
            if status != "finished":
                break
            ev = evaluate_arrays(model, data.x_val, data.y_val, k, device=device)
            if not math.isfinite(ev.loss) and len(data.y_val):
                status, message = "nan", _nan_message(step, epoch, steps_per_epoch, s.lr)
                break
            row = {"epoch": epoch, "step": step, "train_loss": ep_loss / max(1, ep_seen),
                   "train_accuracy": ep_correct / max(1, ep_seen), "val_loss": float(ev.loss),
                   "val_accuracy": float(ev.accuracy), "seconds": time.perf_counter() - t0, "lr": s.lr}
            rows.append(row)
            epochs_done = epoch
            ckpt, msg = None, ""
            if writer is not None:
                meta = checkpoint_meta(request.model, in_channels=data.channels, n_classes=k, size=data.size,
                                       labels=data.labels, preprocessing=data.preprocessing, epoch=epoch,
                                       step=step, metrics=row, weights_file="",
                                       data={"source": str(request.data.source),
                                             "split_seed": int(request.data.split_seed),
                                             "val_fraction": float(request.data.val_fraction)})
                try:
                    ckpt = writer.checkpoint(epoch, model.state_dict(), meta)
                    writer.metrics(rows)
                    writer.movie(state.frames, state.frame_steps, conv_name or "", steps_per_epoch)
                except OSError as exc:
                    keep = (f"the last good checkpoint is {Path(writer.last_good).name}" if writer.last_good
                            else "no checkpoint was saved")
                    status = "write_failed"
                    message = (f"could not write epoch {epoch}'s checkpoint ({exc.strerror or exc}); {keep}; "
                               "free some disk space (or choose another folder) and train again")
                    msg = message
            state.set_partial_result(EpochReport(epoch, step, row, ev.confusion, ev.most_confident_wrong(data.y_val),
                                                 ckpt, msg))
            if status != "finished":
                break
    finally:
        model.eval()
    if status == "stopped":
        message = f"stopped by the user after {epochs_done} complete epoch(s), at step {step}"
    if writer is not None and status in ("stopped", "nan"):
        with contextlib.suppress(OSError):
            if status == "stopped":
                writer.movie(state.frames, state.frame_steps, conv_name or "", steps_per_epoch)
    if status == "finished":
        message = (f"finished {epochs_done} epoch(s): validation accuracy {rows[-1]['val_accuracy']:.2%}"
                   if rows else "finished")
    if writer is not None and writer.last_good and status != "finished":
        message += f" (last good checkpoint: {Path(writer.last_good).name})" if "last good" not in message else ""
    state.set_status(message)
    return TrainResult(status, message, epochs_done, step, rows, writer.last_good if writer else None,
                       str(writer.root) if writer else None, data.skipped, data.notes, data.labels, model)
