"""Feature visualization: the image a channel, a unit or a class answers to most.

Activation maximization with the recipe that makes the images readable (Olah et al.,
"Feature Visualization", Distill 2017; the Lucid/Lucent libraries):

* the image is not optimized pixel by pixel but through a **Fourier parameterization**: a
  spectrum whose coefficients are scaled by ``1 / frequency`` (low frequencies dominate, so
  the gradient does not fill the image with high-frequency noise), turned into pixels with an
  inverse real FFT;
* colours live in a **decorrelated colour space** (Lucid's square root of the ImageNet colour
  covariance), squashed into ``[0, 1]`` by a sigmoid; one-channel (gray) models get one
  channel, without the colour step;
* every step sees the image through a **random jitter, scale and rotation** (one affine
  resampling per image), so only patterns robust to small transformations survive;
* the optimizer (Adam or SGD), learning rate and step count are the user's; an optional
  **diversity** term (Lucid's: minus the cosine similarity of the images' Gram matrices at
  the layer) pushes a batch of images for one target apart.

**All channels of a layer at once**: one optimization over a batch of C images, image ``i``
maximizing channel ``i`` (split into chunks of ``settings.chunk`` channels to bound memory).
Adam and the losses are per image, so image ``i`` of the batch follows the same path as a
run for channel ``i`` alone would, up to floating-point order.

The final value of each image is the target's activation on the untransformed image the user
sees (quantized to 8 bits, as shown and saved), measured after the optimization.

Long work follows ``run(request, state)``: progress, the current activation value and partial
images go to a :class:`cnnviz.core.taskstate.TaskState`, which also cancels. Results are cached
on disk (:mod:`cnnviz.core.vizcache`) per model weights + layer + target + settings; a
cancelled run writes nothing.

Layouts: the objective reads the layer's output through ``to_maps`` (default: ``(N, C, H, W)``
maps and ``(N, C)`` vectors as they are), so a layout adapter for channels-last or token
outputs (``cnnviz.core.layouts.to_maps``) plugs in without changing the optimization.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import numpy as np
import torch

from cnnviz.core.taskstate import TaskState

from .featureviz_image import (  # noqa: E402,F401 - moved to featureviz_image.py, importable from here
    COLOR_CORRELATION_SVD_SQRT,
    _COLOR,
    ImageParam,
    _random_affine,
    _sync_interval,
    _transform,
    _diversity,
    _RedirectedReLUGrad,
    _RedirectedReLUs,
)

from .featureviz_types import (  # noqa: E402,F401 - moved to featureviz_types.py, importable from here
    OPTIMIZERS,
    MAX_SIDE,
    FeatureVizError,
    FeatureVizSettings,
    Objective,
    FeatureVizRequest,
    FeatureVizPartial,
    FeatureVizResult,
)

__all__ = [
    "FeatureVizError",
    "FeatureVizPartial",
    "FeatureVizRequest",
    "FeatureVizResult",
    "FeatureVizSettings",
    "Objective",
    "default_size",
    "per_item_adapter",
    "layer_channels",
    "run",
]


# --------------------------------------------------------------------------- model plumbing


def _identity_maps(t: torch.Tensor) -> torch.Tensor:
    if t.dim() in (2, 4):
        return t
    raise FeatureVizError(
        f"a layer output of shape {tuple(t.shape[1:])} is neither (C, H, W) maps nor a (C,) vector",
        "choose a convolutional or linear layer (channels-last and token layouts need a layout adapter)")


def per_item_adapter(to_maps_item: Callable[[torch.Tensor, int], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A batch layout adapter from a per-item one: ``to_maps_item(tensor, item)`` gives the
    ``(C, H, W)`` maps of item ``item`` of a batched layer output (the signature of
    ``cnnviz.core.layouts.to_maps(tensor, layout, item)`` with the layout bound), differentiable
    (views, permutes, reshapes). Use as ``run(..., to_maps=per_item_adapter(lambda t, i:
    layouts.to_maps(t, layout, i)))``."""

    def to_maps(t: torch.Tensor) -> torch.Tensor:
        return torch.stack([to_maps_item(t, i) for i in range(t.shape[0])])

    return to_maps


def input_spec(model: Any, preprocessing=None) -> tuple[int, str, torch.Tensor, torch.Tensor]:
    """``(channels, colour order, mean, std)`` of the model input."""
    from cnnviz.core.models import default_preprocessing

    pp = preprocessing if preprocessing is not None else getattr(model, "preprocessing", None)
    in_ch = getattr(model, "input_channels", None)
    if pp is None:
        if in_ch is None:
            from cnnviz.core.capture import module_of
            from cnnviz.core.models import input_channels

            in_ch = input_channels(module_of(model))
        pp = default_preprocessing(in_ch)
    channels = int(in_ch) if in_ch else pp.channels
    color = "gray" if channels == 1 else (pp.color if pp.color != "gray" else "rgb")
    if channels not in (1, 3):
        raise FeatureVizError(f"the model takes {channels} input channels",
                              "feature visualization makes gray (1) or colour (3) images")

    def per_channel(values):
        v = list(values)
        if len(v) == 1:
            v = v * channels
        if len(v) != channels:
            v = [float(np.mean(v))] * channels
        return torch.tensor(v, dtype=torch.float32).view(1, channels, 1, 1)

    return channels, color, per_channel(pp.mean), per_channel(pp.std)


def default_size(model: Any, preprocessing=None) -> tuple[int, int]:
    """The input size a model expects: its fixed size, else its preprocessing's crop or resize,
    else 128x128."""
    size = getattr(model, "input_size", None)
    if size:
        return int(size[0]), int(size[1])
    pp = preprocessing if preprocessing is not None else getattr(model, "preprocessing", None)
    if pp is not None:
        for s in (pp.center_crop, pp.resize):
            if isinstance(s, int):
                return s, s
            if s is not None:
                return int(s[0]), int(s[1])
    return 128, 128


def layer_channels(model: Any, layer: str | None, size: tuple[int, int] | None = None,
                   preprocessing=None, to_maps: Callable | None = None) -> tuple[int, tuple[int, ...]]:
    """``(channels, map shape without batch)`` of ``layer`` (``None``: the model output)."""
    from cnnviz.core.explain import EvalMode, output_logits, TapRunner

    runner = TapRunner(model)
    channels, *_ = input_spec(model, preprocessing)
    h, w = size or default_size(model, preprocessing)
    device = _device_of(runner.module)
    x = torch.zeros(1, channels, h, w, device=device, dtype=_dtype_of(runner.module))
    with EvalMode(runner.module), torch.no_grad():
        if layer is None:
            t = output_logits(runner.module(x))
        else:
            _, act = runner.forward_tap(x, layer, stop=not runner.script)
            t = (to_maps or _identity_maps)(act)
    return int(t.shape[1]), tuple(t.shape[1:])


def _device_of(module) -> torch.device:
    from cnnviz.core.capture import model_device_dtype

    return model_device_dtype(module)[0]


def _dtype_of(module) -> torch.dtype:
    from cnnviz.core.capture import model_device_dtype

    return model_device_dtype(module)[1] or torch.float32


# --------------------------------------------------------------------------- the objective


class _Target:
    """Reads the objective's value per image from a forward pass of the model."""

    def __init__(self, model, objective: Objective, to_maps: Callable | None):
        from cnnviz.core.explain import TapRunner

        self.runner = TapRunner(model)
        self.objective = objective
        self.to_maps = to_maps or _identity_maps
        self.stop = objective.kind != "class" and not self.runner.script
        self._tap: str | None = objective.layer

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(maps, output)``: the layer's maps (or the class scores) for ``x``."""
        from cnnviz.core.explain import output_logits

        if self.objective.kind == "class":
            return output_logits(self.runner.module(x)), None
        _, act = self.runner.forward_tap(x, self._tap, stop=self.stop)
        return self.to_maps(act), act

    @staticmethod
    def values(maps: torch.Tensor, channels: torch.Tensor, unit: tuple[int, int] | None) -> torch.Tensor:
        """Per image ``i``, the activation of channel ``channels[i]`` (mean over its map, or
        at ``unit``)."""
        idx = torch.arange(maps.shape[0], device=maps.device)
        sel = maps[idx, channels.to(maps.device)]
        if sel.dim() == 1:
            return sel.float()
        if unit is not None:
            return sel[:, unit[0], unit[1]].float()
        return sel.flatten(1).float().mean(1)


def _check_target(maps: torch.Tensor, objective: Objective) -> int:
    channels = int(maps.shape[1])
    what = "classes" if objective.kind == "class" else "channels"
    where = "the model" if objective.kind == "class" else f"layer {objective.layer!r}"
    if objective.kind != "all" and not 0 <= int(objective.channel) < channels:
        raise FeatureVizError(f"{where} has {channels} {what}; there is no {what[:-1] if what != 'classes' else 'class'} "
                              f"{objective.channel}", f"choose one from 0 to {channels - 1}")
    if objective.kind == "unit":
        if maps.dim() != 4:
            raise FeatureVizError(f"layer {objective.layer!r} has no spatial map (shape {tuple(maps.shape[1:])})",
                                  "pick a channel instead of a unit, or a convolutional layer")
        h, w = maps.shape[-2:]
        y, x = objective.unit
        if not (0 <= y < h and 0 <= x < w):
            raise FeatureVizError(f"unit ({y}, {x}) is outside layer {objective.layer!r}'s {h}x{w} map",
                                  f"choose y from 0 to {h - 1} and x from 0 to {w - 1}")
    return channels


# --------------------------------------------------------------------------- run


def cache_key(model: Any, request: FeatureVizRequest, size: tuple[int, int], preprocessing=None,
              objective: Objective | None = None) -> str:
    from cnnviz.core.vizcache import entry_key, model_fingerprint

    channels, color, mean, std = input_spec(model, preprocessing)
    settings = dataclasses.replace(request.settings, size=size)
    return entry_key(v=1, model=model_fingerprint(model), objective=(objective or request.objective).to_dict(),
                     settings=settings.to_dict(), input=[channels, color, mean.flatten().tolist(),
                                                         std.flatten().tolist()])


def _from_cache(model, request, size, preprocessing, cache_folder) -> FeatureVizResult | None:
    from cnnviz.core.vizcache import read_entry

    obj = request.objective
    key = cache_key(model, request, size, preprocessing)
    hit = read_entry("featviz", key, cache_folder)
    sliced = None
    if hit is None and obj.kind == "channel":
        # a run over every channel of the layer with the same settings has this channel too
        all_key = cache_key(model, request, size, preprocessing, Objective.all_channels(obj.layer))
        hit = read_entry("featviz", all_key, cache_folder)
        sliced = obj.channel
    if hit is None:
        return None
    arrays, _meta = hit
    try:
        images = arrays["images"].astype(np.float32) / 255.0
        values, channels, history = arrays["values"], arrays["channels"], arrays["history"]
    except KeyError:
        return None
    if sliced is not None:
        keep = channels == sliced
        if not keep.any():
            return None
        images, values, channels = images[keep], values[keep], channels[keep]
    return FeatureVizResult(obj, request.settings, images, values.astype(np.float32), channels.astype(np.int64),
                            history.astype(np.float32), cached=True, key=key)


def run(model: Any, request: FeatureVizRequest, state: TaskState | None = None, *,
        preprocessing=None, to_maps: Callable[[torch.Tensor], torch.Tensor] | None = None,
        cache: bool = True, cache_folder=None, preview_every: int | None = None) -> FeatureVizResult:
    """Optimize images that maximize ``request.objective`` (see the module docstring).

    Parameters
    ----------
    model:
        A ``LoadedModel`` (its preprocessing's mean/std and colour order are applied to the
        image) or an ``nn.Module`` (``preprocessing`` then, or identity).
    state:
        Receives progress with the current activation value in the status line, and a
        :class:`FeatureVizPartial` every ``preview_every`` steps (default: 16 previews per
        chunk); cancelling it raises :class:`cnnviz.core.taskstate.Cancelled` and caches nothing.
    to_maps:
        Layout adapter from the layer's output to ``(N, C, H, W)`` or ``(N, C)``.
    cache, cache_folder:
        Read/write the on-disk cache (folder default :func:`cnnviz.core.vizcache.cache_dir`).

    Raises
    ------
    FeatureVizError
        A channel, class or unit out of range, a layer the objective cannot read, or an
        optimization that produced NaN or infinity.
    """
    from cnnviz.core.explain import EvalMode
    from cnnviz.core.vizcache import write_entry

    state = state or TaskState()
    obj, st = request.objective, request.settings
    if obj.kind not in ("channel", "unit", "class", "all"):
        raise FeatureVizError(f"unknown objective {obj.kind!r}", "use channel, unit, class or all")
    size = st.size or default_size(model, preprocessing)
    if cache:
        hit = _from_cache(model, request, size, preprocessing, cache_folder)
        if hit is not None:
            state.set_progress(1.0, "from the cache")
            return hit

    channels_in, color, mean, std = input_spec(model, preprocessing)
    target = _Target(model, obj, to_maps)
    module = target.runner.module
    device, dtype = _device_of(module), _dtype_of(module)
    mean, std = mean.to(device, dtype), std.to(device, dtype)

    def to_input(img01: torch.Tensor) -> torch.Tensor:
        x = img01
        if color == "bgr":
            x = x.flip(1)
        return ((x.to(dtype) - mean) / std)

    with EvalMode(module):
        # probe: the target's shape, and the request checked against it
        with torch.no_grad():
            maps, _ = target.forward(to_input(torch.full((1, channels_in, *size), 0.5, device=device)))
        n_channels = _check_target(maps, obj)
        if obj.kind == "all":
            targets = np.repeat(np.arange(n_channels), st.batch)
        else:
            targets = np.full(st.batch, int(obj.channel))
        chunk = max(st.chunk, st.batch)
        chunk -= chunk % st.batch
        jitter = st.jitter if st.jitter is not None else max(1, round(0.04 * max(size)))
        every = preview_every or max(1, st.steps // 16)
        redirect_steps = min(16, st.steps // 2)
        images_out, values_out = [], []
        history = np.zeros(st.steps, dtype=np.float64)
        n_chunks = math.ceil(len(targets) / chunk)
        for ci in range(n_chunks):
            tgt_np = targets[ci * chunk:(ci + 1) * chunk]
            tgt = torch.as_tensor(tgt_np, device=device)
            n = len(tgt_np)
            gen = torch.Generator().manual_seed(int(st.seed) * 1_000_003 + ci)
            param = ImageParam(n, channels_in, size, fourier=st.fourier, decorrelate=st.decorrelate,
                               generator=gen, device=device)
            fused = {"fused": True} if device.type == "cuda" else {}  # one kernel per step, not ten
            opt = (torch.optim.Adam(param.parameters(), lr=st.lr, **fused) if st.optimizer == "adam"
                   else torch.optim.SGD(param.parameters(), lr=st.lr, momentum=0.9))
            # every step's transform drawn up front, in the same order as step by step, and
            # moved to the device once
            thetas = (torch.stack([_random_affine(n, size, jitter, gen, torch.device("cpu"))
                                   for _ in range(st.steps)]).to(device) if st.transforms else None)
            # On an accelerator, reading a value back stalls the queue; the per-step checks and
            # values stay on the device and are read every `sync_every` steps (on the CPU
            # every step: the same errors at the same step, the same progress text).
            sync_every = _sync_interval(device, every)
            loss_ok = torch.ones(st.steps, dtype=torch.bool, device=device)
            grad_ok = torch.ones(st.steps, dtype=torch.bool, device=device)
            step_vals = torch.zeros(st.steps, dtype=torch.float32, device=device)
            read = 0  # steps read back so far
            last_val = float("nan")

            def nan_error(at: int, in_gradient: bool):
                if not in_gradient:
                    raise FeatureVizError(
                        f"the optimization produced NaN or infinity at step {at + 1} ({obj.describe()})",
                        "lower the learning rate, use fewer steps, or check the model for NaN weights")
                raise FeatureVizError(
                    f"the optimization produced NaN or infinity at step {at + 1} ({obj.describe()}): "
                    "in the gradient", "check the model for NaN or infinite weights, or lower the learning rate")

            def read_back(upto: int) -> None:
                """Check steps ``read..upto-1`` for NaN/inf and add their values to the history."""
                nonlocal read, last_val
                if upto <= read:
                    return
                lo, go = loss_ok[read:upto].cpu().numpy(), grad_ok[read:upto].cpu().numpy()
                bad = np.flatnonzero(~(lo & go))
                if bad.size:
                    nan_error(read + int(bad[0]), in_gradient=bool(lo[bad[0]]))
                vals_np = step_vals[read:upto].cpu().numpy().astype(np.float64)
                history[read:upto] += vals_np * n / len(targets)
                last_val = float(vals_np[-1])
                read = upto

            for step in range(st.steps):
                state.check()
                img = param.images()
                if thetas is not None:
                    img = _transform(img, thetas[step])
                with _RedirectedReLUs(module, step < redirect_steps):
                    maps, _ = target.forward(to_input(img))
                vals = target.values(maps, tgt, obj.unit)
                loss = -vals.sum()
                if st.diversity > 0 and st.batch > 1:
                    loss = loss + st.diversity * _diversity(maps.float(), n // st.batch) * n
                loss_ok[step] = torch.isfinite(loss.detach())
                step_vals[step] = vals.detach().mean()
                if sync_every == 1 and not bool(loss_ok[step]):
                    nan_error(step, in_gradient=False)  # on the CPU: before its gradient is taken
                opt.zero_grad(set_to_none=True)
                (grad,) = torch.autograd.grad(loss, param.param)
                grad_ok[step] = torch.isfinite(grad).all()
                preview_now = (step + 1) % every == 0 or step + 1 == st.steps
                if sync_every == 1 or preview_now or (step + 1) % sync_every == 0:
                    read_back(step + 1)
                param.param.grad = grad
                opt.step()
                done = (ci * st.steps + step + 1) / (n_chunks * st.steps)
                state.set_progress(done, f"step {step + 1}/{st.steps}: activation {last_val:.4g}")
                if preview_now:
                    with torch.no_grad():
                        preview = param.images().permute(0, 2, 3, 1).float().cpu().numpy()
                    state.set_partial_result(FeatureVizPartial(
                        step + 1, st.steps, preview, vals.detach().float().cpu().numpy(), tgt_np.copy()))
            read_back(st.steps)
            with torch.no_grad():
                final = torch.round(param.images().float() * 255.0) / 255.0
                maps, _ = target.forward(to_input(final))
                vals = target.values(maps, tgt, obj.unit)
            if not bool(torch.isfinite(vals).all()):
                raise FeatureVizError(f"the optimized image gives NaN or infinity ({obj.describe()})",
                                      "lower the learning rate, or check the model for NaN weights")
            images_out.append(final.permute(0, 2, 3, 1).cpu().numpy())
            values_out.append(vals.cpu().numpy())
    state.check()
    images = np.concatenate(images_out).astype(np.float32)
    values = np.concatenate(values_out).astype(np.float32)
    key = cache_key(model, request, size, preprocessing)
    result = FeatureVizResult(obj, st, images, values, targets.astype(np.int64), history.astype(np.float32),
                              cached=False, key=key)
    if cache:
        try:
            write_entry("featviz", key, {"images": result.images_uint8(), "values": values,
                                         "channels": result.channels, "history": result.history},
                        {"objective": obj.to_dict(), "settings": st.to_dict(), "size": list(size)}, cache_folder)
        except OSError:
            pass  # a cache that cannot be written only costs time
    return result
