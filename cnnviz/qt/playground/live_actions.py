"""The live sources' controls in the playground window: the "Live source" dock, the Source
menu and the status-bar label (:func:`install_live_sources`); the controller that runs the
sources is :class:`~cnnviz.qt.playground.live.LiveController`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFrame, QLabel, QMenu, QScrollArea, QWidget

from .live import FAILED, LIVE, STARTING, STILL, STOPPED, LiveController, PlaygroundWindow

if TYPE_CHECKING:  # pragma: no cover
    from .source_panel import SourcePanel

# ---------------------------------------------------------------------------------------
# wiring into the window
# ---------------------------------------------------------------------------------------


class _SpaceForGrid(QObject):
    """Lets the kernel grid keep Space ("paint the brush") while Space freezes elsewhere."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.ShortcutOverride:
            mods = event.modifiers() & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier
                                        | Qt.KeyboardModifier.MetaModifier)
            if event.key() == Qt.Key.Key_Space and not mods:
                event.accept()  # deliver Space to the grid as a key press, not as a shortcut
                return True
        return False


class LiveActions(QObject):
    """The Source menu's actions, kept in step with the controller."""

    def __init__(self, window: PlaygroundWindow, controller: LiveController, panel: SourcePanel):
        super().__init__(controller)
        self.controller = c = controller
        self.panel = panel
        self.window = window

        def act(text: str, slot: Callable[[], None], shortcut: str | None = None, tip: str = "",
                name: str = "", checkable: bool = False) -> QAction:
            a = QAction(text, window)
            if shortcut:
                a.setShortcut(QKeySequence(shortcut))
                a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            if tip:
                a.setToolTip(tip)
                a.setStatusTip(tip)
            a.setObjectName(name)
            a.setCheckable(checkable)
            a.triggered.connect(lambda _=False: slot())
            return a

        self.still = act("&Still image", c.show_still, tip="Stop the live source and show the still picture",
                         name="source-still")
        self.webcam = act("&Webcam…", panel.choose_webcam, tip="List the cameras that open and start one",
                          name="source-webcam")
        self.video = act("&Video file…", panel.choose_video, tip="Play a video file through the pipeline",
                         name="source-video")
        self.pattern = act("Test &pattern", lambda: c.start_pattern(), tip="A moving 1280×720 pattern at 30 fps",
                           name="source-pattern")
        self.start_stop = act("S&tart", self._start_stop, "F6", "Start or stop the live source (F5 is presentation mode)",
                              "source-start-stop")
        self.freeze = act("&Freeze", c.toggle_freeze, "Space", "Keep the current frame (Space)", "source-freeze",
                          checkable=True)
        self.step = act("Step &one frame", c.step, "Shift+Space", "While frozen: show the next frame (Shift+Space)",
                        "source-step")
        self.mirror = act("&Mirror", lambda: c.set_mirror(not c.mirror), tip="Flip the picture left-right",
                          name="source-mirror", checkable=True)
        self.snapshot = act("S&napshot → still image", c.snapshot, tip="Keep the frame on screen as the still image",
                            name="source-snapshot")
        self.reconnect = act("&Reconnect", c.reconnect, tip="Open the source again", name="source-reconnect")
        c.stateChanged.connect(self.sync)
        c.frameShown.connect(self._on_first_frame)
        self.sync()

    def _start_stop(self) -> None:
        c = self.controller
        if c.state in (LIVE, STARTING):
            c.stop()
        else:
            self.panel.start_selected()

    def _on_first_frame(self, _fid: int) -> None:
        if not self.snapshot.isEnabled():
            self.sync()

    def sync(self) -> None:
        c = self.controller
        running = c.state in (LIVE, STARTING)
        self.start_stop.setText("S&top" if running else "S&tart")
        self.freeze.setEnabled(c.state == LIVE)
        self.freeze.setChecked(c.frozen)
        self.step.setEnabled(c.state == LIVE and (c.frozen or c.paused))
        self.mirror.setChecked(c.mirror)
        self.snapshot.setEnabled(c.last_frame is not None and c.state != STILL)
        self.reconnect.setEnabled(c.source is not None and c.state in (FAILED, STOPPED))
        self.still.setEnabled(c.state != STILL)

    def fill_menu(self, menu: QMenu) -> None:
        for a in (self.still, self.webcam, self.video, self.pattern):
            menu.addAction(a)
        menu.addSeparator()
        for a in (self.start_stop, self.freeze, self.step, self.mirror, self.snapshot, self.reconnect):
            menu.addAction(a)


def _menu_named(window: QWidget, text: str) -> QMenu | None:
    for a in window.menuBar().actions():
        if a.menu() is not None and a.text().replace("&", "") == text:
            return a.menu()
    return None


def install_live_sources(window: PlaygroundWindow, **kwargs: Any) -> LiveController:
    """Add live sources to the playground window and return the controller.

    Adds a "Live source" dock under the window's Source dock, a "Source" menu (before
    View), its dock toggle under View > Panels, and a permanent status-bar label with
    source fps, processed fps, dropped frames and capture→display latency. Keyword
    arguments go to :class:`LiveController`. Call it once, from ``MainWindow.__init__``
    before the saved layout is restored, so the dock's position is saved and restored too.
    """
    from .source_panel import SourcePanel

    controller = LiveController(window, **kwargs)
    panel = SourcePanel(controller)
    dock = QDockWidget("Live source", window)
    dock.setObjectName("dock-live")
    # a scroll area: messages (no camera, watchdog errors) wrap over several lines and must
    # never be clipped when the dock is short
    area = QScrollArea()
    area.setObjectName("live-source-scroll")
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(panel)
    dock.setWidget(area)
    dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                     | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                     | QDockWidget.DockWidgetFeature.DockWidgetClosable)
    anchor = getattr(window, "dock_source", None)
    if isinstance(anchor, QDockWidget):
        window.addDockWidget(window.dockWidgetArea(anchor), dock)
        window.splitDockWidget(anchor, dock, Qt.Orientation.Vertical)
        window.resizeDocks([anchor, dock], [150, 250], Qt.Orientation.Vertical)
    else:
        window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
    window.add_panel_dock(dock)

    actions = LiveActions(window, controller, panel)
    menu = QMenu("&Source", window)
    menu.setObjectName("menu-source")
    actions.fill_menu(menu)
    view = _menu_named(window, "View")
    if view is not None:
        window.menuBar().insertMenu(view.menuAction(), menu)
    else:
        window.menuBar().addMenu(menu)

    grid = getattr(getattr(window, "kernel_editor", None), "grid", None)
    if callable(grid):
        guard = _SpaceForGrid(controller)
        grid().installEventFilter(guard)

    label = QLabel("")
    label.setObjectName("status-live")
    label.setToolTip("Live source: frames per second made by the source and shown by the views, "
                     "frames dropped because the pipeline was busy, and capture→display latency")
    label.hide()
    window.statusBar().addPermanentWidget(label)

    def refresh_label(*_: Any) -> None:
        text = controller.status_text()
        label.setText(text)
        label.setVisible(bool(text))

    controller.statsUpdated.connect(refresh_label)
    controller.stateChanged.connect(refresh_label)

    controller.panel = panel            # type: ignore[attr-defined]
    controller.dock = dock              # type: ignore[attr-defined]
    controller.menu = menu              # type: ignore[attr-defined]
    controller.actions = actions        # type: ignore[attr-defined]
    controller.status_label = label     # type: ignore[attr-defined]
    window.live = controller            # type: ignore[attr-defined]
    return controller
