"""The model inspector window: open a trained PyTorch model and see every layer, live.

``InspectorWindow`` is the window; the other modules are its views and its worker glue.
Importing this package does not import torch: the loader thread does, when the first model
loads.
"""

from __future__ import annotations

from .window import InspectorWindow

__all__ = ["InspectorWindow"]
