"""``cnnviz convolve``: the kernel pipeline on the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..core.errors import CnnvizError, SpecError
from .common import run_subcommand


def _pair_arg(name: str, allow_words: tuple[str, ...] = (), minimum: int = 0):
    def parse(text: str):
        t = text.strip().lower()
        if t in allow_words:
            return t
        parts = [p.strip() for p in t.split(",")]
        if len(parts) not in (1, 2) or not all(p.lstrip("-").isdigit() for p in parts):
            words = f", {' or '.join(allow_words)}" if allow_words else ""
            raise argparse.ArgumentTypeError(f"{name} '{text}' is not N or Y,X{words}")
        vals = tuple(int(p) for p in parts)
        if min(vals) < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be ≥ {minimum}, got '{text}'")
        return vals[0] if len(vals) == 1 else vals
    return parse


def _float_arg(name: str):
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} '{text}' is not a number") from None
        if not np.isfinite(v):
            raise argparse.ArgumentTypeError(f"{name} must be finite, got '{text}'")
        return v
    return parse


def add_parser(sub) -> None:
    p = sub.add_parser("convolve", help="convolve an image with kernels; write .npz and .png",
                       description="Run conv → activation → pooling on an image exactly as PyTorch would.")
    p.add_argument("image", nargs="?", help="image file (PNG, JPEG, BMP, TIFF, WebP)")
    p.add_argument("--kernel", "-k", action="append", default=[], metavar="K",
                   help="preset name (sobel-x), literal [[-1,0,1],[-2,0,2],[-1,0,1]], or kernel JSON file; repeat for a bank")
    p.add_argument("--stride", type=_pair_arg("stride", minimum=1), default=1, metavar="S|SY,SX")
    p.add_argument("--padding", type=_pair_arg("padding", ("same", "valid")), default=0, metavar="N|PY,PX|same|valid")
    p.add_argument("--padding-mode", choices=("zeros", "reflect", "replicate", "circular"), default="zeros")
    p.add_argument("--dilation", type=_pair_arg("dilation", minimum=1), default=1, metavar="D|DY,DX")
    p.add_argument("--bias", type=_float_arg("bias"), default=0.0)
    p.add_argument("--flip", action="store_true", help="true convolution: rotate the kernel 180° first")
    p.add_argument("--channels", choices=("gray", "each", "full"), default="gray")
    p.add_argument("--activation", choices=("none", "relu", "leaky_relu", "abs", "sigmoid", "tanh"), default="none")
    p.add_argument("--slope", type=_float_arg("slope"), default=0.01, help="leaky ReLU negative slope")
    p.add_argument("--pool", choices=("max", "avg"))
    p.add_argument("--pool-size", type=_pair_arg("pool size", minimum=1), default=2, metavar="N")
    p.add_argument("--pool-stride", type=_pair_arg("pool stride", minimum=1), default=None, metavar="N")
    p.add_argument("--pool-padding", type=_pair_arg("pool padding"), default=0, metavar="N")
    p.add_argument("--ceil", action="store_true", help="pooling ceil mode")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--npz", metavar="OUT.npz", help="write float32 arrays conv, activation[, pool]")
    p.add_argument("--png", metavar="OUT.png", help="write the last stage as an image")
    p.add_argument("--list-presets", action="store_true", help="list the preset names and exit")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..core import kernels as K
    from ..core.conv import (ActivationSpec, ConvSpec, PipelineRequest, PoolSpec, run_pipeline)

    if args.list_presets:
        for name, pr in K.presets().items():
            k = pr.kernel
            extra = f" ({len(pr.kernels)} kernels)" if pr.is_bank else ""
            print(f"{name:16s} {k.size[0]}×{k.size[1]}  {pr.group:8s} {pr.title}{extra}")
        return 0
    if not args.image:
        raise CnnvizError("no image given", "usage: cnnviz convolve IMAGE --kernel sobel-x")
    if not args.kernel:
        raise CnnvizError("no kernel given", "add --kernel sobel-x (or a literal such as [[0,1,0],[1,-4,1],[0,1,0]])")
    kernels = []
    for text in args.kernel:
        kernels.extend(K.parse_kernels(text))
    from ..core.images import load_image

    image = load_image(args.image)
    spec = ConvSpec(stride=args.stride, padding=args.padding, padding_mode=args.padding_mode,
                    dilation=args.dilation, bias=args.bias, flip=args.flip, channels=args.channels)
    pool = None
    if args.pool:
        pool = PoolSpec(args.pool, args.pool_size, args.pool_stride, args.pool_padding, args.ceil)
    device = args.device
    if device != "cpu":
        from ..core.devices import check_torch_device

        device = check_torch_device(device)
    req = PipelineRequest(tuple(kernels), spec, ActivationSpec(args.activation, args.slope), pool)
    res = run_pipeline(image.pixels, req, device=device)
    h, w = image.pixels.shape[:2]
    print(f"input   {h}×{w} ({'RGB' if image.pixels.ndim == 3 else 'gray'}) → {args.channels} mode, "
          f"{len(kernels)} kernel(s) {kernels[0].size[0]}×{kernels[0].size[1]}")
    print(f"conv    {tuple(res.conv.shape)}")
    print(f"        H: {res.conv_shape.formula_h}")
    print(f"        W: {res.conv_shape.formula_w}")
    print(f"activation {args.activation} {tuple(res.activation.shape)}")
    if res.pool is not None and res.pool_shape is not None:
        print(f"pool    {args.pool} {tuple(res.pool.shape)}")
        print(f"        H: {res.pool_shape.formula_h}")
        print(f"        W: {res.pool_shape.formula_w}")
    if args.npz:
        arrays = {"conv": res.conv.astype(np.float32), "activation": res.activation.astype(np.float32)}
        if res.pool is not None:
            arrays["pool"] = res.pool.astype(np.float32)
        _save_npz(args.npz, arrays)
        print(f"wrote {args.npz}")
    if args.png:
        from ..core.images import save_png
        from ..core.playground import last_stage_picture

        # the bytes the playground's view draws: one kernel, or a bank's mosaic (transparent gaps)
        save_png(args.png, last_stage_picture(image.pixels, req, device))
        print(f"wrote {args.png}")
    return 0


def _save_npz(path: str, arrays: dict) -> None:
    p = Path(path)
    if p.suffix != ".npz":
        raise SpecError(f"--npz needs a .npz file name, got '{path}'", "end the name with .npz")
    if not p.parent.exists():
        raise SpecError(f"folder '{p.parent}' does not exist", "create it or choose another path")
    from ..core.files import atomic_write
    from ..core.npz import write_npz

    try:
        atomic_write(p, lambda fh: write_npz(fh, arrays.items(), len(arrays)), "wb", make_parents=False)
    except OSError as exc:
        raise SpecError(f"cannot write '{path}': {exc.strerror}", "check the folder's permissions") from None


def main(argv: list[str] | None = None) -> int:
    """``python -m cnnviz.commands.convolve ...``: the same as ``cnnviz convolve ...``."""
    return run_subcommand("convolve", add_parser, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
