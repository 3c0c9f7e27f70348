"""How fast a `nodeforge train-flow` recipe learns shapes, per step and per wall-clock second: the
memorisation test of the README's train-flow paragraph, kept in the repo.

Builds train-flow's parts exactly as train-flow does (flow.load_base, make_parts, train: the same
loop, LR schedule, EMA and CFG caption drop) and trains them on N generated squares (varied
colours, backgrounds, sizes, positions and rotations; each with its full caption "a <colour> square
on a <background> background"), for --steps steps or for --minutes of training (the loop's time
only; the step count is then sized from a 20-step calibration so the cosine LR schedule ends at
the budget, and the loop stops at the budget whatever happens). Then, for the EMA weights (what
train-flow saves) and the raw weights, it samples 12 of the training captions with
StableDiffusion3Pipeline (20-step flow Euler, CFG 5, as evaluate_flow does) and judges them
(training.judge): squares out of 12, colour and background right out of 12; and the velocity error
(mean squared, fixed noise) at noise levels 0.25 / 0.5 / 0.75 on the training images ("fit") and
on N squares it never saw ("held-out"). The last line is one RESULT line to paste.

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/bench_flow_memorise.py --minutes 10 -- \\
        --threads 1 --lr 2e-3 --qk-norm --levels ddpm --weighting min-snr [--patch 4 --layers 4 ...]

Arguments after `--` are train-flow's own (--patch, --width, --layers, --lr, --batch, --qk-norm,
--levels, --weighting, --ema-decay, --warmup, --steps, --threads, --seed, ...); --out, --work and
--images are not used. Not a test: it prints numbers.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LEVELS = (0.25, 0.5, 0.75)


def squares(n: int, seed: int, shapes: tuple[str, ...] = ("square",)):
    from nodeforge.training import data

    images, samples = data.generate(n, seed, shapes=shapes)
    return images, samples, [data.full_caption(s) for s in samples]


def velocity_error(parts, tokenizer, latents, captions, seed: int = 1234) -> list[float]:
    """Mean squared velocity error at each of LEVELS, with noise the training never drew, the prompt
    as the pipeline gives it (256 zero T5 tokens; the saved model's own attention)."""
    import torch

    from nodeforge.training import flow

    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(latents.shape, generator=g)
    out = []
    with torch.no_grad():
        embeds, pooled = flow.prompt_embeds(parts, tokenizer, captions)
        for s in LEVELS:
            x_t = (1 - s) * latents + s * noise
            pred = parts["transformer"](hidden_states=x_t, timestep=torch.full((len(latents),), s * 1000.0),
                                        encoder_hidden_states=embeds, pooled_projections=pooled, return_dict=False)[0]
            out.append(round(float((pred - (noise - latents)).pow(2).mean()), 4))
    return out


def measure(pipe, parts, tokenizer, train_set, held_out, samples: int) -> dict:
    from nodeforge.training import evaluate
    from nodeforge.training.judge import judge

    latents, captions, truths = train_set
    images = evaluate.sample(pipe, captions[:samples], list(range(samples)), steps=20, cfg=5.0)
    verdicts = [judge(im) for im in images]
    return {
        "squares": sum(v.shape == "square" for v in verdicts),
        "shape": sum(v.shape == t.shape for v, t in zip(verdicts, truths)),
        "colour": sum(v.colour == t.colour for v, t in zip(verdicts, truths)),
        "background": sum(v.background == t.background for v, t in zip(verdicts, truths)),
        "shapes_drawn": [v.shape for v in verdicts],
        "mse_fit": velocity_error(parts, tokenizer, latents, captions),
        "mse_held_out": velocity_error(parts, tokenizer, *held_out[:2]),
    }, images


def calibrate(args, vae, base, latents, captions, tokenizer, steps: int = 20) -> float:
    """Seconds a step of this recipe takes here: the median of `steps` steps after 3 warm-up steps,
    on a throw-away copy of the parts."""
    import statistics

    from nodeforge.training import flow

    trial = argparse.Namespace(**{**vars(args), "steps": steps + 3, "work": None})
    stamps = []

    def stamp(step: int) -> bool:
        stamps.append(time.perf_counter())
        return False

    flow.train(trial, flow.make_parts(trial, vae, base), latents, captions, tokenizer, stop=stamp)
    return statistics.median(b - a for a, b in zip(stamps[3:], stamps[4:]))


def train_for(args, minutes: float | None, vae, base, latents, captions, tokenizer):
    """train-flow's loop for args.steps steps, or for `minutes` with the steps sized to end then:
    (parts, EMA, steps done, seconds, calibrated seconds a step or None)."""
    import torch

    from nodeforge.training import flow

    budget = minutes * 60 if minutes else None
    seconds_per_step = None
    if budget:
        seconds_per_step = calibrate(args, vae, base, latents, captions, tokenizer)
        args.steps = max(1, int(0.98 * budget / seconds_per_step))
        torch.manual_seed(args.seed)   # the measured run starts as train-flow's would
    parts = flow.make_parts(args, vae, base)
    done = []
    t0 = time.perf_counter()

    def stop(step: int) -> bool:
        done.append(step)
        return budget is not None and time.perf_counter() - t0 >= budget

    _, ema = flow.train(args, parts, latents, captions, tokenizer, stop=stop)
    print(file=sys.stderr)
    return parts, ema, done[-1] if done else 0, time.perf_counter() - t0, seconds_per_step


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=64, help="training squares")
    p.add_argument("--minutes", type=float, default=None, help="training wall-clock budget (else train-flow's --steps)")
    p.add_argument("--samples", type=int, default=12, help="training captions sampled and judged")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--shapes", default="square",
                   help="comma-separated shapes of the generated data (circle,square,triangle: the test then measures "
                        "whether the shape word steers the picture, 'shape' = drawn as captioned)")
    p.add_argument("--label", default="", help="a name for the RESULT line")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--grid", type=Path, default=None, help="PNG: EMA samples above raw samples")
    ours = p.parse_args(argv[:split])

    import numpy as np

    from nodeforge.paths import builtin_dir
    from nodeforge.training import common, evaluate, flow

    args = flow.parse_args(["--out", "unused", *argv[split + 1:]])
    args.work = None
    common.start(args.threads, args.seed, "cpu", "bench_flow_memorise")
    base = args.base or builtin_dir("resources") / "models" / "nodeforge-shapes"
    vae, tokenizer = flow.load_base(base, args.context)
    shapes = tuple(ours.shapes.split(","))
    images, truths, captions = squares(ours.n, ours.data_seed, shapes)
    latents = flow.pipeline_latents(vae, images)
    other, _, other_captions = squares(ours.n, ours.data_seed + 1000, shapes)
    held_out = (flow.pipeline_latents(vae, other), other_captions)

    parts, ema, steps, seconds, seconds_per_step = train_for(args, ours.minutes, vae, base, latents, captions, tokenizer)
    pipe = flow.assemble(parts, vae, tokenizer, args.shift)
    pipe.set_progress_bar_config(disable=True)
    train_set = (latents, captions, truths)
    raw, raw_images = measure(pipe, parts, tokenizer, train_set, held_out, ours.samples)
    ema.copy_to(list(parts.values()))
    saved, ema_images = measure(pipe, parts, tokenizer, train_set, held_out, ours.samples)
    recipe = " ".join(argv[split + 1:])
    result = {"label": ours.label, "recipe": recipe, "n": ours.n, "minutes": round(seconds / 60, 2), "steps": steps,
              "planned_steps": args.steps, "seconds_per_step": round(seconds / max(steps, 1), 4),
              "calibrated_seconds_per_step": seconds_per_step and round(seconds_per_step, 4),
              "transformer_parameters": sum(q.numel() for q in parts["transformer"].parameters()),
              "ema": saved, "raw": raw}
    if ours.grid:
        evaluate.grid(np.concatenate([ema_images, raw_images]), ours.samples).save(ours.grid)
    if ours.json:
        ours.json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))

    def brief(r: dict) -> str:
        return (f"squares {r['squares']}/{ours.samples} shape {r['shape']}/{ours.samples} colour {r['colour']}/{ours.samples} "
                f"bg {r['background']}/{ours.samples} mse fit {'/'.join(map(str, r['mse_fit']))} "
                f"held-out {'/'.join(map(str, r['mse_held_out']))}")

    print(f"RESULT {ours.label or recipe} | {result['minutes']} min, {steps} steps, {result['seconds_per_step']} s/step | "
          f"EMA: {brief(saved)} | raw: {brief(raw)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
