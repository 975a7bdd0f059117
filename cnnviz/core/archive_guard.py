"""Budgets for archives and weights headers, checked before a single byte is inflated.

PyTorch's archive reader allocates each member by the size the zip *declares*, and the
safetensors library trusts its header. A hostile file can declare far more than it holds:
a 1 MB ``.pth`` whose deflated storage inflates to 1 GiB, a 200 KB one whose ``data.pkl``
is 200 MB, a safetensors header whose tensors all point at the same bytes. These checks
read only the zip's directory (or the header) and refuse such files with one line naming
the lie, so a refused file costs kilobytes, not gigabytes.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable
from typing import Any

from .errors import ModelLoadError

#: ``torch.save`` stores members uncompressed; a compressed member may shrink at most this
#: much (float weights deflate to ~90 %; 50:1 only happens for constant filler).
MAX_INFLATE_RATIO = 50
#: Compressed members smaller than this are never refused for their ratio (tiny records
#: such as ``version`` or a short ``data.pkl`` deflate well).
RATIO_FREE_BYTES = 1 << 20
#: The object record (``data.pkl``, ``constants.pkl``) of a model or checkpoint is
#: kilobytes; a few MB for models with tens of thousands of tensors.
MAX_PICKLE_RECORD = 64 << 20
#: Most members an archive may have (a model with 100,000 tensors stays well below).
MAX_MEMBERS = 1_000_000

_FIX = "this is not a file cnnviz can load safely; save or download it again"


def _mb(n: int) -> str:
    return f"{n / (1 << 20):.1f} MB" if n >= 1 << 20 else f"{n} bytes"


def check_torch_zip(zf: zipfile.ZipFile, name: str, archive_size: int | None = None) -> None:
    """Refuse a torch zip whose directory promises more than the file can hold.

    Checked from the central directory only (nothing is inflated): every member must lie
    inside the file; a compressed member larger than :data:`RATIO_FREE_BYTES` may not
    inflate more than :data:`MAX_INFLATE_RATIO` times; the object records may not exceed
    :data:`MAX_PICKLE_RECORD`; the declared total may not exceed what the file could hold
    at that ratio. Raises :class:`ModelLoadError` naming the member and the numbers.
    """
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ModelLoadError(f"{name} is an archive of {len(infos):,} members, far more than a model has", _FIX)
    if archive_size is None:
        fp: Any = zf.fp
        try:
            archive_size = os.fstat(fp.fileno()).st_size
        except (AttributeError, OSError, ValueError):
            archive_size = None
    total = 0
    for info in infos:
        total += info.file_size
        stored = info.compress_type == zipfile.ZIP_STORED
        if archive_size is not None and info.header_offset + info.compress_size > archive_size:
            raise ModelLoadError(
                f"{name}: archive member {info.filename!r} claims {_mb(info.compress_size)} at byte "
                f"{info.header_offset:,}, beyond the end of the {_mb(archive_size)} file", _FIX)
        if stored and info.file_size != info.compress_size:
            raise ModelLoadError(
                f"{name}: stored archive member {info.filename!r} declares {_mb(info.file_size)} "
                f"but holds {_mb(info.compress_size)}", _FIX)
        if (not stored and info.file_size > RATIO_FREE_BYTES
                and info.file_size > MAX_INFLATE_RATIO * max(info.compress_size, 1)):
            ratio = info.file_size / max(info.compress_size, 1)
            raise ModelLoadError(
                f"{name}: archive member {info.filename!r} would inflate from {_mb(info.compress_size)} "
                f"to {_mb(info.file_size)} ({ratio:,.0f}:1), a decompression bomb (PyTorch never "
                "compresses what it saves)", _FIX)
        base = info.filename.rsplit("/", 1)[-1]
        if base.endswith(".pkl") and info.file_size > MAX_PICKLE_RECORD:
            raise ModelLoadError(
                f"{name}: its object record {info.filename!r} is {_mb(info.file_size)}, far more than a "
                f"model or checkpoint needs (at most {_mb(MAX_PICKLE_RECORD)})", _FIX)
    if archive_size is not None and total > MAX_INFLATE_RATIO * archive_size + RATIO_FREE_BYTES * 16:
        raise ModelLoadError(
            f"{name}: its {len(infos)} members declare {_mb(total)} in all, more than a "
            f"{_mb(archive_size)} archive can hold", _FIX)


def check_tensor_ranges(ranges: Iterable[tuple[str, int, int]], data_len: int, name: str) -> None:
    """Refuse tensors whose byte ranges overlap or leave the data section.

    ``ranges`` are ``(tensor name, begin, end)`` in the data section of ``data_len`` bytes
    (safetensors' ``data_offsets``). A header that points many tensors at the same bytes
    would make the loader copy them once per tensor: N tensors × the file size.
    """
    last_end, last_name = 0, None
    for tname, begin, end in sorted(ranges, key=lambda r: (r[1], r[2])):
        if not 0 <= begin <= end <= data_len:
            raise ModelLoadError(
                f"{name} is not a valid safetensors file: tensor {tname!r} lies at bytes {begin}..{end}, "
                f"outside the {data_len} data bytes in the file", "save or download the file again")
        if begin < last_end:
            raise ModelLoadError(
                f"{name} is not a valid safetensors file: tensors {last_name!r} and {tname!r} share "
                f"bytes {begin}..{min(end, last_end)} (its header lies about where the data is)",
                "save or download the file again")
        if end > last_end:
            last_end, last_name = end, tname
