"""Where samples run: in this process with asyncio (default), or on a Ray cluster.

Both executors take the work items of a run and call ``on_record(record)`` in the driver for each
finished (sample, repeat); the runner appends it to ``results.jsonl`` and updates the progress bar.
Neither starts a new sample once ``should_stop()`` says so (a budget is spent); samples already
running either finish or stop at their next step with a ``budget_*`` status (the loop checks the
shared budget before every model call). Cancelling ``run`` (Ctrl-C) cancels the samples in flight:
their traces end ``cancelled`` and a ``cancelled`` record (not finished) is reported for each.

- :class:`AsyncioExecutor`: ``concurrency`` workers pull samples from a queue; every model request
  goes through a semaphore per model endpoint (``max_connections``). Rate limits are retried by
  the model adapters, so they slow a run down instead of failing samples.
- :class:`RayExecutor` (:mod:`slidescout.eval.ray_executor`): samples as Ray tasks.
  ``mode="actors"`` (default) keeps a pool of async worker actors, each running many samples'
  loops concurrently and holding whatever expert models those load (on a share of a GPU when the
  cluster has GPUs: the actors are the GPU holders); on a cluster the pool is kept for the next
  run. ``mode="tasks"`` runs each sample as one Ray task with ``asyncio.run`` inside. Workers
  write traces and images into the run directory themselves (a shared file system on a
  multi-node cluster) and return the record to the driver.

After ``run``, ``executor.stats`` (:class:`ExecutorStats`) holds the start-up time apart from the
run time (for asyncio, also this process's CPU in each: ``startup_cpu_s``, ``run_cpu_s``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from slidescout.agents.budget import Budget
from slidescout.agents.config import AgentConfig
from slidescout.agents.loop import build_agent
from slidescout.agents.models import Model
from slidescout.errors import ConfigError
from slidescout.eval.executor_base import (
    AgentFactory,
    ExecutorStats,
    LimitedModel,
    OnRecord,
    StopBudget,
    WorkItem,
    close_agent,
    connect_model,
)
from slidescout.eval.grounding import DEFAULT_MAX_MPP
from slidescout.eval.ray_executor import RayExecutor
from slidescout.eval.sample_run import cancelled_record, run_sample
from slidescout.traces.rundir import RunDir

__all__ = [
    "AgentFactory",
    "AsyncioExecutor",
    "Executor",
    "ExecutorStats",
    "LimitedModel",
    "RayExecutor",
    "StopBudget",
    "WorkItem",
    "make_executor",
]

# ---- asyncio --------------------------------------------------------------------------------


class AsyncioExecutor:
    """Samples as asyncio tasks in this process (slide reads and tools run in worker threads)."""

    name = "asyncio"

    def __init__(
        self,
        spec: AgentConfig | None = None,
        *,
        agent_factory: AgentFactory | None = None,
        concurrency: int = 16,
        max_connections: int | None = None,
        max_mpp: float = DEFAULT_MAX_MPP,
    ) -> None:
        if spec is None and agent_factory is None:
            raise ConfigError("an executor needs an AgentConfig or an agent_factory")
        self.spec = spec
        self.agent_factory = agent_factory
        self.concurrency = max(1, int(concurrency))
        self.max_connections = max(1, int(max_connections or self.concurrency))
        self.max_mpp = max_mpp
        self.stats = ExecutorStats("asyncio")

    def check(self) -> None:
        """Nothing to check before a run: samples run in this process."""

    def _agent(
        self, agents: dict[int, Any], repeat: int, budget: Budget, limiter: asyncio.Semaphore
    ) -> Any:
        if repeat not in agents:

            def wrap(m: Model) -> Model:
                return LimitedModel(m, limiter)

            if self.agent_factory is not None:
                agent = self.agent_factory(budget=budget, repeat=repeat).with_model(wrap)
            else:
                assert self.spec is not None
                agent = build_agent(self.spec, budget, repeat=repeat, wrap_model=wrap)
            agents[repeat] = agent
        return agents[repeat]

    async def run(
        self,
        items: list[WorkItem],
        run: RunDir,
        budget: Budget,
        on_record: OnRecord,
        should_stop: Callable[[], bool],
        on_start: Callable[[WorkItem], None] | None = None,
    ) -> None:
        self.stats = ExecutorStats("asyncio")
        t0, cpu0 = time.monotonic(), time.process_time()
        queue = deque(items)
        limiter = asyncio.Semaphore(self.max_connections)
        agents: dict[int, Any] = {}
        for repeat in sorted({item.repeat for item in items}):  # clients built before any sample
            connect_model(self._agent(agents, repeat, budget, limiter).model)

        async def worker() -> None:
            while queue and not should_stop():
                item = queue.popleft()
                agent = self._agent(agents, item.repeat, budget, limiter)
                if on_start:
                    on_start(item)
                t0 = time.monotonic()
                try:
                    rec = (
                        await run_sample(
                            agent,
                            item.sample,
                            item.repeat,
                            run,
                            max_mpp=self.max_mpp,
                            budget=budget,
                        )
                    ).record
                except asyncio.CancelledError:
                    on_record(cancelled_record(item.sample, item.repeat, time.monotonic() - t0))
                    raise
                on_record(rec)

        tasks = [asyncio.create_task(worker()) for _ in range(min(self.concurrency, len(items)))]
        t_run, cpu_run = time.monotonic(), time.process_time()
        self.stats.startup_s = t_run - t0
        self.stats.detail["startup_cpu_s"] = round(cpu_run - cpu0, 3)
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            t_end = time.monotonic()
            self.stats.run_s = t_end - t_run
            self.stats.detail["run_cpu_s"] = round(time.process_time() - cpu_run, 3)
            for agent in agents.values():
                await close_agent(agent)
            self.stats.teardown_s = time.monotonic() - t_end


Executor = AsyncioExecutor | RayExecutor

RAY_OPTIONS = frozenset({"address", "mode", "workers", "num_cpus", "num_gpus", "keep_workers"})


def make_executor(
    name: str,
    spec: AgentConfig | None,
    *,
    agent_factory: AgentFactory | None = None,
    concurrency: int = 16,
    max_connections: int | None = None,
    max_mpp: float = DEFAULT_MAX_MPP,
    **ray_options: Any,
) -> Executor:
    if name == "asyncio":
        if ray_options.get("address"):
            raise ConfigError("--address is for the Ray executor; add --executor ray")
        return AsyncioExecutor(
            spec,
            agent_factory=agent_factory,
            concurrency=concurrency,
            max_connections=max_connections,
            max_mpp=max_mpp,
        )
    if name == "ray":
        if spec is None:
            raise ConfigError(
                "the Ray executor needs a model id and preset (an AgentConfig), not a Python factory"
            )
        unknown = sorted(set(ray_options) - RAY_OPTIONS)
        if unknown:
            raise ConfigError(
                f"unknown Ray option {unknown[0]!r}: use {', '.join(sorted(RAY_OPTIONS))}"
            )
        return RayExecutor(
            spec,
            concurrency=concurrency,
            max_connections=max_connections,
            max_mpp=max_mpp,
            **{k: v for k, v in ray_options.items() if v is not None},
        )
    raise ConfigError(f"unknown executor {name!r}: use asyncio or ray")
