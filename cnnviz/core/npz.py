"""Write many named arrays to one ``.npz``, one at a time, reporting progress.

The file is what ``np.savez`` writes (an uncompressed zip of ``NAME.npy`` members, read
back by ``np.load``), but without its keyword-argument API — a layer called ``file`` or
``allow_pickle`` would clash there — and without building every array first: an export of
every layer of a large model converts and writes one layer at a time, so memory stays at one
layer and a progress bar can move.
"""

from __future__ import annotations

import zipfile
from typing import Any, Callable, Iterable

import numpy as np


def write_npz(fh: Any, items: Iterable[tuple[str, Any]], total: int | None = None,
              progress: Callable[[int, int | None, str], None] | None = None) -> int:
    """Write ``(name, array)`` pairs into the binary file object ``fh``; returns the count.

    ``items`` may be a generator (arrays are made when needed); ``progress(done, total,
    name)`` is called after each array. Names must be unique; a repeat raises ValueError.
    """
    seen: set[str] = set()
    done = 0
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in items:
            if name in seen:
                raise ValueError(f"two arrays are named '{name}'")
            seen.add(name)
            with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)
            done += 1
            if progress is not None:
                progress(done, total, name)
    return done
