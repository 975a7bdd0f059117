"""The inspector's exports: the selected layer's grid as PNG (the pixels on screen), and every
layer as ``.npz`` or per-layer statistics as CSV, which the inference worker writes from its
capture (the export rides in the state's next request until a result says it is done)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cnnviz.core.errors import CnnvizError
from cnnviz.core.inspect_results import ExportJob, InspectResult

if TYPE_CHECKING:
    from .window import InspectorWindow

__all__ = ["ExportActions"]


class ExportActions:
    """Exports of one inspector window (its state holds the export in flight)."""

    def __init__(self, window: InspectorWindow):
        self._w = window
        self._seq = 0

    def grid_png(self, path: str | Path) -> Path | None:
        from cnnviz.core.images import save_png

        w = self._w
        arr = w.grid.mosaic()
        if arr is None:
            w.show_message("Nothing to export yet", error=True)
            return None
        try:
            save_png(path, arr)
        except (CnnvizError, OSError) as exc:
            w.show_error(exc, "Could not save the PNG")
            return None
        w.show_message(f"Saved {w.state.layer} ({w.grid.tile_count()} tiles) to {path}")
        return Path(path)

    def start(self, npz: str | None = None, csv: str | None = None) -> int:
        """Put an export of the .npz and/or CSV into the state (the window then requests); returns
        the job id (0: nothing to export)."""
        w, st = self._w, self._w.state
        if st.model is None or st.pixels is None:
            w.show_message("Nothing to export yet", error=True)
            return 0
        self._seq += 1
        prev = st.export
        st.export = ExportJob(self._seq, npz_path=npz or (prev.npz_path if prev else None),
                              csv_path=csv or (prev.csv_path if prev else None))
        w.status.set_task("Exporting…")
        return st.export.job_id

    def on_result(self, res: InspectResult) -> None:
        w = self._w
        job = res.export_done
        if job is None or job != w.state.export:
            return
        w.state.export = None
        w.status.set_task(None)
        paths = [p for p in (job.npz_path, job.csv_path) if p]
        if res.export_error:
            msg = f"Export failed: {res.export_error}"
            w.show_message(msg, error=True)
        else:
            msg = "Exported " + " and ".join(paths)
            w.show_message(msg)
        w.exportFinished.emit(msg)

    def on_error(self) -> None:
        """The model could not run: the export's result will not come; say so, stop the bar."""
        w = self._w
        if w.state.export is not None:
            w.state.export = None
            w.status.set_task(None)
            w.show_message("The export was not written: the model could not run on this input", error=True)

    def on_progress(self, job_id: int, done: int, total: int, what: str) -> None:
        w = self._w
        job = w.state.export
        if job is None or job.job_id != job_id or w.is_closing():
            return
        w.status.show_task_progress(done, total, what)

    def forget(self) -> None:
        self._w.status.set_task(None)

    # -- dialogs ------------------------------------------------------------------------
    def _save_dialog(self, caption: str, suggested: str, filters: str) -> str | None:
        from PySide6.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(self._w, caption, str(Path.home() / suggested), filters)
        return path or None

    def grid_dialog(self) -> None:
        name = (self._w.state.layer or "layer").replace("/", "_")
        path = self._save_dialog("Save the layer grid", f"{name}.png", "PNG (*.png)")
        if path:
            self.grid_png(path)

    def npz_dialog(self) -> None:
        path = self._save_dialog("Save all layers", "activations.npz", "NumPy (*.npz)")
        if path:
            self._w.export_npz(path)

    def csv_dialog(self) -> None:
        path = self._save_dialog("Save layer statistics", "layer_stats.csv", "CSV (*.csv)")
        if path:
            self._w.export_csv(path)
