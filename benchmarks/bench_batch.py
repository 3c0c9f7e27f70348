"""Batch throughput on the demo model: in-process batch vs separate `nodeforge run` processes, and
the Ray runner's overhead per job against in-process (2 local workers on this machine).

    python benchmarks/bench_batch.py [--images 10] [--steps 20] [--ray]

Prints images/minute for each way and, with --ray, the Ray batch's extra seconds per job
((ray wall time - in-process wall time) / jobs, start-up excluded by a warm-up batch).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def plan(images: int, steps: int):
    from nodeforge import Engine, load_workflow
    from nodeforge.batch import BatchSpec, parse_axis, plan_batch

    wf = load_workflow(ROOT / "workflows" / "txt2img.json")
    wf.nodes["5"].params["steps"] = steps
    engine = Engine(device="cpu")
    return engine, plan_batch(BatchSpec(wf, grid=[parse_axis(f"5.seed=1..{images}")]), engine.registry)


def in_process(images: int, steps: int, out: Path) -> float:
    from nodeforge.batch import run_batch

    started = time.perf_counter()
    engine, batch = plan(images, steps)
    run_batch(batch, out, engine=engine, sheet=False)
    return time.perf_counter() - started


def separate_processes(images: int, steps: int, out: Path) -> float:
    started = time.perf_counter()
    for seed in range(1, images + 1):
        subprocess.run([sys.executable, "-m", "nodeforge.cli", "run", str(ROOT / "workflows" / "txt2img.json"),
                        "--out", str(out), "--set", f"5.seed={seed}", "--set", f"5.steps={steps}", "-q"],
                       check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def ray_overhead(images: int, steps: int, out: Path) -> tuple[float, float]:
    import ray

    from nodeforge.batch import run_batch
    from nodeforge.batch.ray_runner import ray_runner

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    engine, batch = plan(images, steps)
    runner = ray_runner(workers=2, device="cpu", threads=1)
    run_batch(batch, out / "warm", runner=runner, sheet=False)        # actors start and load the model
    started = time.perf_counter()
    run_batch(batch, out / "ray", runner=runner, sheet=False)
    ray_s = time.perf_counter() - started
    started = time.perf_counter()
    run_batch(batch, out / "local", engine=engine, sheet=False)       # warm engine too
    local_s = time.perf_counter() - started
    ray.shutdown()
    return ray_s, local_s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--ray", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        batch_s = in_process(args.images, args.steps, tmp / "batch")
        runs_s = separate_processes(args.images, args.steps, tmp / "runs")
        print(f"in-process batch: {args.images} images in {batch_s:.1f} s = {args.images / batch_s * 60:.1f} images/min")
        print(f"separate runs:    {args.images} images in {runs_s:.1f} s = {args.images / runs_s * 60:.1f} images/min")
        print(f"ratio: {runs_s / batch_s:.2f}x faster as one batch")
        if args.ray:
            ray_s, local_s = ray_overhead(args.images, args.steps, tmp)
            per_job = (ray_s - local_s) / args.images
            print(f"ray (2 warm workers): {ray_s:.2f} s; in-process warm: {local_s:.2f} s; "
                  f"difference per job: {per_job * 1000:.0f} ms (2 workers share 2 cores with the driver)")


if __name__ == "__main__":
    main()
