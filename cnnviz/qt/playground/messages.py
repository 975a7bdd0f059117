"""Saving what the views show (PNGs: the very bytes on screen; .npz; the clipboard),
status messages, error reports, the shortcuts and About boxes.

A mixin of :class:`~cnnviz.qt.playground.window.MainWindow`: it uses the window's
widgets and state through ``self``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFileDialog, QMessageBox, QPlainTextEdit, QVBoxLayout

import cnnviz
from cnnviz.core.errors import CnnvizError, SpecError
from cnnviz.core.images import save_png

from .kernel_editor import GESTURES_HELP
from ..qimages import to_qimage
from ..workers import run_in_thread

STATUS_MS = 12_000


def _probe_devices() -> list[str]:
    """Import torch and list the GPUs (seconds the first time; a background thread)."""
    from cnnviz.core.devices import compute_summary

    try:
        return compute_summary()
    except Exception as exc:  # noqa: BLE001 - shown in the box, never raised in a thread
        return [f"PyTorch: {type(exc).__name__}: {exc}"]


class MessagesAndExport:
    """Exports of what the views show, status messages, error reports, help boxes."""

    # ===================================================================================
    # export
    # ===================================================================================
    def _stage_rgb(self, stage: str) -> np.ndarray | None:
        """The bytes a view draws, as RGB (RGBA where a mosaic's gaps are transparent)."""
        return self.outputs.view(stage).displayed_image()

    def save_pngs(self, folder: str | Path, stem: str | None = None) -> list[Path]:
        """Save every non-empty view as ``<stem>_<stage>.png`` in ``folder``; returns the paths."""
        folder = Path(folder)
        stem = stem or (Path(self._image_path).stem if self._image_path else "cnnviz")
        written = []
        for stage in ("input", "conv", "activation", "pool"):
            rgb = self._stage_rgb(stage)
            if rgb is None:
                continue
            p = folder / f"{stem}_{stage}.png"
            save_png(p, rgb)
            written.append(p)
        return written

    def save_pngs_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save outputs as PNGs into…", self.settings.last_dir("export"))
        if folder:
            self.settings.remember_dir("export", folder)
        if not folder:
            return
        try:
            paths = self.save_pngs(folder)
        except (CnnvizError, OSError) as err:
            self.show_error(err, "Could not save the PNGs")
            return
        self.show_message(f"Saved {len(paths)} PNGs to {folder}")

    def save_npz(self, path: str | Path) -> Path:
        """Every stage's float32 numbers, the kernels and the settings in one ``.npz``."""
        out = self._output
        if out is None:
            raise SpecError("nothing has been computed yet", "wait for the first result")
        res, req = out.result, out.job.request
        p = Path(path)
        if p.suffix.lower() != ".npz":
            p = p.with_suffix(".npz")
        arrays: dict[str, Any] = {"input": res.input, "conv": res.conv, "activation": res.activation}
        if res.pool is not None:
            arrays["pool"] = res.pool
        if res.magnitude is not None:
            arrays["magnitude"] = res.magnitude
        arrays["kernels"] = np.stack([k.effective() for k in req.kernels])
        meta = {"cnnviz": cnnviz.__version__, "image": self._image_label,
                "kernels": [k.to_dict() for k in req.kernels], "params": self.state.params.to_dict(),
                "conv_shape": res.conv_shape.text,
                "pool_shape": res.pool_shape.text if res.pool_shape is not None else None}
        arrays["meta"] = np.array(json.dumps(meta))
        tmp = p.with_name(f".{p.name}.tmp.npz")
        p.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(tmp, **arrays)
        tmp.replace(p)
        return p

    def save_npz_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save all outputs", str(Path(self.settings.last_dir("export")) / "cnnviz_outputs.npz"),
                                              "NumPy archive (*.npz)")
        if not path:
            return
        try:
            p = self.save_npz(path)
        except (CnnvizError, OSError) as err:
            self.show_error(err, "Could not save the outputs")
            return
        self.show_message(f"Saved every stage to {p}")

    def copy_to_clipboard(self, stage: str = "conv") -> bool:
        rgb = self._stage_rgb(stage)
        if rgb is None:
            self.show_message("Nothing to copy yet", error=True)
            return False
        QGuiApplication.clipboard().setImage(to_qimage(rgb))
        self.show_message(f"Copied the {stage} view ({rgb.shape[0]}×{rgb.shape[1]}, H×W) to the clipboard")
        return True

    # ===================================================================================
    # messages, help
    # ===================================================================================
    def show_message(self, text: str, error: bool = False, timeout: int = STATUS_MS) -> None:
        """A note (or, with ``error``, a problem) in the status bar."""
        self.last_message = text
        self.statusBar().showMessage(("⚠ " if error else "") + text, timeout if not error else 2 * timeout)

    def show_error(self, err: BaseException, context: str = "", transient: bool = False) -> None:
        """Tell the user what went wrong and what to do; the previous state stays.

        ``transient`` errors (a computation or parameter combination that failed) are
        cleared by the next result that computes.
        """
        if isinstance(err, CnnvizError):
            text = err.cause + (f" — fix: {err.fix}" if err.fix else "")
        elif isinstance(err, OSError):
            text = f"{err.strerror or err}" + (f" ({err.filename})" if err.filename else "")
        else:
            text = str(err)
        self.show_message(f"{context}: {text}" if context else text, error=True)
        self._transient_error = self.statusBar().currentMessage() if transient else ""

    def report_exception(self, summary: str, details: str) -> None:
        """An unexpected exception (a bug): status bar plus the non-modal fault dialog
        (:class:`~cnnviz.qt.fault_dialog.FaultDialog`: repeats are counted, never stacked)."""
        self.show_message(f"Internal error: {summary} (details in the dialog; please report it)", error=True)
        if not self._closing:
            self._faults.report(summary, details)

    def fault_dialog(self) -> QMessageBox | None:
        """The internal-error dialog while it is open (tests and the soak bench)."""
        return self._faults.dialog()

    def shortcuts_text(self) -> str:
        def keys(a: QAction) -> str:
            return ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in a.shortcuts()) or "—"

        rows = [("Open image", self.act_open), ("Paste image", self.act_paste), ("Save outputs as PNGs", self.act_save_pngs),
                ("Save all as .npz", self.act_save_npz), ("Copy output image", self.act_copy),
                ("Undo kernel edit", self.act_undo), ("Redo kernel edit", self.act_redo),
                ("Linked zoom on/off", self.act_link), ("Fit views", self.act_fit), ("Unpin explained pixel", self.act_unpin),
                ("Shortcuts (this)", self.act_shortcuts), ("Quit", self.act_quit)]
        lines = ["Window"] + [f"  {name:<28}{keys(a)}" for name, a in rows]
        lines += ["", "Output views",
                  "  Hover a pixel               explain it (input patch × kernel = products, Σ + bias)",
                  "  Click a pixel               pin the explanation (click again or Esc to unpin)",
                  "  Wheel / drag                zoom / pan (all views together with linked zoom)",
                  "  Drag a histogram's levels   fix the levels of that view", ""]
        return "\n".join(lines) + "\n" + GESTURES_HELP

    def show_shortcuts(self) -> QDialog:
        d = QDialog(self)
        d.setWindowTitle("cnnviz — shortcuts and gestures")
        d.setObjectName("shortcuts-dialog")
        lay = QVBoxLayout(d)
        t = QPlainTextEdit(self.shortcuts_text())
        t.setReadOnly(True)
        f = t.font()
        f.setFamily("DejaVu Sans Mono")
        f.setStyleHint(f.StyleHint.Monospace)
        t.setFont(f)
        lay.addWidget(t)
        bb = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        bb.rejected.connect(d.close)
        lay.addWidget(bb)
        d.resize(760, 620)
        d.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        d.show()
        return d

    def about_text(self) -> str:
        """The About box's text. Never imports torch: its version comes from the package
        metadata, and the GPU lines (from :func:`compute_summary` on a worker thread) are
        filled in when they arrive."""
        import cv2
        import PySide6
        import pyqtgraph as pg
        from PySide6.QtCore import qVersion

        from cnnviz.core.devices import torch_version_without_import

        lines = [f"cnnviz {cnnviz.__version__} — see convolutional neural networks work.", "",
                 f"Python {sys.version.split()[0]}", f"Qt {qVersion()} (PySide6 {PySide6.__version__})",
                 f"pyqtgraph {pg.__version__}", f"NumPy {np.__version__}", f"OpenCV {cv2.__version__}"]
        if self._about_devices:
            lines += self._about_devices
        else:
            tv = torch_version_without_import()
            lines.append(f"PyTorch {tv}" if tv else "PyTorch: not installed (the model inspector needs it)")
            if tv:
                lines.append("GPU: checking…")
        lines += ["", "Sample images: see resources/samples/CREDITS.md. MIT licence."]
        return "\n".join(lines)

    def show_about(self) -> QMessageBox:
        box = QMessageBox(QMessageBox.Icon.Information, "About cnnviz", self.about_text(),
                          QMessageBox.StandardButton.Ok, self)
        box.setObjectName("about-box")
        box.setStyleSheet("QLabel#qt_msgbox_label { min-width: 32em; }")  # a line per version, unwrapped
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)  # copy into a bug report
        box.setModal(False)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._about_box = box
        box.destroyed.connect(self._forget_about_box)
        box.show()
        if self._about_devices is None and not self._about_probe_running:
            self._about_probe_running = True
            run_in_thread(_probe_devices, self._on_about_devices, name="cnnviz-about-probe", context=self)
        return box

    def _forget_about_box(self, *_args) -> None:
        self._about_box = None

    def _on_about_devices(self, lines: list) -> None:
        self._about_probe_running = False
        self._about_devices = list(lines)
        box = self._about_box
        if box is not None:
            box.setText(self.about_text())
