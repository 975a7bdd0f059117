"""The inspector's central tabs — activations, overview, weights, Grad-CAM, receptive field —
and how a result is painted into them. They read the window's state; they never change it."""

from __future__ import annotations

from PySide6.QtWidgets import QTabWidget, QWidget

from cnnviz.core.inspect_engine import InspectorState
from cnnviz.core.inspect_results import VIEWS, InspectResult

from .activation_grid import ActivationPanel
from .cam_view import CamView
from .overview import OverviewView
from .rf_view import RFView
from .weights_view import WeightsView

__all__ = ["TAB_KEYS", "TAB_TITLES", "ResultTabs"]

#: Tabs of the central area, in order, by the view key requests use.
TAB_KEYS = VIEWS
TAB_TITLES = ("Activations", "Overview", "Weights", "Grad-CAM", "Receptive field")


class ResultTabs(QTabWidget):
    """One tab per view; :meth:`show_result` paints what a result holds."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("inspector-tabs")
        self.activations = ActivationPanel()
        self.overview = OverviewView()
        self.weights_view = WeightsView()
        self.cam_view = CamView()
        self.rf_view = RFView()
        for w, title in zip((self.activations, self.overview, self.weights_view, self.cam_view, self.rf_view),
                            TAB_TITLES):
            self.addTab(w, title)

    def key(self, index: int | None = None) -> str:
        return TAB_KEYS[self.currentIndex() if index is None else index]

    def show_key(self, key: str) -> None:
        self.setCurrentIndex(TAB_KEYS.index(key))

    def show_result(self, res: InspectResult, prev: InspectResult | None, state: InspectorState,
                    new_layer: bool) -> None:
        """Paint ``res``; ``new_layer``: the layer changed since ``prev`` (the grid and the
        overview then scroll to it)."""
        info = res.layer_info()
        if info is not None:
            shape = info.shape_text + (f" · {info.map_text}" if info.map_text else "")
            self.activations.set_layer(info.name, info.type, shape, res.activation, res.channel_stats,
                                       state.channel, new_layer)
        if res.overview is not None:
            fresh = prev is None or prev.overview is None or new_layer
            self.overview.set_rows(res.overview)
            if fresh:
                self.overview.set_selected(res.layer)
            else:
                self.overview.rows_widget.selected = res.layer
        views = state.views()
        if "weights" in views:
            current = res.weights.layer if res.weights is not None else None
            self.weights_view.set_conv_layers(res.conv_layers, current)
            self.weights_view.set_weights(res.weights)
            self.weights_view.set_activation_hist(res.layer, res.act_hist)
        if res.cam is not None or "cam" in res.errors:
            spatial = [li.name for li in res.layers if li.spatial]
            self.cam_view.set_choices(res.labels, res.n_classes, spatial, res.cam_default_layer,
                                      state.cam_class, state.cam_layer)
            self.cam_view.set_cam(res.cam, res.input_image, res.errors.get("cam"))
        self.refresh_rf_map(res, state)
        if "rf" in views:
            self.rf_view.set_rf(res.rf, res.input_image, res.errors.get("rf"))

    def refresh_rf_map(self, res: InspectResult | None, state: InspectorState) -> None:
        """The receptive-field tab's map: the selected channel of the selected layer."""
        if res is None:
            return
        info = res.layer_info()
        tiles = self.activations.grid.tiles()
        ch = state.channel
        tile = tiles[ch] if tiles is not None and ch < len(tiles) else None
        self.rf_view.set_map(res.layer, ch, tile, bool(info is not None and info.spatial), state.rf_unit)

    def clear(self, note: str) -> None:
        """Every view empty, with ``note`` where the results were."""
        self.activations.show_nothing(note)
        self.overview.set_rows(None)
        self.weights_view.set_weights(None)
        self.cam_view.set_cam(None, None, note)
        self.rf_view.set_rf(None, None, note)
