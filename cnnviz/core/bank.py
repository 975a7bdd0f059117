"""The kernel bank's rules (pure; no Qt): one size per bank, the default magnitude pair,
unique names, and crops that can be undone.

All kernels in a bank share one size, because the core convolves a bank in one pass and
refuses mixed sizes. When sizes differ — a bank set from mixed kernels, or the editor
resizing the selected kernel — every other kernel is resized to the *selected* kernel's
size with :meth:`Kernel.resized` (centre kept: cropped, or zero-padded around it). A kernel
cropped that way keeps its full weights (its *original*) until it is edited, so going back
to the larger size (or Undo) brings them back exactly.

:class:`cnnviz.core.playground.PlaygroundState` holds the bank and applies these rules.
"""

from __future__ import annotations

import numpy as np

from .kernels import Kernel

Originals = tuple[Kernel | None, ...]


def named_pair(kernels: tuple[Kernel, ...]) -> tuple[int, int] | None:
    """Indices of sobel-x / sobel-y, or of another "…-x" / "…-y" pair, when present."""
    names = [k.name.lower() for k in kernels]
    if "sobel-x" in names and "sobel-y" in names:
        return names.index("sobel-x"), names.index("sobel-y")
    for i, n in enumerate(names):
        if n.endswith(("-x", "_x", " x")):
            partner = n[:-1] + "y"
            if partner in names:
                return i, names.index(partner)
    return None


def default_pair(kernels: tuple[Kernel, ...]) -> tuple[int, int]:
    """The named derivative pair when there is one, else (0, 1)."""
    return named_pair(kernels) or ((0, 1) if len(kernels) > 1 else (0, 0))


def unique_name(base: str, kernels: tuple[Kernel, ...]) -> str:
    names = {k.name for k in kernels}
    if base not in names:
        return base
    i = 2
    while f"{base} {i}" in names:
        i += 1
    return f"{base} {i}"


def full_kernel(kernel: Kernel, original: Kernel | None) -> Kernel:
    """``kernel`` with the weights it had before a crop (when untouched since)."""
    if original is not None and original.resized(*kernel.size) == kernel:
        return original
    return kernel


def fit_bank(kernels: tuple[Kernel, ...], selected: int,
             originals: Originals | None = None) -> tuple[tuple[Kernel, ...], Originals]:
    """Bring every kernel to the selected one's size, from its full weights when it was
    cropped before and not edited since; returns the bank and the new originals."""
    target = kernels[selected].size
    if originals is None:
        originals = (None,) * len(kernels)
    originals = tuple(originals) + (None,) * (len(kernels) - len(originals))
    new, full = [], []
    for k, o in zip(kernels, originals):
        k = full_kernel(k, o)
        new.append(k if k.size == target else k.resized(*target))
        big = k.size[0] > target[0] or k.size[1] > target[1]
        full.append(k if big else None)
    return tuple(new), tuple(full)


def would_crop(kernels: tuple[Kernel, ...], selected: int, originals: Originals, kh: int, kw: int) -> list[str]:
    """Names of the other kernels whose non-zero weights a resize of the bank to kh×kw
    would crop away (they come back when the size grows again)."""
    out = []
    for i, k in enumerate(kernels):
        if i == selected:
            continue
        full = full_kernel(k, originals[i] if i < len(originals) else None)
        if full.size[0] > kh or full.size[1] > kw:
            if not np.array_equal(full.resized(kh, kw).resized(*full.size).weights, full.weights):
                out.append(k.name)
    return out
