"""The ``cnnviz`` command.

``cnnviz`` with no arguments opens the window. Subcommands:

- ``cnnviz convolve IMAGE --kernel K …``   run the kernel pipeline, write .npz/.png
- ``cnnviz inspect MODEL [IMAGE] --out DIR``  capture every layer of a model
- ``cnnviz bench [--json] [--device …] [--gui|--live|--model|--soak]``  benchmarks

Bad input of any kind prints one line on stderr naming the cause (and the fix), exits
with code 2, and never shows a traceback. Set ``CNNVIZ_DEBUG=1`` to see tracebacks of
unexpected errors.
"""

from __future__ import annotations

import argparse
import os
import sys

from .core.errors import CnnvizError

EXIT_BAD_INPUT = 2

_CONTROL = {c: f"\\x{c:02x}" for c in range(32)} | {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): " ", 127: "\\x7f"}


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters written as escapes, so an error
    that quotes a user's argument (a path with a newline in it) stays one line."""
    return str(text).translate(_CONTROL)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {one_line(message)} (see '{self.prog} --help')\n")


def build_parser() -> OneLineParser:
    from . import __version__

    p = OneLineParser(prog="cnnviz", description="See convolutional neural networks work.")
    p.add_argument("--version", action="version", version=f"cnnviz {__version__}")
    p.add_argument("--self-test", action="store_true",
                   help="run the kernel pipeline and the demo model headless, render one frame, and exit")
    sub = p.add_subparsers(dest="command", parser_class=OneLineParser)
    from .commands import convolve

    convolve.add_parser(sub)
    try:
        from .commands import inspect as inspect_cmd

        inspect_cmd.add_parser(sub)
    except ImportError:  # pragma: no cover - during development only
        pass
    from .commands import bench, evaluate, train

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
    debug = bool(os.environ.get("CNNVIZ_DEBUG"))
    try:
        if not argv:
            return _run_gui()
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if (extra and getattr(args, "command", None) == "inspect" and args.image is None and len(extra) == 1
                and not extra[0].startswith("-")):
            # argparse (before Python 3.12) does not take an optional positional after options:
            # `inspect net.py:Net --trust photo.png` names the image last
            args.image, extra = extra[0], []
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
    except CnnvizError as exc:
        print(f"cnnviz: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("cnnviz: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("cnnviz: error: out of memory; use a smaller image or fewer kernels", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # an unexpected bug: one line, the traceback only on request
        if debug:
            raise
        print(f"cnnviz: internal error: {type(exc).__name__}: {one_line(exc)} (set CNNVIZ_DEBUG=1 for details)",
              file=sys.stderr)
        return 1


def gui_main() -> int:
    return _run_gui()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
