"""A pure-Python registry for batch tests: the arith pack plus a seeded node and model loaders."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from nodeforge.core.spec import Input, NodeSpec, Output, Param
from nodeforge.core.types import FileKind, ParamRole

RUNS: Counter = Counter()


def _seeded(ctx, value, seed):
    RUNS[(ctx.node_id, seed, value)] += 1
    return {"value": value + seed}


def batch_specs() -> list[NodeSpec]:
    return [
        NodeSpec("Seeded", "math", _seeded, inputs=(Input("value", "NUMBER"),),
                 params=(Param.int("seed", 0, min=0, max=2 ** 32 - 1, role=ParamRole.SEED),), outputs=(Output("value", "NUMBER"),)),
        NodeSpec("Model", "loaders", lambda ctx, checkpoint: {"value": float(len(checkpoint))},
                 params=(Param.choice("checkpoint", lambda: ["a", "b"], file=FileKind.CHECKPOINT),),
                 outputs=(Output("value", "NUMBER"),)),
        NodeSpec("Lora", "loaders", lambda ctx, value, lora: {"value": value},
                 inputs=(Input("value", "NUMBER"),),
                 params=(Param.choice("lora", lambda: ["x", "y"], file=FileKind.LORA),),
                 outputs=(Output("value", "NUMBER"),)),
    ]


@pytest.fixture
def batch_registry(arith_registry):
    from nodeforge.core.registry import Registry

    registry = Registry(list(arith_registry) + batch_specs())
    RUNS.clear()
    return registry


@pytest.fixture
def batch_engine(batch_registry, tmp_path):
    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths

    return Engine(device="cpu", output_dir=tmp_path / "unused", registry=batch_registry,
                  model_paths=ModelPaths(roots=[tmp_path / "models"], include_builtin=False))


def seeded_workflow():
    """Number(title "start") -> Seeded(seed) -> WriteText: each job writes value + seed to a file."""
    from nodeforge import Workflow

    wf = Workflow()
    wf.add("Number", {"value": 1.0}, title="start")
    wf.add("Seeded", {"seed": 10}, {"value": ("1", "value")})
    wf.add("WriteText", {"prefix": "n"}, {"value": ("2", "value")})
    return wf


def written_values(out: Path) -> dict[str, str]:
    return {p.name: p.read_text().strip() for p in sorted(out.glob("n_*.txt"))}
