"""The one internal-error dialog of the windows (the playground and the model inspector).

An unexpected exception (a bug) reaches the user as a status-bar line plus a non-modal
dialog whose details expander holds the traceback; the window keeps working. A fault that
repeats (a failing paint handler fires on every repaint) never stacks dialogs: while one is
open, later faults are added to its details and counted.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from . import app as qtapp

_MAX_DETAILS = 200_000


class FaultDialog:
    """Shows faults for one window: ``report(summary, details)``; ``dialog()`` while open."""

    def __init__(self, parent: QWidget):
        self._parent = parent
        self._box: QMessageBox | None = None
        self._repeats = 0
        self.count = 0      # faults reported, shown or not

    def _text(self, summary: str) -> str:
        logfile = qtapp.log_path()
        where = f"\n\nThe details are also in the log file:\n{logfile}" if logfile else ""
        what = "Something went wrong inside cnnviz" + (f" ({self._repeats + 1} errors)" if self._repeats else "")
        return f"{what}:\n\n{summary}\n\nThe window keeps working; the previous result is still shown.{where}"

    def report(self, summary: str, details: str) -> None:
        self.count += 1
        box = self.dialog()
        if box is not None:
            self._repeats += 1
            box.setText(self._text(summary))
            box.setDetailedText((box.detailedText() + "\n" + "-" * 60 + "\n" + details)[-_MAX_DETAILS:])
            return
        self._repeats = 0
        box = QMessageBox(QMessageBox.Icon.Critical, "cnnviz — internal error", self._text(summary),
                          QMessageBox.StandardButton.Ok, self._parent)
        box.setObjectName("fault-dialog")
        box.setDetailedText(details[-_MAX_DETAILS:])
        box.setModal(False)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.destroyed.connect(self._forget)
        self._box = box
        box.show()

    def _forget(self, *_args) -> None:
        self._box = None

    def dialog(self) -> QMessageBox | None:
        """The dialog while it is open."""
        box = self._box
        try:
            return box if box is not None and box.isVisible() else None
        except RuntimeError:  # deleted on the C++ side
            return None

    def close(self) -> None:
        box = self.dialog()
        if box is not None:
            box.close()
