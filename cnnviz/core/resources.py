"""Where the files cnnviz ships (sample images, the demo model, kernel presets, icons) are.

In a checkout, an editable install or the PyInstaller bundle they sit in ``resources/`` next
to the ``cnnviz`` package. A wheel installs them as data files under
``<prefix>/share/cnnviz/resources`` (``pyproject.toml``, ``[tool.setuptools.data-files]``),
where ``<prefix>`` is the environment (``sys.prefix``) or, for ``pip install --user``, the
user base.
"""

from __future__ import annotations

import site
import sys
from pathlib import Path

__all__ = ["resources_dir", "resource_candidates", "default_image"]

_MARKER = Path("models") / "demo_digits.json"  # every complete copy has it


def resource_candidates() -> list[Path]:
    """The folders looked in, in order."""
    return [
        Path(__file__).resolve().parents[2] / "resources",
        Path(sys.prefix) / "share" / "cnnviz" / "resources",
        Path(site.getuserbase()) / "share" / "cnnviz" / "resources",
    ]


def resources_dir() -> Path:
    """The first complete ``resources`` folder; the checkout's path if none is (then a
    missing file's error message names where it was expected)."""
    candidates = resource_candidates()
    for folder in candidates:
        if (folder / _MARKER).is_file():
            return folder
    return candidates[0]


def default_image(kind: str) -> Path:
    """The bundled sample a model is shown first: a digit for the demo model, a photo otherwise."""
    return resources_dir() / "samples" / ("digit.png" if kind == "demo" else "photo.png")
