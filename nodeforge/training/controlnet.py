"""Train the demo ControlNet `shapes-outline`: a white outline on black steers where the demo model
draws its shape.

    nodeforge train-controlnet --out resources/controlnet/shapes-outline [--steps N ...]
    nodeforge train-controlnet --evaluate resources/controlnet/shapes-outline   (measure a saved one)

The ControlNet starts as a copy of the base UNet's encoder half (diffusers'
`ControlNetModel.from_unet`), whose zero convolutions make it add nothing at first, so training
starts from the base model's own drawing. The UNet, the VAE and the text encoder stay frozen: the
loss is the base model's denoising loss with the ControlNet's residuals added, so the gradient
flows through the frozen UNet's decoder into the ControlNet.

Training data come from the demo data generator (nodeforge.training.data): random shapes, colours,
sizes, positions and rotations, with captions whose attributes are dropped at random. Each image's
control image is what the built-in ImageToEdges node (default thresholds) makes of it, so a
workflow that runs ImageToEdges on a demo image hands the ControlNet exactly what it learned from.
The conditioning embedding downsamples 4x (three widths, two stride-2 convolutions), the demo
VAE's factor: the control image is taken at the image's resolution, 64x64 for a 16x16 latent.

Quality (`--evaluate`): with the prompt "a red shape on a blue background", the outline of a
circle, square or triangle at a random position, size and rotation (48 cases from a seed never used
for training, 16 per shape), Euler, 20 steps, CFG 5: the IoU of the drawn shape's mask (the judge's
`shape_mask`) with the filled outline, against the base model without the ControlNet on the same
seeds.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nodeforge.training import common, data
from nodeforge.training.common import TrainingInputError

CONDITIONING_CHANNELS = (16, 32, 64)   # three widths: two stride-2 convolutions, 64 px -> 16 latent px
EDGE_THRESHOLDS = (0.4, 0.8)           # ImageToEdges' defaults
PROMPT = "a red shape on a blue background"
EVAL_SEED = 4_242_000                  # never used for training images
EVAL_CASES = 48
STEPS, CFG = 20, 5.0
IOU_TARGET, SHARE_TARGET = 0.8, 0.9
# What train-controlnet writes into --out; anything else there (a model card, pictures) is the user's.
OWN_FILES = ("config.json", "diffusion_pytorch_model.safetensors", "training.json", "evaluation.json")


# -- data ---------------------------------------------------------------------------------------------------
def outlines(images: np.ndarray, low: float = EDGE_THRESHOLDS[0], high: float = EDGE_THRESHOLDS[1]) -> torch.Tensor:
    """What ImageToEdges makes of uint8 images [n, 64, 64, 3]: edges [n, 64, 64] in {0, 1}."""
    from nodeforge.core.registry import builtin_module

    edges = builtin_module("edges")
    x = torch.from_numpy(np.ascontiguousarray(images).copy()).float().div(255.0)
    return torch.cat([edges.canny(x[i:i + 256], low, high) for i in range(0, len(x), 256)])


def filled(edge: np.ndarray) -> np.ndarray:
    """The region an outline encloses, with the outline: everything the frame's border cannot reach
    through non-edge pixels (4-connected flood fill)."""
    h, w = edge.shape
    outside = np.zeros((h, w), bool)
    stack = [(y, x) for y in range(h) for x in (0, w - 1)] + [(y, x) for x in range(w) for y in (0, h - 1)]
    while stack:
        y, x = stack.pop()
        if 0 <= y < h and 0 <= x < w and not outside[y, x] and not edge[y, x]:
            outside[y, x] = True
            stack += [(y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)]
    return ~outside


def training_set(n: int, seed: int, empty_rate: float) -> tuple[np.ndarray, list[str]]:
    """n random demo images (uint8) and their captions (attributes dropped at random)."""
    rng = np.random.default_rng(seed)
    samples = [data.random_sample(rng) for _ in range(n)]
    captions = [data.caption(s, rng, empty_rate) for s in samples]
    return np.stack([data.render(s) for s in samples]), captions


def eval_cases(n: int = EVAL_CASES, seed: int = EVAL_SEED) -> list[data.ShapeSample]:
    """n held-out shapes, circle, square and triangle in turn, at random sizes (the demo model's
    small and large ranges), positions that fit the frame, rotations and colours."""
    rng = np.random.default_rng(seed)
    return [data.random_sample(rng, (data.SHAPES[i % len(data.SHAPES)],)) for i in range(n)]


# -- evaluation ---------------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(controlnet_path: Path | None, base: Path, cases: int = EVAL_CASES, steps: int = STEPS,
             cfg: float = CFG, model=None) -> dict:
    """IoU of the drawn shape with the filled outline on `cases` held-out outlines, with the
    ControlNet (a saved folder, or `model`) and, for comparison, without it."""
    from diffusers import (ControlNetModel, EulerDiscreteScheduler, StableDiffusionControlNetPipeline,
                           StableDiffusionPipeline)
    from PIL import Image

    from nodeforge.training.judge import mask_iou, shape_mask

    samples = eval_cases(cases)
    sources = np.stack([data.render(s) for s in samples])
    edges = outlines(sources).numpy() > 0.5
    targets = [filled(e) for e in edges]
    ceiling = [mask_iou(shape_mask(src), t) for src, t in zip(sources, targets)]
    hints = [Image.fromarray((e * 255).astype(np.uint8)).convert("RGB") for e in edges]

    plain = StableDiffusionPipeline.from_pretrained(base, local_files_only=True, safety_checker=None,
                                                    feature_extractor=None, requires_safety_checker=False)
    plain.scheduler = EulerDiscreteScheduler.from_config(plain.scheduler.config)
    plain.set_progress_bar_config(disable=True)
    if model is None:
        model = ControlNetModel.from_pretrained(str(controlnet_path), local_files_only=True)
    model = model.eval()
    controlled = StableDiffusionControlNetPipeline(**plain.components, controlnet=model)
    controlled.set_progress_bar_config(disable=True)

    def draw(pipe, **extra) -> list[np.ndarray]:
        out = []
        for start in range(0, cases, 16):
            seeds = range(start, min(start + 16, cases))
            out += list(pipe([PROMPT] * len(seeds), height=64, width=64, num_inference_steps=steps,
                             guidance_scale=cfg, generator=[torch.Generator().manual_seed(s) for s in seeds],
                             output_type="np", **{k: v[start:start + len(seeds)] for k, v in extra.items()}).images)
        return [np.clip(np.rint(im * 255), 0, 255).astype(np.uint8) for im in out]

    result = {"prompt": PROMPT, "cases": cases, "eval_seed": EVAL_SEED, "sampler": f"euler, {steps} steps, cfg {cfg}",
              "iou_target": IOU_TARGET,
              "ceiling_mean_iou": round(float(np.mean(ceiling)), 4)}
    images = {}
    for name, pipe, extra in (("controlnet", controlled, {"image": hints}), ("base", plain, {})):
        drawn = draw(pipe, **extra)
        images[name] = drawn
        ious = np.array([mask_iou(shape_mask(im), t) for im, t in zip(drawn, targets)])
        per_shape = {s: round(float((ious[[c.shape == s for c in samples]] >= IOU_TARGET).mean()), 4)
                     for s in data.SHAPES}
        result[name] = {"share_iou_at_least_target": round(float((ious >= IOU_TARGET).mean()), 4),
                        "mean_iou": round(float(ious.mean()), 4), "median_iou": round(float(np.median(ious)), 4),
                        "min_iou": round(float(ious.min()), 4), "share_by_shape": per_shape,
                        "ious": [round(float(v), 3) for v in ious]}
    result["cases_detail"] = [{"shape": s.shape, "radius": round(s.radius, 2),
                               "centre": [round(s.centre[0], 2), round(s.centre[1], 2)]} for s in samples]
    result["_images"] = images
    result["_hints"] = edges
    return result


def contact_sheet(result: dict, path: Path, n: int = 12) -> None:
    """Rows: the outline, the ControlNet's image, the base's image, for the first n cases."""
    from PIL import Image

    rows = [np.repeat((result["_hints"][:n, ..., None] * 255).astype(np.uint8), 3, -1),
            np.stack(result["_images"]["controlnet"][:n]), np.stack(result["_images"]["base"][:n])]
    sheet = np.concatenate([np.concatenate(list(r), axis=1) for r in rows], axis=0)
    Image.fromarray(sheet).resize((sheet.shape[1] * 2, sheet.shape[0] * 2), Image.NEAREST).save(path)


def public(result: dict) -> dict:
    return {k: v for k, v in result.items() if not k.startswith("_")}


# -- training -----------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = common.TrainerParser(
        prog="nodeforge train-controlnet",
        description="Train the demo ControlNet shapes-outline for nodeforge-shapes: a white outline on black "
                    "(what ImageToEdges makes of a demo image) decides where the shape is drawn. Writes a "
                    "diffusers ControlNet folder (config.json + safetensors) that ControlNetLoader reads.")
    p.add_argument("--out", type=Path, help="output folder: new, empty, or one train-controlnet wrote before "
                   "(replaced in one step when training ends; other files in it, such as README.md, are kept)")
    p.add_argument("--evaluate", metavar="FOLDER", type=Path,
                   help="only measure the saved ControlNet in FOLDER (no training)")
    p.add_argument("--base", default="nodeforge-shapes", help="diffusers folder (or bundled model name)")
    p.add_argument("--images", metavar="N", type=common.COUNT, default=6000, help="generated training images")
    p.add_argument("--steps", metavar="N", type=common.COUNT, default=2300, help="optimizer steps")
    p.add_argument("--batch", metavar="N", type=common.COUNT, default=8, help="images per step")
    p.add_argument("--lr", metavar="RATE", type=common.RATE, default=5e-4,
                   help="AdamW learning rate (after a linear warm-up, cosine decay to a tenth)")
    p.add_argument("--warmup", metavar="N", type=common.whole(0), default=50, help="warm-up steps")
    p.add_argument("--empty-rate", metavar="F", type=common.SHARE, default=0.1,
                   help="share of empty captions (the ControlNet also steers the unconditional half of CFG)")
    p.add_argument("--noise-offset", metavar="STD", type=common.STD, default=0.15,
                   help="per-channel noise offset, as the base model was trained")
    p.add_argument("--conditioning-channels", metavar="N", type=common.whole(1, 1024), nargs="+",
                   default=list(CONDITIONING_CHANNELS),
                   help="widths of the control image's embedding; each after the first halves the resolution, "
                        "so 3 widths give the demo VAE's factor 4")
    p.add_argument("--cases", metavar="N", type=common.COUNT, default=EVAL_CASES, help="held-out outlines evaluated")
    p.add_argument("--no-evaluate", action="store_true", help="skip the evaluation after training")
    p.add_argument("--seed", metavar="N", type=common.SEED, default=0, help="seed of the images, batches and noise")
    p.add_argument("--threads", metavar="N", type=common.COUNT, default=2, help="CPU threads torch may use")
    p.add_argument("--json", type=Path, help="write the measured numbers here too")
    p.add_argument("--sheet", type=Path, help="write a PNG of outlines and drawn images (first 12 cases)")
    args = p.parse_args(argv)
    if (args.out is None) == (args.evaluate is None):
        p.error("give --out (train) or --evaluate FOLDER (measure)")
    return args


def check_inputs(args: argparse.Namespace) -> Path:
    """The base model's folder, after every argument and file is checked (before anything loads)."""
    base = common.resolve_base(args.base, "train-controlnet", common.PIPELINE_PARTS + ("model_index.json",))
    common.writable_output(args.json, "numbers (JSON)", "--json")
    common.writable_output(args.sheet, "contact sheet (PNG)", "--sheet")
    if args.evaluate is not None:
        saved_controlnet(args.evaluate)
        return base
    check_out(args.out)
    factor = _vae_factor(base)
    widths = len(args.conditioning_channels)
    if factor and 2 ** (widths - 1) != factor:
        raise TrainingInputError(f"--conditioning-channels: {widths} widths shrink the control image "
                                 f"{2 ** (widths - 1)}x, but {base.name}'s latents are 1/{factor} of the image: "
                                 f"give {factor.bit_length()} widths")
    return base


def _vae_factor(base: Path) -> int | None:
    try:
        channels = json.loads((base / "vae" / "config.json").read_text(encoding="utf-8"))["block_out_channels"]
        return 2 ** (len(channels) - 1)
    except (OSError, ValueError, KeyError, TypeError):
        return None   # the VAE's loader says what is wrong with it


def saved_controlnet(folder: Path) -> Path:
    """`folder` when it holds a diffusers ControlNet with safetensors weights (for --evaluate)."""
    if not folder.is_dir():
        raise TrainingInputError(f"--evaluate {folder}: no such folder; give a ControlNet folder train-controlnet "
                                 "wrote")
    if not _is_controlnet_config(folder / "config.json"):
        raise TrainingInputError(f"--evaluate {folder} is not a ControlNet folder (no config.json of a "
                                 "ControlNetModel)")
    common.read_tensors(folder / "diffusion_pytorch_model.safetensors", "ControlNet")
    return folder


def _is_controlnet_config(path: Path) -> bool:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("_class_name") == "ControlNetModel"


def check_out(out: Path) -> None:
    """Refuse an --out that training would replace but train-controlnet did not write: a file, a
    symbolic link, or a folder with things in it that is not a ControlNet with its training.json."""
    if out.is_symlink():
        raise TrainingInputError(f"--out {out} is a symbolic link; give the folder itself")
    if not out.exists():
        return
    if not out.is_dir():
        raise TrainingInputError(f"--out {out} is a file; give a new folder (or one train-controlnet wrote)")
    if any(out.iterdir()) and not ((out / "training.json").is_file() and _is_controlnet_config(out / "config.json")):
        raise TrainingInputError(f"--out {out} holds files and is not a ControlNet train-controlnet wrote (no "
                                 "training.json beside a ControlNetModel config.json); give a new or empty folder")


def report(result: dict, args) -> None:
    numbers = public(result)
    common.report(numbers, args.json)
    if args.sheet:
        contact_sheet(result, args.sheet)
    for name in ("controlnet", "base"):
        r = numbers[name]
        print(f"train-controlnet: {name}: IoU >= {IOU_TARGET} in {r['share_iou_at_least_target']:.1%} of "
              f"{numbers['cases']} cases, mean IoU {r['mean_iou']:.3f}", file=sys.stderr)


@common.guarded("train-controlnet")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    common.start(args.threads, args.seed)
    base = check_inputs(args)
    if args.evaluate is not None:
        report(evaluate(args.evaluate, base, args.cases), args)
        return 0

    t0 = time.time()
    parts = common.load_base(base, torch.device("cpu"))
    for name in ("unet", "text_encoder"):
        parts[name].eval()
    prepared = prepare_data(args, parts)
    prep_s = time.time() - t0
    print(f"train-controlnet: {prepared['images']} images, {prepared['captions']} distinct captions, latents and "
          f"outlines in {prep_s:.0f} s", file=sys.stderr)
    controlnet, losses, train_s = train_controlnet(args, parts, prepared)

    controlnet.eval()
    numbers = {"steps": args.steps, "batch": args.batch, "lr": args.lr, "warmup": args.warmup, "images": args.images,
               "empty_rate": args.empty_rate, "noise_offset": args.noise_offset, "seed": args.seed,
               "conditioning_channels": list(args.conditioning_channels), "threads": args.threads,
               "prepare_s": round(prep_s, 1), "train_s": round(train_s, 1),
               "s_per_step": round(train_s / max(args.steps, 1), 3),
               "loss_first_100": round(float(np.mean(losses[:100])), 4),
               "loss_last_100": round(float(np.mean(losses[-100:])), 4)}
    save_controlnet(controlnet, numbers, args.out)
    print(f"train-controlnet: wrote {args.out} after {train_s:.0f} s of training "
          f"({numbers['s_per_step']} s a step)", file=sys.stderr)
    if not args.no_evaluate:
        result = evaluate(None, base, args.cases, model=controlnet)
        result["training"] = numbers
        report(result, args)
        (args.out / "evaluation.json").write_text(json.dumps(public(result), indent=1) + "\n", encoding="utf-8")
    return 0


@torch.no_grad()
def prepare_data(args, parts: dict) -> dict:
    """The training set as tensors: outlines (1 byte a pixel), scaled latents, and each distinct
    caption's text states encoded once (`table`, indexed by `caption_index`)."""
    images, captions = training_set(args.images, 1000 + args.seed, args.empty_rate)
    tokenizer, text_encoder = parts["tokenizer"], parts["text_encoder"]
    hints = (outlines(images) > 0.5).to(torch.uint8)          # [n, 64, 64], 1 byte a pixel
    latents = common.encode_images(parts["vae"], images, torch.device("cpu"))
    unique = sorted(set(captions))
    ids = tokenizer(unique, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    table = torch.cat([text_encoder(ids[i:i + 64])[0] for i in range(0, len(ids), 64)])
    caption_index = torch.tensor([unique.index(c) for c in captions])
    return {"hints": hints, "latents": latents, "table": table, "caption_index": caption_index,
            "images": len(images), "captions": len(unique)}


def train_controlnet(args, parts: dict, prepared: dict) -> tuple[Any, list[float], float]:
    """A ControlNet made from the frozen UNet (`ControlNetModel.from_unet`), after `args.steps` AdamW
    steps on the base model's min-SNR denoising loss with its residuals added; the loss of each
    step, and the seconds the steps took."""
    from diffusers import ControlNetModel

    from nodeforge.training.models import min_snr_loss, training_noise

    unet, noise_scheduler = parts["unet"], parts["scheduler"]
    latents, hints, table, caption_index = (prepared[k] for k in ("latents", "hints", "table", "caption_index"))
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=tuple(args.conditioning_channels))
    controlnet.train()
    opt = torch.optim.AdamW(controlnet.parameters(), lr=args.lr, weight_decay=1e-2)
    gen = torch.Generator().manual_seed(args.seed)
    alphas = noise_scheduler.alphas_cumprod
    snr = alphas / (1 - alphas)
    progress = common.Progress(args.steps, name="train-controlnet")
    losses: list[float] = []
    t1 = time.time()
    for step in range(args.steps):
        idx = torch.randint(len(latents), (args.batch,), generator=gen)
        z0 = latents[idx]
        noise = training_noise(z0.shape, gen, args.noise_offset)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(z0),), generator=gen)
        cond = table[caption_index[idx]]
        hint = hints[idx].float()[:, None].expand(-1, 3, -1, -1)
        noisy = noise_scheduler.add_noise(z0, noise, t)
        down, mid = controlnet(noisy, t, encoder_hidden_states=cond, controlnet_cond=hint, return_dict=False)
        pred = unet(noisy, t, encoder_hidden_states=cond, down_block_additional_residuals=down,
                    mid_block_additional_residual=mid).sample
        loss = min_snr_loss(pred, noise, snr[t])              # Min-SNR-5, as the base model was trained
        decay = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for group in opt.param_groups:
            group["lr"] = args.lr * min(1.0, (step + 1) / max(args.warmup, 1)) * decay
        common.optimizer_step(opt, loss, clip=controlnet.parameters())
        losses.append(loss.item())
        progress.update(step + 1, float(np.mean(losses[-50:])))
    return controlnet, losses, time.time() - t1


def save_controlnet(controlnet: Any, numbers: dict, out: Path) -> None:
    """The diffusers folder with training.json, written into a new hidden folder beside `out` and
    then put in its place in one step (`common.replace_folder`): a kill leaves the old model or the
    new one. Files in `out` that train-controlnet does not write (README.md, samples.png) are copied
    into the new folder first; nothing else is touched (no fixed `OUT.tmp` name is ever removed)."""
    check_out(out)   # again: the folder may have changed during the hours of training
    out.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".new", dir=out.parent))
    try:
        controlnet.save_pretrained(str(new), safe_serialization=True)
        (new / "training.json").write_text(json.dumps(numbers, indent=1) + "\n", encoding="utf-8")
        for entry in sorted(out.iterdir()) if out.is_dir() else []:
            if entry.name in OWN_FILES:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.copytree(entry, new / entry.name, symlinks=True)
            else:
                shutil.copy2(entry, new / entry.name, follow_symlinks=False)
        common.replace_folder(new, out)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise


if __name__ == "__main__":
    raise SystemExit(main())
