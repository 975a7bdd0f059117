"""The playground window's settings (restore at start, collect and save at close, the
layout's fit to the screen) and its theme: a mixin of
:class:`~cnnviz.qt.playground.window.MainWindow`."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray

from cnnviz.core.errors import CnnvizError
from cnnviz.core.kernels import Kernel, preset

from .. import app as qtapp
from ...core.settings import PlaygroundParams, Settings, save_settings

DEFAULT_PRESET = "sobel-x"


class SettingsAndTheme:
    # ===================================================================================
    # settings
    # ===================================================================================
    def _restore_from_settings(self) -> None:
        s = self.settings
        kernels: list[Kernel] = []
        try:
            kernels = s.kernel_bank()
        except CnnvizError as err:
            self.show_error(err, "Saved kernels")
        if not kernels:
            kernels = [preset(DEFAULT_PRESET).kernel]
        sel = min(max(s.selected_kernel, 0), len(kernels) - 1)
        pair = s.magnitude_pair
        if pair is not None and not (0 <= pair[0] < len(kernels) and 0 <= pair[1] < len(kernels) and pair[0] != pair[1]):
            pair = None
        self.state.set_params(s.params)
        self.params_panel.set_params(s.params)
        shown = self.params_panel.raw_params()
        if self.params_panel.error() is None and shown != s.params:
            # The controls clamp what a hand-edited file asks (padding 10⁹ becomes the spin
            # box's maximum): compute exactly what the panel shows, and say so.
            self.params_panel.set_params(shown)
            self.state.set_params(shown)
            clamped = [f for f, v in shown.to_dict().items()
                       if not isinstance(v, float) and v != s.params.to_dict()[f]]
            if clamped:
                self.show_message(f"Saved parameters out of range ({', '.join(clamped)}) were set to the nearest "
                                  "allowed values", error=True)
        if self.params_panel.error() is not None:
            err = self.params_panel.error()
            self.state.set_params(PlaygroundParams())
            self.params_panel.set_params(self.state.params)
            self.show_message(f"Saved parameters could not be used ({err.cause}); started with the default "
                              "parameters", error=True)
        self.kernel_editor.showState()
        self.outputs.set_colormap_choice(s.colormap)
        self.outputs.set_levels_mode(s.levels_mode)
        self.outputs.set_linked(s.linked_zoom)
        self.kernel_bank.setBank(kernels, sel, pair)   # → _on_bank_edited: editor, views
        self.show_bank_in_outputs()  # also when the restored bank is the one the state already held
        if s.window_geometry:
            self.restoreGeometry(QByteArray(Settings.decode_bytes(s.window_geometry)))
            self.fit_to_screen()  # saved on a bigger monitor than this one (a projector)
        if s.window_state:
            self.restoreState(QByteArray(Settings.decode_bytes(s.window_state)))

    def fit_to_screen(self) -> None:
        """Shrink the window to the screen's free area: at 1280×720 (a projector) the default
        1560×980 would push the Parameters dock and Explain off the screen. The offscreen
        platform has no real screen (a nominal 800×600), so windows there keep their size."""
        from .screen_fit import fit_window  # noqa: PLC0415

        fit_window(self)  # the rule: screen_fit.fit_rect (unit-tested)

    def collect_settings(self) -> Settings:
        """The settings object as the window stands now."""
        s = self.settings
        st = self.state
        s.set_kernel_bank(st.kernels, st.selected, st.magnitude_pair)
        s.params = st.params
        s.window_geometry = Settings.encode_bytes(bytes(self.saveGeometry().data()))
        s.window_state = Settings.encode_bytes(bytes(self.saveState().data()))
        s.linked_zoom = self.outputs.is_linked()
        s.colormap = self.outputs.colormap_choice()
        s.levels_mode = self.outputs.levels_mode()
        if self._image_source.startswith("sample:"):
            s.last_image = self._image_source
        elif self._image_source == "file" and self._image_path:
            s.last_image = self._image_path
        return s

    def save_settings(self) -> Path | None:
        try:
            return save_settings(self.collect_settings(), self._settings_file)
        except OSError as exc:
            self.show_message(f"Could not save settings to {self._settings_file}: {exc.strerror or exc}; "
                              "check that the folder is writable", error=True)
            return None

    def reset_layout(self) -> None:
        self.restoreState(self._default_state)
        for d in self.docks:
            d.setFloating(False)
            d.show()
        self.dock_explain.raise_()

    # ===================================================================================
    # theme
    # ===================================================================================
    def apply_theme(self, theme: str, save: bool = True) -> str:
        """Apply 'system', 'light' or 'dark'; ``save`` remembers it in the settings.
        Returns the resolved 'light' or 'dark'."""
        theme = theme if theme in qtapp.THEMES else "system"
        resolved = qtapp.apply_theme(theme)
        self._theme = theme
        if save:
            self.settings.theme = theme
        self.theme_actions[theme].setChecked(True)
        self.outputs.set_dark(resolved == "dark")
        return resolved

    def _on_system_scheme(self, *_):
        if getattr(self, "_theme", "system") == "system":
            self.apply_theme("system", save=False)
