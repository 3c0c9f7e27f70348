"""The output cache: node outputs by content key, least recently used evicted over a byte budget.

A key is a hash over the node type, its params, the keys of its inputs and the identity of any
file it reads, so equal keys mean equal results. Memory is counted without importing torch, as a
footprint: each piece an entry holds (a tensor's storage, a module, an array) under its identity,
so a piece several entries hold (a model and its LoRA'd copy, a node that passes its input on)
counts once, and stays counted while any entry holds it. Pieces are found by duck typing: torch
tensors, modules (their parameters and buffers), anything with `nbytes`, PIL images, objects that
say what they hold through `nodeforge_holds()` or their size through `nodeforge_nbytes()`, and
containers of those.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Hashable, Iterable

# What one value holds in memory: each piece's identity -> its bytes.
Footprint = dict[Hashable, int]


def make_key(node_type: str, params: dict[str, Any], input_keys: Iterable[tuple[str, str, str]],
             extra: Any = None) -> str:
    """A stable content hash. `input_keys` holds (input name, source key, output name)."""
    payload = json.dumps([node_type, params, sorted(input_keys), extra], sort_keys=True,
                         default=repr, separators=(",", ":"))
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=16).hexdigest()


def estimate_nbytes(value: Any) -> int:
    """Bytes a value holds in memory (tensors, arrays, models); small objects (numbers, text) count as 0."""
    return sum(footprint(value).values())


def footprint(value: Any) -> Footprint:
    """The pieces of memory a value holds, each under its identity (see the module's docstring)."""
    found: Footprint = {}
    _walk(value, found, {}, 0)
    return found


def _walk(value: Any, found: Footprint, seen: dict[int, Any], depth: int) -> None:
    if value is None or isinstance(value, (bool, int, float, str)) or depth > 8 or id(value) in seen:
        return
    seen[id(value)] = value   # held until the walk ends, so no id is reused by a passing object
    holds = getattr(value, "nodeforge_holds", None)
    if callable(holds):        # a pack's wrapper: its modules and tensors, not its configs or tokenizers
        for part in holds():
            _walk(part, found, seen, depth + 1)
        return
    custom = getattr(value, "nodeforge_nbytes", None)
    if callable(custom):
        found[("object", id(value))] = int(custom())
    elif isinstance(value, (bytes, bytearray)):
        found[("object", id(value))] = len(value)
    elif hasattr(value, "untyped_storage") and hasattr(value, "element_size"):   # a torch tensor
        _add_storage(value, found)
    elif isinstance(getattr(value, "nbytes", None), int):                      # a numpy array
        found[("object", id(value))] = value.nbytes
    elif hasattr(value, "parameters") and hasattr(value, "buffers") and callable(value.parameters):
        # A module by its identity, not its tensors': offloading moves the weights to new storage
        # (device and back) while the module stays the one its wrappers share.
        tensors: Footprint = {}
        for tensor in (*value.parameters(), *value.buffers()):
            _add_storage(tensor, tensors)
        found[("module", id(value))] = sum(tensors.values())
    elif hasattr(value, "size") and hasattr(value, "mode") and hasattr(value, "tobytes"):  # PIL image
        w, h = value.size
        found[("object", id(value))] = w * h * len(value.getbands())
    else:
        inner = value.values() if isinstance(value, dict) else value if \
            isinstance(value, (list, tuple, set, frozenset)) else getattr(value, "__dict__", {}).values()
        for part in list(inner):
            _walk(part, found, seen, depth + 1)


def _add_storage(tensor: Any, found: Footprint) -> None:
    """A tensor's storage, once however many views share it (meta tensors hold no memory)."""
    device = getattr(tensor, "device", None)
    if getattr(device, "type", None) == "meta":
        return
    storage = tensor.untyped_storage()
    found[("storage", str(device), storage.data_ptr())] = int(storage.nbytes())


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
    nbytes: int                       # all it holds, shared with other entries or not
    node_type: str
    footprint: Footprint = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class CacheStats:
    entries: int
    nbytes: int
    budget: int
    hits: int
    misses: int
    evictions: int


class OutputCache:
    """Thread-safe LRU of node outputs bounded by `budget` bytes (None: the default budget).

    `nbytes` counts each piece of memory once, however many entries hold it; evicting an entry frees
    only the pieces no other entry holds (a model's weights stay counted while a copy of it is cached).
    """

    def __init__(self, budget: int | None = None) -> None:
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._lock = threading.RLock()
        self.budget = default_budget() if budget is None else int(budget)
        self.nbytes = 0
        self.hits = self.misses = self.evictions = 0
        self._held: dict[Hashable, list[int]] = {}   # piece -> [entries holding it, its bytes]
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
        pieces = footprint(outputs)
        with self._lock:
            old = self._entries.pop(key, None)
            self._hold(pieces)
            if old is not None:
                self._release(old.footprint)
            self._entries[key] = CacheEntry(outputs, sum(pieces.values()), node_type, pieces)
            self._evict(keep=key)

    def _hold(self, pieces: Footprint) -> None:
        for piece, size in pieces.items():
            held = self._held.get(piece)
            if held is None:
                self._held[piece] = [1, size]
                self.nbytes += size
            else:
                held[0] += 1

    def _release(self, pieces: Footprint) -> None:
        for piece in pieces:
            held = self._held[piece]
            held[0] -= 1
            if held[0] == 0:
                del self._held[piece]
                self.nbytes -= held[1]

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
            self._release(self._entries.pop(key).footprint)
            self.evictions += 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._held.clear()
            self.nbytes = 0

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(len(self._entries), self.nbytes, self.budget, self.hits, self.misses, self.evictions)

