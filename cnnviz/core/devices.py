"""Compute devices: which exist, and a clear message when the one asked for does not.

torch is imported only inside these functions (the playground starts without it).
"""

from __future__ import annotations

from .errors import SpecError


def available_devices() -> list[str]:
    """Devices this machine can run on, best first: cuda, cuda:0…, mps, then cpu."""
    out: list[str] = []
    try:
        import torch
    except ImportError:
        return ["cpu"]
    if torch.cuda.is_available():
        out.append("cuda")
        out.extend(f"cuda:{i}" for i in range(torch.cuda.device_count()))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    out.append("cpu")
    return out


def check_torch_device(name: str | None, error: type[SpecError] | type = SpecError) -> str:
    """Validate a device name (auto, cpu, cuda, cuda:N, mps) and return the one to use.

    ``auto`` picks cuda, then mps, then cpu. An unknown or absent device raises ``error``
    (a :class:`CnnvizError` subclass) naming the devices that exist here.
    """
    text = (name or "auto").strip().lower()
    avail = available_devices()
    if text == "auto":
        return avail[0]
    if text.split(":")[0] not in ("cpu", "cuda", "mps"):
        raise error(f"device '{name}' is not known", f"choose one of: auto, {', '.join(avail)}")
    if text not in avail:
        raise error(f"device '{name}' is not available on this machine",
                    f"choose one of: auto, {', '.join(avail)}")
    return text


def device_description(name: str) -> str:
    """'CPU' or 'NVIDIA H100 (80 GB)' for the status bar."""
    if name.startswith("cuda"):
        import torch

        idx = int(name.split(":")[1]) if ":" in name else 0
        p = torch.cuda.get_device_properties(idx)
        return f"{p.name} ({p.total_memory / 2**30:.0f} GiB)"
    if name == "mps":
        return "Apple GPU (MPS)"
    return "CPU"
