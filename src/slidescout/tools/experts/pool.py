"""One model instance per (checkpoint, device), loaded lazily and once, shared by every caller.

:func:`model_pool` is the process-wide pool. ``get(card, device)`` loads on first use under a
per-entry lock, so concurrent samples asking for the same model wait for one load instead of
loading it twice; a failed load is remembered (the same error is raised again without retrying
until :meth:`ModelPool.clear`). :func:`device_lock` serialises forward passes on one device, so
one shared instance is never run by two threads at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slidescout.errors import ConfigError
from slidescout.tools.experts.cards import Card
from slidescout.tools.experts.loading import Runner, load_runner


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    runner: Runner | None = None
    error: ConfigError | None = None
    load_s: float = 0.0


class ModelPool:
    """Loaded runners keyed by the card's identity (file, content, weights mtime) and device."""

    def __init__(self, loader: Callable[..., Runner] = load_runner) -> None:
        self._loader = loader
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], _Entry] = {}
        self.loads = 0  # how many times a checkpoint was actually loaded (tests, diagnostics)

    def get(self, card: Card, device: str, **kw: Any) -> Runner:
        key = (card.key(), device)
        with self._lock:
            entry = self._entries.setdefault(key, _Entry())
        if entry.runner is not None:
            return entry.runner
        with entry.lock:
            if entry.runner is not None:
                return entry.runner
            if entry.error is not None:
                raise entry.error
            t0 = time.perf_counter()
            try:
                runner = self._loader(card, device, **kw)
            except ConfigError as exc:
                entry.error = exc
                raise
            entry.load_s = time.perf_counter() - t0
            self.loads += 1
            entry.runner = runner
            return runner

    def load_seconds(self, card: Card, device: str) -> float:
        entry = self._entries.get((card.key(), device))
        return entry.load_s if entry else 0.0

    def loaded(self) -> list[tuple[str, str]]:
        """``(model name, device)`` of every loaded instance."""
        return [(e.runner.card.name, dev) for (_, dev), e in self._entries.items() if e.runner]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_POOL = ModelPool()
_DEVICE_LOCKS: dict[str, threading.Lock] = {}
_DEVICE_LOCKS_GUARD = threading.Lock()


def model_pool() -> ModelPool:
    """The process-wide pool."""
    return _POOL


def device_lock(device: str) -> threading.Lock:
    """The lock that one forward pass on ``device`` holds."""
    with _DEVICE_LOCKS_GUARD:
        return _DEVICE_LOCKS.setdefault(device, threading.Lock())


__all__ = ["ModelPool", "device_lock", "model_pool"]
