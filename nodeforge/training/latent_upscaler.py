"""Train the demo NN latent upscaler (Ttl's ComfyUi_NNLatentUpscale network) on the demo model's latents.

    nodeforge train-latent-upscaler --out resources/latent_upscale_models/shapes-resizer.safetensors
    python -m nodeforge.training.latent_upscaler --out x.safetensors --measure-only  (errors of a saved model)

Pairs come from the demo data generator (nodeforge.training.data): the same shape drawn at 64 px (what
the demo model makes: a 16 x 16 latent, its VAE's factor being 4) and at 4 x t px for a latent side t of
18, 20, ... 32 (1.125 to 2 times, the node's range), both encoded by the demo model's VAE. The network (the built-in pack's LatentResizer, so the saved keys
are those Upscale Latent (Neural Network) loads) learns the larger latent from the smaller one and the
scale t / 8, as the pack's networks were trained on SD's latents. It sees what the pack's networks see:
the VAE's own values times 0.13025; the file's metadata holds the VAE's scaling factor, so the node
turns NodeForge's scaled latents into those values and back.

Quality is the mean squared error against the VAE latent of the larger image on held-out shapes, next
to a bilinear latent upscale (Upscale Latent By, bilinear), and the PSNR of both decoded against the
larger render.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nodeforge.training import common, data

TRAIN_SEED = 303
HELD_OUT_SEED = 90210               # never used for training images
SCALE_KEY = "nodeforge_vae_scaling_factor"


def network(in_blocks: int, out_blocks: int, channels: int) -> torch.nn.Module:
    """The built-in pack's LatentResizer (attention blocks included), so the keys are those it loads."""
    from nodeforge.core.registry import builtin_module

    return builtin_module("latent_resizer").LatentResizer(in_blocks, out_blocks, channels, True)


def load_vae(base: Path) -> torch.nn.Module:
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_pretrained(base, subfolder="vae").eval()


def factor(vae: torch.nn.Module) -> int:
    """Image pixels per latent pixel: one halving per encoder block but the last."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def sides(vae: torch.nn.Module) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """The demo image's latent side, the larger sides trained (every other one up to 2x: the network takes
    the scale, so the sides between are read in between), those measured (1.5 and 2)."""
    low = data.IMAGE_SIZE // factor(vae)
    return low, tuple(range(low + 2, 2 * low + 1, 2)), (low * 3 // 2, 2 * low)


@torch.no_grad()
def pairs(n: int, seed: int, vae: torch.nn.Module, larger: tuple[int, ...]) -> dict[int, tuple]:
    """For each larger latent side t, n shapes' (64 px latents, latents of side t, their renders [n, 3, ft, ft]
    in 0..1 for the VAE factor f): NodeForge's scaled latents (the distribution's mode, as VAE Encode gives)."""
    rng = np.random.default_rng(seed)
    out = {}
    for side in larger:
        samples = [data.random_sample(rng) for _ in range(n)]
        low = np.stack([data.render(s, data.IMAGE_SIZE) for s in samples])
        high = np.stack([data.render(s, factor(vae) * side) for s in samples])
        out[side] = (common.encode_images(vae, low, torch.device("cpu")),
                     common.encode_images(vae, high, torch.device("cpu")),
                     torch.from_numpy(high).permute(0, 3, 1, 2).float().div(255.0))
    return out


def bilinear(latents: torch.Tensor, side: int) -> torch.Tensor:
    """What Upscale Latent By (bilinear) gives."""
    return F.interpolate(latents, size=(side, side), mode="bilinear", align_corners=False)


def upscale(model: torch.nn.Module, latents: torch.Tensor, side: int, vae_scale: float) -> torch.Tensor:
    """The node's computation: NodeForge latents to the pack's units (VAE values x 0.13025) and back."""
    from nodeforge.core.registry import builtin_module

    k = builtin_module("latent_resizer").LATENT_SCALE / vae_scale
    return model(latents * k, side / latents.shape[-1]) / k


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over images of the PSNR (dB) of images in 0..1, after rounding to 8 bits as saved."""
    a = (a.clamp(0, 1) * 255).round() / 255
    mse = (a - b).pow(2).mean(dim=(1, 2, 3)).clamp(min=1e-10)
    return float((10 * torch.log10(1 / mse)).mean())


@torch.no_grad()
def measure(model: torch.nn.Module, vae: torch.nn.Module, n: int) -> dict:
    """Latent MSE against the VAE latent of the larger image, and decoded PSNR against its render, for
    the model and for bilinear, on n held-out shapes per measured side."""
    model.eval()
    scale = float(vae.config.scaling_factor)
    result: dict = {"held_out_images": n, "held_out_seed": HELD_OUT_SEED}
    for side, (low, high, render) in pairs(n, HELD_OUT_SEED, vae, sides(vae)[2]).items():
        name = f"x{side / low.shape[-1]:g}"
        ours, plain = upscale(model, low, side, scale), bilinear(low, side)
        result[f"{name}_latent_mse_model"] = round(float(F.mse_loss(ours, high)), 5)
        result[f"{name}_latent_mse_bilinear"] = round(float(F.mse_loss(plain, high)), 5)
        decoded = [vae.decode(z / scale).sample.add(1).div(2) for z in (ours, plain, high)]
        result[f"{name}_psnr_model"] = round(psnr(decoded[0], render), 2)
        result[f"{name}_psnr_bilinear"] = round(psnr(decoded[1], render), 2)
        result[f"{name}_psnr_vae_ceiling"] = round(psnr(decoded[2], render), 2)
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = common.TrainerParser(
        prog="nodeforge train-latent-upscaler",
        description="Train a small NN latent upscaler (ComfyUi_NNLatentUpscale's network) on the demo model's "
                    "latents (16 x 16 -> 18 to 32 per side); writes a .safetensors Upscale Latent (Neural Network) "
                    "reads from models/latent_upscale_models.")
    p.add_argument("--out", required=True, type=Path, help="output .safetensors")
    p.add_argument("--base", default="nodeforge-shapes", help="demo model whose VAE makes the latents")
    p.add_argument("--images", metavar="N", type=common.COUNT, default=100,
                   help="training shapes per larger latent side (8 sides for the demo model)")
    p.add_argument("--channels", metavar="N", type=common.whole(32, 1024, multiple=32), default=32,
                   help="channels of the blocks (GroupNorm of 32 groups: a multiple of 32)")
    p.add_argument("--blocks", metavar="N", type=common.whole(2, 32), default=2,
                   help="residual blocks before and after the resize")
    p.add_argument("--steps", metavar="N", type=common.COUNT, default=1200, help="optimizer steps")
    p.add_argument("--lr", metavar="RATE", type=common.RATE, default=2e-3,
                   help="Adam learning rate (50-step warm-up, cosine decay to 1/20)")
    p.add_argument("--batch", metavar="N", type=common.COUNT, default=16, help="latents per step")
    p.add_argument("--held-out", metavar="N", type=common.COUNT, default=100,
                   help="held-out shapes per measured scale (1.5 and 2)")
    p.add_argument("--seed", metavar="N", type=common.SEED, default=0, help="seed of the weights and batches")
    p.add_argument("--threads", metavar="N", type=common.COUNT, default=1, help="CPU threads torch may use")
    p.add_argument("--measure-only", action="store_true", help="only measure the model at --out")
    p.add_argument("--json", type=Path, help="write the measured numbers here")
    return p.parse_args(argv)


def load(path: Path) -> tuple[torch.nn.Module, float]:
    """The resizer saved at `path` (through the node's own reader) and the VAE scaling factor it was made for."""
    from nodeforge.core.registry import builtin_module

    model = builtin_module("latent_resizer").read_resizer(common.model_file(path, "latent upscaler"), "cpu")
    return model, model.vae_scale


def train(model: torch.nn.Module, sets: dict, args: argparse.Namespace, scale: float) -> float:
    """Adam on the latent MSE, one larger side per step (drawn at random); the training seconds."""
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    progress = common.Progress(args.steps, name="train-latent-upscaler")
    t0 = time.time()
    model.train()
    for step in range(args.steps):
        side = list(sets)[int(torch.randint(len(sets), (1,), generator=gen))]
        low, high, _ = sets[side]
        idx = torch.randint(len(low), (args.batch,), generator=gen)
        loss = F.mse_loss(upscale(model, low[idx], side, scale), high[idx])
        for group in opt.param_groups:
            group["lr"] = common.warm_cosine_lr(step, args.steps, args.lr)
        common.optimizer_step(opt, loss, clip=model.parameters())
        progress.update(step + 1, loss.item())
    return time.time() - t0


@common.guarded("train-latent-upscaler")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from safetensors.torch import save

    from nodeforge.core.files import atomic_write_bytes

    common.start(args.threads, args.seed)
    base = common.resolve_base(args.base, "train-latent-upscaler", ("vae",))
    common.writable_output(args.json, "numbers (JSON)", "--json")
    vae = load_vae(base)
    if args.measure_only:
        model, scale = load(args.out)
        common.report(measure(model, vae, args.held_out), args.json)
        return 0
    common.writable_output(args.out, "latent upscaler (.safetensors)")
    scale = float(vae.config.scaling_factor)
    t0 = time.time()
    sets = pairs(args.images, TRAIN_SEED + args.seed, vae, sides(vae)[1])
    print(f"train-latent-upscaler: {args.images} shapes x {len(sets)} sides encoded in {time.time() - t0:.0f} s",
          file=sys.stderr)
    model = network(args.blocks, args.blocks, args.channels)
    train_s = train(model, sets, args, scale)
    numbers = measure(model, vae, args.held_out)
    numbers.update(steps=args.steps, train_s=round(train_s, 1), channels=args.channels, blocks=args.blocks,
                   images_per_side=args.images, parameters=sum(p.numel() for p in model.parameters()))
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    metadata = {"nodeforge_trainer": "nodeforge.training.latent_upscaler", "architecture": "NNLatentUpscale LatentResizer",
                SCALE_KEY: repr(scale), **{k: str(v) for k, v in numbers.items()}}
    atomic_write_bytes(args.out, save(state, metadata=metadata))
    common.report(numbers, args.json)
    print(f"train-latent-upscaler: wrote {args.out} ({args.out.stat().st_size // 1024} KiB) in {time.time() - t0:.0f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
