"""The README and the guides point at files that exist, and give the two set-up commands first."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_opens_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    first_block = text.split("```")[1]
    assert "make run" in first_block and "make test" in first_block
    assert text.index("make run") < 1500


def test_every_linked_picture_and_doc_exists():
    for doc in ["README.md", "docs/USER_GUIDE.md", "docs/ROBUSTNESS.md", "docs/BENCHMARKS.md"]:
        path = ROOT / doc
        if not path.exists():
            continue
        for target in re.findall(r"\]\(([^)#]+)\)", path.read_text()):
            if target.startswith("http"):
                continue
            assert (path.parent / target).exists(), f"{doc} links to missing {target}"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_the_user_guides_python_example_runs():
    text = (ROOT / "docs" / "USER_GUIDE.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    scope: dict = {}
    exec(compile(code, "USER_GUIDE.md", "exec"), scope)  # noqa: S102 - our own documentation
    assert len(scope["result"].layers) == 15 and scope["grid"].image.dtype.name == "uint8"
    assert scope["heatmap"].shape == tuple(scope["x"].shape[-2:]) and scope["rf"] is not None
