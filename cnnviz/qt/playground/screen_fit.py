"""Fitting a window to the screen it opens on (a layout saved on a big monitor reopened on a
1280×720 projector): :func:`fit_rect` is the rule, pure and unit-tested; :func:`fit_window`
applies it to a top-level window.

Rectangles are ``(x, y, width, height)`` in screen pixels, the window's *frame* included.
"""

from __future__ import annotations

Rect = tuple[int, int, int, int]


def fit_rect(saved: Rect, free: Rect) -> Rect:
    """Where a window saved at ``saved`` goes on a screen whose free area (without panels and
    docks) is ``free``: no larger than the free area, and wholly on it. A window that already
    fits and is on the screen is returned unchanged.

    Examples
    --------
    >>> fit_rect((100, 40, 1560, 980), (0, 0, 1920, 1040))        # fits: unchanged
    (100, 40, 1560, 980)
    >>> fit_rect((300, 60, 1560, 980), (0, 0, 1280, 720))          # a projector: shrunk, moved on
    (0, 0, 1280, 720)
    >>> fit_rect((1500, 600, 800, 500), (0, 0, 1280, 720))         # off the right edge: moved back
    (480, 220, 800, 500)
    """
    x, y, w, h = (int(v) for v in saved)
    fx, fy, fw, fh = (int(v) for v in free)
    if fw <= 0 or fh <= 0:
        return x, y, w, h  # no usable screen: leave the window alone
    w, h = max(1, min(w, fw)), max(1, min(h, fh))
    x = max(fx, min(x, fx + fw - w))
    y = max(fy, min(y, fy + fh - h))
    return x, y, w, h


def fit_window(window) -> bool:  # noqa: ANN001 - a top-level QWidget
    """Apply :func:`fit_rect` to ``window`` on its screen; True when it was moved or resized.
    The offscreen platform has no real screen (a nominal 800×600): windows there keep their
    geometry."""
    from PySide6.QtGui import QGuiApplication  # noqa: PLC0415

    screen = window.screen() or QGuiApplication.primaryScreen()
    if screen is None or QGuiApplication.platformName() == "offscreen":
        return False
    frame, inner = window.frameGeometry(), window.geometry()
    free = screen.availableGeometry()
    now = (frame.x(), frame.y(), frame.width(), frame.height())
    x, y, w, h = fit_rect(now, (free.x(), free.y(), free.width(), free.height()))
    if (x, y, w, h) == now:
        return False
    # the frame (title bar, borders) is outside the window's own size
    window.resize(w - (frame.width() - inner.width()), h - (frame.height() - inner.height()))
    window.move(x, y)
    return True
