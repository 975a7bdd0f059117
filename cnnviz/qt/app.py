"""Application set-up: the QApplication, pyqtgraph options, the theme and the exception hook.

Import order matters: PySide6 is imported here before pyqtgraph so pyqtgraph binds to it,
and :func:`configure_pyqtgraph` runs when :mod:`cnnviz.qt` is first imported, before any
view exists.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import threading
import traceback
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, Signal, Slot
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

import pyqtgraph as pg  # noqa: E402 - after PySide6 on purpose

import cnnviz
from cnnviz.core.resources import resources_dir

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


class GuiThreadGarbageCollector(QObject):
    """Run Python's cycle collector on the GUI thread only.

    The automatic collector runs in whichever thread happens to allocate: a worker thread
    (the model inspector's inference, a capture thread) can end up freeing a closed window
    or dialog that sat in a reference cycle, and destroying Qt widgets off the GUI thread
    crashes or deadlocks Qt (seen as a rare segfault and a hang in the test suite). So the
    automatic collector is switched off and a GUI-thread timer collects each generation when
    its count passes the usual threshold — the same work, on the thread Qt requires (the
    approach of pyqtgraph's ``GarbageCollector``). Reference counting still frees everything
    that is not in a cycle at once, in any thread.
    """

    def __init__(self, parent: QObject | None = None, interval_ms: int = 500):
        import gc

        from PySide6.QtCore import QTimer

        super().__init__(parent)
        self.setObjectName("cnnviz-gui-gc")
        self._threshold = gc.get_threshold()
        self.collections = 0
        self.full_interval_s = 60.0
        self._next_full = 0.0
        gc.disable()
        self._timer = QTimer(self)
        self._timer.setObjectName("cnnviz-gui-gc-timer")
        self._timer.timeout.connect(self.check)
        self._timer.start(interval_ms)

    def check(self) -> None:
        import gc
        import time

        l0, l1, l2 = gc.get_count()
        t0, t1, t2 = self._threshold
        if l0 > t0:
            gc.collect(0)
            self.collections += 1
            if l1 > t1:
                gc.collect(1)
                # A full collection walks every object (~0.2 s with torch loaded). Python's own
                # collector skips most of them with a heuristic this API cannot see; here they
                # are spaced out instead: at most one a minute, and never more than 1 % of the
                # time, so a model load or a live stream never stalls on them.
                now = time.monotonic()
                if l2 > t2 and now >= self._next_full:
                    gc.collect(2)
                    took = time.monotonic() - now
                    self._next_full = time.monotonic() + max(self.full_interval_s, 100.0 * took)

    def stop(self) -> None:
        """Hand collection back to Python's automatic collector."""
        import gc

        self._timer.stop()
        gc.enable()


_TOOLTIP_EVENT = QEvent.Type.ToolTip


class ToolTipWrapper(QObject):
    """Show long plain-text tooltips word-wrapped.

    Qt wraps rich-text tooltips but shows plain text on one line, and the tooltips that
    explain a concept run to a sentence or two (a 1000-pixel strip across the screen). This
    application-wide filter shows such a tooltip as rich text at display time; the widget's
    own ``toolTip()`` is left as written.
    """

    WRAP_AT = 70  # characters; shorter tips stay on one line

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        # every event of the application passes here: return at once for all but tooltips
        if event.type() != _TOOLTIP_EVENT:
            return False
        from PySide6.QtWidgets import QToolTip, QWidget

        if isinstance(obj, QWidget):
            html = wrapped_tooltip(obj.toolTip())
            if html is not None:
                QToolTip.showText(event.globalPos(), html, obj)
                return True
        return False


def wrapped_tooltip(tip: str) -> str | None:
    """Rich text that Qt word-wraps for a long plain tooltip, None for a short or rich one."""
    import html

    from PySide6.QtGui import Qt as GuiQt  # mightBeRichText lives in QtGui's Qt namespace

    if len(tip) <= ToolTipWrapper.WRAP_AT or GuiQt.mightBeRichText(tip):
        return None
    return "<p>" + html.escape(tip).replace("\n", "<br>") + "</p>"


def install_gui_thread_gc(app: QCoreApplication) -> GuiThreadGarbageCollector:
    """The app's :class:`GuiThreadGarbageCollector` (made once, owned by ``app``)."""
    existing = app.findChild(GuiThreadGarbageCollector, "cnnviz-gui-gc")
    if existing is not None:
        return existing
    gc_obj = GuiThreadGarbageCollector(app)
    app.aboutToQuit.connect(gc_obj.stop)
    return gc_obj


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
    if app.windowIcon().isNull():
        app.setWindowIcon(app_icon())
    QGuiApplication.setDesktopFileName("cnnviz")  # matches resources/cnnviz.desktop
    install_gui_thread_gc(app)
    if app.findChild(ToolTipWrapper) is None:
        app.installEventFilter(ToolTipWrapper(app))
    return app  # type: ignore[return-value]


def app_icon():
    """The cnnviz icon: the SVG plus the PNG sizes from resources/icons (crisp on HiDPI)."""
    from pathlib import Path

    from PySide6.QtGui import QIcon

    icons = resources_dir() / "icons"
    icon = QIcon()
    for size in (16, 24, 32, 48, 64, 128, 256, 512):
        png = icons / f"cnnviz-{size}.png"
        if png.exists():
            icon.addFile(str(png))
    svg = icons / "cnnviz.svg"
    if svg.exists():
        icon.addFile(str(svg))
    return icon


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
    muted = QColor(160, 160, 160)  # secondary text: 6.8:1 on the window, 8.2:1 on the base (WCAG AA)
    p.setColor(QPalette.ColorRole.Window, window)
    p.setColor(QPalette.ColorRole.WindowText, text)
    p.setColor(QPalette.ColorRole.Base, base)
    p.setColor(QPalette.ColorRole.AlternateBase, QColor(40, 41, 45))
    p.setColor(QPalette.ColorRole.ToolTipBase, QColor(55, 56, 60))
    p.setColor(QPalette.ColorRole.ToolTipText, text)
    p.setColor(QPalette.ColorRole.PlaceholderText, muted)
    p.setColor(QPalette.ColorRole.Text, text)
    p.setColor(QPalette.ColorRole.Button, window)
    p.setColor(QPalette.ColorRole.ButtonText, text)
    p.setColor(QPalette.ColorRole.BrightText, QColor(255, 128, 116))  # error text (cnnviz.qt.colors.error_text)
    p.setColor(QPalette.ColorRole.Link, QColor(110, 170, 255))
    p.setColor(QPalette.ColorRole.Highlight, QColor(44, 98, 170))
    p.setColor(QPalette.ColorRole.HighlightedText, QColor(255, 255, 255))
    p.setColor(QPalette.ColorRole.Light, QColor(70, 71, 76))
    p.setColor(QPalette.ColorRole.Midlight, QColor(58, 59, 63))
    p.setColor(QPalette.ColorRole.Mid, QColor(40, 41, 44))
    p.setColor(QPalette.ColorRole.Dark, QColor(20, 20, 22))
    p.setColor(QPalette.ColorRole.Shadow, QColor(0, 0, 0))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    return p


def _light_palette(app: QApplication) -> QPalette:
    """Fusion's light palette with text roles that reach WCAG AA (≥ 4.5:1)."""
    p = QPalette(app.style().standardPalette())
    p.setColor(QPalette.ColorRole.PlaceholderText, QColor(92, 92, 92))   # secondary text: 5.9:1 on the window
    p.setColor(QPalette.ColorRole.BrightText, QColor(170, 32, 24))       # error text: 6.3:1 on the window
    p.setColor(QPalette.ColorRole.Highlight, QColor(36, 104, 168))       # white on it: 5.9:1
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
    palette = _dark_palette() if resolved == "dark" else _light_palette(app)
    app.setPalette(palette)
    return resolved


# ---------------------------------------------------------------------------------------
# Faults: exceptions raised inside slots and threads, and the rotating log file
# ---------------------------------------------------------------------------------------
#: Environment variable naming the folder for ``cnnviz.log`` (tests point it at a temp dir).
ENV_LOG_DIR = "CNNVIZ_LOG_DIR"
LOG_FILENAME = "cnnviz.log"
LOG_MAX_BYTES = 1_000_000
LOG_BACKUPS = 3

log = logging.getLogger("cnnviz")

_sink: Callable[[str, str], None] | None = None
_previous_hook = None
_previous_thread_hook = None
_dispatcher: "_FaultDispatcher | None" = None
_log_handler: logging.handlers.RotatingFileHandler | None = None
_crash_file = None


def log_dir() -> Path:
    """Where the log file goes: ``$CNNVIZ_LOG_DIR``, else ``$CNNVIZ_CONFIG_DIR/logs``, else the
    platform's per-user log directory (``platformdirs.user_log_dir``)."""
    env = os.environ.get(ENV_LOG_DIR)
    if env:
        return Path(env)
    cfg = os.environ.get("CNNVIZ_CONFIG_DIR")
    if cfg:
        return Path(cfg) / "logs"
    import platformdirs  # noqa: PLC0415 - only needed here

    return Path(platformdirs.user_log_dir("cnnviz", "cnnviz"))


def log_path() -> Path | None:
    """The log file in use (None before :func:`setup_logging` or when it could not be opened)."""
    return Path(_log_handler.baseFilename) if _log_handler is not None else None


def setup_logging(directory: str | os.PathLike[str] | None = None) -> Path | None:
    """Send the ``cnnviz`` loggers to a rotating file (1 MB × 3 backups); returns its path.

    Idempotent. A folder that cannot be created only costs the log file (a warning on
    stderr): the window must open anyway. Hard crashes (a segfault in a native library)
    are written next to it by :mod:`faulthandler`.
    """
    global _log_handler, _crash_file
    folder = Path(directory) if directory is not None else log_dir()
    path = folder / LOG_FILENAME
    if _log_handler is not None:
        if Path(_log_handler.baseFilename) == path.resolve():
            return path
        teardown_logging()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS,
                                                       encoding="utf-8", delay=True)
    except OSError as exc:
        print(f"cnnviz: warning: cannot write the log file in {folder} ({exc.strerror or exc}); "
              f"set {ENV_LOG_DIR} to a writable folder", file=sys.stderr)
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    log.addHandler(handler)
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
    _log_handler = handler
    try:
        import faulthandler  # noqa: PLC0415

        _crash_file = open(folder / "crash.log", "a", encoding="utf-8")  # noqa: SIM115 - lives with the app
        faulthandler.enable(_crash_file)
    except (OSError, RuntimeError, ValueError):
        _crash_file = None
    return path


def teardown_logging() -> None:
    """Detach and close the log file handler (tests; the app keeps it to the end)."""
    global _log_handler, _crash_file
    if _log_handler is not None:
        log.removeHandler(_log_handler)
        _log_handler.close()
        _log_handler = None
    if _crash_file is not None:
        try:
            import faulthandler  # noqa: PLC0415

            faulthandler.disable()
            _crash_file.close()
        except (OSError, ValueError):
            pass
        _crash_file = None


class _FaultDispatcher(QObject):
    """Carries (summary, details) from any thread to the sink on the GUI thread.

    Qt calls ``sys.excepthook`` from inside the failing slot, and ``threading.excepthook``
    runs on the dying thread: a queued signal of an object that lives on the GUI thread
    reports once the event loop is back, whichever thread raised.
    """

    fault = Signal(str, str)

    def __init__(self) -> None:
        super().__init__()
        self.fault.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    @Slot(str, str)
    def _deliver(self, summary: str, details: str) -> None:
        sink = _sink
        if sink is None:
            return
        try:
            sink(summary, details)
        except Exception:  # noqa: BLE001 - the reporter itself must never raise into Qt
            log.exception("the error reporter failed")


def set_exception_sink(sink: Callable[[str, str], None] | None) -> None:
    """Where :func:`install_excepthook` sends (summary, details); the main window's reporter."""
    global _sink
    _sink = sink


def exception_summary(exc_type: type[BaseException], exc: BaseException | None) -> str:
    """One line for the user: a CnnvizError's own message, else ``Type: message``."""
    if exc is not None and hasattr(exc, "cause"):
        return str(exc)
    text = str(exc) if exc is not None else ""
    return f"{exc_type.__name__}: {text}" if text else exc_type.__name__


def report_fault(summary: str, details: str, *, logged: bool = False) -> None:
    """Log a fault (unless ``logged``) and show it to the user from any thread."""
    if not logged:
        log.error("%s\n%s", summary, details.rstrip())
    d = _dispatcher
    if d is not None and _sink is not None:
        try:
            d.fault.emit(summary, details)
        except RuntimeError:  # the dispatcher was deleted with the application
            pass


def _hook(exc_type, exc, tb) -> None:
    # Keep the terminal trace for developers, log it, then tell the user in the window.
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
    summary = exception_summary(exc_type, exc)
    details = "".join(traceback.format_exception(exc_type, exc, tb))
    log.error("Unhandled exception: %s\n%s", summary, details.rstrip())
    report_fault(summary, details, logged=True)


def _thread_hook(args) -> None:
    # threading.excepthook: a Python thread (a capture or helper thread) died of an exception.
    if args.exc_type is SystemExit:
        return
    if _previous_thread_hook is not None:
        try:
            _previous_thread_hook(args)
        except Exception:  # noqa: BLE001
            pass
    name = args.thread.name if args.thread is not None else "a background thread"
    summary = f"in thread '{name}': {exception_summary(args.exc_type, args.exc_value)}"
    details = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
    log.error("Unhandled exception %s\n%s", summary, details.rstrip())
    report_fault(summary, details, logged=True)


def install_excepthook(sink: Callable[[str, str], None] | None = None) -> None:
    """Show exceptions raised in slots and Python threads to the user instead of losing them
    on stderr, and log them to the rotating log file.

    Must be called on the GUI thread after the QApplication exists. Only the real
    application installs this (pytest-qt installs its own hook in tests so a failing slot
    fails the test).
    """
    global _previous_hook, _previous_thread_hook, _dispatcher
    if sink is not None:
        set_exception_sink(sink)
    if _dispatcher is None:
        _dispatcher = _FaultDispatcher()
    if sys.excepthook is not _hook:
        _previous_hook = sys.excepthook
        sys.excepthook = _hook
    if threading.excepthook is not _thread_hook:
        _previous_thread_hook = threading.excepthook
        threading.excepthook = _thread_hook


def uninstall_excepthook() -> None:
    global _previous_hook, _previous_thread_hook, _dispatcher
    if sys.excepthook is _hook:
        sys.excepthook = _previous_hook or sys.__excepthook__
    if threading.excepthook is _thread_hook:
        threading.excepthook = _previous_thread_hook or threading.__excepthook__
    _previous_hook = None
    _previous_thread_hook = None
    set_exception_sink(None)
    if _dispatcher is not None:
        _dispatcher.deleteLater()
        _dispatcher = None


def main(argv: list[str] | None = None, image: str | None = None) -> int:
    """Open the kernel playground window and run the event loop; returns the exit code."""
    app = create_app(argv)
    setup_logging()
    log.info("cnnviz %s starting (playground)", cnnviz.__version__)
    # installed before the window exists: a fault while it builds is logged and reported too
    install_excepthook()
    from .playground.window import MainWindow  # noqa: PLC0415 - after the app exists

    window = MainWindow(image=image)
    set_exception_sink(window.report_exception)
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
    setup_logging()
    log.info("cnnviz %s starting (model inspector)", cnnviz.__version__)
    install_excepthook()
    from .inspector import InspectorWindow  # noqa: PLC0415 - only the inspector path loads models

    window = InspectorWindow()
    set_exception_sink(getattr(window, "report_exception", None))
    window.show()
    try:
        return int(app.exec())
    finally:
        uninstall_excepthook()
