"""One file over HTTP into ``<name>.part``, resuming with ``Range`` after a dropped connection.

The ``.part`` file keeps every byte received, across retries and across runs: a new attempt asks
for ``bytes=<part size>-`` and appends. A server that answers 200 instead of 206 starts the file
over. Verification (size, md5, opening as a slide) happens after, before the final rename.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import httpx

from slidescout.eval.fetch.retry import (
    RetryPolicy,
    SlideFailed,
    TransientError,
    check_response,
    retrying,
)

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
CHUNK = 1 << 20


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def parse_content_range(value: str | None) -> tuple[int, int | None] | None:
    """``bytes 100-199/1000`` -> (100, 1000); the total is None for ``*``."""
    m = _CONTENT_RANGE.match(value or "")
    if not m:
        return None
    return int(m.group(1)), (None if m.group(3) == "*" else int(m.group(3)))


def md5_of(path: Path) -> str:
    h = hashlib.md5()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK * 4):
            h.update(chunk)
    return h.hexdigest()


async def _attempt(
    client: httpx.AsyncClient,
    url: str,
    part: Path,
    expected: int | None,
    what: str,
    advance: Callable[[int], None],
    on_size: Callable[[int], None],
) -> int | None:
    offset = part.stat().st_size if part.exists() else 0
    if expected is not None and offset > expected:
        part.unlink()
        offset = 0
    if expected is not None and offset == expected and offset > 0:
        return expected
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    async with client.stream("GET", url, headers=headers) as resp:
        if resp.status_code == 416 and offset:  # our part is not a prefix the server knows
            part.unlink()
            raise TransientError(
                f"{what} refused the range bytes={offset}-; starting this file again"
            )
        check_response(resp, what)
        total: int | None
        if resp.status_code == 206:
            cr = parse_content_range(resp.headers.get("content-range"))
            if cr is None or cr[0] != offset:
                raise TransientError(
                    f"{what} answered Range bytes={offset}- with {resp.headers.get('content-range')!r}"
                )
            total, mode = cr[1], "ab"
        else:  # 200: the whole file (bytes received before count again: they came twice)
            offset, mode = 0, "wb"
            length = resp.headers.get("content-length")
            total = int(length) if length and length.isdigit() else None
        if total is not None:
            if expected is not None and total != expected:
                raise SlideFailed(
                    f"{what} serves {total} bytes but the files endpoint says {expected}"
                )
            on_size(total)
        with part.open(mode) as f:
            async for (
                chunk
            ) in resp.aiter_bytes():  # no chunk_size: a buffer would lose bytes on a drop
                f.write(chunk)
                advance(len(chunk))
    size = part.stat().st_size
    if total is not None and size != total:
        raise TransientError(f"{what} ended the file at {size} of {total} bytes")
    return total


async def download(
    client: httpx.AsyncClient,
    url: str,
    dest: Path,
    *,
    expected_size: int | None,
    what: str,
    policy: RetryPolicy,
    advance: Callable[[int], None] = lambda n: None,
    on_size: Callable[[int], None] = lambda n: None,
) -> tuple[Path, int | None]:
    """Fetch ``url`` into ``dest.part`` with retries; returns (the part file, the size the server gave)."""
    part = part_path(dest)
    part.parent.mkdir(parents=True, exist_ok=True)
    total: int | None = None
    async for attempt in retrying(policy):
        with attempt:
            total = await _attempt(client, url, part, expected_size, what, advance, on_size)
    return part, total
