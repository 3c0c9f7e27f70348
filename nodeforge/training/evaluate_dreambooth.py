"""The DreamBooth demo: teach nodeforge-shapes the crescent, a shape it cannot draw, and measure it.

    python -m nodeforge.training.evaluate_dreambooth --write-instances DIR [--n 8]   # the subject's pictures
    python -m nodeforge.training.evaluate_dreambooth --write-class-prompts FILE   # the class's 168 prompts
    python -m nodeforge.training.evaluate_dreambooth --lora A.safetensors [--lora B.safetensors ...] [--json F]

The subject is a yellow crescent on a blue background (a moon), drawn by nodeforge.training.data at
random sizes, places and rotations. The measure, for the base model and with each LoRA: how many of
--seeds seeds the judge calls a crescent for --prompt (the instance prompt), and how well the class
prompts ("a red circle on a blue background" and friends: evaluate.prompt_following, --class-samples
combos) keep their colour, shape and background. Seeds are unseen: the class images train on seeds
0.., these start at 500000 and 70000.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from nodeforge.paths import builtin_dir
from nodeforge.training import common, data, evaluate
from nodeforge.training.judge import judge

SUBJECT = {"shape": "crescent", "colour": "yellow", "background": "blue"}
TOKEN_SEED = 500_000


def write_instances(folder: Path, n: int, seed: int) -> None:
    """`n` pictures of the subject at random sizes, places and rotations, as PNGs (no captions:
    train-dreambooth gives them all the instance prompt)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sample = dataclasses.replace(data.random_sample(rng, ("crescent",)), colour=SUBJECT["colour"],
                                     background=SUBJECT["background"])
        Image.fromarray(data.render(sample)).save(folder / f"moon-{i:02d}.png")


def measure(model: Path, lora: Path | None, prompt: str, seeds: int, class_samples: int) -> tuple[dict, np.ndarray]:
    """The token prompt's crescent rate and the class prompts' accuracy, with `lora` or without one."""
    pipe = evaluate.load_pipeline(model, lora)
    images = evaluate.sample(pipe, [prompt] * seeds, [TOKEN_SEED + i for i in range(seeds)])
    verdicts = [judge(im) for im in images]
    classes, class_images = evaluate.prompt_following(pipe, class_samples, seed=7)
    result = {
        "crescent_rate": round(float(np.mean([v.shape == "crescent" for v in verdicts])), 3),
        "subject_rate": round(float(np.mean([(v.shape, v.colour, v.background) == tuple(SUBJECT.values())
                                             for v in verdicts])), 3),
        "token_shapes": {s: sum(v.shape == s for v in verdicts) for s in sorted({v.shape for v in verdicts})},
        "class_prompts": {k: v for k, v in classes.items() if k != "shape_accuracy_by_shape"},
        "class_shape_accuracy_by_shape": classes["shape_accuracy_by_shape"],
    }
    return result, np.concatenate([images[:12], class_images[:12]])


def main(argv: list[str] | None = None) -> int:
    p = common.TrainerParser(prog="python -m nodeforge.training.evaluate_dreambooth",
                             description=__doc__.splitlines()[0])
    p.add_argument("--write-instances", type=Path, metavar="DIR", help="write the subject's pictures and stop")
    p.add_argument("--write-class-prompts", type=Path, metavar="FILE", help="write the class prompts, one a line "
                   "(every 'a <colour> <shape> on a <colour> background' the class measure draws from: "
                   "train-dreambooth --class-prompts FILE), and stop")
    p.add_argument("--n", type=common.COUNT, default=8, help="pictures to write")
    p.add_argument("--model", type=Path, default=builtin_dir("resources") / "models" / "nodeforge-shapes")
    p.add_argument("--lora", type=Path, action="append", default=[], help="a LoRA to measure (repeatable)")
    p.add_argument("--prompt", default="a sks shape", help="the instance prompt")
    p.add_argument("--seeds", type=common.COUNT, default=24)
    p.add_argument("--class-samples", type=common.COUNT, default=48)
    p.add_argument("--seed", type=common.SEED, default=0)
    p.add_argument("--json", type=Path)
    p.add_argument("--grid", type=Path, help="PNG: per model a row of token-prompt images, then class prompts")
    p.add_argument("--threads", type=common.COUNT, default=1)
    args = p.parse_args(argv)
    if args.write_instances:
        write_instances(args.write_instances, args.n, args.seed)
        return 0
    if args.write_class_prompts:
        args.write_class_prompts.write_text("".join(data.class_prompt(*combo) + "\n"
                                                    for combo in evaluate.prompt_combos()), encoding="utf-8")
        return 0
    torch.set_num_threads(args.threads)
    t0, results, rows = time.time(), {"prompt": args.prompt, "seeds": args.seeds, "sampler": "euler 20 steps cfg 5"}, []
    for lora in [None, *args.lora]:
        name = "base" if lora is None else lora.name
        results[name], grid_rows = measure(args.model, lora, args.prompt, args.seeds, args.class_samples)
        rows.append(grid_rows)
        evaluate.log(f"{name}: {json.dumps(results[name])}")
    results["seconds"] = round(time.time() - t0, 1)
    if args.grid:
        evaluate.grid(np.concatenate(rows), columns=12).save(args.grid)
    common.report(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
