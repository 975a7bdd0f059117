"""The "What a channel looks for" window: feature visualization, dataset examples, the unit's
view and adversarial examples (see :mod:`.window`)."""

from __future__ import annotations


def open_from_inspector(inspector, tab: str = "featviz"):
    from .window import open_from_inspector as _open

    return _open(inspector, tab)
