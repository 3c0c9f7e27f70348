"""txt2img: NodeForge's engine against diffusers' StableDiffusionPipeline, same model and settings.

Runs both in one process, interleaved, several repeats, and prints the median time ratio
(engine / pipeline; the target is 1.05 or less). Uses the bundled demo model when present,
else a small random-weight SD-shaped model written to bench_out/.

    python benchmarks/bench_txt2img.py [--repeats 5] [--steps 10] [--size 128] [--model auto|demo|small]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "nodes"))


def small_sd_model(folder: Path) -> Path:
    """A random-weight model with SD's structure at a fraction of its width."""
    if (folder / "model_index.json").exists():
        return folder
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    import tiny_models as tm

    torch.manual_seed(0)
    parts = tm.make_components(0)
    tok = parts["tokenizer"]
    parts["text_encoder"] = CLIPTextModel(CLIPTextConfig(
        hidden_size=256, intermediate_size=1024, num_attention_heads=4, num_hidden_layers=6, vocab_size=len(tok),
        max_position_embeddings=77, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id))
    parts["unet"] = UNet2DConditionModel(
        block_out_channels=(64, 128, 256, 256), layers_per_block=2, sample_size=16, cross_attention_dim=256,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, attention_head_dim=8, norm_num_groups=32)
    parts["vae"] = AutoencoderKL(block_out_channels=(32, 64, 128, 128), layers_per_block=1, latent_channels=4,
                                 down_block_types=("DownEncoderBlock2D",) * 4,
                                 up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32, sample_size=128)
    return tm.save_diffusers(parts, folder)


def workflow(checkpoint: str, seed: int, steps: int, cfg: float, size: int, scheduler: str):
    from tiny_models import txt2img

    return txt2img(checkpoint, "a red circle on a blue background", seed=seed, steps=steps, cfg=cfg,
                   sampler=scheduler, width=size, height=size)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--cfg", type=float, default=5.0)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--sampler", dest="scheduler", default="euler")
    parser.add_argument("--model", choices=("auto", "demo", "small"), default="auto",
                        help="auto: the demo model when bundled, else the small random SD-shaped one")
    args = parser.parse_args()

    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths
    from nodeforge.core.registry import load_registry

    demo = ROOT / "resources" / "models" / "nodeforge-shapes"
    if args.model == "demo" or (args.model == "auto" and (demo / "model_index.json").exists()):
        folder, size = demo, 64
    else:
        folder, size = small_sd_model(ROOT / "bench_out" / "small-sd"), args.size
    print(f"model: {folder}  size: {size}x{size}  steps: {args.steps}  cfg: {args.cfg}  "
          f"sampler: {args.scheduler}  threads: {torch.get_num_threads()}")

    engine = Engine(device="cpu", output_dir=ROOT / "bench_out" / "images", registry=load_registry(entry_points=False),
                    model_paths=ModelPaths(roots=[folder.parent]))
    # Holding the loaded model keeps it in the engine's registry while the cache is cleared between runs.
    loaded = engine.run(workflow(folder.name, 0, 1, args.cfg, size, args.scheduler), outputs=["ckpt"]).outputs
    pipe = StableDiffusionPipeline.from_pretrained(str(folder), local_files_only=True, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)

    def run_engine(seed: int) -> float:
        engine.cache.clear()   # everything runs again; the loaded model stays in the engine's registry
        t = time.perf_counter()
        engine.run(workflow(folder.name, seed, args.steps, args.cfg, size, args.scheduler))
        return time.perf_counter() - t

    def run_pipeline(seed: int) -> float:
        t = time.perf_counter()
        pipe("a red circle on a blue background", negative_prompt="", num_inference_steps=args.steps,
             guidance_scale=args.cfg, height=size, width=size, generator=torch.Generator().manual_seed(seed))
        return time.perf_counter() - t

    run_engine(1), run_pipeline(1)   # warm-up
    ours, theirs = [], []
    for i in range(args.repeats):
        ours.append(run_engine(100 + i))
        theirs.append(run_pipeline(100 + i))
        print(f"repeat {i + 1}: engine {ours[-1]:.3f} s   pipeline {theirs[-1]:.3f} s")
    ratio = statistics.median(ours) / statistics.median(theirs)
    pairs = sorted(o / t for o, t in zip(ours, theirs))
    print(f"median engine {statistics.median(ours):.3f} s, pipeline {statistics.median(theirs):.3f} s, "
          f"ratio engine/pipeline = {ratio:.3f} (target <= 1.05)")
    # On a shared machine the fastest run of each is the least disturbed estimate.
    print(f"best engine {min(ours):.3f} s, best pipeline {min(theirs):.3f} s, ratio of bests = "
          f"{min(ours) / min(theirs):.3f}; median of per-repeat ratios = {statistics.median(pairs):.3f}")
    del loaded


if __name__ == "__main__":
    main()
