"""cnnviz: see convolutional neural networks work.

The package is split in two: :mod:`cnnviz.core` computes everything (no Qt) and
:mod:`cnnviz.qt` is the window, a thin view over the core.
"""

__version__ = "0.1.0"
