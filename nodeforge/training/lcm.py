"""`nodeforge train-lcm`: latent consistency distillation of an SD 1.x/2.x model into an LCM-LoRA.

    nodeforge train-lcm --out shapes-lcm.safetensors [--base nodeforge-shapes --steps N --rank R
        --guidance 3 7 --ddim-steps 50 --loss huber --work DIR --images-dir DIR]

The recipe of the LCM paper (Luo et al. 2023, Algorithm 1) as diffusers' LCM-LoRA example
(examples/consistency_distillation/train_lcm_distill_lora_sd_wds.py) runs it:

- the teacher is the frozen base with classifier-free guidance at a scale drawn per image from
  --guidance (the unconditional prompt is the empty one); it takes one DDIM step from t_n + k to
  t_n on the skipping-step grid t = k * (1 .. N) - 1, k = 1000 / N (N = --ddim-steps);
- the student is the base with a LoRA on its attention, feed-forward, ResNet, resampling and
  time-embedding layers; its consistency function is c_skip(t) x_t + c_out(t) x0(x_t, t), with
  LCMScheduler's boundary scalings (sigma_data 0.5, the timestep scaled by 10), so the `lcm`
  sampler, which applies the same scalings, reads the model the way it was trained;
- the target is the same LoRA'd model at t_n on the teacher's step, without gradient (LCM-LoRA
  keeps no separate EMA network), and the loss is Huber (or L2) between the two.

The result is a kohya-layout LoRA (`nodeforge.lora_format`, as train-lora writes it) that the LoRA
node and diffusers' `load_lora_weights` read; sample it with the `lcm` sampler, 2-8 steps, CFG 1-2.
Without --images-dir the data is the shapes the demo model was trained on (`training.data`).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from nodeforge.training import common

NAME = "nodeforge train-lcm"
# diffusers' LCM-LoRA targets: every Linear and Conv2d of SD's blocks that a LoRA can carry.
LCM_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2", "conv1",
               "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj"]
SIGMA_DATA = 0.5           # LCMScheduler's boundary condition: c_skip(0) = 1, c_out(0) = 0
TIMESTEP_SCALING = 10.0    # LCMScheduler's default `timestep_scaling`
SAMPLER_ORIGINAL_STEPS = 50   # LCMScheduler's default `original_inference_steps`: the grid it samples on

EpsModel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]   # (x_t, t, text) -> noise


# -- the formulas -------------------------------------------------------------------------------------------
def boundary_scalings(t: torch.Tensor, sigma_data: float = SIGMA_DATA,
                      timestep_scaling: float = TIMESTEP_SCALING) -> tuple[torch.Tensor, torch.Tensor]:
    """c_skip(t), c_out(t) of the consistency function f(x, t) = c_skip x + c_out x0(x, t), as
    LCMScheduler computes them: 1 and 0 at t = 0, so f is the identity on clean latents."""
    scaled = timestep_scaling * t.double()
    c_skip = sigma_data ** 2 / (scaled ** 2 + sigma_data ** 2)
    c_out = scaled / (scaled ** 2 + sigma_data ** 2) ** 0.5
    return c_skip.float(), c_out.float()


def _per_item(values: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return values[t.long()].view(-1, 1, 1, 1)


def predicted_x0(eps: torch.Tensor, t: torch.Tensor, x_t: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """The clean latent an epsilon prediction implies: (x_t - sqrt(1 - a_t) eps) / sqrt(a_t)."""
    a = _per_item(alphas_cumprod, t)
    return (x_t - (1 - a).sqrt() * eps) / a.sqrt()


def ddim_step(x0: torch.Tensor, eps: torch.Tensor, t_prev: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """DDIM's deterministic step to `t_prev` from a prediction (x0, eps): sqrt(a) x0 + sqrt(1 - a) eps."""
    a = _per_item(alphas_cumprod, t_prev)
    return a.sqrt() * x0 + (1 - a).sqrt() * eps


@dataclass(frozen=True)
class SkippingSchedule:
    """The DDIM solver's grid: t = k * (1 .. N) - 1 with k = train timesteps // N; a pair steps
    from t_n + k (the start) to t_n (the end; 0 below the grid's first point)."""

    alphas_cumprod: torch.Tensor
    timesteps: torch.Tensor
    k: int

    @classmethod
    def of(cls, alphas_cumprod: torch.Tensor, ddim_steps: int) -> "SkippingSchedule":
        k = len(alphas_cumprod) // ddim_steps
        return cls(alphas_cumprod.float(), torch.arange(1, ddim_steps + 1) * k - 1, k)

    def pair(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start = self.timesteps[index]
        return start, (start - self.k).clamp(min=0)


def consistency(eps: torch.Tensor, t: torch.Tensor, x_t: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """The consistency function's value: c_skip(t) x_t + c_out(t) x0(eps)."""
    c_skip, c_out = (c.view(-1, 1, 1, 1) for c in boundary_scalings(t))
    return c_skip * x_t + c_out * predicted_x0(eps, t, x_t, alphas_cumprod)


def teacher_step(teacher: EpsModel, x_t: torch.Tensor, start: torch.Tensor, end: torch.Tensor, text: torch.Tensor,
                 empty: torch.Tensor, guidance: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """The teacher's guided DDIM step from `start` to `end`: its noise prediction on the prompt and
    on the empty prompt in one batch, mixed as uncond + g (cond - uncond) (g: UNetDenoise's CFG)."""
    with torch.no_grad():
        both = teacher(torch.cat([x_t, x_t]), torch.cat([start, start]), torch.cat([text, empty]))
        cond, uncond = both.chunk(2)
        eps = uncond + guidance.view(-1, 1, 1, 1) * (cond - uncond)
        return ddim_step(predicted_x0(eps, start, x_t, alphas_cumprod), eps, end, alphas_cumprod)


def distillation_pair(student: EpsModel, teacher: EpsModel, x0: torch.Tensor, noise: torch.Tensor,
                      index: torch.Tensor, guidance: torch.Tensor, text: torch.Tensor, empty: torch.Tensor,
                      schedule: SkippingSchedule) -> tuple[torch.Tensor, torch.Tensor]:
    """(the student's consistency output at t_n + k, the target at t_n) for clean latents x0 noised
    with `noise` to the grid point `index`: the target is the student itself (no gradient) on the
    teacher's step."""
    alphas = schedule.alphas_cumprod
    start, end = schedule.pair(index)
    a = _per_item(alphas, start)
    x_start = a.sqrt() * x0 + (1 - a).sqrt() * noise
    prediction = consistency(student(x_start, start, text), start, x_start, alphas)
    x_end = teacher_step(teacher, x_start, start, end, text, empty, guidance, alphas)
    with torch.no_grad():
        target = consistency(student(x_end, end, text), end, x_end, alphas)
    return prediction, target


def loss_of(prediction: torch.Tensor, target: torch.Tensor, kind: str, huber_c: float) -> torch.Tensor:
    """Pseudo-Huber sqrt(d^2 + c^2) - c (the LCM paper's) or the mean squared error."""
    diff = prediction.float() - target.float()
    if kind == "l2":
        return diff.pow(2).mean()
    return ((diff.pow(2) + huber_c ** 2).sqrt() - huber_c).mean()


# -- the command --------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = common.TrainerParser(prog=NAME, description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="the LoRA .safetensors to write (kohya layout)")
    p.add_argument("--base", default="nodeforge-shapes", help="the model to distil: a diffusers folder, a single "
                   ".safetensors SD 1.x/2.x checkpoint or a bundled model name")
    p.add_argument("--images-dir", type=Path, default=None, help="a folder of images with same-named .txt captions "
                   "to noise (default: the demo shapes, generated)")
    p.add_argument("--images", metavar="N", type=common.COUNT, default=4096,
                   help="generated shape images (without --images-dir)")
    p.add_argument("--resolution", metavar="PX", type=common.whole(8, 4096, multiple=8), default=64,
                   help="--images-dir images are centre-cropped square and resized to this many pixels a side")
    p.add_argument("--steps", metavar="N", type=common.COUNT, default=3000, help="optimizer steps")
    p.add_argument("--batch", metavar="N", type=common.COUNT, default=16, help="latents per step")
    p.add_argument("--lr", metavar="RATE", type=common.RATE, default=5e-4,
                   help="AdamW learning rate (after a 20-step warm-up)")
    p.add_argument("--rank", metavar="N", type=common.COUNT, default=16, help="LoRA rank")
    p.add_argument("--alpha", metavar="A", type=common.real(0.0, above=True), default=16.0,
                   help="LoRA alpha: the update is scaled by alpha/rank")
    p.add_argument("--guidance", metavar=("MIN", "MAX"), nargs=2, type=common.real(1.0), default=[3.0, 7.0],
                   help="the teacher's CFG scale (as UNetDenoise's cfg) is drawn per latent from MIN..MAX; "
                        "the LoRA bakes it in, so sample with CFG 1-2")
    p.add_argument("--ddim-steps", metavar="N", type=common.whole(1, 1000), default=SAMPLER_ORIGINAL_STEPS,
                   help="the teacher's DDIM grid: it steps k = 1000/N timesteps at a time (the lcm sampler "
                        f"samples on the {SAMPLER_ORIGINAL_STEPS}-step grid)")
    p.add_argument("--loss", choices=("huber", "l2"), default="huber", help="pseudo-Huber (the LCM paper's) or L2")
    p.add_argument("--huber-c", metavar="C", type=common.real(0.0, above=True), default=0.001,
                   help="the pseudo-Huber loss's c")
    p.add_argument("--work", type=Path, default=None,
                   help="checkpoint folder: a killed run started again continues where it stopped")
    p.add_argument("--save-every", metavar="N", type=common.COUNT, default=100, help="steps between checkpoints "
                   "(with --work)")
    p.add_argument("--seed", metavar="N", type=common.SEED, default=0, help="seed of the data, noise, timesteps "
                   "and guidance draws (the same seed and inputs give the same LoRA)")
    p.add_argument("--device", metavar="DEVICE", default="auto", help="cpu, cuda, cuda:N or mps; auto: CUDA when "
                   "available, then MPS, else cpu")
    p.add_argument("--threads", metavar="N", type=common.COUNT, default=2, help="CPU threads torch may use")
    p.add_argument("--json", type=Path, default=None, help="also write the measured numbers here")
    args = p.parse_args(argv)
    low, high = args.guidance
    if low > high:
        p.error(f"argument --guidance: MIN {low:g} is above MAX {high:g}; give the lower scale first")
    return args


def training_data(args: argparse.Namespace) -> tuple[Any, list[str]]:
    """(uint8 images, captions): the --images-dir folder (checked by train-lora's reader) or the
    generated demo shapes with their varied captions."""
    if args.images_dir is not None:
        from nodeforge.training.lora import load_folder

        return load_folder(args.images_dir, args.resolution, NAME)
    import numpy as np

    from nodeforge.training import data

    images, samples = data.generate(args.images, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    return images, [data.caption(s, rng, empty_rate=0.0) for s in samples]


def add_lora(unet: Any, rank: int, alpha: float) -> list[torch.nn.Parameter]:
    """peft LoRA layers (B zero: the student starts as the teacher) on LCM_TARGETS; their parameters."""
    from peft import LoraConfig, inject_adapter_in_model

    inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=alpha, target_modules=LCM_TARGETS), unet)
    trainable = [p for n, p in unet.named_parameters() if "lora_" in n]
    for p in trainable:
        p.requires_grad_(True)
    return trainable


def eps_model(unet: Any) -> EpsModel:
    return lambda x, t, text: unet(x, t, encoder_hidden_states=text).sample


def lora_weights(unet: Any) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in unet.named_parameters() if "lora_" in n}


def resume(work: Path | None, unet: Any, opt: torch.optim.Optimizer, generator: torch.Generator) -> int:
    """The steps a checkpoint in `work` holds (0 without one), its LoRA, optimizer and generator restored."""
    state = common.checkpoint(work, "lcm.pt")
    if state is None:
        return 0
    params = dict(unet.named_parameters())
    with torch.no_grad():
        for name, value in state["lora"].items():
            params[name].copy_(value)
    opt.load_state_dict(state["opt"])
    generator.set_state(state["generator"])
    print(f"train-lcm: resumed from {work} at step {state['step']}", file=sys.stderr)
    return int(state["step"])


def train(parts: dict[str, Any], latents: torch.Tensor, ids: torch.Tensor, args: argparse.Namespace,
          device: torch.device) -> float:
    """`args.steps` AdamW steps of latent consistency distillation; the last step's loss."""
    import copy

    teacher = copy.deepcopy(parts["unet"]).eval()          # the frozen base, before the LoRA goes on
    unet, encoder = parts["unet"], parts["text_encoder"]
    trainable = add_lora(unet, args.rank, args.alpha)
    unet.train()
    opt = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(args.seed)
    done = resume(args.work, unet, opt, generator)
    schedule = SkippingSchedule.of(parts["scheduler"].alphas_cumprod.to(device), args.ddim_steps)
    schedule = SkippingSchedule(schedule.alphas_cumprod, schedule.timesteps.to(device), schedule.k)
    low, high = args.guidance
    batch = min(args.batch, len(latents))
    with torch.no_grad():
        empty = encoder(empty_ids(parts["tokenizer"]).to(device))[0].expand(batch, -1, -1)
    progress, loss_value = common.Progress(args.steps, name="train-lcm", start=done), float("nan")
    for step in range(done + 1, args.steps + 1):
        pick = torch.randint(len(latents), (batch,), generator=generator)
        noise = torch.randn((batch, *latents.shape[1:]), generator=generator).to(device)
        index = torch.randint(len(schedule.timesteps), (batch,), generator=generator).to(device)
        guidance = (low + (high - low) * torch.rand(batch, generator=generator)).to(device)
        with torch.no_grad():
            text = encoder(ids[pick].to(device))[0]
        prediction, target = distillation_pair(eps_model(unet), eps_model(teacher), latents[pick].to(device), noise,
                                               index, guidance, text, empty, schedule)
        loss = loss_of(prediction, target, args.loss, args.huber_c)
        for group in opt.param_groups:   # a short warm-up, then constant
            group["lr"] = args.lr * min(1.0, step / 20)
        common.optimizer_step(opt, loss, clip=trainable)
        loss_value = float(loss.detach())
        progress.update(step, loss_value)
        if args.work is not None and common.due(step, args.save_every, args.steps):
            common.checkpoint(args.work, "lcm.pt", {"lora": lora_weights(unet), "opt": opt.state_dict(), "step": step,
                                                    "generator": generator.get_state()})
    return loss_value


def empty_ids(tokenizer: Any) -> torch.Tensor:
    return tokenize(tokenizer, [""])


def tokenize(tokenizer: Any, captions: list[str]) -> torch.Tensor:
    return tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").input_ids


def metadata(args: argparse.Namespace, base: Path, images: int, seconds: float) -> dict[str, str]:
    """kohya's `ss_*` fields LoRA browsers show, and the distillation's own settings."""
    return {"ss_network_module": "networks.lora", "ss_network_dim": str(args.rank),
            "ss_network_alpha": str(args.alpha), "ss_base_model": base.name, "ss_sd_model_name": base.name,
            "ss_max_train_steps": str(args.steps), "ss_learning_rate": str(args.lr), "ss_seed": str(args.seed),
            "ss_num_train_images": str(images), "ss_network_train_unet_only": "True",
            "ss_training_time_s": f"{seconds:.1f}", "nodeforge_trainer": "nodeforge.training.lcm",
            "nodeforge_lcm": json.dumps({"guidance": args.guidance, "ddim_steps": args.ddim_steps, "loss": args.loss,
                                         "huber_c": args.huber_c, "sampler": "lcm"})}


@common.guarded("train-lcm")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from safetensors.torch import save

    from nodeforge.core.files import atomic_write_bytes
    from nodeforge.lora_format import UNET_PREFIX
    from nodeforge.training.lora import lora_state

    device = common.start(args.threads, args.seed, args.device, "train-lcm")
    # Every check before the base model loads: a mistake costs a second, not a load.
    base = common.resolve_base(args.base, "train-lcm", single_file=True)
    common.writable_output(args.out, "LoRA (.safetensors)")
    if args.out.suffix.lower() != ".safetensors":
        raise common.TrainingInputError(f"--out {args.out}: the LoRA is written as .safetensors; name it "
                                        f"{args.out.with_suffix('.safetensors').name}")
    images, captions = training_data(args)
    if args.ddim_steps != SAMPLER_ORIGINAL_STEPS:
        common.warn("train-lcm", f"--ddim-steps {args.ddim_steps}: the lcm sampler steps on the "
                                 f"{SAMPLER_ORIGINAL_STEPS}-step grid (LCMScheduler's original_inference_steps)")
    print(f"train-lcm: {len(images)} images, base {base}, device {device}", file=sys.stderr)
    t0 = time.time()
    parts = common.load_base(base, device)
    with torch.no_grad():
        latents = common.encode_images(parts["vae"], images, device)
    final = train(parts, latents, tokenize(parts["tokenizer"], captions), args, device)
    state = lora_state(parts["unet"], UNET_PREFIX, args.alpha)
    # Whole or absent: an interrupted or failed write never leaves a truncated LoRA under the name.
    atomic_write_bytes(args.out, save(state, metadata=metadata(args, base, len(images), time.time() - t0)))
    common.report({"steps": args.steps, "final_loss": final, "minutes": round((time.time() - t0) / 60, 2),
                   "tensors": len(state), "lora_parameters": sum(v.numel() for v in state.values())}, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
