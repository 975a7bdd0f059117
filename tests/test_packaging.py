"""The packaged bundle builds and its --self-test passes.

Building takes several minutes and needs PyInstaller, so it runs only with
CNNVIZ_TEST_PACKAGE=1 (`CNNVIZ_TEST_PACKAGE=1 make test PYTEST_ARGS=tests/test_packaging.py`).
The self-test itself (what the bundle runs) is always tested, from source.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_self_test_from_source_passes():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    r = subprocess.run([sys.executable, "-m", "cnnviz.cli", "--self-test"], capture_output=True, text=True,
                       env=env, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 failed" in r.stdout
    assert "kernel pipeline" in r.stdout and "demo model" in r.stdout and "window" in r.stdout
    # progress while it runs: a line per step before it starts, in order
    progress = [ln for ln in r.stdout.splitlines() if ln.startswith("[")]
    assert [ln.split("] ", 1)[1] for ln in progress] == [
        "1/4 load sample image…", "2/4 kernel pipeline…", "3/4 demo model…", "4/4 window…", "done"]


def test_desktop_entry_and_icons_exist():
    desktop = (ROOT / "resources" / "cnnviz.desktop").read_text()
    assert "Exec=cnnviz" in desktop and "Icon=cnnviz" in desktop
    for s in (16, 32, 48, 64, 128, 256, 512):
        assert (ROOT / "resources" / "icons" / f"cnnviz-{s}.png").exists()
    assert "NSCameraUsageDescription" in (ROOT / "packaging" / "cnnviz.spec").read_text()


@pytest.mark.skipif(os.environ.get("CNNVIZ_TEST_PACKAGE") != "1", reason="set CNNVIZ_TEST_PACKAGE=1 to build the bundle")
def test_bundle_builds_and_self_test_passes(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "pyinstaller>=6.6"], check=True)
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--distpath", str(dist), "--workpath",
                    str(tmp_path / "build"), str(ROOT / "packaging" / "cnnviz.spec")], check=True, cwd=ROOT,
                   timeout=1800)
    exe = dist / "cnnviz" / "cnnviz"
    r = subprocess.run([str(exe), "--self-test"], capture_output=True, text=True,
                       env=dict(os.environ, QT_QPA_PLATFORM="offscreen"), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 failed" in r.stdout
