"""What a trainer needs besides its loop to be run from the editor's Train dialog (and to survive a
long command-line run): a --work folder, sample images, and a clean stop.

--work DIR      a checkpoint (DIR/checkpoint.pt: the trained tensors, the optimizer, the step and
                the batch generator) every --save-every steps, at the last step and when the run is
                stopped; the same command started again with the same --work continues from it, with
                the same batches and noise as an unbroken run (and --steps may be raised to train on).
--sample-every  every N steps (and at the last) the --sample-prompt drawn from --sample-seed (Euler,
                --sample-steps steps, CFG 5) with the weights as they are, written atomically as
                DIR/samples/step-NNNNNN.png; the same seed every time, so the samples show the
                training, not the noise.
Stop            SIGTERM or Ctrl+C ends the step under way, writes the checkpoint and exits with
                status 128 + the signal number, naming the step and the folder.

The lines on stderr are what the dialog reads: the Progress bar (`PROGRESS`) and `NAME: sample
step N: PATH` (`SAMPLE`). Checkpoints hold tensors and plain values only (torch.load with
weights_only), never pickled code.
"""
from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from nodeforge.training import common

CHECKPOINT = "checkpoint.pt"
SAMPLES = "samples"
SAMPLE_CFG = 5.0
# The Progress bar's line ("train-lora [###...] 12/500 loss 0.1234 ...") and the sample line.
PROGRESS = re.compile(r"\] (\d+)/(\d+) loss (nan|inf|-?[\d.]+(?:e-?\d+)?)")
SAMPLE = re.compile(r"^[\w-]+: sample step (\d+): (.+)$")


def add_arguments(p: argparse.ArgumentParser, prompt_help: str = "") -> None:
    """--work, --save-every and the sample options, on a trainer's parser."""
    p.add_argument("--work", metavar="DIR", type=Path, default=None,
                   help="checkpoint folder: written every --save-every steps and when the run is stopped "
                        "(SIGTERM, Ctrl+C); the same command run again continues from it")
    p.add_argument("--save-every", metavar="N", type=common.COUNT, default=100,
                   help="steps between checkpoints (with --work)")
    p.add_argument("--sample-every", metavar="N", type=common.whole(0), default=0,
                   help="draw --sample-prompt every N steps into WORK/samples/step-NNNNNN.png (0: never; "
                        "needs --work)")
    p.add_argument("--sample-prompt", metavar="TEXT", default="", help="the sample images' prompt" + prompt_help)
    p.add_argument("--sample-seed", metavar="N", type=common.SEED, default=0,
                   help="the sample images' seed (the same every time, so they show the training)")
    p.add_argument("--sample-steps", metavar="N", type=common.whole(1, 200), default=20,
                   help="sampling steps of each sample image (Euler)")


def check_arguments(args: argparse.Namespace) -> None:
    """The sample options need a --work folder, which must be a folder (made when missing)."""
    if args.sample_every and args.work is None:
        raise common.TrainingInputError("--sample-every writes its images into the --work folder; give --work DIR")
    if args.work is not None:
        if args.work.exists() and not args.work.is_dir():
            raise common.TrainingInputError(f"--work {args.work} is a file; give a folder for the checkpoint")
        args.work.mkdir(parents=True, exist_ok=True)


def differences(saved: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """What a checkpoint's config says against this run's, one "key saved (this run: value)" each; a key
    the checkpoint lacks (an option added since it was written, e.g. train-dreambooth's --class-cfg)
    is said as not recorded, not as None."""
    return [f"{key} {saved[key]!r} (this run: {value!r})" if key in saved
            else f"{key} not recorded (an older checkpoint; this run: {value!r})"
            for key, value in config.items() if saved.get(key) != value]


class Session:
    """One trainer run's checkpoint, samples and stop request.

    `config` is what a checkpoint must match to be continued (the method, the rank, ...): a
    --work folder of another run is refused naming what differs, never silently mixed."""

    def __init__(self, name: str, args: argparse.Namespace, config: dict[str, Any]) -> None:
        self.name, self.args, self.config = name, args, config
        self.work: Path | None = args.work
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    # -- the stop request ------------------------------------------------------------------------------
    def __enter__(self) -> "Session":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._stop)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _stop(self, signum: int, frame: Any) -> None:
        if self.signal is not None:          # asked twice: stop now
            raise KeyboardInterrupt
        self.signal = signum

    # -- the checkpoint --------------------------------------------------------------------------------
    def resume(self) -> dict[str, Any] | None:
        """The checkpoint in --work, checked against this run's config; None when there is none."""
        import torch

        if self.work is None or not (self.work / CHECKPOINT).is_file():
            return None
        path = self.work / CHECKPOINT
        try:
            state = torch.load(path, weights_only=True, map_location="cpu")
        except Exception as exc:  # truncated, or not a torch file
            raise common.TrainingInputError(f"--work {self.work}: {CHECKPOINT} is not a readable checkpoint "
                                            f"({exc}); remove it to start over") from None
        differ = differences(state.get("config", {}), self.config)
        if differ:
            raise common.TrainingInputError(f"--work {self.work} holds a checkpoint of another run: "
                                            f"{', '.join(differ)}; use another --work folder or the same settings")
        print(f"{self.name}: resuming at step {state['step']} from {path}", file=sys.stderr)
        return state

    def save(self, state: dict[str, Any]) -> None:
        import io

        import torch

        from nodeforge.core.files import atomic_write_bytes

        assert self.work is not None
        buffer = io.BytesIO()
        torch.save({**state, "config": self.config}, buffer)
        atomic_write_bytes(self.work / CHECKPOINT, buffer.getvalue())

    def after_step(self, step: int, total: int, state: Callable[[], dict[str, Any]],
                   sample: Callable[[Path], None] | None) -> None:
        """After step `step` (from 1): the checkpoint, the sample image, and the stop when asked."""
        a = self.args
        if self.work is not None and (common.due(step, a.save_every, total) or self.signal is not None):
            self.save({**state(), "step": step})
        if a.sample_every and sample is not None and common.due(step, a.sample_every, total):
            path = self.work / SAMPLES / f"step-{step:06d}.png"
            sample(path)
            # On its own line: the progress bar's line has no newline until the last step.
            print(f"{'' if step == total else chr(10)}{self.name}: sample step {step}: {path}", file=sys.stderr,
                  flush=True)
        if self.signal is not None and step < total:
            where = f"; the checkpoint is in {self.work}: run the same command again to continue" if self.work else ""
            print(f"\n{self.name}: stopped at step {step} of {total}{where}", file=sys.stderr, flush=True)
            raise SystemExit(128 + self.signal)


def sample_image(parts: dict[str, Any], path: Path, prompt: str, seed: int, size: int, steps: int,
                 embeds: tuple[Any, Any] | None = None) -> None:
    """`prompt` (or the prompt embeddings `embeds`: cond, uncond) drawn by the parts as they are now
    (Euler, CFG 5, `steps` steps, `size` pixels a side) from `seed`, written atomically as a PNG;
    the UNet and text encoder go back to the training mode they were in."""
    import io

    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    from nodeforge.core.files import atomic_write_bytes

    unet, text_encoder = parts["unet"], parts["text_encoder"]
    modes = unet.training, text_encoder.training
    pipe = StableDiffusionPipeline(vae=parts["vae"], text_encoder=text_encoder, tokenizer=parts["tokenizer"],
                                   unet=unet, scheduler=EulerDiscreteScheduler.from_config(parts["scheduler"].config),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    unet.eval()
    text_encoder.eval()
    text = {"prompt": prompt} if embeds is None else {"prompt_embeds": embeds[0], "negative_prompt_embeds": embeds[1]}
    try:
        with torch.no_grad():
            image = pipe(**text, num_inference_steps=steps, guidance_scale=SAMPLE_CFG, height=size, width=size,
                         generator=torch.Generator().manual_seed(seed)).images[0]
    finally:
        unet.train(modes[0])
        text_encoder.train(modes[1])
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
