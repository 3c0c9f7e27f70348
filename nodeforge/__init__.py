"""NodeForge: a node-graph studio for Stable Diffusion.

The public Python API (README.md, "The Python API"; docs/architecture.md) is re-exported here. Nothing imported at this level
pulls in Qt or torch, so scripts and `nodeforge validate` start fast.
"""
from nodeforge.core.engine import Engine, RunResult
from nodeforge.core.errors import (
    Cancelled,
    NodeExecutionError,
    Problem,
    ValidationError,
    WorkflowError,
    WorkflowFileError,
)
from nodeforge.core.workflow import Workflow, load_workflow, save_workflow

__all__ = [
    "Cancelled",
    "Engine",
    "NodeExecutionError",
    "Problem",
    "RunResult",
    "ValidationError",
    "Workflow",
    "WorkflowError",
    "WorkflowFileError",
    "load_workflow",
    "save_workflow",
]
# The one place the version is written: pyproject.toml, `nodeforge --version`, the About box and
# the bundle all read it. Bump it with a CHANGELOG.md entry.
__version__ = "0.1.0"
