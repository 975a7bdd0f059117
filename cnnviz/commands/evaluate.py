"""``cnnviz evaluate``: score a trained model on the digits or a class-per-folder folder.

    cnnviz evaluate MODEL --data digits|FOLDER [--out DIR] [--device D] [--trust]

MODEL is a ``cnnviz train`` run folder or checkpoint (.json / .safetensors), or ``demo``.
Prints the accuracy; with ``--out`` writes ``confusion.json`` and ``confusion.png``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import one_line
from ..core.errors import CnnvizError


def add_parser(sub):
    p = sub.add_parser("evaluate", help="accuracy and confusion matrix of a trained model",
                       description="Score a cnnviz training checkpoint (or the demo model) on a data set.")
    p.add_argument("model", help="a run folder, a checkpoint .json/.safetensors, or demo")
    p.add_argument("--data", required=True, help="digits (the held-out split) or a folder with one sub-folder per class")
    p.add_argument("--split-seed", type=int, default=None,
                   help="digits: the split seed (default: the checkpoint's, else 0)")
    p.add_argument("--out", metavar="DIR", help="write confusion.json and confusion.png here")
    p.add_argument("--device", default="cpu", help="cpu, cuda, auto…")
    p.add_argument("--trust", action="store_true", help="a FILE.py:Class checkpoint runs that file")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..core.devices import check_torch_device
    from ..core.train_eval import evaluate_model, load_for_evaluation, write_confusion

    device = check_torch_device(args.device)
    loaded, meta = load_for_evaluation(args.model, trust=args.trust, device=device)
    res, labels, skipped, n = evaluate_model(loaded, meta, args.data, device=device, split_seed=args.split_seed)
    for path, why in skipped:
        print(f"skipped {one_line(path)}: {one_line(why)}", file=sys.stderr)
    print(f"accuracy: {res.accuracy:.4f} ({int(res.confusion.trace())}/{n}) on {one_line(args.data)}")
    if args.out:
        paths = write_confusion(Path(args.out), res, labels, model=str(args.model), data=str(args.data))
        print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0
