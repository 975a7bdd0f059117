"""The ``cnnviz`` command.

``cnnviz`` with no arguments opens the window. Subcommands:

- ``cnnviz convolve IMAGE --kernel K …``   run the kernel pipeline, write .npz/.png
- ``cnnviz inspect MODEL [IMAGE] --out DIR``  capture every layer of a model
- ``cnnviz visualize MODEL --layer L [--channel C | --all] --out DIR``  feature visualization
- ``cnnviz top-images MODEL FOLDER --layer L [--k 9] --out DIR``  dataset examples
- ``cnnviz adversarial MODEL IMAGE [--target C] [--eps E] --out DIR``  adversarial example
- ``cnnviz bench [--json] [--device …] [--gui|--live|--model|--soak]``  benchmarks

Bad input of any kind prints one line on stderr naming the cause (and the fix), exits
with code 2, and never shows a traceback. Set ``CNNVIZ_DEBUG=1`` to see tracebacks of
unexpected errors.
"""

from __future__ import annotations

import sys

from .commands.common import EXIT_BAD_INPUT, OneLineParser, one_line, run_guarded

__all__ = ["EXIT_BAD_INPUT", "build_parser", "gui_main", "main", "one_line"]


def build_parser() -> OneLineParser:
    from . import __version__

    p = OneLineParser(prog="cnnviz", description="See convolutional neural networks work.")
    p.add_argument("--version", action="version", version=f"cnnviz {__version__}")
    p.add_argument("--self-test", action="store_true",
                   help="run the kernel pipeline and the demo model headless, render one frame, and exit")
    sub = p.add_subparsers(dest="command", parser_class=OneLineParser)
    from .commands import bench, convolve, evaluate, train
    from .commands import inspect as inspect_cmd

    convolve.add_parser(sub)
    inspect_cmd.add_parser(sub)
    from .commands import adversarial, top_images, visualize

    for command in (visualize, top_images, adversarial):
        command.add_parser(sub)
    bench.add_parser(sub)
    train.add_parser(sub)
    evaluate.add_parser(sub)
    g = sub.add_parser("gui", help="open the window (the default with no arguments)")
    g.add_argument("image", nargs="?", help="image to open")
    g.add_argument("--inspector", action="store_true", help="open the model inspector")
    return p


def _run_gui(image: str | None = None, inspector: bool = False) -> int:
    from .qt_deps import check_gui_environment

    problem = check_gui_environment()
    if problem:
        print(f"cnnviz: {one_line(problem)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from .qt.app import run_app

    return run_app(image=image, inspector=inspector)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_guarded(lambda: _dispatch(argv))


def _dispatch(argv: list[str]) -> int:
    if not argv:
        return _run_gui()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "command", None) == "inspect":
        from .commands import inspect as inspect_cmd

        extra = inspect_cmd.take_image_last(args, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.self_test:
        from .selftest import run_self_test

        return run_self_test()
    if args.command is None:
        return _run_gui()
    if args.command == "gui":
        return _run_gui(args.image, args.inspector)
    return int(args.func(args) or 0)


def gui_main() -> int:
    return _run_gui()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
