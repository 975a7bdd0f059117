"""The kernel playground window and its panels, one module each.

``window`` (the main window: source, kernels and parameters → request → views), ``views``
(the four output views), ``kernel_editor``, ``kernel_bank``, ``params_panel``,
``explain_panel``, ``animate_panel``, ``weight_sharing``, ``learn_panel`` and the live
sources (``live``: the controller; ``source_panel``: its dock). What they show is computed
in :mod:`cnnviz.core.playground` and coloured by :mod:`cnnviz.core.display`.
"""
