"""One writer per run directory: ``RUN/.lock`` holds the writer's pid, host and start time.

A second writer (another ``eval -o SAME`` or ``--resume SAME`` while a run is in flight) is
refused with the holder named. A lock left by a process that died on this host is taken over;
a lock from another host is never guessed stale (delete the file by hand).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from slidescout.errors import SlidescoutError

LOCK_NAME = ".lock"

__all__ = ["LOCK_NAME", "RunLock", "RunLockedError", "pid_alive"]


class RunLockedError(SlidescoutError):
    """Another live process writes this run directory."""


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


class RunLock:
    """``with RunLock(run_path):`` holds the run directory for this process (re-entrant per process)."""

    def __init__(self, run_path: Path | str) -> None:
        self.run_path = Path(run_path)
        self.path = self.run_path / LOCK_NAME
        self.held = False
        self.took_over: dict[str, Any] | None = None

    def _mine(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def acquire(self) -> RunLock:
        mine = self._mine()
        payload = json.dumps(mine).encode()
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _read(self.path)
                if holder is None:  # being written this instant, or garbage: look again
                    time.sleep(0.05)
                    holder = _read(self.path)
                if (
                    holder
                    and holder.get("host") == mine["host"]
                    and int(holder.get("pid") or 0) == mine["pid"]
                ):
                    self.held = (
                        False  # this process already holds it (nested use): nothing to release
                    )
                    return self
                if holder and (
                    holder.get("host") != mine["host"] or pid_alive(int(holder.get("pid") or 0))
                ):
                    raise RunLockedError(
                        f"{self.run_path} is being written by pid {holder.get('pid')} on {holder.get('host')} "
                        f"(since {holder.get('started', '?')}); wait for that run to end or stop it, or choose "
                        f"another --out. If that process is gone, delete {self.path}"
                    ) from None
                # a dead process on this host (or an unreadable lock file): take it over
                self.took_over = holder or {}
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass
                continue
            try:
                os.write(fd, payload)
            finally:
                os.close(fd)
            self.held = True
            return self
        raise RunLockedError(
            f"{self.run_path}: could not take the run lock {self.path}; another process "
            "keeps taking it"
        )

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        holder = _read(self.path)
        if holder and int(holder.get("pid") or 0) == os.getpid():
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
