"""One writer per run directory: ``RUN/.lock`` (a :class:`~slidescout.core.pidlock.PidLock`).

A second writer (another ``eval -o SAME`` or ``--resume SAME`` while a run is in flight) is
refused with the holder named. A lock left by a process that died on this host is taken over;
a lock from another host is never guessed stale (delete the file by hand).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slidescout.core.pidlock import PidLock, pid_alive
from slidescout.errors import SlidescoutError

LOCK_NAME = ".lock"

__all__ = ["LOCK_NAME", "RunLock", "RunLockedError", "pid_alive"]


class RunLockedError(SlidescoutError):
    """Another live process writes this run directory."""


class RunLock(PidLock):
    """``with RunLock(run_path):`` holds the run directory for this process (re-entrant)."""

    def __init__(self, run_path: Path | str) -> None:
        self.run_path = Path(run_path)
        super().__init__(self.run_path / LOCK_NAME, reentrant=True)

    def busy(self, holder: dict[str, Any]) -> SlidescoutError:
        return RunLockedError(
            f"{self.run_path} is being written by pid {holder.get('pid')} on "
            f"{holder.get('host')} (since {holder.get('started', '?')}); wait for that run to end "
            f"or stop it, or choose another --out. If that process is gone, delete {self.path}"
        )
