"""Running a batch: plan the jobs, run each on an engine, and let the driver alone write results.

A job runs with its engine writing into a private staging folder; its files come back as bytes
(`JobOutcome`), so the same path serves the in-process runner and Ray workers on other machines.
The driver (`BatchWriter`) gives each file its final name, which carries the job number, writes
it atomically, and only then appends the job's manifest line. A job re-run after a crash
therefore overwrites its own file under the same name: nothing is duplicated or lost.
"""
from __future__ import annotations

import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from nodeforge.batch.manifest import DONE, FAILED, RETRY, Manifest
from nodeforge.batch.order import order_jobs
from nodeforge.batch.spec import BatchSpec, Job, expand, fingerprint
from nodeforge.core.errors import Cancelled, Problem, ValidationError, WorkflowError
from nodeforge.core.events import NodeWarning
from nodeforge.core.files import atomic_write_bytes, output_paths
from nodeforge.core.workflow import Workflow

SPEC_COPY_NAME = "batch.json"
IN_PROCESS = "in-process"
_COUNTER = re.compile(r"_\d{5}$")       # SaveImage's own counter, replaced by the job number


@dataclass
class BatchPlan:
    """A spec expanded: its jobs in run order (grouped by model) and its fingerprint."""

    spec: BatchSpec
    jobs: list[Job]
    fingerprint: str

    @property
    def workflow(self) -> Workflow:
        return self.spec.workflow


def plan_batch(spec: BatchSpec, registry: Any) -> BatchPlan:
    jobs = expand(spec, registry)
    return BatchPlan(spec, order_jobs(spec.workflow, jobs, registry), fingerprint(spec.workflow, jobs))


def check_jobs(plan: BatchPlan, engine: Any) -> None:
    """Validate every job's graph before anything runs; ValidationError lists each problem once,
    with the jobs it concerns."""
    seen: dict[Problem, list[int]] = {}
    for job in sorted(plan.jobs, key=lambda j: j.number):
        for problem in engine.validate(job.apply(plan.workflow)):
            seen.setdefault(problem, []).append(job.number)
    if seen:
        raise ValidationError([Problem(f"{p.message} ({_jobs_text(numbers, len(plan.jobs))})",
                                       p.node_id, p.node_type, p.field) for p, numbers in seen.items()])


def _jobs_text(numbers: list[int], total: int) -> str:
    if len(numbers) == total and total > 1:
        return f"all {total} jobs"
    shown = ", ".join(map(str, numbers[:8])) + (", ..." if len(numbers) > 8 else "")
    return f"job{'s' if len(numbers) > 1 else ''} {shown}"


# -- one job -------------------------------------------------------------------------------------
@dataclass
class JobOutcome:
    """What a job produced, as plain data a Ray worker can send back: file names and bytes."""

    number: int
    files: list[tuple[str, bytes]] = field(default_factory=list)   # staged relative name, contents
    seconds: float = 0.0
    error: str | None = None
    worker: str = IN_PROCESS
    warnings: list[str] = field(default_factory=list)   # the nodes' notes ("node 2 (LoRALoader): ...")


def execute_job(engine: Any, workflow: Workflow, job: Job, *, worker: str = IN_PROCESS) -> JobOutcome:
    """Run one job on `engine`; a user error becomes `error`, cancelling propagates."""
    started = time.perf_counter()
    previous = engine.output_dir
    notes: list[str] = []

    def listen(event: Any) -> None:      # the nodes' warnings, as `nodeforge run` prints them
        if isinstance(event, NodeWarning):
            notes.append(f"node {event.node_id} ({event.node_type}): {event.message}")

    with tempfile.TemporaryDirectory(prefix=f"nodeforge-job{job.number}-") as staging:
        engine.output_dir = Path(staging)
        try:
            result = engine.run(job.apply(workflow), on_event=listen)
            files = _read_outputs(Path(staging), result.outputs)
            error = _skipped_text(result.skipped) if result.skipped else None
        except Cancelled:
            raise
        except WorkflowError as exc:
            files, error = [], str(exc)
        finally:
            engine.output_dir = previous
    return JobOutcome(job.number, files, time.perf_counter() - started, error, worker, notes)


def _skipped_text(skipped: dict[str, list[Problem]]) -> str:
    return "; ".join(f"output node {nid} was not run: {problems[0]}" for nid, problems in skipped.items())


def _read_outputs(staging: Path, outputs: dict[str, Any]) -> list[tuple[str, bytes]]:
    files = []
    for path in output_paths(outputs):
        path = Path(path)
        try:
            relative = path.resolve().relative_to(staging.resolve())
        except ValueError:
            continue    # a node that wrote outside the output folder: not this batch's file
        if path.is_file():
            files.append((relative.as_posix(), path.read_bytes()))
    return files


def final_name(staged: str, number: int, index: int) -> str:
    """`txt2img_00001.png` of job 17 -> `txt2img_00017.png`; a job's second file gets `-2`."""
    path = Path(staged)
    stem = _COUNTER.sub("", path.stem)
    extra = f"-{index + 1}" if index else ""
    return (path.parent / f"{stem}_{number:05d}{extra}{path.suffix}").as_posix()


# -- the driver ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchStarted:
    total: int
    resumed: int          # jobs already finished in the manifest, not run again


@dataclass(frozen=True)
class JobStarted:
    job: Job
    worker: str


@dataclass(frozen=True)
class JobFinished:
    job: Job
    record: dict[str, Any]
    finished: int         # done + failed so far, resumed ones included
    failed: int
    total: int


@dataclass(frozen=True)
class JobRetried:
    job: Job
    reason: str
    attempt: int


BatchListener = Callable[[Any], None]


class BatchWriter:
    """The only writer of a batch's files and manifest (the driver side of every runner)."""

    def __init__(self, out_dir: Path, manifest: Manifest, total: int, on_event: BatchListener | None) -> None:
        self.out_dir = out_dir
        self.manifest = manifest
        self.total = total
        self.on_event = on_event
        latest = manifest.latest()
        self.finished = len(manifest.finished())
        self.failed = 0
        self._ignored = set(latest) - set(manifest.finished())   # failed before: they run again

    def emit(self, event: Any) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def record(self, job: Job, outcome: JobOutcome, attempt: int = 1) -> dict[str, Any]:
        names = []
        for index, (staged, data) in enumerate(outcome.files):
            name = final_name(staged, job.number, index)
            atomic_write_bytes(self.out_dir / name, data)
            names.append(name)
        status = FAILED if outcome.error else DONE
        record: dict[str, Any] = {"job": job.number, "status": status, "overrides": job.overrides_json(),
                                  "outputs": names, "seconds": round(outcome.seconds, 3),
                                  "worker": outcome.worker, "attempt": attempt}
        if outcome.error:
            record["error"] = outcome.error
        if outcome.warnings:
            record["warnings"] = list(outcome.warnings)
        self.manifest.append(record)
        self.finished += 1
        self.failed += status == FAILED
        self.emit(JobFinished(job, record, self.finished, self.failed, self.total))
        return record

    def record_retry(self, job: Job, reason: str, attempt: int, worker: str) -> None:
        self.manifest.append({"job": job.number, "status": RETRY, "overrides": job.overrides_json(),
                              "reason": reason, "worker": worker, "attempt": attempt})
        self.emit(JobRetried(job, reason, attempt))

    def record_failure(self, job: Job, reason: str, attempt: int, worker: str) -> None:
        self.record(job, JobOutcome(job.number, [], 0.0, reason, worker), attempt)


def run_in_process(plan: BatchPlan, pending: Sequence[Job], writer: BatchWriter, engine: Any) -> None:
    """One engine, jobs in plan order (models grouped, so each loads once)."""
    for job in pending:
        writer.emit(JobStarted(job, IN_PROCESS))
        writer.record(job, execute_job(engine, plan.workflow, job))


@dataclass
class BatchSummary:
    """How a batch ended. `failed` counts jobs whose last record is a failure."""

    out_dir: Path
    total: int
    done: int
    failed: int
    resumed: int
    ran: int
    seconds: float
    manifest: Path
    sheet: Path | None


Runner = Callable[[BatchPlan, Sequence[Job], BatchWriter], None]


def open_batch(plan: BatchPlan, out_dir: Path, *, resume: bool = False,
               on_event: BatchListener | None = None) -> tuple[Manifest, BatchWriter]:
    """The folder's manifest and writer; the spec, with its workflow embedded, is copied to
    `out_dir/batch.json` so the folder alone can re-make any job (the editor's Batch dialog too)."""
    manifest = Manifest.open(out_dir, plan.fingerprint, len(plan.jobs), resume=resume)
    atomic_write_bytes(out_dir / SPEC_COPY_NAME, plan.spec.dumps(embed_workflow=True).encode("utf-8"))
    return manifest, BatchWriter(out_dir, manifest, len(plan.jobs), on_event)


def write_sheet(plan: BatchPlan, out_dir: Path, latest: dict[int, dict[str, Any]]) -> tuple[Path, Any] | None:
    """The contact sheet of the jobs in `latest` (the manifest's newest records) and its layout."""
    from nodeforge.batch.sheet import SHEET_NAME, contact_sheet, first_images

    if not latest:
        return None
    path = out_dir / SHEET_NAME
    jobs = [job for job in plan.jobs if job.number in latest]
    _, layout = contact_sheet(plan.spec, jobs, first_images(out_dir, latest), path)
    return path, layout


def run_batch(plan: BatchPlan, out_dir: str | Path, *, engine: Any = None, runner: Runner | None = None,
              resume: bool = False, on_event: BatchListener | None = None, sheet: bool = True) -> BatchSummary:
    """Run the jobs not yet finished in `out_dir`, then write the contact sheet.

    In-process on `engine` unless a `runner` (the Ray runner) is given. The spec, with its
    workflow embedded, is copied to `out_dir/batch.json` so the folder alone can re-make any job.
    """
    out_dir = Path(out_dir)
    manifest, writer = open_batch(plan, out_dir, resume=resume, on_event=on_event)
    finished = manifest.finished()
    pending = [job for job in plan.jobs if job.number not in finished]
    writer.emit(BatchStarted(len(plan.jobs), len(finished)))
    started = time.perf_counter()
    if runner is not None:
        runner(plan, pending, writer)
    else:
        run_in_process(plan, pending, writer, engine)
    latest = manifest.latest()
    written = write_sheet(plan, out_dir, latest) if sheet else None
    sheet_path = written[0] if written else None
    done = sum(1 for r in latest.values() if r["status"] == DONE)
    return BatchSummary(out_dir, len(plan.jobs), done, len(latest) - done, len(finished), len(pending),
                        time.perf_counter() - started, manifest.path, sheet_path)
