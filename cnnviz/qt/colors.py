"""Small colour and number-formatting helpers shared by the playground's cell widgets.

Cells that show signed numbers (kernel weights, products) are tinted with the same
diverging scale the output views use (``cnnviz.core.display.lut("diverging")``: blue for
negative, white for 0, red for positive, colour-blind safe), symmetric around 0 so that
white always means zero. Text on a tinted cell is black or white, whichever contrasts
more with the background (WCAG relative luminance).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PySide6.QtGui import QColor, QFontMetrics

from cnnviz.core.display import lut


@lru_cache(maxsize=8)
def lookup_table(name: str = "diverging") -> np.ndarray:
    """uint8 (256, 3) table for ``name``: the core's (:func:`cnnviz.core.display.lut`), so the
    cells and the pyqtgraph views share one scale."""
    return np.asarray(lut(name), dtype=np.uint8)


def diverging_color(value: float, vmax: float) -> QColor:
    """Colour of ``value`` on the diverging scale with levels ``[-vmax, vmax]``."""
    table = lookup_table("diverging")
    if not math.isfinite(value):
        return QColor(200, 200, 200)
    if vmax <= 0 or not math.isfinite(vmax):
        t = 0.5
    else:
        t = 0.5 + 0.5 * max(-1.0, min(1.0, value / vmax))
    r, g, b = (int(c) for c in table[int(round(t * 255))])
    return QColor(r, g, b)


def gray_color(value: float, lo: float = 0.0, hi: float = 1.0) -> QColor:
    """Grey level of ``value`` with ``lo`` → black and ``hi`` → white (clipped)."""
    if not math.isfinite(value):
        return QColor(200, 200, 200)
    t = 0.0 if hi <= lo else (value - lo) / (hi - lo)
    v = int(round(255 * max(0.0, min(1.0, t))))
    return QColor(v, v, v)


def symmetric_max(values) -> float:
    """max |v| over finite values (1.0 when all are zero or none is finite)."""
    a = np.asarray(values, dtype=np.float64)
    a = a[np.isfinite(a)]
    m = float(np.max(np.abs(a))) if a.size else 0.0
    return m if m > 0 else 1.0


def relative_luminance(color: QColor) -> float:
    """WCAG 2 relative luminance in [0, 1]."""
    def lin(c: int) -> float:
        s = c / 255.0
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    return 0.2126 * lin(color.red()) + 0.7152 * lin(color.green()) + 0.0722 * lin(color.blue())


def text_color_for(background: QColor) -> QColor:
    """Black or white, whichever has the higher contrast ratio on ``background``."""
    lum = relative_luminance(background)
    contrast_black = (lum + 0.05) / 0.05
    contrast_white = 1.05 / (lum + 0.05)
    return QColor(0, 0, 0) if contrast_black >= contrast_white else QColor(255, 255, 255)


def format_sig(value: float, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits, a real minus sign and no "-0"."""
    if value is None:
        return "—"
    v = float(value)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v == 0:
        v = 0.0  # drop the sign of -0.0
    text = f"{v:.{digits}g}"
    if "e" in text:
        mant, exp = text.split("e")
        text = f"{mant}e{int(exp)}"
    return text.replace("-", "−")


def cell_text_candidates(value: float) -> list[str]:
    """Shorter and shorter renderings of a cell value; the painter keeps the first that fits.

    The last ones drop the leading zero (``−.06``) so that a 7×7 grid's small cells still
    show a number rather than nothing.
    """
    v = float(value)
    if not math.isfinite(v):
        return [format_sig(v)]
    if v == 0:
        return ["0"]
    if v.is_integer() and abs(v) < 1e6:
        return [str(int(v)).replace("-", "−")]
    out = [format_sig(v, 3), format_sig(v, 2), format_sig(v, 1)]
    for text in list(out):
        short = text.replace("0.", ".", 1) if text.lstrip("−").startswith("0.") else text
        if short not in out:
            out.append(short)
    if abs(v) < 0.01:  # −9e−4 is narrower than −.0009
        mant, exp = f"{v:.0e}".split("e")
        sci = f"{mant}e{int(exp)}".replace("-", "−")
        if len(sci) < min(len(t) for t in out):
            out.append(sci)
    out.sort(key=lambda t: -len(t))  # longest (most precise) first, stable
    return out


def fit_text(fm: QFontMetrics, candidates: list[str], width: int) -> str | None:
    """The first candidate narrower than ``width`` pixels, or None."""
    for text in candidates:
        if fm.horizontalAdvance(text) <= width:
            return text
    return None


#: The smallest font a grid of numbers paints (kernel, input patch, products): smaller is
#: unreadable from the back of a classroom; such grids get wider cells instead.
MIN_CELL_FONT_PX = 9


def cell_font(base_font):
    """The font of a grid's numbers: the widget's, semi-condensed (a 7×7 grid's cells are
    narrow; ``−.002`` fits a cell a fifth narrower at the same height)."""
    from PySide6.QtGui import QFont

    f = QFont(base_font)
    f.setStretch(QFont.Stretch.SemiCondensed)
    return f


def fit_cell_texts(base_font, base_px: int, values, width: int, min_px: int = 6):
    """A font and one text per value such that every value shows (never blank).

    The largest pixel size (≤ ``base_px``) at which every value fits ``width`` pixels in
    some rendering (fewer decimals, no leading zero) is taken; each cell then shows its
    most precise rendering that fits. When even ``min_px`` is too big, the shortest
    rendering is shown anyway (the hover tooltip has the exact value).
    Returns (QFont, QFontMetrics, texts) with ``texts`` shaped like ``values``.
    """
    from PySide6.QtGui import QFont

    arr = np.asarray(values, dtype=np.float64)
    cands = [cell_text_candidates(float(v)) for v in arr.ravel()]
    chosen = None
    for px in range(max(base_px, min_px), min_px - 1, -1):
        f = QFont(base_font)
        f.setPixelSize(px)
        fm = QFontMetrics(f)
        texts = [fit_text(fm, c, width) for c in cands]
        chosen = (f, fm, texts)
        if all(t is not None for t in texts):
            break
    f, fm, texts = chosen
    texts = [t if t is not None else c[-1] for t, c in zip(texts, cands)]
    return f, fm, np.array(texts, dtype=object).reshape(arr.shape)


ERROR_RED = "#c0392b"  # error frames (a UI border, not text); error TEXT uses error_text()


def contrast_ratio(a: QColor, b: QColor) -> float:
    """WCAG 2 contrast ratio of two colours (1 … 21); AA asks ≥ 4.5 for text."""
    la, lb = relative_luminance(a), relative_luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def mute(widget) -> None:
    """Give a label secondary-text colour: the palette's PlaceholderText role, which both
    themes set to a grey with WCAG AA contrast (≥ 4.5:1) and which follows a theme change."""
    from PySide6.QtGui import QPalette

    widget.setForegroundRole(QPalette.ColorRole.PlaceholderText)


def error_text(widget) -> None:
    """Error text in the theme's readable red (the palette's BrightText role, AA in both themes)."""
    from PySide6.QtGui import QPalette

    widget.setForegroundRole(QPalette.ColorRole.BrightText)
