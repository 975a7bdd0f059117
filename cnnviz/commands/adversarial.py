"""``cnnviz adversarial``: an adversarial example of an image, and where the model breaks.

    cnnviz adversarial MODEL IMAGE [--target CLASS] [--eps E] [--method pgd|fgsm] [--steps N] --out DIR

ε in grey levels (0-255). Writes ``clean.png``, ``adversarial.png``, ``perturbation.png`` (the
change amplified: mid-grey is none, black/white is -ε/+ε) and ``adversarial.json`` (the
predictions before and after, the largest pixel change, and every layer's relative L2
divergence ``||adv - clean|| / ||clean||`` in execution order).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import vizout


DEFAULT_EPS = 16.0  # cnnviz.core.adversarial.DEFAULT_EPS, without importing torch to build the parser


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("adversarial", help="FGSM/PGD adversarial example of an image, with per-layer divergence",
                       description="Change an image by at most ε grey levels per pixel so the model's prediction "
                                   "changes (or becomes --target), and show where in the network it breaks.")
    vizout.add_model_arguments(p)
    p.add_argument("image", help="image file")
    p.add_argument("--target", type=int, metavar="CLASS", help="targeted: make the model say CLASS")
    p.add_argument("--true-class", type=int, metavar="CLASS", help="untargeted: move away from CLASS "
                                                                   "(default: the clean prediction)")
    p.add_argument("--eps", type=float, default=DEFAULT_EPS, help=f"ε in grey levels 0-255 (default {DEFAULT_EPS:g})")
    p.add_argument("--method", choices=("pgd", "fgsm"), default="pgd")
    p.add_argument("--steps", type=int, default=10, help="PGD steps (default 10)")
    p.add_argument("--labels", metavar="FILE", help="class names: one per line or a JSON list/dict")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..core import adversarial as adv
    from ..core.images import load_image
    from ..core.models import load_labels

    request = adv.AttackRequest(method=args.method, eps=args.eps, target=args.target, true_class=args.true_class,
                                steps=args.steps)
    out = vizout.output_folder(args.out)
    model = vizout.load_model_from_args(args)
    labels = load_labels(args.labels) if args.labels else model.labels
    x = model.preprocessing.apply(load_image(Path(args.image)).pixels)
    r = adv.run(model, x, request, labels=labels)
    vizout.write_png(out / "clean.png", vizout.upscale(vizout.to_uint8_rgb(r.clean), 128))
    vizout.write_png(out / "adversarial.png", vizout.upscale(vizout.to_uint8_rgb(r.adversarial), 128))
    vizout.write_png(out / "perturbation.png", vizout.upscale(vizout.to_uint8_rgb(r.amplified), 128))

    def preds(top):
        return [{"index": i, "name": n, "prob": vizout.finite_or_none(p)} for i, n, p in top]

    summary = {
        "model": {"spec": args.model, "name": model.name, "weights": getattr(model, "weights", None)},
        "image": str(args.image),
        "attack": {"method": request.method, "eps": request.eps, "steps": request.steps if request.method == "pgd" else 1,
                   "step_size": request.alpha if request.method == "pgd" else request.eps,
                   "target": request.target, "true_class": request.true_class, "units": "grey levels (0-255)"},
        "clean": {"class": r.clean_class, "top": preds(r.clean_top)},
        "adversarial": {"class": r.adversarial_class, "top": preds(r.adversarial_top)},
        "flipped": r.flipped,
        "max_pixel_change": r.linf,
        "divergence": [{"layer": n, "relative_l2": vizout.finite_or_none(v)} for n, v in r.divergence],
        "files": {"clean": "clean.png", "adversarial": "adversarial.png", "perturbation": "perturbation.png"},
    }
    vizout.write_json(out / "adversarial.json", summary)
    name = lambda top: top[0][1] if top else "?"  # noqa: E731
    print(f"{request.method.upper()} ε={request.eps:g}: {name(r.clean_top)} ({r.clean_class}) -> "
          f"{name(r.adversarial_top)} ({r.adversarial_class}){'' if r.flipped else ' (not fooled)'}; "
          f"wrote {out / 'adversarial.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .common import run_subcommand

    return run_subcommand("adversarial", add_parser, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
