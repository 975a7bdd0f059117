"""The kernel playground's computation: a frozen job → the pipeline result, its display
statistics and the views' coloured pictures (pure; no Qt; any thread).

The window's worker runs :class:`PlaygroundComputer` (:func:`compute_playground` with the
prepared input cached); ``cnnviz convolve --png`` and the tests call
:func:`compute_playground` directly, so the CLI writes the bytes the window draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .conv import PipelineRequest, PipelineResult, prepare_input, run_pipeline
from .display import DisplayFrame, DisplaySettings, Stat, StageImage, display_frame, robust_stat


@dataclass(frozen=True)
class PlaygroundJob:
    """One computation: the picture, the request and the device."""

    image: np.ndarray        # (H, W) or (H, W, 3|4); never written to
    image_key: int           # changes whenever the picture does (prepared-input cache key)
    request: PipelineRequest
    device: str = "cpu"
    display: DisplaySettings | None = None   # colour the result for the views, too
    # the input view's picture of this image, when the worker already made it (a cache
    # the worker fills in: a kernel edit does not re-colour the unchanged input)
    input_image: StageImage | None = None


@dataclass
class PlaygroundOutput:
    job: PlaygroundJob
    result: PipelineResult
    stats: dict[str, Stat] = field(default_factory=dict)
    display: DisplayFrame | None = None       # the views' pictures, when the job asked


def stage_stats(result: PipelineResult, robust: float = 99.5,
                max_samples: int = 65_536) -> dict[str, Stat]:
    """Display statistics of every stage over all kernels: ``(min, max, lo, hi)``
    (:func:`cnnviz.core.display.robust_stat`, the one auto-level policy)."""
    out: dict[str, Stat] = {}
    seen: dict[int, Stat] = {}
    for name, arr in (("conv", result.conv), ("activation", result.activation), ("pool", result.pool),
                      ("magnitude", result.magnitude)):
        if arr is None or arr.size == 0:
            continue
        if id(arr) in seen:  # no activation: the activated map is the conv map itself
            out[name] = seen[id(arr)]
            continue
        stat = robust_stat(arr, robust, max_samples)
        if stat is not None:
            seen[id(arr)] = out[name] = stat
    return out


def compute_playground(job: PlaygroundJob, prepared: np.ndarray | None = None) -> PlaygroundOutput:
    """Run the pipeline for ``job``, the display statistics and — when ``job.display`` is
    set — the views' coloured pictures (pure; any thread), so the GUI thread only blits."""
    result = run_pipeline(job.image, job.request, device=job.device, prepared=prepared)
    stats = stage_stats(result)
    display = None
    if job.display is not None:
        display = display_frame(result, job.request, stats, job.display, job.input_image)
    return PlaygroundOutput(job, result, stats, display)


class PlaygroundComputer:
    """The worker's compute function: :func:`compute_playground` with the prepared input of
    the last picture cached (a colour→grey conversion per edit would be wasted work).
    Only the worker thread calls it."""

    def __init__(self) -> None:
        self._key: tuple[int, str] | None = None
        self._prepared: np.ndarray | None = None
        self._input_image: StageImage | None = None

    def __call__(self, job: PlaygroundJob) -> PlaygroundOutput:
        key = (job.image_key, job.request.conv.channels)
        if key != self._key or self._prepared is None:
            self._prepared = prepare_input(job.image, job.request.conv.channels)
            self._key = key
            self._input_image = None
        if self._input_image is not None and job.display is not None:
            job = replace(job, input_image=self._input_image)
        out = compute_playground(job, self._prepared)
        if out.display is not None:
            self._input_image = out.display.stages.get("input")
        return out


def last_stage_picture(image: np.ndarray, request: PipelineRequest, device: str = "cpu") -> np.ndarray:
    """The RGB(A) uint8 picture of the request's last stage (pooled, else activated) as the
    playground's view shows it: one kernel alone, a bank as the mosaic of all its kernels
    (``cnnviz convolve --png``)."""
    from .display import MOSAIC, export_rgb

    settings = DisplaySettings(selection=MOSAIC if len(request.kernels) > 1 else 0)
    out = compute_playground(PlaygroundJob(image, 0, request, device, settings))
    stage = "pool" if out.display.stages.get("pool") is not None else "activation"
    return export_rgb(out.display.stages[stage].pixels)
