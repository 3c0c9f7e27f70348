"""The engine: validate a workflow, plan what the requested outputs need, run it with a cache.

One engine serves the editor and the command line.

Threading contract: `run()` blocks and may be called from any thread, one run at a time per
engine (a second caller waits for the first). `cancel()` may be called from any thread; the
running node stops at its next progress point and the run raises `Cancelled`. Listeners are
called on the running thread (see `nodeforge.core.events`). `run_async()` runs on a worker
thread and delivers events on the event loop's thread, for asyncio and qasync callers.
"""
from __future__ import annotations

import itertools
import json
import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from nodeforge.core import events as ev
from nodeforge.core import graph
from nodeforge.core.cache import OutputCache, make_key
from nodeforge.core.context import NodeContext, finished, running
from nodeforge.core.errors import (Cancelled, NodeError, NodeExecutionError, Problem, ValidationError, WorkflowError,
                                   first_line)
from nodeforge.core.models import ModelPaths, file_identity
from nodeforge.core.registry import Registry, default_registry
from nodeforge.core.types import PortType
from nodeforge.core.validate import Checked, check_workflow
from nodeforge.core.workflow import Workflow

_run_ids = itertools.count(1)
_NOTHING_TO_RUN = "nothing to run: the workflow has no output node; add a SaveImage or Preview node"
_STRUCTURED_PORTS = {t.value for t in PortType}


@dataclass
class RunResult:
    """What a run did. `outputs[node_id]` is what an output node (or a requested node) returned."""

    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    # Output nodes not run because something in their ancestry is invalid, with the problems.
    skipped: dict[str, list[Problem]] = field(default_factory=dict)


@dataclass
class Plan:
    """A validated workflow ready to run: what is needed, in order, and every node's cache key."""

    checked: Checked
    targets: list[str]
    needed: list[str]            # ancestors of the targets, topological order
    keys: dict[str, str]
    skipped: dict[str, list[Problem]] = field(default_factory=dict)   # outputs that cannot run
    workflow: Workflow | None = None   # the graph to run (bypass and mute applied)


def _resolve_device(name: str) -> str:
    from nodeforge.devices import resolve_device

    return resolve_device(name)


_PLAIN = (str, bytes, bytearray, bool, int, float)
_PRIMITIVE_PORTS = {"INT": (int,), "FLOAT": (int, float), "STRING": (str,), "BOOLEAN": (bool,), "BOOL": (bool,)}


def _fits_port(value: Any, port_type: str) -> bool:
    """Whether an output value can be what its port declares, checked without importing torch.

    Structured types (models, latents, images...) are never a plain number or text; primitive
    port types must be their Python type. Other types a pack defines are its own business, and
    None is allowed anywhere (an absent optional value).
    """
    if value is None or port_type == "*":
        return True
    if port_type in _PRIMITIVE_PORTS:
        return isinstance(value, _PRIMITIVE_PORTS[port_type]) and not (
            isinstance(value, bool) and port_type in ("INT", "FLOAT"))
    if port_type in _STRUCTURED_PORTS:
        return not isinstance(value, _PLAIN)
    return True


def _wired_params(spec: Any, nid: str, workflow: Workflow, kwargs: dict[str, Any]) -> None:
    """The values wires give to params (an INT output feeding a width), checked as the param checks a
    value typed on the node (kind, range, multiple, choices), else a NodeExecutionError naming the wire."""
    for name, (src, out) in workflow.nodes[nid].inputs.items():
        param = spec.param(name) if spec.input(name) is None else None
        if param is None:
            continue
        try:
            kwargs[name] = param.coerce(kwargs[name])
        except ValueError as exc:
            raise NodeExecutionError(f"{name} from {src}.{out} ({workflow.nodes[src].type}): {exc}; change what "
                                     f"feeds it, or remove the link and set {name} on the node",
                                     node_id=nid, node_type=spec.type, field=name) from None


def _problems_per_output(workflow: Workflow, targets: list[str],
                         problems: list[Problem]) -> dict[str, list[Problem]]:
    """For each output that cannot run, the problems in its ancestry (a problem naming no node
    blocks every output)."""
    if not problems:
        return {}
    blocked: dict[str, list[Problem]] = {}
    for target in targets:
        needed = graph.ancestors(workflow, [target])
        mine = [p for p in problems if p.node_id is None or p.node_id in needed]
        if mine:
            blocked[target] = mine
    return blocked


def split_unreached(workflow: Workflow, problems: list[Problem],
                    registry: Registry) -> tuple[list[Problem], list[Problem]]:
    """(the problems that can stop an output, the problems of nodes that lead to no output).

    ComfyUI checks and runs only what its output nodes need, so a shared file with a half-wired
    node left beside the graph opens and runs there. A node of unknown type (a placeholder) might
    be an output, so what feeds it counts as reached; a problem naming no node, and every problem
    of a graph with no output, can stop a run.
    """
    outputs = [nid for nid, node in workflow.nodes.items()
               if (spec := registry.get(node.type)) is None or spec.output_node]
    if not outputs:
        return list(problems), []
    reached = graph.ancestors(workflow, outputs)
    left_out = {nid for nid in workflow.nodes if nid not in reached}
    return ([p for p in problems if p.node_id not in left_out],
            [p for p in problems if p.node_id in left_out])


def unreached_warning(problem: Problem) -> str:
    """An unreached node's problem as a warning line: what is wrong, and why nothing stops."""
    return f"{problem} (this node leads to no output, so it does not run; connect it or delete it)"


def _same_file(path: Path, identity: tuple) -> bool:
    try:
        return file_identity(path) == identity
    except OSError:
        return False


class Engine:
    """Runs workflows. See the module docstring for the threading contract."""

    def __init__(self, device: str = "auto", output_dir: str | Path = "output", *,
                 registry: Registry | None = None, cache_budget: int | None = None,
                 model_paths: ModelPaths | None = None, settings: dict[str, Any] | None = None) -> None:
        if device not in ("auto", "cpu", "cuda", "mps") and not device.startswith("cuda:"):
            raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps")
        self.device = device
        self.output_dir = Path(output_dir)
        self.registry = registry if registry is not None else default_registry()
        self.cache = OutputCache(cache_budget)
        self.model_paths = model_paths if model_paths is not None else ModelPaths.default()
        self.settings: dict[str, Any] = dict(settings or {})
        self._listeners: list[ev.Listener] = []
        self._run_lock = threading.Lock()
        self._ticket_lock = threading.Lock()
        self._current_ticket: _Ticket | None = None
        self._cancel = threading.Event()
        self._resolved_device: str | None = None
        self._shared: dict[str, Any] = {}   # per-engine state nodes may keep (loaded model registry)
        self._last_plan: tuple[str, Plan, dict[Path, tuple]] | None = None
        self._identities: dict[Path, tuple] = {}

    # -- events ------------------------------------------------------------------------------------
    def subscribe(self, listener: ev.Listener) -> Callable[[], None]:
        """Call `listener(event)` for every event of every run; returns a function to unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _emit(self, event: ev.Event, extra: ev.Listener | None) -> None:
        for listener in list(self._listeners):
            listener(event)
        if extra is not None:
            extra(event)

    # -- device -------------------------------------------------------------------------------------
    def resolved_device(self) -> str:
        """The concrete device ("auto" resolved; imports torch the first time)."""
        if self._resolved_device is None:
            self._resolved_device = _resolve_device(self.device)
        return self._resolved_device

    # -- validation and planning ----------------------------------------------------------------------
    def validate(self, workflow: Workflow, *, check_files: bool = True) -> list[Problem]:
        """Every problem in the workflow as it runs (bypassed and muted nodes switched off).

        This is the whole graph's report; a run still runs the outputs whose own ancestry is
        valid (see `plan`).
        """
        workflow = self._effective(workflow)
        checked = check_workflow(workflow, self.registry, self.model_paths, check_files=check_files)
        problems = list(checked.problems)
        if checked.ok and not self._default_targets(workflow, checked):
            problems.append(Problem(_NOTHING_TO_RUN))
        return problems

    def validate_outputs(self, workflow: Workflow, *,
                         check_files: bool = True) -> tuple[list[Problem], list[Problem]]:
        """ComfyUI's rule for a file made there: (the problems that stop an output, the problems
        of nodes that lead to no output, which ComfyUI never checks; warnings, see
        `split_unreached`). `validate` keeps both, so the editor shows each on its node."""
        problems = self.validate(workflow, check_files=check_files)
        return split_unreached(self._effective(workflow), problems, self.registry)

    def _effective(self, workflow: Workflow) -> Workflow:
        """The graph that runs: the editor's bypass and mute applied (graph.apply_switches)."""
        if graph.switched_off(workflow, graph.BYPASSED) or graph.switched_off(workflow, graph.MUTED):
            return graph.apply_switches(workflow, self.registry)
        return workflow

    def plan(self, workflow: Workflow, outputs: Iterable[str] | None = None) -> Plan:
        """Validate and work out what to run, per output as ComfyUI does.

        With no `outputs` named, every output node whose ancestry is valid is planned and the
        others are listed in `Plan.skipped` with their problems; ValidationError (listing every
        problem) only when none can run. Named `outputs` must all be valid. Bypassed and muted
        nodes are switched off first. `Plan.workflow` is the graph to run.

        The last plan is reused when the graph, the requested outputs and the files it reads are
        unchanged, so re-running an unchanged graph costs a fingerprint and a few stat calls.
        """
        workflow = self._effective(workflow)
        fingerprint = self._fingerprint(workflow, outputs)
        last = self._last_plan
        if last is not None and last[0] == fingerprint:
            plan, identities = last[1], last[2]
            if all(_same_file(path, ident) for path, ident in identities.items()):
                plan.workflow = workflow
                return plan
        plan = self._plan_uncached(workflow, outputs)
        # A plan whose keys depend on more than the graph and its declared files (an
        # uncacheable node, or an is_changed answer that may differ next time) is rebuilt each run.
        if not any(not plan.checked.specs[n].cacheable or plan.checked.specs[n].is_changed is not None
                   for n in plan.needed):
            self._last_plan = (fingerprint, plan, self._identities)
        return plan

    def _fingerprint(self, workflow: Workflow, outputs: Iterable[str] | None) -> str:
        nodes = {nid: (n.type, n.params, n.inputs) for nid, n in workflow.nodes.items()}
        # Relative paths resolve against the workflow's folder (or the working folder), so the
        # same graph saved in two folders is two plans reading two different files.
        base = str(workflow.source.parent.resolve()) if workflow.source is not None else os.getcwd()
        return json.dumps([nodes, None if outputs is None else list(outputs), id(self.registry),
                           len(self.registry), base], sort_keys=True, default=repr)

    def _plan_uncached(self, workflow: Workflow, outputs: Iterable[str] | None) -> Plan:
        checked = check_workflow(workflow, self.registry, self.model_paths)
        if outputs is None:
            targets = self._default_targets(workflow, checked)
        else:
            targets = [str(t) for t in outputs]
            missing = [Problem(f"requested output node {t!r} is not in the workflow", t)
                       for t in targets if t not in workflow.nodes]
            if missing:
                raise ValidationError(missing + checked.problems)
        skipped = _problems_per_output(workflow, targets, checked.problems)
        runnable = [t for t in targets if t not in skipped]
        if not targets:
            raise ValidationError(checked.problems or [Problem(_NOTHING_TO_RUN)])
        if not runnable or (outputs is not None and skipped):
            relevant = {id(p) for problems in skipped.values() for p in problems}
            raise ValidationError([p for p in checked.problems if id(p) in relevant])
        needed = graph.needed_for(workflow, runnable, checked.order)
        keys = self._keys(workflow, checked, needed)
        return Plan(checked, runnable, needed, keys, skipped, workflow)

    @staticmethod
    def _default_targets(workflow: Workflow, checked: Checked) -> list[str]:
        return [nid for nid in workflow.nodes if nid in checked.specs and checked.specs[nid].output_node]

    def _keys(self, workflow: Workflow, checked: Checked, needed: list[str]) -> dict[str, str]:
        keys: dict[str, str] = {}
        identities: dict[Path, tuple] = {}
        self._identities = identities
        for nid in needed:
            spec = checked.specs[nid]
            params = checked.params[nid]
            extra: list[Any] = []
            for name, path in checked.files.get(nid, {}).items():
                if path not in identities:
                    identities[path] = file_identity(path)
                extra.append((name, identities[path]))
            if spec.is_changed is not None:
                extra.append(self._is_changed(spec, nid, workflow, params))
            if not spec.cacheable:
                extra.append(("run", next(_run_ids), time.monotonic_ns()))
            input_keys = [(name, keys[src], out) for name, (src, out) in workflow.nodes[nid].inputs.items()]
            keys[nid] = make_key(spec.type, params, input_keys, extra)
        return keys

    def _is_changed(self, spec: Any, nid: str, workflow: Workflow, params: dict[str, Any]) -> Any:
        """The node's own cache-key contribution: `spec.is_changed(ctx, **params)` (see spec.py)."""
        ctx = self._context(0, nid, spec.type, workflow, None)
        try:
            return spec.is_changed(ctx, **params)
        except NodeError as exc:
            raise NodeExecutionError(str(exc), node_id=nid, node_type=spec.type, field=exc.field,
                                     original=exc) from exc
        except Exception as exc:
            raise NodeExecutionError(f"is_changed failed: {type(exc).__name__}: {exc} (a bug in the node pack)",
                                     node_id=nid, node_type=spec.type, original=exc) from exc

    # -- running ------------------------------------------------------------------------------------------
    def cancel(self) -> None:
        """Ask the running workflow to stop at its next progress point (any thread)."""
        self._cancel.set()

    def run(self, workflow: Workflow, outputs: Iterable[str] | None = None,
            on_event: ev.Listener | None = None) -> RunResult:
        """Run what the outputs need (all output nodes by default). Raises WorkflowError subclasses."""
        with self._run_lock:
            return self._run_holding_lock(workflow, outputs, on_event)

    def _run_holding_lock(self, workflow: Workflow, outputs: Iterable[str] | None,
                          on_event: ev.Listener | None) -> RunResult:
        with self._ticket_lock:   # a cancel of this run's ticket may already be waiting
            if self._current_ticket is None or not self._current_ticket.cancelled:
                self._cancel.clear()
        run_id = next(_run_ids)
        try:
            return self._run_locked(run_id, workflow, outputs, on_event)
        except WorkflowError as exc:
            self._emit(ev.RunFailed(run_id, exc.node_id, str(exc), exc), on_event)
            raise

    def _run_locked(self, run_id: int, workflow: Workflow, outputs: Iterable[str] | None,
                    on_event: ev.Listener | None) -> RunResult:
        started = time.perf_counter()
        plan = self.plan(workflow, outputs)
        workflow = plan.workflow if plan.workflow is not None else workflow
        keys = plan.keys

        # Walk back from the targets: a node runs only if its key is not cached and something
        # that runs (or a target) needs its value. A cached node's ancestors are not touched.
        # Cached values are taken out now, not when their turn comes: a put of this run could
        # evict them meanwhile (a budget near the model size). Their entries stay pinned for the
        # run, so they are still cached for the next one.
        fetched: dict[str, Any] = {}

        def served_from_cache(nid: str) -> bool:
            found, value = self.cache.lookup(keys[nid])
            if found:
                fetched[nid] = value
            return found

        to_run = graph.ancestors(workflow, plan.targets, stop=served_from_cache) - set(fetched)
        cache = self.cache
        pinned = [keys[nid] for nid in fetched]
        cache.pin(pinned)
        try:
            return self._execute(run_id, workflow, plan, to_run, fetched, on_event, started)
        finally:
            cache.unpin(pinned)

    def _execute(self, run_id: int, workflow: Workflow, plan: Plan, to_run: set[str],
                 fetched: dict[str, Any], on_event: ev.Listener | None, started: float) -> RunResult:
        nodes = workflow.nodes
        cache = self.cache
        keys = plan.keys

        # How many runs still need each value, so it can be dropped as soon as it is consumed.
        pending_uses: dict[str, int] = {}
        for nid in to_run:
            for src, _ in nodes[nid].inputs.values():
                pending_uses[src] = pending_uses.get(src, 0) + 1
        targets = set(plan.targets)

        order = [nid for nid in plan.needed if nid in to_run or nid in fetched]
        self._emit(ev.RunStarted(run_id, tuple(order)), on_event)
        result = RunResult()
        values: dict[str, Any] = {}
        for nid in order:
            spec = plan.checked.specs[nid]
            if nid in fetched:
                values[nid] = fetched.pop(nid)
                result.cached.append(nid)
                self._emit(ev.NodeFinished(run_id, nid, spec.type, 0.0, True,
                                           values[nid] if spec.output_node else None), on_event)
                continue
            kwargs = dict(plan.checked.params[nid])
            for name, (src, out) in nodes[nid].inputs.items():
                kwargs[name] = values[src][out]
            _wired_params(spec, nid, workflow, kwargs)
            for declared in spec.inputs:
                kwargs.setdefault(declared.name, None)
            self._emit(ev.NodeStarted(run_id, nid, spec.type), on_event)
            ctx = self._context(run_id, nid, spec.type, workflow, on_event)
            t0 = time.perf_counter()
            output = self._call(spec, nid, ctx, kwargs)
            seconds = time.perf_counter() - t0
            cache.put(keys[nid], output, spec.type)
            values[nid] = output
            result.executed.append(nid)
            result.timings[nid] = seconds
            self._emit(ev.NodeFinished(run_id, nid, spec.type, seconds, False,
                                       output if spec.output_node else None), on_event)
            for src, _ in nodes[nid].inputs.values():
                pending_uses[src] -= 1
                if pending_uses[src] == 0 and src not in targets:
                    values.pop(src, None)
        # Nodes not touched are up to date too: something they feed was served from cache.
        result.cached = [nid for nid in plan.needed if nid not in to_run]
        for nid in plan.targets:
            if nid in values:
                result.outputs[nid] = values[nid]
        result.skipped = dict(plan.skipped)
        result.seconds = time.perf_counter() - started
        self._emit(ev.RunFinished(run_id, result), on_event)
        return result

    def _context(self, run_id: int, nid: str, node_type: str, workflow: Workflow,
                 on_event: ev.Listener | None) -> NodeContext:
        def emit_progress(step: int, total: int, preview: Any) -> None:
            self._emit(ev.NodeProgress(run_id, nid, step, total, preview), on_event)

        def emit_warning(message: str) -> None:
            if not self._listeners and on_event is None:   # nobody listens: a Python warning
                warnings.warn(f"node {nid} ({node_type}): {message}", stacklevel=3)
            self._emit(ev.NodeWarning(run_id, nid, node_type, message), on_event)

        return NodeContext(
            node_id=nid, node_type=node_type, workflow=workflow, output_dir=self.output_dir,
            model_paths=self.model_paths, settings=self.settings, _device=self.device,
            _resolve_device=lambda _name: self.resolved_device(), _cancel=self._cancel,
            _emit_progress=emit_progress, title=workflow.nodes[nid].title, shared=self._shared,
            registry=self.registry, _emit_warning=emit_warning)

    @staticmethod
    def _call(spec: Any, nid: str, ctx: NodeContext, kwargs: dict[str, Any]) -> Any:
        token = running(ctx)
        try:
            output = spec.run(ctx, **kwargs)
        except Cancelled as exc:
            raise Cancelled("run cancelled", node_id=exc.node_id or nid, node_type=spec.type) from None
        except NodeError as exc:
            raise NodeExecutionError(str(exc), node_id=nid, node_type=spec.type, field=exc.field,
                                     original=exc) from exc
        except WorkflowError:
            raise
        except MemoryError as exc:
            raise NodeExecutionError("ran out of memory; try a smaller size or batch", node_id=nid,
                                     node_type=spec.type, original=exc) from exc
        except Exception as exc:
            message = first_line(exc)
            if "out of memory" in message.lower():
                message = f"ran out of memory ({message}); try a smaller size or batch"
            elif message != type(exc).__name__:   # an empty message says the class once
                message = f"{type(exc).__name__}: {message}"
            raise NodeExecutionError(message, node_id=nid, node_type=spec.type, original=exc) from exc
        finally:
            finished(token)
        if spec.outputs:
            if not isinstance(output, dict):
                raise NodeExecutionError(f"returned {type(output).__name__}, expected a dict of outputs "
                                         "(a bug in the node pack)", node_id=nid, node_type=spec.type)
            missing = [o.name for o in spec.outputs if o.name not in output]
            if missing:
                raise NodeExecutionError(f"returned no value for output {', '.join(missing)} (a bug in the node pack)",
                                         node_id=nid, node_type=spec.type)
            for port in spec.outputs:
                if not _fits_port(output[port.name], str(port.type)):
                    raise NodeExecutionError(
                        f"returned {type(output[port.name]).__name__} on output {port.name}, expected "
                        f"{port.type} (a bug in the node pack)", node_id=nid, node_type=spec.type, field=port.name)
        return output

    async def run_async(self, workflow: Workflow, outputs: Iterable[str] | None = None,
                        on_event: ev.Listener | None = None) -> RunResult:
        """Run on a worker thread; `on_event` is called on the event loop's thread.

        Cancelling the awaiting task cancels this run only: a run still waiting for the engine
        never starts, and a run of another task goes on.
        """
        import asyncio   # here, not at the top: a CLI run or validate does not pay for it (issue 26)

        loop = asyncio.get_running_loop()

        def forward(event: ev.Event) -> None:
            if on_event is not None:
                loop.call_soon_threadsafe(on_event, event)

        ticket = _Ticket()
        future = loop.run_in_executor(None, lambda: self._run_ticket(ticket, workflow, outputs, forward))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            self._cancel_ticket(ticket)
            try:
                await future
            except WorkflowError:
                pass
            raise

    def _run_ticket(self, ticket: "_Ticket", workflow: Workflow, outputs: Iterable[str] | None,
                    on_event: ev.Listener) -> RunResult:
        with self._run_lock:
            with self._ticket_lock:
                if ticket.cancelled:
                    raise Cancelled("run cancelled before it started")
                self._current_ticket = ticket
            try:
                return self._run_holding_lock(workflow, outputs, on_event)
            finally:
                with self._ticket_lock:
                    self._current_ticket = None

    def _cancel_ticket(self, ticket: "_Ticket") -> None:
        with self._ticket_lock:
            ticket.cancelled = True
            if self._current_ticket is ticket:
                self._cancel.set()


class _Ticket:
    """One run_async call, so that cancelling its task cancels that run and no other."""

    cancelled = False
