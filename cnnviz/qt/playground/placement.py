"""Where the playground's maps sit in input-pixel coordinates: an output pixel is drawn over
the centre of the input window it was computed from, ``stride`` input pixels wide, and a
pooled pixel over the centre of its pool window (so linked zoom keeps the same part of the
image under the cursor in every view)."""

from __future__ import annotations

from PySide6.QtCore import QRectF

from cnnviz.core.conv import ConvSpec, PoolSpec


def conv_placement(spec: ConvSpec, kernel_hw: tuple[int, int], out_hw: tuple[int, int]) -> QRectF:
    """Where the conv map sits in input-pixel coordinates (x, y, w, h).

    Output pixel (oy, ox) is centred on its window, which starts at ``o·stride − pad`` and
    spans ``dilation·(k − 1) + 1`` input pixels; it is drawn ``stride`` pixels wide.
    """
    t, _, l, _ = spec.pads(kernel_hw)
    (sy, sx), (dy, dx), (kh, kw) = spec.stride, spec.dilation, kernel_hw
    eh, ew = dy * (kh - 1) + 1, dx * (kw - 1) + 1
    y0 = -t + eh / 2.0 - sy / 2.0
    x0 = -l + ew / 2.0 - sx / 2.0
    return QRectF(x0, y0, out_hw[1] * sx, out_hw[0] * sy)


def pool_placement(conv_rect: QRectF, conv_stride: tuple[int, int], pool: PoolSpec,
                   out_hw: tuple[int, int]) -> QRectF:
    """Where the pooled map sits: each pooled unit centred on its pool window."""
    (kh, kw), (sy, sx), (ph, pw) = pool.size, pool.stride, pool.padding
    cy, cx = conv_stride
    y0 = conv_rect.y() + (-ph + kh / 2.0 - sy / 2.0) * cy
    x0 = conv_rect.x() + (-pw + kw / 2.0 - sx / 2.0) * cx
    return QRectF(x0, y0, out_hw[1] * sx * cx, out_hw[0] * sy * cy)
