"""Peak memory of a 512x512 SD-1.5-sized txt2img on the CPU (random weights, shipped configs).

Writes an SD 1.5-shaped diffusers folder with random weights to bench_out/ (once; about 4 GB),
then runs CheckpointLoader -> TextEncoder x2 -> UNetDenoise -> VAEDecode -> Preview in a fresh
process and reports its peak resident memory.

    python benchmarks/bench_nodes_memory.py [--steps 2] [--size 512] [--single-file]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "nodes"))
FOLDER = ROOT / "bench_out" / "sd15-random"


def prepare() -> None:
    if (FOLDER / "model_index.json").exists():
        return
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    import tiny_models as tm

    configs = ROOT / "resources" / "configs" / "sd1"
    torch.manual_seed(0)
    with torch.no_grad():
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(configs / "unet")))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(str(configs / "vae")))
        te = CLIPTextModel(CLIPTextConfig.from_pretrained(str(configs / "text_encoder")))
    sched = EulerDiscreteScheduler.from_config(EulerDiscreteScheduler.load_config(str(configs / "scheduler")))
    # The real CLIP vocabulary cannot be downloaded here; a small one drives the same text encoder.
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=te, tokenizer=tm.make_tokenizer(),
                                   scheduler=sched, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(str(FOLDER))


def prepare_single_file() -> Path:
    """The same random weights as one original-layout .safetensors, loaded with the shipped configs."""
    target = ROOT / "bench_out" / "sd15-single" / "sd15-random.safetensors"
    if target.exists():
        return target
    import shutil

    from diffusers import StableDiffusionPipeline
    from safetensors.torch import save_file

    import tiny_models as tm

    pipe = StableDiffusionPipeline.from_pretrained(str(FOLDER), local_files_only=True, safety_checker=None,
                                                   requires_safety_checker=False)
    state = tm.ldm_state({"unet": pipe.unet, "vae": pipe.vae, "text_encoder": pipe.text_encoder}, "sd1")
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(target))
    # No vocabulary is shipped: the loader finds a tokenizer/ folder beside the checkpoint.
    shutil.copytree(FOLDER / "tokenizer", target.parent / "tokenizer", dirs_exist_ok=True)
    return target


def measure(steps: int, size: int, checkpoint: str | None = None) -> None:
    import psutil
    import torch

    from conftest import txt2img
    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths
    from nodeforge.core.registry import load_registry

    base = psutil.Process().memory_info().rss
    engine = Engine(device="cpu", output_dir=ROOT / "bench_out" / "images", registry=load_registry(entry_points=False),
                    model_paths=ModelPaths(roots=[FOLDER.parent]))
    t = time.perf_counter()
    result = engine.run(txt2img(checkpoint or FOLDER.name, "a red circle", steps=steps, width=size, height=size,
                                cfg=7.0))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": round(time.perf_counter() - t, 1), "timings_s": {k: round(v, 2) for k, v in result.timings.items()},
                      "peak_rss_gib": round(peak / 2 ** 30, 2), "rss_before_gib": round(base / 2 ** 30, 2),
                      "rss_after_gib": round(psutil.Process().memory_info().rss / 2 ** 30, 2),
                      "threads": torch.get_num_threads()}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--single-file", action="store_true",
                        help="load the weights from an original-layout .safetensors with the shipped SD1 configs")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.steps, args.size, args.checkpoint)
        return
    prepare()
    command = [sys.executable, __file__, "--measure", "--steps", str(args.steps), "--size", str(args.size)]
    if args.single_file:
        command += ["--checkpoint", str(prepare_single_file())]
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode:
        sys.exit(out.stderr[-3000:])
    data = json.loads(out.stdout.strip().splitlines()[-1])
    source = "single file" if args.single_file else "diffusers folder"
    print(f"SD 1.5-sized {args.size}x{args.size} from a {source}, {args.steps} steps, CPU ({data['threads']} threads): "
          f"peak RSS {data['peak_rss_gib']} GiB (process start {data['rss_before_gib']} GiB, "
          f"after {data['rss_after_gib']} GiB), {data['seconds']} s; per node: {data['timings_s']}")


if __name__ == "__main__":
    main()
