"""``cnnviz train``: train a CNN and leave checkpoints, metrics and the kernel movie.

    cnnviz train --model simplecnn|lenet5|tinyvgg|demo|FILE.py:Class|<torchvision name>
                 --data digits|FOLDER [--val-data FOLDER] [--epochs N] [--batch-size B]
                 [--lr LR] [--optimizer sgd|adam|adamw] [--weight-decay WD] [--seed S]
                 [--split-seed S] [--val-fraction F] [--image-size N] [--augment]
                 [--freeze none|partial|frozen] [--pretrained FILE] [--trust]
                 [--device auto|cpu|cuda] [--movie FILE.gif|.mp4] --out RUN_DIR

Shows a progress bar on a terminal (one line per epoch otherwise). Bad input prints one line
and exits with code 2; a run that stops on a NaN loss or a failed write exits with code 2 too,
naming the last good checkpoint.
"""

from __future__ import annotations

import argparse
import sys

from .common import one_line
from ..core.errors import CnnvizError


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive integer")
    return int(text)


def _nonneg_int(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of 0 or more")
    return int(text)


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"'{text}' must be a positive number")
    return v


def _nonneg_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"'{text}' must be 0 or more")
    return v


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="train a CNN; write checkpoints, metrics.csv and the kernel movie",
                       description="Train a CNN on the bundled digits or a class-per-folder image set.")
    p.add_argument("--model", default="simplecnn",
                   help="simplecnn, lenet5, tinyvgg, demo, FILE.py:Class or a torchvision classifier (resnet18)")
    p.add_argument("--data", default="digits", help="digits (bundled) or a folder with one sub-folder per class")
    p.add_argument("--val-data", metavar="FOLDER", help="validate on this class-per-folder folder (no split)")
    p.add_argument("--epochs", type=_positive_int, default=10)
    p.add_argument("--batch-size", type=_positive_int, default=32)
    p.add_argument("--lr", type=_positive_float, default=1e-3, help="learning rate (default 0.001)")
    p.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="adam",
                   help="sgd (with momentum 0.9), adam or adamw")
    p.add_argument("--weight-decay", type=_nonneg_float, default=0.0)
    p.add_argument("--seed", type=_nonneg_int, default=0, help="weights, shuffling, dropout (default 0)")
    p.add_argument("--split-seed", type=_nonneg_int, default=0, help="train/validation split (default 0)")
    p.add_argument("--val-fraction", type=_positive_float, default=0.25)
    p.add_argument("--image-size", type=_positive_int, default=None, help="side images are resized to")
    p.add_argument("--augment", action="store_true", help="random shifts (and flips for folders)")
    p.add_argument("--freeze", choices=("none", "partial", "frozen"), default="none",
                   help="torchvision models: train everything, the last half, or only the new head")
    p.add_argument("--pretrained", metavar="FILE", help="torchvision models: weights to start from")
    p.add_argument("--ctor-kwargs", metavar="JSON", help="FILE.py:Class constructor arguments")
    p.add_argument("--trust", action="store_true", help="run FILE.py (it is Python code)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--movie", metavar="FILE", help="also export the kernel movie (.gif or .mp4)")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="folder for checkpoints and metrics")
    p.set_defaults(func=run)
    return p


class _Progress:
    """A one-line progress bar on a terminal; an epoch line otherwise."""

    def __init__(self, stream, epochs: int):
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.epochs = epochs
        self.pct = 0.0
        self.text = ""

    def progress(self, fraction: float, text: str) -> None:
        self.pct = 100.0 * fraction
        self.status(text)

    def status(self, text: str) -> None:
        self.text = text
        if self.tty:
            n = int(self.pct / 100 * 30)
            self.stream.write(f"\r[{'#' * n}{'.' * (30 - n)}] {self.pct:5.1f}% {text[:60]:60s}")
            self.stream.flush()

    def partial(self, value) -> None:
        from ..core.train import EpochReport

        if isinstance(value, EpochReport):
            m = value.metrics
            line = (f"epoch {value.epoch}/{self.epochs}: loss {m['train_loss']:.4f}, "
                    f"train acc {m['train_accuracy']:.2%}, val loss {m['val_loss']:.4f}, "
                    f"val acc {m['val_accuracy']:.2%}")
            self.stream.write(("\r" + " " * 100 + "\r" if self.tty else "") + line + "\n")
            self.stream.flush()


def run(args) -> int:
    import json

    from ..core.train import DataSpec, ModelSpec, TrainRequest, TrainSettings, TrainState, export_movie
    from ..core.train import run as train

    kwargs = {}
    if args.ctor_kwargs:
        try:
            kwargs = json.loads(args.ctor_kwargs)
        except ValueError as exc:
            raise CnnvizError(f"--ctor-kwargs is not valid JSON ({exc})", 'write e.g. {"n_classes": 10}') from exc
        if not isinstance(kwargs, dict):
            raise CnnvizError("--ctor-kwargs must be a JSON object", 'write e.g. {"n_classes": 10}')
    if not 0 < args.val_fraction < 1:
        raise CnnvizError(f"--val-fraction {args.val_fraction} must be between 0 and 1", "use e.g. 0.25")
    if args.movie and not args.movie.lower().endswith((".gif", ".mp4")):
        raise CnnvizError(f"--movie {args.movie}: name the file .gif or .mp4")
    req = TrainRequest(
        model=ModelSpec(name=args.model, pretrained=args.pretrained, freeze=args.freeze, ctor_kwargs=kwargs,
                        trust=args.trust),
        data=DataSpec(source=args.data, val_folder=args.val_data, val_fraction=args.val_fraction,
                      split_seed=args.split_seed, image_size=args.image_size, augment=args.augment),
        settings=TrainSettings(optimizer=args.optimizer, lr=args.lr, batch_size=args.batch_size, epochs=args.epochs,
                               weight_decay=args.weight_decay, seed=args.seed, device=args.device),
        out_dir=args.out)
    bar = _Progress(sys.stderr, args.epochs)
    state = TrainState(on_progress=bar.progress, on_partial=bar.partial, on_status=bar.status)
    result = train(req, state)
    if bar.tty:
        sys.stderr.write("\r" + " " * 100 + "\r")
    for note in result.notes:
        print(f"note: {one_line(note)}", file=sys.stderr)
    if result.skipped:
        print(f"skipped {len(result.skipped)} file(s) that are not readable images:", file=sys.stderr)
        for path, why in result.skipped:
            from pathlib import Path

            line = why if Path(path).name in why else f"{path}: {why}"
            print(f"  {one_line(line)}", file=sys.stderr)
    if result.status in ("nan", "write_failed"):
        raise CnnvizError(result.message)
    if args.movie:
        export_movie(result.out_dir, args.movie)
    print(result.message)
    if result.checkpoint:
        print(f"checkpoint: {result.checkpoint}")
    return 0 if result.status == "finished" else 130
