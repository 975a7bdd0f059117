"""``cnnviz visualize``: feature visualization of a channel, a unit, a class or a whole layer.

    cnnviz visualize MODEL --layer L [--channel C | --all | --unit C,Y,X] [--steps N] --out DIR
    cnnviz visualize MODEL --class K [--steps N] --out DIR

Writes ``DIR/visualize.json`` (the target, the settings, each image's activation value) and
one PNG per image (``channel_<c>.png``; ``class_<k>.png``), plus ``grid.png`` with every
channel for ``--all``. Results are cached (``--no-cache`` to recompute). Bad input prints one
line and exits with code 2.
"""

from __future__ import annotations

import argparse
import sys

from ..core.errors import CnnvizError
from . import vizout


def _size(text: str) -> tuple[int, int]:
    parts = [p.strip() for p in text.replace("x", ",").split(",")]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"size '{text}' is not H,W (two positive integers)")
    return int(parts[0]), int(parts[1])


def _unit(text: str) -> tuple[int, int, int]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3 or not all(p.lstrip("-").isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"unit '{text}' is not CHANNEL,Y,X (three integers)")
    return int(parts[0]), int(parts[1]), int(parts[2])


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("visualize", help="feature visualization: the image a channel, unit or class answers to most",
                       description="Optimize images that excite a channel, a unit, a class, or every channel of "
                                   "a layer (Fourier + decorrelated colour parameterization, random jitter, "
                                   "scale and rotation).")
    vizout.add_model_arguments(p)
    p.add_argument("--layer", help="the layer (as 'cnnviz inspect' names it)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--channel", type=int, help="one channel of the layer")
    what.add_argument("--all", action="store_true", help="every channel of the layer (one batched optimization)")
    what.add_argument("--unit", type=_unit, metavar="C,Y,X", help="one unit: channel C at map position (Y, X)")
    what.add_argument("--class", dest="cls", type=int, metavar="K", help="the model's output class K")
    p.add_argument("--steps", type=int, default=128, help="optimization steps (default 128)")
    p.add_argument("--lr", type=float, default=0.1, help="learning rate (default 0.1)")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    p.add_argument("--size", type=_size, metavar="H,W", help="image size (default: the model's input size)")
    p.add_argument("--batch", type=int, default=1, help="images per target (with --diversity)")
    p.add_argument("--diversity", type=float, default=0.0, help="weight of the diversity term (default 0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-cache", action="store_true", help="recompute even if the result is cached")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..core import featureviz as fv
    from ..core.taskstate import TaskState

    if args.cls is not None:
        objective = fv.Objective.output_class(args.cls)
    else:
        if not args.layer:
            raise CnnvizError("no --layer given", "name a layer (see 'cnnviz inspect MODEL'), or use --class K")
        if args.all:
            objective = fv.Objective.all_channels(args.layer)
        elif args.unit is not None:
            objective = fv.Objective.unit_of(args.layer, *args.unit)
        elif args.channel is not None:
            objective = fv.Objective.channel_of(args.layer, args.channel)
        else:
            raise CnnvizError("nothing to visualize", "add --channel C, --all or --unit C,Y,X")
    settings = fv.FeatureVizSettings(steps=args.steps, lr=args.lr, optimizer=args.optimizer, size=args.size,
                                     batch=args.batch, diversity=args.diversity, seed=args.seed)
    out = vizout.output_folder(args.out)
    model = vizout.load_model_from_args(args)
    progress = vizout.Progress("visualize")
    state = TaskState(on_progress=progress)
    try:
        result = fv.run(model, fv.FeatureVizRequest(objective, settings), state, cache=not args.no_cache)
    finally:
        progress.done()
    prefix = "class" if objective.kind == "class" else "channel"
    files = []
    count: dict[int, int] = {}
    for img, ch in zip(result.images, result.channels):
        j = count.get(int(ch), 0)
        count[int(ch)] = j + 1
        name = f"{prefix}_{int(ch)}{'' if settings.batch == 1 else f'_{j}'}.png"
        vizout.write_png(out / name, vizout.upscale(vizout.to_uint8_rgb(img), 128))
        files.append(name)
    if objective.kind == "all":
        side = max(64, max(result.images.shape[1:3]))
        tiles = [vizout.fit_tile(vizout.to_uint8_rgb(img), side) for img in result.images]
        vizout.write_png(out / "grid.png", vizout.grid(tiles, cols=None if settings.batch == 1 else settings.batch))
    summary = {
        "model": {"spec": args.model, "name": model.name, "weights": getattr(model, "weights", None)},
        "target": objective.to_dict(),
        "settings": settings.to_dict(),
        "image_size": list(result.images.shape[1:3]),
        "cached": result.cached,
        "images": [{"file": f, "channel": int(c), "value": vizout.finite_or_none(v)}
                   for f, c, v in zip(files, result.channels, result.values)],
        "grid": "grid.png" if objective.kind == "all" else None,
    }
    vizout.write_json(out / "visualize.json", summary)
    best = float(result.values.max())
    print(f"{objective.describe()}: {len(files)} image(s) {result.images.shape[2]}x{result.images.shape[1]}, "
          f"activation up to {best:.4g}{' (cached)' if result.cached else ''}; wrote {out / 'visualize.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .common import run_subcommand

    return run_subcommand("visualize", add_parser, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
