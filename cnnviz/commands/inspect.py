"""``cnnviz inspect``: capture every layer of a model on one image and write it all out.

    cnnviz inspect MODEL [IMAGE] [--weights FILE] [--trust] [--input-size H,W]
                   [--mean m,m,m] [--std s,s,s] [--color rgb|bgr|gray]
                   [--device auto|cpu|cuda|mps] [--topk K] [--labels FILE]
                   [--layout LAYER=KIND ...] [--every-op] [--output NAME|INDEX]
                   [--score-threshold S] --out DIR

Writes

- ``DIR/activations.npz``: one float32 array per layer, key = qualified layer name
  (``layer1.0.conv1``), batch dimension dropped;
- ``DIR/summary.json``: the model, input and preprocessing; the layers in execution order
  (name, type, shape, params, min/max/mean/std, fraction of zeros, mosaic file, the layer's
  ``layout`` with how it was decided, and the ``map_shape`` [C, H, W] its mosaic shows); the
  top-k predictions with class names; the ``task`` the prediction output was read as
  (classification, segmentation class map with legend, detection boxes/labels/scores);
- ``DIR/layers/<name>.png``: every layer as a mosaic of its ``(C, H, W)`` maps
  (:mod:`cnnviz.core.layouts`: channels-last and token layers are shown as maps too;
  the picture the inspector's grid shows and exports, byte for byte
  (:func:`cnnviz.core.display.layer_mosaic`): per-channel levels (one range for 1x1 maps),
  grey, or a blue-white-red diverging map (white = 0) for layers with negative values);
- ``DIR/prediction.png``: for segmentation the class map over the input, for detection the
  boxes drawn on it.

Bad input prints one line on stderr and exits with code 2. Also runnable on its own:
``python -m cnnviz.commands.inspect ...``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import sys
from pathlib import Path

from ..core.errors import CnnvizError
from ..core.resources import default_image
from .common import one_line, run_subcommand


def _floats_arg(name: str):
    def parse(text: str) -> tuple[float, ...]:
        try:
            parts = [p.strip() for p in text.split(",")]
            if not any(parts):
                raise argparse.ArgumentTypeError(f"{name} is empty")
            if not all(parts):
                raise argparse.ArgumentTypeError(f"{name} '{text}' has an empty value")
            vals = tuple(float(p) for p in parts)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} '{text}' is not a comma-separated list of numbers") from None
        return vals
    return parse


def _size_arg(text: str) -> tuple[int, int]:
    parts = [p.strip() for p in text.replace("x", ",").split(",")]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"input size '{text}' is not H,W (two positive integers)")
    return int(parts[0]), int(parts[1])


def _layout_arg(text: str) -> tuple[str, str]:
    layer, sep, kind = text.rpartition("=")
    if not sep or not layer.strip() or not kind.strip():
        raise argparse.ArgumentTypeError(f"layout '{text}' is not LAYER=KIND (e.g. features.1.0=NHWC)")
    return layer.strip(), kind.strip()


def _fraction_arg(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"score threshold {text} is not between 0 and 1")
    return v


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive integer")
    return int(text)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "inspect", help="capture every layer of a model on an image; write .npz, .json and mosaics",
        description="Run a model on one image and write every layer's output: activations.npz, "
                    "summary.json and layers/<name>.png.")
    _add_arguments(p)
    p.set_defaults(func=run)
    return p


def take_image_last(args: argparse.Namespace, extra: list[str]) -> list[str]:
    """argparse (before Python 3.12) does not take an optional positional after options:
    ``inspect net.py:Net --trust photo.png`` names the image last. Returns what is left over."""
    if extra and args.image is None and len(extra) == 1 and not extra[0].startswith("-"):
        args.image = extra[0]
        return []
    return extra


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="torchvision name (resnet18), file.py:Class, a TorchScript/.pt2/pickled "
                                 "model file, or demo")
    p.add_argument("image", nargs="?", help="image file (default: a bundled sample)")
    p.add_argument("--weights", metavar="FILE",
                   help="weights (.pth state_dict or .safetensors); for torchvision also 'pretrained' or 'random'")
    p.add_argument("--trust", action="store_true",
                   help="I trust this model file: allow formats that can run code (TorchScript, .pt2, pickles, .py)")
    p.add_argument("--trust-weights", action="store_true",
                   help="I trust the --weights file too (a checkpoint that can run code when loaded); "
                        "--trust covers the model file only")
    p.add_argument("--input-size", type=_size_arg, metavar="H,W", help="resize the image to exactly H x W")
    p.add_argument("--mean", type=_floats_arg("mean"), metavar="m,m,m",
                   help="per-channel mean in [0, 1] units, subtracted after scaling pixels to [0, 1]")
    p.add_argument("--std", type=_floats_arg("std"), metavar="s,s,s", help="per-channel std in [0, 1] units")
    p.add_argument("--color", choices=("rgb", "bgr", "gray"),
                   help="the channels the model takes: rgb, bgr or gray (default: what the model's first "
                        "convolution takes; rgb for 3 channels)")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda or mps")
    p.add_argument("--topk", type=_positive_int, default=5, metavar="K", help="predictions to report (default 5)")
    p.add_argument("--labels", metavar="FILE", help="class names: one per line or a JSON list/dict")
    p.add_argument("--model-args", metavar="JSON",
                   help="constructor arguments for file.py:Class or a torchvision builder, as a JSON object "
                        "(e.g. '{\"aux_logits\": false}')")
    p.add_argument("--layout", action="append", type=_layout_arg, default=[], metavar="LAYER=KIND",
                   help="show LAYER with this layout instead of the one decided: NCHW, NHWC, tokens, "
                        "tokens:HxW+P, sequence, vector or nonbatch (repeatable)")
    p.add_argument("--every-op", action="store_true",
                   help="also capture every tensor op inside the forward (residual adds, concatenations, "
                        "matmuls, softmax), named <module>:<op> (an ONNX model's every node is captured anyway)")
    p.add_argument("--output", metavar="NAME|INDEX",
                   help="which output of a multi-output model is the prediction (a name or an index)")
    p.add_argument("--score-threshold", type=_fraction_arg, default=0.5, metavar="S",
                   help="detections: draw and list boxes scoring at least S (default 0.5)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write into (created if needed)")


def _file_name(layer: str) -> str:
    """A safe file name for a layer name on every OS (module names are mostly safe already)."""
    safe = re.sub(r'[\\/:*?"<>|\s]', "_", layer)
    return safe or "_"




def run(args) -> int:
    import numpy as np
    import torch

    from ..core.capture import capture, topk
    from ..core.layouts import prefix_tokens
    from ..core.tasks import interpret
    from ..core.images import load_image
    from ..core.models import load_labels
    from ..core.display import layer_mosaics

    if not str(args.out).strip():
        raise CnnvizError("--out is empty", "give the folder to write into, e.g. --out inspect-out")
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise CnnvizError(f"--out {out_dir} is a file, not a folder", "give a folder to write into")

    loaded = load_model_for_cli(args)
    pp = loaded.preprocessing
    changes = {}
    if args.input_size is not None:
        changes.update(resize=args.input_size, center_crop=None)
    if args.mean is not None:
        changes["mean"] = args.mean
    if args.std is not None:
        changes["std"] = args.std
    if args.color is not None:
        changes["color"] = args.color
    if changes:
        pp = dataclasses.replace(pp, **changes)  # validated again: raises SpecError
    labels = load_labels(args.labels) if args.labels else loaded.labels

    image_path = Path(args.image) if args.image else default_image(loaded.kind)
    pixels = load_image(image_path).pixels
    x = pp.apply(pixels)
    result = capture(loaded, x, every_op=args.every_op, layouts=dict(args.layout) or None)
    task = interpret(result.raw_output, output=args.output, labels=labels, topk=args.topk,
                     score_threshold=args.score_threshold)
    if result.fell_back_to_cpu and result.message:
        print(f"cnnviz: warning: {result.message}", file=sys.stderr)

    try:
        (out_dir / "layers").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CnnvizError(f"cannot create {out_dir}: {exc.strerror or exc}",
                          "give a folder you can write to") from exc

    arrays: dict[str, np.ndarray] = {}
    layers = []
    nonfinite: list[str] = []
    used_files: set[str] = set()
    # the inspector grid's picture of each layer, byte for byte (one core path)
    mosaics = layer_mosaics([act.maps for act in result.layers], mode="channel")
    for act, m in zip(result.layers, mosaics):
        t = act.first.detach()
        prefix = prefix_tokens(act.tensor, act.layout)
        if prefix is not None:
            arrays[f"prefix_tokens/{act.name}"] = prefix.detach().float().cpu().numpy()
        tf = t.float()
        finite = torch.isfinite(tf)
        vals = tf[finite] if not bool(finite.all()) else tf
        stats = {  # over the finite values; null when there are none (JSON has no NaN)
            "min": float(vals.min()) if vals.numel() else None,
            "max": float(vals.max()) if vals.numel() else None,
            "mean": float(vals.mean()) if vals.numel() else None,
            "std": float(vals.std(unbiased=False)) if vals.numel() else None,
            "zeros": float((tf == 0).float().mean()) if tf.numel() else 0.0,
            "nonfinite": float(1.0 - finite.float().mean()) if tf.numel() else 0.0,
        }
        if stats["nonfinite"] > 0:
            nonfinite.append(act.name)
        arrays[act.name] = tf.cpu().numpy().astype(np.float32, copy=False)
        fname = _file_name(act.name)
        while fname.lower() in used_files:  # case-insensitive file systems
            fname += "_"
        used_files.add(fname.lower())
        png = None
        if m.image.size:  # an empty tensor (no boxes detected) has nothing to draw
            _write_png(out_dir / "layers" / f"{fname}.png", m.image)
            png = f"layers/{fname}.png"
        entry = {"index": act.index, "name": act.name, "type": act.type, "shape": list(act.shape),
                 "params": act.params, **stats, "png": png,
                 "layout": act.layout.to_dict(), "map_shape": list(act.map_shape)}
        if act.kind != "module":
            entry["kind"] = act.kind
        if act.layout.kind == "nonbatch":
            entry["shape"] = list(act.tensor.shape)  # kept whole: no batch dimension to drop
        layers.append(entry)

    _write_npz(out_dir / "activations.npz", arrays)
    prediction_png = _write_prediction(out_dir, task, x, pp)
    chosen = _chosen_tensor(result, task, args.output)
    if task.task in ("detection", "keypoints", "segmentation"):
        preds = []  # the task section says what the output means; no per-image "classes"
    else:
        preds = topk(chosen, labels, args.topk) if chosen is not None else []
    warnings = []
    if nonfinite:
        verb = "holds" if len(nonfinite) == 1 else "hold"
        warnings.append(f"{_count(len(nonfinite), 'layer')} {verb} NaN or infinite values (first: {nonfinite[0]}); "
                        "check the weights and the preprocessing (a std near 0 overflows)")
    n_classes = _classes(chosen)
    if args.labels and n_classes is not None and len(labels) != n_classes:
        warnings.append(f"the labels file has {_count(len(labels), 'name')} but the model outputs "
                        f"{_count(n_classes, 'class', 'classes')}; names are matched by index")
    ambiguous = [layer["name"] for layer in layers if layer["layout"]["how"] == "ambiguous"]
    if ambiguous:
        verb = "fits" if len(ambiguous) == 1 else "fit"
        warnings.append(f"{_count(len(ambiguous), 'layer')} {verb} channels-first and channels-last alike "
                        f"(first: {ambiguous[0]}) and {'is' if len(ambiguous) == 1 else 'are'} shown channels-first; "
                        f"if wrong, give --layout {ambiguous[0]}=NHWC")
    if str(getattr(loaded, "weights", "")).lower() == "random":
        warnings.append("the model has random weights (no --weights given): its predictions mean nothing")
    summary = {
        "model": {"spec": args.model, "name": loaded.name, "kind": loaded.kind, "source": loaded.source,
                  "weights": getattr(loaded, "weights", None)},
        "image": str(image_path),
        "input_shape": list(x.shape),
        "preprocessing": pp.to_dict(),
        "preprocessing_steps": _steps(pp),
        "device": result.device,
        "fell_back_to_cpu": result.fell_back_to_cpu,
        "message": result.message,
        "output_shape": list(chosen.shape) if chosen is not None else None,
        "layers": layers,
        "predictions": [{"rank": r + 1, "index": i, "name": n, "prob": p if math.isfinite(p) else None}
                        for r, (i, n, p) in enumerate(preds)],
        "task": {**task.to_dict(), "png": prediction_png},
        "warnings": warnings,
    }
    stale = _pngs_of_an_earlier_run(out_dir) - {layer["png"] for layer in layers if layer["png"]}
    _write_json(out_dir / "summary.json", summary)
    for rel in stale:  # the earlier run's mosaics that this run did not overwrite
        (out_dir / rel).unlink(missing_ok=True)

    print(f"{loaded.name}: {_count(len(layers), 'layer')} on {result.device}, input {tuple(x.shape)} "
          f"from {image_path}")
    for r, (i, n, p) in enumerate(preds):
        print(f"  {r + 1}. {n} ({i})  {p:.3f}")
    if task.task in ("detection", "keypoints"):
        print(f"  {task.task} (output {task.output_name!r}): {_count(len(task.detections), 'box', 'boxes')} "
              f"scoring >= {task.score_threshold:g} ({task.below_threshold} below)")
        for d in task.detections[:10]:
            print(f"    {d['name']} ({d['label']})  {d['score']:.3f}  box {[round(v, 1) for v in d['box']]}")
    elif task.task == "segmentation":
        shown = ", ".join(f"{e['name']} {e['fraction']:.0%}" for e in task.legend[:5])
        print(f"  segmentation (output {task.output_name!r}): class map {list(task.class_map.shape)}: {shown}")
    for w in warnings:
        print(f"cnnviz: warning: {one_line(w)}", file=sys.stderr)
    print(f"wrote {out_dir / 'activations.npz'}, {out_dir / 'summary.json'} and "
          f"{_count(sum(1 for layer in layers if layer['png']), 'mosaic')} "
          f"in {out_dir / 'layers'}")
    return 0


def _chosen_tensor(result, task, choice):
    """The tensor the top-k come from: the chosen output when it is a tensor."""
    from ..core.tasks import select_output

    _, value = select_output(result.raw_output, choice)
    if hasattr(value, "shape") and hasattr(value, "dim"):
        return value.detach()
    return result.output if choice is None and task.task not in ("detection", "keypoints") else None


def _write_prediction(out_dir: Path, task, x, pp) -> str | None:
    """prediction.png: the class map over the input, or the boxes drawn on it."""
    from ..core.tasks import draw_detections, input_to_rgb, overlay_class_map

    if task.class_map is None and task.task not in ("detection", "keypoints"):
        (out_dir / "prediction.png").unlink(missing_ok=True)
        return None
    img = input_to_rgb(x, pp.mean, pp.std, pp.color)
    if task.class_map is not None:
        img = overlay_class_map(img, task.class_map)
    if task.detections:
        img = draw_detections(img, task.detections)
    _write_png(out_dir / "prediction.png", img)
    return "prediction.png"


def _pngs_of_an_earlier_run(out_dir: Path) -> set[str]:
    """The mosaics an earlier run into ``out_dir`` listed in its summary.json (only those:
    nothing else in the folder is touched), so that layers of another model do not linger."""
    from ..core.files import load_json_bounded

    try:
        old = load_json_bounded(out_dir / "summary.json", 64 << 20, "summary.json", from_path=True)  # a FIFO: no hang
        names = {layer["png"] for layer in old["layers"]}
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    return {n for n in names if isinstance(n, str) and re.fullmatch(r"layers/[^/\\]+\.png", n)}


def _steps(pp) -> list[str]:
    """How the input tensor was made, in order, precisely enough to reproduce it."""
    steps = ["pixels as float32 in [0, 1] (uint8 / 255); EXIF orientation applied, "
             "transparency composited on white"]
    if pp.color == "gray":
        steps.append("colour to gray: BT.601 luma, 0.299 R + 0.587 G + 0.114 B (a gray image as is)")
    else:
        steps.append(f"channels in {pp.color.upper()} order (a gray image repeated to 3 channels)")
    if pp.resize is not None:
        how = (f"shorter side to {pp.resize}, aspect kept" if isinstance(pp.resize, int)
               else f"to {pp.resize[0]}x{pp.resize[1]}")
        aa = "" if pp.interpolation == "nearest" else ", antialias=True (as torchvision's transforms)"
        steps.append(f"resize {how}: torch.nn.functional.interpolate mode={pp.interpolation!r}{aa}")
    if pp.center_crop is not None:
        steps.append(f"center crop {pp.center_crop} (torchvision's CenterCrop)")
    steps.append(f"(x - mean) / std with mean {list(pp.mean)}, std {list(pp.std)}")
    return steps


def _count(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def _classes(output) -> int | None:
    """The number of classes a classifier's output has (``(1, N)`` logits), else None."""
    shape = tuple(getattr(output, "shape", ()))
    return int(shape[-1]) if len(shape) == 2 and shape[0] == 1 else None


def _write_json(path: Path, data) -> None:
    # allow_nan=False: every number in the summary is finite or None; a NaN would be invalid JSON
    text = json.dumps(data, indent=1, allow_nan=False) + "\n"
    _write_atomic(path, lambda fh: fh.write(text), "w")


class _TrustExactly:
    """Trust exactly these files' bytes (duck-types :class:`cnnviz.core.trust.TrustStore`)."""

    def __init__(self, hashes: set[str]):
        self.hashes = {h.lower() for h in hashes}

    def is_trusted_hash(self, sha256: str) -> bool:
        return sha256.lower() in self.hashes


def _model_file(spec: str) -> Path | None:
    """The file a model spec names: the file itself, or the .py of ``file.py:Class``."""
    path = Path(spec)
    if path.is_file():
        return path
    if ":" in spec:
        py = Path(spec.rsplit(":", 1)[0])
        if py.is_file():
            return py
    return None


def load_model_for_cli(args):
    """load_model with trust given per file: ``--trust`` vouches for the model file only (the
    user's own net.py does not make a checkpoint downloaded from the internet safe);
    ``--trust-weights`` for the weights file."""
    from ..core.errors import TrustRequired
    from ..core.models import load_model
    from ..core.trust import file_sha256

    trusted: set[str] = set()
    model_file = _model_file(args.model)
    weights_file = Path(args.weights) if args.weights and Path(args.weights).is_file() else None
    try:
        if args.trust and model_file is not None:
            trusted.add(file_sha256(model_file))
        if args.trust_weights and weights_file is not None:
            trusted.add(file_sha256(weights_file))
    except OSError as exc:
        raise CnnvizError(f"cannot read {exc.filename}: {exc.strerror}", "check the path and permissions") from exc
    try:
        return load_model(args.model, weights=args.weights, trust=False, trust_store=_TrustExactly(trusted),
                          ctor_kwargs=args.model_args, device=args.device)
    except TrustRequired as err:
        path = getattr(err, "path", None)
        is_weights = (weights_file is not None and path is not None
                      and Path(path).resolve() == weights_file.resolve())
        flag = "--trust-weights (--trust covers the model file only)" if is_weights else "--trust"
        raise TrustRequired(err.cause, f"load it only if you trust where it came from: add {flag}") from err


def _write_png(path: Path, rgb) -> None:
    """Write an RGB uint8 image as PNG, atomically, with fast compression (a resnet's 60
    mosaics at zlib's default level take seconds; level 1 is ~10x faster, files ~20% larger)."""
    import cv2
    import numpy as np

    ok, data = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:  # pragma: no cover - cv2 encodes any uint8 image
        raise CnnvizError(f"cannot encode {path.name} as PNG")
    _write_atomic(path, data.tobytes(), None)


def _write_npz(path: Path, arrays: dict) -> None:
    from ..core.npz import write_npz

    _write_atomic(path, lambda fh: write_npz(fh, arrays.items(), len(arrays)), "wb")


def _write_atomic(path: Path, write, mode: str) -> None:
    """:func:`cnnviz.core.files.atomic_write`, a write error as one clear line."""
    from ..core.files import atomic_write

    try:
        atomic_write(path, write, mode)
    except OSError as exc:
        raise CnnvizError(f"cannot write {path}: {exc.strerror or exc}",
                          "give a folder you can write to, with free space") from exc


def main(argv: list[str] | None = None) -> int:
    """``python -m cnnviz.commands.inspect ...``: the same as ``cnnviz inspect ...``."""
    return run_subcommand("inspect", add_parser, sys.argv[1:] if argv is None else argv, take_image_last)


if __name__ == "__main__":
    sys.exit(main())
