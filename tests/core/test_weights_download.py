"""Pretrained-weights download: progress, cache reuse, cancel, hash check, offline message.

All downloads come from local ``file://`` URLs; any network connection fails the test.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import urllib.error
import urllib.request

import pytest

from cnnviz.core import weights_download as wd
from cnnviz.core.errors import ModelLoadError


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def served(tmp_path):
    """A 300 kB 'weights' file named with its hash prefix, as torchvision's are."""
    data = os.urandom(300_000)
    sha = hashlib.sha256(data).hexdigest()
    src = tmp_path / "server"
    src.mkdir()
    path = src / f"tinynet-{sha[:8]}.pth"
    path.write_bytes(data)
    return path


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def test_download_reports_progress_and_lands_in_cache(served, cache):
    seen = []
    got = wd.download_weights(served.as_uri(), cache_dir=cache, progress=lambda d, t: seen.append((d, t)),
                              chunk_size=64 * 1024)
    assert got == cache / served.name
    assert got.read_bytes() == served.read_bytes()
    size = served.stat().st_size
    assert seen[0] == (0, size) and seen[-1] == (size, size)
    assert len(seen) >= 5  # several chunks, each reported
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert sorted(p.name for p in cache.iterdir()) == [served.name]  # no temporary left


def test_cached_file_is_reused_without_reading_the_url(served, cache, monkeypatch):
    first = wd.download_weights(served.as_uri(), cache_dir=cache)
    opened = []
    real = urllib.request.urlopen
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: opened.append(a) or real(*a, **k))
    served.unlink()
    seen = []
    again = wd.download_weights(served.as_uri(), cache_dir=cache, progress=lambda d, t: seen.append(d))
    assert again == first and again.is_file()
    assert opened == [] and seen == []


@pytest.mark.parametrize("kind", ["event", "callable"])
def test_cancel_midway_leaves_no_file(served, cache, kind):
    stop = threading.Event()
    cancel = stop if kind == "event" else stop.is_set
    seen = []

    def progress(done, total):
        seen.append(done)
        if done >= 128 * 1024:
            stop.set()

    with pytest.raises(wd.DownloadCancelled, match="cancelled"):
        wd.download_weights(served.as_uri(), cache_dir=cache, progress=progress, cancel=cancel,
                            chunk_size=32 * 1024)
    assert 0 < max(seen) < served.stat().st_size  # it really stopped part-way
    assert list(cache.iterdir()) == []


def test_cancel_before_start(served, cache):
    stop = threading.Event()
    stop.set()
    with pytest.raises(wd.DownloadCancelled):
        wd.download_weights(served.as_uri(), cache_dir=cache, cancel=stop)
    assert list(cache.iterdir()) == []


def test_hash_mismatch_is_refused_and_removed(served, cache):
    wrong = served.with_name("tinynet-deadbeef.pth")
    served.rename(wrong)
    with pytest.raises(ModelLoadError, match="damaged.*does not start with deadbeef"):
        wd.download_weights(wrong.as_uri(), cache_dir=cache)
    assert list(cache.iterdir()) == []
    # without the check (a file named without a hash) the same bytes are accepted
    plain = wrong.with_name("tinynet.pth")
    wrong.rename(plain)
    assert wd.download_weights(plain.as_uri(), cache_dir=cache).is_file()


def test_offline_message_names_cache_path(tmp_path, cache):
    url = (tmp_path / "nowhere" / "resnet18-f37072fd.pth").as_uri()
    with pytest.raises(ModelLoadError) as info:
        wd.download_weights(url, cache_dir=cache)
    msg = str(info.value)
    assert str(cache / "resnet18-f37072fd.pth") in msg
    assert "local weights file" in msg and "random initialisation" in msg
    assert list(cache.iterdir()) == []


def test_unreachable_host_is_a_message_not_a_connection(cache, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError(OSError(101, "Network is unreachable"))

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(ModelLoadError, match="Network is unreachable"):
        wd.download_weights("https://download.pytorch.org/models/resnet18-f37072fd.pth", cache_dir=cache)


def test_default_cache_is_torchvisions(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert wd.default_cache_dir() == tmp_path / "th" / "hub" / "checkpoints"
    assert wd.cached_path("https://x.org/models/resnet18-f37072fd.pth?raw=1") == (
        tmp_path / "th" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    )
