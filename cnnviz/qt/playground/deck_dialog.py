"""The deck editor (File ▸ Deck of scenes…, Ctrl+Shift+D): a teacher prepares a sequence of
scenes in the app and presents it.

*Add current setup* captures the window as a scene (with the title typed beside it); the list
reorders (drag, Move up / Move down, Alt+↑ / Alt+↓), renames (double-click or F2) and removes scenes;
the preview under it says which scene is which (its picture, kernels and parameters);
*Open…* / *Save…* read and write the deck file (versioned JSON, :class:`cnnviz.core.scenes.Deck`,
written atomically); *Present* enters presentation mode on scene 1, and leaving it puts the
user's setup back exactly.

The dialog edits the window's one deck (``window.scenes.deck``) and never changes the window
itself except through *Present*. A bad file is one line in the dialog and changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QKeySequence, QPalette, QPixmap, QShortcut
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QFileDialog, QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem,
                               QPushButton, QVBoxLayout)

from cnnviz.core.errors import CnnvizError
from cnnviz.core.scenes import Deck, Scene, describe_scene, embedded_pixels

from .picture_input import SAMPLES_DIR

THUMB = 160


def _thumbnail(scene: Scene) -> QPixmap | None:
    """A small picture of the scene's source (None when it has none or cannot be read)."""
    src = scene.source
    kind = src.get("kind")
    try:
        if kind == "sample":
            pm = QPixmap(str(SAMPLES_DIR / f"{src.get('name', '')}.png"))
        elif kind == "file":
            pm = QPixmap(str(src.get("path", "")))
        elif kind == "embedded":
            a = np.clip(np.asarray(embedded_pixels(src)) * 255.0, 0, 255).astype(np.uint8)
            if a.ndim == 2:
                a = np.ascontiguousarray(a)
                img = QImage(a.data, a.shape[1], a.shape[0], a.strides[0], QImage.Format.Format_Grayscale8)
            else:
                a = np.ascontiguousarray(a[..., :3])
                img = QImage(a.data, a.shape[1], a.shape[0], a.strides[0], QImage.Format.Format_RGB888)
            pm = QPixmap.fromImage(img.copy())
        else:
            return None
    except CnnvizError:
        return None
    if pm.isNull():
        return None
    return pm.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)


class DeckDialog(QDialog):
    """Edit and present the window's deck of scenes (see the module docstring)."""

    def __init__(self, control) -> None:  # noqa: ANN001 - the window's SceneControl
        super().__init__(control.window)
        self._control = control
        self._refreshing = False
        self.setObjectName("deck-dialog")
        self.setWindowTitle("Deck of scenes")
        self.setModal(False)
        root = QVBoxLayout(self)

        add_row = QHBoxLayout()
        self.title_edit = QLineEdit()
        self.title_edit.setObjectName("deck-title")
        self.title_edit.setPlaceholderText("Title of the new scene (e.g. “Stride 2 halves the map”)")
        self.title_edit.returnPressed.connect(lambda: self.add_current())
        self.add_button = QPushButton("Add current setup")
        self.add_button.setObjectName("deck-add")
        self.add_button.setToolTip("Add the window as it is now — picture, kernels, parameters and view — "
                                   "as a scene after the selected one")
        self.add_button.clicked.connect(lambda: self.add_current())
        add_row.addWidget(self.title_edit, 1)
        add_row.addWidget(self.add_button)
        root.addLayout(add_row)

        body = QHBoxLayout()
        self.list = QListWidget()
        self.list.setObjectName("deck-list")
        self.list.setToolTip("The scenes in the order they are presented: drag to reorder, double-click (or F2) "
                             "renames")
        self.list.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.list.setDefaultDropAction(Qt.DropAction.MoveAction)
        # a drag moves the list's items (as a row move, or an insert and a remove): the deck follows
        self.list.model().rowsMoved.connect(self._sync_order)
        self.list.model().rowsRemoved.connect(self._sync_order)
        self.list.currentRowChanged.connect(self._on_row)
        self.list.itemChanged.connect(self._on_item_changed)
        body.addWidget(self.list, 2)
        side = QVBoxLayout()
        self.buttons: dict[str, QPushButton] = {}
        for name, text, tip, slot in (
                ("up", "Move up", "Present this scene earlier (Alt+↑)", lambda: self.move_selected(-1)),
                ("down", "Move down", "Present this scene later (Alt+↓)", lambda: self.move_selected(1)),
                ("rename", "Rename", "Give the scene another title (F2)", lambda: self.rename_selected()),
                ("update", "Replace with current", "Replace the selected scene with the window as it is now",
                 lambda: self.replace_selected()),
                ("remove", "Remove", "Take the scene out of the deck (Delete)", lambda: self.remove_selected())):
            side.addWidget(self._button(name, text, tip, slot))
        side.addStretch(1)
        self.thumb = QLabel()
        self.thumb.setObjectName("deck-thumbnail")
        self.thumb.setFixedSize(THUMB, THUMB)
        self.thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        side.addWidget(self.thumb)
        body.addLayout(side)
        root.addLayout(body, 1)

        self.preview = QLabel("")
        self.preview.setObjectName("deck-preview")
        self.preview.setWordWrap(True)
        self.preview.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        root.addWidget(self.preview)
        self.message = QLabel("")
        self.message.setObjectName("deck-message")
        self.message.setWordWrap(True)
        self.message.setMinimumHeight(self.message.fontMetrics().lineSpacing() * 2)  # never moves the buttons
        root.addWidget(self.message)

        bottom = QHBoxLayout()
        for name, text, tip, slot in (
                ("open", "Open…", "Open a deck (or a single scene) file", self.open_dialog),
                ("save", "Save…", "Save the deck as one file (versioned JSON)", self.save_dialog),
                ("present", "Present", "Presentation mode on scene 1: Page Down after the last step (or N) goes "
                 "to the next scene, Page Up before the first (or B) back, Esc brings your setup back", lambda: self.present())):
            bottom.addWidget(self._button(name, text, tip, slot))
        bottom.addStretch(1)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        bottom.addWidget(close)
        root.addLayout(bottom)
        self.buttons["present"].setDefault(False)
        self.buttons["present"].setAutoDefault(False)
        for key, slot in (("Alt+Up", lambda: self.move_selected(-1)), ("Alt+Down", lambda: self.move_selected(1)),
                          ("F2", lambda: self.rename_selected()), ("Delete", lambda: self.remove_selected())):
            QShortcut(QKeySequence(key), self.list, slot, context=Qt.ShortcutContext.WidgetShortcut)
        self.resize(620, 460)
        self._back_after_presenting = False
        control.window.presentation.left.connect(self._on_presentation_left)
        self.refresh()

    # -- the deck ---------------------------------------------------------------------------------------
    def _button(self, name: str, text: str, tip: str, slot) -> QPushButton:  # noqa: ANN001 - a callable
        """A push button of the dialog, kept in :attr:`buttons` under ``name``."""
        b = QPushButton(text)
        b.setObjectName(f"deck-{name}")
        b.setToolTip(tip)
        b.clicked.connect(slot)
        self.buttons[name] = b
        return b

    def deck(self) -> Deck:
        return self._control.deck

    def selected_index(self) -> int:
        return self.list.currentRow()

    def message_text(self) -> str:
        return self.message.text()

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setForegroundRole(QPalette.ColorRole.BrightText if error else QPalette.ColorRole.WindowText)

    def refresh(self, select: int | None = None) -> None:
        """Show the deck's scenes (keeping the selection, or selecting ``select``)."""
        keep = self.list.currentRow() if select is None else select
        self._refreshing = True
        try:
            self.list.clear()
            for i, s in enumerate(self.deck()):
                item = QListWidgetItem(s.title)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
                item.setData(Qt.ItemDataRole.UserRole, i)
                item.setToolTip(describe_scene(s))
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsDropEnabled)  # dropped between items, never on
                self.list.addItem(item)
            if len(self.deck()):
                self.list.setCurrentRow(max(0, min(len(self.deck()) - 1, keep)))
        finally:
            self._refreshing = False
        self._on_row(self.list.currentRow())

    def _on_row(self, row: int) -> None:
        has = 0 <= row < len(self.deck())
        for name in ("up", "down", "rename", "update", "remove"):
            self.buttons[name].setEnabled(has)
        self.buttons["up"].setEnabled(has and row > 0)
        self.buttons["down"].setEnabled(has and row < len(self.deck()) - 1)
        self.buttons["present"].setEnabled(len(self.deck()) > 0)
        self.buttons["save"].setEnabled(len(self.deck()) > 0)
        if not has:
            self.preview.setText("The deck is empty: set the window up for your first point, type a title and "
                                 "click Add current setup." if not len(self.deck()) else "")
            self.thumb.clear()
            return
        s = self.deck()[row]
        self.preview.setText(f"Scene {row + 1} of {len(self.deck())}: {describe_scene(s)}")
        pm = _thumbnail(s)
        if pm is None:
            self.thumb.clear()
            self.thumb.setText("no picture")
        else:
            self.thumb.setPixmap(pm)

    def _sync_order(self, *_args) -> None:
        """The deck takes the order of the list's items (each holds its scene's index)."""
        if self._refreshing or self.list.count() != len(self.deck()):
            return
        order = [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]
        if order == list(range(len(order))) or not all(isinstance(i, int) for i in order):
            return
        self.deck().reorder(order)
        self._refreshing = True
        try:  # the items now stand for their new indices (the list itself is not rebuilt mid-drop)
            for i in range(self.list.count()):
                self.list.item(i).setData(Qt.ItemDataRole.UserRole, i)
        finally:
            self._refreshing = False
        self._on_row(self.list.currentRow())

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        if self._refreshing:
            return
        row = self.list.row(item)
        if 0 <= row < len(self.deck()):
            self.rename_selected(item.text(), row=row)

    # -- editing ------------------------------------------------------------------------------------
    def add_current(self, title: str | None = None) -> int:
        """Add the window as it is now after the selected scene; returns its index."""
        title = self.title_edit.text() if title is None else title
        scene = self._control.capture(title=title.strip())
        row = self.list.currentRow()
        i = self.deck().add(scene, None if row < 0 else row + 1)
        self.title_edit.clear()
        self.refresh(i)
        self._say(f"Added scene {i + 1}: {self.deck()[i].title}")
        return i

    def move_selected(self, delta: int) -> int:
        row = self.list.currentRow()
        if not 0 <= row < len(self.deck()):
            return -1
        j = self.deck().move(row, delta)
        self.refresh(j)
        return j

    def rename_selected(self, title: str | None = None, *, row: int | None = None) -> None:
        """Rename the selected scene to ``title`` (None: edit its title in the list)."""
        row = self.list.currentRow() if row is None else row
        if not 0 <= row < len(self.deck()):
            return
        if title is None:
            self.list.editItem(self.list.item(row))
            return
        try:
            self.deck().rename(row, title)
        except CnnvizError as err:
            self._say(f"{err.cause}: {err.fix}", error=True)
        self.refresh(row)

    def replace_selected(self) -> None:
        row = self.list.currentRow()
        if 0 <= row < len(self.deck()):
            self.deck().replace_scene(row, self._control.capture())
            self.refresh(row)
            self._say(f"Scene {row + 1} now holds the current setup")

    def remove_selected(self) -> None:
        row = self.list.currentRow()
        if 0 <= row < len(self.deck()):
            gone = self.deck().remove(row)
            self.refresh(min(row, len(self.deck()) - 1))
            self._say(f"Removed scene {row + 1}: {gone.title}")

    # -- files ------------------------------------------------------------------------------------------
    def open_file(self, path: str | Path) -> bool:
        """Open a deck file; a bad one is one line here and the deck stays as it was."""
        try:
            deck = Deck.load(path)
        except CnnvizError as err:
            fix = f" {err.fix[:1].upper()}{err.fix[1:]}." if err.fix else ""
            self._say(f"Could not open {Path(path).name}: {err.cause}.{fix}", error=True)
            return False
        self._control.deck = deck
        self._control.deck_index = 0
        self.refresh(0)
        self._say(f"Opened {Path(path).name}: {len(deck)} scene{'s' if len(deck) != 1 else ''}")
        return True

    def save_file(self, path: str | Path) -> Path | None:
        try:
            p = self.deck().save(path)
        except (CnnvizError, OSError) as err:
            cause = err.cause if isinstance(err, CnnvizError) else (err.strerror or str(err))
            self._say(f"Could not save the deck: {cause}", error=True)
            return None
        self._say(f"Saved {len(self.deck())} scene{'s' if len(self.deck()) != 1 else ''} to {p}")
        return p

    def open_dialog(self) -> None:
        s = self._control.window.settings
        path, _ = QFileDialog.getOpenFileName(self, "Open deck", s.last_dir("scene"),
                                              "cnnviz scenes (*.json);;All files (*)")
        if path:
            s.remember_dir("scene", path)
            self.open_file(path)

    def save_dialog(self) -> None:
        s = self._control.window.settings
        path, _ = QFileDialog.getSaveFileName(self, "Save deck", str(Path(s.last_dir("scene")) / "deck.json"),
                                              "cnnviz scenes (*.json);;All files (*)")
        if path:
            p = Path(path)
            if not p.suffix:
                p = p.with_suffix(".json")
            s.remember_dir("scene", p)
            self.save_file(p)

    def _on_presentation_left(self) -> None:
        if self._back_after_presenting:  # rehearsing: the editor comes back where it was
            self._back_after_presenting = False
            self.show()

    def present(self, start: int = 0) -> bool:
        """Presentation mode on scene ``start + 1`` (scene 1 by default); the dialog steps aside."""
        ok = self._control.present_deck(start=start)
        if ok:
            self._back_after_presenting = True
            self.hide()  # the projector shows the window, not the editor
            self._control.window.activateWindow()
            self._control.window.presentation.setFocus()
        return ok
