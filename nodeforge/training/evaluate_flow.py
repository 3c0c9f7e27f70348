"""Measure the demo flow model (nodeforge-shapes-flow) with the pixel judge, next to the UNet demo
model on the same prompts and seeds: prompt following at 20 and at 8 steps, the negative prompt,
and the wall time per image.

    python -m nodeforge.training.evaluate_flow [--model resources/models/nodeforge-shapes-flow]
        [--samples 120] [--json FILE] [--grid FILE]
    python -m nodeforge.training.evaluate_flow --checkpoint -- <train-flow arguments with --work>

The flow model samples with StableDiffusion3Pipeline and its own scheduler (flow-matching Euler,
the shift in its config); the UNet model with StableDiffusionPipeline and Euler. Both at 64x64,
the same CFG. `--checkpoint` measures a running training's EMA weights instead of a saved folder.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from nodeforge.paths import builtin_dir
from nodeforge.training import evaluate

MODELS = builtin_dir("resources") / "models"


def load_flow(model: Path):
    from diffusers import StableDiffusion3Pipeline

    pipe = StableDiffusion3Pipeline.from_pretrained(str(model), local_files_only=True,
                                                    text_encoder_3=None, tokenizer_3=None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def measure(pipe, name: str, n: int, seed: int, steps: int, cfg: float) -> tuple[dict, np.ndarray]:
    t0 = time.time()
    scores, images = evaluate.prompt_following(pipe, n, seed, steps=steps, cfg=cfg)
    scores["seconds_per_image"] = round((time.time() - t0) / n, 3)
    evaluate.log(f"{name}, {steps} steps, cfg {cfg}: {scores}")
    return scores, images


def side_by_side(unet_images: np.ndarray, flow_images: np.ndarray, columns: int = 12):
    """Rows of 12: the UNet model's images above the flow model's for the same prompts and seeds."""
    rows = []
    for i in range(0, min(len(unet_images), len(flow_images)), columns):
        rows += [unet_images[i:i + columns], flow_images[i:i + columns]]
    return evaluate.grid(np.concatenate(rows), columns)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    train_args = argv[argv.index("--") + 1:] if "--" in argv else None
    argv = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=MODELS / "nodeforge-shapes-flow")
    p.add_argument("--unet", type=Path, default=MODELS / "nodeforge-shapes", help="the UNet model to compare with")
    p.add_argument("--checkpoint", action="store_true", help="measure the checkpoint of the train-flow run after --")
    p.add_argument("--samples", type=int, default=120, help="prompt x seed combos")
    p.add_argument("--cfg", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--skip-unet", action="store_true")
    p.add_argument("--json", type=Path)
    p.add_argument("--grid", type=Path, help="PNG: the UNet model above the flow model, both at 8 steps")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.checkpoint:
        from nodeforge.training.flow import checkpoint_pipeline

        flow, step = checkpoint_pipeline(train_args or [])
        flow.set_progress_bar_config(disable=True)
        results: dict = {"model": f"checkpoint at step {step}"}
    else:
        flow, results = load_flow(args.model), {"model": str(args.model)}
    results["cfg"], results["size"] = args.cfg, "64x64"
    for steps in (20, 8):
        results[f"flow_{steps}_steps"], images = measure(flow, "flow", args.samples, args.seed, steps, args.cfg)
        flow8 = images
    results["flow_negative_prompt"] = evaluate.negative_prompt_rate(flow, 48, args.seed)
    if not args.skip_unet:
        unet = evaluate.load_pipeline(args.unet)
        for steps in (20, 8):
            results[f"unet_{steps}_steps"], images = measure(unet, "unet", args.samples, args.seed, steps, args.cfg)
        if args.grid:
            side_by_side(images[:48], flow8[:48]).save(args.grid)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
