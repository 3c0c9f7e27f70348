"""`nodeforge train-flow`: a small SD3-architecture model (MMDiT transformer, rectified flow) on the
shapes data of `nodeforge-shapes`, saved as a StableDiffusion3Pipeline folder (no T5).

It reuses the demo model's trained VAE and tokenizer (resources/models/nodeforge-shapes: the same
latent space and vocabulary) and starts both CLIP encoders (CLIP-L and CLIP-G in SD3's roles) from
its trained text encoder, then trains a fresh SD3Transformer2DModel together with them on the
flow-matching objective: x_t = (1 - s) x0 + s n, the transformer at timestep 1000 s predicts the
velocity n - x0, with s drawn logit-normally and shifted as the sampler will (SD3's recipe), mixed
with a share of uniform draws so the last, low-noise steps are learned too.

The CLIP encoders read 16 tokens (`--context`, saved as the tokenizer's model_max_length, which the
pipeline and NodeForge pad to): the longest caption takes 10, and 77 would double a step's time.
Without T5, StableDiffusion3Pipeline gives the transformer 256 zero tokens after the CLIP tokens.
Those tokens are identical at every layer (no position embedding reaches the text stream), so the
trainer feeds one of them with log(256) added to its attention logit: the same function at a
third of the cost (`KeyBiasJointAttention`; tests/training/test_training_flow.py checks it).
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any, Callable

from .common import Progress, TrainerParser, TrainingInputError, due, guarded, optimizer_step, real, report, start, whole

NAME = "nodeforge train-flow"
T5_TOKENS = 256   # StableDiffusion3Pipeline's default max_sequence_length: its zero T5 tokens


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = TrainerParser(prog=NAME, description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="the StableDiffusion3Pipeline folder to write")
    p.add_argument("--base", type=Path, default=None,
                   help="the demo model folder whose VAE, tokenizer and text encoder are reused "
                        "(default: the bundled nodeforge-shapes)")
    p.add_argument("--steps", type=whole(1), default=6000)
    p.add_argument("--batch", type=whole(1), default=32)
    p.add_argument("--images", type=whole(8), default=24000, help="generated training images")
    p.add_argument("--lr", type=real(0, above=True), default=4e-4)
    p.add_argument("--warmup", type=whole(0), default=200, help="steps of linear LR warm-up before the cosine decay")
    p.add_argument("--ema-decay", type=real(0, 1), default=0.999)
    p.add_argument("--uniform", type=real(0, 1), default=0.3, help="share of noise levels drawn uniformly")
    p.add_argument("--width", type=whole(32, why="heads of 32", multiple=32), default=128, help="transformer width")
    p.add_argument("--layers", type=whole(1), default=6, help="transformer blocks")
    p.add_argument("--context", type=whole(4), default=16,
                   help="tokens each CLIP encoder reads, written as the saved tokenizer's model_max_length (what "
                        "StableDiffusion3Pipeline pads to): the longest caption takes 10; 77 doubles a step's time")
    p.add_argument("--patch", type=whole(1), default=2,
                   help="latent pixels per token side (1: four times the tokens, finer edges, slower)")
    p.add_argument("--qk-norm", action="store_true",
                   help="RMS-normalise queries and keys in every attention (SD3.5's qk_norm, in the saved config): "
                        "with --lr 2e-3 it fitted 64 squares 11-14%% closer at 800 steps than plain attention at 1e-3")
    p.add_argument("--levels", choices=("logit-normal", "ddpm"), default="logit-normal",
                   help="noise levels: logit-normal (SD3's, with --uniform and --shift), or ddpm: SD's 1000 DDPM "
                        "timesteps drawn uniformly and read as flow levels s = sigma / (alpha + sigma), as the UNet "
                        "demo model's recipe draws them")
    p.add_argument("--weighting", choices=("none", "min-snr"), default="none",
                   help="min-snr: each velocity error weighted as epsilon prediction's Min-SNR-5 weighs it "
                        "(min(SNR, 5) / SNR x (1 - s)^2, SNR = ((1 - s) / s)^2; 4x, so its peak is ~1.9)")
    p.add_argument("--teacher-weight", type=real(0, 1), default=0.0,
                   help="share of the velocity target taken from the base UNet model's prediction for the same "
                        "noisy latent and caption (knowledge distillation; 0: the data's own target only)")
    p.add_argument("--teacher-max-noise", type=real(0, 1), default=0.9,
                   help="above this noise level the target is the data's own (the UNet's clean-image estimate "
                        "is amplified too much there)")
    p.add_argument("--reflow", type=whole(0), default=0,
                   help="train on this many (noise, image) pairs that the base UNet model draws from that noise "
                        "for the data's captions (rectified flow's reflow: straight paths, one target per noisy "
                        "latent) instead of on the shapes with fresh noise; 0: the data itself")
    p.add_argument("--reflow-steps", type=whole(1), default=20, help="the base model's Euler steps for each pair")
    p.add_argument("--reflow-cfg", type=real(1), default=3.0, help="the base model's CFG for each captioned pair")
    p.add_argument("--freeze-text", action="store_true",
                   help="keep both CLIP encoders as the base model trained them (only their fresh pooled "
                        "projections learn): the shape and colour words keep what the UNet model taught them")
    p.add_argument("--shift", type=real(0, above=True), default=1.0,
                   help="the sigma shift of training's noise levels, written to the scheduler config (SD3 uses 3 "
                        "at 1024 px; 64 px images with 64 tokens need no shift towards high noise)")
    p.add_argument("--work", type=Path, default=None,
                   help="checkpoint folder: a killed run started again continues where it stopped")
    p.add_argument("--save-every", type=whole(1), default=500, help="steps between checkpoints (with --work)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=whole(1), default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path, default=None, help="also write the measured numbers here")
    return p.parse_args(argv)


class KeyBiasJointAttention:
    """SD3's joint attention (diffusers' JointAttnProcessor2_0) with `bias` added to every query's
    logit for each key: a key with bias log(k) stands for k identical keys."""

    def __init__(self, bias: Any):
        self.bias = bias

    def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any = None, *args: Any, **kwargs: Any):
        import torch
        import torch.nn.functional as F

        batch, n_image = hidden_states.shape[0], hidden_states.shape[1]

        def heads(x: Any) -> Any:
            return x.view(batch, -1, attn.heads, x.shape[-1] // attn.heads).transpose(1, 2)

        q, k, v = heads(attn.to_q(hidden_states)), heads(attn.to_k(hidden_states)), heads(attn.to_v(hidden_states))
        if attn.norm_q is not None:
            q, k = attn.norm_q(q), attn.norm_k(k)
        cq, ck = heads(attn.add_q_proj(encoder_hidden_states)), heads(attn.add_k_proj(encoder_hidden_states))
        cv = heads(attn.add_v_proj(encoder_hidden_states))
        if attn.norm_added_q is not None:
            cq, ck = attn.norm_added_q(cq), attn.norm_added_k(ck)
        q, k, v = torch.cat([q, cq], 2), torch.cat([k, ck], 2), torch.cat([v, cv], 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=self.bias.to(q.dtype).view(1, 1, 1, -1))
        out = out.transpose(1, 2).reshape(batch, -1, q.shape[1] * q.shape[-1])
        image, context = out[:, :n_image], out[:, n_image:]
        if not attn.context_pre_only:
            context = attn.to_add_out(context)
        return attn.to_out[1](attn.to_out[0](image)), context


def use_shared_zero_token(transformer: Any, image_tokens: int, clip_tokens: int = 77, zeros: int = T5_TOKENS) -> None:
    """Make `transformer` read one zero token as `zeros` of them (see KeyBiasJointAttention)."""
    import torch

    bias = torch.zeros(image_tokens + clip_tokens + 1)
    bias[-1] = math.log(zeros)
    transformer.set_attn_processor(KeyBiasJointAttention(bias))


def make_parts(args: argparse.Namespace, vae: Any, base: Path) -> dict[str, Any]:
    """The fresh transformer and the two CLIP encoders started from the base's trained text encoder
    (seeded: the same args give the same weights)."""
    import torch
    from diffusers import SD3Transformer2DModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from . import data

    torch.manual_seed(args.seed + 2)
    try:
        trained = CLIPTextModel.from_pretrained(str(base / "text_encoder"), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise TrainingInputError(f"--base {base}: its text_encoder/ is not a CLIP text model ({exc})") from None
    config = trained.config
    encoders = []
    for _ in range(2):   # CLIP-L's and CLIP-G's places, both from the trained encoder; fresh projections
        encoder = CLIPTextModelWithProjection(config)
        encoder.text_model.load_state_dict(trained.state_dict())
        encoders.append(encoder)
    width = 2 * config.hidden_size
    channels = vae.config.latent_channels
    # sample_size = the training latents' side and no pos_embed_max_size: neighbouring tokens sit one
    # unit apart in the sine-cosine position table (a 32 table cropped in the middle put them half a
    # unit apart: positions twice as blurred) and the pipeline's default size is the training size.
    side = data.IMAGE_SIZE // 2 ** (len(vae.config.block_out_channels) - 1)
    transformer = SD3Transformer2DModel(
        sample_size=side, patch_size=args.patch, in_channels=channels, out_channels=channels, num_layers=args.layers,
        attention_head_dim=32, num_attention_heads=args.width // 32, caption_projection_dim=args.width,
        joint_attention_dim=width, pooled_projection_dim=2 * config.projection_dim, pos_embed_max_size=None,
        qk_norm="rms_norm" if getattr(args, "qk_norm", False) else None)
    zero_modulation(transformer)
    if getattr(args, "freeze_text", False):
        for encoder in encoders:
            encoder.text_model.requires_grad_(False)
    return {"transformer": transformer, "text_encoder": encoders[0], "text_encoder_2": encoders[1]}


def zero_modulation(transformer: Any) -> None:
    """DiT's adaLN-Zero start: every block's modulation (shifts, scales and the residual gates of both
    streams) and the output layer start at zero, so each block starts as the identity and the model
    predicts zero velocity. diffusers' SD3Transformer2DModel starts them at random: after 750 steps its
    held-out velocity error was 5-13% higher at every noise level (README, train-flow)."""
    import torch

    for name, module in transformer.named_modules():
        if name.endswith(("norm1.linear", "norm1_context.linear")) or name in ("norm_out.linear", "proj_out"):
            torch.nn.init.zeros_(module.weight)
            torch.nn.init.zeros_(module.bias)


def ddpm_levels() -> Any:
    """SD's 1000 DDPM timesteps (scaled-linear betas 0.00085..0.012) as flow levels: a DDPM sample
    alpha x0 + sigma n is the flow sample at s = sigma / (alpha + sigma), scaled by 1 / (alpha + sigma)."""
    import torch

    from .models import NOISE_SCHEDULE

    betas = torch.linspace(NOISE_SCHEDULE["beta_start"] ** 0.5, NOISE_SCHEDULE["beta_end"] ** 0.5,
                           NOISE_SCHEDULE["num_train_timesteps"], dtype=torch.float64) ** 2
    done = torch.cumprod(1 - betas, 0)
    return ((1 - done).sqrt() / (done.sqrt() + (1 - done).sqrt())).float()


def min_snr_weight(s: Any, gamma: float = 5.0) -> Any:
    """Epsilon prediction's Min-SNR-gamma weight read on the velocity error at flow level s (the
    velocity error is the epsilon error over 1 - s), times 4 so the peak (s ~0.31) is ~1.9."""
    import torch

    snr = ((1 - s) / s.clamp(min=1e-4)) ** 2
    return 4 * torch.clamp(snr, max=gamma) / snr * (1 - s) ** 2


def flow_batch(latents: Any, shift: float, generator: Any, uniform: float = 0.0,
               levels: str = "logit-normal", noise: Any = None) -> tuple[Any, Any, Any]:
    """(x_t, timesteps, velocity target) for clean latents: s logit-normal, then shifted; a share
    `uniform` of the rows draws s uniformly instead (levels "ddpm": SD's DDPM timesteps, uniformly).
    `noise` pairs each latent with its own noise (reflow); else fresh noise is drawn."""
    import torch

    n = latents.shape[0]
    s = torch.sigmoid(torch.randn(n, generator=generator))
    s = shift * s / (1 + (shift - 1) * s)
    flat = torch.rand(n, generator=generator)
    s = torch.where(torch.rand(n, generator=generator) < uniform, flat, s)
    if levels == "ddpm":
        table = ddpm_levels()
        s = table[torch.randint(0, len(table), (n,), generator=generator)]
    if noise is None:
        noise = torch.randn(latents.shape, generator=generator)
    sigma = s.view(-1, 1, 1, 1)
    return (1 - sigma) * latents + sigma * noise, s * 1000, noise - latents


def prompt_embeds(parts: dict[str, Any], tokenizer: Any, captions: list[str], zeros: int = T5_TOKENS) -> tuple[Any, Any]:
    """StableDiffusion3Pipeline's prompt without T5: both CLIPs' penultimate states side by side,
    padded to the joint width, then `zeros` zero tokens; the pooled projections side by side."""
    import torch
    import torch.nn.functional as F

    ids = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    outs = [parts[k](ids, output_hidden_states=True) for k in ("text_encoder", "text_encoder_2")]
    hidden = torch.cat([o.hidden_states[-2] for o in outs], dim=-1)
    width = parts["transformer"].config.joint_attention_dim
    hidden = F.pad(hidden, (0, width - hidden.shape[-1]))
    embeds = torch.cat([hidden, hidden.new_zeros(hidden.shape[0], zeros, width)], dim=1)
    return embeds, torch.cat([o.text_embeds for o in outs], dim=-1)


class Teacher:
    """The base UNet model (epsilon prediction on SD's DDPM schedule, same VAE latents) read as a
    flow model: a flow sample x_t = (1 - s) x0 + s n is the DDPM sample x_t / r with alpha = (1 - s) / r,
    sigma = s / r, r = sqrt((1 - s)^2 + s^2), at the (fractional) timestep whose log-SNR is
    2 log((1 - s) / s); its velocity estimate is eps - x0_hat with x0_hat = (x - sigma eps) / alpha."""

    def __init__(self, base: Path, tokenizer: Any):
        import torch
        from diffusers import DDPMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel

        kw = {"local_files_only": True}
        self.unet = UNet2DConditionModel.from_pretrained(str(base), subfolder="unet", **kw).eval().requires_grad_(False)
        self.text = CLIPTextModel.from_pretrained(str(base), subfolder="text_encoder", **kw).eval().requires_grad_(False)
        done = DDPMScheduler.from_pretrained(str(base), subfolder="scheduler", **kw).alphas_cumprod.double()
        self.log_snr = torch.log(done / (1 - done)).flip(0).float()   # increasing; index i is timestep 999 - i
        self.tokenizer = tokenizer

    def timesteps(self, s: Any) -> tuple[Any, Any]:
        """The fractional DDPM timestep of each flow noise level, and whether it lies in the schedule."""
        import torch

        level = 2 * torch.log((1 - s) / s)
        table = self.log_snr
        idx = torch.searchsorted(table, level).clamp(1, len(table) - 1)
        frac = (level - table[idx - 1]) / (table[idx] - table[idx - 1])
        t = (len(table) - 1) - (idx - 1 + frac)
        return t.clamp(0, len(table) - 1), (level >= table[0]) & (level <= table[-1])

    def velocity(self, x_t: Any, s: Any, captions: list[str]) -> tuple[Any, Any]:
        import torch

        t, valid = self.timesteps(s)
        r = torch.sqrt((1 - s) ** 2 + s ** 2).view(-1, 1, 1, 1)
        alpha, sigma = (1 - s).view(-1, 1, 1, 1) / r, s.view(-1, 1, 1, 1) / r
        ids = self.tokenizer(captions, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        with torch.no_grad():
            eps = self.unet(x_t / r, t, self.text(ids).last_hidden_state).sample
        return eps - (x_t / r - sigma * eps) / alpha, valid


def distilled_target(teacher: Teacher, x_t: Any, t: Any, target: Any, captions: list[str], weight: float,
                     max_noise: float) -> Any:
    """`weight` of the teacher's velocity plus the rest of the data's, where the teacher is defined
    and the noise level is at most `max_noise`; the data's target elsewhere."""
    import torch

    s = t / 1000
    taught, valid = teacher.velocity(x_t, s, captions)
    use = (valid & (s <= max_noise)).view(-1, 1, 1, 1)
    return torch.where(use, weight * taught + (1 - weight) * target, target)


def reflow_pairs(args: argparse.Namespace, base: Path, shape: tuple[int, ...], captions: list[str]) -> tuple[Any, Any, list[str]]:
    """`args.reflow` (noise, latent) pairs: the base UNet model's Euler ODE (`--reflow-steps`, CFG
    `--reflow-cfg`) from each noise for the data's captions in turn, a tenth of them unconditional
    (caption "", CFG 1, so the trained model's CFG has an unconditional side). Returns the noise, the
    latents (as the pipeline reads them) and the captions; kept in --work (reflow.safetensors)."""
    import torch
    from safetensors.torch import load_file, save_file

    from .evaluate import load_pipeline

    n = args.reflow
    generator = torch.Generator().manual_seed(args.seed + 5)
    texts = [captions[i % len(captions)] if torch.rand(1, generator=generator) > 0.1 else "" for i in range(n)]
    noise = torch.randn((n, *shape), generator=generator)
    path = args.work / "reflow.safetensors" if args.work is not None else None
    if path is not None and path.exists():
        kept = load_file(str(path))
        if kept["noise"].shape == noise.shape and torch.equal(kept["noise"], noise):
            return noise, kept["latents"], texts
    pipe = load_pipeline(base)
    latents = torch.empty_like(noise)
    for empty in (False, True):
        rows = [i for i, text in enumerate(texts) if (text == "") == empty]
        for k in range(0, len(rows), 64):
            pick = rows[k:k + 64]
            with torch.no_grad():
                latents[pick] = pipe([texts[i] for i in pick], negative_prompt=None if empty else [""] * len(pick),
                                     latents=noise[pick], num_inference_steps=args.reflow_steps,
                                     guidance_scale=1.0 if empty else args.reflow_cfg, height=64, width=64,
                                     output_type="latent").images
            print(f"[{time.strftime('%H:%M:%S')}] reflow pairs: {k + len(pick)} of {len(rows)} "
                  f"{'unconditional' if empty else 'captioned'}", flush=True)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"noise": noise, "latents": latents.contiguous()}, str(path))
    return noise, latents, texts


def _checkpoint(work: Path | None, state: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Write `state` to work/flow.pt atomically, or read it back (tensors and plain values only)."""
    import torch

    if work is None:
        return None
    path = work / "flow.pt"
    if state is None:
        return torch.load(path, weights_only=True) if path.exists() else None
    work.mkdir(parents=True, exist_ok=True)
    torch.save(state, work / "flow.pt.tmp")
    (work / "flow.pt.tmp").replace(path)
    return state


def train(args: argparse.Namespace, parts: dict[str, Any], latents: Any, captions: list[str], tokenizer: Any,
          teacher: Teacher | None = None, stop: Callable[[int], bool] | None = None,
          noise: Any = None) -> tuple[float, Any]:
    """The training loop; returns the last loss and the EMA of the weights (what is saved). `stop`,
    asked after each step with its number, ends the loop early when it says so (a benchmark's
    wall-clock budget: benchmarks/bench_flow_memorise.py). `noise` (reflow pairs) gives each latent
    its own noise; their captions are used as they are (the unconditional pairs carry "")."""
    import torch

    from .shapes import EMA, lr_at

    modules = list(parts.values())
    params = [p for module in modules for p in module.parameters()]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    ema = EMA(modules, args.ema_decay)
    generator, done, loss_value = torch.Generator().manual_seed(args.seed + 3), 0, float("nan")
    state = _checkpoint(args.work)
    if state is not None:
        for module, weights in zip(modules, state["modules"]):
            module.load_state_dict(weights)
        opt.load_state_dict(state["opt"])
        ema.shadow, ema.steps, done = state["ema"], state["step"], state["step"]
        generator.set_state(state["generator"])
    image_tokens = (latents.shape[-1] // parts["transformer"].config.patch_size) ** 2
    use_shared_zero_token(parts["transformer"], image_tokens, clip_tokens=tokenizer.model_max_length)
    progress = Progress(args.steps, name=NAME, start=done)
    for step in range(done + 1, args.steps + 1):
        for group in opt.param_groups:
            group["lr"] = lr_at(step - 1, args.steps, args.lr, args.warmup)
        pick = torch.randint(0, latents.shape[0], (args.batch,), generator=generator)
        x_t, t, target = flow_batch(latents[pick], args.shift, generator, args.uniform, args.levels,
                                    None if noise is None else noise[pick])
        texts = [captions[i] if noise is not None or torch.rand(1, generator=generator) > 0.1 else ""
                 for i in pick.tolist()]
        if teacher is not None:
            target = distilled_target(teacher, x_t, t, target, texts, args.teacher_weight, args.teacher_max_noise)
        embeds, pooled = prompt_embeds(parts, tokenizer, texts, zeros=1)
        pred = parts["transformer"](hidden_states=x_t, timestep=t, encoder_hidden_states=embeds,
                                    pooled_projections=pooled, return_dict=False)[0]
        per_image = (pred - target).pow(2).mean(dim=(1, 2, 3))
        loss = (per_image * min_snr_weight(t / 1000)).mean() if args.weighting == "min-snr" else per_image.mean()
        optimizer_step(opt, loss, params)
        ema.update()
        loss_value = float(loss.detach())
        progress.update(step, loss_value)
        if args.work is not None and due(step, args.save_every, args.steps):
            _checkpoint(args.work, {"modules": [m.state_dict() for m in modules], "opt": opt.state_dict(),
                                    "ema": ema.shadow, "step": step, "generator": generator.get_state()})
        if stop is not None and stop(step):
            break
    from diffusers.models.attention_processor import JointAttnProcessor2_0

    parts["transformer"].set_attn_processor(JointAttnProcessor2_0())   # the saved model is diffusers' own
    return loss_value, ema


def load_base(base: Path, context: int = 77) -> tuple[Any, Any]:
    """The base's VAE (frozen; shift_factor 0 written for SD3's pipeline) and tokenizer (reading
    `context` tokens)."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTokenizer

    for part in ("vae", "tokenizer", "text_encoder"):
        if not (base / part).is_dir():
            raise TrainingInputError(f"--base {base}: no {part}/ folder; give a nodeforge-shapes-style diffusers folder")
    vae = AutoencoderKL.from_pretrained(str(base), subfolder="vae", local_files_only=True).eval().requires_grad_(False)
    if vae.config.shift_factor is None:   # SD3's pipeline adds the shift when decoding: 0 is this VAE's
        vae.register_to_config(shift_factor=0.0)
    tokenizer = CLIPTokenizer.from_pretrained(str(base), subfolder="tokenizer", local_files_only=True)
    tokenizer.model_max_length = context
    return vae, tokenizer


def training_latents(args: argparse.Namespace, vae: Any) -> tuple[Any, list[str]]:
    """The generated shapes, encoded as the pipeline reads latents ((z - shift) x scaling), and captions."""
    import numpy as np

    from . import data

    images, samples = data.generate(args.images, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    return pipeline_latents(vae, images), [data.caption(s, rng, empty_rate=0.0) for s in samples]


def pipeline_latents(vae: Any, images: Any) -> Any:
    """(n, 64, 64, 3) uint8 images as the pipeline reads latents: (z - shift) x scaling."""
    import torch

    from .shapes import encode_latents

    with torch.no_grad():
        shift = vae.config.shift_factor or 0.0
        return (encode_latents(vae, images, torch.device("cpu")) - shift) * vae.config.scaling_factor


def assemble(parts: dict[str, Any], vae: Any, tokenizer: Any, shift: float) -> Any:
    """The StableDiffusion3Pipeline (no T5) that is saved."""
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline

    return StableDiffusion3Pipeline(
        transformer=parts["transformer"], vae=vae, text_encoder=parts["text_encoder"], tokenizer=tokenizer,
        text_encoder_2=parts["text_encoder_2"], tokenizer_2=tokenizer, text_encoder_3=None, tokenizer_3=None,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=shift))


def checkpoint_pipeline(argv: list[str]) -> Any:
    """The EMA weights of a running (or killed) training's checkpoint as a pipeline, to measure it
    midway: `argv` are the training's own arguments (--work names the checkpoint folder)."""
    from nodeforge.paths import builtin_dir

    from .shapes import EMA

    args = parse_args(argv)
    base = args.base or builtin_dir("resources") / "models" / "nodeforge-shapes"
    vae, tokenizer = load_base(base, args.context)
    parts = make_parts(args, vae, base)
    state = _checkpoint(args.work)
    if state is None:
        raise TrainingInputError(f"--work {args.work}: no checkpoint there yet")
    ema = EMA(list(parts.values()), args.ema_decay)
    ema.shadow = state["ema"]
    ema.copy_to(list(parts.values()))
    return assemble(parts, vae, tokenizer, args.shift), state["step"]


@guarded(NAME)
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.out.parent.is_dir() or args.out.is_file():
        raise TrainingInputError(f"--out {args.out}: give a folder to write whose parent exists")
    start(args.threads, args.seed, args.device, NAME)
    from nodeforge.paths import builtin_dir

    base = args.base or builtin_dir("resources") / "models" / "nodeforge-shapes"
    vae, tokenizer = load_base(base, args.context)
    t0 = time.time()
    latents, captions = training_latents(args, vae)
    noise = None
    if args.reflow:
        noise, latents, captions = reflow_pairs(args, base, tuple(latents.shape[1:]), captions)
    parts = make_parts(args, vae, base)
    teacher = Teacher(base, tokenizer) if args.teacher_weight > 0 else None
    final, ema = train(args, parts, latents, captions, tokenizer, teacher, noise=noise)
    ema.copy_to(list(parts.values()))
    pipe = assemble(parts, vae, tokenizer, args.shift)
    pipe.save_pretrained(str(args.out))
    report({"steps": args.steps, "final_loss": final, "images": args.images, "minutes": round((time.time() - t0) / 60, 1),
            "transformer_parameters": sum(p.numel() for p in parts["transformer"].parameters())}, args.json)
    return 0
