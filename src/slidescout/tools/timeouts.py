"""Deadlines of tool calls: a call that does not finish in time is abandoned, never waited for.

- :func:`run_in_daemon_thread`: a blocking function in a thread of its own, under a limiter. The
  thread is a daemon, so one that never returns (a plugin stuck in ``time.sleep`` or a driver
  call) does not keep the process from exiting; cancelling the wait gives the limiter's slot
  back at once, so the samples queued behind it go on.
- :func:`within`: a coroutine with a deadline. When the deadline passes, the coroutine's task is
  cancelled and left behind (an ``await`` that never ends stops there; one that ignores the
  cancellation is not waited for), and ``DeadlinePassed`` (a ``TimeoutError``) is raised.

A thread cannot be killed: the abandoned call's ``ToolContext.cancel_event`` is set instead, so a
tool that checks it (``ctx.check_cancelled()``) stops soon after.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter

from slidescout.errors import ToolError

__all__ = [
    "DEFAULT_TOOL_TIMEOUT_S",
    "DeadlinePassed",
    "ToolTimeout",
    "run_in_daemon_thread",
    "within",
]

T = TypeVar("T")

DEFAULT_TOOL_TIMEOUT_S = 120.0  # one call, setup included; a tool that loads weights sets more

_ABANDONED: set[asyncio.Task[Any]] = set()  # tasks left running past their deadline (kept alive)


class DeadlinePassed(TimeoutError):
    """Raised by :func:`within` (and only there): a ``TimeoutError`` of the work itself is not
    mistaken for the deadline."""


class ToolTimeout(ToolError):
    """A tool call did not finish within its timeout; it was abandoned. The model sees the error
    as an observation and can try something else."""


def _settle(fut: asyncio.Future[T], result: Any, exc: BaseException | None) -> None:
    if fut.done():  # the caller stopped waiting (a deadline, a cancellation)
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


async def run_in_daemon_thread(fn: Callable[[], T], *, limiter: CapacityLimiter | None = None) -> T:
    """``fn()`` in a new daemon thread, holding a slot of ``limiter`` (default: anyio's default
    thread limiter) while it is waited for. Cancelling the wait abandons the thread."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()

    def work() -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            result = context.run(fn)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting coroutine
            error = exc
        try:
            loop.call_soon_threadsafe(_settle, fut, result, error)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    async with limiter or anyio.to_thread.current_default_thread_limiter():
        threading.Thread(target=work, name="slidescout-tool", daemon=True).start()
        return await fut


async def within(work: Awaitable[T], timeout_s: float | None) -> T:
    """``await work`` for at most ``timeout_s`` seconds (None: no limit); ``DeadlinePassed`` after
    that, with ``work`` cancelled and abandoned. Cancelling the caller cancels ``work`` too."""
    if timeout_s is None:
        return await work
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
    except asyncio.CancelledError:
        _abandon(task)
        raise
    if not done:
        _abandon(task)
        raise DeadlinePassed(f"not done within {timeout_s:g} s")
    return task.result()


def _abandon(task: asyncio.Task[Any]) -> None:
    task.cancel()
    _ABANDONED.add(task)
    task.add_done_callback(_forget)


def _forget(task: asyncio.Task[Any]) -> None:
    _ABANDONED.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: an abandoned call's late error is not "never retrieved"
