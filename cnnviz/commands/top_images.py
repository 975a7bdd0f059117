"""``cnnviz top-images``: the dataset examples ("top 9") of every channel of a layer.

    cnnviz top-images MODEL FOLDER --layer L [--layer L2 ...] [--k 9] [--batch-size B] --out DIR

FOLDER is a folder of images (searched recursively) or a video file. Writes
``DIR/top_images.json`` (per layer and channel: the k images, best first, with the value, the
strongest unit's (y, x) and its receptive-field box in model-input pixels; the files skipped
and why) and ``DIR/<layer>/channel_<c>.png`` (the k receptive-field crops in a grid, best
first, row by row). Files that are not images, corrupt or too large are skipped and listed.
The sweep is cached and resumable (``--no-cache`` to start over).
"""

from __future__ import annotations

import argparse
import sys

from . import vizout


def _positive(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive integer")
    return int(text)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("top-images", help="the images of a folder (or video) that excite each channel most",
                       description="Stream a folder of images or a video through the model once and keep, for "
                                   "every channel of the layer(s), the k images (and receptive-field crops) "
                                   "that excite it most.")
    vizout.add_model_arguments(p)
    p.add_argument("folder", help="a folder of images, or a video file")
    p.add_argument("--layer", action="append", required=True, help="the layer (repeat for several)")
    p.add_argument("--k", type=_positive, default=9, help="images kept per channel (default 9)")
    p.add_argument("--batch-size", type=_positive, default=32, help="images per forward pass (default 32)")
    p.add_argument("--every", type=_positive, default=1, help="video: use every n-th frame")
    p.add_argument("--no-crops", action="store_true",
                   help="show whole images, not receptive-field crops (for layers without spatial maps)")
    p.add_argument("--no-cache", action="store_true", help="sweep again even if cached")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..core import dataset_examples as dx
    from ..core.taskstate import TaskState

    out = vizout.output_folder(args.out)
    model = vizout.load_model_from_args(args)
    req = dx.SweepRequest(args.folder, tuple(args.layer), k=args.k, batch_size=args.batch_size, video_every=args.every,
                          crops=not args.no_crops)
    progress = vizout.Progress("top-images")
    try:
        res = dx.run(model, req, TaskState(on_progress=progress), cache=not args.no_cache)
    finally:
        progress.done()
    pp = model.preprocessing
    layers = {}
    inputs: dict[int, object] = {}  # each winning item decoded once
    for name, ex in res.layers.items():
        folder = out / vizout.safe_name(name)
        folder.mkdir(exist_ok=True)
        channels = []
        for c in range(ex.channels):
            entries = res.entries(name, c)
            tiles = []
            for rank, e in enumerate(entries):
                if e["index"] not in inputs:
                    inputs[e["index"]] = dx.item_input(e["item"], pp)
                img = inputs[e["index"]]
                y0, x0, y1, x1 = e["box"]
                crop = img[y0:y1, x0:x1] if y0 >= 0 and y1 > y0 and x1 > x0 else img
                tiles.append(vizout.fit_tile(vizout.to_uint8_rgb(crop), 64))
            png = None
            if tiles:
                png = f"{vizout.safe_name(name)}/channel_{c}.png"
                vizout.write_png(out / png, vizout.grid(tiles, cols=max(1, round(args.k ** 0.5))))
            channels.append({"channel": c, "png": png, "images": [
                {"path": e["item"], "value": vizout.finite_or_none(e["value"]), "unit": e["unit"], "box": e["box"]}
                for e in entries]})
        layers[name] = {"shape": list(ex.shape), "channels": channels}
    summary = {
        "model": {"spec": args.model, "name": model.name, "weights": getattr(model, "weights", None)},
        "source": str(args.folder), "k": args.k, "processed": res.processed, "items": len(res.items),
        "skipped": [{"path": p, "reason": r} for p, r in res.skipped],
        "cached": res.cached, "resumed_from": res.resumed_from,
        "tie_rule": "higher value first; equal values: the earlier item (sorted relative path / frame number); "
                    "within an image the first maximum in row-major order",
        "box_coordinates": "y0, x0, y1, x1 in model-input pixels, end exclusive",
        "layers": layers,
    }
    vizout.write_json(out / "top_images.json", summary)
    print(f"{res.processed} image(s) swept, {len(res.skipped)} skipped"
          f"{' (from the cache)' if res.cached else ''}; wrote {out / 'top_images.json'}")
    for p, r in res.skipped[:10]:
        print(f"cnnviz: skipped {p}: {r}", file=sys.stderr)
    if len(res.skipped) > 10:
        print(f"cnnviz: ... and {len(res.skipped) - 10} more (see top_images.json)", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    from .common import run_subcommand

    return run_subcommand("top-images", add_parser, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
