"""Animate a convolution: the kernel window slides over a zoomed crop of the user's image
and the output map fills in behind it, one pixel per step.

The whole output of the crop is computed ONCE through the core
(:func:`cnnviz.core.conv.convolve`, same spec as the main view: stride, padding, dilation,
bias); the animation only reveals it progressively, so painting never computes. The crop
is treated as a small image of its own: its border is padded exactly as the spec says,
and the padding cells are drawn hatched around it.

One :class:`QTimer` drives playback; it is stopped in :meth:`AnimatePanel.stop`, on hide
and on close.

Run this file to preview the widget on its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QPoint, QRect, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QLabel, QSizePolicy, QSlider, QStyle, QToolButton,
                               QVBoxLayout, QWidget)

from cnnviz.core.conv import ConvSpec, convolve, pad_input
from cnnviz.core.errors import CnnvizError, SpecError
from cnnviz.core.display import colorize
from cnnviz.core.kernels import Kernel

from ..colors import format_sig
from ..qimages import to_qimage

from .animate_canvas import (  # noqa: E402,F401 - moved to animate_canvas.py, importable from here
    _colorize,
    _Canvas,
)

CROP = 24
SPEEDS = (1, 2, 4, 8, 12, 20, 30, 60, 120, 240)  # output pixels per second


class AnimatePanel(QWidget):
    """Play, pause, step and reset the sliding kernel window over a crop of the image.

    ``position()`` is the number of output pixels revealed (raster order); the window sits
    over the input of the last revealed pixel.
    """

    positionChanged = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._x: np.ndarray | None = None
        self._kernel: Kernel | None = None
        self._spec = ConvSpec()
        self._center: tuple[int, int] | None = None
        self._crop: np.ndarray | None = None
        self._origin = (0, 0)
        self._padded: np.ndarray | None = None
        self._pads = (0, 0, 0, 0)
        self._out: np.ndarray | None = None
        self._out_img = QImage()
        self._padded_img = QImage()
        self._pos = 0
        self._channel = 0
        self._error = ""
        self._timer = QTimer(self)
        self._timer.setObjectName("animate-timer")
        self._timer.timeout.connect(self._tick)
        self._per_tick = 1
        self._build()
        self._set_speed_index(SPEEDS.index(12))

    # -- construction ------------------------------------------------------------------------
    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(6, 6, 6, 6)
        root.setSpacing(4)
        self._canvas = _Canvas(self)
        self._canvas.outputClicked.connect(self._jump_to)
        root.addWidget(self._canvas, 1)
        self._sum = QLabel(self)
        self._sum.setObjectName("sum")
        self._sum.setWordWrap(True)
        self._sum.setTextInteractionFlags(Qt.TextSelectableByMouse)
        f = self._sum.font()
        f.setBold(True)
        self._sum.setFont(f)
        root.addWidget(self._sum)

        bar = QHBoxLayout()
        bar.setSpacing(3)
        st = self.style()
        self._icons = {k: st.standardIcon(v) for k, v in (
            ("reset", QStyle.SP_MediaSkipBackward), ("play", QStyle.SP_MediaPlay),
            ("pause", QStyle.SP_MediaPause), ("step", QStyle.SP_MediaSeekForward))}
        self._reset_b = self._tool("Reset", "reset", "Reset: clear the output and start again", self.reset)
        self._play_b = self._tool("Play", "play", "Play / pause (the window slides on by itself)", self.toggle)
        self._step_b = self._tool("Step", "step", "Step: compute one more output pixel", self.step)
        for b in (self._reset_b, self._play_b, self._step_b):
            bar.addWidget(b)
        bar.addSpacing(8)
        bar.addWidget(QLabel("Speed"))
        self._speed = QSlider(Qt.Horizontal, self)
        self._speed.setObjectName("speed")
        self._speed.setRange(0, len(SPEEDS) - 1)
        self._speed.setPageStep(1)
        self._speed.setToolTip("Output pixels per second")
        self._speed.valueChanged.connect(self._set_speed_index)
        bar.addWidget(self._speed, 1)
        self._speed_label = QLabel(self)
        self._speed_label.setMinimumWidth(58)
        bar.addWidget(self._speed_label)
        self._channel_box = QComboBox(self)
        self._channel_box.addItems(["R channel", "G channel", "B channel"])
        self._channel_box.setToolTip("'each' mode convolves every channel on its own: pick the one to animate")
        self._channel_box.currentIndexChanged.connect(self._on_channel)
        self._channel_box.hide()
        bar.addWidget(self._channel_box)
        self._export_b = QToolButton(self)
        self._export_b.setText("Export…")
        self._export_b.setObjectName("export-animation")
        self._export_b.setToolTip("Save the sliding window as an animated GIF or an MP4 video, one frame per "
                                  "output pixel, for slides")
        self._export_b.clicked.connect(self.export_dialog)
        bar.addWidget(self._export_b)
        self._pos_label = QLabel(self)
        self._pos_label.setObjectName("position")
        self._pos_label.setMinimumWidth(80)
        self._pos_label.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        bar.addWidget(self._pos_label)
        root.addLayout(bar)
        self._update_labels()

    def _tool(self, text: str, name: str, tip: str, slot) -> QToolButton:  # noqa: ANN001
        b = QToolButton(self)
        b.setText(text)
        b.setIcon(self._icons[name])
        b.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        b.setObjectName(name)
        b.setToolTip(tip)
        b.setMinimumWidth(32)
        b.clicked.connect(slot)
        return b

    # -- public API --------------------------------------------------------------------------
    def set_input(self, prepared_input: np.ndarray, kernel: Kernel, conv_spec: ConvSpec) -> None:
        """Animate ``kernel`` with ``conv_spec`` over a crop of ``prepared_input``
        ((H, W) or (H, W, 3) float32, as from :func:`cnnviz.core.conv.prepare_input`).

        The output is recomputed once; the position is kept when the output keeps its
        shape (editing the kernel while it plays), else it restarts."""
        x = np.asarray(prepared_input, dtype=np.float32)
        if x.ndim not in (2, 3):
            raise ValueError(f"prepared input must be (H, W) or (H, W, 3), got {x.shape}")
        self._x = x
        self._kernel = kernel
        self._spec = conv_spec
        self._recompute(keep_position=True)

    def set_center(self, y: int, x: int) -> None:
        """Centre the crop on input pixel (y, x) and restart."""
        self._center = (int(y), int(x))
        if self._x is not None:
            self._recompute(keep_position=False)

    def position(self) -> int:
        return self._pos

    # -- export --------------------------------------------------------------------------------
    def render_frames(self, max_frames: int = 400, size: QSize | None = None) -> list[np.ndarray]:
        """The animation as RGB uint8 frames: the canvas after each output pixel (every
        k-th pixel when there are more than ``max_frames``), then the finished output."""
        total = self.total()
        if total == 0:
            return []
        keep = self._pos
        size = size or (self._canvas.size() if self._canvas.width() >= 120 else self._canvas.sizeHint())
        step = max(1, -(-total // max_frames))
        frames = []
        try:
            for pos in list(range(1, total + 1, step)) + ([total] if (total - 1) % step else []):
                self._set_pos(pos, force=True)
                img = QImage(size, QImage.Format_RGB888)
                img.fill(self.palette().window().color())
                self._canvas.render(img)
                ptr = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
                frames.append(ptr[:, : img.width() * 3].reshape(img.height(), img.width(), 3).copy())
        finally:
            self._set_pos(keep, force=True)
        return frames

    def export_animation(self, path, fps: float = 8.0, max_frames: int = 400) -> Path:  # noqa: ANN001
        """Write the animation to ``path``: .gif (Pillow) or .mp4 (OpenCV). Returns the path."""
        p = Path(path)
        frames = self.render_frames(max_frames)
        if not frames:
            raise SpecError("there is nothing to animate yet", "open a picture and pick a kernel first")
        suffix = p.suffix.lower()
        if suffix == ".gif":
            from PIL import Image  # noqa: PLC0415 - only for this export

            imgs = [Image.fromarray(f) for f in frames]
            tmp = p.with_name(f".{p.name}.tmp")
            imgs[0].save(tmp, format="GIF", save_all=True, append_images=imgs[1:],
                         duration=int(round(1000 / fps)), loop=0)
            tmp.replace(p)
        elif suffix == ".mp4":
            import cv2  # noqa: PLC0415

            h, w = frames[0].shape[:2]
            h2, w2 = h - h % 2, w - w % 2  # codecs want even sizes
            tmp = p.with_name(f".{p.name}.tmp.mp4")
            out = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w2, h2))
            if not out.isOpened():
                raise SpecError(f"OpenCV cannot write MP4 video to '{p}'", "export a .gif instead")
            for f in frames:
                out.write(np.ascontiguousarray(f[:h2, :w2, ::-1]))
            out.release()
            tmp.replace(p)
        else:
            raise SpecError(f"'{p.name}' is neither .gif nor .mp4", "name the file .gif or .mp4")
        return p

    def export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the animation", str(Path.home() / "sliding-window.gif"),
                                              "Animated GIF (*.gif);;MP4 video (*.mp4)")
        if not path:
            return
        p = Path(path)
        if p.suffix.lower() not in (".gif", ".mp4"):
            p = p.with_suffix(".gif")
        try:
            self.export_animation(p)
        except (CnnvizError, OSError) as err:
            self._sum.setText(f"Could not export: {err}")
            return
        self._sum.setText(f"Exported the animation to {p}")

    def total(self) -> int:
        """Number of output pixels of the crop."""
        return 0 if self._out is None else int(self._out.size)

    def is_playing(self) -> bool:
        return self._timer.isActive()

    def timer(self) -> QTimer:
        return self._timer

    def revealed_array(self) -> np.ndarray | None:
        """The output of the crop with not-yet-revealed pixels as NaN (None without input)."""
        if self._out is None:
            return None
        out = self._out.astype(np.float32, copy=True).ravel()
        out[self._pos:] = np.nan
        return out.reshape(self._out.shape)

    def output_array(self) -> np.ndarray | None:
        """The whole output of the crop (what the animation ends with)."""
        return None if self._out is None else self._out.copy()

    def crop(self) -> np.ndarray | None:
        """The crop of the input being animated."""
        return None if self._crop is None else self._crop.copy()

    def crop_origin(self) -> tuple[int, int]:
        """(y, x) of the crop's top-left pixel in the input image."""
        return self._origin

    def current_pixel(self) -> tuple[int, int] | None:
        """(row, col) of the output pixel the window is over (the last revealed one)."""
        if self._out is None:
            return None
        ow = self._out.shape[1]
        return divmod(max(0, self._pos - 1), ow)

    def play(self) -> None:
        if self._out is None:
            return
        if self._pos >= self._out.size:
            self._set_pos(0)
        self._timer.start()
        self._update_labels()

    def pause(self) -> None:
        self._timer.stop()
        self._update_labels()

    def stop(self) -> None:
        """Stop playback (the timer); the revealed part stays."""
        self.pause()

    def toggle(self) -> None:
        if self.is_playing():
            self.pause()
        else:
            self.play()

    def step(self) -> None:
        """Reveal one more output pixel (pauses playback)."""
        self.pause()
        if self._out is not None and self._pos < self._out.size:
            self._set_pos(self._pos + 1)

    def reset(self) -> None:
        self.pause()
        self._set_pos(0)

    def set_speed(self, pixels_per_second: float) -> None:
        """Pick the closest available speed."""
        idx = min(range(len(SPEEDS)), key=lambda i: abs(SPEEDS[i] - pixels_per_second))
        self._speed.setValue(idx)

    def speed(self) -> int:
        return SPEEDS[self._speed.value()]

    def set_channel(self, channel: int) -> None:
        """Which channel to animate in 'each' mode (0 R, 1 G, 2 B)."""
        self._channel_box.setCurrentIndex(int(channel))

    def sum_text(self) -> str:
        return self._sum.text()

    # -- internals ------------------------------------------------------------------------
    def _recompute(self, *, keep_position: bool) -> None:
        x, kernel, spec = self._x, self._kernel, self._spec
        if x is None or kernel is None:
            return
        old_shape = None if self._out is None else self._out.shape
        h, w = x.shape[:2]
        cy, cx = self._center if self._center is not None else (h // 2, w // 2)
        ch, cw = min(CROP, h), min(CROP, w)
        y0 = int(np.clip(cy - ch // 2, 0, h - ch))
        x0 = int(np.clip(cx - cw // 2, 0, w - cw))
        crop = np.ascontiguousarray(x[y0:y0 + ch, x0:x0 + cw])
        self._crop, self._origin = crop, (y0, x0)
        self._channel_box.setVisible(spec.channels == "each")
        try:
            out = convolve(crop, [kernel], spec)[0]
            if out.ndim == 3:  # 'each': (3, H', W')
                out = out[self._channel]
            pads = spec.pads(kernel.size)
            padded = pad_input(crop, pads, spec.padding_mode)
        except CnnvizError as exc:
            self.pause()
            self._error = f"Cannot animate this setting on a {ch}×{cw} crop: {exc}"
            self._out = self._padded = None
            self._pos = 0
            self._update_labels()
            self._canvas.update()
            return
        self._error = ""
        self._out, self._padded, self._pads = out, padded, pads
        # images are made here, once: painting only scales them
        shown = padded if padded.ndim == 2 else padded[..., :3]
        g = np.clip(shown, 0.0, 1.0)
        rgb = (np.rint(g * 255)).astype(np.uint8)
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[:, :, None], 3, axis=2)
        self._padded_img = to_qimage(rgb)
        finite = out[np.isfinite(out)]
        if finite.size and float(finite.min()) < 0:
            m = float(np.abs(finite).max()) or 1.0
            levels = (-m, m)
        else:
            lo = float(finite.min()) if finite.size else 0.0
            hi = float(finite.max()) if finite.size else 1.0
            levels = (lo, hi if hi > lo else lo + 1.0)
        self._out_img = to_qimage(_colorize(out, levels))
        if not keep_position or old_shape != out.shape:
            self._pos = 0
        self._pos = min(self._pos, out.size)
        self._set_pos(self._pos, force=True)

    def _set_pos(self, pos: int, force: bool = False) -> None:
        if self._out is None:
            return
        pos = max(0, min(int(pos), int(self._out.size)))
        if pos == self._pos and not force:
            return
        self._pos = pos
        self._update_labels()
        self._update_sum()
        self._canvas.update()
        self.positionChanged.emit(pos)

    def _update_sum(self) -> None:
        if self._out is None or self._pos == 0:
            self._sum.setText("Press Play or Step: each step computes one output pixel as the dot product "
                              "of the kernel with the window under it." if self._out is not None else "")
            return
        oy, ox = self.current_pixel()
        value = float(self._out[oy, ox])
        bias = self._spec.bias + self._kernel.offset
        try:
            from cnnviz.core.dotproduct import explain_conv_pixel

            ex = explain_conv_pixel(self._crop, self._kernel, self._spec, oy, ox,
                                    channel=self._channel if self._spec.channels == "each" else None)
            total = float(ex.total)
        except Exception:  # noqa: BLE001 - explanation unavailable: the sum is the map minus the bias
            total = value - bias
        sign = "+" if bias >= 0 else "−"
        self._sum.setText(f"output ({oy}, {ox}) = Σ window ⊙ kernel + bias = "
                          f"{format_sig(total)} {sign} {format_sig(abs(bias))} = {format_sig(value)}")

    def _update_labels(self) -> None:
        n = self.total()
        self._pos_label.setText(f"{self._pos} / {n}" if n else "—")
        playing = self.is_playing()
        self._play_b.setText("Pause" if playing else "Play")
        self._play_b.setIcon(self._icons["pause" if playing else "play"])
        self._play_b.setToolTip("Pause" if self.is_playing() else "Play (the window slides on by itself)")
        for b in (self._play_b, self._step_b, self._reset_b):
            b.setEnabled(self._out is not None)

    def _set_speed_index(self, idx: int) -> None:
        speed = SPEEDS[int(idx)]
        if self._speed.value() != idx:
            self._speed.blockSignals(True)
            self._speed.setValue(idx)
            self._speed.blockSignals(False)
        # at most ~60 ticks a second; faster speeds reveal several pixels per tick
        interval = max(16, int(round(1000 / speed)))
        self._per_tick = max(1, int(round(speed * interval / 1000)))
        self._timer.setInterval(interval)
        self._speed_label.setText(f"{speed} px/s")

    def _tick(self) -> None:
        if self._out is None or self._pos >= self._out.size:
            self.pause()
            return
        self._set_pos(self._pos + self._per_tick)
        if self._pos >= self._out.size:
            self.pause()

    def _jump_to(self, oy: int, ox: int) -> None:
        if self._out is None:
            return
        self.pause()
        self._set_pos(oy * self._out.shape[1] + ox + 1)

    def _on_channel(self, idx: int) -> None:
        self._channel = max(0, idx)
        if self._x is not None and self._spec.channels == "each":
            self._recompute(keep_position=True)

    def hideEvent(self, e) -> None:  # noqa: ANN001
        self.stop()
        super().hideEvent(e)

    def closeEvent(self, e) -> None:  # noqa: ANN001
        self.stop()
        super().closeEvent(e)


if __name__ == "__main__":  # preview: python -m cnnviz.qt.playground.animate_panel
    import sys

    from PySide6.QtWidgets import QApplication

    from cnnviz.core.kernels import presets

    app = QApplication(sys.argv)
    w = AnimatePanel()
    yy, xx = np.mgrid[0:64, 0:64]
    img = ((np.sin(xx / 5.0) + np.cos(yy / 7.0)) * 0.25 + 0.5).astype(np.float32)
    w.set_input(img, presets()["sobel-x"].kernel, ConvSpec(padding=1))
    w.show()
    w.play()
    sys.exit(app.exec())
