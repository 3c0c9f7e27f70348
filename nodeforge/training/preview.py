"""latent_preview.json for a trained model: what its step previews draw, fitted to what its VAE
decodes from latents its own UNet made.

    python -m nodeforge.training.preview MODEL_DIR [--samples 512] [--seed 0]

A linear latent -> RGB map (SD's approach) cannot draw this model's colours: fitted on the
training images it previewed green as dark grey, red as orange and white as pink. The file
therefore holds, besides that map (`rgb_factors`, `rgb_bias`, for readers that only know it), a
tiny convolutional decoder (`layers`: a 3x3 convolution to 32 channels, SiLU, a 1x1 convolution
to RGB; 1,283 numbers), fitted on the UNet's final latents against the VAE's 4x4-averaged
decodes of them, so a finished run's last preview has the colours of the decoded image.
Output values are in -1..1, as the VAE's.
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
import torch.nn.functional as F

from nodeforge.training.common import optimizer_step

HIDDEN = 32
FIT_STEPS = 6000


def sample_latents(model_dir: Path, n: int, seed: int, steps: int = 20, cfg: float = 5.0,
                   batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """(final latents [n, C, h, w] as the UNet leaves them, the VAE's decodes 4x4-averaged [n, 3, h, w])."""
    from diffusers import StableDiffusionPipeline

    from nodeforge.training import data

    pipe = StableDiffusionPipeline.from_pretrained(model_dir, safety_checker=None, feature_extractor=None,
                                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(seed)
    prompts = [data.full_caption(data.random_sample(rng)) for _ in range(n)]
    gen = torch.Generator().manual_seed(seed)
    latents, pooled = [], []
    factor = pipe.vae_scale_factor
    with torch.no_grad():
        for i in range(0, n, batch):
            lat = pipe(prompts[i:i + batch], height=64, width=64, num_inference_steps=steps, guidance_scale=cfg,
                       generator=gen, output_type="latent").images
            decoded = pipe.vae.decode(lat / pipe.vae.config.scaling_factor).sample.clamp(-1, 1)
            latents.append(lat.float())
            pooled.append(F.avg_pool2d(decoded.float(), factor))
    return torch.cat(latents), torch.cat(pooled)


def fit_linear(latents: torch.Tensor, pooled: torch.Tensor) -> tuple[list, list]:
    """Least-squares latent -> RGB factors and bias (float64: float32 lands visibly off the optimum)."""
    z = latents.double().permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
    rgb = pooled.double().permute(0, 2, 3, 1).reshape(-1, 3)
    solution = torch.linalg.lstsq(torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype)], 1), rgb).solution
    return solution[:-1].tolist(), solution[-1].tolist()


def fit_decoder(latents: torch.Tensor, pooled: torch.Tensor, seed: int, steps: int = FIT_STEPS) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(latents.shape[1], HIDDEN, 3, padding=1, padding_mode="replicate"), torch.nn.SiLU(),
        torch.nn.Conv2d(HIDDEN, 3, 1))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(len(latents), (64,), generator=gen)
        loss = F.mse_loss(net(latents[idx]), pooled[idx])
        if step == int(steps * 0.7):
            for group in opt.param_groups:
                group["lr"] = 2e-3
        optimizer_step(opt, loss)
    return net.eval()


def decoder_spec(net: torch.nn.Module) -> list[dict[str, Any]]:
    """The layers as latent_preview.json stores them (see nodes/latents.py, which runs them)."""
    first, _, last = net
    return [{"kernel": 3, "padding": "replicate", "activation": "silu",
             "weight": _rounded(first.weight), "bias": _rounded(first.bias)},
            {"kernel": 1, "weight": _rounded(last.weight), "bias": _rounded(last.bias)}]


def _rounded(t: torch.Tensor) -> Any:
    return np.round(t.detach().double().numpy(), 5).tolist()


def write_latent_preview(model_dir: Path, samples: int = 512, seed: int = 0, log: Any = None,
                         fit_steps: int = FIT_STEPS) -> dict[str, Any]:
    log = log or (lambda msg: print(f"preview: {msg}", file=sys.stderr, flush=True))
    t0 = time.time()
    latents, pooled = sample_latents(model_dir, samples, seed + 123)
    log(f"sampled and decoded {len(latents)} latents in {time.time() - t0:.0f} s")
    factors, bias = fit_linear(latents, pooled)
    net = fit_decoder(latents, pooled, seed, fit_steps)
    with torch.no_grad():
        error = (net(latents).clamp(-1, 1) - pooled).abs().mean().item() * 127.5
    spec = {"rgb_factors": [[round(v, 4) for v in row] for row in factors],
            "rgb_bias": [round(v, 4) for v in bias],
            "layers": decoder_spec(net),
            "fitted_on": f"{samples} final latents of 20-step CFG 5 samples (seed {seed}) against the VAE's decodes",
            "mean_abs_error_255": round(error, 2)}
    (Path(model_dir) / "latent_preview.json").write_text(json.dumps(spec, separators=(",", ":")) + "\n")
    log(f"wrote {Path(model_dir) / 'latent_preview.json'}: mean error {error:.1f} of 255 in {time.time() - t0:.0f} s")
    return spec


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nodeforge.training.preview", description=__doc__.split("\n")[0])
    p.add_argument("model_dir", type=Path)
    p.add_argument("--samples", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    write_latent_preview(args.model_dir, args.samples, args.seed)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
