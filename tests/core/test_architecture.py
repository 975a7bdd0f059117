"""The house rules that keep cnnviz livable: no Qt in the core, torch only when needed."""

from __future__ import annotations

import subprocess
import sys

CORE_MODULES = ["cnnviz.core.conv", "cnnviz.core.kernels", "cnnviz.core.display", "cnnviz.core.dotproduct",
                "cnnviz.core.images", "cnnviz.core.sources", "cnnviz.core.devices", "cnnviz.core.errors"]


def _loaded_after(stmt: str) -> set[str]:
    code = f"import sys; {stmt}; print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_core_never_imports_qt_or_pyqtgraph():
    stmt = "import cnnviz.core; " + "; ".join(f"import {m}" for m in CORE_MODULES) + \
        "; import cnnviz.core.models, cnnviz.core.capture"
    loaded = _loaded_after(stmt)
    assert not {"PySide6", "pyqtgraph", "shiboken6", "PyQt5", "PyQt6"} & loaded


def test_core_source_has_no_qt_import():
    from pathlib import Path

    import cnnviz.core as core
    for f in Path(core.__file__).parent.rglob("*.py"):
        text = f.read_text()
        for bad in ("import PySide6", "from PySide6", "import pyqtgraph", "from pyqtgraph"):
            assert bad not in text, f"{f.name} imports Qt: {bad}"


def test_playground_core_does_not_load_torch():
    loaded = _loaded_after("; ".join(f"import {m}" for m in CORE_MODULES) + "; import cnnviz.cli; import cnnviz.commands.convolve")
    assert "torch" not in loaded and "torchvision" not in loaded
