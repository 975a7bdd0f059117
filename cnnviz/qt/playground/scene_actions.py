"""Scenes in the playground window: File ▸ Open scene… / Save scene…, File ▸ Deck of
scenes… (the deck editor, :mod:`.deck_dialog`), a deck stepped through in presentation mode
(Page Down / Page Up past the last / first step, N / B), and "Back to my setup" after a lesson.

Presenting a deck (:meth:`SceneControl.present_deck`) keeps the user's setup and puts it
back exactly when presentation mode is left.

:mod:`cnnviz.core.scenes` holds the file format; this module turns a scene into the
window's state (source, kernel bank, parameters, the view shown) and back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog

from cnnviz.core.errors import CnnvizError
from cnnviz.core.kernels import Kernel
from cnnviz.core.scenes import Deck, Scene, SceneError, embed_image, embedded_pixels, load_scenes, save_scenes

from ...core.settings import PlaygroundParams
from .views import MAGNITUDE, MOSAIC

_SELECTION_NAMES = {MOSAIC: "mosaic", MAGNITUDE: "magnitude"}


@dataclass(frozen=True)
class Setup:
    """The user's own setup, kept exactly (the picture array itself) while a lesson shows."""

    image: np.ndarray | None
    label: str
    path: str | None
    source: str
    kernels: tuple[Kernel, ...]
    selected: int
    magnitude_pair: tuple[int, int] | None
    params: PlaygroundParams
    selection: int


class _CloseGuard(QObject):
    """Closing the window while a deck is presented saves the user's setup, not the scene."""

    def __init__(self, control: "SceneControl") -> None:
        super().__init__(control.window)
        self._control = control

    def eventFilter(self, obj, e) -> bool:  # noqa: ANN001, N802 - Qt's name
        ctl = self._control
        if obj is ctl.window and e.type() == QEvent.Type.Close and ctl.presenting_setup is not None:
            ctl._put_back(ctl.presenting_setup)
        return False


class SceneControl:
    """The window's scenes: capture/apply, the open deck, the remembered setup."""

    def __init__(self, window) -> None:  # noqa: ANN001 - the playground MainWindow
        self.window = window
        self.deck = Deck()
        self.deck_index = 0
        self.saved_setup: Setup | None = None
        self.presenting_setup: Setup | None = None   # kept while a deck is presented
        self.deck_dialog = None
        window.presentation.left.connect(self._on_presentation_left)
        self._close_guard = _CloseGuard(self)
        window.installEventFilter(self._close_guard)

    # -- the user's setup (lessons open on top of it) -----------------------------------------
    def capture_setup(self) -> Setup:
        w = self.window
        st = w.state
        return Setup(w.current_image(), w._image_label, w._image_path, w._image_source, tuple(st.kernels),
                     st.selected, st.magnitude_pair, w.params(), w.outputs.selection())

    def remember_setup(self) -> None:
        """Keep the setup before the first lesson (a second lesson keeps the first setup)."""
        if self.saved_setup is None:
            self.saved_setup = self.capture_setup()

    def has_saved_setup(self) -> bool:
        return self.saved_setup is not None

    def restore_setup(self) -> bool:
        """Back to my setup: the bank, parameters, picture and view as they were, exactly."""
        s = self.saved_setup
        if s is None:
            return False
        self.saved_setup = None
        self._put_back(s)
        self.window.show_message("Back to your setup: your kernels, parameters and picture")
        return True

    def _put_back(self, s: Setup) -> None:
        w = self.window
        self.presenting_setup = None
        if w.presentation.is_active():
            w.presentation.leave()
        if s.image is not None and s.image is not w.current_image():
            w._set_image(s.image, s.label, s.path, s.source, quiet=True)
        w.set_params(s.params)
        w.set_kernels(s.kernels, s.selected, s.magnitude_pair)
        w.outputs.set_selection(s.selection)

    # -- presenting a deck -------------------------------------------------------------------------
    def present_deck(self, deck: Deck | None = None, start: int = 0) -> bool:
        """Presentation mode on scene ``start`` of ``deck`` (default: the open deck). The
        user's setup is kept and comes back exactly when presentation mode is left."""
        w = self.window
        if deck is not None:
            self.deck = deck
        if len(self.deck) == 0:
            w.show_message("The deck is empty: add a scene first (File ▸ Deck of scenes…)", error=True)
            return False
        start = max(0, min(len(self.deck) - 1, int(start)))
        setup = self.presenting_setup or self.capture_setup()
        self.presenting_setup = None  # applying the scene must not count as leaving
        w.presentation.reset()
        if not self.apply(self.deck[start]):
            self._put_back(setup)
            return False
        self.deck_index = start
        self.presenting_setup = setup
        if not w.presentation.is_active():
            w.act_present.setChecked(True)
        w.presentation.setFocus()
        w.show_message(f"Scene {start + 1} of {len(self.deck)}: {self.deck[start].title} "
                       "(Page Down after the last step or N: next scene; Esc: back to your setup)")
        return True

    def is_presenting_deck(self) -> bool:
        return self.presenting_setup is not None

    def _on_presentation_left(self) -> None:
        s = self.presenting_setup
        if s is not None:
            self._put_back(s)
            self.window.show_message("Left the deck: your kernels, parameters and picture are back")

    # -- scenes ------------------------------------------------------------------------------------
    def capture(self, *, embed: bool | None = None, title: str = "") -> Scene:
        """The window as a scene. The picture is referenced (a sample or a file) or, when it
        has no file (pasted, a live frame) or ``embed`` is True, embedded as PNG."""
        w = self.window
        st = w.state
        src = w._image_source or ""
        if embed is not True and src.startswith("sample:"):
            source: dict[str, Any] = {"kind": "sample", "name": src.split(":", 1)[1]}
        elif embed is not True and w._image_path:
            source = {"kind": "file", "path": str(w._image_path)}
        elif w.current_image() is not None:
            source = embed_image(w.current_image())
        else:
            source = {"kind": "none"}
        sel = w.outputs.selection()
        pres = w.presentation
        on = pres.is_active()  # a scene made outside presentation mode starts at the first step
        view = {"selection": _SELECTION_NAMES.get(sel, int(sel)), "presentation": on,
                "position": list(pres.position()) if on else [0, 0], "stage": pres.stage() if on else "conv"}
        pinned = getattr(w, "_pinned", None)
        if pinned is not None:  # the pixel the Explain panel explains (clicked)
            stage, k, y, x = pinned
            view["explained"] = [str(stage), int(k), int(y), int(x)]
        return Scene(tuple(st.kernels), st.selected, st.magnitude_pair, w.params().to_dict(), source, view,
                     title=title)

    def apply(self, scene: Scene) -> bool:
        """Show ``scene``: its picture, bank, parameters and view. Errors are reported and
        leave the window as it was (the picture is tried first)."""
        w = self.window
        src = scene.source
        kind = src.get("kind")
        try:
            params = PlaygroundParams.from_dict(scene.params) if scene.params else w.params()
        except CnnvizError as err:
            w.show_error(err, "Scene")
            return False
        if kind == "sample":
            if not w.open_sample(str(src.get("name", "")), quiet=True):
                return False
        elif kind == "file":
            if not w.open_image(str(src.get("path", "")), quiet=True):
                return False
        elif kind == "embedded":
            try:
                pixels = embedded_pixels(src)
            except SceneError as err:
                w.show_error(err, "Scene")
                return False
            w._set_image(pixels, scene.title or "scene picture", None, "scene", quiet=True)
        w.set_params(params)
        w.set_kernels(scene.kernels, scene.selected, scene.magnitude_pair)
        view = scene.view
        sel = view.get("selection", scene.selected)
        sel = {v: k for k, v in _SELECTION_NAMES.items()}.get(sel, sel)
        if isinstance(sel, int):
            w.outputs.set_selection(sel)
        if view.get("presentation") and not w.presentation.is_active():
            w.act_present.setChecked(True)
        pinned = view.get("explained")
        if (isinstance(pinned, list) and len(pinned) == 4 and pinned[0] in ("conv", "activation", "pool", "magnitude")
                and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in pinned[1:])):
            # explained again when the scene's result arrives (the pin outlives this result)
            w.explain_pixel(pinned[0], pinned[2], pinned[3], kernel=pinned[1])
        pos = view.get("position")
        if isinstance(pos, list) and len(pos) == 2 and all(isinstance(v, int) and v >= 0 for v in pos):
            stage = view.get("stage") if view.get("stage") in ("conv", "pool") else "conv"
            w.presentation.show_at(stage, pos[0], pos[1])
        return True

    def open_file(self, path: str | Path) -> bool:
        try:
            scenes = load_scenes(path)
        except CnnvizError as err:
            self.window.show_error(err, "Open scene")
            return False
        self.deck, self.deck_index = Deck(scenes), 0
        ok = self.apply(scenes[0])
        if ok:
            n = len(scenes)
            more = f" (scene 1 of {n}: N / B step through them in presentation mode)" if n > 1 else ""
            self.window.show_message(f"Opened the scene {Path(path).name}{more}")
        return ok

    def save_file(self, path: str | Path, *, embed: bool | None = None) -> Path | None:
        try:
            p = save_scenes(path, self.capture(embed=embed))
        except (CnnvizError, OSError) as err:
            self.window.show_error(err, "Save scene")
            return None
        self.window.show_message(f"Saved the scene to {p}")
        return p

    def step_deck(self, delta: int) -> bool:
        """The next / previous scene of the open deck (presentation mode stays on)."""
        if len(self.deck) < 2:
            return False
        i = self.deck_index + delta
        if not 0 <= i < len(self.deck):
            return False
        self.deck_index = i
        self.window.presentation.reset()  # a scene starts at its first step
        ok = self.apply(self.deck[i])
        if ok:
            self.window.show_message(f"Scene {i + 1} of {len(self.deck)}: {self.deck[i].title}")
        return ok

    # -- dialogs --------------------------------------------------------------------------------------
    def deck_editor(self):  # noqa: ANN201
        """File ▸ Deck of scenes…: the deck editor (one per window, not modal)."""
        from .deck_dialog import DeckDialog  # noqa: PLC0415

        if self.deck_dialog is None:
            self.deck_dialog = DeckDialog(self)
        self.deck_dialog.refresh()
        self.deck_dialog.show()
        self.deck_dialog.raise_()
        self.deck_dialog.activateWindow()
        return self.deck_dialog

    def open_dialog(self) -> None:
        w = self.window
        path, _ = QFileDialog.getOpenFileName(w, "Open scene", w.settings.last_dir("scene"),
                                              "cnnviz scenes (*.json);;All files (*)")
        if path:
            w.settings.remember_dir("scene", path)
            self.open_file(path)

    def save_dialog(self) -> None:
        w = self.window
        path, _ = QFileDialog.getSaveFileName(w, "Save scene", str(Path(w.settings.last_dir("scene")) / "scene.json"),
                                              "cnnviz scenes (*.json);;All files (*)")
        if path:
            p = Path(path)
            if not p.suffix:
                p = p.with_suffix(".json")
            w.settings.remember_dir("scene", p)
            self.save_file(p)


def install_scenes(window) -> SceneControl:  # noqa: ANN001
    """File ▸ Open scene… (Ctrl+Shift+O) and Save scene… (Ctrl+Shift+S); window.scenes."""
    ctl = SceneControl(window)
    file_menu = None
    for a in window.menuBar().actions():
        if a.text().replace("&", "") == "File" and a.menu() is not None:
            file_menu = a.menu()
    specs = (("Open scene…", "Ctrl+Shift+O", ctl.open_dialog, "scene-open",
              "Open a scene (picture, kernels, parameters and view) or a deck of scenes"),
             ("Save scene…", "Ctrl+Shift+S", ctl.save_dialog, "scene-save",
              "Save the picture, kernel bank, parameters and view as one scene file"),
             ("Deck of scenes…", "Ctrl+Shift+D", ctl.deck_editor, "scene-deck",
              "Prepare a sequence of scenes (a deck) and present it: Page Down walks through them"))
    acts = []
    for text, key, slot, name, tip in specs:
        act = QAction(text, window)
        act.setObjectName(name)
        act.setShortcut(QKeySequence(key))
        act.setToolTip(tip)
        act.setStatusTip(tip)
        act.triggered.connect(slot)
        window.addAction(act)
        acts.append(act)
    if file_menu is not None:
        first = file_menu.actions()[0] if file_menu.actions() else None
        sep = file_menu.insertSeparator(first) if first is not None else None
        for act in acts:
            file_menu.insertAction(sep, act) if sep is not None else file_menu.addAction(act)
    window.scenes = ctl
    return ctl
