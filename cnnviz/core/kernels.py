"""Kernels: validated weight arrays, presets, operations and files.

A :class:`Kernel` is immutable: every operation (normalize, flip, rotate, …) returns a new
kernel, which is what makes undo/redo in the window trivial. Weights are float32 arrays of
shape ``(kH, kW)`` — or ``(C, kH, kW)`` for the ``full`` channel mode — with 1 ≤ kH, kW ≤ 11.

Files
-----
A kernel file is JSON::

    {"schema": "cnnviz.kernels", "version": 1,
     "kernels": [{"name": "my edge", "weights": [[-1, 0, 1], ...], "divisor": 1, "offset": 0}]}

A bare nested list (``[[-1,0,1],[-2,0,2],[-1,0,1]]``) or a single kernel object is accepted
too. Files are read and written through :mod:`cnnviz.core.files`: regular files only, at
most :data:`MAX_FILE_BYTES`, JSON depth and integer size bounded; writes are atomic.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import KernelError
from .files import atomic_write, atomic_write_text, load_json_bounded, umask as _umask  # noqa: F401 - re-exported
from .resources import resources_dir

MAX_SIDE = 11
SCHEMA = "cnnviz.kernels"
SCHEMA_VERSION = 1

RESOURCES = resources_dir()
PRESETS_PATH = RESOURCES / "kernels" / "presets.json"

#: Largest kernel file (or preset file) read; real ones are a few KB.
MAX_FILE_BYTES = 10_000_000
#: Most kernels one file, literal or preset may hold (the bank itself is capped by the
#: pipeline's budget of kernels × output pixels, see ``conv``).
MAX_KERNELS_PER_FILE = 4096


def _as_weights(values: Any, *, what: str = "kernel") -> np.ndarray:
    """Turn nested lists / arrays into a validated float32 array, or raise KernelError."""
    if isinstance(values, np.ndarray):
        arr = values
    else:
        if isinstance(values, (str, bytes)):
            raise KernelError(f"{what} must be numbers, not text {values!r}",
                              "write it as rows of numbers, e.g. [[-1,0,1],[-2,0,2],[-1,0,1]]")
        if not isinstance(values, (list, tuple)):
            raise KernelError(f"{what} must be a list of rows, got {type(values).__name__}",
                              "write it as rows of numbers, e.g. [[0,1,0],[1,-4,1],[0,1,0]]")
        if len(values) == 0:
            raise KernelError(f"{what} is empty", "give at least one row with one number")
        # Ragged rows are the most common typing mistake: name the row.
        if all(isinstance(r, (list, tuple)) for r in values):
            if all(all(isinstance(c, (list, tuple)) for c in r) for r in values) and values and values[0]:
                # (C, kH, kW) given as lists of lists of lists
                pass
            else:
                widths = [len(r) for r in values]
                for i, w in enumerate(widths):
                    if w != widths[0]:
                        raise KernelError(
                            f"{what} is ragged: row {i + 1} has {w} values, row 1 has {widths[0]}",
                            "give every row the same number of values")
        try:
            arr = np.asarray(values, dtype=np.float64)
        except OverflowError:
            raise KernelError(f"{what} has a number too large for a kernel weight",
                              "use values below 3.4e38") from None
        except (ValueError, TypeError) as exc:
            raise KernelError(f"{what} has values that are not numbers or rows of unequal length ({exc})",
                              "use only numbers, the same count in every row") from None
    if arr.dtype == object:
        raise KernelError(f"{what} rows have unequal lengths", "give every row the same number of values")
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
        raise KernelError(f"{what} must hold numbers, got {arr.dtype}", "use only numbers")
    if arr.ndim == 1:
        raise KernelError(f"{what} is a flat list of {arr.size} numbers, not rows",
                          "wrap it as rows, e.g. [[1,2,1]] for one row")
    if arr.ndim not in (2, 3):
        raise KernelError(f"{what} has {arr.ndim} dimensions", "give rows (kH×kW) or channels of rows (C×kH×kW)")
    if arr.size == 0:
        raise KernelError(f"{what} is empty", "give at least one row with one number")
    kh, kw = arr.shape[-2:]
    if kh > MAX_SIDE or kw > MAX_SIDE:
        raise KernelError(f"{what} is {kh}×{kw}; the largest supported is {MAX_SIDE}×{MAX_SIDE}",
                          "use a smaller kernel (or dilation to cover a wider area)")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        pos = ", ".join(str(int(i) + 1) for i in bad)
        raise KernelError(f"{what} has a value that is not finite ({arr[tuple(bad)]}) at position ({pos})",
                          "replace NaN/inf with a number")
    with np.errstate(over="ignore"):  # an overflow is reported just below
        out = np.ascontiguousarray(arr, dtype=np.float32)
    if np.any(np.isinf(out)):
        raise KernelError(f"{what} has a value too large for float32", "use values below 3.4e38")
    out.setflags(write=False)
    return out


#: Largest Σ|weights| / divisor: every output of a [0, 1] picture stays finite in float32.
MAX_ABS_SUM = 1e37


@dataclass(frozen=True, eq=False)
class Kernel:
    """An immutable convolution kernel.

    ``divisor`` and ``offset`` follow image editors' convolution matrices: the map is
    ``conv(x, weights) / divisor + offset`` (the offset is added like a bias).
    """

    weights: np.ndarray
    name: str = "custom"
    divisor: float = 1.0
    offset: float = 0.0
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", _as_weights(self.weights, what=f"kernel '{self.name}'"))
        d = float(self.divisor)
        if not math.isfinite(d) or d == 0.0:
            raise KernelError(f"kernel '{self.name}' divisor is {self.divisor}", "use a finite, non-zero divisor")
        if not math.isfinite(float(self.offset)):
            raise KernelError(f"kernel '{self.name}' offset is {self.offset}", "use a finite offset")
        # Inputs are in [0, 1], so |output| <= Σ|weights| / divisor + |offset|: keeping that sum
        # inside float32 means no kernel can turn a picture into inf (a histogram of inf breaks).
        total = float(np.abs(self.weights.astype(np.float64)).sum() / abs(d))
        if not total <= MAX_ABS_SUM:
            why = f"divisor {self.divisor:g} makes its weights" if d != 1.0 else "its weights are"
            raise KernelError(f"kernel '{self.name}': {why} too large for float32 (Σ|w| = {total:.3g})",
                              f"use a larger divisor or smaller weights (Σ|w| at most {MAX_ABS_SUM:.0e})")
        object.__setattr__(self, "divisor", d)
        object.__setattr__(self, "offset", float(self.offset))

    # -- views -----------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.weights.shape)

    @property
    def size(self) -> tuple[int, int]:
        """(kH, kW)."""
        return int(self.weights.shape[-2]), int(self.weights.shape[-1])

    @property
    def channels(self) -> int | None:
        """C for a (C, kH, kW) kernel, None for a plain 2-D one."""
        return int(self.weights.shape[0]) if self.weights.ndim == 3 else None

    @property
    def sum(self) -> float:
        return float(self.weights.astype(np.float64).sum())

    def effective(self) -> np.ndarray:
        """Weights divided by the divisor (float32): what the convolution really uses."""
        if self.divisor == 1.0:
            return self.weights
        return (self.weights.astype(np.float64) / self.divisor).astype(np.float32)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Kernel):
            return NotImplemented
        return (self.name == other.name and self.divisor == other.divisor and self.offset == other.offset
                and self.weights.shape == other.weights.shape and bool(np.array_equal(self.weights, other.weights)))

    def __hash__(self) -> int:
        return hash((self.name, self.divisor, self.offset, self.weights.shape, self.weights.tobytes()))

    # -- operations (each returns a new kernel) --------------------------------------
    def with_weights(self, weights: Any) -> "Kernel":
        return replace(self, weights=weights)

    def with_value(self, row: int, col: int, value: float, channel: int | None = None) -> "Kernel":
        w = np.array(self.weights, dtype=np.float32)
        if w.ndim == 3:
            if channel is None:
                w[:, row, col] = value
            else:
                w[channel, row, col] = value
        else:
            w[row, col] = value
        return replace(self, weights=w)

    def normalized(self) -> "Kernel":
        """Divide by the sum when the sum is not 0 (a blur then keeps brightness)."""
        s = self.sum
        if abs(s) < 1e-12:
            return self
        return replace(self, weights=(self.weights.astype(np.float64) / s).astype(np.float32), divisor=1.0)

    def with_divisor(self, divisor: float) -> "Kernel":
        return replace(self, divisor=divisor)

    def with_offset(self, offset: float) -> "Kernel":
        return replace(self, offset=offset)

    def flipped_h(self) -> "Kernel":
        return replace(self, weights=self.weights[..., :, ::-1].copy())

    def flipped_v(self) -> "Kernel":
        return replace(self, weights=self.weights[..., ::-1, :].copy())

    def flipped(self) -> "Kernel":
        """Rotate by 180° — turns cross-correlation into true convolution."""
        return replace(self, weights=self.weights[..., ::-1, ::-1].copy())

    def rotated90(self, k: int = 1) -> "Kernel":
        """Rotate counter-clockwise by ``k`` × 90°."""
        return replace(self, weights=np.rot90(self.weights, k, axes=(-2, -1)).copy())

    def transposed(self) -> "Kernel":
        return replace(self, weights=np.swapaxes(self.weights, -1, -2).copy())

    def negated(self) -> "Kernel":
        return replace(self, weights=-self.weights)

    def resized(self, kh: int, kw: int | None = None) -> "Kernel":
        """Centre-crop or zero-pad to kh×kw (keeps the centre where it is)."""
        kw = kh if kw is None else kw
        if not (1 <= kh <= MAX_SIDE and 1 <= kw <= MAX_SIDE):
            raise KernelError(f"kernel size {kh}×{kw} is out of range", f"use 1 to {MAX_SIDE}")
        w = self.weights
        lead = w.shape[:-2]
        out = np.zeros(lead + (kh, kw), dtype=np.float32)
        oh, ow = w.shape[-2:]
        # copy the overlapping centred block
        sy0, dy0 = max(0, (oh - kh) // 2), max(0, (kh - oh) // 2)
        sx0, dx0 = max(0, (ow - kw) // 2), max(0, (kw - ow) // 2)
        h, wd = min(oh, kh), min(ow, kw)
        out[..., dy0:dy0 + h, dx0:dx0 + wd] = w[..., sy0:sy0 + h, sx0:sx0 + wd]
        return replace(self, weights=out)

    def expanded(self, channels: int) -> "Kernel":
        """A (C, kH, kW) kernel for ``full`` mode: the 2-D kernel on every channel, ÷ C."""
        if self.weights.ndim == 3:
            if self.weights.shape[0] != channels:
                raise KernelError(f"kernel '{self.name}' has {self.weights.shape[0]} channels, the image has {channels}",
                                  "use a kernel with one slice per image channel")
            return self
        w = np.repeat(self.weights[None], channels, axis=0) / channels
        return replace(self, weights=w.astype(np.float32))

    # -- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "weights": self.weights.tolist()}
        if self.divisor != 1.0:
            d["divisor"] = self.divisor
        if self.offset != 0.0:
            d["offset"] = self.offset
        if self.description:
            d["description"] = self.description
        return d

    @classmethod
    def from_dict(cls, d: Any, *, where: str = "kernel") -> "Kernel":
        if not isinstance(d, dict):
            return cls(weights=_as_weights(d, what=where))
        if "weights" not in d:
            raise KernelError(f"{where} has no 'weights'", "add \"weights\": [[...], ...]")
        name = str(d.get("name", "custom"))
        try:
            divisor = float(d.get("divisor", 1.0))
            offset = float(d.get("offset", 0.0))
        except (TypeError, ValueError, OverflowError):
            raise KernelError(f"{where} '{name}' has a divisor/offset that is not a number",
                              "use numbers for divisor and offset") from None
        return cls(weights=_as_weights(d["weights"], what=f"{where} '{name}'"), name=name,
                   divisor=divisor, offset=offset, description=str(d.get("description", "")))


# ---------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Preset:
    """A named kernel (or bank of kernels) from ``resources/kernels/presets.json``."""

    name: str          # slug used on the CLI: "sobel-x"
    title: str         # shown in menus: "Sobel x"
    group: str         # menu group: "Edges", "Blur", …
    kernels: tuple[Kernel, ...] = field(default_factory=tuple)

    @property
    def is_bank(self) -> bool:
        return len(self.kernels) > 1

    @property
    def kernel(self) -> Kernel:
        return self.kernels[0]


def _file_version(data: dict, where: str, default: int) -> int:
    """The ``version`` of a kernel/presets file as an int, or a KernelError naming it."""
    v = data.get("version", default)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise KernelError(f"{where} has version {v!r}, not a whole number",
                          f"use \"version\": {SCHEMA_VERSION}, or save the kernel again from cnnviz")
    return v


def _parse_presets(data: Any, where: str) -> dict[str, Preset]:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise KernelError(f"{where} is not a cnnviz kernel file", f"expected \"schema\": \"{SCHEMA}\"")
    if _file_version(data, where, 0) > SCHEMA_VERSION:
        raise KernelError(f"{where} is version {data.get('version')}, newer than this cnnviz understands "
                          f"({SCHEMA_VERSION})", "update cnnviz")
    out: dict[str, Preset] = {}
    for entry in data.get("presets", []):
        name = entry["name"]
        raw = entry.get("kernels") or [entry]
        ks = tuple(Kernel.from_dict({**k, "name": k.get("name", name)}, where=f"preset '{name}'") for k in raw)
        out[name] = Preset(name=name, title=entry.get("title", name), group=entry.get("group", "Other"), kernels=ks)
    return out


@lru_cache(maxsize=1)
def presets() -> dict[str, Preset]:
    """All bundled presets by slug, in menu order."""
    data = load_json_bounded(PRESETS_PATH, MAX_FILE_BYTES, "presets file", error=KernelError, from_path=True)
    return _parse_presets(data, str(PRESETS_PATH))


def preset(name: str) -> Preset:
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    table = presets()
    if key not in table:
        close = [n for n in table if key[:3] in n][:5] or list(table)[:8]
        raise KernelError(f"unknown preset '{name}'", f"choose one of: {', '.join(close)} (all: cnnviz convolve --list-presets)")
    return table[key]


# ---------------------------------------------------------------------------------
# Parsing and files
# ---------------------------------------------------------------------------------
def parse_kernels(text: str) -> list[Kernel]:
    """Parse a CLI kernel argument: a preset name, a JSON literal or a kernel file path.

    Returns a list because a preset bank or a file may hold several kernels.
    """
    s = text.strip()
    if not s:
        raise KernelError("empty kernel", "give a preset name (sobel-x), a literal [[...]] or a kernel file")
    if s[0] in "[{":
        try:
            data = load_json_bounded(s.encode("utf-8", "surrogateescape"), MAX_FILE_BYTES, "kernel literal",
                                     error=KernelError)
        except KernelError as exc:
            raise KernelError(exc.cause, "write it like [[-1,0,1],[-2,0,2],[-1,0,1]]") from None
        return _kernels_from_data(data, where="kernel literal")
    p = Path(s)
    if p.suffix.lower() == ".json" or p.exists():
        return load_kernel_file(p)
    return list(preset(s).kernels)


def _kernels_from_data(data: Any, where: str) -> list[Kernel]:
    if isinstance(data, dict) and "kernels" in data:
        if data.get("schema", SCHEMA) != SCHEMA:
            raise KernelError(f"{where} has schema {data.get('schema')!r}", f"expected {SCHEMA!r}")
        if _file_version(data, where, 1) > SCHEMA_VERSION:
            raise KernelError(f"{where} is version {data.get('version')}, newer than this cnnviz", "update cnnviz")
        raw = data["kernels"]
        if not isinstance(raw, list) or not raw:
            raise KernelError(f"{where} has no kernels", "add at least one kernel to \"kernels\"")
        if len(raw) > MAX_KERNELS_PER_FILE:
            raise KernelError(f"{where} holds {len(raw)} kernels; at most {MAX_KERNELS_PER_FILE} are accepted",
                              "split the bank into smaller files")
        return [Kernel.from_dict(k, where=f"{where} kernel {i + 1}") for i, k in enumerate(raw)]
    if isinstance(data, dict):
        return [Kernel.from_dict(data, where=where)]
    return [Kernel(weights=_as_weights(data, what=where))]


def load_kernel_file(path: str | os.PathLike) -> list[Kernel]:
    """The kernels of a kernel JSON file (see the module docstring), or a KernelError."""
    p = Path(path)
    data = load_json_bounded(p, MAX_FILE_BYTES, "kernel file", error=KernelError, from_path=True)
    return _kernels_from_data(data, where=f"kernel file '{p.name}'")


def kernels_to_json(kernels: Iterable[Kernel]) -> str:
    return json.dumps({"schema": SCHEMA, "version": SCHEMA_VERSION,
                       "kernels": [k.to_dict() for k in kernels]}, indent=1)


def save_kernel_file(path: str | os.PathLike, kernels: Sequence[Kernel] | Kernel) -> None:
    ks = [kernels] if isinstance(kernels, Kernel) else list(kernels)
    if not ks:
        raise KernelError("nothing to save", "add a kernel first")
    atomic_write_text(path, kernels_to_json(ks))
