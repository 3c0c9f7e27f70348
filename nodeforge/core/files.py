"""Writing files so that a crash, a kill or a full disk never leaves a half-written file.

Every file NodeForge writes goes through here: the bytes go to a hidden temporary file in the
target folder, are flushed to disk, and only then does the file appear under its final name
(a rename, or a hard link for names that must not replace an existing file). A failure at any
point removes the temporary file, so the final name either holds the whole file or nothing.
The temporary file is in the same folder because a rename is atomic only within one filesystem.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable

Writer = Callable[[BinaryIO], None]


def _write_temp(folder: Path, name: str, write: Writer) -> Path:
    """Write into a new temporary file in `folder` and fsync it; remove it if anything fails."""
    # os.open with 0o666 (not mkstemp's 0o600) so the file gets the user's usual permissions.
    while True:
        tmp = folder / f".{name}.{os.urandom(6).hex()}.part"
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        _remove(tmp)
        raise
    return tmp


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _sync_folder(folder: Path) -> None:
    """Make the new directory entry durable too (best effort: not every OS opens folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Writer) -> Path:
    """Write `path` through `write(handle)`, replacing any file there only once it is complete.

    One behaviour for every caller: a symlink is written through (its target is replaced, the
    link stays a link, even a dangling one), an existing file keeps its permission bits, and a
    new one gets the usual 0666 less the umask. Returns the path actually written.
    """
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    try:
        mode: int | None = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mode = None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_temp(path.parent, path.name, write)
    try:
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    _sync_folder(path.parent)
    return path


def refuse_read_only(path: str | os.PathLike[str]) -> None:
    """PermissionError naming `path` when it is a file the user made read-only (or may not write).

    `atomic_write` replaces a file by a rename, which only the folder's permission governs, and
    keeps its mode: a read-only workflow or export would be overwritten and stay read-only, so
    nobody would notice. The user's documents call this first.
    """
    try:
        mode = os.stat(path).st_mode          # through a symlink, as the write goes
    except OSError:
        return
    if stat.S_ISREG(mode) and (not mode & 0o222 or not os.access(path, os.W_OK)):
        raise PermissionError(errno.EACCES, "the file is read-only; save under another name, or make it "
                              "writable first", str(path))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """`atomic_write` for bytes already in memory."""
    return atomic_write(path, lambda handle: handle.write(data))


def output_paths(value: Any) -> list[str]:
    """The file paths in a node's output value (SaveImage: its PNGs), in order: strings and
    os.PathLike objects whose name has a suffix, found through dicts, lists and tuples."""
    if isinstance(value, (str, os.PathLike)):
        return [str(value)] if Path(value).suffix else []
    if isinstance(value, dict):
        return [p for v in value.values() for p in output_paths(v)]
    if isinstance(value, (list, tuple)):
        return [p for v in value for p in output_paths(v)]
    return []


def write_new_file(candidates: Iterable[Path], write: Writer) -> Path:
    """Write a complete file under the first name in `candidates` that is still free.

    The name is taken atomically when the finished file appears (a hard link fails if another
    writer took the name meanwhile; then the next candidate is tried), so two processes saving
    at once never overwrite each other and no reader ever sees a partial file under the name.
    All candidates must be in one folder.
    """
    names = iter(candidates)
    first = next(names)
    first.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_temp(first.parent, first.name, write)
    try:
        for path in _chain(first, names):
            if _claim(tmp, path):
                _sync_folder(path.parent)
                return path
        raise FileExistsError(f"{first.parent}: no free file name left")
    finally:
        _remove(tmp)


def _chain(first: Path, rest: Iterable[Path]) -> Iterable[Path]:
    yield first
    yield from rest


def _claim(tmp: Path, path: Path) -> bool:
    """Give the finished temporary file the name `path` unless the name is taken."""
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError:
        # A filesystem without hard links (FAT, some network shares): reserve the name
        # exclusively, then rename the finished file over the empty reservation.
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            return False
        os.replace(tmp, path)
        return True
