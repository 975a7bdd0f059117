"""The Learn panel: one button per lesson of :mod:`cnnviz.core.lessons`.

A button sets the app up to show one idea on the user's current image (playground lessons)
or on the demo model (inspector lessons) and puts the lesson's two or three sentences on
screen. Installed into the main window with :func:`install_learn_panel`.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QDockWidget, QLabel, QPushButton, QScrollArea, QSizePolicy, QVBoxLayout,
                               QWidget)

from ...core.conv import ActivationSpec, ConvSpec, PoolSpec
from ...core.display import MAGNITUDE, MOSAIC
from ...core.lessons import LESSONS, Lesson, playground_request
from ..colors import mute
from ...core.settings import PlaygroundParams


def _busy(insp) -> bool:
    """Whether the inspector is still loading a model or computing (its last result is to come)."""
    return any(getattr(insp, name, None) is not None and getattr(insp, name).is_busy()
               for name in ("loader", "inference"))


def params_from_specs(conv: ConvSpec, act: ActivationSpec, pool: PoolSpec | None) -> PlaygroundParams:
    """The parameters panel's values for frozen specs (the inverse of ``PlaygroundParams.to_specs``)."""
    kind = conv.padding if isinstance(conv.padding, str) else "number"
    extra = {}
    if pool is not None:
        extra = dict(pool=pool.kind, pool_size=pool.size, pool_stride=pool.stride, pool_padding=pool.padding,
                     ceil_mode=pool.ceil_mode)
    return PlaygroundParams(
        stride=conv.stride, padding_kind=kind, padding=(0, 0) if kind != "number" else conv.padding,
        padding_mode=conv.padding_mode, dilation=conv.dilation, bias=conv.bias, flip=conv.flip,
        channels=conv.channels, activation=act.kind, slope=act.slope, **extra)


class LearnPanel(QWidget):
    """Lesson buttons and the current lesson's text."""

    lessonApplied = Signal(str)

    def __init__(self, window, parent=None):
        super().__init__(parent)
        self.window = window
        self.current: Lesson | None = None
        self._pending_inspector: Lesson | None = None
        self._waiting_for_inspector = None   # the inspector whose resultShown we listen to
        lay = QVBoxLayout(self)
        intro = QLabel("Each button sets cnnviz up to show one idea — on your own image, or on the demo model.")
        intro.setWordWrap(True)
        for lab in (intro,):
            lab.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        lay.addWidget(intro)
        self.title = QLabel("")
        self.title.setObjectName("lesson-title")
        self.title.setStyleSheet("font-weight: 600; font-size: 13pt;")
        self.title.setWordWrap(True)
        self.text = QLabel("")
        self.text.setObjectName("lesson-text")
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.expect = QLabel("")
        self.expect.setObjectName("lesson-expect")
        self.expect.setWordWrap(True)
        self.expect.setStyleSheet("font-style: italic;")
        mute(self.expect)
        for w in (self.title, self.text, self.expect):
            w.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            lay.addWidget(w)
        self.buttons: dict[str, QPushButton] = {}
        for i, les in enumerate(LESSONS, 1):
            b = QPushButton(f"{i}. {les.title}")
            b.setObjectName(f"lesson-{les.key}")
            b.setToolTip(les.text)
            b.setStyleSheet("text-align: left; padding: 4px 8px;")
            # long titles may be cut at the dock's edge rather than widening it (tooltip has the text)
            b.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            b.clicked.connect(lambda _=False, k=les: self.apply(k))
            lay.addWidget(b)
            self.buttons[les.key] = b
        self.back_button = QPushButton("Back to my setup")
        self.back_button.setObjectName("back-to-my-setup")
        self.back_button.setToolTip("Put back the kernels, parameters, picture and view you had before the lesson")
        self.back_button.clicked.connect(self.back_to_my_setup)
        self.back_button.hide()
        lay.addWidget(self.back_button)
        lay.addStretch(1)

    # ------------------------------------------------------------------------------
    def back_to_my_setup(self) -> bool:
        scenes = getattr(self.window, "scenes", None)
        ok = scenes is not None and scenes.restore_setup()
        self.back_button.hide()
        return ok

    def apply(self, les: Lesson) -> None:
        scenes = getattr(self.window, "scenes", None)
        if les.target == "playground" and scenes is not None:
            scenes.remember_setup()  # a lesson opens on top of the user's setup, which stays
            self.back_button.show()
        self.current = les
        self.title.setText(les.title)
        self.text.setText(les.text)
        self.expect.setText(f"Look for: {les.expect}." if les.expect else "")
        if les.target == "playground":
            self._apply_playground(les)
        else:
            self._apply_inspector(les)
        self.lessonApplied.emit(les.key)

    def _apply_playground(self, les: Lesson) -> None:
        w = self.window
        channels = w.params_panel.params().channels if hasattr(w, "params_panel") else "gray"
        req = playground_request(les, channels)   # what the lesson sets up, decided in the core
        w.set_kernels(list(req.kernels), 0, req.magnitude_pair)
        w.set_params(params_from_specs(req.conv, req.activation, req.pool))
        if les.magnitude:
            w.outputs.set_selection(MAGNITUDE)
        elif len(req.kernels) > 2:
            w.outputs.set_selection(MOSAIC)
        else:
            w.outputs.set_selection(0)
        if les.panel == "train":  # "filters learn themselves": the Train window beside the Sobel kernels
            from cnnviz.qt.train import open_train_window  # noqa: PLC0415 - torch loads only for this lesson

            tw = open_train_window(w, playground=w)
            if not tw.is_running():  # SimpleCNN on the digits from random weights: watch its filters form
                tw.form.model.setCurrentText("simplecnn")
                tw.form.data.setText("digits")
                tw.start()
            return
        dock = {"explain": "dock_explain", "weights": "dock_weights", "animate": "dock_animate"}.get(les.panel or "")
        if dock and getattr(w, dock, None) is not None:
            getattr(w, dock).show()
            getattr(w, dock).raise_()

    def _apply_inspector(self, les: Lesson) -> None:
        w = self.window
        w.open_inspector()
        insp = w.inspector
        model = insp.current_model() if hasattr(insp, "current_model") else None
        if model is None or getattr(model, "kind", None) != "demo":
            insp.load_model_spec("demo")
        if self._waiting_for_inspector is not insp:
            self._stop_waiting()
            # the demo model's capture comes when torch and the model have loaded: each
            # result the inspector shows is a chance to pick the lesson's view
            insp.resultShown.connect(self._try_inspector_view)
            self._waiting_for_inspector = insp
        self._pending_inspector = les
        self._try_inspector_view()

    def _try_inspector_view(self, *_args) -> None:
        """Pick the lesson's view once the demo model's capture is on screen."""
        les = self._pending_inspector
        insp = getattr(self.window, "inspector", None)
        if les is None or insp is None:
            return
        cap = insp.current_capture()
        model = insp.current_model()
        if cap is None or model is None or model.kind != "demo" or _busy(insp):
            return  # the next resultShown tries again (a model still loading would reset the view)
        self._stop_waiting()
        convs = [layer.name for layer in cap.layers if "Conv" in layer.type]
        spec = les.inspector
        layer = {"first_conv": convs[0] if convs else None, "last_conv": convs[-1] if convs else None}.get(
            spec.get("layer", ""), None)
        view = spec.get("view", "grid")
        if view == "layers":
            insp.dock_layers.show()
            insp.dock_layers.raise_()
            insp.show_tab("grid")
        elif view == "receptive_field":
            insp.show_tab("rf")
        else:
            insp.show_tab(view)
        if layer:
            insp.select_layer(layer)
        if spec.get("featureviz"):  # lessons on the "What a channel looks for" window (its tab key)
            from cnnviz.qt.featureviz import open_from_inspector  # noqa: PLC0415

            open_from_inspector(insp, spec["featureviz"])

    def _stop_waiting(self) -> None:
        self._pending_inspector = None
        insp, self._waiting_for_inspector = self._waiting_for_inspector, None
        if insp is not None:
            try:
                insp.resultShown.disconnect(self._try_inspector_view)
            except (RuntimeError, TypeError):  # the inspector is gone already
                pass


def install_learn_panel(window) -> LearnPanel:
    """Add the Learn dock (tabbed with Parameters) and a Help ▸ Learn action."""
    panel = LearnPanel(window)
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(panel)
    dock = QDockWidget("Learn", window)
    dock.setObjectName("dock-learn")
    dock.setWidget(area)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    params_dock = getattr(window, "dock_params", None)
    if params_dock is not None and not hasattr(window, "_arrange_first_screen"):
        # (the playground window arranges its tabs itself: tabifying here first would
        # leave a stale tab bar behind when it does)
        window.tabifyDockWidget(params_dock, dock)
        params_dock.raise_()
    window.add_panel_dock(dock)
    window.dock_learn = dock
    window.learn_panel = panel
    return panel
