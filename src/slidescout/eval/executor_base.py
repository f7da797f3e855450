"""What the executors share: the work item, the connection limiter, the stoppable budget, and
what an executor reports about its start-up.

Kept apart from :mod:`slidescout.eval.executors` so that the Ray worker side
(:mod:`slidescout.eval.ray_worker`) and the driver side import the same pieces without a cycle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slidescout.agents.budget import Budget
from slidescout.eval.samples import Sample

__all__ = [
    "ExecutorStats",
    "LimitedModel",
    "OnRecord",
    "StopBudget",
    "WorkItem",
    "close_agent",
]

OnRecord = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class WorkItem:
    sample: Sample
    repeat: int


@dataclass
class ExecutorStats:
    """What an executor did before and around the samples, reported apart from the run itself.

    ``startup_s`` is the time from the executor's start to its first sample (Ray: connecting and
    starting or finding the worker actors); ``run_s`` from there to the last record;
    ``teardown_s`` what followed (closing clients, releasing workers). ``detail`` holds the
    executor's own facts (Ray: address, workers started and reused, connect and start-up times).
    """

    executor: str
    startup_s: float = 0.0
    run_s: float = 0.0
    teardown_s: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "executor": self.executor,
            "startup_s": round(self.startup_s, 3),
            "run_s": round(self.run_s, 3),
            "teardown_s": round(self.teardown_s, 3),
            **self.detail,
        }


class LimitedModel:
    """A model whose requests wait for a slot of the endpoint's limiter (``max_connections``).

    Otherwise transparent: attributes are read from and set on the wrapped model (a preset's
    reasoning settings go onto the adapter that sends the request)."""

    def __init__(self, model: Any, limiter: asyncio.Semaphore) -> None:
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_limiter", limiter)

    async def request(self, req: Any) -> Any:
        async with self._limiter:
            return await self._model.request(req)

    async def aclose(self) -> None:
        close = getattr(self._model, "aclose", None)
        if close is not None:
            await close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._model, name, value)


class StopBudget(Budget):
    """A :class:`Budget` that can also be stopped from outside (the Ray driver tells its workers)."""

    forced: str | None = None

    def force(self, kind: str) -> None:
        self.forced = kind

    def exceeded(self) -> str | None:
        return self.forced or super().exceeded()


async def close_agent(agent: Any) -> None:
    """Close an agent's model client; a failure to close never hides the run's outcome."""
    close = getattr(getattr(agent, "model", None), "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:
            pass
