"""Class names from a labels file (one per line, a JSON list or a JSON ``{index: name}``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cnnviz.core.errors import ModelLoadError
from cnnviz.core.files import load_json_bounded, read_bounded

_MAX_LABELS_BYTES = 16 << 20  # ImageNet-21k's names are about 1 MB


def load_labels(path: str | os.PathLike) -> list[str]:
    """Class names from a file: one per line, a JSON list, or a JSON dict ``{index: name}``.

    In the dict form gaps are filled with the index as text; values that are lists
    (``{"0": ["n01440764", "tench"]}``, ImageNet's class index) give their last item.
    """
    p = Path(path)
    raw = read_bounded(p, _MAX_LABELS_BYTES, "labels file", error=ModelLoadError)  # FIFO-safe, bounded
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ModelLoadError(f"cannot read labels file {p.name} ({exc})",
                             "give a UTF-8 text file, one class name per line") from exc
    stripped = text.strip()
    if not stripped:
        raise ModelLoadError(f"labels file {p.name} is empty", "write one class name per line")

    def name_of(v: Any) -> str:
        if isinstance(v, (list, tuple)) and v:
            v = v[-1]
        if isinstance(v, (dict, list, tuple)) or v is None:
            raise ModelLoadError(f"labels file {p.name} has a label that is not text: {v!r}",
                                 "give class names as strings")
        return str(v)

    if stripped[0] in "[{":
        try:  # bounded: no deep nesting, no 10,000-digit numbers
            data = load_json_bounded(stripped, _MAX_LABELS_BYTES, f"labels file {p.name}", error=ModelLoadError)
        except ModelLoadError as exc:
            raise ModelLoadError(f"{exc.cause} (it looks like JSON)",
                                 "fix the JSON, or write one class name per line") from None
        if isinstance(data, list):
            return [name_of(v) for v in data]
        if isinstance(data, dict):
            try:
                items = {int(k): name_of(v) for k, v in data.items()}
            except ValueError:
                raise ModelLoadError(f"labels file {p.name}: keys must be class indices (0, 1, …)",
                                     'write {"0": "cat", "1": "dog"}') from None
            if min(items) < 0 or max(items) > 1_000_000:
                raise ModelLoadError(f"labels file {p.name}: class indices must be 0…1000000",
                                     "number classes from 0")
            return [items.get(i, str(i)) for i in range(max(items) + 1)]
        raise ModelLoadError(f"labels file {p.name} holds JSON {type(data).__name__}, not labels",
                             "give a JSON list or a dict {index: name}")
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines
