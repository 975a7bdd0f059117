"""The Train window: train a CNN and watch its filters learn (see :mod:`.window`)."""

from .window import TrainWindow

__all__ = ["TrainWindow"]
