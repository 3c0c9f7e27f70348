"""PNG text chunks: the names NodeForge writes its metadata under, and a reader that needs no Pillow.

A PNG saved by NodeForge carries the workflow JSON in its `workflow` text chunk and A1111-style
generation parameters in `parameters` (ComfyUI writes `workflow` and `prompt`). The writers
(`nodes/images.py` through Pillow, the editor's Batch dialog through Qt) take the chunk names from
here; `read_png_text` reads them back for `load_workflow` and the importers without decoding a
pixel, and caps what compressed text may inflate to.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

from nodeforge.core.errors import WorkflowFileError, short_repr

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_WORKFLOW_KEY = "workflow"          # text chunk holding the workflow JSON
PNG_PARAMETERS_KEY = "parameters"      # text chunk with A1111-style generation parameters
# Decompressed PNG text: a 1 MB zTXt chunk can inflate to gigabytes. A workflow of 10,000 nodes
# is a few MB, so these caps refuse only hostile files (Pillow's own caps are 1 MB and 64 MB).
MAX_PNG_TEXT_CHUNK_BYTES = 16 * 1024 * 1024
MAX_PNG_TEXT_TOTAL_BYTES = 64 * 1024 * 1024


def read_png_text(data: bytes, source: Path | None = None) -> dict[str, str]:
    """The tEXt/zTXt/iTXt chunks of a PNG, without decoding pixels (and without Pillow).

    Compressed text is inflated with a cap (MAX_PNG_TEXT_CHUNK_BYTES a chunk, MAX_PNG_TEXT_TOTAL_BYTES
    in all): a zTXt bomb is refused with a WorkflowFileError after at most that much work.
    """
    out: dict[str, str] = {}
    budget = [MAX_PNG_TEXT_TOTAL_BYTES]
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        try:
            if kind == b"tEXt":
                key, _, value = body.partition(b"\0")
                out[key.decode("latin-1")] = value.decode("latin-1")
            elif kind == b"zTXt":
                key, _, rest = body.partition(b"\0")
                name = key.decode("latin-1")
                out[name] = _inflate_text(rest[1:], name, budget, source).decode("latin-1")
            elif kind == b"iTXt":
                key, _, rest = body.partition(b"\0")
                name = key.decode("latin-1")
                compressed, _method = rest[0], rest[1]
                _lang, _, rest = rest[2:].partition(b"\0")
                _tkey, _, text = rest.partition(b"\0")
                raw = _inflate_text(text, name, budget, source) if compressed else text
                out[name] = raw.decode("utf-8")
            elif kind == b"IEND":
                break
        except (zlib.error, UnicodeDecodeError, IndexError):
            continue
    return out


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
