"""Train the demo CLIP vision encoder (a tiny transformers CLIPVisionModelWithProjection) on generated shapes.

    nodeforge train-clip-vision --out resources/clip_vision/shapes-clip-vision
    python -m nodeforge.training.clip_vision --out FOLDER --measure-only   (retrieval of a saved encoder)

CLIP's image half for the demo model's text encoder: the encoder's projected image embedding is trained
to pick, among the demo text encoder's pooled embeddings of every full caption the generator can write
("a <colour> <shape> on a <colour> background": 8 x 7 colour pairs x 3 shapes = 168), the one of the
picture, by CLIP's contrastive loss with the text side frozen (the cosine of the image embedding with each
caption's, times a learned temperature, cross-entropy on the right caption). Its embeddings are therefore
in the text encoder's pooled space, 64 values wide.

The folder is what CLIP Vision Loader (nodes/ipadapter.py) reads from models/clip_vision/: config.json,
model.safetensors and preprocessor_config.json (CLIP's processor at 64 px). Quality is retrieval on
held-out pictures: the share whose own caption is the nearest of the 168, next to chance (1/168).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nodeforge.training import common, data

TRAIN_SEED = 505
HELD_OUT_SEED = 90210               # never used for training pictures
SIDE = data.IMAGE_SIZE


def captions() -> list[str]:
    """Every full caption of the base shapes, in a fixed order."""
    return [data.class_prompt(c, s, b) for s in data.SHAPES for c in data.COLOURS for b in data.COLOURS if b != c]


@torch.no_grad()
def caption_embeddings(base: Path) -> torch.Tensor:
    """The demo text encoder's pooled output of every caption [168, 64], unit length."""
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(base / "tokenizer"), local_files_only=True)
    encoder = CLIPTextModel.from_pretrained(str(base / "text_encoder"), local_files_only=True).eval()
    ids = tokenizer(captions(), padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    return F.normalize(encoder(input_ids=ids).pooler_output.float(), dim=-1)


def dataset(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n pictures [n, 3, 64, 64] in 0..1 and the index of each one's caption in `captions()`."""
    images, samples = data.generate(n, seed)
    index = {text: i for i, text in enumerate(captions())}
    labels = torch.tensor([index[data.full_caption(s)] for s in samples], dtype=torch.long)
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0), labels


def network(hidden: int, layers: int, width: int) -> torch.nn.Module:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                              num_attention_heads=max(1, hidden // 32), image_size=SIDE, patch_size=8,
                              projection_dim=width)
    return CLIPVisionModelWithProjection(config)


def processor():
    try:   # the backend CLIP Vision Loader reads with (PIL, no torchvision)
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:
        from transformers import CLIPImageProcessor as Processor
    return Processor(size={"shortest_edge": SIDE}, crop_size={"height": SIDE, "width": SIDE})


MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)   # CLIP's, as the processor's
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)


def embed(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Unit image embeddings of 64 px pictures in 0..1 (the processor's normalisation; no resize at 64 px)."""
    return F.normalize(model(pixel_values=(images - MEAN) / STD).image_embeds, dim=-1)


@torch.no_grad()
def measure(model: torch.nn.Module, proc, texts: torch.Tensor, n: int) -> dict:
    """Held-out retrieval through the processor as the loader uses it: top-1 and top-5 among all captions,
    and how often shape, colour and background of the nearest caption are each right."""
    model.eval()
    images, labels = dataset(n, HELD_OUT_SEED)
    frames = [(im.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for im in images]
    pixels = proc(images=frames, return_tensors="pt").pixel_values
    found = F.normalize(model(pixel_values=pixels).image_embeds, dim=-1) @ texts.T
    top = found.topk(5, dim=-1).indices
    names = [text.split() for text in captions()]        # a COLOUR SHAPE on a BACKGROUND background
    right = {part: round(sum(names[int(a)][k] == names[int(b)][k] for a, b in zip(top[:, 0], labels)) / n, 4)
             for part, k in (("colour_right", 1), ("shape_right", 2), ("background_right", 5))}
    return {"held_out_images": n, "held_out_seed": HELD_OUT_SEED, "captions": len(names),
            "top1": round(float((top[:, 0] == labels).float().mean()), 4),
            "top5": round(float((top == labels[:, None]).any(-1).float().mean()), 4),
            "chance_top1": round(1 / len(names), 4), **right}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = common.TrainerParser(
        prog="nodeforge train-clip-vision",
        description="Train a tiny CLIP vision encoder on generated shapes against the demo text encoder's pooled "
                    "caption embeddings; writes the transformers folder CLIP Vision Loader reads from "
                    "models/clip_vision.")
    p.add_argument("--out", required=True, type=Path, help="output folder (replaced when it exists)")
    p.add_argument("--base", default="nodeforge-shapes", help="demo model whose text encoder embeds the captions")
    p.add_argument("--images", metavar="N", type=common.COUNT, default=4000, help="training pictures")
    p.add_argument("--hidden", metavar="N", type=common.whole(32, 1024, multiple=32), default=64,
                   help="the ViT's width (a multiple of 32: one attention head per 32)")
    p.add_argument("--layers", metavar="N", type=common.whole(1, 24), default=4, help="the ViT's layers")
    p.add_argument("--steps", metavar="N", type=common.COUNT, default=3000, help="optimizer steps")
    p.add_argument("--lr", metavar="RATE", type=common.RATE, default=1e-3,
                   help="AdamW learning rate (50-step warm-up, cosine decay to 1/20)")
    p.add_argument("--batch", metavar="N", type=common.COUNT, default=32, help="pictures per step")
    p.add_argument("--held-out", metavar="N", type=common.COUNT, default=500, help="held-out pictures measured")
    p.add_argument("--seed", metavar="N", type=common.SEED, default=0, help="seed of the weights and batches")
    p.add_argument("--threads", metavar="N", type=common.COUNT, default=1, help="CPU threads torch may use")
    p.add_argument("--measure-only", action="store_true", help="only measure the encoder at --out")
    p.add_argument("--json", type=Path, help="write the measured numbers here")
    return p.parse_args(argv)


def train(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, texts: torch.Tensor,
          args: argparse.Namespace) -> float:
    """CLIP's loss with the caption side frozen, a learned temperature (CLIP's start: 1 / 0.07); the seconds."""
    scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    opt = torch.optim.AdamW([*model.parameters(), scale], lr=args.lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(args.seed)
    progress = common.Progress(args.steps, name="train-clip-vision")
    t0 = time.time()
    model.train()
    for step in range(args.steps):
        idx = torch.randint(len(images), (args.batch,), generator=gen)
        logits = scale.clamp(max=math.log(100)).exp() * embed(model, images[idx]) @ texts.T
        loss = F.cross_entropy(logits, labels[idx])
        for group in opt.param_groups:
            group["lr"] = common.warm_cosine_lr(step, args.steps, args.lr)
        common.optimizer_step(opt, loss, clip=model.parameters())
        progress.update(step + 1, loss.item())
    return time.time() - t0


def load(folder: Path) -> tuple[torch.nn.Module, object]:
    from transformers import CLIPVisionModelWithProjection

    if not (folder / "config.json").is_file():
        raise common.TrainingInputError(f"--out {folder} holds no CLIP vision encoder (config.json); train one first")
    model = CLIPVisionModelWithProjection.from_pretrained(str(folder), local_files_only=True).eval()
    return model, processor()


@common.guarded("train-clip-vision")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    common.start(args.threads, args.seed)
    common.writable_output(args.json, "numbers (JSON)", "--json")
    base = common.resolve_base(args.base, "train-clip-vision", ("text_encoder", "tokenizer"))
    texts = caption_embeddings(base)
    if args.measure_only:
        model, proc = load(args.out)
        common.report(measure(model, proc, texts, args.held_out), args.json)
        return 0
    if not args.out.parent.is_dir():
        raise common.TrainingInputError(f"--out {args.out}: no folder {args.out.parent}; create it first")
    t0 = time.time()
    images, labels = dataset(args.images, TRAIN_SEED + args.seed)
    model, proc = network(args.hidden, args.layers, texts.shape[-1]), processor()
    train_s = train(model, images, labels, texts, args)
    numbers = measure(model, proc, texts, args.held_out)
    numbers.update(steps=args.steps, train_s=round(train_s, 1), hidden=args.hidden, layers=args.layers,
                   parameters=sum(p.numel() for p in model.parameters()))
    write(model, proc, args, numbers)
    common.report(numbers, args.json)
    print(f"train-clip-vision: wrote {args.out} in {time.time() - t0:.0f} s", file=sys.stderr)
    return 0


def write(model: torch.nn.Module, proc, args: argparse.Namespace, numbers: dict) -> None:
    """The folder with its facts and numbers, swapped in whole (a kill leaves the old one or the new one)."""
    facts = {"trainer": "nodeforge.training.clip_vision", "base": args.base, "images": args.images,
             "seed": args.seed, "steps": args.steps, "batch": args.batch, "lr": args.lr}
    common.write_pretrained_folder(args.out, (model, proc), facts, numbers)


if __name__ == "__main__":
    raise SystemExit(main())
