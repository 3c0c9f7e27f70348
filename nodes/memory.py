"""Out-of-memory as a user error: the advice names what to shrink, and the app lives on."""
from __future__ import annotations

import contextlib
from typing import Iterator

from nodeforge.core.errors import NodeError


# CUDA/MPS say "out of memory"; torch's CPU allocator says "DefaultCPUAllocator: can't allocate memory"
# (or "not enough memory"): the same user error, so the same advice.
_OOM_PHRASES = ("out of memory", "can't allocate memory", "not enough memory", "cannot allocate memory")


def is_out_of_memory(message: str) -> bool:
    text = message.lower()
    return any(phrase in text for phrase in _OOM_PHRASES)


@contextlib.contextmanager
def memory_advice(what: str = "image size or batch size") -> Iterator[None]:
    try:
        yield
    except (MemoryError, RuntimeError) as exc:
        if not isinstance(exc, MemoryError) and not is_out_of_memory(str(exc)):
            raise
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise NodeError(f"ran out of memory; try a smaller {what}") from exc
