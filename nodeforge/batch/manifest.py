"""The batch manifest: a JSONL file, one line per finished job, appended as jobs finish.

The first line identifies the batch (a fingerprint of the graph and every job's values), so a
resume into the wrong folder is refused. Each later line is one record: `done` (outputs,
seconds), `failed` (error), or `retry` (a worker died; the job runs again). A line is written
with a single append call and fsynced; a crash mid-line leaves a torn last line, which reading
ignores and a resume cuts off before appending. A job counts as finished only when its line is
there and its files exist, and files are written before the line, so a crash can cost at most
the job in flight, never a finished image.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from nodeforge.batch.spec import BatchSpecError

MANIFEST_NAME = "manifest.jsonl"
MANIFEST_VERSION = 1
DONE, FAILED, RETRY = "done", "failed", "retry"


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every complete, parseable line (a torn or garbled line from a crash is skipped)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    records = []
    for line in raw.split(b"\n"):
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


class Manifest:
    """Appends job records to `<out>/manifest.jsonl` and knows which jobs are finished."""

    def __init__(self, path: Path, records: list[dict[str, Any]]) -> None:
        self.path = path
        self.records = records

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
            return cls(path, records)
        manifest = cls(path, [])
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
        """Jobs whose last record is `done` and whose files are all still there, by number."""
        last: dict[int, dict[str, Any]] = {}
        for record in self.records[1:]:
            if isinstance(record.get("job"), int) and record.get("status") in (DONE, FAILED):
                last[record["job"]] = record
        base = self.path.parent
        return {number: record for number, record in last.items()
                if record["status"] == DONE and all((base / p).is_file() for p in record.get("outputs", []))}

    def latest(self) -> dict[int, dict[str, Any]]:
        """The last done-or-failed record of every job (for the contact sheet and the summary)."""
        last: dict[int, dict[str, Any]] = {}
        for record in self.records[1:]:
            if isinstance(record.get("job"), int) and record.get("status") in (DONE, FAILED):
                last[record["job"]] = record
        return last


def _cut_torn_tail(path: Path) -> None:
    """Drop a partial last line so the next append starts on a line of its own."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        with open(path, "r+b") as handle:
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
