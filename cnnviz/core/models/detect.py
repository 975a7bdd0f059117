"""Format detection: what kind of model file this is, from its bytes (never the extension).

Runs nothing from the file: archives are listed, pickles are disassembled (:func:`_pickle_scan`).
Detection is only a routing decision, never the safety boundary."""

from __future__ import annotations

import _compat_pickle
import ast
import functools
import io
import os
import pickletools
import traceback
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnviz.core.archive_guard import check_torch_zip
from cnnviz.core.errors import ModelLoadError
from cnnviz.core.files import open_regular

FORMATS = ("torchscript", "export", "pickle", "state_dict", "safetensors", "python")

# Bounds that keep a hostile file from making detection allocate or loop without end.
_MAX_PICKLE_RECORD = 256 << 20  # data.pkl inside a torch zip; real ones are kilobytes
_MAX_PYTHON_SOURCE = 8 << 20
_LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C  # first pickle of a pre-1.6 torch.save file


@dataclass(frozen=True)
class _Detection:
    format: str
    container: str  # "zip" | "legacy-torch" | "pickle" | "safetensors" | "text"
    unsafe_globals: tuple[str, ...] = ()


class _BoundedReader:
    """File wrapper for pickletools: never asks the OS for more than the file holds.

    A hostile length field (``BINBYTES8`` of 2**60) would otherwise make ``read(n)``
    allocate ``n`` bytes up front.
    """

    def __init__(self, f, size: int):
        self._f = f
        self._size = size

    def _remaining(self) -> int:
        return max(0, self._size - self._f.tell())

    def read(self, n: int = -1) -> bytes:
        rem = self._remaining()
        return self._f.read(rem if n is None or n < 0 or n > rem else n)

    def readline(self, limit: int = -1) -> bytes:
        return self._f.readline(min(self._remaining(), 1 << 20))

    def tell(self) -> int:
        return self._f.tell()


_PICKLE_STRING_OPS = frozenset(
    {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
)
_PICKLE_NO_PUSH_OPS = frozenset({"MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "FRAME", "PROTO", "MARK"})


def _global_name(module: str, name: str) -> str:
    # Protocol-2 pickles (torch.save's) say "__builtin__"; unpickling maps the Python 2 names
    # to Python 3 ones, and so does torch's allowlist check.
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"


def _unsafe_first(names: set[str]) -> tuple[str, ...]:
    # Show what is alarming (builtins.eval, posix.system) before torch's own classes.
    return tuple(sorted(names, key=lambda n: (n.startswith("torch."), n)))


def _pickle_scan(stream) -> tuple[set[str], object]:
    """Statically list the globals one pickle refers to; return ``(globals, first_int)``.

    ``first_int`` is the pickle's value when it is just an integer (the legacy torch magic
    number), else ``None``. Nothing is unpickled. ``STACK_GLOBAL`` names are recovered from
    the strings pushed before it; when they cannot be (a name computed at run time) a
    placeholder is reported, which makes the file count as needing trust.
    Raises whatever ``pickletools.genops`` raises on a damaged or non-pickle stream.
    """
    found: set[str] = set()
    memo: dict[int, object] = {}
    recent: list[object] = []
    first_int: object = None
    pushed = False
    for op, arg, _pos in pickletools.genops(stream):
        name = op.name
        if name in ("GLOBAL", "INST"):
            module, _, qual = str(arg).partition(" ")
            found.add(_global_name(module, qual))
            recent.append(None)
        elif name == "STACK_GLOBAL":
            if len(recent) >= 2 and isinstance(recent[-2], str) and isinstance(recent[-1], str):
                found.add(_global_name(recent[-2], recent[-1]))
            else:
                found.add("<a global chosen while unpickling>")
            recent.append(None)
        elif name in _PICKLE_STRING_OPS:
            recent.append(arg.decode("latin-1") if isinstance(arg, bytes) else str(arg))
        elif name == "MEMOIZE":
            memo[len(memo)] = recent[-1] if recent else None
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(arg)] = recent[-1] if recent else None
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            recent.append(memo.get(int(arg)))
        elif name == "STOP":
            return found, first_int
        elif name not in _PICKLE_NO_PUSH_OPS:
            if not pushed and name in ("LONG1", "LONG4", "INT", "BININT", "LONG"):
                first_int = arg
            recent.append(None)
        pushed = pushed or name not in _PICKLE_NO_PUSH_OPS
        del recent[:-2]
    raise ValueError("pickle ended without STOP")


@functools.lru_cache(maxsize=1)
def _numpy_safe_globals() -> tuple:
    """numpy arrays, scalars and dtypes, which training scripts leave in checkpoints
    (``"acc": np.float64(0.93)``), as ``(object, name in the pickle)`` pairs. Rebuilding them
    runs no code from the file (an object array's items still need allowed globals), so
    weights-only loading accepts them (torch documents this allowlist for numpy). Names as
    numpy 1 (``numpy.core``) and numpy 2 (``numpy._core``) write them."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    pairs = [(np.ndarray, "numpy.ndarray"), (np.dtype, "numpy.dtype")]
    for fn in (multiarray._reconstruct, multiarray.scalar):
        for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
            pairs.append((fn, f"{mod}.{fn.__name__}"))
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25 pickles some dtypes by class
    for name in dir(dtypes) if dtypes is not None else ():
        cls = getattr(dtypes, name)
        if name.endswith("DType") and isinstance(cls, type):
            pairs.append((cls, f"numpy.dtypes.{name}"))
    return tuple(pairs)


def _allowed_globals() -> set[str]:
    """The globals ``torch.load(weights_only=True)`` accepts: torch's own allowlist and numpy's
    arrays and scalars (:func:`_numpy_safe_globals`)."""
    numpy_names = {name for _, name in _numpy_safe_globals()}
    try:
        from torch import _weights_only_unpickler as wou

        return set(wou._get_allowed_globals()) | set(wou._get_user_allowed_globals()) | numpy_names
    except Exception:  # private API moved: fall back to what plain state_dicts use
        return {
            "collections.OrderedDict",
            "torch._utils._rebuild_tensor_v2",
            "torch._utils._rebuild_parameter",
            "torch.Size",
            "torch.device",
            *(f"torch.{n}Storage" for n in ("Float", "Double", "Half", "BFloat16", "Long", "Int",
                                            "Short", "Char", "Byte", "Bool")),
        } | numpy_names


def _open_failed(path: Path, exc: OSError) -> ModelLoadError:
    return ModelLoadError(f"cannot read {path}: {exc.strerror or exc}", "check the path and its permissions")


def _detect(path: str | os.PathLike, what: str = "model file") -> _Detection:
    p = Path(path)
    try:  # a FIFO or a device is refused by its type, before it is opened
        with open_regular(p, what, error=ModelLoadError) as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(16)
    except OSError as exc:
        raise _open_failed(p, exc) from exc
    if size == 0:
        raise ModelLoadError(f"{p.name} is empty (0 bytes)", "save or download the file again")

    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _detect_zip(p)

    det = _detect_pickle_stream(p, size)
    if det is not None:
        return det

    # safetensors: u64 little-endian header length, then a JSON object. The header's sanity
    # is checked when loading, so that a hostile header gets a precise message.
    if size >= 9 and head[8:9] == b"{":
        return _Detection("safetensors", "safetensors")

    if size <= _MAX_PYTHON_SOURCE and _looks_like_python(p):
        return _Detection("python", "text")
    if p.suffix.lower() == ".py" and size <= _MAX_PYTHON_SOURCE:
        _raise_python_syntax_error(p)

    raise ModelLoadError(
        f"{p.name} is not a model or weights file cnnviz can read: it is not a PyTorch archive "
        "(torch.save, torch.jit.save, torch.export.save), a pickle, a safetensors file or "
        "Python source",
        "choose a file saved by PyTorch or safetensors, or name a Python class as file.py:Class",
    )


def _detect_zip(p: Path) -> _Detection:
    damaged_fix = "save or download the file again"
    try:
        with zipfile.ZipFile(p) as zf:
            check_torch_zip(zf, p.name)  # declared sizes and ratios, before anything inflates
            infos = zf.infolist()
            rel = set()
            for info in infos:
                parts = info.filename.split("/", 1)
                rel.add(parts[1] if len(parts) == 2 else parts[0])
            if (
                "archive_format" in rel
                or any(r.startswith("models/") and r.endswith(".json") for r in rel)
                or rel & {"serialized_exported_program.json", "serialized_model.json"}
            ):
                return _Detection("export", "zip")
            if "constants.pkl" in rel or any(r.startswith("code/") for r in rel):
                return _Detection("torchscript", "zip")
            records = [i for i in infos if i.filename.endswith("data.pkl") and i.filename.count("/") <= 1]
            if not records:
                raise ModelLoadError(
                    f"{p.name} is a zip archive but not one PyTorch wrote (no data.pkl, code/ or "
                    "archive_format inside)",
                    "choose the model file itself, not an archive that contains it",
                )
            info = records[0]
            if info.file_size > _MAX_PICKLE_RECORD:
                raise ModelLoadError(
                    f"{p.name}: its object record is {info.file_size} bytes, far more than a "
                    "model or checkpoint needs",
                    "this is not a file cnnviz can load safely",
                )
            data = zf.read(info)
    except ModelLoadError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError) as exc:
        raise ModelLoadError(
            f"{p.name} starts like a zip archive (the container PyTorch saves into) but it is "
            f"truncated or damaged ({exc})",
            damaged_fix,
        ) from exc
    except OSError as exc:
        raise _open_failed(p, exc) from exc
    try:
        globals_, _ = _pickle_scan(io.BytesIO(data))
    except Exception as exc:
        raise ModelLoadError(
            f"{p.name} is a PyTorch archive whose object record is damaged ({exc})", damaged_fix
        ) from exc
    unsafe = _unsafe_first(globals_ - _allowed_globals())
    return _Detection("pickle" if unsafe else "state_dict", "zip", unsafe)


def _detect_pickle_stream(p: Path, size: int) -> _Detection | None:
    """Classify a raw pickle (legacy ``torch.save`` or ``pickle.dump``); None if not a pickle."""
    try:
        with open_regular(p, "model file", error=ModelLoadError) as f:
            reader = _BoundedReader(f, size)
            try:
                globals_, first = _pickle_scan(reader)
            except Exception:
                return None
            if first != _LEGACY_TORCH_MAGIC:
                unsafe = _unsafe_first(globals_)
                if not unsafe:  # plain data (a dict of bytes): no code, but no tensors either
                    raise ModelLoadError(
                        f"{p.name} is a plain Python pickle that holds only data (no tensors), not a "
                        "model or weights file", "save the weights with torch.save(model.state_dict(), path)")
                return _Detection("pickle", "pickle", unsafe)
            # Legacy torch.save: magic, protocol version, sys info, then the object.
            try:
                for _ in range(3):
                    more, _ = _pickle_scan(reader)
                    globals_ |= more
            except Exception as exc:
                raise ModelLoadError(
                    f"{p.name} is an old-style PyTorch file but it is truncated or damaged ({exc})",
                    "save or download the file again",
                ) from exc
    except OSError as exc:
        raise _open_failed(p, exc) from exc
    unsafe = _unsafe_first(globals_ - _allowed_globals())
    return _Detection("pickle" if unsafe else "state_dict", "legacy-torch", unsafe)


def _python_tree(source: bytes) -> ast.Module | None:
    try:
        return ast.parse(source.decode("utf-8"))
    except (UnicodeDecodeError, SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _raise_python_syntax_error(p: Path) -> None:
    """A ``.py`` file that does not parse: say where (parsing runs nothing from it)."""
    try:
        ast.parse(p.read_bytes().decode("utf-8"), filename=p.name)
    except UnicodeDecodeError as exc:
        raise ModelLoadError(f"{p.name} is not UTF-8 text ({exc.reason} at byte {exc.start})",
                             "save the Python file as UTF-8") from exc
    except SyntaxError as exc:
        where = f"line {exc.lineno}" + (f", column {exc.offset}" if exc.offset else "")
        raise ModelLoadError(f"{p.name} has a Python syntax error at {where}: {exc.msg}",
                             f"fix the file (python -m py_compile {p} shows the same)") from exc
    except (OSError, ValueError, RecursionError, MemoryError):
        return


def _looks_like_python(p: Path) -> bool:
    try:
        tree = _python_tree(p.read_bytes())
    except OSError:
        return False
    # A labels file ("cat\ndog") parses as Python too; real model code defines or imports.
    return tree is not None and any(
        isinstance(node, (ast.Import, ast.ImportFrom, ast.ClassDef, ast.FunctionDef))
        for node in tree.body
    )


def python_file_classes(path: Path) -> list[str]:
    tree = _python_tree(path.read_bytes())
    return [n.name for n in tree.body if isinstance(n, ast.ClassDef)] if tree else []


def detect_format(path: str | os.PathLike) -> str:
    """What kind of model file this is, judged from its bytes (never the extension).

    Returns one of ``"torchscript" | "export" | "pickle" | "state_dict" | "safetensors" |
    "python"``. Runs nothing from the file: archives are listed, pickles are disassembled.

    Raises
    ------
    ModelLoadError
        Missing, empty, truncated or unrecognisable file.
    """
    return _detect(path).format


def _describe_exception(exc: BaseException, in_file: Path | None = None) -> str:
    # the first line that says something: torch's messages can start with "\n;" or blank lines
    lines = [ln.strip() for ln in str(exc).splitlines()]
    meaningful = [ln for ln in lines if sum(c.isalnum() for c in ln) >= 3]
    first = f"{type(exc).__name__}: {meaningful[0]}" if meaningful else f"{type(exc).__name__} (no details given)"
    if in_file is not None:
        frames = [fr for fr in traceback.extract_tb(exc.__traceback__) if fr.filename == str(in_file)]
        if frames:
            first += f" (line {frames[-1].lineno})"
    return first[:500]
