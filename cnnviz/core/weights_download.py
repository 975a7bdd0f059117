"""Download pretrained weights into torchvision's cache, with progress and cancel.

torchvision's own path (``Weights.get_state_dict`` → ``torch.hub.load_state_dict_from_url``)
cannot report progress to a window, cannot be cancelled, and then unpickles the file with
the unrestricted pickle loader. This module only fetches the file; :mod:`cnnviz.core.models` loads it
with ``weights_only=True``.

The cache is the one torchvision uses (``torch.hub.get_dir()/checkpoints``) and the file
names are the URL's, so a file downloaded by torchvision is reused here and vice versa.
A download goes to a temporary file in the cache folder and is renamed into place only
when it is complete and its hash checks, so a cancelled or failed download never leaves a
partial file under the real name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from cnnviz.core.errors import ModelLoadError
from cnnviz.core.files import atomic_write

ProgressCallback = Callable[[int, "int | None"], None]
"""``progress(done_bytes, total_bytes)``; ``total_bytes`` is ``None`` when the server does
not say."""

# torch.hub's convention: "resnet18-f37072fd.pth" → the file's SHA-256 starts with f37072fd.
HASH_REGEX = re.compile(r"-([a-f0-9]*)\.")

CHUNK_SIZE = 1 << 16


class DownloadCancelled(ModelLoadError):
    """The user cancelled a weights download. Nothing was left in the cache."""


def default_cache_dir() -> Path:
    """torchvision's weights cache: ``torch.hub.get_dir()/checkpoints``.

    ``torch.hub.get_dir()`` honours ``$TORCH_HOME`` and ``$XDG_CACHE_HOME``.
    """
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def filename_for_url(url: str) -> str:
    """The cache file name torch.hub uses for ``url``: the last path component."""
    name = os.path.basename(urllib.parse.urlparse(url).path)
    if not name:
        raise ModelLoadError(f"the weights URL {url!r} names no file", "use a URL ending in a file name")
    return name


def cached_path(url: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the file for ``url`` lives (or will live) in the cache."""
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return base / filename_for_url(url)


def _is_cancelled(cancel) -> bool:
    if cancel is None:
        return False
    is_set = getattr(cancel, "is_set", None)  # threading.Event
    if callable(is_set):
        return bool(is_set())
    return bool(cancel())


def download_weights(
    url: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: ProgressCallback | None = None,
    cancel=None,
    check_hash: bool = True,
    timeout: float = 30.0,
    chunk_size: int = CHUNK_SIZE,
) -> Path:
    """Return the cached file for ``url``, downloading it first if it is not cached.

    Parameters
    ----------
    url:
        ``https://…`` or ``file://…`` URL of the weights file.
    cache_dir:
        Folder of the cache; default :func:`default_cache_dir`.
    progress:
        Called as ``progress(done_bytes, total_bytes)`` before the first chunk, after each
        chunk and at the end. Not called when the cached file is reused.
    cancel:
        A ``threading.Event`` or a callable returning True to stop; checked between chunks.
    check_hash:
        When the file name carries a hash prefix (``name-<hex>.ext``, torch.hub's
        convention), the downloaded file's SHA-256 must start with it.

    Raises
    ------
    DownloadCancelled
        ``cancel`` was set; no file is left behind.
    ModelLoadError
        The download failed (offline, HTTP error) or the hash did not match; the message names
        the cache path, where the file can be put by hand.
    """
    target = cached_path(url, cache_dir)
    if target.is_file():
        return target

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelLoadError(
            f"cannot create the weights cache folder {target.parent}: {exc.strerror or exc}",
            "set TORCH_HOME to a writable folder",
        ) from exc

    match = HASH_REGEX.search(target.name)
    expected_prefix = match.group(1) if (check_hash and match) else None

    digest = hashlib.sha256()

    def write(out) -> None:  # fills core.files.atomic_write's temporary file
        if _is_cancelled(cancel):
            raise DownloadCancelled(f"download of {target.name} cancelled")
        try:
            response = urllib.request.urlopen(url, timeout=timeout)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise ModelLoadError(
                f"could not download {target.name} from {url} ({reason})",
                f"check the internet connection, or put the file at {target} by hand "
                f"(cache folder {target.parent}), or use a local weights file, "
                "or random initialisation",
            ) from exc
        with contextlib.closing(response):
            length = response.headers.get("Content-Length") if response.headers else None
            total = int(length) if length and length.isdigit() else None
            done = 0
            if progress is not None:
                progress(0, total)
            while True:
                if _is_cancelled(cancel):
                    raise DownloadCancelled(f"download of {target.name} cancelled")
                try:
                    chunk = response.read(chunk_size)
                except OSError as exc:
                    raise ModelLoadError(
                        f"the download of {target.name} from {url} broke off after "
                        f"{done} bytes ({exc})",
                        f"try again, or put the file at {target} by hand",
                    ) from exc
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        if total is not None and done != total:
            raise ModelLoadError(
                f"the download of {target.name} stopped at {done} of {total} bytes",
                f"try again, or put the file at {target} by hand",
            )
        if expected_prefix is not None and not digest.hexdigest().startswith(expected_prefix):
            raise ModelLoadError(
                f"the downloaded {target.name} is damaged: its SHA-256 {digest.hexdigest()[:16]}… "
                f"does not start with {expected_prefix}",
                "try the download again",
            )

    atomic_write(target, write, "wb")  # a cancel or a damaged download leaves no file
    return target
