"""Following a sample while it runs, and stopping it: the hooks of a live workspace.

- :class:`ObservedRecorder` wraps any :class:`~slidescout.core.recorder.Recorder` and hands an
  observer each event the moment the agent records it. The loop writes the trace after every
  model call (so a requested region is known before its tool runs), after every step's tool calls
  and once at the end; the observer gets the events that are new since the previous write, and the
  trace as it is now (its ``status`` says when it is over).
- :class:`RunControl` stops a running sample: :meth:`RunControl.stop` cancels the task that runs
  it, and ``eval.sample_run.run_sample`` keeps the trace with status ``stopped``.

``slidescout studio`` and ``slidescout chat`` are built on these; nothing here is specific to them.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, Protocol

from slidescout.core.recorder import Recorder
from slidescout.core.trace import Event, Trace

__all__ = ["ObservedRecorder", "RunControl", "TraceObserver"]

STOP_REASON = "stopped by the user"


class TraceObserver(Protocol):
    """Called with the trace and the events recorded since the previous call.

    It may be called from a worker thread (the loop writes traces off the event loop) while the
    agent waits for it: read what you need from ``trace`` and ``new`` at once, and hand the rest to
    your own loop (``loop.call_soon_threadsafe``). It must not raise."""

    def __call__(self, trace: Trace, new: list[Event]) -> None: ...


class ObservedRecorder:
    """A :class:`Recorder` that passes everything to ``inner`` and tells ``observer`` what is new.

    ``last_trace`` is the trace as last written (the stopped run's trace comes from here)."""

    def __init__(self, inner: Recorder, observer: TraceObserver | None = None) -> None:
        self.inner = inner
        self.observer = observer
        self.last_trace: Trace | None = None
        self._seen = 0
        self._lock = threading.Lock()

    @property
    def location(self) -> Path | None:
        return self.inner.location

    def put_image(self, data: bytes, media_type: str = "image/jpeg") -> str:
        return self.inner.put_image(data, media_type)

    def get_image(self, sha256: str) -> bytes:
        return self.inner.get_image(sha256)

    def write_trace(self, trace: Trace) -> None:
        self.inner.write_trace(trace)
        with self._lock:
            self.last_trace = trace
            if len(trace.events) < self._seen:  # a rerun started the trajectory again
                self._seen = 0
            new = list(trace.events[self._seen :])
            self._seen = len(trace.events)
        if self.observer is not None:
            self.observer(trace, new)


class RunControl:
    """Stops one running sample. Create it, pass it to ``run_sample(control=...)``, call ``stop()``.

    ``stop()`` is idempotent and returns whether a run was stopped; a run that has already ended,
    or not started, is left alone (``stop_requested`` still records the wish, so a run that starts
    afterwards ends at once)."""

    def __init__(self) -> None:
        self.stop_requested = False
        self.reason = STOP_REASON
        self._task: asyncio.Future[Any] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def attach(self, task: asyncio.Future[Any]) -> None:
        """The task that runs the sample (``run_sample`` attaches its own)."""
        self._task = task
        if self.stop_requested:
            task.cancel()

    def detach(self) -> None:
        self._task = None

    def stop(self, reason: str = STOP_REASON) -> bool:
        """Stop the run now (its model call or tool is cancelled; the trace is kept)."""
        self.stop_requested = True
        self.reason = reason
        task = self._task
        if task is None or task.done():
            return False
        task.cancel()
        return True
