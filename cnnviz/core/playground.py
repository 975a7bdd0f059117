"""The kernel playground's state and computation (pure; no Qt).

:class:`PlaygroundState` is what the user chose (the kernel bank, the selected kernel, the
magnitude pair, the conv/activation/pool parameters, the display settings): the window's
widgets write through it and are updated from it, and :meth:`PlaygroundState.to_request`
freezes it into the request a worker computes. A frozen job → the pipeline result, its
display statistics and the views' coloured pictures, on any thread.

The window's worker runs :class:`PlaygroundComputer` (:func:`compute_playground` with the
prepared input cached); ``cnnviz convolve --png`` and the tests call
:func:`compute_playground` directly, so the CLI writes the bytes the window draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from .conv import ActivationSpec, ConvSpec, PipelineRequest, PipelineResult, PoolSpec, prepare_input, run_pipeline
from .kernels import Kernel
from .display import DisplayFrame, DisplaySettings, Stat, StageImage, display_frame, robust_stat


class SpecSource(Protocol):
    """Parameters that freeze into the core's specs (the window's ``PlaygroundParams``)."""

    def to_specs(self) -> tuple[ConvSpec, ActivationSpec, PoolSpec | None]: ...


@dataclass(frozen=True)
class BankChange:
    """What a new bank changed, for the views that show it."""

    selection_moved: bool      # another kernel is selected, or the bank grew or shrank
    names_changed: bool        # kernel names or the magnitude pair changed
    selected_changed: bool     # the selected kernel itself is another one


@dataclass
class PlaygroundState:
    """What the user chose in the playground: the one copy the window keeps.

    Widgets write through :meth:`set_bank` and :meth:`set_params` (and the display
    settings), and are updated from the state with their signals blocked, so no value
    echoes back to the widget it came from. ``params`` is anything with ``to_specs()``
    (the window's ``PlaygroundParams``).
    """

    kernels: tuple[Kernel, ...] = ()
    selected: int = 0
    magnitude_pair: tuple[int, int] | None = None
    params: Any = None
    display: DisplaySettings = field(default_factory=DisplaySettings)

    @property
    def selected_kernel(self) -> Kernel | None:
        return self.kernels[self.selected] if self.kernels else None

    def set_bank(self, kernels, selected: int = 0, magnitude_pair: tuple[int, int] | None = None) -> BankChange:
        """Take a new bank (the kernel bank's edit, a preset, a lesson)."""
        kernels = tuple(kernels)
        selected = max(0, min(int(selected), len(kernels) - 1)) if kernels else 0
        before = self.selected_kernel
        change = BankChange(
            selection_moved=selected != self.selected or len(kernels) != len(self.kernels),
            names_changed=[k.name for k in kernels] != [k.name for k in self.kernels]
            or magnitude_pair != self.magnitude_pair,
            selected_changed=(kernels[selected] if kernels else None) != before)
        self.kernels, self.selected, self.magnitude_pair = kernels, selected, magnitude_pair
        return change

    def set_params(self, params: SpecSource) -> None:
        self.params = params

    def to_request(self) -> PipelineRequest:
        """The frozen request of this state; a :class:`~cnnviz.core.errors.SpecError` for
        parameters that cannot work together."""
        conv, act, pool = self.params.to_specs() if self.params is not None else (ConvSpec(), ActivationSpec(), None)
        return PipelineRequest(kernels=self.kernels, conv=conv, activation=act, pool=pool,
                               magnitude_pair=self.magnitude_pair)


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
