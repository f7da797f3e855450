"""Crash-safe file writes of a run directory.

- :func:`atomic_write`: write a temporary file beside the target, then rename; on any failure
  (a full disk) the temporary file is removed, so no ``*.tmp`` is left behind.
- :func:`repair_jsonl_tail`: before appending to a JSON-lines file whose last line was cut (a
  kill or a full disk mid-write), end the file cleanly, so the next record is not glued to the
  torn one. A complete last record that only lacks its newline is kept; a torn one is cut off
  and its bytes saved beside the file (``results.jsonl.torn-<time>``), so nothing is destroyed.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

__all__ = ["atomic_write", "repair_jsonl_tail"]


def atomic_write(path: Path | str, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` atomically; never leaves a temporary file behind."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        with open(tmp, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    return path


def repair_jsonl_tail(path: Path | str) -> Path | None:
    """Make ``path`` end with a newline after its last complete record.

    Returns the file holding the torn bytes that were cut off, or None when nothing was cut.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size == 0:
        return None
    with open(path, "rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return None
        # find the start of the last line
        chunk = 1 << 16
        pos = size
        start = 0
        while pos > 0:
            read_from = max(0, pos - chunk)
            f.seek(read_from)
            block = f.read(pos - read_from)
            nl = block.rfind(b"\n")
            if nl >= 0:
                start = read_from + nl + 1
                break
            pos = read_from
        f.seek(start)
        tail = f.read()
        try:
            json.loads(tail.decode("utf-8"))
            complete = True
        except (UnicodeDecodeError, ValueError):
            complete = False
        if complete:  # a whole record without its newline: keep it
            f.seek(size)
            f.write(b"\n")
            f.flush()
            os.fsync(f.fileno())
            return None
        saved = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
        saved.write_bytes(tail)
        f.truncate(start)
        f.flush()
        os.fsync(f.fileno())
        return saved
