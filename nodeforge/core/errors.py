"""Errors a user can act on. Each names the node, the field and what to do.

Raised where the fact is known and shown once, at the edge (a CLI line, an editor dialog).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a workflow: where it is and what to do about it."""

    message: str
    node_id: str | None = None
    node_type: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.node_id is not None:
            where = f"node {self.node_id}"
            if self.node_type:
                where += f" ({self.node_type})"
            if self.field:
                where += f", {self.field}"
            where += ": "
        return where + self.message


def and_more(problems: list[Problem]) -> str:
    """What a one-line message adds after the first of `problems`: " (and 2 more problems)", or nothing."""
    more = len(problems) - 1
    return f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""


class WorkflowError(Exception):
    """Base of every error a user can cause with a workflow."""

    def __init__(self, message: str, *, node_id: str | None = None, node_type: str | None = None,
                 field: str | None = None) -> None:
        self.problem = Problem(message, node_id, node_type, field)
        super().__init__(str(self.problem))

    @property
    def node_id(self) -> str | None:
        return self.problem.node_id

    @property
    def field(self) -> str | None:
        return self.problem.field


class WorkflowFileError(WorkflowError):
    """The file cannot be read as a workflow (not found, not JSON, not a workflow, too new).

    With `source` the message starts with the file: "wf.json: node 3 (TextEncoder), text: ...".
    """

    def __init__(self, message: str, *, node_id: str | None = None, node_type: str | None = None,
                 field: str | None = None, source: object | None = None) -> None:
        super().__init__(message, node_id=node_id, node_type=node_type, field=field)
        self.source = source
        if source is not None:
            self.args = (f"{source}: {self.problem}",)


class WorkflowSaveError(WorkflowFileError):
    """The workflow cannot be written as standard UTF-8 JSON; nothing was written.

    Raised by `save_workflow` before it touches the disk, for text UTF-8 cannot hold (a lone
    surrogate such as "\\ud800") or a param that is NaN or infinite. `problems` lists each one
    with its node and field. Disk failures stay OSError.
    """

    def __init__(self, problems: list[Problem], *, source: object | None = None) -> None:
        self.problems = list(problems)
        first = self.problems[0]
        super().__init__(first.message + and_more(self.problems), node_id=first.node_id, node_type=first.node_type,
                         field=first.field, source=source)


class ProblemsError(WorkflowError):
    """Problems found all at once: `problems` lists each; the one-line message names the first and
    counts the rest ("node 2 (Add), a: not connected (and 2 more problems)")."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        first = self.problems[0]
        suffix = and_more(self.problems)
        super().__init__(first.message + suffix, node_id=first.node_id, node_type=first.node_type,
                         field=first.field)
        self.args = (str(first) + suffix,)

    def __str__(self) -> str:
        return self.args[0]

    def report(self) -> str:
        """Every problem, one a line."""
        return "\n".join(str(p) for p in self.problems)


class ValidationError(ProblemsError):
    """The graph is not runnable. `problems` lists every problem found, not only the first."""


class NodeExecutionError(WorkflowError):
    """A node raised while running. The cache holds only what finished before it."""

    def __init__(self, message: str, *, node_id: str, node_type: str, field: str | None = None,
                 original: BaseException | None = None) -> None:
        super().__init__(message, node_id=node_id, node_type=node_type, field=field)
        self.original = original


class NodeError(Exception):
    """Raised by a node's own code for a user mistake it detects while running.

    The engine turns it into a NodeExecutionError naming the node; `field` names the input or
    param at fault. Use this instead of a bare exception so the user sees no traceback.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Cancelled(WorkflowError):
    """The run was cancelled. Finished nodes stay cached; the interrupted node is not cached."""


def first_line(exc: BaseException) -> str:
    """An exception's first line, for a one-line message; its class name when it says nothing."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def short_repr(value: object, limit: int = 60) -> str:
    """repr() for messages, cut short: a 5,000-character value must not make a 5,000-character line."""
    try:
        text = repr(value)
    except ValueError:  # an int over Python's 4,300-digit limit has no repr
        return f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"  # type: ignore[attr-defined]
    if len(text) <= limit:
        return text
    return f"{text[:limit // 2]}...{text[-8:]} ({len(text)} characters)"
