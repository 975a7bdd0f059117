"""A synthetic moving pattern: a live source that needs no camera."""

from __future__ import annotations


import numpy as np

from cnnviz.core.errors import SourceError
from cnnviz.core.sources.capture import CaptureSource

# --------------------------------------------------------------------------- synthetic


class _SyntheticCapture:
    """A capture-like pattern generator: diagonal stripes and blobs scrolling sideways.

    ``read()`` returns a BGR view into a precomputed wide image (no per-pixel Python);
    the capture source copies it into the frame, as it does for camera frames.
    """

    PERIOD = 64  # pixels; the pattern repeats every PERIOD columns, so the scroll loops

    def __init__(self, width: int, height: int, speed: int = 4) -> None:
        y, x = np.mgrid[0:height, 0 : width + self.PERIOD].astype(np.float32)
        stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (x + y) / self.PERIOD)
        blobs = 0.5 + 0.5 * np.cos(2 * np.pi * x / self.PERIOD) * np.cos(
            2 * np.pi * y / (2 * self.PERIOD)
        )
        wide = np.empty((height, width + self.PERIOD, 3), np.uint8)
        wide[..., 0] = (255 * stripes).astype(np.uint8)
        wide[..., 1] = (255 * blobs).astype(np.uint8)
        wide[..., 2] = (255 * (y / max(1, height - 1))).astype(np.uint8)
        self._wide = wide
        self._width = width
        self._speed = speed
        self._n = 0
        self._open = True

    def isOpened(self) -> bool:  # noqa: N802
        return self._open

    def read(self) -> tuple[bool, np.ndarray | None]:
        off = (self._n * self._speed) % self.PERIOD
        self._n += 1
        return True, self._wide[:, off : off + self._width]

    def get(self, prop: int) -> float:
        return 0.0

    def set(self, prop: int, value: float) -> bool:
        return False

    def release(self) -> None:
        self._open = False


class SyntheticSource(CaptureSource):
    """A moving test pattern made in the capture thread at a steady ``fps``.

    For benchmarks and demos without a camera: every frame differs, frame ids and
    capture times are real, and pacing uses the same code as video files.
    """

    _pace_by_sleeping = True

    def __init__(self, width: int = 1280, height: int = 720, fps: float = 30.0) -> None:
        if width < 1 or height < 1:
            raise SourceError(
                f"synthetic size must be positive, got {width}x{height}", "use e.g. 1280x720"
            )
        super().__init__(
            lambda: _SyntheticCapture(int(width), int(height)),
            name=f"synthetic {width}x{height}@{fps:g}",
            fps_limit=fps,
            watchdog_fail_s=None,
            watchdog_same_s=None,
        )
