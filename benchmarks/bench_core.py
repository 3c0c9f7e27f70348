"""Core overheads, printed as numbers (run on demand: `python benchmarks/bench_core.py`).

- validating and planning a 1,000-node graph (target < 50 ms)
- executing 1,000 trivial nodes: engine overhead per node beyond their own work (target < 20 us)
- re-running an unchanged graph from cache (target < 5 ms)
- `import nodeforge.core` and `nodeforge validate` start-up in a fresh process (target < 0.5 s)
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nodeforge import Engine, Workflow, save_workflow  # noqa: E402
from nodeforge.core.models import ModelPaths  # noqa: E402
from nodeforge.core.registry import Registry  # noqa: E402
from nodeforge.core.spec import Input, NodeSpec, Output, Param  # noqa: E402


def _add(ctx, a, b, offset):
    return {"value": a + (b or 0.0) + offset}


REGISTRY = Registry([
    NodeSpec("Number", "b", lambda ctx, value: {"value": value}, params=(Param.float("value", 1.0),),
             outputs=(Output("value", "N"),)),
    NodeSpec("Add", "b", _add, inputs=(Input("a", "N"), Input("b", "N", optional=True)),
             params=(Param.float("offset", 1.0, min=-1e9, max=1e9),), outputs=(Output("value", "N"),)),
    NodeSpec("Out", "b", lambda ctx, value: value, inputs=(Input("value", "N"),), output_node=True),
])


def graph(n: int) -> Workflow:
    """A layered graph: each Add takes the previous node and one from ten back."""
    wf = Workflow()
    ids = [wf.add("Number", {"value": 0.0})]
    for i in range(n - 2):
        inputs = {"a": (ids[-1], "value")}
        if len(ids) > 10:
            inputs["b"] = (ids[-10], "value")
        ids.append(wf.add("Add", {"offset": float(i % 7)}, inputs))
    wf.add("Out", {}, {"value": (ids[-1], "value")})
    return wf


def best(fn, repeat: int = 15) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main() -> None:
    wf = graph(1000)
    engine = Engine(device="cpu", registry=REGISTRY, model_paths=ModelPaths(roots=[], include_builtin=False))

    def fresh_plan():
        engine._last_plan = None   # measure validation itself, not the reuse of the last plan
        engine.plan(wf)

    lo, med = best(fresh_plan)
    print(f"validate + plan, 1000 nodes:        best {lo * 1e3:7.2f} ms   median {med * 1e3:7.2f} ms   (target < 50 ms)")

    # Engine overhead: a full uncached run minus the nodes' own time, per node.
    overheads = []
    for _ in range(10):
        engine.cache.clear()
        engine._last_plan = None
        t0 = time.perf_counter()
        result = engine.run(wf)
        total = time.perf_counter() - t0
        own = sum(result.timings.values())
        overheads.append((total - own) / len(result.executed))
    plan_share = best(fresh_plan)[0] / 1000
    print(f"execute 1000 trivial nodes:         overhead {min(overheads) * 1e6:6.1f} us/node incl. validation "
          f"({(min(overheads) - plan_share) * 1e6:5.1f} us/node excl.)   (target < 20 us)")

    engine.run(wf)
    lo, med = best(lambda: engine.run(wf))
    print(f"re-run unchanged 1000-node graph:   best {lo * 1e3:7.2f} ms   median {med * 1e3:7.2f} ms   (target < 5 ms)")
    small = graph(12)
    engine.run(small)
    lo, med = best(lambda: engine.run(small))
    print(f"re-run unchanged 12-node graph:     best {lo * 1e3:7.2f} ms   median {med * 1e3:7.2f} ms")

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    lo, med = best(lambda: subprocess.run([sys.executable, "-c", "import nodeforge.core.engine"], env=env,
                                          check=True), repeat=5)
    print(f"python -c 'import nodeforge.core':  best {lo:7.3f} s    median {med:7.3f} s    (target < 0.5 s)")
    with tempfile.TemporaryDirectory() as tmp:
        path = save_workflow(graph(30), Path(tmp) / "wf.json")
        example = ROOT / "workflows" / "txt2img.json"
        target = example if example.exists() else path
        lo, med = best(lambda: subprocess.run([sys.executable, "-m", "nodeforge", "validate", str(target)],
                                              env=env, capture_output=True), repeat=5)
        print(f"nodeforge validate {target.name:<16} best {lo:7.3f} s    median {med:7.3f} s    (target < 0.5 s)")


if __name__ == "__main__":
    main()
