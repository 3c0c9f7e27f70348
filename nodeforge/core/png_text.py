"""PNG text chunks: the names NodeForge writes its metadata under, and a reader that needs no Pillow.

A PNG saved by NodeForge carries the workflow JSON in its `workflow` text chunk and A1111-style
generation parameters in `parameters` (ComfyUI writes `workflow` and `prompt`). The writers
(`nodes/images.py` through Pillow, the editor's Batch dialog through Qt) take the chunk names from
here; `read_png_text` reads them back for `load_workflow` and the importers without decoding a
pixel, and caps what compressed text may inflate to. Each PNG also records the NodeForge, torch and
diffusers versions that made it (`version_chunks`), since a new version of any of them may draw
another picture from the same seed; `version_note` says so when an image from another version
is opened.
"""
from __future__ import annotations

import struct
import zlib
from importlib import metadata
from pathlib import Path

from nodeforge.core.errors import WorkflowFileError, short_repr

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_WORKFLOW_KEY = "workflow"          # text chunk holding the workflow JSON
PNG_PARAMETERS_KEY = "parameters"      # text chunk with A1111-style generation parameters
# The programs whose versions decide the pixels, and the text chunk each one's version is kept in.
PNG_VERSION_KEYS = {"NodeForge": "nodeforge-version", "torch": "torch-version", "diffusers": "diffusers-version"}
# Decompressed PNG text: a 1 MB zTXt chunk can inflate to gigabytes. A workflow of 10,000 nodes
# is a few MB, so these caps refuse only hostile files (Pillow's own caps are 1 MB and 64 MB).
MAX_PNG_TEXT_CHUNK_BYTES = 16 * 1024 * 1024
MAX_PNG_TEXT_TOTAL_BYTES = 64 * 1024 * 1024


def read_png_text(data: bytes, source: Path | None = None) -> dict[str, str]:
    """The tEXt/zTXt/iTXt chunks of a PNG, without decoding pixels (and without Pillow).

    Compressed text is inflated with a cap (MAX_PNG_TEXT_CHUNK_BYTES a chunk, MAX_PNG_TEXT_TOTAL_BYTES
    in all): a zTXt bomb is refused with a WorkflowFileError after at most that much work, as is a
    file that ends inside a text chunk (its text would be read cut short).
    """
    out: dict[str, str] = {}
    budget = [MAX_PNG_TEXT_TOTAL_BYTES]
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if len(body) < length and kind in (b"tEXt", b"zTXt", b"iTXt"):
            where, name = f"{source}: " if source else "", body.partition(b"\0")[0].decode("latin-1")
            raise WorkflowFileError(f"{where}the file ends inside the PNG text chunk {short_repr(name)} "
                                    f"({len(body)} of {length} bytes): it is cut short; copy or download it again")
        try:
            if kind == b"tEXt":
                key, _, value = body.partition(b"\0")
                out[key.decode("latin-1")] = _latin1_text(value)
            elif kind == b"zTXt":
                key, _, rest = body.partition(b"\0")
                name = key.decode("latin-1")
                out[name] = _latin1_text(_inflate_text(rest[1:], name, budget, source))
            elif kind == b"iTXt":
                key, _, rest = body.partition(b"\0")
                name = key.decode("latin-1")
                compressed = rest[0]   # rest[1], the method, is always zlib
                _lang, _, rest = rest[2:].partition(b"\0")
                _tkey, _, text = rest.partition(b"\0")
                raw = _inflate_text(text, name, budget, source) if compressed else text
                out[name] = raw.decode("utf-8", errors="replace")   # a stray byte costs one character, not the text
            elif kind == b"IEND":
                break
        except (zlib.error, UnicodeDecodeError, IndexError):
            continue
    return out


def _latin1_text(raw: bytes) -> str:
    """tEXt/zTXt text is Latin-1 by the PNG standard, but some tools write UTF-8 there (a prompt's
    "café" would read "cafÃ©"): text that is valid UTF-8 is read as UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _inflate_text(compressed: bytes, name: str, budget: list[int], source: Path | None) -> bytes:
    limit = min(MAX_PNG_TEXT_CHUNK_BYTES, budget[0])
    inflated = zlib.decompressobj().decompress(compressed, limit + 1)  # stops after limit + 1 bytes
    if len(inflated) > limit:
        where = f"{source}: " if source else ""
        raise WorkflowFileError(f"{where}the PNG text chunk {short_repr(name)} inflates to more than "
                                f"{limit // (1024 * 1024)} MB, the limit for PNG metadata; refusing it "
                                "(the file may be a decompression bomb)")
    budget[0] -= len(inflated)
    return inflated


def running_versions() -> dict[str, str]:
    """The versions of NodeForge, torch and diffusers this process would draw with, read from the
    installed packages' metadata (torch is not imported for it)."""
    from nodeforge import __version__

    versions = {"NodeForge": __version__}
    for package in ("torch", "diffusers"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def version_chunks() -> dict[str, str]:
    """The text chunks every PNG NodeForge saves carries: chunk name -> version."""
    return {PNG_VERSION_KEYS[name]: version for name, version in running_versions().items()}


def version_note(chunks: dict[str, str], source: Path | None = None) -> str | None:
    """One line when a NodeForge PNG was made by other versions than the running ones (None when
    they are the same): the same seed may then draw another picture."""
    recorded = {name: chunks[key] for name, key in PNG_VERSION_KEYS.items() if key in chunks}
    running = running_versions()
    where = f"{source.name}: " if source is not None else ""
    now = ", ".join(f"{name} {version}" for name, version in running.items())
    if not recorded:
        return (f"{where}this image records no versions (an earlier NodeForge saved it); this is "
                f"{now}: the same seed may draw a different picture")
    changed = [name for name in running if recorded.get(name) != running[name]]
    if not changed:
        return None
    then = ", ".join(f"{name} {_shown(recorded.get(name, 'unknown'))}" for name in changed)
    now = ", ".join(f"{name} {running[name]}" for name in changed)
    return f"{where}this image was made with {then}; this is {now}: the same seed may draw a different picture"


def _shown(version: str) -> str:
    """A recorded version as text for one line: printable characters, at most 30 of them."""
    text = "".join(ch for ch in version if ch.isprintable())
    return text if len(text) <= 30 else text[:30] + "..."
