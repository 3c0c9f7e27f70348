"""The output cache: node outputs by content key, least recently used evicted over a byte budget.

A key is a hash over the node type, its params, the keys of its inputs and the identity of any
file it reads, so equal keys mean equal results. Sizes are estimated without importing torch:
anything with `nbytes`, torch tensors (by duck typing), modules (their parameters and buffers),
objects that say their size through `nodeforge_nbytes()`, and containers of those.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterable


def make_key(node_type: str, params: dict[str, Any], input_keys: Iterable[tuple[str, str, str]],
             extra: Any = None) -> str:
    """A stable content hash. `input_keys` holds (input name, source key, output name)."""
    payload = json.dumps([node_type, params, sorted(input_keys), extra], sort_keys=True,
                         default=repr, separators=(",", ":"))
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=16).hexdigest()


def estimate_nbytes(value: Any, _seen: set[int] | None = None, _depth: int = 0) -> int:
    """Bytes a cached value holds in memory (tensors, arrays, models); small objects count as 0."""
    if value is None or isinstance(value, (bool, int, float)) or _depth > 6:
        return 0
    seen = _seen if _seen is not None else set()
    if id(value) in seen:
        return 0
    seen.add(id(value))
    custom = getattr(value, "nodeforge_nbytes", None)
    if callable(custom):
        return int(custom())
    if isinstance(value, (str, bytes, bytearray)):
        return len(value)
    # torch.Tensor: count its storage once however many views share it.
    if hasattr(value, "untyped_storage") and hasattr(value, "element_size"):
        storage = value.untyped_storage()
        key = ("storage", storage.data_ptr())
        if key in seen:  # type: ignore[comparison-overlap]
            return 0
        seen.add(key)  # type: ignore[arg-type]
        return int(storage.nbytes())
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if hasattr(value, "parameters") and hasattr(value, "buffers") and callable(value.parameters):
        return sum(estimate_nbytes(t, seen, _depth + 1) for t in value.parameters()) + \
            sum(estimate_nbytes(t, seen, _depth + 1) for t in value.buffers())
    if hasattr(value, "size") and hasattr(value, "mode") and hasattr(value, "tobytes"):  # PIL image
        w, h = value.size
        return w * h * len(value.getbands())
    if isinstance(value, dict):
        return sum(estimate_nbytes(v, seen, _depth + 1) for v in value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return sum(estimate_nbytes(v, seen, _depth + 1) for v in value)
    inner = getattr(value, "__dict__", None)
    if isinstance(inner, dict):
        return sum(estimate_nbytes(v, seen, _depth + 1) for v in inner.values())
    return 0


def default_budget() -> int:
    """40% of physical memory: room for a few models and their tensors without swapping."""
    total = 0
    try:
        import psutil

        total = psutil.virtual_memory().total
    except Exception:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            total = 8 * 1024 ** 3
    return int(total * 0.4)


@dataclass
class CacheEntry:
    outputs: Any
    nbytes: int
    node_type: str


@dataclass(frozen=True)
class CacheStats:
    entries: int
    nbytes: int
    budget: int
    hits: int
    misses: int
    evictions: int


class OutputCache:
    """Thread-safe LRU of node outputs bounded by `budget` bytes (None: the default budget)."""

    def __init__(self, budget: int | None = None) -> None:
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._lock = threading.RLock()
        self.budget = default_budget() if budget is None else int(budget)
        self.nbytes = 0
        self.hits = self.misses = self.evictions = 0
        self._pins: dict[str, int] = {}   # key -> how many runs hold it (never evicted meanwhile)

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Any:
        """The outputs under `key` (marking them recently used), or raise KeyError."""
        with self._lock:
            try:
                entry = self._entries[key]
            except KeyError:
                self.misses += 1
                raise
            self._entries.move_to_end(key)
            self.hits += 1
            return entry.outputs

    def lookup(self, key: str) -> tuple[bool, Any]:
        """(True, outputs) marking them recently used, or (False, None): one step, no race."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return False, None
            self._entries.move_to_end(key)
            self.hits += 1
            return True, entry.outputs

    def pin(self, keys: Iterable[str]) -> None:
        """Keep these entries until `unpin`, even over the budget (a run is about to use them)."""
        with self._lock:
            for key in keys:
                self._pins[key] = self._pins.get(key, 0) + 1

    def unpin(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                count = self._pins.get(key, 0) - 1
                if count > 0:
                    self._pins[key] = count
                else:
                    self._pins.pop(key, None)
            # As after a put, the newest entry stays even when it alone is over the budget.
            self._evict(keep=next(reversed(self._entries), None))

    def put(self, key: str, outputs: Any, node_type: str = "") -> None:
        size = estimate_nbytes(outputs)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.nbytes -= old.nbytes
            self._entries[key] = CacheEntry(outputs, size, node_type)
            self.nbytes += size
            self._evict(keep=key)

    def set_budget(self, budget: int) -> None:
        with self._lock:
            self.budget = int(budget)
            self._evict(keep=None)

    def _evict(self, keep: str | None) -> None:
        """Drop least recently used entries until under budget, sparing `keep` and pinned ones."""
        if self.nbytes <= self.budget:
            return
        for key in list(self._entries):
            if self.nbytes <= self.budget:
                break
            if key == keep or key in self._pins:
                continue
            entry = self._entries.pop(key)
            self.nbytes -= entry.nbytes
            self.evictions += 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.nbytes = 0

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(len(self._entries), self.nbytes, self.budget, self.hits, self.misses, self.evictions)

