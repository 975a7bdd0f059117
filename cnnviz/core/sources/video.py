"""Video files, checked to be regular files before OpenCV opens them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2

from cnnviz.core.errors import SourceError
from cnnviz.core.files import open_regular
from cnnviz.core.sources.base import CaptureLike
from cnnviz.core.sources.capture import CaptureSource

# --------------------------------------------------------------------------- files


class VideoFileSource(CaptureSource):
    """A video file (anything OpenCV's FFmpeg reads), played at its own frame rate.

    Extra keyword arguments go to :class:`CaptureSource` (e.g. ``fps_limit``).
    """

    def __init__(self, path: str | os.PathLike[str], loop: bool = True, **kwargs: Any):
        self.path = Path(path)
        kwargs.setdefault("name", self.path.name or str(self.path))
        kwargs.setdefault("watchdog_same_s", None)
        super().__init__(self._open_file, loop=loop, is_file=True, **kwargs)

    def _open_file(self) -> CaptureLike:
        # A FIFO or a device would hang FFmpeg's open; a folder or a missing file gets a
        # clear message instead of OpenCV's silent "not opened".
        with open_regular(self.path, "video file", error=SourceError):
            pass
        return cv2.VideoCapture(str(self.path))
