"""Moved to :mod:`cnnviz.core.display` (the one display path); kept so that code written
against the old name (the inspector's imaging, ``cnnviz inspect``) still imports."""

from .display import (COLORMAPS, DIVERGING, auto_levels, colorize, display_bgra,  # noqa: F401
                      display_image, histogram_counts, lut, to_uint8, value_range)
from .mosaic import mosaic_maps  # noqa: F401
