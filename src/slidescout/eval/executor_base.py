"""What the executors share: the work item, the connection limiter, the stoppable budget, and
what an executor reports about its start-up.

Kept apart from :mod:`slidescout.eval.executors` so that the Ray worker side
(:mod:`slidescout.eval.ray_worker`) and the driver side import the same pieces without a cycle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from slidescout.agents.budget import Budget, BudgetStatus
from slidescout.agents.loop import Agent
from slidescout.agents.models import Model, ModelProfile
from slidescout.core.messages import ModelRequest, ModelResponse
from slidescout.core.model_settings import ModelSettings
from slidescout.core.record import ResultRecord
from slidescout.eval.samples import Sample

__all__ = [
    "AgentFactory",
    "ExecutorStats",
    "LimitedModel",
    "OnRecord",
    "StopBudget",
    "WorkItem",
    "close_agent",
    "connect_model",
]

OnRecord = Callable[[ResultRecord], None]


class AgentFactory(Protocol):
    """Builds the agent of one repeat (the asyncio executor only: it cannot travel to Ray)."""

    def __call__(self, *, budget: Budget, repeat: int) -> Agent: ...


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
    """A ``Model`` whose requests wait for a slot of the endpoint's limiter (``max_connections``).

    A plain wrapper: its name, profile and settings are the wrapped model's; the settings of
    each request travel with the request, so nothing needs to reach through it."""

    def __init__(self, model: Model, limiter: asyncio.Semaphore) -> None:
        self._model = model
        self._limiter = limiter

    @property
    def name(self) -> str:
        return self._model.name

    @property
    def profile(self) -> ModelProfile:
        return self._model.profile

    @property
    def settings(self) -> ModelSettings:
        return self._model.settings

    @property
    def wrapped(self) -> Model:
        return self._model

    async def request(self, req: ModelRequest) -> ModelResponse:
        async with self._limiter:
            return await self._model.request(req)

    def connect(self) -> None:
        connect_model(self._model)

    async def aclose(self) -> None:
        await self._model.aclose()


class StopBudget(Budget):
    """A :class:`Budget` that can also be stopped from outside (the Ray driver tells its workers)."""

    forced: BudgetStatus | None = None

    def force(self, kind: BudgetStatus) -> None:
        self.forced = kind

    def exceeded(self) -> BudgetStatus | None:
        return self.forced or super().exceeded()


def connect_model(model: Model) -> None:
    """Build a model's provider client now (importing its SDK), before the samples start: built
    by the first request instead, inside the running event loop, the import stalls every sample
    in flight. A model without a client (an in-process one) has nothing to build."""
    connect = getattr(model, "connect", None)
    if callable(connect):
        connect()


async def close_agent(agent: Any) -> None:
    """Close an agent's model client; a failure to close never hides the run's outcome."""
    close = getattr(getattr(agent, "model", None), "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:
            pass
