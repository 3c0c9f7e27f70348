"""What a demo-model UNet training step costs, per architecture, and how many steps the 90-minute
recipe can afford (run on demand: `python benchmarks/bench_demo_unet.py [--threads 2]`).

Each row times forward + backward + AdamW of a `models.make_unet` UNet at the trainer's batch (32
latents of 4x16x16, 77 text tokens): the median of interleaved rounds, after two warm-up steps. The budget column assumes the
UNet stage keeps the ~3,800 s that the shipped recipe gives it, and ignores the text encoder
and EMA (under 10% of a trainer step, profiled). The first row is the shipped architecture.
Shape accuracy rose from 38% to 62% when the shipped UNet got 10,700 steps instead of 6,700,
so the step count is what these rows decide.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from nodeforge.training import models  # noqa: E402

UNET_BUDGET_S = 3800
CANDIDATES = [  # (block_out_channels, attention_from)
    ((64, 128, 128), 1),  # shipped: attention at 8x8 and in the 4x4 mid block
    ((32, 128, 128), 1),
    ((64, 128, 128), 2),  # attention (self and cross) only in the mid block
    ((32, 96, 128), 1),
    ((64, 96, 96), 1),
    ((32, 64, 128), 1),
]


def make_step(channels, attention_from: int):
    """One training step of a fresh UNet, and its size in millions of parameters."""
    torch.manual_seed(0)
    unet = models.make_unet(channels, 1, attention_from=attention_from)
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    z = torch.randn(32, models.LATENT_CHANNELS, 16, 16)
    t = torch.randint(0, 1000, (32,))
    text = torch.randn(32, 77, models.TEXT_HIDDEN)

    def step():
        opt.zero_grad(set_to_none=True)
        unet(z, t, encoder_hidden_states=text).sample.pow(2).mean().backward()
        opt.step()

    return step, sum(p.numel() for p in unet.parameters()) / 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per architecture (median kept)")
    p.add_argument("--steps", type=int, default=3, help="steps per round")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    steps = [make_step(channels, attention_from) for channels, attention_from in CANDIDATES]
    for step, _ in steps:  # warm-up
        step()
        step()
    # Rounds interleave the architectures, so a slow spell of the machine hits them all alike.
    times: list[list[float]] = [[] for _ in CANDIDATES]
    for _ in range(args.rounds):
        for (step, _), out in zip(steps, times):
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            out.append((time.perf_counter() - start) / args.steps)
    base = statistics.median(times[0])
    print(f"{'channels':16s} {'attention':>10s} {'s/step':>7s} {'ratio':>6s} {'M params':>8s} {'steps in budget':>16s}")
    for (channels, attention_from), (_, params), dts in zip(CANDIDATES, steps, times):
        dt = statistics.median(dts)
        where = "8x8+mid" if attention_from == 1 else "mid only"
        print(f"{str(channels):16s} {where:>10s} {dt:7.3f} {dt / base:6.2f} {params:8.2f} {UNET_BUDGET_S / dt:16,.0f}")


if __name__ == "__main__":
    main()
