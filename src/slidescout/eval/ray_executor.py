"""The Ray executor's driver: samples onto a pool of worker actors (or one Ray task each).

- **Connecting** (:mod:`slidescout.eval.ray_connect`): one line and a non-zero exit when the
  address does not answer within ``--timeout``, never minutes of Ray's retries on the terminal.
- **The pool.** Worker actors are named (``worker-c<cpus>-g<gpus>-<i>``) in a namespace tied to
  the code (``slidescout-<code key>``), and found again by name. On a cluster given by an address
  (``--address auto``, ``host:port``, ``ray://...``) they are detached and kept after the run, so
  the next run finds them started, with slidescout, the SDK and the tools already imported; a
  local instance started for the run goes away with it. ``keep_workers`` overrides either way.
- **Start-up apart from the run.** Samples go only to workers that said they are ready; the time
  to the first sample is the run's start-up (``stats``), reported beside the run time.
- **Crashes.** A worker that dies loses only the samples it had in flight: each gets a record
  that is *not finished* (``--resume`` runs it again), the worker is started again (Ray restarts
  it) and takes new samples once ready; finished samples were appended the moment they came back.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slidescout.agents.budget import Budget
from slidescout.agents.config import AgentConfig
from slidescout.errors import ConfigError, SlidescoutError
from slidescout.eval.executor_base import ExecutorStats, OnRecord, WorkItem
from slidescout.eval.grounding import DEFAULT_MAX_MPP
from slidescout.eval.ray_connect import connect, import_ray, probe_address
from slidescout.eval.ray_pool import WorkerPool, await_ref, ray_error_text
from slidescout.eval.ray_worker import Limits, RayJob, run_task
from slidescout.eval.sample_run import cancelled_record, failed_record
from slidescout.traces.rundir import RunDir, disk_full

__all__ = ["START_TIMEOUT_S", "RayExecutor"]

START_TIMEOUT_S = 600.0  # no worker ready in this long, none running: the cluster cannot place one


@dataclass
class _Pending:
    item: WorkItem
    slot: int  # -1 in tasks mode
    t0: float
    ref: Any


class RayExecutor:
    """Samples as Ray tasks on a local instance or a cluster (``address``).

    Args:
        spec: the agent to build in each worker (a custom Python factory cannot travel).
        concurrency: samples in flight at once.
        max_connections: concurrent model requests over the whole run.
        address: a cluster address (``auto``, ``host:port``, ``ray://...``); None starts (or
            reuses) a local instance.
        mode: ``"actors"`` (a pool of async worker actors, default) or ``"tasks"`` (one task
            per sample).
        workers: number of worker actors (default: one per CPU of the cluster, at most
            ``concurrency``).
        num_cpus: CPUs each worker actor (or task) reserves.
        num_gpus: GPUs each worker actor (or task) reserves; None: share the cluster's GPUs among
            the actors when it has any (the expert models then run there), else 0.
        keep_workers: keep the worker actors after the run for the next one (default: yes on a
            cluster given by ``address`` or ``RAY_ADDRESS``, no on a local instance).
        timeout_s: how long reaching ``address`` may take (default: the agent's ``--timeout``,
            else 120 s).
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
        keep_workers: bool | None = None,
        timeout_s: float | None = None,
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
        self.address = address or None
        self.mode = mode
        self.workers = workers
        self.num_cpus = float(num_cpus)
        self.num_gpus = num_gpus
        self.keep_workers = keep_workers
        self.timeout_s = float(timeout_s or spec.timeout or 120.0)
        self.max_mpp = max_mpp
        self.stats = ExecutorStats("ray")

    def check(self) -> None:
        """Fail in one line, before anything is written, when ``import ray`` fails or the
        cluster's address accepts no connection within the timeout."""
        ray = import_ray()
        target = self.address or os.environ.get("RAY_ADDRESS") or None
        if target is not None and not ray.is_initialized():
            probe_address(target, self.timeout_s)

    def _gpus_each(self, ray: Any, n: int) -> float:
        if self.num_gpus is not None:
            return float(self.num_gpus)
        total = float(ray.cluster_resources().get("GPU", 0))
        return math.floor(total / n * 100) / 100 if total > 0 else 0.0

    def _keep(self) -> bool:
        if self.keep_workers is not None:
            return self.keep_workers
        return (self.address or os.environ.get("RAY_ADDRESS") or "local") != "local"

    def _job(self, run: RunDir, budget: Budget, per_worker: int) -> RayJob:
        seconds = budget.seconds
        if seconds is not None:
            seconds = max(0.0, seconds - (time.monotonic() - budget.started))
        return RayJob(
            key=uuid.uuid4().hex,
            spec=self.spec,
            run_path=str(run.path),
            limits=Limits(usd=budget.usd, tokens=budget.tokens, seconds=seconds),
            max_mpp=self.max_mpp,
            max_connections=per_worker,
        )

    def _pool(self, ray: Any, run: RunDir, budget: Budget, in_flight: int) -> WorkerPool:
        cpus = float(ray.cluster_resources().get("CPU", 1))
        n = self.workers or max(1, min(in_flight, int(cpus // max(self.num_cpus, 1e-9)) or 1))
        job = self._job(run, budget, max(1, math.ceil(self.max_connections / n)))
        gpus = self._gpus_each(ray, n)
        self.stats.detail.update(workers=n, worker_cpus=self.num_cpus, worker_gpus=gpus)
        return WorkerPool.plan(
            ray,
            job,
            workers=n,
            in_flight=in_flight,
            num_cpus=self.num_cpus,
            num_gpus=gpus,
            keep=self._keep(),
        )

    async def run(
        self,
        items: list[WorkItem],
        run: RunDir,
        budget: Budget,
        on_record: OnRecord,
        should_stop: Callable[[], bool],
        on_start: Callable[[WorkItem], None] | None = None,
    ) -> None:
        self.stats = ExecutorStats("ray", detail={"mode": self.mode, "address": self.address})
        if not items:
            return
        t0 = time.monotonic()
        ray = import_ray()
        started_ray = connect(ray, self.address, self.timeout_s)
        self.stats.detail["connect_s"] = round(time.monotonic() - t0, 3)
        try:
            await self._dispatch(ray, items, run, budget, on_record, should_stop, on_start, t0)
        finally:
            if started_ray:
                t_end = time.monotonic()
                ray.shutdown()
                self.stats.teardown_s += time.monotonic() - t_end

    async def _dispatch(
        self,
        ray: Any,
        items: list[WorkItem],
        run: RunDir,
        budget: Budget,
        on_record: OnRecord,
        should_stop: Callable[[], bool],
        on_start: Callable[[WorkItem], None] | None,
        t0: float,
    ) -> None:
        in_flight = min(self.concurrency, len(items))
        pool = task = None
        if self.mode == "actors":
            pool = self._pool(ray, run, budget, in_flight)
            job = pool.job
        else:
            job = self._job(run, budget, self.max_connections)
            task = ray.remote(run_task).options(
                num_cpus=self.num_cpus, num_gpus=self._gpus_each(ray, 1), max_retries=0
            )
        dispatch = _Dispatch(job, pool, task, in_flight, on_record, should_stop, on_start)
        try:
            if pool is not None:
                pool.start_all()
            await dispatch.loop(items, budget)
        except BaseException:
            dispatch.interrupted()
            raise
        finally:
            t_end = time.monotonic()
            self.stats.startup_s = (dispatch.first or t_end) - t0
            self.stats.run_s = t_end - dispatch.first if dispatch.first else 0.0
            dispatch.cancel(ray)
            if pool is not None:
                await pool.release()
                self.stats.detail.update(pool.detail())
            self.stats.teardown_s = time.monotonic() - t_end


class _Dispatch:
    """One run's samples onto the ready workers (or as tasks): queued, in flight, done."""

    def __init__(
        self,
        job: RayJob,
        pool: WorkerPool | None,
        task: Any,
        in_flight: int,
        on_record: OnRecord,
        should_stop: Callable[[], bool],
        on_start: Callable[[WorkItem], None] | None,
    ) -> None:
        self.job, self.pool, self.task = job, pool, task
        self.in_flight = in_flight
        self.on_record, self.should_stop, self.on_start = on_record, should_stop, on_start
        self.queue: deque[WorkItem] = deque()
        self.pending: dict[asyncio.Future[Any], _Pending] = {}
        self.first: float | None = None  # when the first sample was sent: start-up ends

    def submit(self) -> None:
        while self.queue and len(self.pending) < self.in_flight and not self.should_stop():
            if self.pool is not None:
                i = self.pool.free()
                if i is None:
                    return
                slot = self.pool.slots[i]
                slot.load += 1
                item = self.queue.popleft()
                ref = slot.handle.run_sample.remote(self.job, item.sample, item.repeat)
            else:
                i, item = -1, self.queue.popleft()
                ref = self.task.remote(self.job, item.sample, item.repeat)
            if self.first is None:
                self.first = time.monotonic()
            if self.on_start:
                self.on_start(item)
            self.pending[asyncio.ensure_future(await_ref(ref))] = _Pending(
                item, i, time.monotonic(), ref
            )

    async def loop(self, items: list[WorkItem], budget: Budget) -> None:
        self.queue.extend(items)
        pool, stopped = self.pool, False
        self.submit()
        while self.pending or (pool is not None and pool.readying and self.queue):
            waiting = set(self.pending) | (set(pool.readying) if pool is not None else set())
            done, _ = await asyncio.wait(
                waiting,
                timeout=None if self.pending else START_TIMEOUT_S,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not done:
                raise SlidescoutError(
                    f"no Ray worker became ready in {START_TIMEOUT_S:g} s: the cluster has no "
                    "room for one" + (f" ({pool.last_error})" if pool and pool.last_error else "")
                )
            for fut in done:
                if pool is not None and fut in pool.readying:
                    pool.on_ready(fut)
                else:
                    self.finished(fut, self.pending.pop(fut))
            if self.should_stop() and not stopped and pool is not None:
                stopped = True
                pool.stop(budget.exceeded() or "cancelled")
            self.submit()
        if self.queue and not self.should_stop():
            why = f": {pool.last_error}" if pool is not None and pool.last_error else ""
            raise SlidescoutError(
                f"no Ray worker could run samples{why}; {len(self.queue)} samples were not "
                "started (--resume runs them)"
            )

    def finished(self, fut: asyncio.Future[Any], p: _Pending) -> None:
        if self.pool is not None:
            self.pool.slots[p.slot].load -= 1
        try:
            rec = fut.result()
        except Exception as exc:  # the worker died, or failed outside the sample's loop
            full = disk_full(exc)
            if full is not None:  # the run stops; the sample stays unfinished
                raise full from None
            # run_sample records every failure of the sample itself; this one is Ray's, so the
            # sample is not finished: --resume runs it again
            reason = ray_error_text(exc)
            rec = failed_record(
                p.item.sample,
                p.item.repeat,
                "error",
                f"Ray worker lost the sample ({reason}); --resume runs it again",
                time.monotonic() - p.t0,
            ).model_copy(update={"finished": False})
            if self.pool is not None:
                self.pool.lost(p.slot, reason)
        self.on_record(rec)

    def interrupted(self) -> None:
        """The run was interrupted: a ``cancelled`` record (not finished) per sample in flight."""
        for p in self.pending.values():
            self.on_record(cancelled_record(p.item.sample, p.item.repeat, time.monotonic() - p.t0))

    def cancel(self, ray: Any) -> None:
        for fut, p in self.pending.items():
            fut.cancel()
            try:
                ray.cancel(p.ref)
            except Exception:
                pass
