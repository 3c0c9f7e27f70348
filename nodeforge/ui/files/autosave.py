"""Autosave and crash recovery: one file per open window, removed on a clean exit.

Files are named after the process id, so a second NodeForge running at the same time does not
offer to "recover" a graph another live window is still editing.
"""
from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from nodeforge.core.models import user_data_dir
from nodeforge.core.files import atomic_write_bytes
from nodeforge.core.workflow import Workflow, load_workflow


def autosave_dir() -> Path:
    return user_data_dir() / "autosave"


@dataclass
class Recoverable:
    path: Path
    source: str | None      # the file the graph was opened from, if any
    mtime: float


class Autosaver:
    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or autosave_dir()
        self.path = self.folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
        self._last_text: str | None = None

    def save(self, workflow: Workflow) -> bool:
        """Write the graph if it changed since the last autosave; True when written, OSError when
        it cannot be."""
        data = workflow.to_json()
        data["autosave"] = {"source": str(workflow.source) if workflow.source else None}
        text = json.dumps(data, indent=1, ensure_ascii=False)
        if text == self._last_text:
            return False
        # A failure (full disk, a folder that cannot be made) raises: the document shows it and
        # retries, where returning False here read as "nothing changed" and hid it.
        atomic_write_bytes(self.path, text.encode("utf-8"))
        self._last_text = text
        return True

    def discard(self) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass
        self._last_text = None


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        import psutil

        return psutil.pid_exists(pid)
    except ImportError:  # pragma: no cover
        return False


def find_recoverable(folder: Path | None = None) -> list[Recoverable]:
    """Autosaves left by windows that did not close cleanly (their process is gone)."""
    folder = folder or autosave_dir()
    found = []
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.json")):
        try:
            pid = int(path.name.split("-", 1)[0])
        except ValueError:
            continue
        if _pid_alive(pid):
            continue
        source = None
        try:
            source = (json.loads(path.read_text(encoding="utf-8")).get("autosave") or {}).get("source")
        except (OSError, ValueError, AttributeError):
            pass
        found.append(Recoverable(path, source, path.stat().st_mtime))
    return sorted(found, key=lambda r: -r.mtime)


def load_recoverable(item: Recoverable) -> Workflow:
    wf = load_workflow(item.path)
    wf.extra.pop("autosave", None)
    wf.source = Path(item.source) if item.source else None
    return wf
