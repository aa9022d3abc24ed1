"""Work already done, remembered in one style: every module-level cache is a `Memo` (a thread-safe
map of pure results, optionally bounded, least recently used out first) or a function wrapped by
`memoized`, and `clear_all()` forgets them all (benchmarks time the engine cold with it; tests
start clean). Thread-safe because the app plans, sweeps and searches in worker threads."""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_CLEARS: list[Callable[[], None]] = []  # every cache's clear, for clear_all


class Memo(Generic[K, V]):
    """Values by key. `size`: the most kept, least recently used out first (None: no limit, for
    keys from a small set such as array shapes)."""

    def __init__(self, size: int | None = None) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        _CLEARS.append(self.clear)

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None and self.size is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._trim(key)

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        """The value kept under `key`, made with make() on a miss. make() runs outside the lock, so
        slow makes in two threads do not wait for each other; the first kept wins, so every caller
        shares one object."""
        value = self.get(key)
        if value is not None:
            return value
        value = make()
        with self._lock:
            value = self._items.setdefault(key, value)
            self._trim(key)
            return value

    def _trim(self, used: K) -> None:
        if self.size is not None:
            self._items.move_to_end(used)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


def memoized(maxsize: int | None):
    """functools.lru_cache for a function of hashable arguments, forgotten by clear_all."""

    def wrap(fn):
        cached = functools.lru_cache(maxsize=maxsize)(fn)
        _CLEARS.append(cached.cache_clear)
        return cached

    return wrap


def clear_all() -> None:
    """Forget everything every cache remembers."""
    for clear in list(_CLEARS):
        clear()
