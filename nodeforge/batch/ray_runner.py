"""Running a batch on a Ray cluster: a pool of actors, each holding one warm Engine.

`ray` is imported only when this runner is built. Each actor takes one GPU where the cluster
has GPUs (`num_gpus=1`), one CPU otherwise. Jobs are handed out with model affinity (an actor
keeps getting jobs of the model it has loaded), one at a time per actor. Results come back as
PNG bytes and metadata; the driver alone writes files and the manifest (`BatchWriter`). An actor
that dies has its job put back and retried on another (a `retry` line in the manifest); after
`max_attempts` the job is recorded as failed with the reason, and a dead actor is replaced
while the replacement budget lasts, so the batch still finishes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from nodeforge.batch.order import JobQueue, ModelKey
from nodeforge.batch.runner import BatchPlan, BatchWriter, Job, JobOutcome, JobStarted, Runner, execute_job
from nodeforge.batch.spec import BatchSpecError
from nodeforge.core.workflow import Workflow

INSTALL_HINT = 'Ray is not installed; install it with: pip install "nodeforge[ray]"'


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise BatchSpecError(f"--ray: {INSTALL_HINT}") from None
    return ray


class EngineWorker:
    """The actor's body: one Engine kept warm across jobs (its cache holds the loaded models)."""

    def __init__(self, device: str, name: str, cache_budget: int | None = None, threads: int | None = None) -> None:
        from nodeforge.core.engine import Engine

        if threads:   # CPU float sums depend on the thread count: same count, same pixels
            import torch

            torch.set_num_threads(threads)
        self.name = name
        self.engine = Engine(device=device, cache_budget=cache_budget)
        self._workflows: dict[str, Workflow] = {}

    def run_job(self, key: str, workflow_json: dict[str, Any], source: str | None, job: Job) -> JobOutcome:
        workflow = self._workflows.get(key)
        if workflow is None:
            workflow = Workflow.from_json(workflow_json, source=Path(source) if source else None)
            self._workflows = {key: workflow}
        return execute_job(self.engine, workflow, job, worker=self.name)


@dataclass
class _Pool:
    """The driver's view of the actors: handles, what each runs now, the model each has loaded."""

    make: Callable[[str], Any]
    replacements: int
    actors: dict[str, Any] = field(default_factory=dict)
    last_key: dict[str, ModelKey | None] = field(default_factory=dict)
    started: int = 0

    def add(self) -> str:
        name = f"worker-{self.started + 1}"
        self.started += 1
        self.actors[name] = self.make(name)
        self.last_key[name] = None
        return name

    def remove(self, name: str) -> None:
        self.actors.pop(name, None)
        self.last_key.pop(name, None)
        if self.replacements > 0:
            self.replacements -= 1
            self.add()


def ray_runner(address: str | None = None, *, workers: int = 2, device: str = "auto",
               cache_budget: int | None = None, max_attempts: int = 3, registry: Any = None,
               threads: int | None = None,
               on_submit: Callable[[Any, Job], None] | None = None) -> Runner:
    """A runner for `run_batch`. `threads` sets each worker's torch threads (Ray gives an actor
    one per CPU it holds); `on_submit(actor, job)` is called as each job is sent (tests)."""
    ray = import_ray()

    def run(plan: BatchPlan, pending: Sequence[Job], writer: BatchWriter) -> None:
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        gpus = ray.cluster_resources().get("GPU", 0)
        remote = ray.remote(num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1, max_restarts=0)(EngineWorker)
        pool = _Pool(lambda name: remote.remote(device, name, cache_budget, threads), replacements=workers)
        for _ in range(workers):
            pool.add()
        from nodeforge.core.registry import default_registry

        queue = JobQueue(plan.workflow, pending, registry or default_registry())
        _drive(ray, plan, queue, pool, writer, max_attempts, on_submit)

    return run


def _drive(ray: Any, plan: BatchPlan, queue: JobQueue, pool: _Pool, writer: BatchWriter,
           max_attempts: int, on_submit: Callable[[Any, Job], None] | None) -> None:
    source = str(plan.workflow.source) if plan.workflow.source else None
    workflow_ref = ray.put(plan.workflow.to_json())
    in_flight: dict[Any, tuple[str, Job]] = {}
    attempts: dict[int, int] = {}
    while len(queue) or in_flight:
        busy = {name for name, _ in in_flight.values()}
        for name in [n for n in pool.actors if n not in busy]:
            job = queue.take(pool.last_key[name])
            if job is None:
                break
            pool.last_key[name] = queue.key(job)
            ref = pool.actors[name].run_job.remote(plan.fingerprint, workflow_ref, source, job)
            in_flight[ref] = (name, job)
            writer.emit(JobStarted(job, name))
            if on_submit is not None:
                on_submit(pool.actors[name], job)
        if not in_flight:      # jobs left but no actor to run them
            for job in list(_drain(queue)):
                writer.record_failure(job, "no Ray worker left to run it", attempts.get(job.number, 0), "none")
            return
        ready, _ = ray.wait(list(in_flight), num_returns=1)
        for ref in ready:
            name, job = in_flight.pop(ref)
            attempt = attempts.get(job.number, 0) + 1
            attempts[job.number] = attempt
            try:
                outcome = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as exc:
                reason = f"{name} died ({type(exc).__name__})"
                pool.remove(name)
                if attempt >= max_attempts:
                    writer.record_failure(job, f"{reason}; gave up after {attempt} attempts", attempt, name)
                else:
                    writer.record_retry(job, reason, attempt, name)
                    queue.give_back(job)
                continue
            writer.record(job, outcome, attempt)


def _drain(queue: JobQueue) -> Sequence[Job]:
    jobs = []
    while (job := queue.take(None)) is not None:
        jobs.append(job)
    return jobs
