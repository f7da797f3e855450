"""A lock file that keeps a second ``data fetch`` out of a folder another one is filling.

The lock is ``<folder>/.slidescout/fetch.lock``, created exclusively and holding the holder's
pid, host and start time. A lock left by a process that no longer runs on this host is taken
over; a lock from another host is respected (its process cannot be checked from here).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from slidescout.errors import DatasetError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


class FolderLock:
    """``with FolderLock(folder): ...``; raises :class:`DatasetError` naming the holder."""

    def __init__(self, folder: str | Path, what: str = "slidescout data fetch") -> None:
        self.folder = Path(folder)
        self.path = self.folder / ".slidescout" / "fetch.lock"
        self.what = what
        self._held = False

    def _holder(self) -> dict[str, object]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                pid, host = holder.get("pid"), holder.get("host")
                stale = isinstance(pid, int) and host == me["host"] and not _alive(pid)
                if stale or (not holder and time.time() - self._mtime() > 60):
                    self.path.unlink(missing_ok=True)  # left by a process that is gone
                    continue
                since = f", since {holder['since']}" if holder.get("since") else ""
                raise DatasetError(
                    f"another {self.what} (pid {pid} on host {host}{since}) is fetching into {self.folder}; "
                    f"wait for it to finish, or remove {self.path} if that process is gone"
                ) from None
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(me, f)
            self._held = True
            return
        raise DatasetError(f"cannot take the lock {self.path}; remove it if no fetch is running")

    def _mtime(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return time.time()

    def release(self) -> None:
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
