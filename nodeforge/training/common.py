"""What every trainer's command does alike: threads, seed and device first, the measured numbers last."""
from __future__ import annotations

import json
from pathlib import Path

import torch


def start(threads: int, seed: int, device: str | None = None, name: str = "train") -> torch.device | None:
    """Set torch's CPU threads and global seed; the torch device for `device` (cpu, cuda, mps, auto),
    or a one-line SystemExit naming the command when it is not available here."""
    from nodeforge.devices import torch_device

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    if device is None:
        return None
    try:
        return torch_device(device)
    except ValueError as exc:
        raise SystemExit(f"{name}: {exc}") from None


def report(numbers: dict, json_path: Path | None) -> None:
    """The measured numbers on stdout, and in `json_path` too when given."""
    text = json.dumps(numbers, indent=1)
    print(text)
    if json_path:
        json_path.write_text(text + "\n", encoding="utf-8")
