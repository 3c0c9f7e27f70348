"""Devices: pick CUDA, then MPS, then CPU for "auto", and describe what is in use.

torch is imported inside the functions, never at module import, so the editor starts without it.
"""
from __future__ import annotations

import functools
import platform
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

DEVICE_NAMES = "auto, cpu, cuda, cuda:N or mps"
# Names people type for a device NodeForge knows under another name.
_ALIASES = {"gpu": "cuda", "nvidia": "cuda", "metal": "mps", "apple": "mps"}


def parse_device(text: str) -> str:
    """A device name as the engine takes it ("CPU" -> "cpu", " cuda:1 " -> "cuda:1").

    No torch here: this only checks the spelling. Unknown names raise ValueError listing the
    known ones, so `--device gpu` is a one-line error and not a traceback from deep in torch.
    """
    name = str(text).strip().lower()
    if name in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d{1,4}", name):
        return name
    hint = f" (did you mean {_ALIASES[name]!r}?)" if name in _ALIASES else ""
    shown = text if len(str(text)) <= 40 else str(text)[:40] + "..."
    raise ValueError(f"unknown device {shown!r}{hint}: use {DEVICE_NAMES}")


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


def torch_device(name: str = "auto") -> "torch.device":
    """The torch.device for a device name as typed (`parse_device`), "auto" resolved as the engine
    does (CUDA, then MPS, then CPU). The trainers use it too; unknown or absent devices raise
    ValueError naming what to use instead."""
    import torch

    return torch.device(resolve_device(parse_device(name)))


def describe_device(name: str) -> str:
    """A short human description for the status bar ("NVIDIA H200", "CPU (16 threads)")."""
    import torch

    if name.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(name))
    if name == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"


def describe_before_torch(name: str) -> str:
    """What `describe_device` will say, guessed without importing torch (the editor loads torch at
    its first run; the status bar names the device from the start): "CPU", "Apple GPU (MPS)", or
    an NVIDIA GPU's model read from the driver, marked as found rather than in use for "auto"."""
    gpu = _nvidia_model()
    if name == "cpu":
        return "CPU"
    if name == "mps":
        return "Apple GPU (MPS)"
    if name.startswith("cuda"):
        return gpu or "CUDA GPU"
    if gpu:
        return f"auto: {gpu} found (used if torch has CUDA)"
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return "auto: Apple GPU (MPS)"
    return "CPU"


def _nvidia_model() -> str | None:
    """The first NVIDIA GPU's model from the Linux driver's /proc files (no torch, no nvidia-smi)."""
    for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        try:
            for line in info.read_text(encoding="utf-8", errors="replace").splitlines():
                key, _, value = line.partition(":")
                if key.strip() == "Model" and value.strip():
                    return value.strip()
        except OSError:
            continue
    return None


def torch_support() -> str:
    """One line for `nodeforge --version`: the torch build and which devices it can use here.

    A CPU-only torch wheel and a CUDA build on a machine without a GPU both say "CUDA no", so the
    line names which of the two it is: that is the first thing to know when a GPU goes unused.
    """
    try:
        import torch
    except ImportError as exc:
        return f"torch: not importable ({exc}); `nodeforge run` needs it"
    parts = [f"torch {torch.__version__}", "CPU yes"]
    # ROCm builds drive AMD GPUs through the same torch.cuda API.
    hip = getattr(torch.version, "hip", None)
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else f"CUDA (ROCm {hip})" if hip else None
    if build is None:
        parts.append("CUDA no (CPU-only torch build)")
    elif torch.cuda.is_available():
        count = torch.cuda.device_count()
        names = sorted({torch.cuda.get_device_name(i) for i in range(count)})
        parts.append(f"{build} yes ({count} GPU: {', '.join(names)})")
    else:
        parts.append(f"{build} build, but no usable GPU or driver found")
    mps = getattr(torch.backends, "mps", None)
    parts.append("MPS yes" if mps is not None and mps.is_available() else "MPS no")
    return ", ".join(parts)
