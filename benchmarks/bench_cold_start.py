"""Cold start: a fresh `nodeforge run workflows/txt2img.json` against a fresh plain diffusers script
drawing the same image (StableDiffusionPipeline on the bundled nodeforge-shapes model, the workflow's
prompt, seed, steps, cfg and size; its sampler is the model's own Euler), alternating, and a fresh
`nodeforge validate` (issue 26: targets run/script <= 0.6 by median wall time, validate < 0.5 s).

    python benchmarks/bench_cold_start.py [--pairs 5]

Each run is a new Python process, so every import is paid again; run it while nothing else runs
(`flock /tmp/nf-test.lock taskset -c 0 python benchmarks/bench_cold_start.py` on a shared machine).
For scale it also times `import torch` alone, importing the three library classes the graph would
need (UNet2DConditionModel, AutoencoderKL, transformers' CLIPTextModel: the floor of any run that
uses them), and importing torch with the pack's lite models (nodes/lite), which a cold run uses instead.

Measured (2-core CPU shared with a training job, under the lock, pinned to core 0; 5 pairs):
before nodes/lite, run 7.95 s vs plain diffusers 7.56 s (ratio 1.05); with it, run 2.68 s vs
7.58 s: ratio 0.35, images equal, validate 0.34 s, `import torch` 1.82 s, the library classes 6.11 s;
again later, run 2.64 s vs 7.22 s: ratio 0.37, validate 0.23 s, `import torch` 1.60 s, torch with
the lite models 1.80 s, the library classes 6.48 s.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "workflows" / "txt2img.json"
MODEL = ROOT / "resources" / "models" / "nodeforge-shapes"

PLAIN = """
import sys, torch
from diffusers import StableDiffusionPipeline
s = {settings!r}
pipe = StableDiffusionPipeline.from_pretrained(s["model"], local_files_only=True, safety_checker=None,
                                               requires_safety_checker=False)
pipe.set_progress_bar_config(disable=True)
image = pipe(s["positive"], negative_prompt=s["negative"], num_inference_steps=s["steps"],
             guidance_scale=s["cfg"], width=s["width"], height=s["height"],
             generator=torch.Generator().manual_seed(s["seed"])).images[0]
image.save(sys.argv[1])
"""

FLOOR = {
    "import torch": "import torch",
    "import the graph's model classes": (
        "import diffusers.models.unets.unet_2d_condition, diffusers.models.autoencoders.autoencoder_kl\n"
        "import transformers.models.clip.modeling_clip"),
    "import torch and the lite models": "import nodes.lite.unet, nodes.lite.vae, nodes.lite.clip, nodes.lite.euler",
}


def settings() -> dict:
    """The workflow's generation settings, for the plain script (refuses a graph it cannot mirror)."""
    nodes = json.loads(WORKFLOW.read_text(encoding="utf-8"))["nodes"]
    by_type = {}
    for node in nodes.values():
        by_type.setdefault(node["type"], []).append(node)
    denoise = by_type["UNetDenoise"][0]
    params = denoise["params"]
    if (params["sampler"], params["schedule"], params.get("denoise", 1.0)) != ("euler", "default", 1.0):
        sys.exit(f"{WORKFLOW.name}: the plain script mirrors euler / default / denoise 1 only, not {params}")
    prompt = {n: nodes[denoise["inputs"][n][0]]["params"]["text"] for n in ("positive", "negative")}
    latent = nodes[denoise["inputs"]["latent"][0]]["params"]
    return {"model": str(MODEL), "positive": prompt["positive"], "negative": prompt["negative"],
            "seed": params["seed"], "steps": params["steps"], "cfg": params["cfg"],
            "width": latent["width"], "height": latent["height"]}


def timed(argv: list[str], cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(argv)}\n{proc.stderr[-2000:]}")
    return took


def compare(ours: Path, theirs: Path) -> str:
    import numpy as np
    from PIL import Image

    a = np.asarray(Image.open(ours).convert("RGB"), dtype=np.int16)
    b = np.asarray(Image.open(theirs).convert("RGB"), dtype=np.int16)
    if a.shape != b.shape:
        sys.exit(f"the images differ in size: {a.shape} vs {b.shape}")
    diff = np.abs(a - b)
    if diff.max() > 8:
        sys.exit(f"the images differ: max {diff.max()} of 255, mean {diff.mean():.3f}")
    return "equal" if diff.max() == 0 else f"near (max {diff.max()} of 255, mean {diff.mean():.3f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    script = PLAIN.format(settings=settings())
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        run_times, plain_times = [], []
        for i in range(args.pairs):
            out = tmp_path / f"run{i}"
            run_times.append(timed([sys.executable, "-m", "nodeforge", "run", str(WORKFLOW), "--out", str(out), "-q",
                                    "--device", "cpu"], tmp_path))
            plain_times.append(timed([sys.executable, "-c", script, str(tmp_path / f"plain{i}.png")], tmp_path))
            print(f"pair {i + 1}: nodeforge run {run_times[-1]:.2f} s   plain diffusers {plain_times[-1]:.2f} s")
        image = compare(next((tmp_path / "run0").glob("*.png")), tmp_path / "plain0.png")
        validate = [timed([sys.executable, "-m", "nodeforge", "validate", str(WORKFLOW)], tmp_path)
                    for _ in range(args.pairs)]
        floor = {name: statistics.median(timed([sys.executable, "-c", code], tmp_path) for _ in range(3))
                 for name, code in FLOOR.items()}
    run, plain = statistics.median(run_times), statistics.median(plain_times)
    print(f"images: {image}")
    print(f"median cold run {run:.2f} s, plain diffusers {plain:.2f} s: ratio {run / plain:.2f} (target <= 0.6)")
    print(f"median cold validate {statistics.median(validate):.2f} s (target < 0.5 s)")
    for name, seconds in floor.items():
        print(f"for scale, median cold {name}: {seconds:.2f} s")


if __name__ == "__main__":
    main()
