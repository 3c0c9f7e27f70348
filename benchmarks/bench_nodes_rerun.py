"""What re-runs: changing only the seed re-runs UNetDenoise and after; changing a LoRA strength
re-runs the LoRA and after without reloading the checkpoint. Prints what ran and how long.

    python benchmarks/bench_nodes_rerun.py
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "nodes"))


def main() -> None:
    import tiny_models as tm
    from tiny_models import txt2img

    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths
    from nodeforge.core.registry import builtin_module, load_registry

    root = Path(tempfile.mkdtemp(prefix="nodeforge-bench-"))
    (root / "checkpoints").mkdir()
    (root / "loras").mkdir()
    parts = tm.make_components(0)
    tm.save_diffusers(parts, root / "checkpoints" / "tiny-sd")
    tm.kohya_lora(parts["unet"], parts["text_encoder"], root / "loras" / "style.safetensors")
    engine = Engine(device="cpu", output_dir=root / "out", registry=load_registry(entry_points=False),
                    model_paths=ModelPaths(roots=[root]))
    loading = builtin_module("loading")

    def run(label: str, **kw) -> None:
        before = loading.load_count
        t = time.perf_counter()
        result = engine.run(txt2img("tiny-sd", steps=4, **kw))
        took = time.perf_counter() - t
        print(f"{label:<34} {took * 1000:8.1f} ms  ran: {', '.join(result.executed):<48} "
              f"checkpoint loads: {loading.load_count - before}")

    run("first run (seed 1, lora 1.0)", seed=1, lora=[("style", 1.0, 1.0)])
    run("same graph again", seed=1, lora=[("style", 1.0, 1.0)])
    run("seed 2", seed=2, lora=[("style", 1.0, 1.0)])
    run("lora strength_unet 0.5", seed=2, lora=[("style", 0.5, 1.0)])
    run("lora strength_clip 0.5", seed=2, lora=[("style", 0.5, 0.5)])
    run("prompt changed", seed=2, lora=[("style", 0.5, 0.5)], text="a green square")


if __name__ == "__main__":
    main()
