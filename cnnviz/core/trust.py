"""Which model files the user has said they trust, remembered by content hash.

TorchScript archives, ``torch.export`` programs, whole pickled modules and Python model
files can run code when they are loaded. cnnviz loads them only after the user says they
trust the file. The window remembers that answer here, keyed by the file's SHA-256: the
same bytes under another name stay trusted, and a file that changed after it was trusted
(even by one byte) is not trusted any more.

The store is a small JSON file::

    {"version": 1, "trusted": {"<sha256>": {"path": "/last/seen/at.pt", "added": "2024-…"}}}

Reads and writes go through :mod:`cnnviz.core.files` (regular files only, bounded reads and
JSON, atomic writes). A store that cannot be parsed — or is not a regular file, or is
implausibly large, or nests too deeply — is moved
aside to ``<name>.bak`` (never silently overwritten) and :attr:`TrustStore.warning` says so;
the store then starts empty, which only means the user is asked again.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import stat
import threading
from pathlib import Path

from cnnviz.core.errors import ModelLoadError, SettingsError
from cnnviz.core.files import atomic_write, file_kind, load_json_bounded, open_regular, read_bounded

_log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
#: Largest store read: 16 MB is about 100,000 trusted files.
MAX_STORE_BYTES = 16 * 1024 * 1024
_HEX = frozenset("0123456789abcdef")


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes as 64 lowercase hex digits."""
    digest = hashlib.sha256()
    with open_regular(path, "model file", error=ModelLoadError) as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _is_sha256(text: object) -> bool:
    return isinstance(text, str) and len(text) == 64 and set(text) <= _HEX


class TrustStore:
    """Remembers trusted model files by SHA-256, persisted in a JSON file.

    Parameters
    ----------
    path:
        The JSON file. It need not exist; its folder is created on the first write.

    Attributes
    ----------
    warning:
        ``None``, or a message to show the user when the store file was corrupt and was
        moved aside to :attr:`backup_path`.
    backup_path:
        Where a corrupt store was moved, or ``None``.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.warning: str | None = None
        self.backup_path: Path | None = None
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, str]] = self._read()

    # -- queries ---------------------------------------------------------------------------

    def is_trusted(self, file: str | os.PathLike) -> bool:
        """Whether the file's current bytes were trusted before. Hashes the whole file."""
        return self.is_trusted_hash(file_sha256(file))

    def is_trusted_hash(self, sha256: str) -> bool:
        with self._lock:
            return sha256.lower() in self._entries

    def trusted_hashes(self) -> list[str]:
        with self._lock:
            return sorted(self._entries)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    # -- changes ---------------------------------------------------------------------------

    def trust(self, file: str | os.PathLike) -> str:
        """Trust the file's current bytes; return their SHA-256."""
        sha = file_sha256(file)
        self.trust_hash(sha, path=file)
        return sha

    def trust_hash(self, sha256: str, path: str | os.PathLike | None = None) -> None:
        """Trust content with this SHA-256 (e.g. bytes already read and hashed)."""
        sha = sha256.lower()
        if not _is_sha256(sha):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        with self._lock:
            self._entries[sha] = {
                "path": str(Path(path).resolve()) if path is not None else "",
                "added": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            }
            self._write()

    def forget(self, file_or_hash: str | os.PathLike) -> bool:
        """Stop trusting a file (by path) or a hash. Return whether it was trusted."""
        text = os.fspath(file_or_hash)
        sha = text.lower() if _is_sha256(text.lower()) and not os.path.exists(text) else file_sha256(text)
        with self._lock:
            if sha not in self._entries:
                return False
            del self._entries[sha]
            self._write()
            return True

    # -- persistence -----------------------------------------------------------------------

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            # Unreadable (permissions): nothing is trusted, and we must not overwrite it later.
            raise SettingsError(
                f"cannot read the trusted-models file {self.path}: {exc.strerror or exc}",
                "check its permissions",
            ) from exc
        if not stat.S_ISREG(st.st_mode):
            self._move_aside(ValueError(f"it is {file_kind(st.st_mode)[0]}, not a regular file"))
            return {}
        if st.st_size > MAX_STORE_BYTES:
            self._move_aside(ValueError(f"it is {st.st_size} bytes, more than {MAX_STORE_BYTES}"))
            return {}
        try:
            raw = read_bounded(self.path, MAX_STORE_BYTES, "trusted-models file", error=SettingsError)
        except SettingsError as exc:
            raise SettingsError(exc.cause, "check its permissions") from None
        try:
            data = load_json_bounded(raw, MAX_STORE_BYTES, "the file", error=SettingsError)
            if not isinstance(data, dict) or not isinstance(data.get("trusted"), dict):
                raise ValueError("no 'trusted' table")
            if data.get("version") != SCHEMA_VERSION:
                raise ValueError(f"unknown version {data.get('version')!r}")
            entries: dict[str, dict[str, str]] = {}
            for sha, info in data["trusted"].items():
                if not _is_sha256(sha) or not isinstance(info, dict):
                    raise ValueError(f"bad entry {str(sha)[:80]!r}")
                entries[sha] = {str(k)[:4096]: str(v)[:4096] for k, v in info.items()}
            return entries
        except (ValueError, UnicodeDecodeError) as exc:
            self._move_aside(exc)
            return {}

    def _move_aside(self, exc: Exception) -> None:
        backup = self.path.with_name(self.path.name + ".bak")
        n = 1
        while backup.exists():
            backup = self.path.with_name(f"{self.path.name}.bak{n}")
            n += 1
        try:
            os.replace(self.path, backup)
        except OSError as move_exc:
            raise SettingsError(
                f"the trusted-models file {self.path} is corrupt ({exc}) and could not be moved "
                f"aside ({move_exc.strerror or move_exc})",
                "move or delete it by hand",
            ) from move_exc
        self.backup_path = backup
        self.warning = (
            f"the trusted-models file {self.path} was corrupt ({exc}); it was kept as {backup} "
            "and cnnviz will ask again before loading files you trusted before"
        )
        _log.warning("%s", self.warning)

    def _write(self) -> None:
        """Write the store atomically. Caller holds the lock."""
        data = {"version": SCHEMA_VERSION, "trusted": dict(sorted(self._entries.items()))}
        text = json.dumps(data, indent=2) + "\n"
        try:
            atomic_write(self.path, text)
        except OSError as exc:
            raise SettingsError(
                f"cannot save the trusted-models file {self.path}: {exc.strerror or exc}",
                "check that its folder is writable",
            ) from exc
