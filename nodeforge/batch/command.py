"""`nodeforge batch`: run a batch spec, or a workflow with --grid/--zip/--count, headless.

Progress is one line per job (jobs done/total, images a minute, time left) on a terminal or
with -v; a failed job always prints one line; the exit status is 1 if any job failed.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from nodeforge.batch import runner as rn
from nodeforge.batch.spec import (BatchSpec, BatchSpecError, SeedPolicy, is_batch_spec, load_spec, parse_axis,
                                  spec_path_for)


def add_parser(sub: Any) -> None:
    batch = sub.add_parser("batch", help="run many jobs of one workflow: grids, lists, seed counts")
    batch.add_argument("file", help="a workflow (.json, NodeForge .png) or a batch spec (.batch.json)")
    batch.add_argument("--grid", action="append", default=[], metavar="ID.param=V1,V2,...",
                       help="an axis combined with the others as a product; values V1,V2 or 1..100 or "
                            "@file.txt (one a line); repeatable")
    batch.add_argument("--zip", action="append", default=[], metavar="ID.param=VALUES",
                       help="axes taken together value by value (same lengths); repeatable")
    batch.add_argument("--count", type=int, default=None, help="repeat every combination N times")
    batch.add_argument("--seed-policy", choices=[p.value for p in SeedPolicy], default=None,
                       help="how --count changes the seed: fixed, increment (default) or random")
    batch.add_argument("--out", default="output", help="folder for images, manifest and contact sheet")
    batch.add_argument("--resume", action="store_true", help="continue the batch already in --out")
    batch.add_argument("--save", action="store_true", help="also save the spec beside the workflow as NAME.batch.json")
    batch.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                       help="run on a Ray cluster (ADDRESS, or a local one); needs pip install \"nodeforge[ray]\"")
    batch.add_argument("--workers", type=int, default=None, help="Ray workers, one engine each (default 2)")
    batch.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    batch.add_argument("--cache-budget", type=int, default=None, metavar="BYTES", help="output cache budget")
    batch.add_argument("-v", "--verbose", action="store_true", help="show progress even when output is piped")
    batch.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    batch.add_argument("--debug", action="store_true", help="show tracebacks")


def build_spec(args: argparse.Namespace, registry: Any = None) -> BatchSpec:
    """The spec from FILE (a spec, or a workflow in any format `nodeforge run` reads, its import's
    warnings printed) plus the command line's axes and count."""
    from nodeforge.cli import read_any
    from nodeforge.core.workflow import parse_json

    path = Path(args.file)
    spec = None
    if path.suffix.lower() == ".json" and path.is_file():
        try:
            data = parse_json(path.read_text(encoding="utf-8-sig"), path)
        except (OSError, UnicodeDecodeError):
            data = None
        if is_batch_spec(data):
            spec = load_spec(path)
        elif isinstance(data, dict) and "workflow" in data and "nodes" not in data and "nodeforge" not in data:
            raise BatchSpecError(f"{path}: looks like a batch spec but has no \"nodeforge_batch\" version key; "
                                 "add \"nodeforge_batch\": 1")
    if spec is None:
        imported = read_any(str(path), [], registry)
        # Another tool's file is embedded in a saved spec: re-importing it could differ (A1111's Seed -1).
        spec = BatchSpec(imported.workflow, workflow_path=None if imported.foreign else path.name)
    spec.grid += [parse_axis(text, Path.cwd()) for text in args.grid]
    spec.zip += [parse_axis(text, Path.cwd()) for text in args.zip]
    if args.count is not None:
        if args.count < 1:
            raise BatchSpecError(f"--count {args.count}: must be at least 1")
        spec.count = args.count
    if args.seed_policy is not None:
        spec.seed_policy = SeedPolicy(args.seed_policy)
    elif args.count is not None and args.count > 1 and spec.seed_policy is SeedPolicy.FIXED:
        spec.seed_policy = SeedPolicy.INCREMENT    # N copies of one image is rarely what is meant
    if spec.seed_policy is SeedPolicy.RANDOM and not spec.random_seed:
        import secrets

        spec.random_seed = secrets.randbelow(2 ** 31)   # stored in the spec: the draws repeat
    return spec


class BatchProgress:
    """Prints a line per finished job, and failures always."""

    def __init__(self, stream: TextIO, show: bool) -> None:
        self.stream = stream
        self.show = show
        self.started = time.perf_counter()
        self.ran = 0
        self.warned: set[str] = set()     # each node's note once a batch, not once a job

    def __call__(self, event: Any) -> None:
        if isinstance(event, rn.BatchStarted):
            self.started = time.perf_counter()
            if event.resumed and self.show:
                self.stream.write(f"resuming: {event.resumed} of {event.total} jobs already done\n")
        elif isinstance(event, rn.JobRetried):
            self.stream.write(f"job {event.job.number}: {event.reason}; retrying (attempt {event.attempt + 1})\n")
        elif isinstance(event, rn.JobFinished):
            self.ran += 1
            record = event.record
            for note in record.get("warnings", ()):     # said even with -q, as `nodeforge run` does
                if note not in self.warned:
                    self.warned.add(note)
                    self.stream.write(f"warning: job {event.job.number}, {note}\n")
            if record["status"] != "done":
                self.stream.write(f"error: job {event.job.number} failed: {record.get('error')}\n")
            elif self.show:
                self.stream.write(self._line(event) + "\n")
            self.stream.flush()

    def _line(self, event: rn.JobFinished) -> str:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        per_minute = self.ran / elapsed * 60
        left = (event.total - event.finished) * elapsed / self.ran
        return (f"[{event.finished}/{event.total}] job {event.job.number} done in {event.record['seconds']:.2f} s"
                f" | {per_minute:.1f} images/min | {int(left // 60)}:{int(left % 60):02d} left")


def _runner(args: argparse.Namespace, engine: Any) -> Any:
    """The Ray runner when --ray is given (None: in-process on `engine`)."""
    if args.ray is None:
        if args.workers is not None:
            raise BatchSpecError("--workers needs --ray (in-process batches run on one engine)")
        return None
    if args.workers is not None and args.workers < 1:
        raise BatchSpecError(f"--workers {args.workers}: must be at least 1")
    from nodeforge.batch.ray_runner import ray_runner

    return ray_runner(args.ray or None, workers=args.workers or 2, device=args.device,
                      cache_budget=args.cache_budget, registry=engine.registry)


def cmd_batch(args: argparse.Namespace) -> int:
    from nodeforge.core.engine import Engine

    engine = Engine(device=args.device, output_dir=args.out, cache_budget=args.cache_budget)
    for failure in engine.registry.failures:
        print(f"warning: {failure}", file=sys.stderr)
    spec = build_spec(args, engine.registry)
    plan = rn.plan_batch(spec, engine.registry)
    rn.check_jobs(plan, engine)          # every job valid before anything runs
    if args.save and spec.workflow.source is not None:
        from nodeforge.core.files import atomic_write_bytes

        target = spec_path_for(spec.workflow.source)
        atomic_write_bytes(target, spec.dumps().encode("utf-8"))
        print(f"spec saved: {target}")
    show = (sys.stderr.isatty() or args.verbose) and not args.quiet
    summary = rn.run_batch(plan, args.out, engine=engine, runner=_runner(args, engine), resume=args.resume,
                           on_event=BatchProgress(sys.stderr, show))
    print(f"{summary.done} done, {summary.failed} failed of {summary.total} jobs "
          f"({summary.resumed} already done) in {summary.seconds:.1f} s")
    print(f"manifest: {summary.manifest}")
    if summary.sheet is not None:
        print(f"contact sheet: {summary.sheet}")
    return 1 if summary.failed else 0

