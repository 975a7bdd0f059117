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


# --------------------------------------------------------------------------- private names
# A `_name` is private to its module. Sibling modules inside one dedicated sub-package (e.g.
# cnnviz/core/models/, cnnviz/core/images/, cnnviz/qt/playground/) may share package-private
# names; modules that merely sit in the same layer package (cnnviz/core/, cnnviz/qt/,
# cnnviz/commands/) may not: what one needs of another is public, with a docstring.
LAYER_PACKAGES = {"cnnviz", "cnnviz.core", "cnnviz.qt", "cnnviz.commands", "cnnviz.bench"}


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _family(module: str) -> str:
    """A module split for size is one unit of privacy: ``capture``, ``capture_common`` and
    ``capture_backends`` in one package are the family ``<package>.capture``."""
    package, _, name = module.rpartition(".")
    return f"{package}.{name.split('_')[0]}"


def _may_share(importer: str, importer_is_package: bool, source: str) -> bool:
    """Whether ``importer`` may use ``source``'s private names."""
    if importer == source or (not importer_is_package and _family(importer) == _family(source)):
        return True
    home = importer if importer_is_package else importer.rpartition(".")[0]
    # the same dedicated sub-package (not a layer package): package-private names are shared
    return home not in LAYER_PACKAGES and (source == home or source.startswith(home + "."))


def private_imports(root: Path) -> list[str]:
    """Every use of another module's private name under ``root``/cnnviz:
    ``path:line: _name from module`` (``from m import _x`` and ``m._x`` on an imported module)."""
    import ast

    found = []
    modules = {_module_name(root, p) for p in (root / "cnnviz").rglob("*.py")}
    for path in sorted((root / "cnnviz").rglob("*.py")):
        me = _module_name(root, path)
        is_pkg = path.name == "__init__.py"
        package = me if is_pkg else me.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        bound: dict[str, str] = {}  # local name -> cnnviz module it names
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    src = ".".join(base + ([node.module] if node.module else []))
                else:
                    src = node.module or ""
                if not src.startswith("cnnviz"):
                    continue
                for alias in node.names:
                    sub = f"{src}.{alias.name}"
                    if sub in modules:  # `from package import module`
                        bound[alias.asname or alias.name] = sub
                        if _is_private(alias.name) and not _may_share(me, is_pkg, src):
                            found.append(f"{path.relative_to(root)}:{node.lineno}: {alias.name} from {src}")
                    elif _is_private(alias.name) and not _may_share(me, is_pkg, src):
                        found.append(f"{path.relative_to(root)}:{node.lineno}: {alias.name} from {src}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("cnnviz") and alias.asname:
                        bound[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound
                    and _is_private(node.attr) and not _may_share(me, is_pkg, bound[node.value.id])):
                found.append(f"{path.relative_to(root)}:{node.lineno}: {node.attr} from {bound[node.value.id]}")
    return found


def test_no_module_uses_another_modules_private_names():
    assert private_imports(REPO) == []


def test_the_private_name_rule_catches_a_violation(tmp_path):
    pkg = tmp_path / "cnnviz"
    for d in ("core", "core/models", "qt"):
        (pkg / d).mkdir(parents=True, exist_ok=True)
        (pkg / d / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "capture.py").write_text("def _helper():\n    pass\n\ndef public():\n    pass\n")
    (pkg / "core" / "models" / "detect.py").write_text("def _sniff():\n    pass\n")
    (pkg / "core" / "models" / "load.py").write_text("from .detect import _sniff\n")  # siblings: allowed
    (pkg / "core" / "explain.py").write_text(
        "from cnnviz.core.capture import public\n"
        "from .capture import (\n    public as p,\n    _helper,\n)\n"
        "from cnnviz.core import capture\n"
        "x = capture._helper\n"
        "y = capture.public\n"
        "from cnnviz.core.models.detect import _sniff\n")
    (pkg / "qt" / "view.py").write_text("from ..core.capture import _helper as h\n")
    assert private_imports(tmp_path) == [
        "cnnviz/core/explain.py:2: _helper from cnnviz.core.capture",
        "cnnviz/core/explain.py:9: _sniff from cnnviz.core.models.detect",
        "cnnviz/core/explain.py:7: _helper from cnnviz.core.capture",
        "cnnviz/qt/view.py:1: _helper from cnnviz.core.capture",
    ]
