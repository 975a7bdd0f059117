"""What every ``cnnviz`` subcommand shares: one-line errors, exit code 2 for bad input, and
the error policy that turns exceptions into those lines (:func:`run_guarded`).

``cnnviz.cli`` builds the command from the subcommands here and uses the same policy; a
subcommand run on its own (``python -m cnnviz.commands.inspect``) uses it too, so both give
the same messages. Nothing here imports the command line above it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from ..core.errors import CnnvizError

__all__ = ["EXIT_BAD_INPUT", "OneLineParser", "one_line", "run_guarded", "run_subcommand"]

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


def run_guarded(command: Callable[[], int | None]) -> int:
    """Run ``command`` and return its exit code; bad input of any kind becomes one line on
    stderr and exit code 2, an unexpected bug one line and exit code 1 (its traceback only
    with ``CNNVIZ_DEBUG=1``)."""
    debug = bool(os.environ.get("CNNVIZ_DEBUG"))
    try:
        return int(command() or 0)
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


def run_subcommand(name: str, add_parser: Callable, argv: Sequence[str],
                   leftover: Callable[[argparse.Namespace, list[str]], list[str]] | None = None) -> int:
    """Run one subcommand on its own (``python -m cnnviz.commands.NAME ARGS``) exactly as
    ``cnnviz NAME ARGS`` runs it: the same parser, messages and exit codes."""

    def command() -> int:
        parser = OneLineParser(prog="cnnviz")
        add_parser(parser.add_subparsers(dest="command", parser_class=OneLineParser))
        args, extra = parser.parse_known_args([name, *argv])
        if leftover is not None:
            extra = leftover(args, extra)
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return args.func(args)

    return run_guarded(command)
