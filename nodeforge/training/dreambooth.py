"""Teach a base model one subject from a few pictures (DreamBooth), as a LoRA, with prior preservation.

    nodeforge train-dreambooth --instance-dir DIR --instance-prompt "a sks shape" --base CHECKPOINT
        --out FILE.safetensors [--class-prompt "a shape" | --class-prompts FILE] [--class-images 50
        --class-dir DIR --prior-weight 1]
        [train-lora's options: --rank --alpha --steps --lr --batch --text-encoder --conv --dora ...]

Every instance image trains with the one instance prompt, which names the subject with a rare token
(DreamBooth, Ruiz et al. 2022). With --class-prompt (the subject's class, without the token), the base
model first draws --class-images images of that prompt, and every batch holds as many of them as
instance images: the loss is instance loss + --prior-weight x class loss, as in diffusers'
train_dreambooth_lora.py, so the class keeps what the base model drew for it (prior preservation)
instead of drifting towards the subject. A class the base knows by several prompts ("a red circle on a
blue background", "a green square on ...") can be given as --class-prompts FILE, one prompt a line:
class image i is drawn from line i (cycling) and trains with it.

The class images are drawn by the base model itself (Euler, 20 steps, CFG 5, image i from seed i) into
--class-dir, beside `class_images.json`, which records the prompt, the base (its path and its weight
files' sizes and times), the sampler and the images. A later run with the same prompt, base and
sampler reuses them, generating only the images a larger --class-images lacks; a changed prompt or
base draws them again. The LoRA is trained by train-lora's code (nodeforge.training.lora) and written
in its layouts: kohya's, or the diffusers/PEFT one with --dora.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nodeforge.training import common, lora

NAME = "train-dreambooth"
RECORD = "class_images.json"
CLASS_SAMPLER = {"sampler": "euler", "steps": 20, "cfg": 5.0, "first_seed": 0}
CLASS_BATCH = 16


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = common.TrainerParser(
        prog=f"nodeforge {NAME}",
        description="Teach a base model a subject from a few pictures (DreamBooth) as a LoRA; with "
                    "--class-prompt, class images drawn by the base model keep the class as it was "
                    "(prior preservation).")
    p.add_argument("--instance-dir", required=True, type=Path, help="folder of the subject's pictures (5-10 do)")
    p.add_argument("--instance-prompt", required=True, help="the prompt of every instance picture, naming the "
                   "subject with a rare token the model does not know: 'a sks shape'")
    p.add_argument("--class-prompt", help="the subject's class without the token ('a shape'): the base model "
                   "draws it for prior preservation; needed unless --prior-weight is 0")
    p.add_argument("--class-prompts", metavar="FILE", type=Path,
                   help="instead of --class-prompt: a UTF-8 text file of the class's prompts, one a line, for a "
                   "class the base knows by several prompts ('a red circle on a blue background', ...); class "
                   "image i is drawn from line i (cycling) and trains with it")
    p.add_argument("--class-images", metavar="N", type=common.COUNT, default=50,
                   help="class images the base model draws (and each step draws --batch of)")
    p.add_argument("--class-dir", type=Path, help="folder that keeps the class images for later runs "
                   "(default: OUT's name + '-class-images', beside --out)")
    p.add_argument("--class-cfg", metavar="CFG", type=common.real(0.0), default=CLASS_SAMPLER["cfg"],
                   help="guidance scale the base model draws the class images with (1: no guidance, the base's "
                   "own conditional distribution, which the class then keeps)")
    p.add_argument("--prior-weight", metavar="W", type=common.real(0.0), default=1.0,
                   help="weight of the class images' loss against the instance images' (0: no prior preservation)")
    p.add_argument("--prior-target", choices=("noise", "base"), default="noise",
                   help="what the class images' half learns: the noise added to them (DreamBooth's loss), or the "
                   "base model's own prediction for the same noisy image and prompt (base: the class keeps the "
                   "base's prompted noise prediction, one more base pass per step; without guidance: the base "
                   "runs on the class prompt alone, whatever --class-cfg drew the class images with; with --qlora: "
                   "the full-precision base, kept in memory beside the 4-bit UNet that trains)")
    lora.add_training_options(p)
    return p.parse_args(argv)


def check_prompts(args: argparse.Namespace) -> None:
    """The prompts and the prior-preservation options agree (before anything loads); --class-prompts'
    lines become args.class_prompt (a list when there are several)."""
    read_class_prompts(args)
    if not args.instance_prompt.strip():
        raise common.TrainingInputError("--instance-prompt is empty: name the subject with a rare token and "
                                        "its class, e.g. --instance-prompt 'a sks shape'")
    if isinstance(args.class_prompt, str) and not args.class_prompt.strip():
        raise common.TrainingInputError("--class-prompt is empty: give the subject's class without the token "
                                        "(--class-prompt 'a shape'), or leave it out with --prior-weight 0")
    if args.class_prompt is None and args.prior_weight > 0:
        raise common.TrainingInputError(f"--prior-weight {args.prior_weight:g} needs --class-prompt: give the "
                                        "subject's class without the token (--class-prompt 'a shape'), or "
                                        "--prior-weight 0 to train without prior preservation")
    if args.class_prompt is not None and args.instance_prompt.strip() in class_prompts(args):
        raise common.TrainingInputError("--class-prompt is the same as --instance-prompt: the instance prompt "
                                        "names the subject with a rare token the class prompt lacks "
                                        "('a sks shape' against 'a shape')")
    if args.class_prompt is not None and args.prior_weight == 0:
        common.warn(NAME, "--prior-weight 0: the class images are drawn but do not count in the loss")


def read_class_prompts(args: argparse.Namespace) -> None:
    """--class-prompts FILE read into args.class_prompt: its non-blank lines, stripped (one line: that
    prompt, as --class-prompt gives it); a missing, unreadable or empty file is refused."""
    path = args.class_prompts
    if path is None:
        return
    if args.class_prompt is not None:
        raise common.TrainingInputError("--class-prompt and --class-prompts both given: give one prompt with "
                                        "--class-prompt or a file of them with --class-prompts")
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise common.TrainingInputError(f"--class-prompts {path} cannot be read ({exc.__class__.__name__}): give "
                                        "a UTF-8 text file with one class prompt a line") from None
    if not lines:
        raise common.TrainingInputError(f"--class-prompts {path} holds no prompt: write the class's prompts into "
                                        "it, one a line ('a red circle on a blue background')")
    args.class_prompt = lines[0] if len(lines) == 1 else lines


def class_prompts(args: argparse.Namespace) -> list[str]:
    """The class prompts, stripped: class image i is drawn from, and trains with, prompt i mod their number."""
    given = args.class_prompt
    return [given.strip()] if isinstance(given, str) else [p.strip() for p in given or []]


def instance_images(folder: Path, resolution: int) -> np.ndarray:
    """The subject's pictures in `folder`, checked, cropped square and resized (lora.square_image)."""
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise common.TrainingInputError(f"--instance-dir {folder} {what}: give the folder that holds the "
                                        "subject's pictures (5-10 do)")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in common.IMAGE_SUFFIXES)
    if not files:
        others = sorted({p.suffix.lower() or p.name for p in folder.iterdir() if not p.name.startswith(".")})
        found = f" (it holds only {', '.join(others)})" if others else " (it is empty)"
        raise common.TrainingInputError(f"--instance-dir {folder} holds no images{found}: put 5-10 pictures of "
                                        f"the subject there ({', '.join(sorted(common.IMAGE_SUFFIXES))})")
    try:
        return np.stack([lora.square_image(p, resolution) for p in files])
    except common.TrainingInputError as exc:
        raise common.TrainingInputError(f"--instance-dir: {exc}") from None


# ---------------------------------------------------------------------------------------------
# class images: drawn by the base model once, kept with a record, reused


def class_folder(args: argparse.Namespace) -> Path:
    """--class-dir (default: beside --out), checked: new, empty, or one this command filled."""
    folder = args.class_dir or args.out.with_name(args.out.stem + "-class-images")
    if folder.exists() and not folder.is_dir():
        raise common.TrainingInputError(f"--class-dir {folder} is a file: give a folder for the class images")
    if not folder.is_dir() and not folder.parent.is_dir():
        raise common.TrainingInputError(f"--class-dir {folder}: no folder {folder.parent}; create it first")
    if folder.is_dir() and not (folder / RECORD).exists() and any(
            p.suffix.lower() in common.IMAGE_SUFFIXES for p in folder.iterdir()):
        raise common.TrainingInputError(f"--class-dir {folder} holds images {NAME} did not draw (no {RECORD}): "
                                        "give a new or empty folder")
    read_record(folder)
    return folder


def read_record(folder: Path) -> dict | None:
    """The folder's class_images.json, None without one; an unreadable one is refused."""
    path = folder / RECORD
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise common.TrainingInputError(f"--class-dir: {path} is not readable JSON ({exc}); remove the folder's "
                                        "class images and the file to draw them again") from None
    if not isinstance(record, dict) or not isinstance(record.get("images"), list):
        raise common.TrainingInputError(f"--class-dir: {path} is not a class-image record; remove the folder's "
                                        "class images and the file to draw them again")
    return record


def base_identity(base: Path) -> dict:
    """What makes the base model the same one later: its path and its weight files' sizes and times."""
    if base.is_file():
        files = [base]
    else:
        files = sorted(p for part in common.PIPELINE_PARTS for p in (base / part).rglob("*") if p.is_file())
    return {"base": str(base.resolve()),
            "base_files": {(p.relative_to(base).as_posix() if base.is_dir() else p.name):
                           f"{p.stat().st_size} bytes, modified {p.stat().st_mtime_ns} ns" for p in files}}


def wanted_record(args: argparse.Namespace, base: Path) -> dict:
    """What the class images are drawn as: the prompt (a list of them with --class-prompts), the
    resolution, the sampler (--class-cfg its guidance) and the base."""
    prompts = class_prompts(args)
    return {"prompt": prompts[0] if len(prompts) == 1 else prompts, "resolution": args.resolution, **CLASS_SAMPLER,
            "cfg": args.class_cfg, **base_identity(base)}


def cached_images(folder: Path, wanted: dict) -> list[str]:
    """The names of the class images already drawn as `wanted` asks (image i from seed first_seed + i),
    in order; empty when the record is missing or differs, or an image is gone."""
    record = read_record(folder)
    if record is None or any(record.get(k) != v for k, v in wanted.items()):
        return []
    names = [n for n in record["images"] if isinstance(n, str)]
    present = 0
    while present < len(names) and (folder / names[present]).is_file():
        present += 1
    return names[:present]


def class_pipeline(parts: dict[str, Any]) -> Any:
    """A diffusers pipeline over the base model's own parts, sampling with Euler."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        vae=parts["vae"], text_encoder=parts["text_encoder"], tokenizer=parts["tokenizer"], unet=parts["unet"],
        scheduler=EulerDiscreteScheduler.from_config(parts["scheduler"].config), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def class_images(parts: dict[str, Any], args: argparse.Namespace, base: Path, folder: Path) -> list[Path]:
    """The --class-images class images in `folder`: reused where already drawn as asked, the rest
    drawn now by the base model; the record is rewritten after each batch, so a killed run keeps
    what it drew."""
    from PIL import Image

    from nodeforge.core.files import atomic_write_bytes
    from nodeforge.training.evaluate import sample

    wanted = wanted_record(args, base)
    names = cached_images(folder, wanted)
    if not names:   # a record for another prompt or base: its images go
        for stale in (read_record(folder) or {}).get("images", []) if folder.is_dir() else []:
            (folder / Path(str(stale)).name).unlink(missing_ok=True)
    have, need, prompts = len(names), args.class_images, class_prompts(args)
    what = repr(prompts[0]) if len(prompts) == 1 else f"{len(prompts)} prompts"
    print(f"{NAME}: {min(have, need)} class images of {what} reused from {folder}, "
          f"{max(0, need - have)} to draw", file=sys.stderr)
    folder.mkdir(exist_ok=True)
    pipe = class_pipeline(parts) if have < need else None
    for start in range(have, need, CLASS_BATCH):
        seeds = list(range(wanted["first_seed"] + start, wanted["first_seed"] + min(need, start + CLASS_BATCH)))
        drawn = sample(pipe, [prompts[(s - wanted["first_seed"]) % len(prompts)] for s in seeds], seeds,
                       batch=CLASS_BATCH, steps=wanted["steps"],
                       cfg=wanted["cfg"], size=args.resolution)
        for seed, image in zip(seeds, drawn):
            name = f"class-{seed - wanted['first_seed']:05d}.png"
            Image.fromarray(image).save(folder / name)
            names.append(name)
        atomic_write_bytes(folder / RECORD, (json.dumps({**wanted, "images": names}, indent=1) + "\n").encode())
        print(f"{NAME}: drew class images {start + len(seeds)}/{need}", file=sys.stderr)
    return [folder / n for n in names[:need]]


# ---------------------------------------------------------------------------------------------
# the command


@common.guarded(NAME)
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = common.start(args.threads, args.seed, args.device, NAME)
    # Every check before the base model loads: a mistake costs a second, not a load.
    base = lora.check_run(args, device, NAME)
    check_prompts(args)
    images = instance_images(args.instance_dir, args.resolution)
    folder = class_folder(args) if args.class_prompt is not None else None
    print(f"{NAME}: {len(images)} instance images from {args.instance_dir}, base {base}, device {device}",
          file=sys.stderr)
    parts = common.load_base(base, device)
    class_files = class_images(parts, args, base, folder) if folder is not None else []
    full_precision = parts["unet"]   # the class images are drawn, and the prior teacher predicts, with it
    if args.qlora:
        parts["unet"] = lora.quantised_unet(base)
    prompts = class_prompts(args)   # class image i trains with prompts[i % len(prompts)], as it was drawn
    with torch.no_grad():
        latents = common.encode_images(parts["vae"], images, device)
        prior = None if folder is None else lora.Prior(
            common.encode_images(parts["vae"], np.stack([lora.square_image(p, args.resolution) for p in class_files]),
                                 device),
            lora.token_ids(parts["tokenizer"], [prompts[i % len(prompts)] for i in range(len(class_files))]),
            args.prior_weight)
    ids = lora.token_ids(parts["tokenizer"], [args.instance_prompt.strip()] * len(images))
    if prior is not None and args.prior_target == "base":   # the base itself, not its 4-bit copy that trains
        prior.teacher = teacher(full_precision, parts["text_encoder"], copy_unet=not args.qlora)
    unet, text_encoder, trainable = lora.add_adapters(parts["unet"], parts["text_encoder"], args)
    t0 = time.time()
    lora.train(unet, text_encoder, trainable, latents, ids, parts["scheduler"], args, device,
               lora.sampler(parts, unet, text_encoder, args), prior=prior, name=NAME)
    metadata = lora.kohya_metadata(args, base, [args.instance_prompt.strip()] * len(images), time.time() - t0,
                                   folder=args.instance_dir)
    metadata.update(dreambooth_metadata(args, folder, len(class_files)))
    lora.write_adapters(unet, text_encoder, args, metadata, NAME, t0)
    return 0


def teacher(unet: Any, text_encoder: Any, copy_unet: bool = True) -> Any:
    """--prior-target base: frozen copies of the base UNet and text encoder (taken before the
    adapters go in) as (noisy latents, timesteps, ids) -> the base's noise prediction, no gradient.
    `copy_unet` False: `unet` is the full-precision base that --qlora's 4-bit UNet replaced, which
    nothing trains, so it is frozen as it is instead of copied."""
    import copy

    unet = (copy.deepcopy(unet) if copy_unet else unet).eval().requires_grad_(False)
    text_encoder = copy.deepcopy(text_encoder).eval().requires_grad_(False)

    def predict(zt: torch.Tensor, t: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return unet(zt, t, encoder_hidden_states=text_encoder(ids)[0]).sample
    return predict


def dreambooth_metadata(args: argparse.Namespace, folder: Path | None, class_count: int) -> dict[str, str]:
    """kohya's regularisation-image fields (its name for class images) and the prompts."""
    return {"ss_prior_loss_weight": str(args.prior_weight if folder is not None else 0.0),
            "ss_num_reg_images": str(class_count),
            "ss_reg_dataset_dirs": json.dumps({folder.name: {"n_repeats": 1, "img_count": class_count}}
                                              if folder is not None else {}),
            "nodeforge_instance_prompt": args.instance_prompt.strip(),
            "nodeforge_class_prompt": "\n".join(class_prompts(args)),
            "nodeforge_prior_target": args.prior_target if folder is not None else "",
            "nodeforge_trainer": "nodeforge.training.dreambooth"}


if __name__ == "__main__":
    raise SystemExit(main())
