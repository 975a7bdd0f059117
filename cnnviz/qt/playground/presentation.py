"""Presentation mode (F5): for a projector. One large output map beside the input, the
explanation (patch, kernel, products, sum) in large type; everything else hidden.

Arrow keys (and a presenter clicker's Page Up / Page Down) step the sliding window across
the real map, one output pixel at a time, showing each dot product; Shift+arrows jump 10
pixels; Home goes back to the first pixel; Space plays / pauses; Esc (or F5) leaves. With
a live source every new frame is shown and the pixel at the current position re-explained.

With pooling on, the steps go on through the *pool stage*: the activated map with each pool
window on it beside the pooled map, and the window's max (or average) explained. Page Down
after the last conv pixel enters it, Tab switches between the two stages. With a deck of
scenes open, Page Down after the last step (and N) shows the next scene, Page Up before the
first step (and B or P) the previous one, so a presenter clicker walks through a whole deck.

The mode is a widget laid over the main window (the docks stay as they are underneath,
so leaving restores the user's layout exactly). It paints what the window's last result
holds; the explanation is the core's :func:`~cnnviz.core.dotproduct.explain_conv_pixel`.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QRect, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QFont, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QToolButton, QWidget

from cnnviz.core.display import auto_levels, stage_image
from cnnviz.core.dotproduct import explain_conv_pixel, explain_pool_pixel

from ..colors import format_sig
from .explain_panel import ExplainPanel
from .map_view import MapView

PLAY_INTERVAL_MS = 120
KEYS_HELP = ("← → ↑ ↓ step · Shift+arrows ×10 · PgUp/PgDn previous/next (then the pool stage and the next scene) "
             "· Tab conv/pool · Space play/pause · N/B next/back scene · Esc leave")
STAGES = ("conv", "pool")


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
        self._stage = "conv"
        self._want: tuple[str, int, int] | None = None   # a scene's step, until its result has it
        self._explanation = None
        self._step_count = 0
        self._fitted: dict[str, tuple] = {}   # view → (stage, shape) it was last fitted to
        self._play = QTimer(self)
        self._play.setObjectName("presentation-play")
        self._play.setInterval(PLAY_INTERVAL_MS)
        self._play.timeout.connect(lambda: self.next(scenes=False))

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
        eq = self.explain.findChild(QLabel, "equation")
        if eq is not None:  # it sets its own size (1.25× the panel's), so it is not inherited
            ef = QFont(f)
            ef.setPointSizeF(f.pointSizeF() * 1.25)
            ef.setBold(True)
            eq.setFont(ef)
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
        self.setGeometry(self.visible_rect())
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

    def visible_rect(self) -> QRect:
        """The part of the window on its screen: a window whose docks need more height than
        a 1280×720 projector has still presents everything on the screen."""
        w = self._window
        r = w.rect()
        screen = w.screen()
        if screen is None or QGuiApplication.platformName() == "offscreen":
            return r  # no real screen there (a nominal 800×600)
        free = screen.availableGeometry()
        on_screen = QRect(w.mapFromGlobal(free.topLeft()), free.size()).intersected(r)
        return on_screen if on_screen.width() > 200 and on_screen.height() > 200 else r

    def sync_geometry(self) -> None:
        if self.isVisible():
            self.setGeometry(self.visible_rect())

    # -- stepping ------------------------------------------------------------------------------
    def stages(self) -> tuple[str, ...]:
        """The stages the steps go through: conv, and pool when pooling is on."""
        res, req = self._window.current_result(), self._window.current_request()
        if res is not None and req is not None and res.pool is not None and req.pool is not None \
                and res.pool_shape is not None:
            return STAGES
        return ("conv",)

    def stage(self) -> str:
        """"conv" or "pool": which map the steps walk now."""
        return self._stage

    def set_stage(self, stage: str, y: int = 0, x: int = 0) -> None:
        """Show ``stage`` ("conv" or "pool"; pool only when pooling is on) at (y, x)."""
        self._want = None
        if stage not in self.stages():
            stage = "conv"
        changed = stage != self._stage
        self._stage = stage
        self._pos = (int(y), int(x))
        if changed:
            self._on_result()
        else:
            self.set_position(y, x)

    def toggle_stage(self) -> None:
        st = self.stages()
        self.set_stage(st[(st.index(self._stage) + 1) % len(st)] if self._stage in st else "conv")

    def reset(self) -> None:
        """Back to the first conv pixel (a new scene starts there)."""
        self._stage = "conv"
        self._pos = (0, 0)
        self._want = None

    def show_at(self, stage: str, y: int, x: int) -> None:
        """Go to (y, x) of ``stage`` as soon as a result has that step (a scene's step: its
        result may still be computing, and the one shown now may be smaller)."""
        self._want = (stage if stage in STAGES else "conv", int(y), int(x))
        self._stage, self._pos = self._want[0], (int(y), int(x))
        if self.isVisible():
            self._on_result()

    def _take_want(self) -> None:
        if self._want is None:
            return
        stage, y, x = self._want
        res = self._window.current_result()
        if stage not in self.stages() or res is None:
            return
        shape = res.pool_shape if stage == "pool" else res.conv_shape
        oh, ow = (int(v) for v in shape.out_hw)
        self._stage, self._pos = stage, (y, x)
        if y < oh and x < ow:
            self._want = None  # reached

    def out_hw(self) -> tuple[int, int] | None:
        res = self._window.current_result()
        if res is None:
            return None
        if self._stage == "pool" and res.pool_shape is not None and res.pool is not None:
            return tuple(int(v) for v in res.pool_shape.out_hw)
        return tuple(int(v) for v in res.conv_shape.out_hw)

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
        self._want = None
        y, x = self._pos
        self.set_position(y + dy, x + dx)

    def next(self, scenes: bool = True) -> None:
        """The next output pixel in reading order; after the last conv pixel the pool stage
        (when pooling is on); after the last step the next scene of an open deck (``scenes``),
        else back to the start."""
        self._want = None
        hw = self.out_hw()
        if hw is None:
            return
        oh, ow = hw
        i = self._pos[0] * ow + self._pos[1] + 1
        if i < oh * ow:
            self.set_position(*divmod(i, ow))
            return
        st = self.stages()
        k = st.index(self._stage) if self._stage in st else 0
        if k + 1 < len(st):
            self.set_stage(st[k + 1], 0, 0)
        elif not (scenes and self._step_scene(1)):
            self.set_stage(st[0], 0, 0)

    def previous(self, scenes: bool = True) -> None:
        """The previous output pixel; before the first pool window the last conv pixel; before
        the first step the previous scene of an open deck, else the last step."""
        self._want = None
        hw = self.out_hw()
        if hw is None:
            return
        oh, ow = hw
        i = self._pos[0] * ow + self._pos[1] - 1
        if i >= 0:
            self.set_position(*divmod(i, ow))
            return
        if scenes and self._stage == "conv" and self._step_scene(-1):
            return
        st = self.stages()
        k = st.index(self._stage) if self._stage in st else 0
        target = st[k - 1] if k > 0 else st[-1]
        res = self._window.current_result()
        shape = res.pool_shape if target == "pool" else res.conv_shape
        oh, ow = (int(v) for v in shape.out_hw)
        self.set_stage(target, oh - 1, ow - 1)

    def _step_scene(self, delta: int) -> bool:
        scenes = getattr(self._window, "scenes", None)
        return bool(scenes is not None and scenes.step_deck(delta))

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
        self._take_want()
        if self._stage not in self.stages():
            self._stage = "conv"
        k = self._kernel_index()
        ch = self._channel(req)
        if self._stage == "pool":
            self._show_pool_stage(res, req, k, ch)
            self._fit()
            self.set_position(*self._pos)
            return
        inp = self._window.outputs.view("input").image()
        if inp is not None:
            self.input_view.set_image(inp)
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
        self._fit()
        self.set_position(*self._pos)

    def _fit(self) -> None:
        """Fit each view to its picture when the stage or the map's size changed (the pool
        stage shows other maps than the conv stage)."""
        for name, v in (("input", self.input_view), ("output", self.output_view)):
            img = v.image()
            key = (self._stage, None if img is None else img.data.shape[:2])
            if img is not None and self._fitted.get(name) != key:
                self._fitted[name] = key
                v.view_box.autoRange(padding=0.02)

    @staticmethod
    def _coloured(a: np.ndarray):  # noqa: ANN205
        return stage_image(a, auto_levels(a), "diverging" if float(np.min(a)) < 0 else "gray")

    def _show_pool_stage(self, res, req, k: int, ch: int | None) -> None:  # noqa: ANN001
        """The pool stage: the activated map (what the pool windows slide over) on the left,
        the pooled map large on the right."""
        act = res.activation[k] if res.activation.ndim == 3 else res.activation[k, ch or 0]
        pooled = res.pool[k] if res.pool.ndim == 3 else res.pool[k, ch or 0]
        self.input_view.set_image(self._coloured(act))
        self.output_view.set_image(self._coloured(pooled))
        kind = "max" if req.pool.kind == "max" else "average"
        act_name = req.activation.kind if req.activation.kind != "none" else "no activation"
        self.input_view.set_texts(f"Activated map ({act_name}) — {act.shape[0]}×{act.shape[1]}", "")
        self.output_view.set_texts(f"{kind.capitalize()} pool of kernel '{req.kernels[k].name}' — "
                                   f"{pooled.shape[0]}×{pooled.shape[1]}",
                                   res.pool_shape.text if res.pool_shape is not None else "")

    def _explain_pool(self, res, req) -> None:  # noqa: ANN001
        y, x = self._pos
        k = self._kernel_index()
        ch = self._channel(req)
        act = res.activation[k] if res.activation.ndim == 3 else res.activation[k, ch or 0]
        e = explain_pool_pixel(act, req.pool, y, x)
        self._explanation = e
        self.explain.show_pool(e)
        y0, x0, y1, x1 = e.window
        self.input_view.show_window(QRectF(x0, y0, x1 - x0, y1 - y0))
        self.output_view.show_marker(QRectF(x, y, 1, 1))
        how = "max" if e.kind == "max" else "mean"
        self.where.setText(f"Pool ({y}, {x}) = {how} {format_sig(e.value, 4)}")
        self._step_count += 1
        self.positionChanged.emit(y, x)

    def _explain(self) -> None:
        res, req = self._window.current_result(), self._window.current_request()
        if res is None or req is None:
            return
        if self._stage == "pool" and "pool" in self.stages():
            self._explain_pool(res, req)
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
                Qt.Key.Key_Escape, Qt.Key.Key_Space, Qt.Key.Key_PageUp, Qt.Key.Key_PageDown, Qt.Key.Key_Home,
                Qt.Key.Key_Tab, Qt.Key.Key_N, Qt.Key.Key_B, Qt.Key.Key_P)):
            e.accept()
            return True
        if e.type() == QEvent.Type.KeyPress and e.key() in (Qt.Key.Key_Tab, Qt.Key.Key_Backtab):
            self.toggle_stage()  # Tab switches conv / pool stage instead of moving the focus
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
            self.set_stage("conv", 0, 0)
        elif key == Qt.Key.Key_Space:
            self.toggle_play()
        elif key == Qt.Key.Key_Escape:
            self.leave()
        elif key in (Qt.Key.Key_N, Qt.Key.Key_B, Qt.Key.Key_P):
            self._step_scene(1 if key == Qt.Key.Key_N else -1)  # a deck of scenes
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
