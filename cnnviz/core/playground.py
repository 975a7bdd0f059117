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
from . import bank as bank_rules
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
    magnitude_turned_on: bool = False   # the magnitude pair was off and is on now

    @property
    def any(self) -> bool:
        return self.selection_moved or self.names_changed or self.selected_changed


@dataclass
class PlaygroundState:
    """What the user chose in the playground: the one copy the window keeps.

    Widgets write through its methods (:meth:`set_bank`, :meth:`select`,
    :meth:`replace_selected`, … and :meth:`set_params`), and are updated from the state
    with their signals blocked, so no value echoes back to the widget it came from. The
    bank's rules (one size per bank, reversible crops, the magnitude pair) live here
    (:mod:`cnnviz.core.bank`); every bank method returns the :class:`BankChange`, or None
    when nothing changed. ``params`` is anything with ``to_specs()`` (the window's
    ``PlaygroundParams``).
    """

    kernels: tuple[Kernel, ...] = ()
    selected: int = 0
    params: Any = None
    display: DisplaySettings = field(default_factory=DisplaySettings)
    magnitude_on: bool = False                  # the "gradient magnitude" option is ticked
    pair_choice: tuple[int, int] = (0, 1)       # the pair a/b shown, kept while the option is off
    originals: tuple[Kernel | None, ...] = ()   # full weights of kernels cropped to the bank's size

    @property
    def selected_kernel(self) -> Kernel | None:
        return self.kernels[self.selected] if self.kernels else None

    @property
    def magnitude_pair(self) -> tuple[int, int] | None:
        """The pair to combine, or None when the option is off, unavailable or a == b."""
        if not self.magnitude_on or len(self.kernels) < 2:
            return None
        a, b = self.pair_choice
        return None if a == b else (a, b)

    def _commit(self, kernels: tuple[Kernel, ...], selected: int, *, on: bool | None = None,
                choice: tuple[int, int] | None = None, originals=None) -> BankChange | None:
        before_kernels, before_sel, before_pair = self.kernels, self.selected, self.magnitude_pair
        before = self.selected_kernel
        if kernels:
            selected = max(0, min(int(selected), len(kernels) - 1))
            kernels, originals = bank_rules.fit_bank(tuple(kernels), selected, originals)
        else:
            selected, originals = 0, ()
        n = len(kernels)
        if choice is not None:
            self.pair_choice = choice
        self.pair_choice = (min(self.pair_choice[0], max(n - 1, 0)), min(self.pair_choice[1], max(n - 1, 0)))
        if on is not None:
            self.magnitude_on = bool(on)
        self.kernels, self.selected, self.originals = tuple(kernels), selected, tuple(originals)
        pair = self.magnitude_pair
        change = BankChange(
            selection_moved=selected != before_sel or n != len(before_kernels),
            names_changed=[k.name for k in kernels] != [k.name for k in before_kernels] or pair != before_pair,
            selected_changed=self.selected_kernel != before,
            magnitude_turned_on=before_pair is None and pair is not None)
        if not change.any and self.kernels == before_kernels:
            return None
        return change

    def set_bank(self, kernels, selected: int = 0, magnitude_pair: tuple[int, int] | None = None) -> BankChange:
        """Take a new bank (a preset, a file, a lesson): mixed sizes are resized to the
        selected kernel's size; ``magnitude_pair`` None turns the magnitude off."""
        kernels = tuple(kernels)
        if magnitude_pair is None:
            on, choice = False, bank_rules.default_pair(kernels)
        else:
            a, b = (int(v) for v in magnitude_pair)
            if not (0 <= a < len(kernels) and 0 <= b < len(kernels)):
                raise ValueError(f"magnitude pair {magnitude_pair} is outside the bank of {len(kernels)} kernels")
            on, choice = True, (a, b)
        change = self._commit(kernels, selected, on=on, choice=choice)
        return change or BankChange(False, False, False)

    def select(self, index: int) -> BankChange | None:
        if not self.kernels or int(index) == self.selected or not 0 <= int(index) < len(self.kernels):
            return None
        return self._commit(self.kernels, int(index), originals=self.originals)

    def replace_selected(self, kernel: Kernel) -> BankChange | None:
        """Put ``kernel`` in the selected slot (the editor changed it); when its size
        differs, the other kernels are resized to it (their crops are reversible)."""
        if not self.kernels:
            return self._commit((kernel,), 0)
        if kernel == self.kernels[self.selected]:
            return None
        ks = list(self.kernels)
        ks[self.selected] = kernel
        originals = list(self.originals) + [None] * (len(ks) - len(self.originals))
        originals[self.selected] = None  # the edited kernel is what the editor shows
        return self._commit(tuple(ks), self.selected, originals=tuple(originals))

    def add_copy(self) -> BankChange | None:
        """Insert a copy of the selected kernel after it and select the copy."""
        if not self.kernels:
            return None
        src = self.selected_kernel
        ks = list(self.kernels)
        sel = self.selected
        ks.insert(sel + 1, replace(src, name=bank_rules.unique_name(f"{src.name} copy", self.kernels)))
        a, b = self.pair_choice
        shift = lambda i: i + 1 if i > sel else i  # noqa: E731
        originals = list(self.originals) + [None] * (len(self.kernels) - len(self.originals))
        originals.insert(sel + 1, None)
        return self._commit(tuple(ks), sel + 1, choice=(shift(a), shift(b)), originals=tuple(originals))

    def remove_selected(self) -> BankChange | None:
        """Remove the selected kernel (never the last one)."""
        if len(self.kernels) <= 1:
            return None
        idx = self.selected
        ks = list(self.kernels)
        del ks[idx]
        originals = list(self.originals) + [None] * (len(self.kernels) - len(self.originals))
        del originals[idx]
        a, b = self.pair_choice
        choice = bank_rules.default_pair(tuple(ks)) if idx in (a, b) else (a - (a > idx), b - (b > idx))
        return self._commit(tuple(ks), min(idx, len(ks) - 1), choice=choice, originals=tuple(originals))

    def rename_selected(self, name: str) -> BankChange | None:
        name = name.strip()
        if not self.kernels or not name or name == self.selected_kernel.name:
            return None
        ks = list(self.kernels)
        ks[self.selected] = replace(ks[self.selected], name=name)
        return self._commit(tuple(ks), self.selected, originals=self.originals)

    def set_magnitude(self, on: bool | None = None, pair: tuple[int, int] | None = None) -> BankChange | None:
        """Tick/untick the magnitude option and/or choose its pair (indices)."""
        if pair is not None:
            a, b = (int(v) for v in pair)
            n = len(self.kernels)
            if not (0 <= a < n and 0 <= b < n):
                raise ValueError(f"magnitude pair {pair} is outside the bank of {n} kernels")
            pair = (a, b)
        return self._commit(self.kernels, self.selected, on=on, choice=pair, originals=self.originals)

    def would_crop(self, kh: int, kw: int) -> list[str]:
        """Names of the other kernels a resize of the bank to kh×kw would crop."""
        return bank_rules.would_crop(self.kernels, self.selected, self.originals, kh, kw)

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
