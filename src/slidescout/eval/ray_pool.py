"""The Ray executor's pool of worker actors, as the driver sees it.

Workers kept for later runs are named ``worker-c<cpus>-g<gpus>-<i>`` in a namespace tied to the
code (``slidescout-<code key>``), detached, and found again by name (``get_if_exists``); workers
of a single run are anonymous and end with it. A worker takes samples only once it has answered
``ready`` (its imports done); one that crashes is started again by Ray (``max_restarts``) and
asked to get ready again, up to :data:`WORKER_RESTARTS` times.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any

from slidescout.agents.budget import BudgetStatus
from slidescout.eval.ray_worker import RayJob, SampleWorker, code_key

__all__ = [
    "POOL_PREFIX",
    "RELEASE_TIMEOUT_S",
    "WORKER_RESTARTS",
    "WorkerPool",
    "pool_namespace",
    "ray_error_text",
    "release_pool",
]

POOL_PREFIX = "slidescout-"
WORKER_RESTARTS = 2  # times a crashed worker is started again (its samples in flight are lost)
RELEASE_TIMEOUT_S = 120.0  # kept workers closing the run's clients (milliseconds, normally)


def pool_namespace() -> str:
    """The Ray namespace of this code's kept workers."""
    return POOL_PREFIX + code_key()


def release_pool(ray: Any, *, every_version: bool = False) -> int:
    """End the kept workers of this code (or of every slidescout version) on the cluster ``ray``
    is connected to; returns how many were ended."""
    ended = 0
    for entry in ray.util.list_named_actors(all_namespaces=True):
        namespace = str(entry.get("namespace", ""))
        if namespace == pool_namespace() or (every_version and namespace.startswith(POOL_PREFIX)):
            try:
                ray.kill(ray.get_actor(entry["name"], namespace=namespace), no_restart=True)
                ended += 1
            except ValueError:  # gone meanwhile
                pass
    return ended


def ray_error_text(exc: BaseException) -> str:
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
class WorkerPool:
    """The workers of one run: which are ready, how loaded, which are getting ready."""

    ray: Any
    job: RayJob
    keep: bool
    slots: list[_Slot]
    per_slot: int  # samples one worker runs at once
    options: dict[str, Any]  # the actors' Ray options (the name aside)
    readying: dict[asyncio.Future[Any], int] = field(default_factory=dict)
    last_error: str = ""
    workers_cpu_s: float | None = None  # reported by the workers when they forget the job

    @classmethod
    def plan(
        cls,
        ray: Any,
        job: RayJob,
        *,
        workers: int,
        in_flight: int,
        num_cpus: float,
        num_gpus: float,
        keep: bool,
    ) -> WorkerPool:
        shape = f"c{num_cpus:g}-g{num_gpus:g}"
        options: dict[str, Any] = dict(
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            max_concurrency=1000,
            max_restarts=WORKER_RESTARTS,
            max_task_retries=0,
        )
        if keep:  # found again by name by the next run, and outliving this driver
            options.update(namespace=pool_namespace(), get_if_exists=True, lifetime="detached")
        return cls(
            ray=ray,
            job=job,
            keep=keep,
            slots=[_Slot(name=f"worker-{shape}-{i}") for i in range(workers)],
            per_slot=math.ceil(in_flight / workers),
            options=options,
        )

    def start_all(self) -> None:
        for i in range(len(self.slots)):
            self.start(i)

    def start(self, i: int) -> None:
        """Find worker ``i`` by name (or start it) and ask it to get ready for the job."""
        slot = self.slots[i]
        slot.starts += 1
        if slot.handle is None or self.keep:  # an anonymous one that crashed: Ray restarts it
            named = {"name": slot.name} if self.keep else {}
            slot.handle = self.ray.remote(SampleWorker).options(**named, **self.options).remote()
        ready = asyncio.ensure_future(await_ref(slot.handle.ready.remote(self.job)))
        self.readying[ready] = i

    def on_ready(self, fut: asyncio.Future[Any]) -> None:
        """A worker answered ``ready`` (or could not start)."""
        slot = self.slots[self.readying.pop(fut)]
        try:
            info = fut.result()
        except Exception as exc:  # the worker could not start (import, config, placement...)
            self.last_error = ray_error_text(exc)
            self._again(slot)
            return
        if info.get("code") != code_key():  # a worker running other code: not ours to use
            self.last_error = (
                f"worker {slot.name} runs other slidescout code ({info.get('code')}, this "
                f"driver {code_key()}); install the same version on the cluster"
            )
            slot.failed = True
            return
        slot.active, slot.pid = True, info.get("pid")
        if not slot.ready_once:
            slot.ready_once, slot.reused = True, bool(info.get("reused"))

    def lost(self, i: int, reason: str) -> None:
        """A sample failed on worker ``i`` outside its own loop (the worker died): take no more
        samples there until it says it is ready again."""
        slot = self.slots[i]
        self.last_error = reason
        if slot.active:
            slot.active = False
            self._again(slot)

    def _again(self, slot: _Slot) -> None:
        if slot.starts <= WORKER_RESTARTS:
            self.start(self.slots.index(slot))
        else:
            slot.failed = True

    def free(self) -> int | None:
        """The least loaded ready worker with room for one more sample."""
        room = [i for i, s in enumerate(self.slots) if s.active and s.load < self.per_slot]
        return min(room, key=lambda i: self.slots[i].load) if room else None

    def stop(self, kind: BudgetStatus) -> None:
        """Tell the ready workers to stop the job's samples at their next step."""
        for s in self.slots:
            if s.active:
                s.handle.stop.remote(self.job.key, kind)

    def detail(self) -> dict[str, Any]:
        return {
            "workers_ready": sum(s.ready_once for s in self.slots),
            "workers_reused": sum(s.reused for s in self.slots),
            "worker_restarts": sum(max(0, s.starts - 1) for s in self.slots),
            "worker_pids": [s.pid for s in self.slots if s.pid is not None],
            "workers_cpu_s": None if self.workers_cpu_s is None else round(self.workers_cpu_s, 3),
        }

    async def release(self) -> None:
        """Every ready worker forgets the job (closing its clients, reporting its CPU time);
        then the workers not kept are ended, and so is a kept one that could not get ready. A
        kept one still starting is told to forget the job once it is up."""
        for fut in self.readying:
            fut.cancel()
        closing = []
        for s in self.slots:
            if s.handle is not None and (s.active or (self.keep and not s.failed)):
                ref = s.handle.finish.remote(self.job.key)
                if s.active:
                    closing.append(await_ref(ref))
        done: list[Any] = []
        if closing:
            try:  # a generous bound: closing clients takes milliseconds
                done = await asyncio.wait_for(
                    asyncio.gather(*closing, return_exceptions=True), RELEASE_TIMEOUT_S
                )
            except asyncio.TimeoutError:
                pass
        self.workers_cpu_s = sum(float(d.get("cpu_s") or 0) for d in done if isinstance(d, dict))
        for s in self.slots:
            if s.handle is not None and not (self.keep and not s.failed):
                try:
                    self.ray.kill(s.handle, no_restart=True)
                except Exception:
                    pass


async def await_ref(ref: Any) -> Any:
    return await ref
