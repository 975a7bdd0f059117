"""The layering in pyproject.toml's import-linter contracts holds: the core imports no Qt, and
cli > commands > (bench, selftest) > qt > core. `make test` runs this, so a broken contract
fails the suite; the contracts are also shown to fail on a copy of the package with a Qt
import (or an upward import) added to the core."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the ``cnnviz`` package under ``root`` with ``root``'s pyproject.toml."""
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} is missing: install the test extra (pip install -e '.[test]')")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", str(root / "pyproject.toml")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_import_contracts_are_kept():
    proc = lint_imports(REPO)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout
    assert proc.stdout.count(" KEPT") >= 2  # both contracts were checked


def _copy_of_the_package(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    shutil.copytree(REPO / "cnnviz", root / "cnnviz", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


@pytest.mark.parametrize(("line", "contract"), [
    ("from PySide6.QtCore import QObject  # noqa: F401", "The core computes without Qt"),
    ("import pyqtgraph  # noqa: F401", "The core computes without Qt"),
    ("from cnnviz.qt import workers  # noqa: F401", "Layers"),
])
def test_a_core_module_importing_qt_or_a_window_breaks_a_contract(tmp_path, line, contract):
    root = _copy_of_the_package(tmp_path)
    errors = root / "cnnviz" / "core" / "errors.py"
    errors.write_text(errors.read_text() + f"\n{line}\n")
    proc = lint_imports(root)
    assert proc.returncode != 0, proc.stdout[-4000:]
    broken = [ln for ln in proc.stdout.splitlines() if ln.endswith("BROKEN")]
    assert broken, proc.stdout[-4000:]
    assert contract in proc.stdout and "cnnviz.core.errors" in proc.stdout
