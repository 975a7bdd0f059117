"""The computational core of cnnviz.

Nothing in this package imports Qt or pyqtgraph (a test enforces it), and nothing
imports torch at module level except the model modules, which the kernel playground
never loads. Everything the window shows is computed here.
"""
