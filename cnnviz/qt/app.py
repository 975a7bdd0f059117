"""Application set-up: the QApplication, pyqtgraph options, the theme and the exception hook.

Import order matters: PySide6 is imported here before pyqtgraph so pyqtgraph binds to it,
and :func:`configure_pyqtgraph` runs when :mod:`cnnviz.qt` is first imported, before any
view exists.
"""

from __future__ import annotations

import sys
import traceback
from typing import Callable

from PySide6.QtCore import QCoreApplication, Qt, QTimer
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

import pyqtgraph as pg  # noqa: E402 - after PySide6 on purpose

import cnnviz

APP_NAME = "cnnviz"
ORG_NAME = "cnnviz"
THEMES = ("system", "light", "dark")

_configured = False


def configure_pyqtgraph() -> None:
    """Set pyqtgraph's global options once (row-major images, no OpenGL, antialiasing off)."""
    global _configured
    if _configured:
        return
    # The core's arrays are (rows, cols); pyqtgraph's column-major default would transpose
    # every image (its maintainers call that default their biggest regret).
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, useOpenGL=False)
    _configured = True


def pyside_problem() -> str | None:
    """A known-bad PySide6 for this Python, described with its fix; None when fine.

    PySide6 6.12.0 drops a reference to ``True`` on every ``Signal.emit()`` from Python;
    on Python < 3.12 (where ``True`` is not immortal) the interpreter aborts with
    "bool_dealloc" after a few hundred UI updates.
    """
    import PySide6

    if PySide6.__version__.startswith("6.12.0") and sys.version_info < (3, 12):
        return (f"PySide6 {PySide6.__version__} crashes on Python {sys.version.split()[0]} after a few hundred "
                "updates (a reference-count bug in Signal.emit); fix: pip install 'PySide6-Essentials<6.12'")
    return None


def create_app(argv: list[str] | None = None) -> QApplication:
    """The QApplication (created once), named, with pyqtgraph configured."""
    configure_pyqtgraph()
    problem = pyside_problem()
    if problem:
        print(f"cnnviz: warning: {problem}", file=sys.stderr)
    app = QApplication.instance()
    if app is None:
        QCoreApplication.setApplicationName(APP_NAME)
        QCoreApplication.setOrganizationName(ORG_NAME)
        QCoreApplication.setApplicationVersion(cnnviz.__version__)
        QGuiApplication.setApplicationDisplayName("cnnviz")
        app = QApplication(list(argv) if argv is not None else sys.argv[:1])
    else:
        if not app.applicationName() or app.applicationName() in ("python", "python3"):
            app.setApplicationName(APP_NAME)
        if not app.organizationName():
            app.setOrganizationName(ORG_NAME)
    return app  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------
# Theme
# ---------------------------------------------------------------------------------------
def system_prefers_dark(app: QGuiApplication | None = None) -> bool:
    app = app or QGuiApplication.instance()
    if app is None:
        return False
    try:
        return app.styleHints().colorScheme() == Qt.ColorScheme.Dark
    except AttributeError:  # Qt < 6.5
        return app.palette().color(QPalette.ColorRole.Window).lightness() < 128


def _dark_palette() -> QPalette:
    p = QPalette()
    base, window, text = QColor(30, 31, 34), QColor(45, 46, 50), QColor(222, 222, 222)
    disabled = QColor(127, 127, 127)
    p.setColor(QPalette.ColorRole.Window, window)
    p.setColor(QPalette.ColorRole.WindowText, text)
    p.setColor(QPalette.ColorRole.Base, base)
    p.setColor(QPalette.ColorRole.AlternateBase, QColor(40, 41, 45))
    p.setColor(QPalette.ColorRole.ToolTipBase, QColor(55, 56, 60))
    p.setColor(QPalette.ColorRole.ToolTipText, text)
    p.setColor(QPalette.ColorRole.PlaceholderText, disabled)
    p.setColor(QPalette.ColorRole.Text, text)
    p.setColor(QPalette.ColorRole.Button, window)
    p.setColor(QPalette.ColorRole.ButtonText, text)
    p.setColor(QPalette.ColorRole.BrightText, QColor(255, 80, 80))
    p.setColor(QPalette.ColorRole.Link, QColor(110, 170, 255))
    p.setColor(QPalette.ColorRole.Highlight, QColor(60, 120, 200))
    p.setColor(QPalette.ColorRole.HighlightedText, QColor(255, 255, 255))
    p.setColor(QPalette.ColorRole.Light, QColor(70, 71, 76))
    p.setColor(QPalette.ColorRole.Midlight, QColor(58, 59, 63))
    p.setColor(QPalette.ColorRole.Mid, QColor(40, 41, 44))
    p.setColor(QPalette.ColorRole.Dark, QColor(20, 20, 22))
    p.setColor(QPalette.ColorRole.Shadow, QColor(0, 0, 0))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    return p


def resolve_theme(theme: str, app: QGuiApplication | None = None) -> str:
    """'light' or 'dark' for a theme choice ('system' follows the desktop)."""
    if theme == "dark":
        return "dark"
    if theme == "light":
        return "light"
    return "dark" if system_prefers_dark(app) else "light"


def apply_theme(theme: str, app: QApplication | None = None) -> str:
    """Apply 'system', 'light' or 'dark' to the application; returns 'light' or 'dark'.

    Fusion with an explicit palette looks the same on every platform and makes dark mode
    work where the platform style ignores the desktop's scheme.
    """
    app = app or QApplication.instance()  # type: ignore[assignment]
    if theme not in THEMES:
        theme = "system"
    if app is None:
        return "light"
    resolved = resolve_theme(theme, app)
    if app.style().name().lower() != "fusion":
        app.setStyle("Fusion")
    palette = _dark_palette() if resolved == "dark" else app.style().standardPalette()
    app.setPalette(palette)
    return resolved


# ---------------------------------------------------------------------------------------
# Exceptions raised inside slots
# ---------------------------------------------------------------------------------------
_sink: Callable[[str, str], None] | None = None
_previous_hook = None


def set_exception_sink(sink: Callable[[str, str], None] | None) -> None:
    """Where :func:`install_excepthook` sends (summary, details); the main window's reporter."""
    global _sink
    _sink = sink


def _hook(exc_type, exc, tb) -> None:
    # Keep the terminal trace for developers, then tell the user in the window.
    if _previous_hook is not None:
        try:
            _previous_hook(exc_type, exc, tb)
        except Exception:  # noqa: BLE001
            pass
    if issubclass(exc_type, KeyboardInterrupt):
        app = QApplication.instance()
        if app is not None:
            app.quit()
        return
    sink = _sink
    if sink is None:
        return
    summary = f"{exc_type.__name__}: {exc}" if not hasattr(exc, "cause") else str(exc)
    details = "".join(traceback.format_exception(exc_type, exc, tb))
    # Qt calls the hook from inside the failing slot; report once the event loop is back.
    QTimer.singleShot(0, lambda: sink(summary, details))


def install_excepthook(sink: Callable[[str, str], None] | None = None) -> None:
    """Show exceptions raised in slots to the user instead of losing them on stderr.

    Only the real application installs this (pytest-qt installs its own hook in tests so a
    failing slot fails the test).
    """
    global _previous_hook
    if sink is not None:
        set_exception_sink(sink)
    if sys.excepthook is not _hook:
        _previous_hook = sys.excepthook
        sys.excepthook = _hook


def uninstall_excepthook() -> None:
    global _previous_hook
    if sys.excepthook is _hook:
        sys.excepthook = _previous_hook or sys.__excepthook__
    _previous_hook = None
    set_exception_sink(None)


def main(argv: list[str] | None = None, image: str | None = None) -> int:
    """Open the kernel playground window and run the event loop; returns the exit code."""
    app = create_app(argv)
    from .main_window import MainWindow  # noqa: PLC0415 - after the app exists

    window = MainWindow(image=image)
    install_excepthook(window.report_exception)
    window.show()
    try:
        return int(app.exec())
    finally:
        uninstall_excepthook()


def run_app(image: str | None = None, inspector: bool = False, argv: list[str] | None = None) -> int:
    """Entry point used by ``cnnviz`` / ``cnnviz gui``: the playground (or the model inspector)."""
    if not inspector:
        return main(argv, image=image)
    app = create_app(argv)
    from .inspector import InspectorWindow  # noqa: PLC0415 - only the inspector path loads models

    window = InspectorWindow()
    install_excepthook(getattr(window, "report_exception", None))
    window.show()
    try:
        return int(app.exec())
    finally:
        uninstall_excepthook()
