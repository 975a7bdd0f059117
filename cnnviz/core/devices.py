"""Compute devices: which exist, and a clear message when the one asked for does not.

torch is imported only inside these functions (the playground starts without it).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

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


def torch_version_without_import() -> str | None:
    """The installed torch's version from its package metadata (no import: milliseconds)."""
    try:
        return version("torch")
    except PackageNotFoundError:
        return None


def compute_summary() -> list[str]:
    """Lines for an About box: the torch build and every GPU it can use.

    ``["PyTorch 2.10.0 (CUDA 12.8 build, cuDNN 91002)", "GPU cuda:0: NVIDIA H100 80GB HBM3
    (79 GiB), compute capability 9.0"]``, or ``"GPU: none found — models run on the CPU"``.
    Imports torch (seconds the first time): call it on a worker thread.
    """
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - a broken install is reported, not raised
        return [f"PyTorch could not be loaded: {type(exc).__name__}: {exc}"]
    cuda_build = getattr(torch.version, "cuda", None)
    build = f"CUDA {cuda_build} build" if cuda_build else "CPU-only build"
    try:
        cudnn = torch.backends.cudnn.version() if cuda_build else None
    except Exception:  # noqa: BLE001
        cudnn = None
    lines = [f"PyTorch {torch.__version__} ({build}{f', cuDNN {cudnn}' if cudnn else ''})"]
    gpus = []
    try:
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                p = torch.cuda.get_device_properties(i)
                gpus.append(f"GPU cuda:{i}: {device_description(f'cuda:{i}')}, "
                            f"compute capability {p.major}.{p.minor}")
    except Exception as exc:  # noqa: BLE001 - a driver problem is worth showing
        gpus.append(f"GPU: CUDA is installed but failed: {type(exc).__name__}: {exc}")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        gpus.append("GPU mps: Apple GPU (Metal)")
    if not gpus:
        why = " (this torch has no CUDA)" if not cuda_build else ""
        gpus.append(f"GPU: none found{why} — models run on the CPU")
    return lines + gpus
