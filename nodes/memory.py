"""Out-of-memory as a user error: the advice names what to shrink, and the app lives on."""
from __future__ import annotations

import contextlib
from typing import Iterator

from nodeforge.core.errors import NodeError


@contextlib.contextmanager
def memory_advice(what: str = "image size or batch size") -> Iterator[None]:
    try:
        yield
    except (MemoryError, RuntimeError) as exc:
        if not isinstance(exc, MemoryError) and "out of memory" not in str(exc).lower():
            raise
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise NodeError(f"ran out of memory; try a smaller {what}") from exc
