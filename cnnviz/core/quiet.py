"""Library log output that is not for the user, captured instead of printed.

PyTorch logs a multi-line traceback on stderr when, for example, ``torch.export.load``
cannot deserialize a graph, and then raises an exception that says "check the warnings
above". cnnviz reports every failure as one line of its own; the library's log records and
warnings are collected here while a library call runs, so the caller can quote the useful
line (:func:`first_line`) and nothing else reaches the terminal.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import warnings
from collections.abc import Iterator

_lock = threading.Lock()
_active: list[list[logging.LogRecord]] = []  # one list per block running now (any thread)
_saved: list[tuple[logging.Logger, list[logging.Handler], bool]] = []


class _Collect(logging.Handler):
    """Hands each record to every block that is collecting now."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)

    def emit(self, record: logging.LogRecord) -> None:
        with _lock:
            targets = list(_active)
        for records in targets:
            records.append(record)


_handler = _Collect()


def _swap_in(prefixes: tuple[str, ...]) -> None:
    for name, obj in list(logging.root.manager.loggerDict.items()):
        if isinstance(obj, logging.Logger) and any(name == p or name.startswith(p + ".") for p in prefixes):
            if obj.handlers or name in prefixes:
                _saved.append((obj, list(obj.handlers), obj.propagate))
                obj.handlers, obj.propagate = [_handler], False
    for p in prefixes:  # a top logger that did not exist yet
        top = logging.getLogger(p)
        if not any(lg is top for lg, _, _ in _saved):
            _saved.append((top, list(top.handlers), top.propagate))
            top.handlers, top.propagate = [_handler], False


@contextlib.contextmanager
def captured_library_logs(prefixes: tuple[str, ...] = ("torch",)) -> Iterator[list[logging.LogRecord]]:
    """Collect the log records of the libraries named by ``prefixes`` (and the warnings of
    this block) while it runs; yields the list they are appended to. Blocks may run in
    several threads at once: the first swaps the loggers' handlers, the last puts them back.
    """
    records: list[logging.LogRecord] = []
    with _lock:
        if not _active:
            _swap_in(prefixes)
        _active.append(records)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield records
        for w in caught:
            records.append(logging.makeLogRecord({"msg": f"{w.category.__name__}: {w.message}",
                                                  "levelno": logging.WARNING, "name": "warnings"}))
    finally:
        with _lock:
            _active.remove(records)
            if not _active:
                while _saved:
                    logger, handlers, propagate = _saved.pop()
                    logger.handlers, logger.propagate = handlers, propagate


_EXC_LINE = re.compile(r"^(?:[A-Za-z_][\w]*\.)*([A-Za-z_]\w*(?:Error|Exception)): (.+)$")


def first_line(records: list[logging.LogRecord], limit: int = 240) -> str | None:
    """The line that says what went wrong: the first exception line (``SerializeError: We
    failed to resolve builtins.eval…``, cut to its first sentence) in the captured records,
    else the first meaningful line of the most severe record; None when nothing was said."""
    texts = []
    for record in sorted(records, key=lambda r: -r.levelno):
        exc = record.exc_info[1] if record.exc_info else None
        seen = 0
        while exc is not None and (exc.__cause__ or exc.__context__) is not None and seen < 20:
            exc, seen = exc.__cause__ or exc.__context__, seen + 1  # the root cause says most
        if exc is not None:
            texts.append(f"{type(exc).__name__}: {exc}")
        try:
            texts.append(record.getMessage())
        except Exception:  # noqa: BLE001 - a record with a bad format string
            texts.append(str(record.msg))
    for text in texts:
        for line in text.splitlines():
            m = _EXC_LINE.match(line.strip())
            if m:
                sentence = re.split(r"(?<=[.!?])\s", m.group(2), maxsplit=1)[0]
                return f"{m.group(1)}: {sentence}"[:limit]
    for text in texts:
        for line in text.splitlines():
            line = line.strip()
            if sum(c.isalnum() for c in line) >= 3:
                return line[:limit]
    return None
