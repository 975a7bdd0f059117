"""Presentation mode (F5): for a projector. One large output map beside the input, the
explanation (patch, kernel, products, sum) in large type; everything else hidden.

Arrow keys (and a presenter clicker's Page Up / Page Down) step the sliding window across
the real map, one output pixel at a time, showing each dot product; Shift+arrows jump 10
pixels; Home goes back to the first pixel; Space plays / pauses; Esc (or F5) leaves. With
a live source every new frame is shown and the pixel at the current position re-explained.

The mode is a widget laid over the main window (the docks stay as they are underneath,
so leaving restores the user's layout exactly). It paints what the window's last result
holds; the explanation is the core's :func:`~cnnviz.core.dotproduct.explain_conv_pixel`.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QFont, QKeySequence
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QToolButton, QWidget

from cnnviz.core.display import auto_levels, stage_image
from cnnviz.core.dotproduct import explain_conv_pixel

from ..colors import format_sig
from .explain_panel import ExplainPanel
from .map_view import MapView

PLAY_INTERVAL_MS = 120
KEYS_HELP = ("← → ↑ ↓ step · Shift+arrows ×10 · PgUp/PgDn previous/next · Space play/pause · N/B next/back scene "
             "· Esc leave")


class PresentationView(QWidget):
    """The presentation overlay. ``positionChanged(y, x)`` after each step is shown."""

    positionChanged = Signal(int, int)
    left = Signal()

    def __init__(self, window) -> None:  # noqa: ANN001 - the playground MainWindow
        super().__init__(window)
        self._window = window
        self.setObjectName("presentation")
        self.setAutoFillBackground(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._pos = (0, 0)
        self._explanation = None
        self._step_count = 0
        self._play = QTimer(self)
        self._play.setObjectName("presentation-play")
        self._play.setInterval(PLAY_INTERVAL_MS)
        self._play.timeout.connect(self.next)

        lay = QGridLayout(self)
        lay.setContentsMargins(10, 8, 10, 8)
        lay.setSpacing(8)
        self.input_view = MapView("input", histogram=False)
        self.output_view = MapView("conv", histogram=False)
        self.explain = ExplainPanel()
        self.explain.setObjectName("presentation-explain")
        lay.addWidget(self.input_view, 0, 0)
        lay.addWidget(self.explain, 1, 0)
        lay.addWidget(self.output_view, 0, 1, 2, 1)
        lay.setColumnStretch(0, 33)
        lay.setColumnStretch(1, 67)
        lay.setRowStretch(0, 4)
        lay.setRowStretch(1, 5)
        bar = QHBoxLayout()
        self.where = QLabel("")
        self.where.setObjectName("presentation-where")
        self.hint = QLabel(KEYS_HELP)
        self.hint.setObjectName("presentation-keys")
        self.hint.setWordWrap(True)
        self.play_button = QToolButton()
        self.play_button.setObjectName("presentation-play-button")
        self.play_button.setText("Play")
        self.play_button.setToolTip("Slide the window across the map (Space)")
        self.play_button.clicked.connect(self.toggle_play)
        self.leave_button = QToolButton()
        self.leave_button.setText("Leave (Esc)")
        self.leave_button.setObjectName("presentation-leave")
        self.leave_button.setToolTip("Leave presentation mode (Esc or F5): the window comes back as it was")
        self.leave_button.clicked.connect(self.leave)
        for w in (self.play_button, self.leave_button):
            w.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        bar.addWidget(self.where, 1)
        bar.addWidget(self.hint, 2)
        bar.addWidget(self.play_button)
        bar.addWidget(self.leave_button)
        lay.addLayout(bar, 2, 0, 1, 2)
        for item in (self.output_view._marker_item, self.input_view._window_item):
            pen = item.pen()
            pen.setWidthF(4.0)  # seen from the back of the room
            item.setPen(pen)
        self.hide()
        window.resultShown.connect(self._on_result)
        window.installEventFilter(self)

    def eventFilter(self, obj, e) -> bool:  # noqa: ANN001, N802 - Qt's name
        if obj is self._window and e.type() == QEvent.Type.Close:
            self._play.stop()  # no timer outlives the window
        return False

    # -- the large type ------------------------------------------------------------------
    def apply_scale(self, scale: float) -> None:
        """Large type: the explanation and the labels at about twice the app's size."""
        base = self._window.font()
        f = QFont(base)
        size = base.pointSizeF() if base.pointSizeF() > 0 else 10.0
        f.setPointSizeF(size * 1.8)  # the app font already carries the user's scale (Ctrl +/-)
        self.explain.setFont(f)
        big = QFont(f)
        big.setBold(True)
        self.where.setFont(big)
        for name in ("patch", "kernel", "products", "pool"):
            self.explain.grid(name)._max_cell = 96  # big cells for the back row
        for v in (self.input_view, self.output_view):
            t = QFont(v.title.font())
            t.setPointSizeF(size * 1.5)
            t.setBold(True)
            v.title.setFont(t)

    # -- entering and leaving ---------------------------------------------------------------
    def is_active(self) -> bool:
        return self.isVisible()

    def enter(self) -> None:
        w = self._window
        self._saved = (w.menuBar().isVisible(),)
        self.apply_scale(getattr(w.settings, "font_scale", 1.0))
        w.menuBar().hide()
        self.setGeometry(w.rect())
        self.show()
        self.raise_()
        self.setFocus(Qt.FocusReason.OtherFocusReason)
        self._on_result()

    def leave(self) -> None:
        if not self.isVisible():
            return
        self._play.stop()
        self.play_button.setText("Play")
        self.hide()
        if getattr(self, "_saved", (True,))[0]:
            self._window.menuBar().show()
        self.left.emit()

    def sync_geometry(self) -> None:
        if self.isVisible():
            self.setGeometry(self._window.rect())

    # -- stepping ------------------------------------------------------------------------------
    def out_hw(self) -> tuple[int, int] | None:
        res = self._window.current_result()
        return tuple(int(v) for v in res.conv_shape.out_hw) if res is not None else None

    def position(self) -> tuple[int, int]:
        return self._pos

    def explanation(self):  # noqa: ANN201
        """The core's explanation of the output pixel shown now (None before a result)."""
        return self._explanation

    def set_position(self, y: int, x: int) -> None:
        hw = self.out_hw()
        if hw is None:
            return
        oh, ow = hw
        self._pos = (max(0, min(oh - 1, int(y))), max(0, min(ow - 1, int(x))))
        self._explain()

    def step(self, dy: int, dx: int) -> None:
        y, x = self._pos
        self.set_position(y + dy, x + dx)

    def next(self) -> None:
        """The next output pixel in reading order (wraps to the start at the end)."""
        hw = self.out_hw()
        if hw is None:
            return
        oh, ow = hw
        i = (self._pos[0] * ow + self._pos[1] + 1) % (oh * ow)
        self.set_position(*divmod(i, ow))

    def previous(self) -> None:
        hw = self.out_hw()
        if hw is None:
            return
        oh, ow = hw
        i = (self._pos[0] * ow + self._pos[1] - 1) % (oh * ow)
        self.set_position(*divmod(i, ow))

    def toggle_play(self) -> None:
        if self._play.isActive():
            self._play.stop()
            self.play_button.setText("Play")
        else:
            self._play.start()
            self.play_button.setText("Pause")

    def is_playing(self) -> bool:
        return self._play.isActive()

    # -- painting --------------------------------------------------------------------------------
    def _kernel_index(self) -> int:
        st = getattr(self._window, "state", None)
        req = self._window.current_request()
        k = int(getattr(st, "selected", 0)) if st is not None else 0
        return max(0, min(k, len(req.kernels) - 1)) if req is not None else 0

    def _channel(self, req) -> int | None:  # noqa: ANN001
        if req.conv.channels != "each":
            return None
        ch = self._window.outputs.channel()
        return ch if ch in (0, 1, 2) else 0

    def _on_result(self, *_args) -> None:
        if not self.isVisible():
            return
        res, req = self._window.current_result(), self._window.current_request()
        if res is None or req is None:
            return
        inp = self._window.outputs.view("input").image()
        if inp is not None:
            self.input_view.set_image(inp)
        k = self._kernel_index()
        ch = self._channel(req)
        conv = res.conv[k] if res.conv.ndim == 3 else res.conv[k, ch or 0]
        shown = self._window.outputs.view("conv").image()
        if shown is not None and shown.data is conv:
            img = shown  # the window's conv view coloured this very map: reuse its colours
        else:
            img = stage_image(conv, auto_levels(conv), "diverging" if float(np.min(conv)) < 0 else "gray")
        self.output_view.set_image(img)
        name = req.kernels[k].name
        self.input_view.set_texts(f"Input — {res.input.shape[0]}×{res.input.shape[1]}", "")
        self.output_view.set_texts(f"Output of kernel '{name}' — {conv.shape[0]}×{conv.shape[1]}", res.conv_shape.text)
        self.set_position(*self._pos)

    def _explain(self) -> None:
        res, req = self._window.current_result(), self._window.current_request()
        if res is None or req is None:
            return
        y, x = self._pos
        k = self._kernel_index()
        e = explain_conv_pixel(res.input, req.kernels[k], req.conv, y, x, channel=self._channel(req))
        self._explanation = e
        self.explain.show_conv(e)
        y0, x0, y1, x1 = e.window
        self.input_view.show_window(QRectF(x0, y0, x1 - x0, y1 - y0),
                                    [(float(c) + 0.5, float(r) + 0.5) for r in e.rows for c in e.cols])
        self.output_view.show_marker(QRectF(x, y, 1, 1))
        self.where.setText(f"Output ({y}, {x}) = {format_sig(e.value, 4)}")
        self._step_count += 1
        self.positionChanged.emit(y, x)

    # -- keys ----------------------------------------------------------------------------------------
    _KEYS = {Qt.Key.Key_Left: (0, -1), Qt.Key.Key_Right: (0, 1), Qt.Key.Key_Up: (-1, 0), Qt.Key.Key_Down: (1, 0)}

    def event(self, e) -> bool:  # noqa: ANN001
        # the window's own shortcuts (Esc unpins, arrows…) must not take the presenter's keys
        if e.type() == QEvent.Type.ShortcutOverride and (e.key() in self._KEYS or e.key() in (
                Qt.Key.Key_Escape, Qt.Key.Key_Space, Qt.Key.Key_PageUp, Qt.Key.Key_PageDown, Qt.Key.Key_Home)):
            e.accept()
            return True
        return super().event(e)

    def keyPressEvent(self, e) -> None:  # noqa: N802 - Qt's name
        key = e.key()
        if key in self._KEYS:
            dy, dx = self._KEYS[key]
            n = 10 if e.modifiers() & Qt.KeyboardModifier.ShiftModifier else 1
            self.step(dy * n, dx * n)
        elif key == Qt.Key.Key_PageDown:
            self.next()
        elif key == Qt.Key.Key_PageUp:
            self.previous()
        elif key == Qt.Key.Key_Home:
            self.set_position(0, 0)
        elif key == Qt.Key.Key_Space:
            self.toggle_play()
        elif key == Qt.Key.Key_Escape:
            self.leave()
        elif key in (Qt.Key.Key_N, Qt.Key.Key_B) and getattr(self._window, "scenes", None) is not None:
            self._window.scenes.step_deck(1 if key == Qt.Key.Key_N else -1)  # a deck of scenes
        else:
            super().keyPressEvent(e)


def install_presentation(window) -> PresentationView:  # noqa: ANN001
    """Add presentation mode to the playground window: F5 and a toolbar button toggle it."""
    view = PresentationView(window)
    act = QAction("Present", window)
    act.setObjectName("present")
    act.setShortcut(QKeySequence(Qt.Key.Key_F5))
    act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    act.setToolTip("Presentation mode (F5): one large output map beside the input and the explanation in large "
                   "type; arrows step the sliding window, Space plays, Esc leaves")
    act.setCheckable(True)

    def toggle(on: bool) -> None:
        if on and not view.is_active():
            view.enter()
        elif not on and view.is_active():
            view.leave()

    act.toggled.connect(toggle)
    view.left.connect(lambda: act.setChecked(False))
    window.addAction(act)
    toolbar = getattr(window, "toolbar", None)
    if toolbar is not None:
        toolbar.addSeparator()
        toolbar.addAction(act)
    window.presentation = view
    window.act_present = act
    return view


FONT_SCALES = (0.8, 0.9, 1.0, 1.15, 1.3, 1.5, 1.75, 2.0, 2.5)


def install_font_scaling(window) -> None:  # noqa: ANN001
    """View ▸ Larger text (Ctrl++), Smaller text (Ctrl+−), Normal text size: the whole app's
    font, remembered in the settings (``font_scale``)."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    base = QFont(app.font())
    # the unscaled size, taken once per application (a second window must not scale twice)
    base_pt = app.property("cnnviz-base-font-pt")
    if base_pt is None:
        base_pt = base.pointSizeF() if base.pointSizeF() > 0 else 10.0
        app.setProperty("cnnviz-base-font-pt", float(base_pt))
    base_pt = float(base_pt)

    def apply(scale: float) -> None:
        scale = min(FONT_SCALES, key=lambda s: abs(s - scale))
        window.settings.font_scale = scale
        f = QFont(base)
        f.setPointSizeF(base_pt * scale)
        app.setFont(f)
        window.font_scale_label = f"{round(scale * 100)} %"
        if hasattr(window, "show_message"):
            window.show_message(f"Text size {round(scale * 100)} % (Ctrl + / Ctrl − / Ctrl+Shift+0)")

    def bump(direction: int) -> None:
        cur = min(range(len(FONT_SCALES)), key=lambda i: abs(FONT_SCALES[i] - window.settings.font_scale))
        apply(FONT_SCALES[max(0, min(len(FONT_SCALES) - 1, cur + direction))])

    menu = None
    for a in window.menuBar().actions():
        if a.text().replace("&", "") == "View" and a.menu() is not None:
            menu = a.menu()
    specs = (("Larger text", ["Ctrl++", "Ctrl+="], lambda: bump(1), "font-larger"),
             ("Smaller text", ["Ctrl+-"], lambda: bump(-1), "font-smaller"),
             ("Normal text size", ["Ctrl+Shift+0"], lambda: apply(1.0), "font-normal"))
    if menu is not None:
        menu.addSeparator()
    for text, keys, slot, name in specs:
        act = QAction(text, window)
        act.setObjectName(name)
        act.setShortcuts([QKeySequence(k) for k in keys])
        act.triggered.connect(slot)
        window.addAction(act)
        if menu is not None:
            menu.addAction(act)
    window.set_font_scale = apply
    f = QFont(base)
    f.setPointSizeF(base_pt * window.settings.font_scale)
    if abs(f.pointSizeF() - base.pointSizeF()) > 1e-6:
        app.setFont(f)
