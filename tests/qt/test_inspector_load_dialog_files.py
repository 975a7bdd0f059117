"""The open-model dialog reads the recent-models list and a chosen .py file through
cnnviz.core.files: a FIFO, a deeply nested or oversized file cannot hang or crash the window;
it is reported, and the user's file is kept (moved aside when damaged, left alone otherwise)."""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest

pytest.importorskip("PySide6")

from cnnviz.qt.inspector.load_dialog import (  # noqa: E402
    PYTHON_FILE_LIMIT,
    RECENT_FILE,
    LoadChoice,
    LoadDialog,
    RecentModels,
    python_classes,
)

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")


class Unblocker:
    """Opens the FIFO's write end (and closes it) whenever a reader waits on it, so code that
    wrongly opens the FIFO reads an empty file and fails its assertions instead of hanging."""

    def __init__(self, path):
        self.path, self.stop = path, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.wait(0.05):
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # no reader (ENXIO), or gone
                pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def test_a_fifo_as_the_recent_list_is_reported_and_left_alone(tmp_path):
    path = tmp_path / RECENT_FILE
    os.mkfifo(path)
    with Unblocker(path):
        recent = RecentModels(tmp_path)
    assert recent.items() == [] and "named pipe" in recent.warning, recent.warning
    assert stat.S_ISFIFO(os.lstat(path).st_mode) and not (tmp_path / f"{RECENT_FILE}.bak").exists()
    recent.add(LoadChoice("demo"))  # the next save writes a real file in its place
    assert json.loads(path.read_text())["recent"][0]["spec"] == "demo"


@pytest.mark.parametrize("content, words", [
    ("[" * 100_000 + "]" * 100_000, "nesting 100000 levels"),
    ('{"recent": [' + "1" * 5000 + "]}", "digits"),
    (" " * (2 << 20), "more than 1 MB"),
])
def test_a_hostile_recent_list_is_kept_aside_without_crashing(tmp_path, content, words):
    path = tmp_path / RECENT_FILE
    (tmp_path / f"{RECENT_FILE}.bak").write_text("an earlier backup")
    path.write_text(content)
    recent = RecentModels(tmp_path)
    assert recent.items() == [] and "damaged" in recent.warning and words in recent.warning, recent.warning
    assert (tmp_path / f"{RECENT_FILE}.bak").read_text() == "an earlier backup"  # never overwritten
    assert (tmp_path / f"{RECENT_FILE}.bak1").read_text() == content


def test_class_names_of_a_fifo_a_huge_or_absurdly_nested_file_are_none(qtbot, tmp_path):
    fifo = tmp_path / "net.py"
    os.mkfifo(fifo)
    with Unblocker(fifo):
        assert python_classes(fifo) == []
        d = LoadDialog(None, RecentModels(tmp_path / "cfg"))
        qtbot.addWidget(d)
        d.set_tab("python")
        d.py_file.setText(str(fifo))
        assert d.py_class.count() == 0
        with pytest.raises(ValueError, match="choose the Python file"):
            d.choice()
    huge = tmp_path / "huge.py"
    with open(huge, "wb") as fh:  # sparse: no disk used
        fh.truncate(PYTHON_FILE_LIMIT + 1)
    assert python_classes(huge) == []
    deep = tmp_path / "deep.py"
    deep.write_text("class Net:\n    pass\nx = " + "(" * 100_000 + ")" * 100_000 + "\n")
    assert python_classes(deep) == []
    ok = tmp_path / "ok.py"
    ok.write_text("class Net:\n    pass\n")
    assert python_classes(ok) == ["Net"]
