"""Ask before loading a model file that can run code, and say why.

TorchScript archives, ``torch.export`` programs, whole pickled modules and Python model files
are programs: loading one runs code its author chose. The window shows this dialog when the
core refuses such a file (:class:`~cnnviz.core.errors.TrustRequired`); accepting loads exactly
the bytes that were hashed, and "remember" stores the SHA-256 in the trust store (the same
bytes are trusted next time, a changed file is asked about again).
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

__all__ = ["FORMAT_NAMES", "TrustDialog"]

FORMAT_NAMES = {
    "torchscript": "TorchScript archive (torch.jit.save)",
    "export": "torch.export program (.pt2)",
    "pickle": "pickled Python object (torch.save(model) or pickle)",
    "python": "Python source file",
}


class TrustDialog(QDialog):
    """Modal question: load this code-bearing file?

    ``exec()`` returns ``QDialog.DialogCode.Accepted`` when the user trusts the file; then
    :attr:`remember` says whether to store its hash. Cancel is the default button.
    """

    def __init__(self, err: BaseException, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("trust-dialog")
        self.setWindowTitle("Trust this model file?")
        self.setModal(True)
        path = Path(getattr(err, "path", "") or "")
        fmt = getattr(err, "format", None)
        sha = getattr(err, "sha256", None)
        lay = QVBoxLayout(self)
        head = QLabel(f"<h3>{html.escape(path.name or 'This file')} can run code on your computer</h3>")
        head.setWordWrap(True)
        lay.addWidget(head)
        why = QLabel(
            f"<p><b>Why you are asked:</b> {html.escape(getattr(err, 'cause', str(err)))}.</p>"
            "<p>Loading it runs code chosen by whoever made the file, with your permissions: it could read "
            "or delete your files. Nothing from it has run yet.</p>"
            "<p>Load it only if you trust where it came from — you saved it yourself, or it comes from "
            "someone you trust. A weights-only file (a <tt>state_dict</tt> <tt>.pth</tt> or "
            "<tt>.safetensors</tt>) never needs this.</p>")
        why.setObjectName("trust-why")
        why.setWordWrap(True)
        why.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(why)
        details = QLabel(
            f"<table><tr><td>File:&nbsp;</td><td>{html.escape(str(path))}</td></tr>"
            f"<tr><td>Kind:&nbsp;</td><td>{html.escape(FORMAT_NAMES.get(fmt, str(fmt)))}</td></tr>"
            f"<tr><td>SHA-256:&nbsp;</td><td><tt>{html.escape(sha or 'unknown')}</tt></td></tr></table>")
        details.setObjectName("trust-details")
        details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        details.setWordWrap(True)
        lay.addWidget(details)
        self.remember_box = QCheckBox("Remember that I trust this exact file (by its SHA-256; if the file "
                                      "changes I am asked again)")
        self.remember_box.setObjectName("trust-remember")
        self.remember_box.setChecked(sha is not None)
        self.remember_box.setEnabled(sha is not None)
        lay.addWidget(self.remember_box)
        buttons = QDialogButtonBox()
        self.trust_button = buttons.addButton("Trust and load", QDialogButtonBox.ButtonRole.AcceptRole)
        self.trust_button.setObjectName("trust-accept")
        self.cancel_button = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        # Enter must never mean "run this code": Cancel is the default and has the focus
        self.trust_button.setAutoDefault(False)
        self.trust_button.setDefault(False)
        self.cancel_button.setAutoDefault(True)
        self.cancel_button.setDefault(True)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.resize(620, 380)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.cancel_button.setDefault(True)
        self.cancel_button.setFocus()

    @property
    def remember(self) -> bool:
        return self.remember_box.isChecked() and self.remember_box.isEnabled()
