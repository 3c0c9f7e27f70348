"""Train a textual-inversion embedding: new word vectors learned from images only.

    nodeforge train-embedding --out resources/embeddings/shapes-sunset.safetensors [--vectors 4 --steps N ...]
    nodeforge train-embedding --images-dir MY_IMAGES --base MODEL --out my-thing.safetensors [--work DIR ...]
    python -m nodeforge.training.embedding --out x.safetensors --measure-only   (judge a saved embedding)

The UNet, the VAE and the text encoder stay frozen; only the embedding's vectors (one token
position each) are optimised, through the frozen text encoder, by the denoising loss of the base
model on the concept's images. Captions hold the placeholder and nothing else ("a <e>", "<e>"), and
the vectors start from the base's vector for the word "shape", so every colour, shape and layout
the embedding ends up meaning came from the pixels.

The concept of the demo embedding, "sunset", is a large orange sun on a purple dusk sky: a large
orange circle on a purple background, which the base draws only from the seven-word prompt
"a large orange circle on a purple background" (it never saw the word "sunset"). The training
images come from the demo data generator.

With --images-dir the vectors learn a folder's images instead (the editor's Train dialog runs
that), and --work / --sample-every keep a checkpoint to resume and sample images (session.py).

The file is an A1111 `.safetensors` embedding (`emb_params`: [vectors, 64]), which NodeForge's
prompts read as `embedding:NAME` or as the bare file stem. It is judged from pixels by
nodeforge.training.judge on 48 seeds (Euler, 20 steps, CFG 5).
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

from nodeforge.training import common, data, session

SUNSET = dict(shape="circle", colour="orange", background="purple", size="large")
INIT_WORD = "shape"
PLACEHOLDER = "shape"   # the token whose positions the vectors replace while training
TEMPLATES = ("a {}", "{}")
STEPS, CFG = 20, 5.0
CONTEXT = 77                         # the text encoder's tokens: start, end, the word "a", the vectors
MAX_VECTORS = CONTEXT - 3


def concept_images(n: int, seed: int, concept: dict[str, str] = SUNSET) -> np.ndarray:
    """n renders of the concept at random positions, rotations and sizes of its size class."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        lo, hi = data.SIZES[concept["size"]]
        radius = float(rng.uniform(lo, hi))
        lo_c, hi_c = radius + data.MARGIN, data.IMAGE_SIZE - radius - data.MARGIN
        centre = (float(rng.uniform(lo_c, hi_c)), float(rng.uniform(lo_c, hi_c)))
        sample = data.ShapeSample(concept["shape"], concept["colour"], concept["background"], concept["size"],
                                  radius, centre, float(rng.uniform(0, 2 * math.pi)))
        out.append(data.render(sample))
    return np.stack(out)


class Substitution:
    """A forward hook on the token embedding that puts vector k at the k-th placeholder position
    of each row whose ids are in `mask` (what NodeForge's prompt encoder does with a file)."""

    def __init__(self, module: torch.nn.Module, vectors: torch.Tensor) -> None:
        self.vectors, self.mask = vectors, None
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        if self.mask is None:
            return output
        index = (self.mask.cumsum(1) - 1).clamp(min=0, max=len(self.vectors) - 1)
        return torch.where(self.mask[..., None], self.vectors[index].to(output.dtype), output)


def encode(text_encoder, tokenizer, sub: Substitution, texts: list[str], vectors: int, word: str = PLACEHOLDER):
    """Hidden states of `texts` whose "{}" is the embedding (as `vectors` placeholder tokens)."""
    placeholder = " ".join([word] * vectors)
    ids = tokenizer([t.format(placeholder) for t in texts], padding="max_length",
                    max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt").input_ids
    [word_id] = tokenizer(word, add_special_tokens=False).input_ids
    sub.mask = (ids == word_id) if "{}" in "".join(texts) else None
    try:
        return text_encoder(ids)[0]
    finally:
        sub.mask = None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = common.TrainerParser(
        prog="nodeforge train-embedding",
        description="Train a textual-inversion embedding of the demo concept 'sunset' (a large orange circle "
                    "on a purple background) from generated images only; writes an A1111 .safetensors that "
                    "prompts use as embedding:NAME.")
    p.add_argument("--out", required=True, type=Path, help="output .safetensors (A1111 emb_params)")
    p.add_argument("--base", default="nodeforge-shapes", help="diffusers folder (or bundled model name)")
    p.add_argument("--vectors", metavar="N", type=common.whole(1, MAX_VECTORS, why=(
                   f" (the text encoder's {CONTEXT} tokens also hold the start and end tokens and the word 'a')")),
                   default=4, help="token positions the embedding takes")
    p.add_argument("--images", metavar="N", type=common.COUNT, default=400, help="generated images of the concept")
    p.add_argument("--images-dir", metavar="DIR", type=Path, default=None,
                   help="train on this folder's images instead of the generated demo concept (their captions "
                        "are not used; the judge, which knows only the demo concept, is skipped)")
    p.add_argument("--resolution", metavar="PX", type=common.whole(8, 4096, multiple=8), default=64,
                   help="--images-dir images are centre-cropped square and resized to this many pixels a side")
    p.add_argument("--steps", metavar="N", type=common.COUNT, default=600, help="optimizer steps")
    p.add_argument("--lr", metavar="RATE", type=common.RATE, default=5e-3,
                   help="AdamW learning rate (after a 20-step warm-up)")
    p.add_argument("--batch", metavar="N", type=common.COUNT, default=16, help="images per step")
    p.add_argument("--noise-offset", metavar="STD", type=common.STD, default=0.15,
                   help="per-channel noise offset, as the base model was trained")
    p.add_argument("--seed", metavar="N", type=common.SEED, default=0, help="seed of the images, batches and noise")
    p.add_argument("--seeds", metavar="N", type=common.COUNT, default=48, help="sampling seeds judged after training")
    p.add_argument("--threads", metavar="N", type=common.COUNT, default=2, help="CPU threads torch may use")
    p.add_argument("--measure-only", action="store_true", help="only judge the embedding at --out")
    p.add_argument("--json", type=Path, help="write the measured numbers here")
    session.add_arguments(p, ' ("{}" stands for the embedding, as in "a {}")')
    return p.parse_args(argv)


def load_vectors(path: Path, base: Path) -> torch.Tensor:
    """The vectors of the A1111 embedding at `path`, checked against the base's text encoder
    (from its config, before the model loads)."""
    tensors = common.read_tensors(path, "embedding")
    vectors = tensors.get("emb_params")
    if vectors is None:
        keys = ", ".join(sorted(tensors)[:5])
        raise common.TrainingInputError(f"{path} holds no 'emb_params' tensor (keys: {keys}); it is not an A1111 "
                                        "embedding")
    width = _text_width(base)
    if vectors.ndim != 2 or not 1 <= len(vectors) <= MAX_VECTORS or (width and vectors.shape[1] != width):
        raise common.TrainingInputError(f"{path}: emb_params is {list(vectors.shape)}; an embedding for {base.name} is "
                                        f"[1 to {MAX_VECTORS} vectors, {width or 'the text width'}]")
    return vectors.float()


def _text_width(base: Path) -> int | None:
    config = base / "text_encoder" / "config.json"
    try:
        return int(json.loads(config.read_text(encoding="utf-8"))["hidden_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@torch.no_grad()
def judge_rate(base: Path, vectors: torch.Tensor | None, prompt: str, seeds: int, concept=SUNSET) -> dict:
    """Share of `seeds` images (seeds 0..n-1) judged to be the concept; "{}" in the prompt is the embedding."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    from nodeforge.training.judge import judge

    pipe = StableDiffusionPipeline.from_pretrained(base, local_files_only=True, safety_checker=None)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    sub = Substitution(pipe.text_encoder.get_input_embeddings(), vectors if vectors is not None else torch.zeros(1, 1))
    n_vec = len(vectors) if vectors is not None else 1
    cond = encode(pipe.text_encoder, pipe.tokenizer, sub, [prompt] * seeds, n_vec)
    uncond = encode(pipe.text_encoder, pipe.tokenizer, sub, [""] * seeds, n_vec)
    sub.handle.remove()
    gens = [torch.Generator().manual_seed(s) for s in range(seeds)]
    images = pipe(prompt_embeds=cond, negative_prompt_embeds=uncond, num_inference_steps=STEPS, guidance_scale=CFG,
                  height=64, width=64, generator=gens, output_type="np").images
    verdicts = [judge(np.clip(np.rint(im * 255), 0, 255).astype(np.uint8)) for im in images]
    right = [v.shape == concept["shape"] and v.colour == concept["colour"] and v.background == concept["background"]
             for v in verdicts]
    return {"prompt": prompt.format("<embedding>"), "seeds": seeds, "right": round(sum(right) / seeds, 4),
            "shape": round(sum(v.shape == concept["shape"] for v in verdicts) / seeds, 4),
            "colour": round(sum(v.colour == concept["colour"] for v in verdicts) / seeds, 4),
            "background": round(sum(v.background == concept["background"] for v in verdicts) / seeds, 4)}


def measure(base: Path, vectors: torch.Tensor, seeds: int) -> dict:
    return {"embedding": judge_rate(base, vectors, "a {}", seeds),
            "base_word_sunset": judge_rate(base, None, "a sunset", seeds),
            "base_long_prompt": judge_rate(base, None, "a large orange circle on a purple background", seeds)}


@common.guarded("train-embedding")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    common.start(args.threads, args.seed)
    base = common.resolve_base(args.base, "train-embedding", common.PIPELINE_PARTS + ("model_index.json",))
    common.writable_output(args.json, "numbers (JSON)", "--json")
    if args.measure_only:
        common.report(measure(base, load_vectors(args.out, base), args.seeds), args.json)
        return 0
    common.writable_output(args.out, "embedding (.safetensors)")
    session.check_arguments(args)
    images = folder_images(args.images_dir, args.resolution) if args.images_dir else None

    t0 = time.time()
    cpu = torch.device("cpu")
    parts = common.load_base(base, cpu)
    for name in ("unet", "text_encoder"):
        parts[name].eval()
    with torch.no_grad():
        pixels = images if images is not None else concept_images(args.images, args.seed)
        latents = common.encode_images(parts["vae"], pixels, cpu)
    t1 = time.time()
    final = train_vectors(parts, latents, args)
    train_s = time.time() - t1

    # The judge knows the demo concept only: a folder's embedding is not measured.
    numbers = measure(base, final, args.seeds) if images is None else {}
    numbers.update(steps=args.steps, vectors=args.vectors, lr=args.lr,
                   images=args.images if images is None else len(images), train_s=round(train_s, 1))
    save_embedding(args, base, final, numbers)
    common.report(numbers, args.json)
    print(f"train-embedding: wrote {args.out} in {time.time() - t0:.0f} s", file=sys.stderr)
    return 0


def folder_images(folder: Path, resolution: int) -> np.ndarray:
    """--images-dir's images, checked and decoded before the base loads, centre-cropped square and
    resized to `resolution` (uint8 HxWx3)."""
    from PIL import Image

    out = []
    for path in common.image_files(folder):
        img = common.read_image(path, max(common.MIN_SIDE, resolution // 8))
        side = min(img.size)
        left, top = (img.width - side) // 2, (img.height - side) // 2
        img = img.crop((left, top, left + side, top + side)).resize((resolution, resolution), Image.BICUBIC)
        out.append(np.asarray(img))
    return np.stack(out)


def train_vectors(parts: dict, latents: torch.Tensor, args) -> torch.Tensor:
    """`args.vectors` vectors, started at INIT_WORD's, after `args.steps` AdamW steps (20-step warm-up)
    on the frozen base's min-SNR denoising loss, through the frozen text encoder."""
    from nodeforge.training.models import min_snr_loss, training_noise

    text_encoder, tokenizer, unet = parts["text_encoder"], parts["tokenizer"], parts["unet"]
    noise_scheduler = parts["scheduler"]
    table = text_encoder.get_input_embeddings()
    [init_id] = tokenizer(INIT_WORD, add_special_tokens=False).input_ids
    vectors = torch.nn.Parameter(table.weight[init_id].detach().clone().repeat(args.vectors, 1))
    sub = Substitution(table, vectors)
    opt = torch.optim.AdamW([vectors], lr=args.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(args.seed)
    alphas = noise_scheduler.alphas_cumprod
    snr = alphas / (1 - alphas)
    run = session.Session("train-embedding", args, {"trainer": "train-embedding", "vectors": args.vectors})
    done = resume(run, vectors, opt, gen)
    progress = common.Progress(args.steps, name="train-embedding", start=done)

    def sample(path: Path) -> None:
        embeds = [encode(text_encoder, tokenizer, sub, [text], args.vectors) for text in (args.sample_prompt, "")]
        session.sample_image(parts, path, "", args.sample_seed, args.resolution, args.sample_steps, tuple(embeds))

    with run:
        for step in range(done, args.steps):
            idx = torch.randint(len(latents), (args.batch,), generator=gen)
            z0 = latents[idx]
            noise = training_noise(z0.shape, gen, args.noise_offset)
            t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(z0),), generator=gen)
            texts = [TEMPLATES[int(i)] for i in torch.randint(len(TEMPLATES), (len(z0),), generator=gen)]
            cond = encode(text_encoder, tokenizer, sub, texts, args.vectors)
            pred = unet(noise_scheduler.add_noise(z0, noise, t), t, encoder_hidden_states=cond).sample
            loss = min_snr_loss(pred, noise, snr[t])
            for group in opt.param_groups:
                group["lr"] = args.lr * min(1.0, (step + 1) / 20)
            common.optimizer_step(opt, loss)
            progress.update(step + 1, loss.item())
            run.after_step(step + 1, args.steps, lambda: {"vectors": vectors.detach().clone(), "opt": opt.state_dict(),
                                                          "generator": gen.get_state()}, sample)
    sub.handle.remove()
    return vectors.detach().clone().contiguous()


def resume(run: session.Session, vectors: torch.nn.Parameter, opt, gen: torch.Generator) -> int:
    """The steps done by the --work checkpoint (0 without one), its vectors, optimizer and generator loaded."""
    state = run.resume()
    if state is None:
        return 0
    with torch.no_grad():
        vectors.copy_(state["vectors"])
    opt.load_state_dict(state["opt"])
    gen.set_state(state["generator"])
    return int(state["step"])


def save_embedding(args, base: Path, vectors: torch.Tensor, numbers: dict) -> None:
    """The A1111 file (`emb_params`), with what it was trained from and how it was judged as metadata."""
    from safetensors.torch import save

    from nodeforge.core.files import atomic_write_bytes

    metadata = {"nodeforge_trainer": "nodeforge.training.embedding", "name": args.out.stem, "base_model": base.name,
                "concept": json.dumps(SUNSET) if args.images_dir is None else args.images_dir.name, "init_word": INIT_WORD, "steps": str(args.steps),
                "vectors": str(args.vectors), "seed": str(args.seed), "judged": json.dumps(numbers)}
    atomic_write_bytes(args.out, save({"emb_params": vectors}, metadata=metadata))


if __name__ == "__main__":
    raise SystemExit(main())
