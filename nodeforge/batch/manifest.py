"""The batch manifest: a JSONL file, one line per finished job, appended as jobs finish.

The first line identifies the batch (a fingerprint of the graph and every job's values), so a
resume into the wrong folder is refused. Each later line is one record: `done` (outputs,
seconds), `failed` (error), or `retry` (a worker died; the job runs again). A line is written
with a single append call and fsynced; a crash mid-line leaves a torn last line, which reading
ignores and a resume cuts off before appending. A job counts as finished only when its line is
there and its files exist, and files are written before the line, so a crash can cost at most
the job in flight, never a finished image.

The manifest is a file anyone can edit, so reading it trusts nothing: a line that is not a
well-formed record of a job in the plan is treated as not there (its job runs again), an output
must be a complete file inside the batch folder, and a manifest that is not a regular file is a
one-line error.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from nodeforge.batch.spec import BatchSpecError
from nodeforge.core.errors import WorkflowFileError
from nodeforge.core.workflow import read_regular_file

MANIFEST_NAME = "manifest.jsonl"
MANIFEST_VERSION = 1
DONE, FAILED, RETRY = "done", "failed", "retry"
MAX_MANIFEST_BYTES = 512 * 1024 * 1024       # 100,000 jobs with retries take well under 100 MB
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"     # the IEND chunk every complete PNG ends with


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every complete, parseable line (a torn or garbled line from a crash is skipped).

    BatchSpecError when the manifest is a folder, a device, a pipe or too large to be one.
    """
    if not os.path.lexists(path):
        return []
    try:
        raw = read_regular_file(path, MAX_MANIFEST_BYTES, "a batch manifest")
    except WorkflowFileError as exc:
        raise BatchSpecError(f"{exc}; choose another --out") from None
    records = []
    for line in raw.split(b"\n"):
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):      # garbled, torn, or nested to exhaust the stack
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


class Manifest:
    """Appends job records to `<out>/manifest.jsonl` and knows which jobs are finished."""

    def __init__(self, path: Path, records: list[dict[str, Any]], total: int | None = None) -> None:
        self.path = path
        self.records = records
        self.total = total         # the plan's jobs are 1..total; other numbers are ignored

    @classmethod
    def open(cls, out_dir: Path, fingerprint: str, total: int, *, resume: bool) -> "Manifest":
        """Start a new manifest, or (with `resume`) continue the one of the same batch."""
        path = Path(out_dir) / MANIFEST_NAME
        records = read_records(path)
        if records and not resume:
            raise BatchSpecError(f"{out_dir} already holds a batch ({MANIFEST_NAME}); add --resume to "
                                 "continue it or choose another --out")
        if records:
            header = records[0]
            if header.get("batch") != fingerprint:
                raise BatchSpecError(f"{path} belongs to another batch (a different workflow or values); "
                                     "resume with the same batch, or choose another --out")
            _cut_torn_tail(path)
            return cls(path, records, total)
        manifest = cls(path, [], total)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()   # only a torn header (nothing was recorded): start again
        manifest.append({"manifest": MANIFEST_VERSION, "batch": fingerprint, "jobs": total,
                         "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        return manifest

    def append(self, record: dict[str, Any]) -> None:
        """Write one line with one append call and fsync it before returning."""
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)
        try:
            written = os.write(fd, line)
            while written < len(line):    # a short write to a slow disk: finish the same line
                written += os.write(fd, line[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
        self.records.append(record)

    def finished(self) -> dict[int, dict[str, Any]]:
        """Jobs whose last record is `done` and whose files are all still there, whole, by number."""
        return {number: record for number, record in self.latest().items() if record["status"] == DONE}

    def latest(self) -> dict[int, dict[str, Any]]:
        """The last done-or-failed record of every job of the plan (for the contact sheet and the
        summary); a `done` record whose outputs are not all whole files in the folder is left out."""
        last: dict[int, dict[str, Any]] = {}
        for record in self.records[1:]:
            number = record.get("job")
            if type(number) is not int or not isinstance(record.get("status"), str) \
                    or record["status"] not in (DONE, FAILED):
                continue
            if self.total is None or 1 <= number <= self.total:
                last[number] = record
        return {number: record for number, record in last.items()
                if record["status"] == FAILED or _outputs_whole(self.path.parent, record.get("outputs", []))}


def _outputs_whole(base: Path, outputs: Any) -> bool:
    """Every output a relative path to a regular file inside `base`; a PNG complete to its IEND."""
    if not isinstance(outputs, list) or not all(isinstance(p, str) and p for p in outputs):
        return False
    root = base.resolve()
    for name in outputs:
        path = base / name
        try:
            if Path(name).is_absolute() or not path.resolve().is_relative_to(root) or not path.is_file():
                return False
            if name.lower().endswith(".png") and not _png_complete(path):
                return False
        except (OSError, ValueError, RuntimeError):     # a NUL in the name, a symlink loop
            return False
    return True


def _png_complete(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(8)
        size = os.fstat(handle.fileno()).st_size
        if head != _PNG_SIGNATURE or size < 8 + len(_PNG_END):
            return False
        handle.seek(size - len(_PNG_END))
        return handle.read() == _PNG_END


def _cut_torn_tail(path: Path) -> None:
    """Drop a partial last line so the next append starts on a line of its own."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        with open(path, "r+b") as handle:
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
