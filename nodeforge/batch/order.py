"""Job order that keeps an engine's cache warm: jobs that share a checkpoint and LoRAs run together.

A job's model key is the value of every file param naming a checkpoint or a LoRA after its
overrides. Groups run in the order they first appear; inside a group jobs keep their numbers'
order, so the order is deterministic too.
"""
from __future__ import annotations

from typing import Any, Sequence

from nodeforge.batch.spec import Job
from nodeforge.core.types import FileKind
from nodeforge.core.workflow import Workflow

MODEL_KINDS = (FileKind.CHECKPOINT, FileKind.LORA)
ModelKey = tuple[tuple[str, str, str], ...]


def model_params(workflow: Workflow, registry: Any) -> list[tuple[str, str]]:
    """(node id, param) of every param that names a checkpoint or a LoRA."""
    found = []
    for nid, node in workflow.nodes.items():
        spec = registry.get(node.type)
        for param in spec.params if spec is not None else ():
            if param.file in MODEL_KINDS:
                found.append((nid, param.name))
    return found


def model_key(workflow: Workflow, job: Job, params: Sequence[tuple[str, str]]) -> ModelKey:
    """The models a job loads, as (node id, param, value) for each model param."""
    values = {(nid, param): value for nid, param, value in job.overrides}
    return tuple((nid, param, str(values.get((nid, param), workflow.nodes[nid].params.get(param, ""))))
                 for nid, param in params)


def order_jobs(workflow: Workflow, jobs: Sequence[Job], registry: Any) -> list[Job]:
    """Jobs grouped by model key (groups in first-seen order), numbers ascending inside a group."""
    params = model_params(workflow, registry)
    groups: dict[ModelKey, list[Job]] = {}
    for job in sorted(jobs, key=lambda j: j.number):
        groups.setdefault(model_key(workflow, job, params), []).append(job)
    return [job for group in groups.values() for job in group]


class JobQueue:
    """Pending jobs handed to workers with model affinity (for runners with several engines).

    A worker asks for its next job with the model key of its last one and gets the first pending
    job with that key, else the first pending job: each worker keeps one model warm as long as
    its group lasts, and a job given back (its worker died) is handed out again first.
    """

    def __init__(self, workflow: Workflow, jobs: Sequence[Job], registry: Any) -> None:
        params = model_params(workflow, registry)
        self._pending: list[Job] = list(jobs)
        self._keys = {job.number: model_key(workflow, job, params) for job in jobs}

    def __len__(self) -> int:
        return len(self._pending)

    def key(self, job: Job) -> ModelKey:
        return self._keys[job.number]

    def take(self, last_key: ModelKey | None) -> Job | None:
        if not self._pending:
            return None
        index = 0
        if last_key is not None:
            index = next((i for i, job in enumerate(self._pending) if self._keys[job.number] == last_key), 0)
        return self._pending.pop(index)

    def give_back(self, job: Job) -> None:
        self._pending.insert(0, job)
