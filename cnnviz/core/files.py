"""The one module for files: regular-file checks, bounded reads, safe JSON, atomic writes.

Every loader and saver in cnnviz goes through here, so each hazard is handled once:

- **Not a regular file.** ``open()`` on a FIFO waits forever for a writer; a symlink to
  ``/dev/zero`` never ends; a folder or a socket cannot be read. :func:`check_regular_file`
  refuses them *before* anything is opened (after resolving symlinks), and
  :func:`open_regular` opens without blocking and checks the opened descriptor again, so a
  file swapped for a FIFO between the check and the open is refused too.
- **Too big.** :func:`read_bounded` never reads more than ``limit + 1`` bytes, whatever the
  file claims to be.
- **Hostile JSON.** :func:`load_json_bounded` accepts a UTF-8 BOM, refuses nesting deeper
  than :data:`MAX_JSON_DEPTH` before the parser recurses (a ``RecursionError`` never escapes)
  and integers with more than :data:`MAX_JSON_INT_DIGITS` digits.
- **Half-written files.** :func:`atomic_write` writes a temporary file in the same folder,
  fsyncs it, renames it over the target and fsyncs the folder: a crash leaves the old file
  or the new one, never half of one. A new file gets the permissions ``open()`` would give
  it (the umask); an existing file keeps its own.

Errors are raised as the caller's :class:`~cnnviz.core.errors.CnnvizError` subclass
(``error=``), each naming the cause and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import stat
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Callable, Union

from .errors import CnnvizError, a_noun

PathLike = Union[str, "os.PathLike[str]"]

#: Deepest JSON nesting any cnnviz file needs (a kernel file needs 5; settings 4).
MAX_JSON_DEPTH = 64
#: Longest integer literal accepted in JSON (a float32 weight never needs more).
MAX_JSON_INT_DIGITS = 40


def file_kind(mode: int) -> tuple[str, str]:
    """What a non-regular file is, and why it cannot be read, in words."""
    if stat.S_ISDIR(mode):
        return "a folder", ""
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)", " (reading it would wait forever for a writer)"
    if stat.S_ISCHR(mode):
        return "a character device", " (reading it may never end)"
    if stat.S_ISBLK(mode):
        return "a block device", " (a whole disk)"
    if stat.S_ISSOCK(mode):
        return "a socket", ""
    return "a special file", ""


def _label(path: Path) -> str:
    return f"'{os.fsdecode(os.fspath(path))}'"


def _not_regular(path: Path, what: str, mode: int, error: type[CnnvizError]) -> CnnvizError:
    kind, why = file_kind(mode)
    label = _label(path)
    via = ""
    with contextlib.suppress(OSError, RuntimeError):
        if os.path.islink(path):
            via = f" (a link to {os.path.realpath(path)})"
    if stat.S_ISDIR(mode):
        return error(f"{label}{via} is a folder, not {a_noun(what)}", f"choose {a_noun(what)} inside it")
    return error(f"{what} {label}{via} is {kind}, not a regular file{why}",
                 f"save the {what} as an ordinary file on disk and choose that")


def _os_error(path: Path, what: str, exc: OSError, error: type[CnnvizError]) -> CnnvizError:
    label = _label(path)
    if isinstance(exc, FileNotFoundError):
        return error(f"{what} {label} does not exist", "check the path and the name")
    if isinstance(exc, PermissionError):
        return error(f"permission denied reading {label} ({what})",
                     "check the file's permissions, or copy it somewhere you can read")
    if exc.errno == errno.ELOOP:
        return error(f"{what} {label} is a symbolic link that loops", "point it at a real file")
    if exc.errno == errno.ENAMETOOLONG:
        return error(f"the path of {what} {label[:80]}... is too long", "use a shorter path")
    return error(f"cannot read {what} {label}: {exc.strerror or exc}", "check the path and the disk")


def check_regular_file(path: PathLike, what: str = "file", *,
                       error: type[CnnvizError] = CnnvizError) -> os.stat_result:
    """Stat ``path`` (following symlinks) and refuse anything that is not a regular file.

    Nothing is opened: a FIFO, a device, a socket or a folder is refused by its type, and
    a missing or unreadable path by the OS error, each as ``error`` naming cause and fix.
    Returns the stat result of the file the path resolves to.
    """
    p = Path(os.fspath(path))
    try:
        st = os.stat(p)
    except (OSError, ValueError) as exc:  # ValueError: an embedded NUL byte
        if isinstance(exc, ValueError):
            raise error(f"{what} path {p!r} holds a NUL character", "check the path") from None
        raise _os_error(p, what, exc, error) from None
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(p, what, st.st_mode, error)
    return st


def _open_fd(path: Path, flags: int) -> int:
    """``os.open``; a seam for tests that simulate an unreadable file as root."""
    return os.open(path, flags)


def open_regular(path: PathLike, what: str = "file", *,
                 error: type[CnnvizError] = CnnvizError) -> IO[bytes]:
    """Open a regular file for binary reading, for streaming readers.

    The type is checked before opening; the file is then opened with ``O_NONBLOCK`` (a FIFO
    swapped in after the check cannot block the open) and its descriptor checked again.
    The caller closes the returned file (use it in a ``with``).
    """
    p = Path(os.fspath(path))
    check_regular_file(p, what, error=error)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = _open_fd(p, flags)
    except OSError as exc:
        raise _os_error(p, what, exc, error) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(p, what, st.st_mode, error)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _size_text(n: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def read_bounded(path: PathLike, limit: int, what: str = "file", *,
                 error: type[CnnvizError] = CnnvizError) -> bytes:
    """The whole content of a regular file of at most ``limit`` bytes.

    Never reads more than ``limit + 1`` bytes: a file that claims (or turns out) to be
    larger is refused with a message giving its size and the limit.
    """
    p = Path(os.fspath(path))
    with open_regular(p, what, error=error) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > limit:
            raise error(f"{what} {_label(p)} is {_size_text(size)}, more than the {_size_text(limit)} "
                        f"{a_noun(what)} may be", f"choose the right file ({a_noun(what)} is much smaller)")
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise _os_error(p, what, exc, error) from None
    if len(data) > limit:
        raise error(f"{what} {_label(p)} grew past {_size_text(limit)} while it was read",
                    "choose a file that is not being written to")
    return data


# ---------------------------------------------------------------------------------------
# JSON

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_BRACKETS = re.compile(rb"[\[\]{}]")


def json_depth(raw: bytes) -> int:
    """How deeply ``raw`` nests arrays/objects (strings skipped); counted without recursion."""
    depth = deepest = 0
    for m in _BRACKETS.finditer(_STRING.sub(b'""', raw)):
        if m.group() in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
        else:
            depth -= 1
    return deepest


def load_json_bounded(source: bytes | str | PathLike, limit: int = 10_000_000, what: str = "JSON file", *,
                      error: type[CnnvizError] = CnnvizError, max_depth: int = MAX_JSON_DEPTH,
                      from_path: bool | None = None) -> Any:
    """Parse JSON from bytes, text or a file path, refusing what could hurt.

    ``bytes``/``str`` are parsed as they are (``from_path=True`` makes a ``str`` a path);
    anything else is a path read with :func:`read_bounded`. A UTF-8 BOM is accepted. Refused
    with ``error``: more than ``limit`` bytes, text that is not UTF-8, invalid JSON, nesting
    deeper than ``max_depth``, integers longer than :data:`MAX_JSON_INT_DIGITS` digits.
    """
    if isinstance(source, (bytes, bytearray, memoryview)) and not from_path:
        raw = bytes(source)
    elif isinstance(source, str) and not from_path:
        raw = source.encode("utf-8", "surrogatepass")
    else:
        raw = read_bounded(source, limit, what, error=error)  # type: ignore[arg-type]
        what = f"{what} {_label(Path(os.fspath(source)))}"  # type: ignore[arg-type]
    if len(raw) > limit:
        raise error(f"{what} is {_size_text(len(raw))}, more than the {_size_text(limit)} it may be",
                    f"choose the right file ({a_noun(what)} is much smaller)")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{what} is not text (not UTF-8)", f"choose a {what} saved as text") from None
    depth = json_depth(raw)
    if depth > max_depth:
        raise error(f"{what}: nesting {depth} levels deep; at most {max_depth} are accepted",
                    f"choose a real {what} (this one is damaged or hostile)")

    def parse_int(digits: str) -> int:
        if len(digits.lstrip("-")) > MAX_JSON_INT_DIGITS:
            raise error(f"{what}: an integer of {len(digits.lstrip('-'))} digits",
                        f"use numbers of at most {MAX_JSON_INT_DIGITS} digits")
        return int(digits)

    try:
        return json.loads(text, parse_int=parse_int)
    except json.JSONDecodeError as exc:
        raise error(f"{what} is not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno})",
                    f"fix the {what} or save it again") from None
    except RecursionError:  # belt and braces: json_depth should have caught it
        raise error(f"{what}: nesting too deep", f"choose a real {what}") from None
    except ValueError as exc:  # int/str conversion limits
        if isinstance(exc, CnnvizError):
            raise
        raise error(f"{what} holds a value that cannot be read ({exc})", f"fix the {what}") from None


# ---------------------------------------------------------------------------------------
# atomic writes


@lru_cache(maxsize=1)
def umask() -> int:
    """The process's umask (read once; setting it to read it back is not thread-safe, so
    Linux's /proc is asked first)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def fsync_dir(folder: PathLike) -> None:
    """Make a rename in ``folder`` durable where the platform allows it (POSIX); best effort."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: PathLike, data: str | bytes | Callable[[IO[Any]], Any],
                 mode: str | None = None, *, make_parents: bool = True) -> None:
    """Write a file so that a crash leaves either the old or the new file, never half of one.

    ``data`` is the text (UTF-8, no newline translation), the bytes, or a ``write(fh)``
    callable that fills the temporary file (opened in ``mode``: ``"w"`` by default, ``"wb"``
    for binary). The temporary file lives in the same folder, is fsynced and renamed over
    ``path``, and the folder is fsynced. Permissions: an existing file keeps its own, a new
    one gets what ``open()`` would give it under the umask. OSError propagates to the
    caller, which names the file in its own terms; the temporary file never stays behind.
    """
    p = Path(os.fspath(path))
    if isinstance(data, str):
        mode, payload = "w", data
        write: Callable[[IO[Any]], Any] = lambda fh: fh.write(payload)  # noqa: E731
    elif isinstance(data, (bytes, bytearray, memoryview)):
        mode, blob = "wb", bytes(data)
        write = lambda fh: fh.write(blob)  # noqa: E731
    else:
        write, mode = data, mode or "w"
    if make_parents:
        p.parent.mkdir(parents=True, exist_ok=True)
    try:
        perms = stat.S_IMODE(os.stat(p).st_mode)  # an existing file keeps its permissions
    except OSError:
        perms = 0o666 & ~umask()  # a new one gets what open() would give it (mkstemp: 0600)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=str(p.parent))
    try:
        kw = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
        with os.fdopen(fd, mode, **kw) as fh:
            write(fh)
            fh.flush()
            if hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), perms)
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(p.parent)


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, text)


def backup_path_for(path: PathLike, limit: int = 100) -> Path:
    """``<name>.bak``, or ``.bak1``, ``.bak2``… when an older backup exists (never overwritten)."""
    p = Path(os.fspath(path))
    bak = p.with_name(p.name + ".bak")
    n = 0
    while (bak.exists() or bak.is_symlink()) and n < limit:
        n += 1
        bak = p.with_name(f"{p.name}.bak{n}")
    return bak
