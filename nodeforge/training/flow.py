"""`nodeforge train-flow`: a small SD3-architecture model (MMDiT transformer, rectified flow) on the
shapes data of `nodeforge-shapes`, saved as a StableDiffusion3Pipeline folder (no T5).

It reuses the demo model's trained VAE and tokenizer (resources/models/nodeforge-shapes: the same
latent space and vocabulary), and trains a fresh SD3Transformer2DModel with two small CLIP text
encoders (CLIP-L and CLIP-G in SD3's roles) on the flow-matching objective: x_t = (1 - s) x0 + s n,
the transformer at timestep 1000 s predicts the velocity n - x0, with s drawn logit-normally and
shifted as the sampler will (SD3's recipe). The saved folder loads in NodeForge's CheckpointLoader
and in diffusers' StableDiffusion3Pipeline.from_pretrained.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import Progress, TrainerParser, TrainingInputError, guarded, optimizer_step, report, start, whole

NAME = "nodeforge train-flow"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = TrainerParser(prog=NAME, description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="the StableDiffusion3Pipeline folder to write")
    p.add_argument("--base", type=Path, default=None,
                   help="the demo model folder whose VAE and tokenizer are reused (default: the bundled nodeforge-shapes)")
    p.add_argument("--steps", type=whole(1), default=20000)
    p.add_argument("--batch", type=whole(1), default=32)
    p.add_argument("--images", type=whole(8), default=20000, help="generated training images")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--width", type=whole(32, why="heads of 32"), default=128, help="transformer width")
    p.add_argument("--layers", type=whole(1), default=6, help="transformer blocks")
    p.add_argument("--shift", type=float, default=3.0, help="the sigma shift written to the scheduler config")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=whole(1), default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path, default=None, help="also write the measured numbers here")
    return p.parse_args(argv)


def make_parts(args: argparse.Namespace, vae: Any, tokenizer: Any) -> dict[str, Any]:
    """The fresh transformer and the two CLIP encoders (seeded: the same args give the same weights)."""
    import torch
    from diffusers import SD3Transformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    torch.manual_seed(args.seed + 2)
    clip = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=256, projection_dim=64,
                num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77, hidden_act="gelu",
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    encoders = [CLIPTextModelWithProjection(CLIPTextConfig(**clip)) for _ in range(2)]
    channels = vae.config.latent_channels
    transformer = SD3Transformer2DModel(
        sample_size=32, patch_size=2, in_channels=channels, out_channels=channels, num_layers=args.layers,
        attention_head_dim=32, num_attention_heads=args.width // 32, caption_projection_dim=args.width,
        joint_attention_dim=128, pooled_projection_dim=128, pos_embed_max_size=32)
    return {"transformer": transformer, "text_encoder": encoders[0], "text_encoder_2": encoders[1]}


def flow_batch(latents: Any, shift: float, generator: Any) -> tuple[Any, Any, Any]:
    """(x_t, timesteps, velocity target) for clean latents: s logit-normal, then shifted."""
    import torch

    s = torch.sigmoid(torch.randn(latents.shape[0], generator=generator))
    s = shift * s / (1 + (shift - 1) * s)
    noise = torch.randn(latents.shape, generator=generator)
    sigma = s.view(-1, 1, 1, 1)
    return (1 - sigma) * latents + sigma * noise, s * 1000, noise - latents


def prompt_embeds(parts: dict[str, Any], tokenizer: Any, captions: list[str]) -> tuple[Any, Any]:
    """StableDiffusion3Pipeline's prompt without T5: both CLIPs' penultimate states side by side,
    padded to the joint width, then 256 zero tokens; the pooled projections side by side."""
    import torch
    import torch.nn.functional as F

    ids = tokenizer(captions, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    outs = [parts[k](ids, output_hidden_states=True) for k in ("text_encoder", "text_encoder_2")]
    hidden = torch.cat([o.hidden_states[-2] for o in outs], dim=-1)
    width = parts["transformer"].config.joint_attention_dim
    hidden = F.pad(hidden, (0, width - hidden.shape[-1]))
    embeds = torch.cat([hidden, hidden.new_zeros(hidden.shape[0], 256, width)], dim=1)
    return embeds, torch.cat([o.text_embeds for o in outs], dim=-1)


def train(args: argparse.Namespace, parts: dict[str, Any], latents: Any, captions: list[str], tokenizer: Any) -> float:
    import torch

    params = [p for module in parts.values() for p in module.parameters()]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    generator = torch.Generator().manual_seed(args.seed + 3)
    progress, loss_value = Progress(args.steps, name=NAME), float("nan")
    for step in range(1, args.steps + 1):
        pick = torch.randint(0, latents.shape[0], (args.batch,), generator=generator)
        x_t, t, target = flow_batch(latents[pick], args.shift, generator)
        texts = [captions[i] if torch.rand(1, generator=generator) > 0.1 else "" for i in pick.tolist()]
        embeds, pooled = prompt_embeds(parts, tokenizer, texts)
        pred = parts["transformer"](hidden_states=x_t, timestep=t, encoder_hidden_states=embeds,
                                    pooled_projections=pooled, return_dict=False)[0]
        loss = torch.nn.functional.mse_loss(pred, target)
        optimizer_step(opt, loss, params)
        loss_value = float(loss.detach())
        progress.update(step, loss_value)
    return loss_value


@guarded(NAME)
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.out.parent.is_dir() or args.out.is_file():
        raise TrainingInputError(f"--out {args.out}: give a folder to write whose parent exists")
    start(args.threads, args.seed, args.device, NAME)
    import numpy as np
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline
    from transformers import CLIPTokenizer

    from nodeforge.paths import builtin_dir

    from . import data
    from .shapes import encode_latents

    base = args.base or builtin_dir("resources") / "models" / "nodeforge-shapes"
    vae = AutoencoderKL.from_pretrained(str(base), subfolder="vae", local_files_only=True).eval().requires_grad_(False)
    if vae.config.shift_factor is None:   # SD3's pipeline adds the shift when decoding: 0 is this VAE's
        vae.register_to_config(shift_factor=0.0)
    tokenizer = CLIPTokenizer.from_pretrained(str(base), subfolder="tokenizer", local_files_only=True)
    images, samples = data.generate(args.images, args.seed)
    with torch.no_grad():   # scaled as the pipeline reads them: (z - shift) x scaling
        shift = vae.config.shift_factor or 0.0
        latents = (encode_latents(vae, images, torch.device("cpu")) - shift) * vae.config.scaling_factor
    parts = make_parts(args, vae, tokenizer)
    rng = np.random.default_rng(args.seed + 1)
    captions = [data.caption(s, rng, empty_rate=0.0) for s in samples]
    final = train(args, parts, latents, captions, tokenizer)
    pipe = StableDiffusion3Pipeline(
        transformer=parts["transformer"], vae=vae, text_encoder=parts["text_encoder"], tokenizer=tokenizer,
        text_encoder_2=parts["text_encoder_2"], tokenizer_2=tokenizer, text_encoder_3=None, tokenizer_3=None,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=args.shift))
    pipe.save_pretrained(str(args.out))
    report({"steps": args.steps, "final_loss": final, "images": args.images,
            "transformer_parameters": sum(p.numel() for p in parts["transformer"].parameters())}, args.json)
    return 0
