"""Webcams: backends, opening, listing the cameras there are."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from cnnviz.core.errors import SourceError
from cnnviz.core.sources.base import CaptureLike, log, _quiet_opencv
from cnnviz.core.sources.capture import CaptureSource

# --------------------------------------------------------------------------- webcams

_BACKENDS = {
    "any": "CAP_ANY",
    "v4l2": "CAP_V4L2",
    "msmf": "CAP_MSMF",
    "dshow": "CAP_DSHOW",
    "avfoundation": "CAP_AVFOUNDATION",
}


def camera_backends(backend: str | int = "auto") -> list[int]:
    """OpenCV API preferences to try, in order, for ``backend``.

    ``"auto"``: Linux V4L2; Windows Media Foundation, then DirectShow; macOS
    AVFoundation; elsewhere whatever OpenCV picks. Also accepts ``"v4l2"``, ``"msmf"``,
    ``"dshow"``, ``"avfoundation"``, ``"any"`` or an OpenCV ``CAP_*`` number.
    """
    if isinstance(backend, int):
        return [backend]
    key = str(backend).lower()
    if key == "auto":
        if sys.platform.startswith("linux"):
            return [cv2.CAP_V4L2]
        if sys.platform == "win32":
            return [cv2.CAP_MSMF, cv2.CAP_DSHOW]
        if sys.platform == "darwin":
            return [cv2.CAP_AVFOUNDATION]
        return [cv2.CAP_ANY]
    if key in _BACKENDS:
        return [getattr(cv2, _BACKENDS[key])]
    raise SourceError(
        f"unknown camera backend {backend!r}",
        "use one of: auto, " + ", ".join(_BACKENDS),
    )


def _open_camera(
    index: int, width: int | None, height: int | None, backend: str | int
) -> CaptureLike | None:
    cap = None
    for api in camera_backends(backend):
        cap = cv2.VideoCapture(index, api)
        if cap.isOpened():
            if width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, float(width))
            if height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, float(height))
            return cap
        cap.release()
    return cap


class WebcamSource(CaptureSource):
    """Camera ``index`` through OpenCV, at about ``width`` × ``height`` if given.

    The camera picks the nearest resolution it supports; :attr:`frame_size` says which.
    On macOS the app must have camera permission before :meth:`start` (the window asks).
    Extra keyword arguments go to :class:`CaptureSource` (watchdogs, ``fps_limit``).
    """

    def __init__(
        self,
        index: int = 0,
        width: int | None = None,
        height: int | None = None,
        backend: str | int = "auto",
        **kwargs: Any,
    ) -> None:
        camera_backends(backend)  # reject an unknown backend now, not in the thread
        self.index = int(index)
        self.requested_size = (width, height)
        kwargs.setdefault("name", f"camera {self.index}")
        super().__init__(
            lambda: _open_camera(self.index, width, height, backend), **kwargs
        )


# --------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class CameraInfo:
    """A camera that opened and delivered a frame during :func:`list_cameras`."""

    index: int
    name: str
    width: int
    height: int


def _linux_camera_name(index: int) -> str | None:
    try:
        return Path(f"/sys/class/video4linux/video{index}/name").read_text().strip() or None
    except OSError:
        return None


def list_cameras(
    max_index: int = 6, open_fn: Callable[[int], CaptureLike | None] | None = None
) -> list[CameraInfo]:
    """Cameras ``0 .. max_index-1`` that actually open AND deliver a frame.

    Probing silences OpenCV's warnings and, on Linux, skips indices without a
    ``/dev/videoN`` node, so with no camera it returns ``[]`` at once.

    Parameters
    ----------
    open_fn:
        ``open_fn(index)`` → a capture-like object; for tests. Default: the platform's
        backend (see :func:`camera_backends`).
    """
    if open_fn is None:

        def open_fn(index: int) -> CaptureLike | None:
            if sys.platform.startswith("linux") and not os.path.exists(f"/dev/video{index}"):
                return None
            return _open_camera(index, None, None, "auto")

    found: list[CameraInfo] = []
    for index in range(max_index):
        cap = None
        try:
            with _quiet_opencv():
                cap = open_fn(index)
                if cap is None or not cap.isOpened():
                    continue
                image = None
                for _ in range(3):  # some cameras hand out an empty first frame
                    ok, image = cap.read()
                    if ok and image is not None and image.size:
                        break
                    image = None
                if image is None:
                    continue
            name = (
                _linux_camera_name(index) if sys.platform.startswith("linux") else None
            ) or f"Camera {index}"
            found.append(CameraInfo(index, name, int(image.shape[1]), int(image.shape[0])))
        except Exception:
            log.debug("camera %d could not be probed", index, exc_info=True)
        finally:
            if cap is not None:
                with contextlib.suppress(Exception):
                    cap.release()
    return found
