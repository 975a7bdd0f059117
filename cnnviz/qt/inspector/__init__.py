"""The model inspector window: open a trained PyTorch model and see every layer, live.

``InspectorWindow`` (``window.py``) is the window; the other modules are its panels (input,
live input, layers, model, result tabs, status bar), its loading and exports, its menus, and
the views. What it computes lives in :mod:`cnnviz.core.inspect_engine`. Importing this
package does not import torch: the loader thread does, when the first model loads.
"""

from __future__ import annotations

from .window import InspectorWindow

__all__ = ["InspectorWindow"]
