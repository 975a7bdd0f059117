"""The window starts with a settings.json that is a FIFO, nests 100,000 deep, is 100 MB or
holds an oversized entry: it shows its first result, says what happened in the status bar,
and keeps the user's file as a backup (a FIFO would otherwise block the start forever)."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")


def _fifo(p):
    os.mkfifo(p)


def _deep(p):
    p.write_text("[" * 100_000 + "]" * 100_000)


def _oversized(p):
    with open(p, "wb") as fh:
        fh.write(b'{"schema_version": 1, "recent_files": ["/' + b"x" * (100 << 20) + b'"]}')


def _long_entry(p):
    p.write_text('{"schema_version": 1, "theme": "dark", "recent_files": ["/' + "x" * 100_000 + '"]}')


CASES = {
    "fifo": (_fifo, "named pipe"),
    "deep-json": (_deep, "nesting 100000 levels"),
    "oversized-100MB": (_oversized, "more than the"),
    "oversized-entry": (_long_entry, "oversized entries"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_window_starts_and_reports_a_hostile_settings_file(qtbot, make_window, config_dir, name):
    make, words = CASES[name]
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / "settings.json"
    make(path)
    w = make_window()  # waits for the first result on screen
    assert w.current_result() is not None
    assert words in w.last_message and "settings.json.bak" in w.last_message, w.last_message
    bak = config_dir / "settings.json.bak"
    assert bak.exists() or bak.is_symlink()  # the user's file is kept
    if name == "oversized-entry":
        assert w.settings.theme == "dark"  # the valid rest is used
    assert w.save_settings() is not None
    assert path.is_file() and path.stat().st_size < 1_000_000  # a fresh, sane file replaces it
