"""Frame sources: a still image, a webcam, a video file or a synthetic pattern.

Every source pushes :class:`Frame` objects into a one-slot :class:`LatestFrameBuffer`:
a consumer that is slower than the source gets the newest frame and the others are
counted as dropped; nothing ever queues up. Live sources run ONE capture thread that
owns the OpenCV capture object from open to release.

Webcams and video files go through the same class, :class:`CaptureSource`;
:class:`WebcamSource` and :class:`VideoFileSource` only choose how to open the capture.

A typical consumer::

    src = WebcamSource(0)
    src.on_error = lambda err: ...      # called from the capture thread
    src.start()                         # raises SourceError if the camera cannot open
    while (frame := src.buffer.get(timeout=1.0)) is not None:
        show(frame.pixels)
    src.stop()                          # stops and joins the capture thread

No Qt here: the window marshals the callbacks to the GUI thread itself. The callbacks
must not block waiting on the thread that calls :meth:`FrameSource.stop`.
"""

from __future__ import annotations

import os

# MSMF's hardware transforms make opening a webcam take several seconds on Windows;
# the variable is read when the first capture opens, so setting it here (before any
# submodule imports cv2) is early enough.
os.environ.setdefault("OPENCV_VIDEOIO_MSMF_ENABLE_HW_TRANSFORMS", "0")

from cnnviz.core.sources.base import (  # noqa: E402
    END_OF_FILE, ERROR, STOPPED, CaptureLike, FrameSource, StillImageSource)
from cnnviz.core.sources.capture import CaptureSource  # noqa: E402
from cnnviz.core.sources.frames import Frame, LatestFrameBuffer  # noqa: E402
from cnnviz.core.sources.synthetic import SyntheticSource  # noqa: E402
from cnnviz.core.sources.video import VideoFileSource  # noqa: E402
from cnnviz.core.sources.webcam import CameraInfo, WebcamSource, camera_backends, list_cameras  # noqa: E402

__all__ = [
    "END_OF_FILE",
    "ERROR",
    "STOPPED",
    "CameraInfo",
    "CaptureLike",
    "CaptureSource",
    "Frame",
    "FrameSource",
    "LatestFrameBuffer",
    "StillImageSource",
    "SyntheticSource",
    "VideoFileSource",
    "WebcamSource",
    "camera_backends",
    "list_cameras",
]
