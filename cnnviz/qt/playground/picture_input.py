"""Opening, pasting and dropping pictures, samples and recent files, and the
downscale question for huge ones (the window's picture side).

A mixin of :class:`~cnnviz.qt.playground.window.MainWindow`: it uses the window's
widgets and state through ``self``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QMimeData, Qt, QTimer, QUrl
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import QFileDialog, QMessageBox

from cnnviz.core.errors import CnnvizError, ImageLoadError, SpecError
from cnnviz.core.images import (BOMB_FACTOR, DEFAULT_MAX_PIXELS, SUPPORTED_EXTENSIONS, image_from_array,
                                load_image, probe_image)
from cnnviz.core.kernels import RESOURCES

from ..qimages import qimage_to_array

SAMPLES_DIR = RESOURCES / "samples"

SAMPLES: dict[str, str] = {"photo": "Photo", "pattern": "Test pattern", "digit": "Handwritten digit",
                           "checkerboard": "Checkerboard"}

#: Pictures are shown at most this large on their longest side so edits stay live.
LIVE_MAX_SIDE = 2048

#: Pictures with more pixels than this open only after the user agrees to a downscale
#: (the core's default limit; a full decode would need gigabytes).
ASK_DOWNSCALE_PIXELS = DEFAULT_MAX_PIXELS

_ENCODED_MIME = ("image/png", "image/jpeg", "image/bmp", "image/tiff", "image/webp")


def _local_image_paths(mime: QMimeData) -> list[Path]:
    out = []
    if mime.hasUrls():
        for url in mime.urls():
            if url.isLocalFile():
                out.append(Path(url.toLocalFile()))
    elif mime.hasText():
        t = mime.text().strip()
        if t.startswith("file://"):
            out.append(Path(QUrl(t).toLocalFile()))
        elif t and "\n" not in t and len(t) < 4096 and Path(t).suffix.lower() in SUPPORTED_EXTENSIONS:
            out.append(Path(t))
    return out


class PictureInput:
    """The window's picture side: open, paste, drop, samples, recent files, huge pictures."""

    # ===================================================================================
    # pictures
    # ===================================================================================
    def current_image(self) -> np.ndarray | None:
        """The picture as loaded (float32 (H, W) or (H, W, 3)), or the last frame."""
        return self._image

    def image_label(self) -> str:
        return self._image_label

    def open_image_dialog(self) -> None:
        exts = " ".join(f"*{e}" for e in SUPPORTED_EXTENSIONS)
        start = self.settings.last_dir("image")
        path, _ = QFileDialog.getOpenFileName(self, "Open image", start,
                                              f"Images ({exts});;All files (*)")
        if path:
            self.settings.remember_dir("image", path)
            self.open_image(path)

    def open_image(self, path: str | Path, *, quiet: bool = False, source: str = "file") -> bool:
        """Load a picture file; on failure the status bar says why and nothing changes.

        A picture over :data:`ASK_DOWNSCALE_PIXELS` opens only after the user agrees to a
        downscale (:meth:`confirm_downscale`); ``quiet`` loads (start-up restoring the last
        picture) do not ask again. Every picture is shown at most :data:`LIVE_MAX_SIDE`
        pixels on its longest side so edits stay live.
        """
        p = Path(path)
        if p.suffix.lower() == ".json" and getattr(self, "scenes", None) is not None:
            return self.scenes.open_file(p)  # a scene or a deck (`cnnviz gui lesson.json`, a dropped file)
        try:
            if not self._agree_to_size(p, p.name, ask=not quiet):
                return False
            loaded = load_image(p, downscale_to=LIVE_MAX_SIDE)
        except CnnvizError as err:
            self.show_error(err, f"Could not open {p.name}")
            return False
        note = ""
        ow, oh = loaded.original_size
        if (loaded.width, loaded.height) != (ow, oh) and not loaded.exif_rotated:
            note = f" (downscaled from {oh}×{ow} H×W so edits stay live)"
        self._set_image(loaded.pixels, f"{p.name}{note}", str(p.resolve()), source)
        if source == "file":
            self.settings.add_recent(p)
        if not quiet:
            self.show_message(f"Opened {p}{note}")
        return True

    def _agree_to_size(self, src: Any, label: str, ask: bool = True, size: tuple[int, int] | None = None) -> bool:
        """True when ``src`` (a path or encoded bytes) may be loaded: not huge, or the user
        agreed to a downscale. Headers the loader refuses outright (bombs, junk) pass here
        so that :func:`load_image` gives its own message."""
        if size is None:
            try:
                w, h, _fmt = probe_image(src)
            except CnnvizError:
                return True
        else:
            w, h = size
        if w * h <= ASK_DOWNSCALE_PIXELS or w * h > BOMB_FACTOR * DEFAULT_MAX_PIXELS or not ask:
            return True
        if self.confirm_downscale(label, w, h):
            return True
        self.show_message(f"Did not open {label} ({h}×{w} H×W): cancelled")
        return False

    @staticmethod
    def downscale_text(label: str, w: int, h: int) -> str:
        """The question :meth:`confirm_downscale` asks."""
        s = LIVE_MAX_SIDE / max(w, h)
        dw, dh = max(1, round(w * s)), max(1, round(h * s))
        gb = w * h * 3 * 4 / 1e9
        return (f"This image is {h}×{w} H×W ({w * h / 1e6:.0f} MP): {label}.\n\n"
                f"At full size it would need about {gb:.1f} GB of memory and every edit would be slow. "
                f"cnnviz can open it downscaled to {LIVE_MAX_SIDE} px on its longest side ({dh}×{dw}).")

    def confirm_downscale(self, label: str, w: int, h: int) -> bool:
        """Ask whether to open a huge picture downscaled (modal); True = downscale, False = cancel."""
        box = QMessageBox(QMessageBox.Icon.Question, "cnnviz — large image", self.downscale_text(label, w, h),
                          QMessageBox.StandardButton.NoButton, self)
        box.setObjectName("downscale-dialog")
        down = box.addButton(f"Downscale to {LIVE_MAX_SIDE} px", QMessageBox.ButtonRole.AcceptRole)
        down.setObjectName("downscale")
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(down)
        box.exec()
        return box.clickedButton() is down

    def open_sample(self, name: str, *, quiet: bool = False) -> bool:
        if name not in SAMPLES:
            self.show_error(SpecError(f"there is no sample '{name}'", f"choose one of {', '.join(SAMPLES)}"))
            return False
        p = SAMPLES_DIR / f"{name}.png"
        ok = self.open_image(p, quiet=True, source=f"sample:{name}")
        if ok:
            self._image_label = f"{SAMPLES[name]} (sample)"
            self._update_source_label()
            if not quiet:
                self.show_message(f"Opened the {SAMPLES[name].lower()} sample")
        return ok

    def paste_from_clipboard(self) -> bool:
        """Use the clipboard's image (encoded bytes, a file URL or a bitmap)."""
        mime = QGuiApplication.clipboard().mimeData()
        if mime is None:
            self.show_message("The clipboard is empty; copy an image or an image file first", error=True)
            return False
        return self.load_from_mime(mime, "clipboard")

    def load_from_mime(self, mime: QMimeData, source: str) -> bool:
        """Load a picture from drag-and-drop or clipboard data (file first, then bytes, then bitmap)."""
        paths = _local_image_paths(mime)
        if paths:
            return self.open_image(paths[0])
        for fmt in _ENCODED_MIME:
            if mime.hasFormat(fmt):
                data = bytes(mime.data(fmt).data())
                if data:
                    try:
                        if not self._agree_to_size(data, f"the {source} image"):
                            return False
                        loaded = load_image(data, downscale_to=LIVE_MAX_SIDE)
                    except CnnvizError as err:
                        self.show_error(err, f"Could not use the {source} image")
                        return False
                    self._set_image(loaded.pixels, f"image from the {source}", None, source)
                    self.show_message(f"Pasted a {loaded.height}×{loaded.width} (H×W) image from the {source}")
                    return True
        if mime.hasImage():
            img = QImage(mime.imageData())
            if img.isNull():
                self.show_message(f"The {source} image could not be read; copy it again or save it as a file",
                                  error=True)
                return False
            w, h = img.width(), img.height()
            if w * h > BOMB_FACTOR * DEFAULT_MAX_PIXELS:
                self.show_message(f"The {source} image is {h}×{w} H×W ({w * h / 1e6:.0f} MP), too large to use; "
                                  "save it as a file and shrink it first", error=True)
                return False
            if not self._agree_to_size(None, f"the {source} image", size=(w, h)):
                return False
            if max(w, h) > LIVE_MAX_SIDE:
                # shrink in Qt before the copy to numpy: never a second full-size array
                img = img.scaled(LIVE_MAX_SIDE, LIVE_MAX_SIDE, Qt.AspectRatioMode.KeepAspectRatio,
                                 Qt.TransformationMode.SmoothTransformation)
            try:
                loaded = image_from_array(qimage_to_array(img))
            except CnnvizError as err:
                self.show_error(err, f"Could not use the {source} image")
                return False
            self._set_image(loaded.pixels, f"image from the {source}", None, source)
            self.show_message(f"Pasted a {loaded.height}×{loaded.width} (H×W) image from the {source}")
            return True
        kinds = ", ".join(mime.formats()[:4]) or "nothing"
        self.show_message(f"The {source} holds no image ({kinds}); copy an image or an image file "
                          f"({', '.join(e.lstrip('.') for e in SUPPORTED_EXTENSIONS[:5])}, …)", error=True)
        return False

    def set_frame(self, pixels: np.ndarray, label: str = "live frame") -> None:
        """Feed a frame from a live source: (H, W) or (H, W, 3|4), uint8/uint16/float in [0, 1].

        The array is copied (cameras reuse their buffers); conversion happens on the worker.
        The latest frame wins: frames arriving faster than they compute are dropped.
        """
        a = np.asarray(pixels)
        if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)) or 0 in a.shape[:2]:
            self.show_error(ImageLoadError(f"a frame of shape {a.shape} is not an image",
                                           "send (H, W) gray or (H, W, 3) RGB frames"))
            return
        self._set_image(np.array(a, copy=True), label, None, "frame", quiet=True)

    def _set_image(self, pixels: np.ndarray, label: str, path: str | None, source: str, quiet: bool = False) -> None:
        pixels.setflags(write=False)
        same_shape = self._image is not None and self._image.shape[:2] == pixels.shape[:2]
        self._image = pixels
        self._image_key += 1
        self._image_label = label
        self._image_path = path
        self._image_source = source
        if source != "frame":
            # a result for the previous picture must not flash up after the new one is chosen
            self.worker.invalidate()
        if not same_shape:
            self._pinned = None
            self._hovered = None
            self.outputs.clear_overlays()
        self._update_source_label()
        self._schedule()
        if not quiet or source != "frame":
            self.imageChanged.emit()
        if source != "frame":
            idx = self.sample_box.findData(source.split(":", 1)[1] if source.startswith("sample:") else "")
            self.sample_box.setCurrentIndex(max(idx, 0))

    def _update_source_label(self) -> None:
        if self._image is None:
            self.source_label.setText("No picture")
            self.status_image.setText("")
            return
        h, w = self._image.shape[:2]
        kind = "grey" if self._image.ndim == 2 else "colour"
        self.source_label.setText(f"<b>{self._image_label}</b><br>{h}×{w} (H×W) {kind}")
        self.source_label.setToolTip(self._image_path or self._image_label)
        self.status_image.setText(f"image {h}×{w} {kind}")

    def _on_sample_box(self, index: int) -> None:
        key = self.sample_box.itemData(index)
        if key:
            self.open_sample(key)

    def _fill_recent_menu(self) -> None:
        m = self.recent_menu
        m.clear()
        recent = [r for r in self.settings.recent_files]
        if not recent:
            a = m.addAction("(no recent files)")
            a.setEnabled(False)
        for i, r in enumerate(recent):
            a = m.addAction(f"&{i + 1} {Path(r).name}" if i < 9 else Path(r).name)
            a.setToolTip(r)
            a.setStatusTip(r)
            a.setEnabled(Path(r).exists())
            a.triggered.connect(lambda _=False, path=r: self.open_image(path))
        m.addSeparator()
        clear = m.addAction("Clear recent files")
        clear.setEnabled(bool(recent))
        clear.triggered.connect(self._clear_recent)

    def _clear_recent(self) -> None:
        self.settings.recent_files = []
        self._fill_recent_menu()

    # drag and drop ----------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt's name
        mime = event.mimeData()
        if _local_image_paths(mime) or mime.hasImage() or any(mime.hasFormat(f) for f in _ENCODED_MIME):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802
        mime = event.mimeData()
        if self._drop_needs_question(mime):
            # A modal question inside dropEvent would block the application the drag came
            # from (a file manager) until it is answered: accept now, ask once back in the loop.
            copy = QMimeData()
            copy.setUrls(mime.urls())
            event.acceptProposedAction()
            QTimer.singleShot(0, lambda: self.load_from_mime(copy, "drop"))
            return
        if self.load_from_mime(mime, "drop"):
            event.acceptProposedAction()
        else:
            event.ignore()

    @staticmethod
    def _drop_needs_question(mime: QMimeData) -> bool:
        paths = _local_image_paths(mime)
        if not paths or not mime.hasUrls():
            return False
        try:
            w, h, _fmt = probe_image(paths[0])
        except CnnvizError:
            return False
        return ASK_DOWNSCALE_PIXELS < w * h <= BOMB_FACTOR * DEFAULT_MAX_PIXELS
