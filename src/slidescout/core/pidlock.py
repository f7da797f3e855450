"""``PidLock``: one process at a time in a folder, through a lock file that names its holder.

The lock file is created exclusively and holds the holder's pid, host and start time. A lock
left by a process that no longer runs on this host is taken over (so is a lock file nobody could
have been writing for a minute); a lock from another host is respected (its process cannot be
checked from here). The run directory's writer lock (``traces.runlock.RunLock``) and the
``data fetch`` folder lock are this one lock with their own file and message.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from slidescout.core.errors import SlidescoutError

__all__ = ["PidLock", "pid_alive"]

STALE_EMPTY_S = 60.0  # an unreadable lock file older than this was left by a crash


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    except OSError:
        return False
    return True


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class PidLock:
    """``with PidLock(path): ...``. ``reentrant``: a second ``acquire`` by the holding process
    succeeds (and its ``release`` leaves the lock to the first). Subclasses say who is in the
    way (:meth:`busy`)."""

    def __init__(self, path: Path | str, *, reentrant: bool = False) -> None:
        self.path = Path(path)
        self.reentrant = reentrant
        self.held = False
        self.took_over: dict[str, Any] | None = None  # the dead holder whose lock was taken

    def busy(self, holder: dict[str, Any]) -> SlidescoutError:
        """The error that names the live holder (override it)."""
        return SlidescoutError(
            f"{self.path} is held by pid {holder.get('pid')} on {holder.get('host')}; "
            f"if that process is gone, delete {self.path}"
        )

    @staticmethod
    def _mine() -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def _stale(self, holder: dict[str, Any] | None, mine: dict[str, Any]) -> bool:
        if holder is None:  # being written this instant, or left empty by a crash
            return time.time() - self._mtime() > STALE_EMPTY_S
        if holder.get("host") != mine["host"]:
            return False
        return not pid_alive(int(holder.get("pid") or 0))

    def _holder(self) -> dict[str, Any] | None:
        holder = _read(self.path)
        if holder is None:  # it may be being written this instant: look again
            time.sleep(0.05)
            holder = _read(self.path)
        return holder

    def acquire(self) -> PidLock:
        mine = self._mine()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if (
                    holder
                    and holder.get("host") == mine["host"]
                    and holder.get("pid") == mine["pid"]
                ):
                    if self.reentrant:  # this process holds it already: the outer use releases it
                        self.held = False
                        return self
                    raise self.busy(holder) from None
                if not self._stale(holder, mine):
                    raise self.busy(holder or {}) from None
                self.took_over = holder or {}  # a dead process's lock (or a crash's empty file)
                self.path.unlink(missing_ok=True)
                continue
            try:
                os.write(fd, json.dumps(mine).encode())
            finally:
                os.close(fd)
            self.held = True
            return self
        raise self.busy(_read(self.path) or {})

    def _mtime(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return time.time()

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        holder = _read(self.path)
        if holder and holder.get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> PidLock:
        return self.acquire()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
