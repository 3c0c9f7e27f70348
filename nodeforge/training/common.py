"""What every trainer's command does alike: threads, seed and device first, the measured numbers last."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor, clip: Any = None, max_norm: float = 1.0) -> None:
    """One step on `loss`: gradients cleared, back-propagated, clipped to `max_norm` over the
    parameters `clip` when given, applied."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(clip, max_norm)
    opt.step()


def due(done: int, every: int, last: int) -> bool:
    """Whether step `done` (counted from 1) logs or checkpoints: every `every` steps and at the last."""
    return done % every == 0 or done == last
