"""Compare: two parameter sets side by side on the same picture and kernel (stride 1 vs 2,
max vs average pooling, padding or not), each with its output and its shape formula.

View ▸ Compare parameters… opens it; each side has its own parameters panel, starting from
the window's. The maps are computed by the core's :func:`~cnnviz.core.conv.run_pipeline`
for the window's picture and selected kernel (pictures are the playground's, at most
2048 px, so one computation per change is quick; changes are coalesced by a timer).
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDialog, QGridLayout, QLabel

from cnnviz.core.conv import PipelineRequest, run_pipeline
from cnnviz.core.display import auto_levels, stage_image
from cnnviz.core.errors import CnnvizError

from .map_view import MapView
from .params_panel import ParamsPanel


class CompareDialog(QDialog):
    """Two parameter sets, A and B, and the output each gives."""

    def __init__(self, window) -> None:  # noqa: ANN001 - the playground MainWindow
        super().__init__(window)
        self._window = window
        self.setObjectName("compare")
        self.setWindowTitle("Compare parameters")
        self.resize(1200, 700)
        lay = QGridLayout(self)
        self.panels: list[ParamsPanel] = []
        self.views: list[MapView] = []
        self.formulas: list[QLabel] = []
        self._timer = QTimer(self)
        self._timer.setObjectName("compare-timer")
        self._timer.setSingleShot(True)
        self._timer.setInterval(30)
        self._timer.timeout.connect(self.recompute)
        for i, name in enumerate(("A", "B")):
            head = QLabel(f"<b>{name}</b>")
            panel = ParamsPanel()
            panel.setObjectName(f"compare-params-{name}")
            panel.set_params(window.params())
            panel.paramsChanged.connect(lambda _p: self._timer.start())
            view = MapView("pool", histogram=False)
            view.setObjectName(f"compare-view-{name}")
            formula = QLabel("")
            formula.setObjectName(f"compare-formula-{name}")
            formula.setWordWrap(True)
            formula.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            lay.addWidget(head, 0, 2 * i)
            lay.addWidget(panel, 1, 2 * i)
            lay.addWidget(view, 1, 2 * i + 1)
            lay.addWidget(formula, 2, 2 * i, 1, 2)
            lay.setColumnStretch(2 * i + 1, 1)
            self.panels.append(panel)
            self.views.append(view)
            self.formulas.append(formula)
        window.resultShown.connect(lambda _rid: self._timer.start() if self.isVisible() else None)

    def set_params(self, a, b) -> None:  # noqa: ANN001 - PlaygroundParams
        for panel, p in zip(self.panels, (a, b)):
            panel.set_params(p)
        self.recompute()

    def recompute(self) -> list | None:
        """Compute both sides now; returns their PipelineResults (None where a side fails)."""
        w = self._window
        image = w.current_image()
        if image is None:
            return None
        kernel = w.state.selected_kernel
        out = []
        for panel, view, formula in zip(self.panels, self.views, self.formulas):
            try:
                conv, act, pool = panel.params().to_specs()
                res = run_pipeline(image, PipelineRequest((kernel,), conv, act, pool))
            except CnnvizError as err:
                view.clear(str(err))
                formula.setText(f"{err.cause}" + (f" — {err.fix}" if err.fix else ""))
                out.append(None)
                continue
            last = res.pool if res.pool is not None else res.activation
            arr = last[0] if last.ndim == 3 else last[0, 0]
            view.set_image(stage_image(arr, auto_levels(arr), "diverging" if float(arr.min()) < 0 else "gray"))
            stage = "pooled" if res.pool is not None else "convolution"
            view.set_texts(f"{stage}: {arr.shape[0]}×{arr.shape[1]} (H×W)", "")
            text = f"conv {res.conv_shape.out_hw[0]}×{res.conv_shape.out_hw[1]}:\n{res.conv_shape.text}"
            if res.pool_shape is not None:
                text += f"\npool {res.pool_shape.out_hw[0]}×{res.pool_shape.out_hw[1]}:\n{res.pool_shape.text}"
            formula.setText(text)
            out.append(res)
        return out

    def showEvent(self, e) -> None:  # noqa: N802 - Qt's name
        super().showEvent(e)
        self.recompute()

    def eventFilter(self, obj, e) -> bool:  # noqa: ANN001, N802 - Qt's name
        if obj is self._window and e.type() == QEvent.Type.Close:
            self._timer.stop()  # no timer outlives the window
            self.close()
        return False

    def closeEvent(self, e) -> None:  # noqa: N802
        self._timer.stop()
        super().closeEvent(e)


def install_compare(window) -> None:  # noqa: ANN001
    """View ▸ Compare parameters… (window.compare_dialog once opened)."""
    act = QAction("Compare parameters…", window)
    act.setObjectName("compare-open")
    act.setToolTip("Two parameter sets side by side on the same picture and kernel, each with its shape formula")

    def open_dialog() -> CompareDialog:
        dlg = getattr(window, "compare_dialog", None)
        if dlg is None:
            dlg = window.compare_dialog = CompareDialog(window)
            window.installEventFilter(dlg)
        dlg.show()
        dlg.raise_()
        return dlg

    act.triggered.connect(open_dialog)
    window.open_compare = open_dialog
    for a in window.menuBar().actions():
        if a.text().replace("&", "") == "View" and a.menu() is not None:
            a.menu().addAction(act)
    window.addAction(act)

