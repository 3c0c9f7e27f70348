"""Train a LoRA on a folder of captioned images and save it in the kohya layout artists share.

    nodeforge train-lora IMAGES_DIR --base CHECKPOINT --out FILE.safetensors [--rank 4 --alpha 4
        --steps N --lr X --text-encoder --conv --dora --qlora --seed S --resolution R
        --work DIR --save-every N --sample-every N --sample-prompt TEXT --sample-seed S]
    python -m nodeforge.training.lora IMAGES_DIR --base resources/models/nodeforge-shapes --out x.safetensors

IMAGES_DIR holds images (png, jpg, webp, bmp) with same-named UTF-8 .txt captions; every image and
caption is read and checked before the base model loads (nodeforge.training.common), and images
without a caption are named. CHECKPOINT is a diffusers folder, a single .safetensors checkpoint of
SD 1.x or 2.x (read by the CheckpointLoader node's code), or a name under resources/models. The
file is in kohya's layout, written through `nodeforge.lora_format` (the module the LoRA node reads
with): `lora_unet_...` and, with --text-encoder, `lora_te_...` keys with down, up and alpha. With
--conv the UNet's ResNet convolutions get a LoRA too, in kohya's LoCon layout (down: rank x in x
3 x 3, up: out x rank x 1 x 1). Applying it as W + strength * up @ down * alpha / rank makes
strength 0 exactly the base model.

With --dora the layers are peft's DoRA (`use_dora=True`) and the file is in the diffusers/PEFT
layout instead (`dora_state`: lora_A, lora_B with alpha/rank multiplied in, lora_magnitude_vector),
the one layout both diffusers' `load_lora_weights` and the LoRA node read as a DoRA. --qlora loads
the UNet in 4-bit NF4 through bitsandbytes (CUDA only; refused in one line elsewhere).

--work keeps a checkpoint a stopped run continues from, and --sample-every draws a fixed prompt and
seed into it as the training goes (nodeforge.training.session); the editor's Train dialog runs
this command with them.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nodeforge.lora_format import ALPHA, DOWN, TEXT_PREFIX, UNET_PREFIX, UP, delta, kohya_key, kohya_tensors, scale
from nodeforge.training import common, session
from nodeforge.training.models import min_snr_loss, training_noise

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
UNET_CONV_TARGETS = ["conv1", "conv2"]  # the ResNet blocks' 3x3 convolutions (LoCon)
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


# ---------------------------------------------------------------------------------------------
# kohya key layout: reading and applying


def load_kohya(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    tensors = {}
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
        for key in f.keys():
            tensors[key] = f.get_tensor(key)
    return tensors, metadata


@torch.no_grad()
def apply_kohya_lora(model: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str, strength: float) -> int:
    """Merge the LoRA's `prefix` entries into `model`'s Linear and Conv2d weights in place:
    W += strength * up @ down * alpha / rank. Returns the number of patched modules."""
    by_key = {kohya_key(prefix, name): m for name, m in model.named_modules()
              if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))}
    patched = 0
    for key in tensors:
        if not (key.startswith(prefix) and key.endswith(DOWN)):
            continue
        base = key[: -len(DOWN)]
        module = by_key.get(base)
        if module is None:
            raise KeyError(f"LoRA key {base} matches no Linear or Conv2d layer of the model")
        down, up = tensors[key], tensors[base + UP]
        alpha = float(tensors[base + ALPHA]) if base + ALPHA in tensors else None
        change = delta(down, up, tuple(module.weight.shape)) * scale(alpha, down.shape[0]) * strength
        module.weight.add_(change.to(module.weight.dtype))
        patched += 1
    return patched


# ---------------------------------------------------------------------------------------------
# training


def load_folder(folder: Path, resolution: int, name: str = "train-lora") -> tuple[np.ndarray, list[str]]:
    """The folder's images, centre-cropped square and resized to `resolution`, and their captions;
    every file is checked and decoded here, before the base model loads (common.read_image,
    common.read_caption), and images without a caption are named on stderr."""
    files = common.image_files(folder)
    images, captions = [], []
    for path in files:
        images.append(square_image(path, resolution))
        captions.append(common.read_caption(path))
    common.without_captions(name, files, captions)
    return np.stack(images), [c or "" for c in captions]


def square_image(path: Path, resolution: int) -> np.ndarray:
    """The image at `path`, checked and decoded (common.read_image), centre-cropped square and
    resized to `resolution` pixels a side: (resolution, resolution, 3) uint8."""
    from PIL import Image

    img = common.read_image(path, max(common.MIN_SIDE, resolution // 8))
    side = min(img.size)  # centre crop to a square, then resize
    left, top = (img.width - side) // 2, (img.height - side) // 2
    img = img.crop((left, top, left + side, top + side))
    if img.size != (resolution, resolution):
        img = img.resize((resolution, resolution), Image.BICUBIC)
    return np.asarray(img)


def lora_state(model: torch.nn.Module, prefix: str, alpha: float) -> dict[str, torch.Tensor]:
    """peft's lora_A/lora_B of each wrapped layer as kohya lora_down/lora_up/alpha."""
    state = {}
    for name, module in model.named_modules():
        if not hasattr(module, "lora_A") or "default" not in getattr(module, "lora_A", {}):
            continue
        state.update(kohya_tensors(prefix, name, module.lora_A["default"].weight.detach().cpu().contiguous().clone(),
                                   module.lora_B["default"].weight.detach().cpu().contiguous().clone(),
                                   torch.tensor(float(alpha))))
    return state


def dora_state(model: torch.nn.Module, prefix: str, scaling: float) -> dict[str, torch.Tensor]:
    """peft's DoRA layers in the diffusers/PEFT layout both diffusers' `load_lora_weights` and the
    LoRA node read: `<prefix><module>.lora_A.weight`, `.lora_B.weight` (with alpha/rank multiplied
    in, so the file needs no alpha: diffusers and the node both take scale 1 without one) and
    `.lora_magnitude_vector` (one magnitude per output channel, in peft's shape)."""
    state = {}
    for name, module in model.named_modules():
        if "default" not in getattr(module, "lora_magnitude_vector", {}):
            continue
        stem = prefix + name
        state[stem + ".lora_A.weight"] = module.lora_A["default"].weight.detach().cpu().contiguous().clone()
        state[stem + ".lora_B.weight"] = (module.lora_B["default"].weight.detach().float().cpu() * scaling).contiguous()
        # peft's own shapes: [out] for a Linear, [1, out, 1, 1] for a Conv2d (what diffusers loads back)
        magnitude = module.lora_magnitude_vector["default"].weight.detach().float().cpu()
        # diffusers reads the UNet's as `.lora_magnitude_vector`, transformers (text encoder) with `.weight`
        key = stem + ".lora_magnitude_vector" + (".weight" if prefix == "text_encoder." else "")
        state[key] = magnitude.contiguous().clone()
    return state


def check_qlora(args: argparse.Namespace, base: Path, device: Any) -> None:
    """--qlora's needs, checked before anything loads: a CUDA device, bitsandbytes and a diffusers
    folder (the 4-bit UNet is loaded by diffusers' from_pretrained); never a silent fallback."""
    if not args.qlora:
        return
    import importlib.util

    missing = [what for what, ok in (("CUDA GPU (--device cuda)", getattr(device, "type", "") == "cuda"),
                                     ("bitsandbytes package (pip install bitsandbytes)",
                                      importlib.util.find_spec("bitsandbytes") is not None))
               if not ok]
    if missing:
        raise common.TrainingInputError(f"--qlora trains on a 4-bit base through bitsandbytes, which needs a CUDA GPU "
                                        f"and the bitsandbytes package; this machine has no {' and no '.join(missing)}: "
                                        "train without --qlora (plain LoRA or --dora run on this device)")
    if base.is_file():
        raise common.TrainingInputError(f"--qlora quantises a diffusers folder's UNet; --base {base} is a single "
                                        "file: convert it to a diffusers folder or train without --qlora")


def quantised_unet(base: Path) -> Any:
    """The base's UNet with its Linear layers in 4-bit NF4 (bitsandbytes, float32 compute), frozen."""
    from diffusers import BitsAndBytesConfig, UNet2DConditionModel

    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)
    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet", quantization_config=config)
    return unet.requires_grad_(False)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = common.TrainerParser(
        prog="nodeforge train-lora",
        description="Train a LoRA on a folder of captioned images; writes a kohya-layout .safetensors "
                    "that the LoRA node (and ComfyUI, A1111) load.")
    p.add_argument("images_dir", type=Path, help="folder of images with same-named .txt captions")
    add_training_options(p)
    return p.parse_args(argv)


def add_training_options(p: argparse.ArgumentParser) -> None:
    """The options of the LoRA trainer that train-dreambooth shares: base, output, adapter, run and
    session (--work, --sample-*)."""
    p.add_argument("--base", required=True, help="model to train on: a diffusers folder, a single .safetensors "
                   "checkpoint of SD 1.x or 2.x, or a bundled model name")
    p.add_argument("--out", required=True, type=Path, help="output .safetensors (kohya layout)")
    p.add_argument("--rank", metavar="N", type=common.COUNT, default=4, help="LoRA rank: the size of each low-rank "
                   "update (more learns more and makes a bigger file)")
    p.add_argument("--alpha", metavar="A", type=common.real(0.0, above=True), default=4.0,
                   help="LoRA alpha: the update is scaled by alpha/rank")
    p.add_argument("--steps", metavar="N", type=common.COUNT, default=500, help="optimizer steps to train for")
    p.add_argument("--lr", metavar="RATE", type=common.RATE, default=1e-3,
                   help="AdamW learning rate (after a 20-step warm-up)")
    p.add_argument("--batch", metavar="N", type=common.COUNT, default=16,
                   help="images per step (at most the number of images)")
    p.add_argument("--text-encoder", action="store_true", help="also train a LoRA on the text encoder")
    p.add_argument("--conv", action="store_true",
                   help="also train the UNet's ResNet convolutions (LoCon): needed to teach new shapes")
    p.add_argument("--dora", action="store_true", help="train a DoRA (weight-decomposed LoRA, peft's use_dora): "
                   "a per-output magnitude besides the low-rank direction; saved in the diffusers/PEFT layout")
    p.add_argument("--qlora", action="store_true", help="train on a 4-bit (NF4) quantised UNet through bitsandbytes "
                   "(QLoRA); needs a CUDA GPU, the bitsandbytes package and a diffusers-folder base")
    p.add_argument("--noise-offset", metavar="STD", type=common.STD, default=0.0,
                   help="std of a per-channel noise offset, as the base model was trained (nodeforge-shapes: 0.15)")
    p.add_argument("--seed", metavar="N", type=common.SEED, default=0, help="seed of the LoRA's initial weights, "
                   "batches and noise (the same seed and inputs give the same LoRA)")
    p.add_argument("--resolution", metavar="PX", type=common.whole(8, 4096, multiple=8), default=64,
                   help="images are centre-cropped square and resized to this many pixels a side")
    p.add_argument("--device", metavar="DEVICE", default="auto", help="cpu, cuda, cuda:N or mps; auto: CUDA when "
                   "available, then MPS, else cpu")
    p.add_argument("--threads", metavar="N", type=common.COUNT, default=2, help="CPU threads torch may use")
    session.add_arguments(p)


@common.guarded("train-lora")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = common.start(args.threads, args.seed, args.device, "train-lora")
    # Every check before the base model loads: a mistake costs a second, not a load.
    base = check_run(args, device, "train-lora")
    images, captions = load_folder(args.images_dir, args.resolution)
    print(f"train-lora: {len(images)} images from {args.images_dir}, base {base}, device {device}", file=sys.stderr)
    parts = common.load_base(base, device)
    if args.qlora:
        parts["unet"] = quantised_unet(base)
    with torch.no_grad():
        latents = common.encode_images(parts["vae"], images, device)
    ids = token_ids(parts["tokenizer"], captions)
    unet, text_encoder, trainable = add_adapters(parts["unet"], parts["text_encoder"], args)
    t0 = time.time()
    train(unet, text_encoder, trainable, latents, ids, parts["scheduler"], args, device,
          sampler(parts, unet, text_encoder, args))
    metadata = kohya_metadata(args, base, captions, time.time() - t0)
    write_adapters(unet, text_encoder, args, metadata, "train-lora", t0)
    return 0


def check_run(args: argparse.Namespace, device: Any, name: str) -> Path:
    """The checked base model path; --out, the session options and --qlora's needs checked too
    (before anything loads)."""
    base = common.resolve_base(args.base, name, single_file=True)
    common.writable_output(args.out, "LoRA (.safetensors)")
    session.check_arguments(args)
    check_qlora(args, base, device)
    return base


def sampler(parts: dict[str, Any], unet: Any, text_encoder: Any, args: argparse.Namespace) -> Any:
    """`sample(path)`: the --sample-prompt drawn with the adapters as they are (session.sample_image)."""
    def sample(path: Path) -> None:
        session.sample_image({**parts, "unet": unet, "text_encoder": text_encoder}, path, args.sample_prompt,
                             args.sample_seed, args.resolution, args.sample_steps)
    return sample


def token_ids(tokenizer: Any, prompts: list[str]) -> torch.Tensor:
    """The prompts' token ids, padded to the tokenizer's length as the UNet was trained."""
    return tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").input_ids


def write_adapters(unet: Any, text_encoder: Any, args: argparse.Namespace, metadata: dict[str, str], name: str,
                   t0: float) -> None:
    """Save the trained adapters to args.out: kohya's layout, or the diffusers/PEFT one with --dora."""
    from safetensors.torch import save

    from nodeforge.core.files import atomic_write_bytes

    if args.dora:
        state = dora_state(unet, "unet.", args.alpha / args.rank)
        if args.text_encoder:
            state.update(dora_state(text_encoder, "text_encoder.", args.alpha / args.rank))
    else:
        state = lora_state(unet, UNET_PREFIX, args.alpha)
        if args.text_encoder:
            state.update(lora_state(text_encoder, TEXT_PREFIX, args.alpha))
    # Whole or absent: an interrupted or failed write never leaves a truncated LoRA under the name.
    atomic_write_bytes(args.out, save(state, metadata=metadata))
    print(f"{name}: wrote {len(state)} tensors to {args.out} in {time.time() - t0:.0f} s", file=sys.stderr)


def add_adapters(unet: Any, text_encoder: Any, args: argparse.Namespace) -> tuple[Any, Any, list[torch.nn.Parameter]]:
    """peft LoRA layers on the UNet (and the text encoder with --text-encoder); their parameters."""
    from peft import LoraConfig, inject_adapter_in_model

    unet = inject_adapter_in_model(
        LoraConfig(r=args.rank, lora_alpha=args.alpha, init_lora_weights="gaussian", use_dora=args.dora,
                   target_modules=UNET_TARGETS + (UNET_CONV_TARGETS if args.conv else [])), unet)
    trainable = [p for n, p in unet.named_parameters() if "lora_" in n]
    if args.text_encoder:
        text_encoder = inject_adapter_in_model(
            LoraConfig(r=args.rank, lora_alpha=args.alpha, target_modules=TEXT_TARGETS, init_lora_weights="gaussian",
                       use_dora=args.dora),
            text_encoder)
        trainable += [p for n, p in text_encoder.named_parameters() if "lora_" in n]
    for p in trainable:
        p.requires_grad_(True)
    return unet, text_encoder, trainable


@dataclass
class Prior:
    """DreamBooth's prior preservation: the class images' latents and prompt ids, drawn beside the
    instance images in every batch, and the weight of their loss. With `teacher` (the frozen base
    model: (noisy latents, timesteps, ids) -> its noise prediction), the class half learns the base's
    own prediction instead of the noise that was added."""
    latents: torch.Tensor
    ids: torch.Tensor
    weight: float
    teacher: Any = None


def train(unet: Any, text_encoder: Any, trainable: list[torch.nn.Parameter], latents: torch.Tensor,
          ids: torch.Tensor, noise_scheduler: Any, args: argparse.Namespace, device: torch.device,
          sample: Any = None, prior: Prior | None = None, name: str = "train-lora") -> None:
    """`args.steps` AdamW steps on the noise-prediction loss (min-SNR 5 weighting, 20-step warm-up);
    with --work it continues from the folder's checkpoint and writes one as it goes (session.py),
    and `sample(path)` draws the sample image every --sample-every steps. With `prior`, each batch
    is the instance images and as many class images, and the loss is instance loss + prior.weight
    x class loss (`batch_loss`)."""
    unet.train()
    text_encoder.train(args.text_encoder)
    opt = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(args.seed)
    alphas = noise_scheduler.alphas_cumprod.to(device)
    snr = alphas / (1 - alphas)
    run = session.Session(name, args, resume_config(args, name))
    done = resume(run, trainable, opt, gen)
    progress = common.Progress(args.steps, name=name, start=done)
    with run:
        for step in range(done, args.steps):
            idx = torch.randint(len(latents), (min(args.batch, len(latents)),), generator=gen)
            z0, batch_ids = latents[idx], ids[idx]
            if prior is not None:   # diffusers' train_dreambooth_lora.py: instance half, then class half
                class_idx = torch.randint(len(prior.latents), (len(idx),), generator=gen)
                z0 = torch.cat([z0, prior.latents[class_idx]])
                batch_ids = torch.cat([batch_ids, prior.ids[class_idx]])
            noise = training_noise(z0.shape, gen, args.noise_offset).to(device)
            t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(z0),), generator=gen).to(device)
            loss = batch_loss(unet, text_encoder, noise_scheduler, z0, batch_ids.to(device), noise, t, snr[t],
                              args.text_encoder, len(idx), prior.weight if prior is not None else 0.0,
                              prior.teacher if prior is not None else None)
            for group in opt.param_groups:  # short warm-up, then constant
                group["lr"] = args.lr * min(1.0, (step + 1) / 20)
            common.optimizer_step(opt, loss, clip=trainable)
            progress.update(step + 1, loss.item())
            run.after_step(step + 1, args.steps, lambda: {"trainable": [p.detach().cpu() for p in trainable],
                                                          "opt": opt.state_dict(), "generator": gen.get_state()},
                           sample)


def batch_loss(unet: Any, text_encoder: Any, noise_scheduler: Any, z0: torch.Tensor, ids: torch.Tensor,
               noise: torch.Tensor, t: torch.Tensor, snr_t: torch.Tensor, train_text: bool, instances: int,
               prior_weight: float, teacher: Any = None) -> torch.Tensor:
    """The min-SNR noise-prediction loss of one batch. When the batch holds more than `instances`
    images, the rest are class images (prior preservation): instance loss + prior_weight x class
    loss, each the mean over its own half, so its gradient is the instance gradient plus
    prior_weight times the class gradient. With `teacher`, the class half's target is the teacher's
    prediction for the same noisy latents and prompts (Prior.teacher), not the noise."""
    zt = noise_scheduler.add_noise(z0, noise, t)
    with torch.set_grad_enabled(train_text):
        cond = text_encoder(ids)[0]
    pred = unet(zt, t, encoder_hidden_states=cond).sample
    if instances == len(z0):
        return min_snr_loss(pred, noise, snr_t)
    n = instances
    target = noise[n:] if teacher is None else teacher(zt[n:], t[n:], ids[n:])
    return min_snr_loss(pred[:n], noise[:n], snr_t[:n]) + prior_weight * min_snr_loss(pred[n:], target, snr_t[n:])


def resume_config(args: argparse.Namespace, name: str = "train-lora") -> dict[str, Any]:
    """What a --work checkpoint must match to be continued: the adapters' shape and kind (and
    train-dreambooth's prompts and prior weight)."""
    config = {"trainer": name, "rank": args.rank, "dora": args.dora, "conv": args.conv,
              "text_encoder": args.text_encoder}
    for key in ("instance_prompt", "class_prompt", "class_images", "prior_weight", "class_cfg", "prior_target"):
        if hasattr(args, key):
            config[key] = getattr(args, key)
    return config


def resume(run: session.Session, trainable: list[torch.nn.Parameter], opt: Any, gen: torch.Generator) -> int:
    """The steps done by the checkpoint in --work (0 without one), its weights, optimizer and batch
    generator loaded."""
    state = run.resume()
    if state is None:
        return 0
    with torch.no_grad():
        for p, saved in zip(trainable, state["trainable"], strict=True):
            p.copy_(saved.to(p.device))
    opt.load_state_dict(state["opt"])
    gen.set_state(state["generator"])
    return int(state["step"])


def kohya_metadata(args: argparse.Namespace, base: Path, captions: list[str], seconds: float,
                   folder: Path | None = None) -> dict[str, str]:
    """The `ss_*` training metadata kohya's scripts write, which LoRA browsers show; the captions'
    word counts under the name of `folder` (args.images_dir when None)."""
    return {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(args.rank),
        "ss_network_alpha": str(args.alpha),
        "ss_base_model": base.name,
        "ss_sd_model_name": base.name,
        "ss_base_model_version": "nodeforge-shapes" if base.name == "nodeforge-shapes" else "unknown",
        "ss_resolution": f"({args.resolution}, {args.resolution})",
        "ss_max_train_steps": str(args.steps),
        "ss_learning_rate": str(args.lr),
        "ss_seed": str(args.seed),
        "ss_noise_offset": str(args.noise_offset),
        "ss_num_train_images": str(len(captions)),
        "ss_text_encoder_lr": str(args.lr if args.text_encoder else 0),
        "ss_network_train_unet_only": str(not args.text_encoder),
        "ss_network_args": json.dumps({**({"conv_dim": str(args.rank), "conv_alpha": str(args.alpha)} if args.conv
                                           else {}), **({"dora_wd": "true"} if args.dora else {})}),
        "nodeforge_qlora": str(args.qlora),
        "ss_training_time_s": f"{seconds:.1f}",
        "ss_tag_frequency": json.dumps({(folder or args.images_dir).name: _word_counts(captions)}),
        "nodeforge_trainer": "nodeforge.training.lora",
    }


def _word_counts(captions: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in captions:
        for w in c.split():
            counts[w] = counts.get(w, 0) + 1
    return counts


if __name__ == "__main__":
    raise SystemExit(main())
