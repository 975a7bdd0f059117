"""Hover and click on an output pixel: the explanation panel, the window overlays
and the status line (the window's explain side).

A mixin of :class:`~cnnviz.qt.playground.window.MainWindow`: it uses the window's
widgets and state through ``self``."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QRectF

from cnnviz.core.conv import PipelineRequest
from cnnviz.core.dotproduct import explain_conv_pixel, explain_pool_pixel, pool_window_to_input
from cnnviz.core.errors import CnnvizError

from .views import RGB


class Explaining:
    """The window's explain side: hover and click on an output pixel."""

    # ===================================================================================
    # explanations
    # ===================================================================================
    def _on_pointer(self, stage: str, kernel: int, y: int, x: int, clicked: bool) -> None:
        ref = (stage, kernel, y, x)
        if clicked:
            self._pinned = None if self._pinned == ref else ref
            if self._pinned is None:
                self.show_message("Unpinned: the explanation follows the pointer again")
            else:
                self._center_animation(stage, kernel, y, x)
        else:
            self._hovered = ref
        target = self._pinned or self._hovered
        if target is not None:
            self._explain(*target)

    def _on_pointer_left(self) -> None:
        self._hovered = None
        if self._pinned is None:
            self.outputs.clear_overlays()

    def _on_input_hovered(self, y: int, x: int) -> None:
        img = self.outputs.displayed_array("input")
        if img is None:
            return
        v = img[y, x]
        text = f"{float(v):.4f}" if np.ndim(v) == 0 else "(" + ", ".join(f"{float(c):.3f}" for c in v) + ")"
        self.statusBar().showMessage(f"input ({y}, {x}) = {text}", 4000)

    def unpin(self) -> None:
        self._pinned = None
        if self._hovered is None:
            self.outputs.clear_overlays()

    def _center_animation(self, stage: str, kernel: int, y: int, x: int) -> None:
        """A clicked conv pixel: the animation's crop moves to its window."""
        out = self._output
        if out is None or stage not in ("conv", "activation", "magnitude"):
            return
        req = out.job.request
        from cnnviz.core.dotproduct import conv_window_in_input  # noqa: PLC0415

        y0, x0, y1, x1 = conv_window_in_input(req.conv, req.kernels[0].size, y, x)
        try:
            self.animate_panel.set_center((y0 + y1) // 2, (x0 + x1) // 2)
        except CnnvizError as err:
            self.show_error(err, "Animate")

    def zoom_to_explained(self) -> None:
        """Zoom onto the receptive window of the explained (pinned or hovered) pixel."""
        rect = self.outputs.view("input").window_rect()
        if rect is None:
            self.show_message("Hover or click an output pixel first; then Ctrl+E zooms onto its window")
            return
        half = max(rect.width(), rect.height()) * 1.5 + 4
        self.outputs.zoom_to(rect.center().y(), rect.center().x(), half)

    def _on_display_changed(self) -> None:
        # picking a kernel under "Show" selects it in the bank too (so the editor edits
        # what the views show)
        shown = self.outputs.selection()
        if 0 <= shown < len(self.state.kernels) and shown != self.state.selected:
            self.kernel_bank.setSelected(shown)
        self._refresh_explanation()

    def _refresh_explanation(self) -> None:
        target = self._pinned or self._hovered
        if target is None:
            # the data changed and no pixel is pinned or hovered: numbers from the old
            # image or settings would be wrong, so the panel goes back to its hint
            self.last_explanation = None
            self.explain_panel.clear()
            return
        if not self._explain(*target):
            if target == self._pinned:
                self._pinned = None
            self._hovered = None
            self.outputs.clear_overlays()
            self.explain_panel.clear()

    def explain_pixel(self, stage: str, y: int, x: int, kernel: int = 0, pin: bool = True) -> Any:
        """Explain output pixel (y, x) of ``stage`` for ``kernel`` as a click would; returns
        the explanation (ConvPixelExplanation or PoolPixelExplanation) or None."""
        if pin:
            self._pinned = (stage, kernel, y, x)
        else:
            self._hovered = (stage, kernel, y, x)
        return self.last_explanation if self._explain(stage, kernel, y, x) else None

    def _explain_channel(self, req: PipelineRequest) -> int | None:
        if req.conv.channels != "each":
            return None
        ch = self.outputs.channel()
        return 0 if ch == RGB else ch

    def _explain(self, stage: str, kernel: int, y: int, x: int) -> bool:
        out = self._output
        if out is None:
            return False
        res, req = out.result, out.job.request
        if not 0 <= kernel < len(req.kernels):
            return False
        k = req.kernels[kernel]
        spec = req.conv
        views = self.outputs
        views.clear_overlays()
        iv = views.view("input")
        ch = self._explain_channel(req)
        if stage in ("conv", "activation", "magnitude"):
            oh, ow = res.conv_shape.out_hw
            if not (0 <= y < oh and 0 <= x < ow):
                return False
            e = explain_conv_pixel(res.input, k, spec, y, x, channel=ch)
            self.last_explanation = e
            self.explain_panel.show_conv(e)
            y0, x0, y1, x1 = e.window
            iv.show_window(QRectF(x0, y0, x1 - x0, y1 - y0),
                           [(float(c) + 0.5, float(r) + 0.5) for r in e.rows for c in e.cols])
            for s in ("conv", "activation"):
                r = views.output_pixel_rect(s, kernel, y, x)
                if r is not None:
                    views.view(s).show_marker(r)
            chs = f"[{'RGB'[ch]}]" if ch is not None else ""
            msg = f"conv{chs} k{kernel + 1} ({y}, {x}) = Σ {e.total:.5g} + bias {e.bias:.5g} = {e.value:.5g}"
            if stage == "activation":
                a = res.activation[kernel] if res.activation.ndim == 3 else res.activation[kernel, ch or 0]
                msg += f" → {req.activation.kind} → {float(a[y, x]):.5g}"
            if stage == "magnitude" and res.magnitude is not None and req.magnitude_pair is not None:
                a, b = req.magnitude_pair
                gx = res.conv[a][y, x] if res.conv.ndim == 3 else res.conv[a, 0][y, x]
                gy = res.conv[b][y, x] if res.conv.ndim == 3 else res.conv[b, 0][y, x]
                msg = (f"|∇| ({y}, {x}) = √({float(gx):.4g}² + {float(gy):.4g}²) = {float(res.magnitude[y, x]):.5g}"
                       f"   (explained: kernel {a + 1})")
            pin = "  [pinned — click again or Esc to unpin]" if self._pinned else ""
            self.statusBar().showMessage(msg + pin)
            return True
        if stage == "pool":
            if res.pool is None or req.pool is None or res.pool_shape is None:
                return False
            ph, pw = res.pool_shape.out_hw
            if not (0 <= y < ph and 0 <= x < pw):
                return False
            act = res.activation[kernel] if res.activation.ndim == 3 else res.activation[kernel, ch or 0]
            e = explain_pool_pixel(act, req.pool, y, x)
            self.last_explanation = e
            self.explain_panel.show_pool(e)
            wy0, wx0, wy1, wx1 = pool_window_to_input(spec, k.size, req.pool, res.conv_shape.out_hw, y, x)
            iv.show_window(QRectF(wx0, wy0, wx1 - wx0, wy1 - wy0))
            ay0, ax0, ay1, ax1 = e.window
            r = views.data_rect_in_stage("activation", kernel, ay0, ax0, ay1, ax1)
            if r is not None:
                views.view("activation").show_window(r)
            if e.winner is not None:
                wr = views.output_pixel_rect("activation", kernel, *e.winner)
                if wr is not None:
                    views.view("activation").show_marker(wr)
            pr = views.output_pixel_rect("pool", kernel, y, x)
            if pr is not None:
                views.view("pool").show_marker(pr)
            how = (f"max at {e.winner}" if e.kind == "max" else f"mean: Σ ÷ {e.divisor:g}")
            pin = "  [pinned — click again or Esc to unpin]" if self._pinned else ""
            self.statusBar().showMessage(f"pool k{kernel + 1} ({y}, {x}) = {e.value:.5g} ({how}){pin}")
            return True
        return False
