"""A batch spec: one workflow plus axes of `ID.param` values, expanded into numbered jobs.

Axes come as explicit lists, integer ranges (`1..100`, `0..20..5`) or `@file.txt` (one value a
line). Grid axes combine as a product, zip axes pairwise; a count repeats every combination with
a seed policy. Values are resolved when the spec is made (a file is read once), so the JSON
written beside the workflow is self-contained and job 17 is the same image on any machine.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import random
import stat
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Iterable, Sequence

from nodeforge.core.errors import WorkflowError, WorkflowFileError
from nodeforge.core.metadata import seed_params
from nodeforge.core.workflow import Workflow, load_workflow, parse_json, read_regular_file

SPEC_VERSION = 1
SPEC_KEY = "nodeforge_batch"
MAX_JOBS = 100_000
SEED_MAX = 2 ** 32 - 1
MAX_VALUES_FILE_BYTES = 8 * 1024 * 1024      # 100,000 prompts of 80 characters


class BatchSpecError(WorkflowError):
    """The batch spec cannot be expanded (bad axis, unknown node, unequal zip lengths...)."""


class SeedPolicy(str, Enum):
    """How `count` repeats change the seed, as the editor's seed widget does after each run."""

    FIXED = "fixed"
    INCREMENT = "increment"
    RANDOM = "random"


@dataclass(frozen=True)
class Axis:
    """One `ID.param` and the values it takes; `source` is what the user wrote ("1..10", "@p.txt")."""

    target: str
    values: tuple[Any, ...]
    source: str = ""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"target": self.target, "values": list(self.values)}
        if self.source:
            data["source"] = self.source
        return data

    @property
    def label(self) -> str:
        return self.target


def parse_axis(text: str, base_dir: Path | None = None) -> Axis:
    """`ID.param=V1,V2,...`, `ID.param=1..100[..step]` or `ID.param=@file.txt`."""
    target, eq, raw = text.partition("=")
    target = target.strip()
    node_ref, dot, param = target.rpartition(".")
    if not eq or not dot or not node_ref or not param:
        raise BatchSpecError(f"{text!r}: expected ID.param=VALUES, e.g. 5.seed=1..10, 5.cfg=3,5,7 "
                             "or positive.text=@prompts.txt")
    values = parse_values(raw, base_dir, where=target)
    return Axis(target, tuple(values), raw.strip() if _is_shorthand(raw) else "")


def _is_shorthand(raw: str) -> bool:
    raw = raw.strip()
    return raw.startswith("@") or _range_parts(raw) is not None


def _range_parts(raw: str) -> list[int] | None:
    parts = raw.split("..")
    if len(parts) not in (2, 3):
        return None
    try:
        return [int(p.strip()) for p in parts]
    except ValueError:
        return None


def parse_values(raw: str, base_dir: Path | None = None, *, where: str = "axis", inside: bool = False) -> list[Any]:
    """The values of one axis from its text form (see `parse_axis`).

    `inside`: the text comes from a spec file, whose `@file` may only name a file in `base_dir`
    (the spec's folder); what the user types on the command line or in the editor may name any.
    """
    raw = raw.strip()
    if raw.startswith("@"):
        return _values_from_file(raw[1:], base_dir, where, inside)
    bounds = _range_parts(raw)
    if bounds is not None:
        start, stop = bounds[0], bounds[1]
        step = bounds[2] if len(bounds) == 3 else (1 if stop >= start else -1)
        if step == 0 or (stop - start) * step < 0:
            raise BatchSpecError(f"{where}: the range {raw!r} is empty; write low..high or low..high..step")
        count = (stop - start) // step + 1
        if count > MAX_JOBS:
            raise BatchSpecError(f"{where}: the range {raw!r} has {count} values, more than {MAX_JOBS}")
        return list(range(start, stop + (1 if step > 0 else -1), step))
    # A backslash keeps a comma inside a value: 5.text=a\, b,c gives "a, b" and "c".
    values = [v.replace("\0", ",").strip() for v in raw.replace("\\,", "\0").split(",")]
    if not raw or any(v == "" for v in values):
        raise BatchSpecError(f"{where}: empty value in {raw!r}; list values as V1,V2,... "
                             "(a value with commas goes in @file.txt, one a line)")
    return values


def _values_from_file(name: str, base_dir: Path | None, where: str, inside: bool) -> list[str]:
    path = _spec_file(name, base_dir, where) if inside else Path(name).expanduser()
    if not inside and not path.is_absolute() and base_dir is not None and not path.exists():
        path = base_dir / path
    try:
        _check_values_file(path, name, where)
        text = read_regular_file(path, MAX_VALUES_FILE_BYTES, "a values").decode("utf-8-sig")
    except WorkflowFileError as exc:      # swapped for something else since the check
        raise BatchSpecError(f"{where}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise BatchSpecError(f"{where}: the values file {name} is not UTF-8 text ({exc.reason} at byte "
                             f"{exc.start}); save it as UTF-8") from None
    values = [line.strip() for line in text.splitlines() if line.strip()]
    if not values:
        raise BatchSpecError(f"{where}: the values file {name} holds no values (one a line)")
    return values


def _check_values_file(path: Path, name: str, where: str) -> None:
    """Refuse a folder, device, pipe or huge file by its stat, before opening it."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise BatchSpecError(f"{where}: the values file {name} does not exist") from None
    except (OSError, ValueError) as exc:
        raise BatchSpecError(f"{where}: cannot read the values file {name} ({getattr(exc, 'strerror', None) or exc})") \
            from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a pipe" if stat.S_ISFIFO(info.st_mode) \
            else "a device or socket"
        raise BatchSpecError(f"{where}: the values file {name} is {kind}, not a text file; put the values in "
                             "a text file, one a line")
    if info.st_size > MAX_VALUES_FILE_BYTES:
        raise BatchSpecError(f"{where}: the values file {name} is {info.st_size // 2 ** 20} MB, more than "
                             f"{MAX_VALUES_FILE_BYTES // 2 ** 20} MB; split it (a batch has at most {MAX_JOBS} jobs)")


def _spec_file(name: str, base_dir: Path | None, where: str) -> Path:
    """A file a spec names: only inside the spec's folder, so a shared spec cannot read ~/.ssh."""
    folder = (base_dir or Path(".")).resolve()
    path = folder / name
    try:
        inside = not Path(name).is_absolute() and not name.startswith("~") and path.resolve().is_relative_to(folder)
    except (OSError, ValueError, RuntimeError):
        inside = False
    if not inside:
        raise BatchSpecError(f"{where}: the spec names {name[:120]!r}, outside its folder {folder}; a batch spec "
                             "may only read files beside it - copy the file there, or give the axis on the "
                             "command line (--grid/--zip ID.param=@FILE)")
    return path


@dataclass
class BatchSpec:
    """What to run: the workflow, grid and zip axes, and a count with its seed policy."""

    workflow: Workflow
    grid: list[Axis] = field(default_factory=list)
    zip: list[Axis] = field(default_factory=list)
    count: int = 1
    seed_policy: SeedPolicy = SeedPolicy.FIXED
    random_seed: int = 0
    workflow_path: str | None = None       # as referenced from the spec file, if any

    def to_json(self, *, embed_workflow: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {SPEC_KEY: SPEC_VERSION}
        if self.workflow_path and not embed_workflow:
            data["workflow"] = self.workflow_path
        else:
            data["workflow"] = self.workflow.to_json()
        data["grid"] = [a.to_json() for a in self.grid]
        data["zip"] = [a.to_json() for a in self.zip]
        data["count"] = self.count
        data["seed_policy"] = self.seed_policy.value
        if self.seed_policy is SeedPolicy.RANDOM:
            data["random_seed"] = self.random_seed
        return data

    def dumps(self, *, embed_workflow: bool = False) -> str:
        return json.dumps(self.to_json(embed_workflow=embed_workflow), indent=2, ensure_ascii=False) + "\n"


def is_batch_spec(data: Any) -> bool:
    return isinstance(data, dict) and SPEC_KEY in data


def spec_from_json(data: dict[str, Any], base_dir: Path | None = None) -> BatchSpec:
    """Build a spec from its JSON (a file beside the workflow, or the copy in an output folder)."""
    version = data.get(SPEC_KEY)
    if not isinstance(version, int) or version > SPEC_VERSION or version < 1:
        raise BatchSpecError(f"unsupported batch spec version {version!r} (this NodeForge reads "
                             f"{SPEC_VERSION}); update NodeForge")
    raw_wf = data.get("workflow")
    workflow_path = None
    if isinstance(raw_wf, str):
        workflow_path = raw_wf
        workflow = load_workflow((base_dir or Path(".")) / raw_wf)
    elif isinstance(raw_wf, dict):
        workflow = Workflow.from_json(raw_wf, source=(base_dir / "batch.json") if base_dir else None)
    else:
        raise BatchSpecError("batch spec: \"workflow\" must be a workflow file name or an embedded workflow")
    try:
        policy = SeedPolicy(data.get("seed_policy", "fixed"))
    except ValueError:
        raise BatchSpecError(f"batch spec: seed_policy must be fixed, increment or random, "
                             f"got {data.get('seed_policy')!r}") from None
    return BatchSpec(workflow, _axes(data.get("grid"), base_dir, "grid"), _axes(data.get("zip"), base_dir, "zip"),
                     _count(data.get("count", 1)), policy, int(data.get("random_seed", 0)), workflow_path)


def _axes(raw: Any, base_dir: Path | None, name: str) -> list[Axis]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BatchSpecError(f"batch spec: \"{name}\" must be a list of {{\"target\", \"values\"}}")
    axes = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("target"), str):
            raise BatchSpecError(f"batch spec: each {name} axis needs a \"target\" (ID.param) and \"values\"")
        values = item.get("values")
        if isinstance(values, str):   # the text form: "1..100", "@prompts.txt", "a,b"
            axes.append(Axis(item["target"], tuple(parse_values(values, base_dir, where=item["target"], inside=True)),
                             values))
        elif isinstance(values, list) and values:
            axes.append(Axis(item["target"], tuple(values), str(item.get("source", ""))))
        else:
            raise BatchSpecError(f"batch spec: {item['target']}: \"values\" must be a non-empty list or text")
    return axes


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BatchSpecError(f"batch spec: count must be a whole number of at least 1, got {value!r}")
    return value


def load_spec(path: str | Path) -> BatchSpec:
    """Read a batch spec file (its workflow is found relative to the spec)."""
    path = Path(path)
    try:
        text = read_regular_file(path, what="a batch spec").decode("utf-8-sig")
    except WorkflowFileError as exc:
        raise BatchSpecError(str(exc)) from None
    except UnicodeDecodeError:
        raise BatchSpecError(f"{path}: the batch spec is not UTF-8 text; save it as UTF-8") from None
    data = parse_json(text, path)
    if not is_batch_spec(data):
        raise BatchSpecError(f"{path}: not a batch spec (no \"{SPEC_KEY}\" key)")
    return spec_from_json(data, path.parent)


def spec_path_for(workflow_path: str | Path) -> Path:
    """Where a workflow's batch spec lives: `name.batch.json` beside `name.json`."""
    path = Path(workflow_path)
    return path.with_name(path.stem + ".batch.json")


# -- expansion -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One run of the workflow: its number (1-based, fixed by the spec) and its param overrides.

    `coords` holds the index of this job's value on each grid axis, then the zip index and the
    count index; the contact sheet places cells by it.
    """

    number: int
    overrides: tuple[tuple[str, str, Any], ...]      # (node id, param, value)
    coords: tuple[int, ...] = ()

    def overrides_json(self) -> dict[str, Any]:
        return {f"{nid}.{param}": value for nid, param, value in self.overrides}

    def apply(self, workflow: Workflow) -> Workflow:
        """A copy of `workflow` with this job's values set (the base is never changed)."""
        copy = workflow.copy()
        for nid, param, value in self.overrides:
            copy.nodes[nid].params[param] = value
        return copy


def expand(spec: BatchSpec, registry: Any) -> list[Job]:
    """Every job of the spec, numbered 1.. in axis order (the first grid axis varies slowest)."""
    grid = [_resolve_axis(spec.workflow, axis, registry) for axis in spec.grid]
    zipped = [_resolve_axis(spec.workflow, axis, registry) for axis in spec.zip]
    lengths = {len(values) for _, _, values in zipped}
    if len(lengths) > 1:
        shown = ", ".join(f"{a.target} has {len(a.values)}" for a in spec.zip)
        raise BatchSpecError(f"zipped axes must have the same number of values ({shown})")
    zip_len = lengths.pop() if lengths else 1
    total = zip_len * spec.count
    for _, _, values in grid:
        total *= len(values)
    if total > MAX_JOBS:
        raise BatchSpecError(f"the batch has {total} jobs, more than {MAX_JOBS}; use fewer values")
    seeds = _seed_targets(spec, registry)
    draws = _seed_draws(spec)
    jobs = []
    ranges = [range(len(v)) for _, _, v in grid] + [range(zip_len), range(spec.count)]
    for number, coords in enumerate(itertools.product(*ranges), start=1):
        values: dict[tuple[str, str], Any] = {}
        for (nid, param, axis_values), index in zip(grid, coords):
            values[(nid, param)] = axis_values[index]
        for nid, param, axis_values in zipped:
            values[(nid, param)] = axis_values[coords[-2]]
        if spec.count > 1 and spec.seed_policy is not SeedPolicy.FIXED:
            for nid, param in seeds:
                base = values.get((nid, param), spec.workflow.nodes[nid].params.get(param, 0))
                values[(nid, param)] = _seed_for(spec.seed_policy, int(base), coords[-1], draws)
        jobs.append(Job(number, tuple((n, p, v) for (n, p), v in values.items()), tuple(coords)))
    return jobs


def _resolve_axis(workflow: Workflow, axis: Axis, registry: Any) -> tuple[str, str, tuple[Any, ...]]:
    """(node id, param, values coerced to the param's kind); BatchSpecError naming what is wrong."""
    node_ref, _, param = axis.target.rpartition(".")
    try:
        nid, declared = workflow.find_param(node_ref, param, registry)
    except LookupError as exc:
        raise BatchSpecError(f"{axis.target}: {exc}") from None
    node = workflow.nodes[nid]
    values = []
    for value in axis.values:
        try:
            values.append(declared.coerce(value) if declared is not None else value)
        except ValueError as exc:
            raise BatchSpecError(str(exc), node_id=nid, node_type=node.type, field=param) from None
    return nid, param, tuple(values)


def _seed_targets(spec: BatchSpec, registry: Any) -> list[tuple[str, str]]:
    if spec.count == 1 or spec.seed_policy is SeedPolicy.FIXED:
        return []
    targets = seed_params(spec.workflow, registry)
    if not targets:
        raise BatchSpecError(f"--seed-policy {spec.seed_policy.value} needs a node with a seed, and this "
                             "workflow has none; use --seed-policy fixed")
    return targets


def _seed_draws(spec: BatchSpec) -> list[int]:
    if spec.seed_policy is not SeedPolicy.RANDOM:
        return []
    rng = random.Random(spec.random_seed)    # the spec stores random_seed: same draws everywhere
    return [rng.randint(0, SEED_MAX) for _ in range(spec.count)]


def _seed_for(policy: SeedPolicy, base: int, index: int, draws: Sequence[int]) -> int:
    if policy is SeedPolicy.INCREMENT:
        return (base + index) % (SEED_MAX + 1)
    return draws[index]


def fingerprint(workflow: Workflow, jobs: Iterable[Job]) -> str:
    """A hash of what the batch makes (graph and every job's values), to check a resume matches."""
    nodes = {nid: [n.type, n.params, {k: list(v) for k, v in n.inputs.items()}] for nid, n in workflow.nodes.items()}
    body = json.dumps([nodes, [[j.number, j.overrides_json()] for j in jobs]], sort_keys=True, default=repr)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]
