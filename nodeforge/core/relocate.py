"""Moving a workflow file: relative file params (an image beside the workflow) follow the move.

A relative path in a file param is tried beside the workflow file first (see ModelPaths.resolve),
so saving the workflow elsewhere must rewrite each such path, or the copy no longer finds it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from nodeforge.core.registry import Registry
from nodeforge.core.workflow import Workflow


@dataclass
class Relocation:
    """What saving a workflow in another folder changes: (node id, param, old, new) for each path
    that follows the move, and (node id, param, value) for each relative path that cannot."""
    changes: list[tuple[str, str, str, str]] = field(default_factory=list)
    lost: list[tuple[str, str, str]] = field(default_factory=list)


def relocate(workflow: Workflow, registry: Registry, new_folder: Path) -> Relocation:
    """The file params of `workflow` (whose `source` is its current file) as they must read once it
    is saved into `new_folder`: each relative path found beside the current file. Absolute paths,
    and names found elsewhere (a model in the models folder), stay."""
    result = Relocation()
    old = workflow.source.parent if workflow.source is not None else Path.cwd()
    if _same_folder(old, Path(new_folder)):
        return result
    for nid, node in workflow.nodes.items():
        spec = registry.get(node.type)
        if spec is None:
            continue
        for param in spec.params:
            value = node.params.get(param.name)
            if param.file is None or not isinstance(value, str) or not value or Path(value).expanduser().is_absolute():
                continue
            found = old / value
            if not found.exists():   # a bare name is a model's; a path found nowhere is lost already
                if _has_folder(value) and not (Path(new_folder) / value).exists():
                    result.lost.append((nid, param.name, value))
                continue
            result.changes.append((nid, param.name, value, _path_from(Path(new_folder), found)))
    return result


def _has_folder(value: str) -> bool:
    return "/" in value or os.sep in value


def _path_from(folder: Path, target: Path) -> str:
    """`target` relative to `folder` where it shares a drive with it, else absolute; with '/'."""
    try:
        return Path(os.path.relpath(target.resolve(), folder.resolve())).as_posix()
    except ValueError:   # another drive (Windows)
        return target.resolve().as_posix()


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
