"""Settings and user files under hostile conditions: hand-edited values, fuzzed documents,
repeated corruption, a failing disk and a process killed in the middle of a save.

What must hold: the window opens and computes (or says what to fix), a corrupt file is kept
aside and never overwritten, and a save that fails or is interrupted leaves the previous file
byte for byte.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnnviz.core.kernels as kernels_mod
from cnnviz.core.errors import SettingsError
from cnnviz.core.kernels import Kernel
from cnnviz.core.settings import PlaygroundParams, Settings, load_settings, save_settings

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------
# valid JSON, hostile values: the window opens and computes, or says what to fix
# ---------------------------------------------------------------------------------------
HOSTILE_VALUES = {
    "bias-NaN": ({"params": {"bias": float("nan")}}, "Saved parameters could not be used (bias is nan)"),
    "slope-inf": ({"params": {"slope": float("inf"), "activation": "leaky_relu"}},
                  "Saved parameters could not be used (leaky ReLU slope is not finite)"),
    "padding-1e9": ({"params": {"padding": [10**9, 10**9]}}, "Saved parameters out of range (padding)"),
    "stride-1e5": ({"params": {"stride": [100000, 100000]}}, "Saved parameters out of range (stride)"),
    "dilation-1e6": ({"params": {"dilation": [10**6, 10**6]}}, "Saved parameters out of range (dilation)"),
    "pool-size-1e6": ({"params": {"pool": "max", "pool_size": [10**6, 10**6]}},
                      "Saved parameters out of range (pool_size)"),
    "selected-kernel-negative": ({"selected_kernel": -5, "kernels": [{"name": "a", "weights": [[1]]}]}, None),
    "selected-kernel-huge": ({"selected_kernel": 10**20, "kernels": [{"name": "a", "weights": [[1]]}]}, None),
    "magnitude-pair-out-of-range": ({"magnitude_pair": [0, 5], "kernels": [{"name": "a", "weights": [[1]]}]}, None),
    "garbage-window-state": ({"window_state": "AAAA", "window_geometry": "!!!!"}, None),
    "unknown-colormap": ({"colormap": "nonsense"}, None),
    "last-image-is-a-folder": ({"last_image": "{tmp}"}, None),
    "last-image-unknown-sample": ({"last_image": "sample:nope"}, "there is no sample 'nope'"),
    "kernel-weights-1e38": ({"kernels": [{"name": "big", "weights": [[1e38] * 11] * 11}]},
                            "Settings were corrupt (saved kernel 1 is broken"),
}


@pytest.mark.parametrize("name", list(HOSTILE_VALUES))
def test_hand_edited_settings_open_a_working_window(qtbot, make_window, config_dir, name, tmp_path):
    values, message = HOSTILE_VALUES[name]
    config_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"schema_version": 1, **values}).replace("{tmp}", str(tmp_path))
    (config_dir / "settings.json").write_text(text)
    w = make_window()                                   # waits for the first result on screen
    assert w.current_result() is not None
    assert "Internal error" not in w.status_text()
    if message is not None:
        assert message in w.last_message
    assert w.params_panel.raw_params() == w.params()    # the panel shows what is computed


def test_a_channel_kernel_in_gray_mode_says_what_to_fix(qtbot, config_dir):
    from cnnviz.qt.playground.window import MainWindow

    config_dir.mkdir(parents=True)
    (config_dir / "settings.json").write_text(json.dumps(
        {"schema_version": 1, "kernels": [{"name": "rgb", "weights": [[[1]], [[2]], [[3]]]}]}))
    w = MainWindow()
    qtbot.addWidget(w)
    qtbot.waitUntil(lambda: "Cannot compute" in w.status_text(), timeout=10_000)
    assert "kernel 'rgb' has 3 channels; only 'full' mode uses channel kernels" in w.status_text()
    assert "fix: switch to full mode" in w.status_text()
    w.close()


_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(), st.text(max_size=5))
_val = st.recursive(_leaf, lambda c: st.one_of(st.lists(c, max_size=3),
                                               st.dictionaries(st.text(max_size=3), c, max_size=3)), max_leaves=10)
_params = st.dictionaries(st.sampled_from([f for f in PlaygroundParams().to_dict()]), _val, max_size=6)
_kernel = st.dictionaries(st.sampled_from(["weights", "name", "divisor", "offset"]), _val, max_size=4)
_doc = st.dictionaries(st.sampled_from(list(Settings().to_dict())),
                       st.one_of(_val, _params, st.lists(_kernel, max_size=2)), max_size=8)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(_doc)
def test_settings_fuzz_give_settings_or_a_settings_error(doc):
    try:
        s = Settings.from_dict(doc)
    except SettingsError:
        return
    s.kernel_bank()                                     # what the window restores
    Settings.from_dict(json.loads(json.dumps(s.to_dict())))   # and what it writes reads back


# ---------------------------------------------------------------------------------------
# corruption: kept aside, never overwritten
# ---------------------------------------------------------------------------------------
def test_a_second_corruption_keeps_the_first_backup(tmp_path):
    p = tmp_path / "settings.json"
    p.write_text("{first corruption")
    _, msg1 = load_settings(p)
    p.write_text("{second corruption")
    _, msg2 = load_settings(p)
    assert (tmp_path / "settings.json.bak").read_text() == "{first corruption"
    assert (tmp_path / "settings.json.bak1").read_text() == "{second corruption"
    assert "settings.json.bak1" in msg2 and "defaults" in msg2


# ---------------------------------------------------------------------------------------
# saving is atomic
# ---------------------------------------------------------------------------------------
def test_a_failing_save_keeps_the_old_settings_and_says_so(qtbot, make_window, config_dir, monkeypatch):
    w = make_window()
    assert w.save_settings() is not None
    path = config_dir / "settings.json"
    before = path.read_bytes()
    w.apply_theme("dark")

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(kernels_mod.os, "replace", disk_full)
    assert w.save_settings() is None
    assert "Could not save settings" in w.status_text() and "No space left on device" in w.status_text()
    assert path.read_bytes() == before                                  # byte for byte
    assert sorted(f.name for f in config_dir.iterdir() if not f.is_dir()) == ["settings.json"]   # no temp file
    monkeypatch.undo()
    w.apply_theme("light")


def test_a_failing_write_keeps_the_old_kernel_file(tmp_path, monkeypatch):
    p = tmp_path / "mine.json"
    kernels_mod.save_kernel_file(p, Kernel([[1, 2, 1]], name="old"))
    before = p.read_bytes()

    real_fdopen = os.fdopen

    class HalfWriter:
        """Writes half of the text, then the disk fills up."""

        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, text):
            self.fh.write(text[: len(text) // 2])
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(kernels_mod.os, "fdopen", lambda fd, *a, **k: HalfWriter(real_fdopen(fd, *a, **k)))
    with pytest.raises(OSError):
        kernels_mod.save_kernel_file(p, Kernel([[9] * 11] * 11, name="new"))
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["mine.json"]


WRITER = textwrap.dedent("""
    import sys
    from cnnviz.core.settings import Settings, save_settings
    path = sys.argv[1]
    i = 0
    print("ready", flush=True)
    while True:
        s = Settings()
        s.recent_files = [f"/photos/{i}/{'x' * 200}/{j}.png" for j in range(10)]
        s.window_state = "A" * 400_000                    # ~0.5 MB a write: kills land mid-write
        s.kernels = [{"name": f"k{i}", "weights": [[i % 7] * 11] * 11}]
        save_settings(s, path)
        i += 1
""")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_killing_the_process_mid_save_leaves_a_whole_file(tmp_path):
    path = tmp_path / "settings.json"
    save_settings(Settings(), path)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    seen = set()
    for delay in (0.15, 0.3, 0.45, 0.6, 0.8):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=env, stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
        s, msg = load_settings(path)                   # never half a file: no corruption message
        assert msg is None, msg
        seen.add(s.kernels[0]["name"] if s.kernels else "initial")
    assert len(seen) >= 2, "the writer never got to save: the kills did not land during writes"
