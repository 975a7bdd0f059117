"""Training data: the bundled digits, or a folder with one sub-folder of images per class.

Every image becomes the model's input through the same
:meth:`cnnviz.core.models.Preprocessing.apply` the inspector and ``cnnviz evaluate`` use, so
the training loop, the inspector and evaluation see identical tensors. Files that are not
images, or are damaged, are skipped and listed (never a crash, never silently dropped);
problems with the folder's shape (an empty class, a class with one image, mixed sizes and
colour modes) are handled and said in :attr:`TrainData.notes`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnviz.core.errors import CnnvizError, SpecError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_FOLDER_SIZE = 32
DEFAULT_TORCHVISION_SIZE = 64
MAX_DECODE_SIDE = 1024


@dataclass(frozen=True)
class DataSpec:
    """Which data to train on.

    Attributes
    ----------
    source:
        ``"digits"`` or a folder with one sub-folder per class.
    val_folder:
        A second class-per-folder folder used as the whole validation set (the training
        folder is then not split); ``None``: split ``source``.
    val_fraction:
        Share of each class held out for validation.
    split_seed:
        Seed of the train/validation split (shown to the user; the same seed, the same split).
    image_size:
        Side the images are resized to (``None``: 28 for digits, 32 for folders, 64 for
        torchvision models; the demo architecture always uses 28).
    augment:
        Random shifts (and horizontal flips for folders) of training batches.
    """

    source: str = "digits"
    val_folder: str | None = None
    val_fraction: float = 0.25
    split_seed: int = 0
    image_size: int | None = None
    augment: bool = False


@dataclass
class TrainData:
    """Model-ready arrays: ``x_*`` are ``(N, C, H, W)`` float32 after preprocessing, ``y_*``
    int64 class indices into :attr:`labels`."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    labels: list[str]
    preprocessing: dict
    source: str
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    val_files: list[str] = field(default_factory=list)

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.x_train.shape[2]), int(self.x_train.shape[3])

    def display(self, x: np.ndarray) -> np.ndarray:
        """Model inputs ``(C, H, W)`` back to pixels in [0, 1] (``(H, W)`` or ``(H, W, 3)``)."""
        mean = np.asarray(self.preprocessing.get("mean", [0.0]), np.float32).reshape(-1, 1, 1)
        std = np.asarray(self.preprocessing.get("std", [1.0]), np.float32).reshape(-1, 1, 1)
        px = np.clip(np.asarray(x, np.float32) * std + mean, 0.0, 1.0)
        return px[0] if px.shape[0] == 1 else px.transpose(1, 2, 0)

    def summary(self) -> str:
        return (f"{len(self.y_train)} training and {len(self.y_val)} validation images, "
                f"{len(self.labels)} classes, {self.channels}x{self.size[0]}x{self.size[1]}"
                + (f"; {len(self.skipped)} file(s) skipped" if self.skipped else ""))


def _preprocessing(color: str, size: tuple[int, int] | None, normalize: str | None):
    from cnnviz.core.models import Preprocessing

    if normalize == "imagenet":
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if color == "rgb" else ((0.449,), (0.226,))
    else:
        mean, std = (0.0,), (1.0,)
    return Preprocessing(resize=tuple(size) if size else None, center_crop=None, mean=mean, std=std,
                         color=color, interpolation="bilinear")


def _apply_all(pre, images: list[np.ndarray]) -> np.ndarray:
    if not images:
        return np.zeros((0, pre.channels, 1, 1), np.float32)
    return np.concatenate([pre.apply(im).numpy() for im in images], axis=0).astype(np.float32, copy=False)


def _target_size(spec: DataSpec, constraints: dict, default: int) -> tuple[int, int]:
    if constraints.get("size"):
        return tuple(constraints["size"])
    lo = int(constraints.get("min_size", 1))
    side = int(spec.image_size) if spec.image_size else max(default, lo)
    if side < lo:
        raise SpecError(f"image size {side} is too small for this model", f"use at least {lo}")
    if side > 512:
        raise SpecError(f"image size {side} is too large to train on here", "use 512 or less")
    return side, side


def _split(y: np.ndarray, fraction: float, seed: int, labels: list[str], notes: list[str]):
    """Per-class (stratified) split; a class with one image stays in training only."""
    rng = np.random.default_rng(seed)
    tr, va = [], []
    for c in range(len(labels)):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        if len(idx) < 2:
            notes.append(f"class '{labels[c]}' has only {len(idx)} image: it is used for training, "
                         "not validation (add more images of it)")
            tr.extend(idx.tolist())
            continue
        n_val = min(len(idx) - 1, max(1, int(round(len(idx) * fraction))))
        va.extend(idx[:n_val].tolist())
        tr.extend(idx[n_val:].tolist())
    return np.array(sorted(tr), np.int64), np.array(sorted(va), np.int64)


def load_digits_data(spec: DataSpec, constraints: dict) -> TrainData:
    """scikit-learn's 1797 digits (bundled, offline) as the demo model sees them: grey 28x28."""
    from cnnviz.core.demo import load_digits_split

    if not 0.0 < spec.val_fraction < 1.0:
        raise SpecError(f"validation fraction {spec.val_fraction} is out of range", "use e.g. 0.25")
    x_tr, y_tr, x_va, y_va = load_digits_split(seed=int(spec.split_seed), test_fraction=float(spec.val_fraction))
    color = constraints.get("color") or "gray"
    size = _target_size(spec, constraints, 28)
    pre = _preprocessing(color, None if size == (28, 28) else size, constraints.get("normalize"))
    return TrainData(
        x_train=_apply_all(pre, list(x_tr)), y_train=y_tr, x_val=_apply_all(pre, list(x_va)), y_val=y_va,
        labels=[str(i) for i in range(10)], preprocessing=pre.to_dict(), source="digits")


# ---------------------------------------------------------------------------------------------
# Folders
# ---------------------------------------------------------------------------------------------


@dataclass
class _Scan:
    labels: list[str]
    files: list[tuple[Path, int]]
    empty: list[str]
    loose: int


def scan_folder(folder: str | os.PathLike) -> _Scan:
    """Class names (sorted sub-folder names) and their files; raises naming the fix when the
    folder has no class sub-folders."""
    root = Path(folder)
    if not root.is_dir():
        raise SpecError(f"{root} is not a folder", "give a folder with one sub-folder of images per class")
    try:
        subs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        loose = sum(1 for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    except OSError as exc:
        raise SpecError(f"cannot read {root} ({exc.strerror or exc})", "check the folder's permissions") from exc
    if not subs:
        raise SpecError(f"{root} has no class sub-folders",
                        "put the images of each class in their own sub-folder (cats/, dogs/, …)")
    labels, files, empty = [], [], []
    for sub in subs:
        try:
            members = sorted(p for p in sub.rglob("*") if p.is_file())
        except OSError as exc:
            raise SpecError(f"cannot read {sub} ({exc.strerror or exc})", "check the folder's permissions") from exc
        if not members:
            empty.append(sub.name)
            continue
        labels.append(sub.name)
        files.extend((p, len(labels) - 1) for p in members)
    return _Scan(labels, files, empty, loose)


def _decode_all(files: list[tuple[Path, int]], progress: Callable[[int, int], None] | None,
                cancelled: Callable[[], bool] | None):
    from cnnviz.core.images import load_image

    images, ys, kept, skipped = [], [], [], []
    for i, (path, y) in enumerate(files):
        if cancelled is not None and cancelled():
            raise CnnvizError("stopped while reading the images")
        if progress is not None and i % 16 == 0:
            progress(i, len(files))
        try:
            img = load_image(path, downscale_to=MAX_DECODE_SIDE)
        except CnnvizError as exc:
            skipped.append((str(path), str(exc.cause if hasattr(exc, "cause") else exc)))
            continue
        except (OSError, ValueError, MemoryError) as exc:
            skipped.append((str(path), f"{type(exc).__name__}: {exc}"))
            continue
        images.append(img.pixels)
        ys.append(y)
        kept.append(str(path))
    if progress is not None:
        progress(len(files), len(files))
    return images, np.array(ys, np.int64), kept, skipped


def _describe_mix(images: list[np.ndarray], size: tuple[int, int], color: str, notes: list[str]) -> None:
    shapes = {im.shape[:2] for im in images}
    if len(shapes) > 1:
        notes.append(f"the images have {len(shapes)} different sizes: all are resized to {size[0]}x{size[1]}")
    modes = {im.ndim for im in images}
    if len(modes) > 1:
        notes.append(f"the folder mixes grey and colour images: all are read as {'RGB' if color == 'rgb' else 'grey'}")


def load_folder_data(spec: DataSpec, constraints: dict, *, progress=None, cancelled=None) -> TrainData:
    """A class-per-folder data set, split per class into training and validation."""
    scan = scan_folder(spec.source)
    notes: list[str] = []
    if scan.empty:
        notes.append("empty class folder(s) left out: " + ", ".join(scan.empty))
    if scan.loose:
        notes.append(f"{scan.loose} file(s) directly in {Path(spec.source).name}/ are not in a class folder: ignored")
    images, y, kept, skipped = _decode_all(scan.files, progress, cancelled)
    present = sorted(set(y.tolist()))
    if len(present) < len(scan.labels):
        gone = [scan.labels[i] for i in range(len(scan.labels)) if i not in present]
        notes.append("class folder(s) with no readable image left out: " + ", ".join(gone))
        remap = {old: new for new, old in enumerate(present)}
        y = np.array([remap[v] for v in y.tolist()], np.int64)
        labels = [scan.labels[i] for i in present]
    else:
        labels = scan.labels
    if len(labels) < 2:
        raise SpecError(f"{spec.source} has {len(labels)} class(es) with readable images"
                        + (f" ({len(skipped)} file(s) skipped as unreadable)" if skipped else ""),
                        "training needs at least 2 class sub-folders of images")
    color = constraints.get("color") or ("rgb" if any(im.ndim == 3 for im in images) else "gray")
    default = DEFAULT_TORCHVISION_SIZE if constraints.get("normalize") == "imagenet" else DEFAULT_FOLDER_SIZE
    size = _target_size(spec, constraints, default)
    _describe_mix(images, size, color, notes)
    pre = _preprocessing(color, size, constraints.get("normalize"))
    x = _apply_all(pre, images)
    if spec.val_folder:
        x_val, y_val, val_files, val_skipped = load_eval_folder(spec.val_folder, pre.to_dict(), labels,
                                                                progress=progress, cancelled=cancelled)
        skipped += val_skipped
        return TrainData(x, y, x_val, y_val, labels, pre.to_dict(), str(spec.source), skipped, notes, val_files)
    if not 0.0 < spec.val_fraction < 1.0:
        raise SpecError(f"validation fraction {spec.val_fraction} is out of range", "use e.g. 0.2")
    tr, va = _split(y, float(spec.val_fraction), int(spec.split_seed), labels, notes)
    return TrainData(x[tr], y[tr], x[va], y[va], labels, pre.to_dict(), str(spec.source), skipped, notes,
                     [kept[i] for i in va])


def load_eval_folder(folder: str | os.PathLike, preprocessing: dict, labels: list[str], *,
                     progress=None, cancelled=None):
    """Every readable image of a class-per-folder ``folder`` as a model trained with
    ``preprocessing`` and ``labels`` sees it: ``(x, y, files, skipped)``. A class folder whose
    name is not one of ``labels`` is refused (its images cannot be scored)."""
    from cnnviz.core.models import Preprocessing

    scan = scan_folder(folder)
    unknown = [n for n in scan.labels if n not in labels]
    if unknown:
        raise SpecError(f"class folder(s) {', '.join(unknown)} in {folder} are not classes of the model "
                        f"({', '.join(labels[:12])}{'…' if len(labels) > 12 else ''})",
                        "name the sub-folders after the model's classes")
    files = [(p, labels.index(scan.labels[c])) for p, c in scan.files]
    images, y, kept, skipped = _decode_all(files, progress, cancelled)
    if not images:
        raise SpecError(f"{folder} has no readable images", "put images in its class sub-folders")
    pre = Preprocessing.from_dict(preprocessing)
    return _apply_all(pre, images), y, kept, skipped


def load_data(spec: DataSpec, constraints: dict, *, progress=None, cancelled=None) -> TrainData:
    if str(spec.source).strip().lower() == "digits":
        if spec.val_folder:
            raise SpecError("a validation folder goes with a training folder, not the digits",
                            "leave out the validation folder")
        return load_digits_data(spec, constraints)
    return load_folder_data(spec, constraints, progress=progress, cancelled=cancelled)


def augment_batch(x, gen, *, flip: bool):
    """Random shifts of up to 1/8 of the side (zero fill) and, with ``flip``, horizontal flips,
    drawn from ``gen`` (a seeded ``torch.Generator``: the same seed, the same batches)."""
    import torch
    import torch.nn.functional as F

    n, _, h, w = x.shape
    m = max(1, min(h, w) // 8)
    padded = F.pad(x, (m, m, m, m))
    dy = torch.randint(0, 2 * m + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * m + 1, (n,), generator=gen)
    out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    if flip:
        f = torch.rand(n, generator=gen) < 0.5
        f = f.to(out.device)
        out[f] = out[f].flip(-1)
    return out
