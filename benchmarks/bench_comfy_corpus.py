"""How many shared ComfyUI workflows NodeForge reads, validates and runs (issue 30).

    python benchmarks/bench_comfy_corpus.py FOLDER [--no-run] [--json OUT.json] [--timeout S]

FOLDER holds ComfyUI workflows as users share them (UI JSON, API prompts, PNGs with their text
chunks); `benchmarks/comfy_corpus/rebuild.py` fills one from the manifest beside it. Each file
goes through what a user trying it would do:

1. imports: `read_workflow` reads it without an exception;
2. no placeholders: no node became a placeholder (a ComfyUI class NodeForge cannot run);
3. validates: with every missing model mapped by kind onto the demo assets (`--model-map
   'checkpoint:*=nodeforge-shapes'` and so on; images onto workflows/inputs/red-circle.png), the
   validator finds nothing that stops an output (`nodeforge validate` on another tool's file: a
   half-wired node that leads to no output is a warning, as ComfyUI never checks it);
4. runs: shrunk to 64 px (sizes scaled so the largest latent side is 64), 8 steps and batch 1,
   every output node runs on the CPU (previews written too).

Besides, each imported file is exported as a ComfyUI UI workflow (`export --to comfyui`) and read
back: the graph must be the same (ids renumbered where they were not numbers, params compared with
their defaults filled in).

It prints the four fractions and the UI round trip's, then every failure's one line grouped by cause, the placeholder
classes by the number of files they block (and how many files each alone blocks), and any
failure message that is not one line. On a tree without the by-kind map the same demo assets
are given name by name (`--model-map OLD=NEW` for each missing file), so numbers compare.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nodeforge.core.engine import Engine  # noqa: E402
from nodeforge.core.placeholder import is_placeholder, original_class  # noqa: E402
from nodeforge.core.types import ParamRole  # noqa: E402
from nodeforge.interop import parse_model_map, read_workflow  # noqa: E402
from nodeforge.interop import model_names  # noqa: E402

DEMO = {"checkpoint": "nodeforge-shapes", "vae": "nodeforge-shapes", "lora": "shapes-star",
        "embedding": "shapes-sunset", "controlnet": "shapes-outline", "upscale_model": "shapes-x4",
        "latent_upscale_model": "shapes-resizer", "depth": "shapes-depth",
        "clip_vision": "shapes-clip-vision", "ipadapter": "shapes-ipadapter",
        "image": str(ROOT / "workflows" / "inputs" / "red-circle.png")}
SIDE, STEPS = 64, 8
STAGES = ("imports", "no placeholders", "validates", "runs")


def kind_map() -> list[str]:
    return [f"{kind}:*={name}" for kind, name in DEMO.items()]


def by_kind_supported() -> bool:
    return hasattr(model_names, "KIND_WILDCARD")


def import_mapped(path: Path, registry: object) -> object:
    """The file imported with every missing model on a demo asset of its kind."""
    if by_kind_supported():
        return read_workflow(path, registry=registry, model_map=parse_model_map(kind_map()))
    first = read_workflow(path, registry=registry)
    mapping = {name: DEMO[kind] for kind, name in first.missing_models if kind in DEMO}
    mapping.update({name: DEMO["embedding"] for name in first.missing_embeddings})
    return read_workflow(path, registry=registry, model_map=mapping) if mapping else first


def shrink(workflow: object, registry: object) -> None:
    """64 px on the largest latent side (other sizes scaled alike, multiples of 8), 8 steps, batch 1."""
    sized = [(node, p) for node in workflow.nodes.values() for p in _params(node, registry)
             if p.role in (ParamRole.WIDTH, ParamRole.HEIGHT)]
    largest = max([v for node, p in sized if isinstance(v := node.params.get(p.name, p.default), (int, float))
                   and node.type == "EmptyLatent"] or [SIDE])
    scale = min(1.0, SIDE / largest)
    for node in workflow.nodes.values():
        for p in _params(node, registry):
            value = node.params.get(p.name, p.default)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            if p.role in (ParamRole.WIDTH, ParamRole.HEIGHT):
                node.params[p.name] = max(8, int(round(value * scale / 8)) * 8)
            elif p.role is ParamRole.STEPS:
                node.params[p.name] = min(int(value), STEPS)
            elif p.role is ParamRole.BATCH_SIZE:
                node.params[p.name] = 1


def _params(node: object, registry: object) -> list:
    spec = registry.get(node.type)
    return list(spec.params) if spec is not None else []


def cause_of(line: str) -> str:
    """A failure line without what differs between files (ids, names, numbers)."""
    text = re.sub(r"^node [^ ]+ \((.*?)\)(, [\w.]+)?: (?=[a-z])", lambda m: f"{m.group(1)}: ", line)
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)
    return re.sub(r"\d+(\.\d+)?", "N", text)[:160]


def one_line(exc: BaseException) -> str:
    """What the CLI prints for an error (its own text; a bare exception with its type)."""
    from nodeforge.core.errors import WorkflowError

    problems = getattr(exc, "problems", None)
    if isinstance(exc, WorkflowError) and problems:
        return str(problems[0])
    return str(exc) if isinstance(exc, WorkflowError) else f"{type(exc).__name__}: {exc}"


def measure(path: Path, engine: Engine, run: bool) -> dict:
    """How far one file gets: the stages passed, its placeholders and the lines that stopped it.
    A file that does not validate is still run, as `nodeforge run` does: the output nodes whose
    own ancestry is valid run (a broken node that feeds no output stops nothing)."""
    record: dict = {"file": path.name, "passed": [], "placeholders": [], "lines": [], "stage": None}
    registry = engine.registry
    try:
        imported = import_mapped(path, registry)
    except Exception as exc:  # every failure is data here
        record.update(stage="imports", lines=[one_line(exc)])
        return record
    record["passed"].append("imports")
    record["format"] = imported.format
    record["ui_round_trip"] = ui_round_trip(imported.workflow, registry)
    nodes = imported.workflow.nodes
    held = {nid for nid, n in nodes.items() if is_placeholder(n)}
    record["placeholders"] = sorted({original_class(nodes[nid]) for nid in held})
    if not held:
        record["passed"].append("no placeholders")
    # As `nodeforge validate` checks another tool's file: a node that leads to no output is a warning.
    problems, unreached = engine.validate_outputs(imported.workflow)
    record["unreached_lines"] = [str(p) for p in unreached]
    record["placeholder_lines"] = [str(p) for p in problems if p.node_id in held]
    record["lines"] = list(dict.fromkeys(imported.line_for(p) for p in problems if p.node_id not in held))
    if problems:
        record["stage"] = "validates"
    else:
        record["passed"].append("validates")
    if run:
        _run(imported, engine, record)
    return record


def ui_round_trip(workflow: object, registry: object) -> str:
    """'same' when the workflow exported as a ComfyUI UI file imports back to the same graph; else the
    first node that differs, or the line that stopped the export. The graph compared is the one the export
    writes: a node no one ComfyUI class stands for as the nodes that run the same (comfy_export.in_comfy_classes)."""
    from nodeforge.interop import export_comfyui_ui
    from nodeforge.interop.comfy_export import in_comfy_classes

    try:
        workflow = in_comfy_classes(workflow)
        data = json.loads(json.dumps(export_comfyui_ui(workflow, registry=registry), allow_nan=False))
        again = read_workflow(data, registry=registry).workflow
    except Exception as exc:  # every failure is data here
        return one_line(exc)
    ids = dict(zip(workflow.nodes, (str(n["id"]) for n in data["nodes"])))

    def shown(node: object, rename: dict) -> tuple:
        spec = registry.get(node.type)
        params = {**({p.name: p.default for p in spec.params} if spec is not None else {}), **node.params}
        return node.type, params, {k: (rename.get(s, s), o) for k, (s, o) in node.inputs.items()}, node.title

    before = {ids[nid]: shown(node, ids) for nid, node in workflow.nodes.items()}
    after = {nid: shown(node, {}) for nid, node in again.nodes.items()}
    differ = sorted(set(before) ^ set(after) | {nid for nid in before if nid in after and before[nid] != after[nid]})
    return "same" if not differ else f"node {differ[0]} differs ({len(differ)} nodes differ)"


def _run(imported: object, engine: Engine, record: dict) -> None:
    shrink(imported.workflow, engine.registry)
    started = time.perf_counter()
    try:
        result = engine.run(imported.workflow)
        lines = [str(p) for ps in result.skipped.values() for p in ps]
    except Exception as exc:
        lines = [one_line(exc)] if not getattr(exc, "problems", None) else \
            [imported.line_for(p) for p in exc.problems]
    record["seconds"] = round(time.perf_counter() - started, 2)
    if not lines:
        record["passed"].append("runs")
        return
    record["run_lines"] = list(dict.fromkeys(lines))
    record["stage"] = record["stage"] or "runs"


def corpus_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".json", ".png") and p.is_file()
                  and p.name != "manifest.json")


def report(records: list[dict], run: bool) -> list[str]:
    """The fractions, the failures by cause and the placeholder classes by files blocked."""
    total = len(records)
    out = [f"{total} files; model map {'by kind' if by_kind_supported() else 'by name'}; "
           f"run at {SIDE} px, {STEPS} steps, batch 1" + ("" if run else " (not run: --no-run)")]
    for stage in STAGES if run else STAGES[:3]:
        done = sum(stage in r["passed"] for r in records)
        out.append(f"  {stage:16} {done:3d}/{total}  {100 * done / max(total, 1):5.1f}%")
    trips = [r for r in records if "ui_round_trip" in r]
    same = sum(r["ui_round_trip"] == "same" for r in trips)
    out.append(f"  exported as a ComfyUI UI file and read back to the same graph: {same}/{len(trips)} imported files")
    out.extend(f"    {r['file']}: {r['ui_round_trip'][:200]}" for r in trips if r["ui_round_trip"] != "same")
    causes: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for r in records:
        held = set(r.get("placeholder_lines", []))
        for stage, key in (("validate" if r["stage"] != "imports" else "import", "lines"), ("run", "run_lines")):
            for line in r.get(key, []):
                if key == "run_lines" and line in r["lines"]:
                    continue     # said by validate already
                if line not in held and not _placeholder_line(line, r):
                    causes[f"{stage}: {cause_of(line)}"].append((r["file"], line))
    out.append("\nfailures other than placeholders, by cause (files):")
    for cause, hits in sorted(causes.items(), key=lambda kv: (-len({f for f, _ in kv[1]}), kv[0])):
        out.append(f"  {len({f for f, _ in hits}):3d}  {cause}")
        out.append(f"         e.g. {hits[0][0]}: {hits[0][1][:300]}")
    out.extend(_placeholder_lines(records))
    only = sum(1 for r in records if r["placeholders"] and "runs" not in r["passed"] and not r["lines"])
    out.append(f"\nfiles that do not run only for their placeholders: {only}")
    long = [(r["file"], line) for r in records
            for line in r["lines"] + r.get("placeholder_lines", []) + r.get("run_lines", [])
            if "\n" in line or "Traceback" in line]
    out.append(f"\nmessages longer than one line: {len(long)}")
    out.extend(f"  {name}: {line[:200]!r}" for name, line in long)
    return out


def _placeholder_line(line: str, record: dict) -> bool:
    """A run's line for a placeholder (said once already, by class, in the placeholder list)."""
    return any(f"({c})" in line for c in record["placeholders"]) and "NodeForge" in line


def _placeholder_lines(records: list[dict]) -> list[str]:
    blocks = Counter(c for r in records for c in r["placeholders"])
    alone = Counter(r["placeholders"][0] for r in records if len(r["placeholders"]) == 1)
    out = [f"\nplaceholder classes by files blocked ({len(blocks)} classes; 'alone' = the file's only one):"]
    out.extend(f"  {n:3d} files ({alone[c]:2d} alone)  {c}" for c, n in blocks.most_common())
    near = sorted((r for r in records if 0 < len(r["placeholders"]) <= 3), key=lambda r: len(r["placeholders"]))
    out.append(f"\nfiles one to three classes away from no placeholders ({len(near)}):")
    out.extend(f"  {r['file']}: {', '.join(r['placeholders'])}" for r in near)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--no-run", action="store_true", help="stop after validation")
    parser.add_argument("--json", type=Path, help="write every file's record here")
    args = parser.parse_args(argv)
    files = corpus_files(args.folder)
    if not files:
        print(f"error: no .json or .png files in {args.folder}; fill it with benchmarks/comfy_corpus/rebuild.py",
              file=sys.stderr)
        return 2
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        engine = Engine(device="cpu", output_dir=out, settings={"previews": True})
        records = []
        for path in files:
            records.append(measure(path, engine, not args.no_run))
            print(f"{path.name}: {records[-1]['passed'][-1] if records[-1]['passed'] else 'fails to import'}",
                  file=sys.stderr, flush=True)
    print("\n".join(report(records, not args.no_run)))
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    if args.json:
        args.json.write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
