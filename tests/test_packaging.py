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


def test_a_wheel_carries_every_resource_and_an_installed_copy_is_found(tmp_path, monkeypatch):
    """``pip install cnnviz`` (not editable, no checkout) must still find the samples, the
    demo model, the presets and the icons: the wheel installs them under
    ``<prefix>/share/cnnviz/resources``, and :func:`resources_dir` looks there."""
    import zipfile

    from cnnviz.core import resources

    import shutil

    src = tmp_path / "src"  # a copy: setuptools leaves build/ and *.egg-info in the tree it builds
    for name in ("cnnviz", "resources"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    out = tmp_path / "wheel"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(out), str(src)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    (wheel,) = out.glob("cnnviz-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        prefix = next(n for n in names if "/data/share/cnnviz/resources/" in n).split("share/cnnviz/")[0]
        shipped = {n[len(prefix) + len("share/cnnviz/"):] for n in names if n.startswith(prefix + "share/cnnviz/")}
        wanted = {p.relative_to(ROOT).as_posix() for p in (ROOT / "resources").rglob("*")
                  if p.is_file() and p.parent != ROOT / "resources"}
        assert wanted <= shipped, sorted(wanted - shipped)
        assert prefix + "share/applications/cnnviz.desktop" in names
        # install the data files where a wheel puts them and look them up from there
        for n in names:
            if n.startswith(prefix + "share/cnnviz/"):
                dest = tmp_path / "prefix" / n[len(prefix):]
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(z.read(n))
    installed = tmp_path / "prefix" / "share" / "cnnviz" / "resources"
    monkeypatch.setattr(resources, "resource_candidates", lambda: [tmp_path / "no-checkout" / "resources", installed])
    assert resources.resources_dir() == installed
    from cnnviz.core.demo import load_demo_model

    model = load_demo_model()
    assert len(model.labels) == 10
    # neither complete: the checkout's path, so a missing file's message says where it looked
    monkeypatch.setattr(resources, "resource_candidates", lambda: [tmp_path / "a", tmp_path / "b"])
    assert resources.resources_dir() == tmp_path / "a"
