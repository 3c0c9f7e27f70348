"""Train a small 4x upscaler (Real-ESRGAN's SRVGGNetCompact) on demo images, 64 px -> 256 px.

    nodeforge train-upscaler --out resources/upscale_models/shapes-x4.safetensors [--steps N ...]
    python -m nodeforge.training.upscaler --out x.safetensors --measure-only  (PSNR of a saved model)

Pairs come from the demo data generator (nodeforge.training.data): the same shape drawn at 64 px
(what the demo model makes) and at 256 px (the ground truth, anti-aliased the same way), so the
network learns to draw edges at the higher resolution rather than to undo a blur of our choosing.
A fraction of the 64 px inputs first goes through the demo model's VAE (encode + decode), so the
upscaler also sharpens decoded images, which are a little soft and off-palette, into flat shapes.

The file holds the network in Real-ESRGAN's `body.N.weight` layout, which the built-in
UpscaleModelLoader (and spandrel, and ComfyUI) read as a Compact model with the scale taken from
the last convolution's width. Quality is PSNR on held-out images against bicubic upscaling.
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

SCALE = 4
HIGH = data.IMAGE_SIZE * SCALE
TRAIN_SEED = 101
HELD_OUT_SEED = 90210  # never used for training images


def compact(feat: int, convs: int) -> torch.nn.Module:
    """The built-in pack's own Compact network, so the saved keys are exactly those it loads."""
    from nodeforge.core.registry import builtin_module

    return builtin_module("upscale").Compact(3, 3, feat, convs, SCALE)


def pairs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n (64 px, 256 px) renders of the same random shapes: [n, 3, 64, 64] and [n, 3, 256, 256] in 0..1."""
    rng = np.random.default_rng(seed)
    samples = [data.random_sample(rng) for _ in range(n)]
    low = np.stack([data.render(s, data.IMAGE_SIZE) for s in samples])
    high = np.stack([data.render(s, HIGH) for s in samples])

    def as_tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).permute(0, 3, 1, 2).float().div(255.0)

    return as_tensor(low), as_tensor(high)


@torch.no_grad()
def vae_roundtrip(images: torch.Tensor, base: Path) -> torch.Tensor:
    """Images encoded and decoded by the demo model's VAE: what VAEDecode hands an upscaler."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(base, subfolder="vae").eval()
    out = []
    for i in range(0, len(images), 64):
        x = images[i:i + 64] * 2 - 1
        out.append(vae.decode(vae.encode(x).latent_dist.mode()).sample.add(1).div(2).clamp(0, 1))
    return torch.cat(out)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over images of the PSNR (dB) of images in 0..1, after rounding to 8 bits as saved."""
    a = (a.clamp(0, 1) * 255).round() / 255
    mse = (a - b).pow(2).mean(dim=(1, 2, 3)).clamp(min=1e-10)
    return float((10 * torch.log10(1 / mse)).mean())


def bicubic(low: torch.Tensor) -> torch.Tensor:
    return F.interpolate(low, scale_factor=SCALE, mode="bicubic", align_corners=False).clamp(0, 1)


@torch.no_grad()
def measure(model: torch.nn.Module, n: int, base: Path | None) -> dict:
    """PSNR of the model and of bicubic on n held-out images, clean renders and VAE-decoded ones."""
    model.eval()
    low, high = pairs(n, HELD_OUT_SEED)
    result = {"held_out_images": n, "held_out_seed": HELD_OUT_SEED}
    sets = [("clean", low)] + ([("vae", vae_roundtrip(low, base))] if base is not None else [])
    for name, x in sets:
        up = torch.cat([model(x[i:i + 32]) for i in range(0, len(x), 32)])
        result[f"{name}_psnr_model"] = round(psnr(up, high), 2)
        result[f"{name}_psnr_bicubic"] = round(psnr(bicubic(x), high), 2)
        result[f"{name}_gain_db"] = round(result[f"{name}_psnr_model"] - result[f"{name}_psnr_bicubic"], 2)
    return result


def edge_pixels(high: torch.Tensor) -> list[torch.Tensor]:
    """Per image, the 64 px coordinates (y, x) of pixels on the shape's outline."""
    out = []
    for image in high:
        small = F.avg_pool2d(image[None], SCALE)[0]
        flat = (small - small[:, :1, :1]).abs().sum(0) < 1e-3   # the background colour (a corner pixel)
        shape = ~flat
        grown = F.max_pool2d(shape[None, None].float(), 3, 1, 1)[0, 0] > 0
        shrunk = -F.max_pool2d(-shape[None, None].float(), 3, 1, 1)[0, 0] > 0
        out.append(torch.nonzero(grown & ~shrunk))
    return out


def crops(low: torch.Tensor, high: torch.Tensor, edges: list[torch.Tensor], idx: torch.Tensor, c: int,
          gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """c x c input crops (and their ground truth) around a random outline pixel of each image: the
    edges are where an upscaler has anything to learn."""
    lows, highs = [], []
    for i in idx.tolist():
        points = edges[i]
        y, x = points[int(torch.randint(len(points), (1,), generator=gen))].tolist() if len(points) else (32, 32)
        y = min(max(y - c // 2 + int(torch.randint(-c // 4, c // 4 + 1, (1,), generator=gen)), 0), data.IMAGE_SIZE - c)
        x = min(max(x - c // 2 + int(torch.randint(-c // 4, c // 4 + 1, (1,), generator=gen)), 0), data.IMAGE_SIZE - c)
        lows.append(low[i, :, y:y + c, x:x + c])
        highs.append(high[i, :, y * SCALE:(y + c) * SCALE, x * SCALE:(x + c) * SCALE])
    return torch.stack(lows), torch.stack(highs)


def _augment(low: torch.Tensor, high: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    k = int(torch.randint(4, (1,), generator=gen))
    if k:
        low, high = low.rot90(k, (2, 3)), high.rot90(k, (2, 3))
    if torch.rand(1, generator=gen) < 0.5:
        low, high = low.flip(3), high.flip(3)
    return low, high


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = common.TrainerParser(
        prog="nodeforge train-upscaler",
        description="Train a small 4x Real-ESRGAN Compact upscaler on generated demo shapes (64 px -> 256 px); "
                    "writes a .safetensors the Load Upscale Model node (and ComfyUI) read.")
    p.add_argument("--out", required=True, type=Path, help="output .safetensors")
    p.add_argument("--base", default="nodeforge-shapes", help="demo model whose VAE degrades some inputs")
    p.add_argument("--images", metavar="N", type=common.COUNT, default=1200, help="training image pairs")
    p.add_argument("--vae-fraction", metavar="F", type=common.SHARE, default=0.25,
                   help="share of inputs passed through the base model's VAE first")
    p.add_argument("--feat", metavar="N", type=common.whole(1, 1024), default=32, help="channels of each convolution")
    p.add_argument("--convs", metavar="N", type=common.whole(1, 256), default=8, help="hidden 3x3 convolutions")
    p.add_argument("--steps", metavar="N", type=common.COUNT, default=3000, help="optimizer steps")
    p.add_argument("--lr", metavar="RATE", type=common.RATE, default=2e-3,
                   help="Adam learning rate (50-step warm-up, cosine decay to 1/20)")
    p.add_argument("--batch", metavar="N", type=common.COUNT, default=32, help="crops per step")
    p.add_argument("--crop", metavar="PX", type=common.whole(1, data.IMAGE_SIZE, why=(
                   f" (crops of the {data.IMAGE_SIZE} px inputs)")), default=32, help="side of the 64 px input crops")
    p.add_argument("--held-out", metavar="N", type=common.COUNT, default=200, help="held-out images for the PSNR")
    p.add_argument("--seed", metavar="N", type=common.SEED, default=0,
                   help="seed of the weights, crops and augmentations")
    p.add_argument("--threads", metavar="N", type=common.COUNT, default=2, help="CPU threads torch may use")
    p.add_argument("--measure-only", action="store_true", help="only measure the PSNR of the model at --out")
    p.add_argument("--json", type=Path, help="write the measured numbers here")
    return p.parse_args(argv)


def load(path: Path) -> torch.nn.Module:
    """The Compact upscaler saved at `path`; a file that is not one (keys, shapes) is refused naming
    it, checked against a model built on the meta device before any memory is taken."""
    state = common.read_tensors(path, "upscaler")
    first = state.get("body.0.weight")
    layers = [int(k.split(".")[1]) for k in state if k.endswith(".weight") and k.split(".")[1].isdigit()]
    if first is None or first.ndim != 4 or not layers or (max(layers) - 2) // 2 < 1:
        raise common.TrainingInputError(f"{path} is not a Compact upscaler (no body.N.weight convolutions)")
    feat, convs = first.shape[0], (max(layers) - 2) // 2
    with torch.device("meta"):
        expected = compact(feat, convs).state_dict()
    wrong = sorted(set(expected) ^ set(state)) or [k for k in expected if expected[k].shape != state[k].shape]
    if wrong:
        raise common.TrainingInputError(f"{path} does not fit a {SCALE}x Compact upscaler of {feat} channels and "
                                        f"{convs} convolutions (e.g. {wrong[0]}); train it with train-upscaler")
    model = compact(feat, convs)
    model.load_state_dict(state)
    return model


@common.guarded("train-upscaler")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from safetensors.torch import save

    from nodeforge.core.files import atomic_write_bytes

    common.start(args.threads, args.seed)
    base = common.resolve_base(args.base, "train-upscaler", ("vae",))
    common.writable_output(args.json, "numbers (JSON)", "--json")
    if args.measure_only:
        common.report(measure(load(args.out), args.held_out, base), args.json)
        return 0
    common.writable_output(args.out, "upscaler (.safetensors)")

    t0 = time.time()
    low, high = pairs(args.images, TRAIN_SEED + args.seed)
    degraded = int(round(args.vae_fraction * len(low)))
    if degraded:
        low[:degraded] = vae_roundtrip(low[:degraded], base)
    print(f"train-upscaler: {len(low)} pairs ({degraded} through the VAE) in {time.time() - t0:.0f} s",
          file=sys.stderr)

    model = compact(args.feat, args.convs)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    progress = common.Progress(args.steps, name="train-upscaler")
    c = args.crop
    edges = edge_pixels(high)
    t1 = time.time()
    for step in range(args.steps):
        idx = torch.randint(len(low), (args.batch,), generator=gen)
        lo, hi = crops(low, high, edges, idx, c, gen)
        lo, hi = _augment(lo, hi, gen)
        # MSE, not L1: flat areas are most pixels and nearest upscaling is exact there, so with L1
        # the residual's median stays 0 and the network never leaves nearest upscaling (measured).
        loss = F.mse_loss(model(lo), hi)
        for group in opt.param_groups:
            group["lr"] = common.warm_cosine_lr(step, args.steps, args.lr)
        common.optimizer_step(opt, loss, clip=model.parameters())   # at 3e-3 without it the loss blew up at step 200
        progress.update(step + 1, loss.item())
    train_s = time.time() - t1

    numbers = measure(model, args.held_out, base)
    numbers.update(steps=args.steps, train_s=round(train_s, 1), feat=args.feat, convs=args.convs,
                   images=args.images, vae_fraction=args.vae_fraction)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    metadata = {"nodeforge_trainer": "nodeforge.training.upscaler", "architecture": "SRVGGNetCompact",
                "scale": str(SCALE), **{k: str(v) for k, v in numbers.items()}}
    atomic_write_bytes(args.out, save(state, metadata=metadata))
    common.report(numbers, args.json)
    print(f"train-upscaler: wrote {args.out} ({args.out.stat().st_size // 1024} KiB) in {time.time() - t0:.0f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
