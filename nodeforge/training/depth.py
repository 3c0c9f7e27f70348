"""Train the demo depth estimator (a tiny DPT, transformers' DPTForDepthEstimation) on generated shapes.

    nodeforge train-depth --out resources/depth/shapes-depth
    python -m nodeforge.training.depth --out FOLDER --measure-only   (errors of a saved model)

The scene behind each picture of the demo data generator (nodeforge.training.data), as this module
defines it: a flat wall at distance WALL, and in front of it a flat card cut to the shape, every shape
the same physical size, so a shape drawn with radius r px (12.5 to 24) stands at distance FOCAL / r
(larger nearer: 2.7 to 5.1 units, the wall at 8). The target is what MiDaS-style relative models
predict, inverse depth, in units of the wall's: 1 on the wall, r / 8 (1.56 to 3) on the shape, mixed by
the anti-aliased coverage at its edge (the same generator parameters drawn white on black).

The folder is what Image to Depth Map (nodes/depth.py) reads from models/depth/: config.json,
model.safetensors and preprocessor_config.json (a DPTImageProcessor at 64 px). Quality is the error
of the processor's post-processed prediction on held-out shapes next to the mean depth map of the
training targets (the best map that ignores the picture), and the shape's inverse depth (its size)
against the truth.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nodeforge.training import common, data

TRAIN_SEED = 404
HELD_OUT_SEED = 90210               # never used for training images
WALL = 8.0                          # the wall's distance
FOCAL = 64.0                        # px: a shape of radius r px stands at FOCAL / r (unit physical radius)
SIDE = data.IMAGE_SIZE


def scene_depth(sample: data.ShapeSample, size: int = SIDE) -> np.ndarray:
    """The target [size, size] float32: inverse depth in the wall's units (see the module note)."""
    from dataclasses import replace

    cover = data.render(replace(sample, colour="white", background="black"), size)[..., 0].astype(np.float32)
    low, high = data.PALETTE["black"][0], data.PALETTE["white"][0]
    cover = np.clip((cover - low) / (high - low), 0.0, 1.0)
    near = WALL / (FOCAL / sample.radius)
    return (1.0 + cover * (near - 1.0)).astype(np.float32)


def dataset(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, list[data.ShapeSample]]:
    """n pictures [n, 3, 64, 64] in 0..1, their targets [n, 64, 64], the samples (circles, squares,
    triangles, stars and crescents: every shape the demo assets draw)."""
    rng = np.random.default_rng(seed)
    shapes = (*data.SHAPES, "star", "crescent")
    samples = [data.random_sample(rng, shapes) for _ in range(n)]
    images = np.stack([data.render(s) for s in samples]) if samples else np.zeros((0, SIDE, SIDE, 3), np.uint8)
    targets = np.stack([scene_depth(s) for s in samples]) if samples else np.zeros((0, SIDE, SIDE), np.float32)
    return (torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0), torch.from_numpy(targets), samples)


def network(hidden: int, layers: int) -> torch.nn.Module:
    """A DPT (ViT backbone, patch 8 at 64 px) small enough to train on one CPU thread in minutes."""
    from transformers import DPTConfig, DPTForDepthEstimation

    config = DPTConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=max(1, hidden // 16),
                       intermediate_size=2 * hidden, image_size=SIDE, patch_size=8,
                       backbone_out_indices=[(k + 1) * layers // 4 - 1 for k in range(4)],
                       neck_hidden_sizes=[16, 32, hidden, hidden], fusion_hidden_size=32, head_in_index=-1)
    return DPTForDepthEstimation(config)


def processor():
    from transformers import DPTImageProcessor

    return DPTImageProcessor(size={"height": SIDE, "width": SIDE}, keep_aspect_ratio=False,
                             image_mean=[0.5] * 3, image_std=[0.5] * 3)


def predict(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Training's forward: the processor's normalisation (its resize is none at 64 px), the prediction
    resized to 64 px."""
    out = model(pixel_values=images * 2.0 - 1.0).predicted_depth
    return F.interpolate(out.unsqueeze(1), size=(SIDE, SIDE), mode="bilinear", align_corners=False).squeeze(1)


@torch.no_grad()
def node_predict(model: torch.nn.Module, proc, images: torch.Tensor) -> torch.Tensor:
    """What the node computes before its normalisation: the processor, the model, its post-processing."""
    pictures = [frame.permute(1, 2, 0).numpy() for frame in images]
    inputs = proc(images=pictures, do_rescale=False, return_tensors="pt")
    outputs = model(pixel_values=inputs["pixel_values"])
    found = proc.post_process_depth_estimation(outputs, target_sizes=[(SIDE, SIDE)] * len(pictures))
    return torch.stack([entry["predicted_depth"].float() for entry in found])


def minmax(maps: torch.Tensor) -> torch.Tensor:
    """Per map 0..1 (what the node shows for a relative model; flat maps 0)."""
    low = maps.amin(dim=(1, 2), keepdim=True)
    span = maps.amax(dim=(1, 2), keepdim=True) - low
    return torch.where(span > 0, (maps - low) / span.clamp(min=1e-12), torch.zeros_like(maps))


@torch.no_grad()
def measure(model: torch.nn.Module, proc, mean_map: torch.Tensor, n: int) -> dict:
    """Held-out errors of the model and of the mean depth map; the shape's inverse depth against the truth."""
    model.eval()
    images, targets, samples = dataset(n, HELD_OUT_SEED)
    ours = torch.cat([node_predict(model, proc, images[i:i + 50]) for i in range(0, n, 50)])
    base = mean_map.expand_as(targets)
    inside = targets > 1.0 + 0.99 * (targets.amax(dim=(1, 2), keepdim=True) - 1.0)
    shape_ours = torch.stack([ours[i][inside[i]].mean() for i in range(n)])
    shape_true = torch.tensor([WALL * s.radius / FOCAL for s in samples])
    corr = float(np.corrcoef(shape_ours.numpy(), shape_true.numpy())[0, 1])
    return {"held_out_images": n, "held_out_seed": HELD_OUT_SEED,
            "rmse_model": round(float((ours - targets).pow(2).mean().sqrt()), 4),
            "rmse_mean_map": round(float((base - targets).pow(2).mean().sqrt()), 4),
            "mae_model": round(float((ours - targets).abs().mean()), 4),
            "mae_mean_map": round(float((base - targets).abs().mean()), 4),
            "normalised_mae_model": round(float((minmax(ours) - minmax(targets)).abs().mean()), 4),
            "normalised_mae_mean_map": round(float((minmax(base) - minmax(targets)).abs().mean()), 4),
            "shape_depth_mae_model": round(float((shape_ours - shape_true).abs().mean()), 4),
            "shape_depth_mae_mean": round(float((shape_true - shape_true.mean()).abs().mean()), 4),
            "shape_depth_correlation": round(corr, 4)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = common.TrainerParser(
        prog="nodeforge train-depth",
        description="Train a tiny DPT depth estimator on generated shapes (inverse depth of a wall and a card "
                    "in front of it, larger shapes nearer); writes the transformers folder Image to Depth Map "
                    "reads from models/depth.")
    p.add_argument("--out", required=True, type=Path, help="output folder (replaced when it exists)")
    p.add_argument("--images", metavar="N", type=common.COUNT, default=2000, help="training pictures")
    p.add_argument("--hidden", metavar="N", type=common.whole(16, 512, multiple=16), default=48,
                   help="the ViT's width (a multiple of 16: one attention head per 16)")
    p.add_argument("--layers", metavar="N", type=common.whole(4, 24), default=4, help="the ViT's layers")
    p.add_argument("--steps", metavar="N", type=common.COUNT, default=900, help="optimizer steps")
    p.add_argument("--lr", metavar="RATE", type=common.RATE, default=2e-3,
                   help="AdamW learning rate (50-step warm-up, cosine decay to 1/20)")
    p.add_argument("--batch", metavar="N", type=common.COUNT, default=16, help="pictures per step")
    p.add_argument("--held-out", metavar="N", type=common.COUNT, default=200, help="held-out pictures measured")
    p.add_argument("--seed", metavar="N", type=common.SEED, default=0, help="seed of the weights and batches")
    p.add_argument("--threads", metavar="N", type=common.COUNT, default=1, help="CPU threads torch may use")
    p.add_argument("--measure-only", action="store_true", help="only measure the model at --out")
    p.add_argument("--json", type=Path, help="write the measured numbers here")
    return p.parse_args(argv)


def train(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor, args: argparse.Namespace) -> float:
    """AdamW on the L1 error of the inverse depth (MiDaS trains on a shift-invariant one; the scene's scale is
    known here); the training seconds."""
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(args.seed)
    progress = common.Progress(args.steps, name="train-depth")
    t0 = time.time()
    model.train()
    for step in range(args.steps):
        idx = torch.randint(len(images), (args.batch,), generator=gen)
        batch = images[idx]
        if bool(torch.rand((), generator=gen) < 0.5):      # a mirrored scene is a scene
            batch, target = batch.flip(-1), targets[idx].flip(-1)
        else:
            target = targets[idx]
        loss = F.l1_loss(predict(model, batch), target)
        for group in opt.param_groups:
            group["lr"] = common.warm_cosine_lr(step, args.steps, args.lr)
        common.optimizer_step(opt, loss, clip=model.parameters())
        progress.update(step + 1, loss.item())
    return time.time() - t0


def load(folder: Path) -> tuple[torch.nn.Module, object, torch.Tensor]:
    """The saved model, its processor and the mean map it was measured against (in its training.json)."""
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    if not (folder / "config.json").is_file():
        raise common.TrainingInputError(f"--out {folder} holds no depth model (config.json); train one first")
    model = AutoModelForDepthEstimation.from_pretrained(str(folder), local_files_only=True).eval()
    proc = AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
    facts = json.loads((folder / "training.json").read_text(encoding="utf-8"))
    return model, proc, mean_depth(facts["images"], TRAIN_SEED + facts["seed"])


def mean_depth(n: int, seed: int) -> torch.Tensor:
    """The baseline: the mean of the training targets, pixel by pixel."""
    return dataset(n, seed)[1].mean(dim=0, keepdim=True)


@common.guarded("train-depth")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    common.start(args.threads, args.seed)
    common.writable_output(args.json, "numbers (JSON)", "--json")
    if args.measure_only:
        model, proc, mean_map = load(args.out)
        common.report(measure(model, proc, mean_map, args.held_out), args.json)
        return 0
    if not args.out.parent.is_dir():
        raise common.TrainingInputError(f"--out {args.out}: no folder {args.out.parent}; create it first")
    t0 = time.time()
    images, targets, _ = dataset(args.images, TRAIN_SEED + args.seed)
    model, proc = network(args.hidden, args.layers), processor()
    train_s = train(model, images, targets, args)
    numbers = measure(model, proc, targets.mean(dim=0, keepdim=True), args.held_out)
    numbers.update(steps=args.steps, train_s=round(train_s, 1), hidden=args.hidden, layers=args.layers,
                   parameters=sum(p.numel() for p in model.parameters()))
    write(model, proc, args, numbers)
    common.report(numbers, args.json)
    print(f"train-depth: wrote {args.out} in {time.time() - t0:.0f} s", file=sys.stderr)
    return 0


def write(model: torch.nn.Module, proc, args: argparse.Namespace, numbers: dict) -> None:
    """The folder with its facts and numbers, swapped in whole (a kill leaves the old one or the new one)."""
    facts = {"trainer": "nodeforge.training.depth", "images": args.images, "seed": args.seed, "steps": args.steps,
             "batch": args.batch, "lr": args.lr, "wall_distance": WALL, "focal_px": FOCAL}
    common.write_pretrained_folder(args.out, (model, proc), facts, numbers)


if __name__ == "__main__":
    raise SystemExit(main())
