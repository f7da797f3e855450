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
from dataclasses import dataclass, field
from typing import Any

from slidescout.agents.budget import Budget
from slidescout.agents.config import AgentConfig
from slidescout.errors import ConfigError, SlidescoutError
from slidescout.eval.executor_base import ExecutorStats, OnRecord, WorkItem
from slidescout.eval.grounding import DEFAULT_MAX_MPP
from slidescout.eval.ray_connect import connect, import_ray, probe_address
from slidescout.eval.ray_worker import RayJob, SampleWorker, code_key, run_task
from slidescout.eval.sample_run import failed_record
from slidescout.traces.rundir import RunDir

__all__ = ["POOL_PREFIX", "RayExecutor", "pool_namespace", "release_pool"]

POOL_PREFIX = "slidescout-"
WORKER_RESTARTS = 2  # times Ray starts a crashed worker again (its samples in flight are lost)
START_TIMEOUT_S = 600.0  # no worker ready in this long, none running: the cluster cannot place one
RELEASE_TIMEOUT_S = 120.0  # kept workers closing the run's clients


def pool_namespace() -> str:
    """The Ray namespace of this code's worker pool."""
    return POOL_PREFIX + code_key()


def release_pool(ray: Any, *, every_version: bool = False) -> int:
    """End the kept worker actors of this code (or of every slidescout version) on the cluster
    ``ray`` is connected to; returns how many were ended."""
    wanted = POOL_PREFIX if every_version else pool_namespace()
    ended = 0
    for entry in ray.util.list_named_actors(all_namespaces=True):
        namespace = str(entry.get("namespace", ""))
        if namespace == wanted or (every_version and namespace.startswith(POOL_PREFIX)):
            try:
                ray.kill(ray.get_actor(entry["name"], namespace=namespace), no_restart=True)
                ended += 1
            except ValueError:  # gone meanwhile
                pass
    return ended


def _reason(exc: BaseException) -> str:
    """One line for a Ray error: the worker's own exception when there is one."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:300]


@dataclass
class _Slot:
    name: str
    handle: Any = None
    active: bool = False  # ready, and takes samples
    load: int = 0  # samples in flight there
    starts: int = 0  # times asked to get ready (1 + restarts after a crash)
    ready_once: bool = False
    reused: bool = False  # it had served an earlier run when it first said ready
    failed: bool = False  # could not get ready, restarts spent (or runs other code)
    pid: int | None = None


@dataclass
class _Pending:
    item: WorkItem
    slot: int  # -1 in tasks mode
    t0: float
    ref: Any


@dataclass
class _Pool:
    actor: Any  # the Ray actor class
    options: dict[str, Any]  # its options (name aside)
    slots: list[_Slot]
    per_slot: int
    readying: dict[asyncio.Future[Any], int] = field(default_factory=dict)
    last_error: str = ""

    def detail(self) -> dict[str, Any]:
        return {
            "workers_ready": sum(s.ready_once for s in self.slots),
            "workers_reused": sum(s.reused for s in self.slots),
            "worker_restarts": sum(max(0, s.starts - 1) for s in self.slots),
            "worker_pids": [s.pid for s in self.slots if s.pid is not None],
        }


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
            cluster given by ``address``, no on a local instance).
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

    # ---- the pool ---------------------------------------------------------------------------

    def _gpus_each(self, ray: Any, n: int) -> float:
        if self.num_gpus is not None:
            return float(self.num_gpus)
        total = float(ray.cluster_resources().get("GPU", 0))
        return math.floor(total / n * 100) / 100 if total > 0 else 0.0

    def _pool(self, ray: Any, in_flight: int) -> _Pool:
        cpus = float(ray.cluster_resources().get("CPU", 1))
        n = self.workers or max(1, min(in_flight, int(cpus // max(self.num_cpus, 1e-9)) or 1))
        gpus = self._gpus_each(ray, n)
        shape = f"c{self.num_cpus:g}-g{gpus:g}"
        slots = [_Slot(name=f"worker-{shape}-{i}") for i in range(n)]
        options: dict[str, Any] = dict(
            num_cpus=self.num_cpus,
            num_gpus=gpus,
            max_concurrency=1000,
            max_restarts=WORKER_RESTARTS,
            max_task_retries=0,
        )
        if self._keep():  # found again by name by the next run, and outliving this driver
            options.update(namespace=pool_namespace(), get_if_exists=True, lifetime="detached")
        self.stats.detail.update(workers=n, worker_cpus=self.num_cpus, worker_gpus=gpus)
        actor = ray.remote(SampleWorker)
        return _Pool(actor, options, slots=slots, per_slot=math.ceil(in_flight / n))

    def _keep(self) -> bool:
        return self.keep_workers if self.keep_workers is not None else self.address is not None

    def _start(self, ray: Any, pool: _Pool, i: int, job: RayJob) -> None:
        """Find worker ``i`` by name (or start it) and ask it to get ready for ``job``."""
        slot = pool.slots[i]
        slot.starts += 1
        named = {"name": slot.name} if "namespace" in pool.options else {}
        if slot.handle is None or named:  # a crashed worker: Ray starts it again (max_restarts)
            slot.handle = pool.actor.options(**named, **pool.options).remote()
        pool.readying[asyncio.ensure_future(_await_ref(slot.handle.ready.remote(job)))] = i

    def _on_ready(
        self, ray: Any, fut: asyncio.Future[Any], pool: _Pool, i: int, job: RayJob
    ) -> None:
        slot = pool.slots[i]
        try:
            info = fut.result()
        except Exception as exc:  # the worker could not start (import, config, placement...)
            pool.last_error = _reason(exc)
            if slot.starts <= WORKER_RESTARTS:  # a kept worker found dying, a crash at start
                self._start(ray, pool, i, job)
            else:
                slot.failed = True
            return
        if info.get("code") != code_key():  # another checkout's worker under our name: not ours
            pool.last_error = (
                f"worker {slot.name} runs other slidescout code ({info.get('code')}, "
                f"driver {code_key()}); install the same version on the cluster"
            )
            slot.failed = True
            return
        slot.active, slot.pid = True, info.get("pid")
        if not slot.ready_once:
            slot.ready_once, slot.reused = True, bool(info.get("reused"))

    # ---- the run ----------------------------------------------------------------------------

    def _job(self, run: RunDir, budget: Budget, per_worker: int) -> RayJob:
        seconds = budget.seconds
        if seconds is not None:
            seconds = max(0.0, seconds - (time.monotonic() - budget.started))
        spec = self.spec
        return RayJob(
            key=uuid.uuid4().hex,
            spec=spec,
            run_path=str(run.path),
            limits={"usd": budget.usd, "tokens": budget.tokens, "seconds": seconds},
            max_mpp=self.max_mpp,
            max_connections=per_worker,
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
            await self._run(ray, items, run, budget, on_record, should_stop, on_start, t0)
        finally:
            t_end = time.monotonic()
            if started_ray:
                ray.shutdown()
            self.stats.teardown_s += time.monotonic() - t_end

    async def _run(
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
        if self.mode == "actors":
            pool: _Pool | None = self._pool(ray, in_flight)
            n = len(pool.slots)
            job = self._job(run, budget, max(1, math.ceil(self.max_connections / n)))
            for i in range(n):
                self._start(ray, pool, i, job)
            task = None
        else:
            pool = None
            job = self._job(run, budget, self.max_connections)
            task = ray.remote(run_task).options(
                num_cpus=self.num_cpus, num_gpus=self._gpus_each(ray, 1), max_retries=0
            )
        queue = deque(items)
        pending: dict[asyncio.Future[Any], _Pending] = {}
        first: list[float] = []

        def submit() -> None:
            while queue and len(pending) < in_flight and not should_stop():
                if pool is not None:
                    free = [
                        i for i, s in enumerate(pool.slots) if s.active and s.load < pool.per_slot
                    ]
                    if not free:
                        return
                    i = min(free, key=lambda k: pool.slots[k].load)
                    pool.slots[i].load += 1
                    item = queue.popleft()
                    ref = pool.slots[i].handle.run_sample.remote(job, item.sample, item.repeat)
                else:
                    i, item = -1, queue.popleft()
                    ref = task.remote(job, item.sample, item.repeat)
                if not first:
                    first.append(time.monotonic())
                    self.stats.startup_s = first[0] - t0
                if on_start:
                    on_start(item)
                fut = asyncio.ensure_future(_await_ref(ref))
                pending[fut] = _Pending(item, i, time.monotonic(), ref)

        stopped = False
        try:
            submit()
            while pending or (pool is not None and pool.readying and queue):
                waiting = set(pending) | (set(pool.readying) if pool is not None else set())
                bound = None if pending else START_TIMEOUT_S
                done, _ = await asyncio.wait(
                    waiting, timeout=bound, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    raise SlidescoutError(
                        f"no Ray worker became ready in {START_TIMEOUT_S:g} s: the cluster has "
                        f"no room for a worker of {self.num_cpus:g} CPU"
                        + (f" (last error: {pool.last_error})" if pool and pool.last_error else "")
                    )
                for fut in done:
                    if pool is not None and fut in pool.readying:
                        self._on_ready(ray, fut, pool, pool.readying.pop(fut), job)
                    else:
                        self._finish_one(ray, fut, pending.pop(fut), pool, job, on_record)
                if should_stop() and not stopped and pool is not None:
                    stopped = True
                    kind = budget.exceeded() or "cancelled"
                    for s in pool.slots:
                        if s.active:
                            s.handle.stop.remote(job.key, kind)
                submit()
            if queue and not should_stop() and pool is not None:
                raise SlidescoutError(
                    "no Ray worker could run samples"
                    + (f": {pool.last_error}" if pool.last_error else "")
                    + f"; {len(queue)} samples were not started (--resume runs them)"
                )
        except BaseException:
            for p in pending.values():
                on_record(
                    failed_record(
                        p.item.sample,
                        p.item.repeat,
                        "cancelled",
                        "the run was interrupted",
                        time.monotonic() - p.t0,
                    )
                )
            raise
        finally:
            t_end = time.monotonic()
            self.stats.run_s = t_end - first[0] if first else 0.0
            for fut, p in pending.items():
                fut.cancel()
                try:
                    ray.cancel(p.ref)
                except Exception:
                    pass
            if pool is not None:
                await self._release(ray, pool, job)
            self.stats.teardown_s = time.monotonic() - t_end

    def _finish_one(
        self,
        ray: Any,
        fut: asyncio.Future[Any],
        p: _Pending,
        pool: _Pool | None,
        job: RayJob,
        on_record: OnRecord,
    ) -> None:
        if pool is not None:
            pool.slots[p.slot].load -= 1
        try:
            rec = fut.result()
        except Exception as exc:  # the worker died, or failed outside the sample's loop
            # run_sample records every failure of the sample itself; this is Ray's, so the sample
            # is not finished: --resume runs it again
            reason = _reason(exc)
            rec = failed_record(
                p.item.sample,
                p.item.repeat,
                "error",
                f"Ray worker lost the sample ({reason}); --resume runs it again",
                time.monotonic() - p.t0,
            )
            rec["finished"] = False
            if pool is not None:
                pool.last_error = reason
                slot = pool.slots[p.slot]
                if slot.active:  # take no more samples there until it says it is ready again
                    slot.active = False
                    if slot.starts <= WORKER_RESTARTS:
                        self._start(ray, pool, p.slot, job)
        on_record(rec)

    async def _release(self, ray: Any, pool: _Pool, job: RayJob) -> None:
        """Kept workers forget the run (and close its clients); the others are ended, and so is
        a kept worker that could not get ready. One still starting is left to finish starting
        (it is told to forget the run once it is up)."""
        self.stats.detail.update(pool.detail())
        for fut in pool.readying:
            fut.cancel()
        keep = self._keep()
        closing = []
        for s in pool.slots:
            if s.handle is None:
                continue
            if keep and not s.failed:
                ref = s.handle.finish.remote(job.key)
                if s.active:
                    closing.append(_await_ref(ref))
                continue
            try:
                ray.kill(s.handle, no_restart=True)
            except Exception:
                pass
        if closing:
            try:  # a generous bound: closing clients takes milliseconds
                await asyncio.wait_for(
                    asyncio.gather(*closing, return_exceptions=True), RELEASE_TIMEOUT_S
                )
            except asyncio.TimeoutError:
                pass


async def _await_ref(ref: Any) -> Any:
    return await ref
