"""numpy ↔ QImage: the one converter of the qt package (the windows, the inspector, the
animation, the clipboard).

Both directions copy: a QImage made over a numpy buffer shares its memory, and the array
(or the QImage) may go away or change afterwards, or cross a thread.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage

_FORMATS = {2: QImage.Format.Format_Grayscale8, 3: QImage.Format.Format_RGB888, 4: QImage.Format.Format_RGBA8888}


def to_qimage(arr: np.ndarray) -> QImage:
    """uint8 ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA → an independent QImage."""
    a = np.ascontiguousarray(arr)
    if a.dtype != np.uint8:
        raise ValueError(f"to_qimage needs uint8, got {a.dtype}")
    key = 2 if a.ndim == 2 else (a.shape[2] if a.ndim == 3 and a.shape[2] in (3, 4) else None)
    if key is None:
        raise ValueError(f"to_qimage needs (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")
    h, w = a.shape[:2]
    return QImage(a.data, w, h, a.strides[0], _FORMATS[key]).copy()


def qimage_to_array(img: QImage) -> np.ndarray:
    """A QImage as a numpy array: (H, W) for grey formats, (H, W, 3) RGB or (H, W, 4) RGBA."""
    fmt = img.format()
    if fmt in (QImage.Format.Format_Grayscale8, QImage.Format.Format_Grayscale16):
        img = img.convertToFormat(QImage.Format.Format_Grayscale8)
        channels = 1
    elif img.hasAlphaChannel():
        img = img.convertToFormat(QImage.Format.Format_RGBA8888)
        channels = 4
    else:
        img = img.convertToFormat(QImage.Format.Format_RGB888)
        channels = 3
    h, w, bpl = img.height(), img.width(), img.bytesPerLine()
    buf = np.frombuffer(img.constBits(), dtype=np.uint8, count=h * bpl).reshape(h, bpl)
    arr = buf[:, : w * channels].reshape(h, w, channels) if channels > 1 else buf[:, :w]
    return np.array(arr, copy=True)
