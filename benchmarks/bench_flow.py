"""Flow models: NodeForge's denoise against diffusers' StableDiffusion3Pipeline, same model and settings.

Times the engine running the shipped txt2img graph up to UNetDenoise's latent (text encoding and
the denoise; the output cache cleared each run, the loaded model kept) against the pipeline with
output_type="latent", interleaved, several repeats, and prints the median time ratio (engine /
pipeline; the target is 1.05 or less). Uses the demo flow model resources/models/nodeforge-shapes-flow
when it is there (or --model demo), else a small random SD3 model (a 6-layer MMDiT 128 wide, the
tests' tiny CLIPs, T5 and VAE) written to bench_out/.

    python benchmarks/bench_flow.py [--repeats 5] [--steps 20] [--size 64] [--model auto|demo|small]
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
PROMPT = "a red circle on a blue background"


def small_sd3_model(folder: Path) -> Path:
    """A random-weight SD3 model: the tests' tiny parts with a wider, deeper transformer."""
    if (folder / "model_index.json").exists():
        return folder
    import torch
    from diffusers import SD3Transformer2DModel

    import tiny_sd3 as ts

    parts = ts.make_sd3_components(0)
    torch.manual_seed(0)
    parts["transformer"] = SD3Transformer2DModel(
        sample_size=64, patch_size=2, in_channels=16, num_layers=6, attention_head_dim=32, num_attention_heads=4,
        caption_projection_dim=128, joint_attention_dim=32, pooled_projection_dim=64, out_channels=16,
        pos_embed_max_size=64)
    return ts.save_sd3_folder(parts, folder)


def workflow(checkpoint: str, seed: int, steps: int, cfg: float, size: int, negative: str):
    from nodeforge import load_workflow

    wf = load_workflow(ROOT / "workflows" / "txt2img.json")
    wf.nodes["1"].params["checkpoint"] = checkpoint
    wf.nodes["2"].params["text"], wf.nodes["3"].params["text"] = PROMPT, negative
    wf.nodes["4"].params.update(width=size, height=size)
    wf.nodes["5"].params.update(seed=seed, steps=steps, cfg=cfg, sampler="euler", schedule="default")
    return wf


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cfg", type=float, default=5.0)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--model", choices=("auto", "demo", "small"), default="auto",
                        help="auto: the demo flow model when it is there, else the small random SD3 model")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    import torch
    from diffusers import StableDiffusion3Pipeline

    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths
    from nodeforge.core.registry import load_registry

    demo = ROOT / "resources" / "models" / "nodeforge-shapes-flow"
    if args.model == "demo" or (args.model == "auto" and (demo / "model_index.json").exists()):
        folder = demo
    else:
        folder = small_sd3_model(ROOT / "bench_out" / "small-sd3")
    size, steps, cfg = args.size, args.steps, args.cfg
    print(f"model: {folder}  size: {size}x{size}  steps: {steps}  cfg: {cfg}  threads: {torch.get_num_threads()}")
    engine = Engine(device="cpu", output_dir=ROOT / "bench_out" / "images", registry=load_registry(entry_points=False),
                    model_paths=ModelPaths(roots=[folder.parent]))
    loaded = engine.run(workflow(folder.name, 0, 1, cfg, size, ""), outputs=["1"]).outputs   # keeps it loaded
    pipe = StableDiffusion3Pipeline.from_pretrained(str(folder), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)

    def run_engine(seed: int) -> float:
        engine.cache.clear()
        t = time.perf_counter()
        engine.run(workflow(folder.name, seed, steps, cfg, size, ""), outputs=["5"])
        return time.perf_counter() - t

    def run_pipeline(seed: int) -> float:
        t = time.perf_counter()
        pipe(PROMPT, negative_prompt="", num_inference_steps=steps, guidance_scale=cfg, height=size, width=size,
             generator=torch.Generator().manual_seed(seed), output_type="latent")
        return time.perf_counter() - t

    report(run_engine, run_pipeline, args.repeats)
    del loaded


def report(run_engine, run_pipeline, repeats: int) -> None:
    run_engine(1), run_pipeline(1)   # warm-up
    ours, theirs = [], []
    for i in range(repeats):
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


if __name__ == "__main__":
    main()
