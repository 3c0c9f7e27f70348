"""Measure the demo model with the pixel judge: prompt following, VAE PSNR, negative prompts, LoRA.

    python -m nodeforge.training.evaluate --model resources/models/nodeforge-shapes [--lora FILE]
    python -m nodeforge.training.evaluate --samplers [--samples 48]     # every sampler, same prompts
    python -m nodeforge.training.evaluate --lcm LORA [--lcm-steps 4 --lcm-cfg 1]   # an LCM-LoRA vs the base

Sampling uses diffusers' StableDiffusionPipeline with the Euler scheduler, 20 steps, CFG 5, 64x64.
`--samplers` measures prompt following with each of UNetDenoise's samplers (its scheduler built
by the node pack's own table, with the schedule each sampler is usually run with).
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nodeforge.paths import builtin_dir
from nodeforge.training import data
from nodeforge.training.judge import judge
from nodeforge.training.shapes import psnr, to_tensor

STEPS = 20
CFG = 5.0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_pipeline(model: Path, lora: Path | None = None, strength: float = 1.0):
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(model, local_files_only=True, safety_checker=None)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    if lora is not None and _is_peft_layout(lora):
        if strength:   # DoRA files (train-lora --dora) are in diffusers' PEFT layout: diffusers merges them
            pipe.load_lora_weights(str(lora))
            pipe.fuse_lora(lora_scale=strength)
            pipe.unload_lora_weights()
    elif lora is not None:
        from nodeforge.training.lora import TEXT_PREFIX, UNET_PREFIX, apply_kohya_lora, load_kohya

        tensors, _ = load_kohya(lora)
        apply_kohya_lora(pipe.unet, tensors, UNET_PREFIX, strength)
        apply_kohya_lora(pipe.text_encoder, tensors, TEXT_PREFIX, strength)
    return pipe


def _is_peft_layout(lora: Path) -> bool:
    """Whether a LoRA file is in diffusers' PEFT layout (`unet.<module>.lora_A.weight`), as DoRA files are."""
    from safetensors import safe_open

    with safe_open(str(lora), "pt") as f:
        return any(k.startswith(("unet.", "text_encoder.")) for k in f.keys())


def sample(pipe, prompts: list[str], seeds: list[int], negative: list[str] | None = None,
           batch: int = 48, steps: int | None = None, cfg: float | None = None, size: int = 64) -> np.ndarray:
    """(n, size, size, 3) uint8 images; each image's noise comes from its own seeded generator.
    `steps` and `cfg` default to STEPS and CFG."""
    out = []
    for i in range(0, len(prompts), batch):
        gens = [torch.Generator().manual_seed(s) for s in seeds[i:i + batch]]
        with torch.no_grad():
            images = pipe(prompts[i:i + batch], negative_prompt=None if negative is None else negative[i:i + batch],
                          num_inference_steps=steps or STEPS, guidance_scale=CFG if cfg is None else cfg,
                          height=size, width=size,
                          generator=gens, output_type="np").images
        out.append(np.clip(np.rint(images * 255), 0, 255).astype(np.uint8))
    return np.concatenate(out)


def grid(images: np.ndarray, columns: int = 12) -> Image.Image:
    n = len(images)
    rows = math.ceil(n / columns)
    canvas = np.full((rows * 66, columns * 66, 3), 128, np.uint8)
    for k, im in enumerate(images):
        r, c = divmod(k, columns)
        canvas[r * 66 + 1:r * 66 + 65, c * 66 + 1:c * 66 + 65] = im
    return Image.fromarray(canvas)


def prompt_combos() -> list[tuple[str, str, str]]:
    """Every (colour, shape, background) the class prompts "a <colour> <shape> on a <background>
    background" name: 168, the colour never the background's."""
    return [(c, s, b) for c, s, b in itertools.product(data.COLOURS, data.SHAPES, data.COLOURS) if c != b]


def prompt_following(pipe, n: int, seed: int, steps: int | None = None, cfg: float | None = None) -> tuple[dict, np.ndarray]:
    """Accuracy over n (colour, shape, background) combos, each with its own seed (STEPS and CFG
    unless `steps` and `cfg` are given)."""
    combos = prompt_combos()
    rng = np.random.default_rng(seed)
    picks = [combos[i] for i in rng.permutation(len(combos))[:n]] if n <= len(combos) else \
        [combos[i % len(combos)] for i in range(n)]
    prompts = [data.class_prompt(*pick) for pick in picks]
    seeds = [seed * 10_000 + i for i in range(len(picks))]
    images = sample(pipe, prompts, seeds, steps=steps, cfg=cfg)
    verdicts = [judge(im) for im in images]
    ok_colour = [v.colour == c for v, (c, s, b) in zip(verdicts, picks)]
    ok_shape = [v.shape == s for v, (c, s, b) in zip(verdicts, picks)]
    ok_bg = [v.background == b for v, (c, s, b) in zip(verdicts, picks)]
    per_shape = {s: round(float(np.mean([o for o, p in zip(ok_shape, picks) if p[1] == s])), 3) for s in data.SHAPES}
    result = {
        "samples": len(picks),
        "colour_accuracy": round(float(np.mean(ok_colour)), 3),
        "shape_accuracy": round(float(np.mean(ok_shape)), 3),
        "background_accuracy": round(float(np.mean(ok_bg)), 3),
        "all_three_accuracy": round(float(np.mean([a and b and c for a, b, c in zip(ok_colour, ok_shape, ok_bg)])), 3),
        "shape_accuracy_by_shape": per_shape,
    }
    return result, images


def _to_pixels(decoded: torch.Tensor) -> np.ndarray:
    return ((decoded.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def _shape_kept(pixels: np.ndarray, samples: list[data.ShapeSample]) -> dict:
    """How often the judge still sees each drawn shape: overall and per size and shape."""
    kept = [judge(im).shape == s.shape for im, s in zip(pixels, samples)]
    rates = {"all": round(float(np.mean(kept)), 3)}
    for shape, size in itertools.product(data.SHAPES, data.SIZES):
        picked = [k for k, s in zip(kept, samples) if (s.shape, s.size) == (shape, size)]
        if picked:
            rates[f"{size} {shape}"] = round(float(np.mean(picked)), 3)
    return rates


def vae_reconstruction(pipe, n: int, seed: int, latent_noise: float = 0.0) -> tuple[float, dict]:
    """PSNR of n held-out images through the VAE, and how often the judge still sees the drawn
    shape in the reconstruction: the ceiling for the model's shape accuracy, per shape and size.
    With `latent_noise` (std in scaled latent units) the latents are perturbed before decoding,
    as a sampler's never-quite-right latents are: how forgiving the decoder is."""
    images, samples = data.generate(n, seed)
    x = to_tensor(images)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        rec = []
        for i in range(0, n, 64):
            z = pipe.vae.encode(x[i:i + 64]).latent_dist.mode()
            if latent_noise:
                z = z + latent_noise / pipe.vae.config.scaling_factor * torch.randn(z.shape, generator=gen)
            rec.append(pipe.vae.decode(z).sample)
        rec = torch.cat(rec)
    return round(psnr(rec, x), 2), _shape_kept(_to_pixels(rec), samples)


def denoiser_shape_kept(pipe, n: int, seed: int, timesteps=(50, 200, 400)) -> dict:
    """Where the UNet loses shapes: noise held-out squares and triangles to timestep t, predict
    the clean latent in one step (with the full caption, no CFG), decode it and judge it.
    Compare with `vae_reconstruction` at the same noise level: a denoiser should do better than
    decoding the noisy latent as it is."""
    from diffusers import DDPMScheduler

    from nodeforge.training.shapes import encode_prompts

    images, samples = data.generate(3 * n, seed)
    keep = [i for i, s in enumerate(samples) if s.shape != "circle"][:n]
    samples = [samples[i] for i in keep]
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    alphas = scheduler.alphas_cumprod
    scale = pipe.vae.config.scaling_factor
    gen = torch.Generator().manual_seed(seed)
    result = {}
    with torch.no_grad():
        z0 = pipe.vae.encode(to_tensor(images[keep])).latent_dist.mode() * scale
        cond = encode_prompts(pipe.tokenizer, pipe.text_encoder, [data.full_caption(s) for s in samples], "cpu")
        for t in timesteps:
            noise = torch.randn(z0.shape, generator=gen)
            ts = torch.full((len(z0),), t)
            zt = scheduler.add_noise(z0, noise, ts)
            eps = pipe.unet(zt, ts, encoder_hidden_states=cond).sample
            x0 = (zt - (1 - alphas[t]).sqrt() * eps) / alphas[t].sqrt()
            rates = _shape_kept(_to_pixels(pipe.vae.decode(x0 / scale).sample), samples)
            sigma = float(((1 - alphas[t]) / alphas[t]).sqrt())
            result[f"t={t} (noise std {sigma:.2f})"] = rates
    return result


def negative_prompt_rate(pipe, n: int, seed: int) -> dict:
    """'a circle on a white background' with and without negative 'red', same seeds."""
    prompts = ["a circle on a white background"] * n
    seeds = [seed * 10_000 + 5000 + i for i in range(n)]
    plain = [judge(im).colour == "red" for im in sample(pipe, prompts, seeds)]
    negated = [judge(im).colour == "red" for im in sample(pipe, prompts, seeds, negative=["red"] * n)]
    red_seeds = [i for i in range(n) if plain[i]]
    return {
        "seeds": n,
        "red_without_negative": round(float(np.mean(plain)), 3),
        "red_with_negative": round(float(np.mean(negated)), 3),
        "seeds_red_without": len(red_seeds),
        "still_red_with_negative_on_those_seeds": round(float(np.mean([negated[i] for i in red_seeds])), 3)
        if red_seeds else None,
    }


def lora_star_rate(model: Path, lora: Path, n: int, seed: int) -> tuple[dict, np.ndarray]:
    prompt = "a yellow star on a blue background"
    seeds = [seed * 10_000 + 7000 + i for i in range(n)]
    base = load_pipeline(model)
    with_lora = load_pipeline(model, lora, 1.0)
    zero = load_pipeline(model, lora, 0.0)
    base_images = sample(base, [prompt] * n, seeds)
    lora_images = sample(with_lora, [prompt] * n, seeds)
    # Strength 0 against the base drawn in a batch of the same size: one thread's convolutions round a
    # batch of 48 and a batch of 8 differently (pixels 1/255 apart) even with identical weights.
    zero_images, base_first = sample(zero, [prompt] * 8, seeds[:8]), sample(base, [prompt] * 8, seeds[:8])
    weights_equal = all(torch.equal(a, b) for a, b in zip(
        itertools.chain(base.unet.state_dict().values(), base.text_encoder.state_dict().values()),
        itertools.chain(zero.unet.state_dict().values(), zero.text_encoder.state_dict().values())))
    lora_v = [judge(im) for im in lora_images]
    base_v = [judge(im) for im in base_images]
    result = {
        "prompt": prompt,
        "seeds": n,
        "star_rate_with_lora": round(float(np.mean([v.shape == "star" for v in lora_v])), 3),
        "star_rate_without_lora": round(float(np.mean([v.shape == "star" for v in base_v])), 3),
        "five_point_rate_with_lora": round(float(np.mean([v.shape == "star" and v.points == 5 for v in lora_v])), 3),
        "yellow_on_blue_rate_with_lora": round(float(np.mean([v.colour == "yellow" and v.background == "blue"
                                                              for v in lora_v])), 3),
        "strength0_weights_identical": weights_equal,
        "strength0_images_identical": bool(np.array_equal(zero_images, base_first)),
    }
    return result, np.concatenate([base_images[:12], lora_images[:12]])


# The schedule each sampler is measured with: the model's own, or karras where that is the norm.
SAMPLER_SCHEDULES = {"dpmpp_2m": "karras", "dpmpp_sde": "karras", "dpmpp_2m_sde": "karras"}
# LCM is a sampler for latent-consistency distilled models (and LCM LoRAs): few steps, low CFG.
# PLMS's 4th-order extrapolation overshoots at CFG 5 in 20 steps (52% colour right): CFG 3.
SAMPLER_SETTINGS = {"lcm": (6, 1.5), "pndm": (20, 3.0)}


def per_sampler(model: Path, n: int, seed: int) -> dict:
    """Prompt following of every sampler in the node pack's table on the same prompts and seeds."""
    from nodeforge.core.registry import builtin_module

    schedulers = builtin_module("schedulers")
    pipe = load_pipeline(model)
    config = dict(pipe.scheduler.config)
    results = {}
    global STEPS, CFG
    saved = STEPS, CFG
    try:
        for kind in schedulers.SAMPLER_TABLE:
            schedule = SAMPLER_SCHEDULES.get(kind.name, "default")
            STEPS, CFG = SAMPLER_SETTINGS.get(kind.name, saved)
            pipe.scheduler = schedulers.make_scheduler(kind.name, schedule, config, seed)
            if kind.step_kwargs:   # as UNetDenoise calls it
                step = pipe.scheduler.step
                pipe.scheduler.step = lambda *a, _step=step, **k: _step(*a, **kind.step_kwargs, **k)
            t0 = time.time()
            scores, _ = prompt_following(pipe, n, seed)
            scores = {k: v for k, v in scores.items() if k != "shape_accuracy_by_shape"}
            results[kind.name] = {"schedule": schedule, "steps": STEPS, "cfg": CFG, **scores,
                                  "seconds": round(time.time() - t0, 1)}
            log(f"{kind.name}: {results[kind.name]}")
    finally:
        STEPS, CFG = saved
    return results


def lcm_comparison(model: Path, lcm_lora: Path, n: int, seed: int, steps: int = 4,
                   cfg: float = 1.0) -> tuple[dict, list[np.ndarray]]:
    """Prompt following of the LCM-LoRA with the `lcm` sampler at `steps` and `cfg`, beside the base
    with euler at the same steps and at STEPS (CFG 5) and the base with the same sampler and CFG but
    no LoRA, on the same prompts and seeds; seconds per image. Also each run's images, in that order."""
    from nodeforge.core.registry import builtin_module

    runs = {f"base_euler_{steps}_steps": (load_pipeline(model), "euler", steps, CFG),
            f"base_euler_{STEPS}_steps": (load_pipeline(model), "euler", STEPS, CFG),
            f"base_lcm_{steps}_steps": (load_pipeline(model), "lcm", steps, cfg),   # the sampler without the LoRA
            f"lcm_lora_lcm_{steps}_steps": (load_pipeline(model, lcm_lora), "lcm", steps, cfg)}
    results, images = {}, []
    for name, (pipe, sampler, run_steps, run_cfg) in runs.items():
        pipe.scheduler = builtin_module("schedulers").make_scheduler(sampler, "default", dict(pipe.scheduler.config),
                                                                     seed)
        t0 = time.time()
        scores, drawn = prompt_following(pipe, n, seed, steps=run_steps, cfg=run_cfg)
        images.append(drawn)
        results[name] = {"sampler": sampler, "steps": run_steps, "cfg": run_cfg,
                         **scores, "seconds_per_image": round((time.time() - t0) / scores["samples"], 4)}
        log(f"{name}: {results[name]}")
    return results, images


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=builtin_dir("resources") / "models" / "nodeforge-shapes")
    p.add_argument("--lora", type=Path, help="also measure this LoRA's star rate and strength-0 equality")
    p.add_argument("--samples", type=int, default=120, help="prompt x seed combos (>= 96)")
    p.add_argument("--negative-seeds", type=int, default=96)
    p.add_argument("--lora-seeds", type=int, default=48)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--only-lora", action="store_true", help="skip the base-model measurements")
    p.add_argument("--samplers", action="store_true", help="only measure prompt following per sampler")
    p.add_argument("--lcm", type=Path, metavar="LORA", help="only measure this LCM-LoRA (lcm sampler) against the "
                   "base with euler at the same steps and at 20")
    p.add_argument("--lcm-steps", type=int, default=4)
    p.add_argument("--lcm-cfg", type=float, default=1.0)
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--grid", type=Path, help="write a PNG grid of the prompt-following samples")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    results: dict = {"model": str(args.model), "sampler": f"euler, {STEPS} steps, cfg {CFG}, 64x64"}
    t0 = time.time()
    if args.lcm:
        scores, images = lcm_comparison(args.model, args.lcm, args.samples, args.seed, args.lcm_steps, args.lcm_cfg)
        results = {"model": str(args.model), "lcm_lora": str(args.lcm), "samples": args.samples, "seed": args.seed,
                   "lcm": scores}
        if args.grid:   # a row of the first 12 images per run, in the order of `scores`
            grid(np.concatenate([drawn[:12] for drawn in images])).save(args.grid)
    elif args.samplers:
        results = {"model": str(args.model), "per_sampler": per_sampler(args.model, args.samples, args.seed)}
    elif not args.only_lora:
        pipe = load_pipeline(args.model)
        results["prompt_following"], images = prompt_following(pipe, args.samples, args.seed)
        log(f"prompt following: {results['prompt_following']}")
        if args.grid:
            grid(images[:96]).save(args.grid)
        results["vae_psnr_db"], results["vae_shape_kept"] = vae_reconstruction(pipe, 256, 99_999)
        log(f"VAE PSNR (held out): {results['vae_psnr_db']} dB; shape still judged right after "
            f"the VAE round trip: {results['vae_shape_kept']}")
        _, results["vae_shape_kept_latent_noise_0.2"] = vae_reconstruction(pipe, 256, 99_999, latent_noise=0.2)
        results["denoiser_shape_kept"] = denoiser_shape_kept(pipe, 96, 99_999)
        log(f"with latent noise 0.2: {results['vae_shape_kept_latent_noise_0.2']}; "
            f"one-step denoising: {results['denoiser_shape_kept']}")
        results["negative_prompt"] = negative_prompt_rate(pipe, args.negative_seeds, args.seed)
        log(f"negative prompt: {results['negative_prompt']}")
    if args.lora and not (args.samplers or args.lcm):
        results["lora"], lora_images = lora_star_rate(args.model, args.lora, args.lora_seeds, args.seed)
        log(f"lora: {results['lora']}")
        if args.grid:
            grid(lora_images).save(args.grid.with_name(args.grid.stem + "-lora.png"))
    results["seconds"] = round(time.time() - t0, 1)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
