"""Compute devices: which exist, and a clear message when the one asked for does not.

torch is imported only inside these functions (the playground starts without it).
"""

from __future__ import annotations

from .errors import SpecError


def available_devices() -> list[str]:
    """'cpu' always; 'cuda' / 'mps' when torch sees them."""
    out = ["cpu"]
    try:
        import torch
    except ImportError:
        return out
    if torch.cuda.is_available():
        out.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return out


def check_torch_device(name: str) -> str:
    """Validate a device name (cpu, cuda, cuda:1, mps, auto) and return the one to use."""
    n = name.strip().lower()
    avail = available_devices()
    if n == "auto":
        return "cuda" if "cuda" in avail else "mps" if "mps" in avail else "cpu"
    base = n.split(":")[0]
    if base not in ("cpu", "cuda", "mps"):
        raise SpecError(f"device '{name}' is not known", "use cpu, cuda, cuda:N, mps or auto")
    if base not in avail:
        raise SpecError(f"device '{name}' is not available on this machine (available: {', '.join(avail)})",
                        "use --device cpu")
    if base == "cuda" and ":" in n:
        import torch

        idx = int(n.split(":")[1]) if n.split(":")[1].isdigit() else -1
        if not 0 <= idx < torch.cuda.device_count():
            raise SpecError(f"device '{name}' does not exist ({torch.cuda.device_count()} CUDA device(s))",
                            "use cuda:0")
    return n


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
