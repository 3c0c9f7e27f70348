"""Devices: pick CUDA, then MPS, then CPU for "auto", and describe what is in use.

torch is imported inside the functions, never at module import, so the editor starts without it.
"""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=None)
def resolve_device(name: str = "auto") -> str:
    """A concrete torch device name for "auto", "cpu", "cuda", "cuda:N" or "mps".

    Asking for a device that is not there raises ValueError with what is available instead.
    """
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if name == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if name.startswith("cuda"):
        if not cuda:
            raise ValueError("device 'cuda' is not available here (no CUDA GPU or a CPU-only torch); use --device cpu")
        return name
    if name == "mps" and not mps:
        raise ValueError("device 'mps' is not available here; use --device cpu")
    return name


def describe_device(name: str) -> str:
    """A short human description for the status bar ("NVIDIA H200", "CPU (16 threads)")."""
    import torch

    if name.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(name))
    if name == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"
