"""Small thread-safe LRU caches: open slide handles (by count) and rendered views (by bytes)."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRUCache(Generic[K, V]):
    """Least-recently-used cache bounded by item count and/or total size (``sizeof`` per value)."""

    def __init__(
        self,
        max_items: int | None = None,
        max_bytes: int | None = None,
        sizeof: Callable[[V], int] | None = None,
    ) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._sizeof = sizeof or (lambda _v: 0)
        self._data: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: K) -> V | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key: K, value: V) -> V:
        size = self._sizeof(value)
        if self.max_bytes is not None and size > self.max_bytes:
            return value  # larger than the whole cache: do not keep it
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._data[key] = (value, size)
            self._bytes += size
            while self._data and (
                (self.max_items is not None and len(self._data) > self.max_items)
                or (self.max_bytes is not None and self._bytes > self.max_bytes)
            ):
                _, (_, s) = self._data.popitem(last=False)
                self._bytes -= s
        return value

    def get_or_create(self, key: K, factory: Callable[[], V]) -> V:
        value = self.get(key)
        if value is None:
            value = factory()  # outside the lock: opening a slide may take a while
            with self._lock:
                existing = self._data.get(key)
            if existing is not None:
                return existing[0]
            self.put(key, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._data)

    @property
    def nbytes(self) -> int:
        return self._bytes


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


HANDLE_CACHE_SIZE = _env_int("SLIDESCOUT_SLIDE_HANDLES", 16)
VIEW_CACHE_BYTES = _env_int("SLIDESCOUT_VIEW_CACHE_MB", 128) * 1024 * 1024
