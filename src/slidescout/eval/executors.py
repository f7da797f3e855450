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
- :class:`RayExecutor`: samples as Ray tasks. ``mode="actors"`` (default) keeps a pool of async
  worker actors, each running many samples' loops concurrently and holding whatever expert models
  those load (on a share of a GPU when the cluster has GPUs: the actors are the GPU holders);
  ``mode="tasks"`` runs each sample as one Ray task with ``asyncio.run`` inside. Workers write
  traces and images into the run directory themselves (a shared file system on a multi-node
  cluster) and return the record to the driver.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from slidescout.agents.budget import Budget, BudgetStatus
from slidescout.agents.config import AgentConfig
from slidescout.agents.loop import Agent, build_agent
from slidescout.agents.models import Model, ModelProfile
from slidescout.core.messages import ModelRequest, ModelResponse
from slidescout.core.model_settings import ModelSettings
from slidescout.core.record import ResultRecord
from slidescout.errors import ConfigError
from slidescout.eval.grounding import DEFAULT_MAX_MPP
from slidescout.eval.sample_run import cancelled_record, failed_record, run_sample
from slidescout.eval.samples import Sample
from slidescout.traces.rundir import RunDir

__all__ = [
    "AgentFactory",
    "AsyncioExecutor",
    "Executor",
    "LimitedModel",
    "RayExecutor",
    "StopBudget",
    "WorkItem",
    "make_executor",
]

OnRecord = Callable[[ResultRecord], None]


class AgentFactory(Protocol):
    """Builds the agent of one repeat (the asyncio executor only: it cannot travel to Ray)."""

    def __call__(self, *, budget: Budget, repeat: int) -> Agent: ...


@dataclass(frozen=True)
class WorkItem:
    sample: Sample
    repeat: int


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

    async def aclose(self) -> None:
        await self._model.aclose()


class StopBudget(Budget):
    """A :class:`Budget` that can also be stopped from outside (the Ray driver tells its workers)."""

    forced: BudgetStatus | None = None

    def force(self, kind: BudgetStatus) -> None:
        self.forced = kind

    def exceeded(self) -> BudgetStatus | None:
        return self.forced or super().exceeded()


async def _close(agent: Any) -> None:
    close = getattr(getattr(agent, "model", None), "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:  # closing a client must not hide the run's outcome
            pass


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
        queue = deque(items)
        limiter = asyncio.Semaphore(self.max_connections)
        agents: dict[int, Any] = {}

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
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            for agent in agents.values():
                await _close(agent)


# ---- Ray ------------------------------------------------------------------------------------


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("the Ray executor needs ray: pip install 'ray[default]'") from None
    return ray


class _SampleWorker:
    """A Ray actor running samples' agent loops on its own event loop (many at once)."""

    def __init__(
        self,
        spec: AgentConfig,
        run_path: str,
        limits: dict[str, Any],
        max_mpp: float,
        max_connections: int,
    ) -> None:
        self.spec = spec
        self.run = RunDir(run_path)
        self.budget = StopBudget(**limits)
        self.max_mpp = max_mpp
        self.max_connections = max_connections
        self.agents: dict[int, Any] = {}
        self.limiter: asyncio.Semaphore | None = None

    async def run_sample(self, sample: Sample, repeat: int) -> ResultRecord:
        if self.limiter is None:
            self.limiter = asyncio.Semaphore(self.max_connections)
        if repeat not in self.agents:
            limiter = self.limiter
            self.agents[repeat] = build_agent(
                self.spec, self.budget, repeat=repeat, wrap_model=lambda m: LimitedModel(m, limiter)
            )
        outcome = await run_sample(
            self.agents[repeat], sample, repeat, self.run, max_mpp=self.max_mpp, budget=self.budget
        )
        return outcome.record

    def stop(self, kind: BudgetStatus) -> None:
        self.budget.force(kind)

    async def close(self) -> None:
        for agent in self.agents.values():
            await _close(agent)


def _task_run_sample(
    spec: AgentConfig,
    sample: Sample,
    repeat: int,
    run_path: str,
    limits: dict[str, Any],
    max_mpp: float,
) -> ResultRecord:
    """One sample as one Ray task: build the agent, run its loop with ``asyncio.run``."""

    async def go() -> ResultRecord:
        budget = StopBudget(**limits)
        agent = build_agent(spec, budget, repeat=repeat)
        try:
            outcome = await run_sample(
                agent, sample, repeat, RunDir(run_path), max_mpp=max_mpp, budget=budget
            )
            return outcome.record
        finally:
            await _close(agent)

    return asyncio.run(go())


class RayExecutor:
    """Samples as Ray tasks on a local instance or a cluster (``address``).

    Args:
        spec: the agent to build in each worker (a custom Python factory cannot travel).
        concurrency: samples in flight at once.
        max_connections: concurrent model requests over the whole run.
        address: a cluster address (``ray://...`` or ``auto``); None starts (or reuses) a local instance.
        mode: ``"actors"`` (a pool of async worker actors, default) or ``"tasks"`` (one task per sample).
        workers: number of worker actors (default: one per available CPU, at most ``concurrency``).
        num_cpus: CPUs each worker actor (or task) reserves.
        num_gpus: GPUs each worker actor (or task) reserves; None: share the cluster's GPUs among
            the actors when it has any (the expert models then run there), else 0.
    """

    name = "ray"

    def __init__(
        self,
        spec: AgentConfig,
        *,
        concurrency: int = 16,
        max_connections: int | None = None,
        address: str | None = None,
        mode: str = "actors",
        workers: int | None = None,
        num_cpus: float = 1.0,
        num_gpus: float | None = None,
        max_mpp: float = DEFAULT_MAX_MPP,
    ) -> None:
        if not isinstance(spec, AgentConfig):
            raise ConfigError(
                "the Ray executor builds agents from an AgentConfig (model id, preset...); "
                "a Python agent factory cannot be sent to workers"
            )
        if mode not in ("actors", "tasks"):
            raise ConfigError(f"unknown Ray mode {mode!r}: use actors or tasks")
        self.spec = spec
        self.concurrency = max(1, int(concurrency))
        self.max_connections = max(1, int(max_connections or self.concurrency))
        self.address = address
        self.mode = mode
        self.workers = workers
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.max_mpp = max_mpp
        self._started_ray = False

    def _init(self) -> Any:
        ray = _ray()
        if not ray.is_initialized():
            try:
                ray.init(
                    address=self.address,
                    include_dashboard=False,
                    ignore_reinit_error=True,
                    log_to_driver=False,
                    configure_logging=False,
                )
            except ConnectionError as exc:
                raise ConfigError(
                    f"cannot connect to the Ray cluster at {self.address}: {exc}"
                ) from None
            self._started_ray = self.address is None
        return ray

    def _gpus_each(self, ray: Any, n: int) -> float:
        if self.num_gpus is not None:
            return float(self.num_gpus)
        total = float(ray.cluster_resources().get("GPU", 0))
        return math.floor(total / n * 100) / 100 if total > 0 else 0.0

    def _limits(self, budget: Budget) -> dict[str, Any]:
        """The run's budget for each worker (what is left of the time budget)."""
        return {
            "usd": budget.usd,
            "tokens": budget.tokens,
            "seconds": None
            if budget.seconds is None
            else max(0.0, budget.seconds - (time.monotonic() - budget.started)),
        }

    def _actors(
        self, ray: Any, spec: AgentConfig, run: RunDir, limits: dict[str, Any], in_flight: int
    ) -> list[Any]:
        """The pool of worker actors (``mode="actors"``), sized to the CPUs and the concurrency."""
        cpus = float(ray.available_resources().get("CPU", ray.cluster_resources().get("CPU", 1)))
        n = self.workers or max(1, min(in_flight, int(cpus // max(self.num_cpus, 1e-9)) or 1))
        cls = ray.remote(_SampleWorker).options(
            num_cpus=self.num_cpus,
            num_gpus=self._gpus_each(ray, n),
            max_concurrency=math.ceil(in_flight / n) + 2,
        )
        conns = max(1, math.ceil(self.max_connections / n))
        return [cls.remote(spec, str(run.path), limits, self.max_mpp, conns) for _ in range(n)]

    async def run(
        self,
        items: list[WorkItem],
        run: RunDir,
        budget: Budget,
        on_record: OnRecord,
        should_stop: Callable[[], bool],
        on_start: Callable[[WorkItem], None] | None = None,
    ) -> None:
        if not items:
            return
        ray = self._init()
        limits = self._limits(budget)
        spec = self.spec
        if self._gpus_each(ray, 1) > 0 and spec.device is None:
            spec = spec.model_copy(update={"device": "cuda"})
        in_flight = min(self.concurrency, len(items))
        if self.mode == "actors":
            actors = self._actors(ray, spec, run, limits, in_flight)
            task = None
        else:
            actors = []
            task = ray.remote(_task_run_sample).options(
                num_cpus=self.num_cpus, num_gpus=self._gpus_each(ray, 1), max_retries=0
            )
        dispatch = _RayDispatch(ray, actors, task, spec, run, limits, self.max_mpp, on_start)
        queue = deque(items)
        stopped = False
        try:
            dispatch.submit(queue, in_flight, should_stop)
            while dispatch.pending:
                for rec in await dispatch.next_done():
                    on_record(rec)
                if should_stop() and not stopped and actors:
                    stopped = True
                    dispatch.stop(budget.exceeded() or "cancelled")
                dispatch.submit(queue, in_flight, should_stop)
        except BaseException:
            for rec in dispatch.cancel_all():
                on_record(rec)
            raise
        finally:
            await dispatch.close()
            if self._started_ray:
                ray.shutdown()
                self._started_ray = False


class _RayDispatch:
    """Samples in flight on Ray: submission to the least busy actor (or as tasks), results as
    they complete, and the clean-up (cancel, close and kill the actors)."""

    def __init__(
        self,
        ray: Any,
        actors: list[Any],
        task: Any,
        spec: AgentConfig,
        run: RunDir,
        limits: dict[str, Any],
        max_mpp: float,
        on_start: Callable[[WorkItem], None] | None,
    ) -> None:
        self.ray, self.actors, self.task, self.spec = ray, actors, task, spec
        self.run, self.limits, self.max_mpp, self.on_start = run, limits, max_mpp, on_start
        self.slots = {i: 0 for i in range(len(actors))}
        # future -> (item, actor index or -1, start time, Ray object ref)
        self.pending: dict[asyncio.Future[Any], tuple[WorkItem, int, float, Any]] = {}

    def submit(
        self, queue: deque[WorkItem], in_flight: int, should_stop: Callable[[], bool]
    ) -> None:
        while queue and len(self.pending) < in_flight and not should_stop():
            item = queue.popleft()
            if self.actors:
                i = min(self.slots, key=lambda k: self.slots[k])
                self.slots[i] += 1
                ref = self.actors[i].run_sample.remote(item.sample, item.repeat)
            else:
                i = -1
                ref = self.task.remote(
                    self.spec,
                    item.sample,
                    item.repeat,
                    str(self.run.path),
                    self.limits,
                    self.max_mpp,
                )
            if self.on_start:
                self.on_start(item)
            fut = asyncio.ensure_future(_await_ref(ref))
            self.pending[fut] = (item, i, time.monotonic(), ref)

    async def next_done(self) -> list[ResultRecord]:
        """The records of the samples that finished next (a lost worker's is an error record)."""
        done, _ = await asyncio.wait(list(self.pending), return_when=asyncio.FIRST_COMPLETED)
        out: list[ResultRecord] = []
        for fut in done:
            item, i, t0, _ = self.pending.pop(fut)
            if i >= 0:
                self.slots[i] -= 1
            try:
                out.append(fut.result())
            except Exception as exc:  # a worker died or the task failed outside the loop
                out.append(
                    failed_record(
                        item.sample,
                        item.repeat,
                        "error",
                        f"Ray: {type(exc).__name__}: {exc}",
                        time.monotonic() - t0,
                    )
                )
        return out

    def stop(self, kind: BudgetStatus) -> None:
        """Tell every actor to stop its samples at their next step (a budget was hit)."""
        for a in self.actors:
            a.stop.remote(kind)

    def cancel_all(self) -> list[ResultRecord]:
        """The run was interrupted: a ``cancelled`` record for each sample in flight."""
        out: list[ResultRecord] = []
        for fut, (item, _, t0, _ref) in list(self.pending.items()):
            fut.cancel()
            out.append(cancelled_record(item.sample, item.repeat, time.monotonic() - t0))
        return out

    async def close(self) -> None:
        for _item, _i, _t0, ref in self.pending.values():
            try:
                self.ray.cancel(ref)
            except Exception:
                pass
        if not self.actors:
            return
        try:
            await asyncio.wait_for(
                asyncio.gather(
                    *[_await_ref(a.close.remote()) for a in self.actors], return_exceptions=True
                ),
                timeout=10,
            )
        except (asyncio.TimeoutError, Exception):
            pass
        for a in self.actors:
            self.ray.kill(a)


async def _await_ref(ref: Any) -> Any:
    return await ref


def make_executor(
    name: str,
    spec: AgentConfig | None,
    *,
    agent_factory: Callable[..., Any] | None = None,
    concurrency: int = 16,
    max_connections: int | None = None,
    max_mpp: float = DEFAULT_MAX_MPP,
    **ray_options: Any,
) -> AsyncioExecutor | RayExecutor:
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
        return RayExecutor(
            spec,
            concurrency=concurrency,
            max_connections=max_connections,
            max_mpp=max_mpp,
            **{k: v for k, v in ray_options.items() if v is not None},
        )
    raise ConfigError(f"unknown executor {name!r}: use asyncio or ray")


Executor = AsyncioExecutor | RayExecutor
