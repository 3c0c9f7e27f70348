"""Train the demo IP-Adapter (shapes-ipadapter) for nodeforge-shapes with the shapes-clip-vision encoder.

    nodeforge train-ipadapter --out resources/ipadapter/shapes-ipadapter.safetensors
    python -m nodeforge.training.ipadapter --out FILE --measure-only   (the image-prompt test of a saved file)

IP-Adapter's recipe (Ye et al. 2023, h94/IP-Adapter's training scripts) on the demo data: the UNet, VAE,
text encoder and image encoder stay frozen; trained are the image projection (plain, the default: diffusers'
ImageProjection, a linear map of the projected image embedding to 4 tokens and a LayerNorm; Plus:
IPAdapterPlusImageProjection, a 4-block resampler over the encoder's penultimate hidden states, which
learned more slowly here: see resources/ipadapter/README.md) and, in every cross-attention layer, the key and
value projections of the image tokens (to_k_ip / to_v_ip, started from the layer's own to_k / to_v). Each
training picture is its own image prompt; its caption (the generator's, attributes dropped at random) is
replaced by "" for --text-drop of the steps' pictures, the image by the negative diffusers and NodeForge
give (plain: a zero embedding; Plus: the hidden states of an all-zero input) for --image-drop, both for
--both-drop; the loss is the UNet's
epsilon error. Training runs through diffusers' own IP-Adapter modules (`_load_ip_adapter_weights`), so
what is trained is what `load_ip_adapter` and IPAdapterLoader compute.

The file is in h94's layout (`image_proj.*`, `ip_adapter.N.to_k_ip/to_v_ip.weight`, N = 1, 3, 5 ...),
which IPAdapterLoader (nodes/ipadapter.py) and diffusers' `load_ip_adapter` read; its metadata holds the
settings and the numbers. Quality is what a user sees: with an empty prompt, images generated from
held-out reference pictures with the adapter at weight 1 and without it (the same noise), judged from
their pixels (nodeforge.training.judge): how often the shape's colour, the background, the shape class
and all three are the reference's.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nodeforge.training import common, data

TRAIN_SEED = 606
HELD_OUT_SEED = 90210               # never used for training pictures
KINDS = ("plus", "plain")


# -- the adapter in h94's layout ------------------------------------------------------------------------------
def fresh_state(unet: Any, kind: str, embed_dim: int, tokens: int, seed: int) -> dict[str, torch.Tensor]:
    """A new adapter in h94's names: the projection at diffusers' initialisation, every to_k_ip / to_v_ip
    a copy of its layer's to_k / to_v (IP-Adapter's start: the image tokens read like text tokens)."""
    from diffusers.models.embeddings import ImageProjection, IPAdapterPlusImageProjection

    torch.manual_seed(seed)
    cross = unet.config.cross_attention_dim
    if kind == "plus":
        proj: torch.nn.Module = IPAdapterPlusImageProjection(embed_dims=embed_dim, output_dims=cross,
                                                             hidden_dims=64, heads=1, num_queries=tokens)
    else:
        proj = ImageProjection(image_embed_dim=embed_dim, cross_attention_dim=cross, num_image_text_embeds=4)
    layers = []
    for name in cross_attention_names(unet):
        attn = unet.get_submodule(name[:-len(".processor")])
        layers.append((attn.to_k.weight.detach().clone(), attn.to_v.weight.detach().clone()))
    return h94_state(proj, layers)


def cross_attention_names(unet: Any) -> list[str]:
    """The UNet's cross-attention layers in IP-Adapter order (IPAdapterLoader's list; the installed
    resampler's own attention left out)."""
    from nodeforge.core.registry import builtin_module

    names = builtin_module("ipadapter").cross_attention_names(unet)
    return [name for name in names if not name.startswith("encoder_hid_proj.")]


def h94_state(proj: torch.nn.Module, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """diffusers' projection module and the (to_k_ip, to_v_ip) weights under h94's names, which diffusers'
    converter turns back (plain: proj/norm; Plus: norm1/norm2, a fused to_kv, the feed-forward as 1.0/1.1/1.3)."""
    sd = {k: v.detach() for k, v in proj.state_dict().items()}
    if "image_embeds.weight" in sd:     # plain
        out = {f"image_proj.{k.replace('image_embeds', 'proj')}": v for k, v in sd.items()}
    else:
        out = {f"image_proj.{k}": sd[k] for k in ("latents", "proj_in.weight", "proj_in.bias", "proj_out.weight",
                                                  "proj_out.bias", "norm_out.weight", "norm_out.bias")}
        for i in range(len(proj.layers)):
            src, dst = f"layers.{i}.", f"image_proj.layers.{i}."
            for a, b in (("ln0", "0.norm1"), ("ln1", "0.norm2"), ("ff.0", "1.0")):
                out[dst + b + ".weight"], out[dst + b + ".bias"] = sd[src + a + ".weight"], sd[src + a + ".bias"]
            out[dst + "0.to_q.weight"] = sd[src + "attn.to_q.weight"]
            out[dst + "0.to_kv.weight"] = torch.cat([sd[src + "attn.to_k.weight"], sd[src + "attn.to_v.weight"]])
            out[dst + "0.to_out.weight"] = sd[src + "attn.to_out.0.weight"]
            out[dst + "1.1.weight"] = sd[src + "ff.1.net.0.proj.weight"]
            out[dst + "1.3.weight"] = sd[src + "ff.1.net.2.weight"]
    for i, (k, v) in enumerate(layers):
        out[f"ip_adapter.{2 * i + 1}.to_k_ip.weight"] = k.detach()
        out[f"ip_adapter.{2 * i + 1}.to_v_ip.weight"] = v.detach()
    return {k: v.float().contiguous().clone() for k, v in out.items()}


def install(unet: Any, state: dict[str, torch.Tensor]) -> None:
    """The adapter `state` (h94's names) put into `unet` by diffusers' own loader (as load_ip_adapter does)."""
    parts = {"image_proj": {k[len("image_proj."):]: v for k, v in state.items() if k.startswith("image_proj.")},
             "ip_adapter": {k[len("ip_adapter."):]: v for k, v in state.items() if k.startswith("ip_adapter.")}}
    unet._load_ip_adapter_weights([parts], low_cpu_mem_usage=False)


def installed_state(unet: Any) -> dict[str, torch.Tensor]:
    """The adapter inside `unet` (after `install`) back in h94's names."""
    proj = unet.encoder_hid_proj.image_projection_layers[0]
    layers = []
    for name in cross_attention_names(unet):
        processor = unet.attn_processors[name]
        layers.append((processor.to_k_ip[0].weight, processor.to_v_ip[0].weight))
    return h94_state(proj, layers)


def trainable(unet: Any) -> list[torch.nn.Parameter]:
    params = list(unet.encoder_hid_proj.parameters())
    for name in cross_attention_names(unet):
        processor = unet.attn_processors[name]
        params += [processor.to_k_ip[0].weight, processor.to_v_ip[0].weight]
    for p in params:
        p.requires_grad_(True)
    return params


# -- the data -----------------------------------------------------------------------------------------------
def load_encoder(name: str) -> Any:
    """The frozen image encoder (a transformers folder: a bundled clip_vision name or a path)."""
    from transformers import CLIPVisionModelWithProjection

    from nodeforge.paths import builtin_dir

    path = Path(name)
    if not path.exists():
        path = builtin_dir("resources") / "clip_vision" / name
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise common.TrainingInputError(f"--encoder {name!r} is neither a CLIP vision encoder folder (config.json, "
                                        "model.safetensors) nor a bundled one (shapes-clip-vision)")
    return CLIPVisionModelWithProjection.from_pretrained(str(path), local_files_only=True).eval().requires_grad_(False)


MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)   # CLIP's, as the processor's
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)


@torch.no_grad()
def features(encoder: Any, images: np.ndarray | None, kind: str) -> torch.Tensor:
    """What the projection reads of uint8 pictures [n, 64, 64, 3] at the encoder's size (the processor's
    normalisation; no resize or crop at 64 px): Plus the penultimate hidden states, plain the image embedding.
    `images` None: the negative (dropped) image as diffusers' `encode_image` and IPAdapterApply give it: a
    plain adapter's is an all-zero embedding, a Plus adapter's the hidden states of an all-zero input."""
    side = encoder.config.image_size
    if images is None and kind == "plain":
        return torch.zeros(1, encoder.config.projection_dim)
    if images is None:
        pixels = torch.zeros(1, 3, side, side)
    else:
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0)
        if x.shape[-1] != side:
            raise common.TrainingInputError(f"the encoder reads {side} px pictures; the demo pictures are "
                                            f"{x.shape[-1]} px")
        pixels = (x - MEAN) / STD
    out = []
    for i in range(0, len(pixels), 256):
        result = encoder(pixel_values=pixels[i:i + 256], output_hidden_states=kind == "plus")
        out.append(result.hidden_states[-2] if kind == "plus" else result.image_embeds)
    return torch.cat(out)


class Texts:
    """The frozen text encoder's last hidden states of captions, each computed once."""

    def __init__(self, tokenizer: Any, encoder: Any) -> None:
        self.tokenizer, self.encoder, self.cache = tokenizer, encoder, {}

    @torch.no_grad()
    def __call__(self, captions: list[str]) -> torch.Tensor:
        new = sorted({c for c in captions if c not in self.cache})
        if new:
            ids = self.tokenizer(new, padding="max_length", max_length=self.tokenizer.model_max_length,
                                 truncation=True, return_tensors="pt").input_ids
            for caption, hidden in zip(new, self.encoder(input_ids=ids)[0]):
                self.cache[caption] = hidden
        return torch.stack([self.cache[c] for c in captions])


# -- training -----------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = common.TrainerParser(
        prog="nodeforge train-ipadapter",
        description="Train an IP-Adapter (image prompts) for the demo model with the demo CLIP vision encoder on "
                    "generated shapes, everything else frozen; writes a .safetensors in h94's layout that Load "
                    "IP-Adapter and diffusers' load_ip_adapter read.")
    p.add_argument("--out", required=True, type=Path, help="output .safetensors")
    p.add_argument("--base", default="nodeforge-shapes", help="the model the adapter is for (kept frozen)")
    p.add_argument("--encoder", default="shapes-clip-vision", help="the CLIP vision encoder it reads (kept frozen)")
    p.add_argument("--kind", choices=KINDS, default="plain",
                   help="plus: a resampler over the encoder's hidden states (IP-Adapter Plus); plain: a linear map "
                        "of the image embedding")
    p.add_argument("--tokens", metavar="N", type=common.whole(1, 64), default=16,
                   help="image tokens of a Plus adapter (the resampler's queries; plain adapters have 4)")
    p.add_argument("--images", metavar="N", type=common.COUNT, default=4000, help="training pictures")
    p.add_argument("--steps", metavar="N", type=common.COUNT, default=2600, help="optimizer steps")
    p.add_argument("--lr", metavar="RATE", type=common.RATE, default=1e-3,
                   help="AdamW learning rate (50-step warm-up, cosine decay to 1/20)")
    p.add_argument("--batch", metavar="N", type=common.COUNT, default=32, help="pictures per step")
    p.add_argument("--text-drop", metavar="P", type=common.SHARE, default=0.5,
                   help="share of pictures trained with an empty caption (the image prompt alone)")
    p.add_argument("--image-drop", metavar="P", type=common.SHARE, default=0.05,
                   help="share trained with the dropped image (the negative image tokens) and their caption")
    p.add_argument("--both-drop", metavar="P", type=common.SHARE, default=0.05,
                   help="share trained with neither (as classifier-free guidance's unconditional side)")
    p.add_argument("--held-out", metavar="N", type=common.whole(1, 1000), default=48,
                   help="held-out reference pictures the image-prompt test generates from")
    p.add_argument("--seed", metavar="N", type=common.SEED, default=0, help="seed of the weights and batches")
    p.add_argument("--threads", metavar="N", type=common.COUNT, default=1, help="CPU threads torch may use")
    p.add_argument("--work", type=Path, default=None,
                   help="folder for a checkpoint every --save-every steps; a rerun with the same folder resumes")
    p.add_argument("--save-every", metavar="N", type=common.COUNT, default=250, help="steps between checkpoints")
    p.add_argument("--measure-only", action="store_true", help="only measure the adapter at --out")
    p.add_argument("--json", type=Path, help="write the measured numbers here")
    args = p.parse_args(argv)
    if args.text_drop + args.image_drop + args.both_drop > 1:
        p.error(f"--text-drop {args.text_drop} + --image-drop {args.image_drop} + --both-drop {args.both_drop} "
                "is more than 1; the three shares are of the same pictures")
    return args


def train(unet: Any, scheduler: Any, latents: torch.Tensor, feats: torch.Tensor, zero: torch.Tensor,
          samples: list, texts: Texts, args: argparse.Namespace) -> float:
    """AdamW on the epsilon loss of the frozen UNet with the adapter's parts trainable; the seconds."""
    params = trainable(unet)
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    start = 0
    state = common.checkpoint(args.work, "ipadapter.pt")
    if state is not None:
        if state["facts"] != _facts(args):
            raise common.TrainingInputError(f"--work {args.work} holds a checkpoint of other settings "
                                            f"({state['facts']}); use another --work folder")
        with torch.no_grad():
            for p, saved in zip(params, state["params"]):
                p.copy_(saved)
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        rng.bit_generator.state = state["rng"]
        start = int(state["step"])
        print(f"train-ipadapter: resumed from step {start} ({args.work})", file=sys.stderr)
    progress = common.Progress(args.steps, name="train-ipadapter", start=start)
    alphas = scheduler.alphas_cumprod
    t0 = time.time()
    unet.train()
    for step in range(start, args.steps):
        idx = torch.randint(len(latents), (args.batch,), generator=gen)
        roll = torch.rand(args.batch, generator=gen)
        no_text = roll < args.text_drop + args.both_drop
        no_image = (roll >= args.text_drop) & (roll < args.text_drop + args.both_drop + args.image_drop)
        captions = ["" if drop else data.caption(samples[int(i)], rng) for i, drop in zip(idx, no_text.tolist())]
        image = torch.where(no_image.view(-1, *[1] * (feats.dim() - 1)), zero.expand_as(feats[idx]), feats[idx])
        x0 = latents[idx]
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, len(alphas), (args.batch,), generator=gen)
        a = alphas[t].view(-1, 1, 1, 1)
        noisy = a.sqrt() * x0 + (1 - a).sqrt() * noise
        pred = unet(noisy, t, encoder_hidden_states=texts(captions),
                    added_cond_kwargs={"image_embeds": [image.unsqueeze(1)]}).sample
        loss = F.mse_loss(pred, noise)
        for group in opt.param_groups:
            group["lr"] = common.warm_cosine_lr(step, args.steps, args.lr)
        common.optimizer_step(opt, loss, clip=params)
        progress.update(step + 1, loss.item())
        if args.work is not None and common.due(step + 1, args.save_every, args.steps):
            common.checkpoint(args.work, "ipadapter.pt", {
                "facts": _facts(args), "step": step + 1, "params": [p.detach().clone() for p in params],
                "opt": opt.state_dict(), "gen": gen.get_state(), "rng": rng.bit_generator.state})
    unet.eval()
    return time.time() - t0


def _facts(args: argparse.Namespace) -> dict[str, Any]:
    return {"base": args.base, "encoder": args.encoder, "kind": args.kind, "tokens": args.tokens,
            "images": args.images, "steps": args.steps, "lr": args.lr, "batch": args.batch,
            "text_drop": args.text_drop, "image_drop": args.image_drop, "both_drop": args.both_drop, "seed": args.seed}


# -- the image-prompt test ----------------------------------------------------------------------------------
@torch.no_grad()
def generate(unet: Any, vae: Any, base: Path, texts: Texts, n: int, image: torch.Tensor | None = None,
             negative: torch.Tensor | None = None, seed: int = HELD_OUT_SEED, steps: int = 20, cfg: float = 5.0,
             prompt: str = "") -> np.ndarray:
    """n pictures [n, 64, 64, 3] uint8 from the prompt `prompt` (negative "") with the image features `image`
    [n, ...] as the image prompt (negative: `negative`), or none; the demo model's Euler sampler and CFG,
    each picture's own noise from `seed` + its index."""
    from diffusers import EulerDiscreteScheduler

    sched = EulerDiscreteScheduler.from_pretrained(base, subfolder="scheduler")
    sched.set_timesteps(steps)
    side = data.IMAGE_SIZE // 2 ** (len(vae.config.block_out_channels) - 1)
    x = torch.cat([torch.randn(1, unet.config.in_channels, side, side, generator=torch.Generator().manual_seed(seed + i))
                   for i in range(n)]) * sched.init_noise_sigma
    text = torch.cat([texts([""] * n), texts([prompt] * n)])
    extra = {}
    if image is not None:
        extra = {"added_cond_kwargs": {"image_embeds": [torch.cat([negative.expand_as(image), image]).unsqueeze(1)]}}
    for t in sched.timesteps:
        inp = sched.scale_model_input(torch.cat([x, x]), t)
        uncond, cond = unet(inp, t, encoder_hidden_states=text, **extra).sample.chunk(2)
        x = sched.step(uncond + cfg * (cond - uncond), t, x).prev_sample
    pixels = vae.decode(x / vae.config.scaling_factor).sample
    return ((pixels.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def agreement(pictures: np.ndarray, samples: list) -> dict[str, float]:
    from nodeforge.training.judge import judge

    verdicts = [judge(p) for p in pictures]
    colour = [v.colour == s.colour for v, s in zip(verdicts, samples)]
    background = [v.background == s.background for v, s in zip(verdicts, samples)]
    shape = [v.shape == s.shape for v, s in zip(verdicts, samples)]
    n = len(samples)
    return {"colour": round(sum(colour) / n, 4), "background": round(sum(background) / n, 4),
            "shape": round(sum(shape) / n, 4),
            "all_three": round(sum(c and b and s for c, b, s in zip(colour, background, shape)) / n, 4)}


def measure(path: Path, base: Path, encoder: Any, n: int) -> dict[str, Any]:
    """The image-prompt test of the adapter file `path`: n held-out references, empty prompt, weight 1 and
    without the adapter (the same noise), and with the adapter and the neutral prompt "a shape"."""
    parts = common.load_base(base, torch.device("cpu"))
    unet, texts = parts["unet"], Texts(parts["tokenizer"], parts["text_encoder"])
    state = common.read_tensors(path, "IP-Adapter")
    kind = "plain" if "image_proj.proj.weight" in state else "plus"
    images, samples = data.generate(n, HELD_OUT_SEED)
    refs, zero = features(encoder, images, kind), features(encoder, None, kind)
    vae = parts["vae"]
    without = generate(unet, vae, base, texts, n)
    install(unet, state)
    unet.eval()
    with_empty = generate(unet, vae, base, texts, n, refs, zero)
    with_neutral = generate(unet, vae, base, texts, n, refs, zero, prompt="a shape")
    return {"held_out_images": n, "held_out_seed": HELD_OUT_SEED, "kind": kind, "sampler": "euler 20 steps cfg 5",
            "without_adapter_empty_prompt": agreement(without, samples),
            "with_adapter_empty_prompt": agreement(with_empty, samples),
            "with_adapter_prompt_a_shape": agreement(with_neutral, samples)}


@common.guarded("train-ipadapter")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from safetensors.torch import save

    from nodeforge.core.files import atomic_write_bytes

    common.start(args.threads, args.seed)
    common.writable_output(args.json, "numbers (JSON)", "--json")
    base = common.resolve_base(args.base, "train-ipadapter")
    encoder = load_encoder(args.encoder)
    if args.measure_only:
        common.report(measure(common.model_file(args.out, "IP-Adapter"), base, encoder, args.held_out), args.json)
        return 0
    common.writable_output(args.out, "IP-Adapter (.safetensors)")
    t0 = time.time()
    parts = common.load_base(base, torch.device("cpu"))
    unet, texts = parts["unet"], Texts(parts["tokenizer"], parts["text_encoder"])
    images, samples = data.generate(args.images, TRAIN_SEED + args.seed)
    with torch.no_grad():
        latents = common.encode_images(parts["vae"], images, torch.device("cpu"))
    feats, zero = features(encoder, images, args.kind), features(encoder, None, args.kind)
    print(f"train-ipadapter: {args.images} pictures encoded in {time.time() - t0:.0f} s", file=sys.stderr)
    install(unet, fresh_state(unet, args.kind, feats.shape[-1], args.tokens, args.seed))
    train_s = train(unet, parts["scheduler"], latents, feats, zero, samples, texts, args)
    state = installed_state(unet)
    facts = {"nodeforge_trainer": "nodeforge.training.ipadapter", **{k: str(v) for k, v in _facts(args).items()},
             "train_s": f"{train_s:.1f}"}
    atomic_write_bytes(args.out, save(state, metadata=facts))
    numbers = measure(args.out, base, encoder, args.held_out)
    numbers.update(steps=args.steps, train_s=round(train_s, 1), kind=args.kind,
                   parameters=sum(v.numel() for v in state.values()))
    atomic_write_bytes(args.out, save(state, metadata={**facts, "evaluation": _json(numbers)}))
    common.report(numbers, args.json)
    print(f"train-ipadapter: wrote {args.out} ({args.out.stat().st_size // 1024} KiB) in {time.time() - t0:.0f} s",
          file=sys.stderr)
    return 0


def _json(numbers: dict) -> str:
    import json

    return json.dumps(numbers, separators=(",", ":"))


if __name__ == "__main__":
    raise SystemExit(main())
