"""The rule that fits a saved window layout to the screen it reopens on (a projector)."""

from __future__ import annotations

import doctest

import pytest

from cnnviz.qt.playground import screen_fit
from cnnviz.qt.playground.screen_fit import fit_rect

MONITOR = (0, 0, 1920, 1080 - 40)     # a 1920×1080 monitor with a 40 px task bar
PROJECTOR = (0, 0, 1280, 720)


def _inside(r, free) -> bool:
    x, y, w, h = r
    fx, fy, fw, fh = free
    return fx <= x and fy <= y and x + w <= fx + fw and y + h <= fy + fh


@pytest.mark.parametrize("saved", [(0, 0, 1560, 980), (300, 50, 1560, 980), (1200, 700, 700, 300),
                                   (-50, -20, 1920, 1040), (20, 100, 1900, 500)])
def test_a_layout_saved_on_a_1920x1080_monitor_fits_a_1280x720_projector(saved):
    assert _inside(saved, MONITOR) or saved[0] < 0          # it was (nearly) on the monitor
    got = fit_rect(saved, PROJECTOR)
    assert _inside(got, PROJECTOR), got
    assert got[2] == min(saved[2], 1280) and got[3] == min(saved[3], 720)   # shrunk only as needed


def test_a_window_that_fits_is_left_alone():
    for saved in ((100, 40, 1560, 980), (0, 0, 1920, 1040), (400, 300, 800, 600)):
        assert fit_rect(saved, MONITOR) == saved
    assert fit_rect((10, 20, 640, 480), PROJECTOR) == (10, 20, 640, 480)


def test_a_second_screen_right_of_the_first_keeps_its_offset():
    right = (1920, 0, 1280, 720)                             # the projector extends the desktop
    assert fit_rect((2000, 10, 800, 600), right) == (2000, 10, 800, 600)
    assert fit_rect((100, 10, 1560, 980), right) == (1920, 0, 1280, 720)


def test_no_usable_screen_changes_nothing():
    assert fit_rect((5, 5, 100, 100), (0, 0, 0, 0)) == (5, 5, 100, 100)


def test_the_examples_in_the_docstring_hold():
    assert doctest.testmod(screen_fit).failed == 0


def test_the_window_uses_the_rule(monkeypatch, window):
    """The playground's fit_to_screen applies fit_rect (the offscreen platform itself is exempt)."""
    from PySide6.QtGui import QGuiApplication

    calls = []
    monkeypatch.setattr(QGuiApplication, "platformName", staticmethod(lambda: "xcb"))
    real = screen_fit.fit_rect
    monkeypatch.setattr(screen_fit, "fit_rect", lambda saved, free: calls.append((saved, free)) or real(saved, free))
    window.resize(3000, 2000)
    window.fit_to_screen()
    free = window.screen().availableGeometry()
    assert calls and calls[-1][1] == (free.x(), free.y(), free.width(), free.height())
    # shrunk to the screen (the offscreen screen is 800 px wide, less than the window's minimum)
    assert window.width() <= max(free.width(), window.minimumSizeHint().width()) < 3000
    assert window.height() <= max(free.height(), window.minimumSizeHint().height()) < 2000
