"""Train the bundled demo model `nodeforge-shapes` from generated shape images.

    python -m nodeforge.training.shapes --out resources/models/nodeforge-shapes

Stages: generate data -> build tokenizer -> train VAE -> encode latents once -> train UNet and
text encoder jointly (EMA) -> save a diffusers folder -> fine-tune the VAE decoder only.
Tiny pilot: --images 512 --vae-steps 30 --unet-steps 40 --decoder-steps 4 --workdir /tmp/pilot.
Seeded and resumable: each stage keeps a checkpoint in --workdir, so a killed run continues
where it stopped.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nodeforge.training import common, data, models, vocab
from nodeforge.training.common import due, optimizer_step, start


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two [-1, 1] batches, measured on the [0, 1] range."""
    mse = ((a.clamp(-1, 1) - b.clamp(-1, 1)) / 2).pow(2).mean().item()
    return 10 * math.log10(1.0 / max(mse, 1e-12))


class EMA:
    """Exponential moving average of parameters, with the usual warm-up of the decay."""

    def __init__(self, modules: list[torch.nn.Module], decay: float):
        self.params = [p for m in modules for p in m.parameters()]
        self.shadow = [p.detach().clone() for p in self.params]
        self.decay = decay
        self.steps = 0

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for s, p in zip(self.shadow, self.params):
            s.lerp_(p.detach(), 1 - d)

    @torch.no_grad()
    def copy_to(self, modules: list[torch.nn.Module]) -> None:
        params = [p for m in modules for p in m.parameters()]
        for s, p in zip(self.shadow, params):
            p.copy_(s)


def lr_at(step: int, total: int, base: float, warmup: int, floor: float = 0.1) -> float:
    """Linear warm-up, then a cosine decay from `base` down to `floor * base`."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def load_checkpoint(path: Path, device) -> dict | None:
    """A stage's resume state, or None. Tensors and plain values only: never unpickles code."""
    return torch.load(path, map_location=device, weights_only=True) if path.exists() else None


def batch_sampler(seed: int, done: int, n: int, batch: int) -> torch.Generator:
    """The generator that draws batch indices, advanced past `done` steps, so a resumed run sees
    the same batches as an uninterrupted one."""
    gen = torch.Generator().manual_seed(seed)
    for _ in range(done):
        torch.randint(n, (batch,), generator=gen)
    return gen


def edge_weight(x: torch.Tensor, extra: float) -> torch.Tensor:
    """Per-pixel loss weight 1 + `extra` on and next to the shape's outline (where the 3x3
    neighbourhood of the target is not flat), (N, 1, H, W). Flat regions are nearly all of a
    64x64 shape image, so a plain mean lets the decoder round small squares and triangles off
    and still score 30 dB; the outline is where the shape lives."""
    spread = F.max_pool2d(x, 3, 1, 1) + F.max_pool2d(-x, 3, 1, 1)  # local max - local min
    return 1.0 + extra * (spread.amax(dim=1, keepdim=True) > 0.05).float()


def recon_loss(rec: torch.Tensor, x: torch.Tensor, edge_extra: float) -> torch.Tensor:
    err = (rec - x).pow(2) + 0.1 * (rec - x).abs()
    if not edge_extra:
        return err.mean()
    w = edge_weight(x, edge_extra)
    return (err * w).mean() / w.mean()


def train_vae(args, images: np.ndarray, held_out: np.ndarray, device, work: Path, report: dict):
    vae = models.make_vae(tuple(args.vae_channels)).to(device)
    opt = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, weight_decay=0.0)
    ckpt = work / "vae.pt"
    start, elapsed = 0, 0.0
    if state := load_checkpoint(ckpt, device):
        vae.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start, elapsed = state["step"], state["elapsed"]
        log(f"vae: resumed at step {start}")
    gen = batch_sampler(args.seed + 1, start, len(images), args.vae_batch)
    test = to_tensor(held_out[: args.eval_images]).to(device)
    t0 = time.time() - elapsed
    vae.train()
    for step in range(start, args.vae_steps):
        idx = torch.randint(len(images), (args.vae_batch,), generator=gen)
        x = to_tensor(images[idx.numpy()]).to(device)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.vae_steps, args.vae_lr, 100)
        posterior = vae.encode(x).latent_dist
        rec = vae.decode(posterior.sample()).sample
        rec_loss = recon_loss(rec, x, args.vae_edge_weight)
        kl = posterior.kl().mean() / x[0].numel()
        loss = rec_loss + args.vae_kl * kl
        optimizer_step(opt, loss, clip=vae.parameters())
        done = step + 1
        if due(done, args.log_every, args.vae_steps):
            log(f"vae step {done}/{args.vae_steps} loss {loss.item():.5f} kl {kl.item():.4f} "
                f"{(time.time() - t0) / done:.2f}s/step (avg incl. any resumed part)")
        if due(done, args.ckpt_every, args.vae_steps):
            vae.eval()
            with torch.no_grad():
                p = psnr(vae.decode(vae.encode(test).latent_dist.mode()).sample, test)
            vae.train()
            log(f"vae step {done}: held-out PSNR {p:.2f} dB")
            torch.save({"model": vae.state_dict(), "opt": opt.state_dict(), "step": done,
                        "elapsed": time.time() - t0}, ckpt)
    vae.eval()
    with torch.no_grad():
        report["vae_psnr_db"] = round(psnr(vae.decode(vae.encode(test).latent_dist.mode()).sample, test), 2)
    report["vae_seconds"] = round(time.time() - t0, 1)
    report["vae_steps"] = args.vae_steps
    log(f"vae done: PSNR {report['vae_psnr_db']} dB in {report['vae_seconds']} s")
    return vae


@torch.no_grad()
def encode_latents(vae, images: np.ndarray, device, batch: int = 256) -> torch.Tensor:
    out = []
    for i in range(0, len(images), batch):
        out.append(vae.encode(to_tensor(images[i:i + batch]).to(device)).latent_dist.mode().cpu())
    return torch.cat(out)


def encode_prompts(tokenizer, text_encoder, prompts: list[str], device) -> torch.Tensor:
    ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True, return_tensors="pt").input_ids.to(device)
    return text_encoder(ids)[0]


def make_denoiser(args, tokenizer, device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The fresh UNet and text encoder of the demo model (seeded: the same args give the same weights)."""
    torch.manual_seed(args.seed + 2)
    unet = models.make_unet(tuple(args.unet_channels), args.unet_layers,
                            attention_from=args.unet_attention_from).to(device)
    text_encoder = models.make_text_encoder(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id,
                                            args.text_layers).to(device)
    return unet, text_encoder


def resume_unet(ckpt: Path, device, unet, text_encoder, opt, ema: EMA) -> tuple[int, float]:
    """(steps done, seconds spent) of the UNet stage, its state loaded from `ckpt`; (0, 0.0) without one."""
    state = load_checkpoint(ckpt, device)
    if not state:
        return 0, 0.0
    unet.load_state_dict(state["unet"])
    text_encoder.load_state_dict(state["text_encoder"])
    opt.load_state_dict(state["opt"])
    ema.shadow = [s.to(device) for s in state["ema"]]
    ema.steps = state["step"]
    log(f"unet: resumed at step {state['step']}")
    return state["step"], state["elapsed"]


def train_unet(args, latents: torch.Tensor, samples, tokenizer, device, work: Path, report: dict):
    from diffusers import DDPMScheduler

    unet, text_encoder = make_denoiser(args, tokenizer, device)
    noise_scheduler = DDPMScheduler(**models.NOISE_SCHEDULE)
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=args.unet_lr, weight_decay=1e-2)
    ema = EMA([unet, text_encoder], args.ema_decay)
    ckpt = work / "unet.pt"
    start, elapsed = resume_unet(ckpt, device, unet, text_encoder, opt, ema)
    rng = np.random.default_rng(args.seed + 3 + start)  # captions differ after a resume; data order does not
    gen = batch_sampler(args.seed + 4, start, len(latents), args.unet_batch)
    alphas = noise_scheduler.alphas_cumprod.to(device)
    snr = alphas / (1 - alphas)
    t0 = time.time() - elapsed
    unet.train()
    text_encoder.train()
    for step in range(start, args.unet_steps):
        idx = torch.randint(len(latents), (args.unet_batch,), generator=gen)
        z0 = latents[idx].to(device)
        prompts = [data.caption(samples[i], rng) for i in idx.tolist()]
        noise = models.training_noise(z0.shape, gen, args.offset_noise).to(device)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(z0),), generator=gen).to(device)
        zt = noise_scheduler.add_noise(z0, noise, t)
        cond = encode_prompts(tokenizer, text_encoder, prompts, device)
        pred = unet(zt, t, encoder_hidden_states=cond).sample
        loss = models.min_snr_loss(pred, noise, snr[t])
        for group in opt.param_groups:
            # Warm-up, then a cosine decay to 5% over --unet-steps. (A constant LR, annealed by
            # the EMA alone, measured no better at 3,400 steps than at 2,800.)
            group["lr"] = lr_at(step, args.unet_steps, args.unet_lr, 200, floor=0.05)
        optimizer_step(opt, loss, clip=params)
        ema.update()
        done = step + 1
        if due(done, args.log_every, args.unet_steps):
            log(f"unet step {done}/{args.unet_steps} loss {loss.item():.4f} "
                f"{(time.time() - t0) / max(1, done):.2f}s/step (avg)")
        if due(done, args.ckpt_every, args.unet_steps):
            torch.save({"unet": unet.state_dict(), "text_encoder": text_encoder.state_dict(),
                        "opt": opt.state_dict(), "ema": ema.shadow, "step": done,
                        "elapsed": time.time() - t0}, ckpt)
            if done < args.unet_steps and args.save_partial:
                yield_model = (unet, text_encoder, ema, done)
                yield yield_model
    report["unet_seconds"] = round(time.time() - t0, 1)
    report["unet_steps"] = args.unet_steps
    log(f"unet done in {report['unet_seconds']} s")
    yield (unet, text_encoder, ema, args.unet_steps)


def save_pipeline(out: Path, vae, unet, text_encoder, tokenizer, ema: EMA | None, report: dict) -> None:
    import copy

    from diffusers import StableDiffusionPipeline

    unet_s, te_s = copy.deepcopy(unet).cpu().eval(), copy.deepcopy(text_encoder).cpu().eval()
    if ema is not None:
        ema_cpu = EMA([unet_s, te_s], ema.decay)
        ema_cpu.shadow = [s.detach().cpu() for s in ema.shadow]
        ema_cpu.copy_to([unet_s, te_s])
    scheduler = models.make_scheduler()
    pipe = StableDiffusionPipeline(
        vae=copy.deepcopy(vae).cpu().eval(), text_encoder=te_s, tokenizer=tokenizer, unet=unet_s,
        scheduler=scheduler, safety_checker=None, feature_extractor=None, image_encoder=None,
        requires_safety_checker=False,
    )
    out.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(out, safe_serialization=True)
    (out / "training.json").write_text(json.dumps(report, indent=2) + "\n")
    log(f"saved pipeline to {out}")


def parse_args(argv: list[str] | None):
    p = common.TrainerParser(prog="python -m nodeforge.training.shapes", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("resources/models/nodeforge-shapes"))
    p.add_argument("--workdir", type=Path, default=Path(".train/shapes"), help="checkpoints and cached data")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=common.SEED, default=0)
    p.add_argument("--threads", type=common.COUNT, default=2)
    p.add_argument("--images", type=common.COUNT, default=24000, help="training images")
    p.add_argument("--eval-images", type=common.COUNT, default=256, help="held-out images for the VAE's PSNR")
    p.add_argument("--vae-steps", type=common.COUNT, default=1500)
    p.add_argument("--vae-batch", type=common.COUNT, default=8)
    p.add_argument("--vae-lr", type=common.RATE, default=1e-3)
    p.add_argument("--vae-kl", type=common.STD, default=1e-4)
    p.add_argument("--vae-edge-weight", type=common.STD, default=0.0,
                   help="extra reconstruction-loss weight on shape outlines (0: plain mean)")
    p.add_argument("--vae-channels", type=common.COUNT, nargs="+", default=[32, 64, 64])
    p.add_argument("--decoder-steps", type=common.whole(0), default=800,
                   help="final decoder-only fine-tune steps (0: none)")
    p.add_argument("--decoder-edge-weight", type=common.STD, default=5.0,
                   help="extra decoder fine-tune loss weight on shape outlines (keeps small corners sharp)")
    p.add_argument("--decoder-lr", type=common.RATE, default=3e-4)
    p.add_argument("--decoder-latent-noise", type=common.STD, nargs="+", default=[0.0, 0.0, 0.3],
                   help="one decoder fine-tune pass per value (each restarts its LR schedule on the same "
                        "batches): the pass adds Gaussian noise of std U(0, value), in scaled latent units, "
                        "to the latents, so the decoder draws clean shapes from a sampler's never exact "
                        "latents (0: clean latents)")
    p.add_argument("--decoder-only", action="store_true", help="only fine-tune the decoder of the saved --out")
    p.add_argument("--unet-steps", type=common.COUNT, default=11500)
    p.add_argument("--unet-batch", type=common.COUNT, default=32)
    p.add_argument("--unet-lr", type=common.RATE, default=8e-4)
    p.add_argument("--unet-channels", type=common.COUNT, nargs="+", default=[64, 128, 128])
    p.add_argument("--offset-noise", type=common.STD, default=0.15,
                   help="std of the per-channel noise offset (0: none)")
    p.add_argument("--unet-layers", type=common.COUNT, default=1)
    p.add_argument("--unet-attention-from", type=common.whole(0), default=1,
                   help="first UNet level with attention (1: none at the full 16x16 latent resolution)")
    p.add_argument("--text-layers", type=common.COUNT, default=3)
    p.add_argument("--ema-decay", type=common.SHARE, default=0.999)
    p.add_argument("--log-every", type=common.COUNT, default=50)
    p.add_argument("--ckpt-every", type=common.COUNT, default=100)
    p.add_argument("--save-partial", action="store_true", help="also save the pipeline at each UNet checkpoint")
    args = p.parse_args(argv)
    problem = channel_problem(args)
    if problem:
        p.error(problem)
    return args


def channel_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the networks' widths (they must fit the VAE's factor, the group norms and
    the attention heads), or None."""
    factor = models.VAE_FACTOR
    if 2 ** (len(args.vae_channels) - 1) != factor:
        return f"argument --vae-channels: give {factor.bit_length()} widths (the VAE's factor is {factor})"
    unet_multiple = math.lcm(min(32, args.unet_channels[0]), 4)   # group norms and 4 attention heads
    for flag, widths, multiple in (("--vae-channels", args.vae_channels, min(32, args.vae_channels[0])),
                                   ("--unet-channels", args.unet_channels, unet_multiple)):
        if any(w % multiple for w in widths):
            return f"argument {flag}: every width must be a multiple of {multiple} (group norms and attention heads)"
    if args.unet_attention_from >= len(args.unet_channels):
        return f"argument --unet-attention-from: use a level below {len(args.unet_channels)} (the UNet's levels)"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = start(args.threads, args.seed, args.device, "shapes")
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {"command": "python -m nodeforge.training.shapes " + " ".join(argv if argv is not None else sys.argv[1:]),
                    "device": str(device), "torch": torch.__version__, "seed": args.seed}
    t_all = time.time()
    if args.decoder_only:
        for noise in args.decoder_latent_noise:
            finetune_decoder(args, device, noise)
        return 0

    t = time.time()
    images, samples = data.generate(args.images, args.seed)
    held_out, _ = data.generate(args.eval_images, args.seed + 1000)
    report["data_seconds"] = round(time.time() - t, 1)
    log(f"generated {len(images)} training + {len(held_out)} held-out images in {report['data_seconds']} s")

    tokenizer = vocab.build_tokenizer()
    log(f"tokenizer: {len(tokenizer)} tokens")

    torch.manual_seed(args.seed + 5)
    vae = train_vae(args, images, held_out, device, work, report)

    t = time.time()
    latents = encode_latents(vae, images, device)
    std = latents.std().item()
    vae.register_to_config(scaling_factor=round(1.0 / std, 5))
    latents = latents * vae.config.scaling_factor
    report["latent_std"] = round(std, 5)
    report["scaling_factor"] = vae.config.scaling_factor
    report["latents_seconds"] = round(time.time() - t, 1)
    log(f"latents {tuple(latents.shape)} std {std:.4f} -> scaling_factor {vae.config.scaling_factor} "
        f"({report['latents_seconds']} s)")

    for unet, text_encoder, ema, step in train_unet(args, latents, samples, tokenizer, device, work, report):
        report["saved_at_unet_step"] = step
        # Stage times, not wall time since start: a resumed run counts its earlier part too.
        report["total_seconds"] = round(sum(report.get(k, 0.0) for k in (
            "data_seconds", "vae_seconds", "latents_seconds", "unet_seconds")), 1)
        save_pipeline(args.out, vae, unet, text_encoder, tokenizer, ema, report)
    for noise in args.decoder_latent_noise if args.decoder_steps else []:
        finetune_decoder(args, device, noise)
    # Step previews are fitted last, on what the finished UNet and decoder make.
    from nodeforge.training.preview import write_latent_preview

    write_latent_preview(Path(args.out), seed=args.seed, log=log)
    log(f"all done in {time.time() - t_all:.0f} s")
    return 0


def finetune_decoder(args, device, latent_noise: float = 0.0) -> None:
    """Sharpen the saved VAE's decoder on fresh images with the encoder frozen: the latent space
    the UNet learned stays exactly the same, only reconstructions improve. With `latent_noise`
    (the last pass, by default) the decoder also learns to draw the clean shape from a slightly
    wrong latent, which is what a sampler hands it: with latent noise of std 0.2, the judge saw
    88.7% of the previous model's shapes after such a pass, against 80.5% before it."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(args.out, subfolder="vae").to(device)
    vae.requires_grad_(False)
    decoder_params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    for p in decoder_params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(decoder_params, lr=args.decoder_lr, weight_decay=0.0)
    images, _ = data.generate(args.images, args.seed + 2000)
    held_out, _ = data.generate(args.eval_images, args.seed + 1000)
    test = to_tensor(held_out).to(device)
    gen = torch.Generator().manual_seed(args.seed + 6)

    def held_out_psnr() -> float:
        with torch.no_grad():
            return psnr(vae.decode(vae.encode(test).latent_dist.mode()).sample, test)

    before, t0 = held_out_psnr(), time.time()
    vae.decoder.train()
    for step in range(args.decoder_steps):
        idx = torch.randint(len(images), (args.vae_batch,), generator=gen)
        x = to_tensor(images[idx.numpy()]).to(device)
        with torch.no_grad():
            z = vae.encode(x).latent_dist.mode()
            if latent_noise:
                sigma = latent_noise * torch.rand(len(z), 1, 1, 1, generator=gen)
                z = z + sigma.to(device) / vae.config.scaling_factor * torch.randn(z.shape, generator=gen).to(device)
        rec = vae.decode(z).sample
        loss = recon_loss(rec, x, args.decoder_edge_weight)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.decoder_steps, args.decoder_lr, 20)
        optimizer_step(opt, loss)
        if (step + 1) % args.log_every == 0:
            log(f"decoder step {step + 1}/{args.decoder_steps} loss {loss.item():.5f}")
    vae.eval()
    after = held_out_psnr()
    log(f"decoder fine-tune: held-out PSNR {before:.2f} -> {after:.2f} dB in {time.time() - t0:.0f} s")
    if after > before:
        vae.save_pretrained(Path(args.out) / "vae", safe_serialization=True)
        report_path = Path(args.out) / "training.json"
        report = json.loads(report_path.read_text()) if report_path.exists() else {}
        report.setdefault("vae_psnr_db_before_decoder", round(before, 2))
        report.setdefault("decoder_passes", []).append(
            {"steps": args.decoder_steps, "latent_noise": latent_noise, "seconds": round(time.time() - t0, 1),
             "psnr_db": round(after, 2)})
        report["vae_psnr_db"] = round(after, 2)
        report["total_seconds"] = round(report.get("total_seconds", 0.0) + time.time() - t0, 1)
        report_path.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
