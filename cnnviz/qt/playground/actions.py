"""The window's docks, actions, menus, toolbar and status bar: built once, at start-up.

A mixin of :class:`~cnnviz.qt.playground.window.MainWindow`: it uses the window's
widgets and state through ``self``."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QDockWidget, QLabel, QScrollArea, QSplitter, QToolButton, QWidget

from .picture_input import SAMPLES


class ActionsAndMenus:
    """Docks, actions, menus, toolbar and status bar of the playground window."""

    def _dock(self, title: str, name: str, widget: QWidget, scroll: bool = False,
              horizontal: bool = True) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(f"dock-{name}")
        if scroll:
            area = QScrollArea()
            area.setWidgetResizable(True)
            area.setFrameShape(QScrollArea.Shape.NoFrame)
            area.setWidget(widget)
            if horizontal is False:
                area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
                area.setMinimumWidth(widget.minimumSizeHint().width() + area.verticalScrollBar().sizeHint().width() + 4)
            d.setWidget(area)
        else:
            d.setWidget(widget)
        d.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                      | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        return d

    def _build_docks(self) -> None:
        kernel_box = QSplitter(Qt.Orientation.Vertical)
        kernel_box.setObjectName("kernel-splitter")
        kernel_box.addWidget(self.kernel_bank)
        kernel_box.addWidget(self.kernel_editor)
        kernel_box.setStretchFactor(0, 1)
        kernel_box.setStretchFactor(1, 3)
        kernel_box.setChildrenCollapsible(False)
        kernel_box.setSizes([110, 640])  # the grid gets the room (a 7×7 kernel stays readable)
        self.dock_source = self._dock("Source", "source", self.source_panel)
        self.dock_kernel = self._dock("Kernel", "kernel", kernel_box)
        self.dock_params = self._dock("Parameters", "params", self.params_panel, scroll=True, horizontal=False)
        self.dock_outputs = self._dock("Outputs", "outputs", self.outputs)
        self.dock_explain = self._dock("Explain", "explain", self.explain_panel, scroll=True)
        self.dock_animate = self._dock("Animate", "animate", self.animate_panel)
        self.dock_weights = self._dock("Weight sharing", "weights", self.weight_panel, scroll=True)
        self.docks = [self.dock_source, self.dock_kernel, self.dock_params, self.dock_outputs, self.dock_explain,
                      self.dock_animate, self.dock_weights]

        # The outputs are a dock too (float them onto a second screen); the central widget
        # is an empty placeholder that takes no room.
        central = QWidget()
        central.setMaximumSize(0, 0)
        self.setCentralWidget(central)
        central.hide()
        L, R = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        self.setCorner(Qt.Corner.BottomLeftCorner, L)
        self.setCorner(Qt.Corner.BottomRightCorner, R)
        self.addDockWidget(L, self.dock_source)
        self.splitDockWidget(self.dock_source, self.dock_kernel, Qt.Orientation.Vertical)
        self.addDockWidget(R, self.dock_outputs)
        self.splitDockWidget(self.dock_outputs, self.dock_params, Qt.Orientation.Horizontal)
        self.splitDockWidget(self.dock_outputs, self.dock_explain, Qt.Orientation.Vertical)
        self.tabifyDockWidget(self.dock_explain, self.dock_animate)
        self.tabifyDockWidget(self.dock_animate, self.dock_weights)
        self.dock_explain.raise_()
        self.resizeDocks([self.dock_source, self.dock_kernel], [150, 700], Qt.Orientation.Vertical)
        self.resizeDocks([self.dock_source, self.dock_outputs, self.dock_params], [330, 930, 290],
                         Qt.Orientation.Horizontal)
        self.resizeDocks([self.dock_outputs, self.dock_explain], [640, 300], Qt.Orientation.Vertical)
        self.dock_animate.visibilityChanged.connect(self._on_animate_visible)

    def _action(self, text: str, slot, shortcut: Any = None, tip: str = "", name: str = "") -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            if isinstance(shortcut, (list, tuple)):
                a.setShortcuts([QKeySequence(s) for s in shortcut])
            else:
                a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setToolTip(tip)
            a.setStatusTip(tip)
        if name:
            a.setObjectName(name)
        a.triggered.connect(lambda _=False: slot())
        return a

    def _build_actions(self) -> None:
        self.act_open = self._action("&Open image…", self.open_image_dialog, QKeySequence.StandardKey.Open,
                                     "Open an image file", "open")
        self.act_paste = self._action("&Paste image", self.paste_from_clipboard, QKeySequence.StandardKey.Paste,
                                      "Use the image or image file on the clipboard", "paste")
        self.act_save_pngs = self._action("Save outputs as &PNGs…", self.save_pngs_dialog, "Ctrl+S",
                                          "Save each view as a PNG, coloured as shown", "save-pngs")
        self.act_save_npz = self._action("Save all outputs as .&npz…", self.save_npz_dialog, "Ctrl+Shift+S",
                                         "Save every stage's numbers (float32) in one .npz file", "save-npz")
        self.act_copy = self._action("&Copy output image", self.copy_to_clipboard, QKeySequence.StandardKey.Copy,
                                     "Copy the convolution view, coloured as shown", "copy")
        self.act_quit = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit, "Quit cnnviz", "quit")
        self.act_undo = self.kernel_editor.undoAction()
        self.act_redo = self.kernel_editor.redoAction()
        self.act_link = QAction("&Linked zoom", self)
        self.act_link.setObjectName("link-zoom")
        self.act_link.setCheckable(True)
        self.act_link.setChecked(self.outputs.is_linked())
        self.act_link.setShortcut(QKeySequence("Ctrl+L"))
        self.act_link.setToolTip("Zoom and pan all views together")
        self.act_link.toggled.connect(self.outputs.set_linked)
        self.outputs.link_box.toggled.connect(self.act_link.setChecked)
        self.act_fit = self._action("&Fit views", self.outputs.fit, "Ctrl+0", "Zoom every view to the whole image",
                                    "fit")
        self.act_reset_layout = self._action("&Reset layout", self.reset_layout, None,
                                             "Put every panel back where it started", "reset-layout")
        self.act_zoom_explained = self._action("&Zoom to explained pixel", self.zoom_to_explained, "Ctrl+E",
                                               "Zoom every view onto the window of the explained pixel", "zoom-explained")
        self.act_unpin = self._action("Unpin explained pixel", self.unpin, "Esc", "Follow the pointer again", "unpin")
        self.act_shortcuts = self._action("&Shortcuts and gestures", self.show_shortcuts, QKeySequence.StandardKey.HelpContents,
                                          "Keyboard shortcuts and the kernel editor's mouse gestures", "shortcuts")
        self.act_about = self._action("&About cnnviz", self.show_about, None, "Versions and credits", "about")
        self.act_inspector = self._action("Model &inspector", self.open_inspector, "Ctrl+M",
                                          "Open a trained model and see every layer's activations, weights, "
                                          "predictions and where it looked (opens on the demo digit model)",
                                          "inspector")
        self.act_inspect_image = self._action("Inspect this &image with the model", self.inspect_current_image,
                                              "Ctrl+Shift+M", "Feed the playground's current image to the model "
                                              "inspector", "inspect-image")
        self.theme_group = QActionGroup(self)
        self.theme_actions: dict[str, QAction] = {}
        for key, text in (("system", "Follow &system"), ("light", "&Light"), ("dark", "&Dark")):
            a = QAction(text, self)
            a.setCheckable(True)
            a.setObjectName(f"theme-{key}")
            a.triggered.connect(lambda _=False, k=key: self.apply_theme(k))
            self.theme_group.addAction(a)
            self.theme_actions[key] = a

    def _build_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.addAction(self.act_open)
        self.recent_menu = m.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self._fill_recent_menu()
        m.addAction(self.act_paste)
        self.samples_menu = m.addMenu("&Samples")
        for key, title in SAMPLES.items():
            a = self.samples_menu.addAction(title)
            a.setObjectName(f"sample-{key}")
            a.triggered.connect(lambda _=False, k=key: self.open_sample(k))
        m.addSeparator()
        m.addAction(self.act_save_pngs)
        m.addAction(self.act_save_npz)
        m.addAction(self.act_copy)
        m.addSeparator()
        m.addAction(self.act_quit)

        e = mb.addMenu("&Edit")
        e.addAction(self.act_undo)
        e.addAction(self.act_redo)
        e.addSeparator()
        e.addAction(self.act_copy)
        e.addAction(self.act_paste)

        v = mb.addMenu("&View")
        panels = self.panels_menu = v.addMenu("&Panels")
        for d in self.docks:
            panels.addAction(d.toggleViewAction())
        theme = v.addMenu("&Theme")
        for a in self.theme_actions.values():
            theme.addAction(a)
        v.addSeparator()
        v.addAction(self.act_link)
        v.addAction(self.act_fit)
        v.addAction(self.act_zoom_explained)
        v.addAction(self.act_unpin)
        v.addSeparator()
        v.addAction(self.act_reset_layout)

        mm = mb.addMenu("&Model")
        mm.addAction(self.act_inspector)
        mm.addAction(self.act_inspect_image)
        from ..train import add_train_action  # noqa: PLC0415 - the Train window (torch loads when a run starts)
        self.act_train = add_train_action(self, mm, playground=self)

        h = mb.addMenu("&Help")
        h.addAction(self.act_shortcuts)
        h.addAction(self.act_about)

    def _build_toolbar(self) -> None:
        tb = self.addToolBar("Main")
        tb.setObjectName("toolbar-main")
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        tb.addAction(self.act_open)
        tb.addAction(self.act_paste)
        sb = QToolButton()
        sb.setText("Samples")
        sb.setObjectName("samples-button")
        sb.setToolTip("Open a bundled picture: a photo, an edge test pattern or a handwritten digit.")
        sb.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        sb.setMenu(self.samples_menu)
        tb.addWidget(sb)
        tb.addSeparator()
        tb.addAction(self.act_undo)
        tb.addAction(self.act_redo)
        tb.addSeparator()
        tb.addAction(self.act_save_pngs)
        tb.addAction(self.act_copy)
        tb.addSeparator()
        tb.addAction(self.act_link)
        tb.addAction(self.act_fit)
        tb.addSeparator()
        tb.addAction(self.act_inspector)
        self.toolbar = tb

    def _build_statusbar(self) -> None:
        sb = self.statusBar()
        self.status_image = QLabel("")
        self.status_image.setObjectName("status-image")
        self.status_shapes = QLabel("")
        self.status_shapes.setObjectName("status-shapes")
        self.status_time = QLabel("")
        self.status_time.setObjectName("status-time")
        self.status_device = QLabel("device: CPU")
        self.status_device.setObjectName("status-device")
        for w in (self.status_image, self.status_shapes, self.status_time, self.status_device):
            w.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            sb.addPermanentWidget(w)
