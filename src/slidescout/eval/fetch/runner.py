"""``data fetch``: have every planned slide in a folder, verified, fetching only what is missing.

Order of work: take the folder's lock; learn sizes and checksums (GDC files endpoint, GTEx HEAD,
cached in the folder's state); accept files already there that verify; check the free disk space
against the bytes still to fetch; then download ``--concurrency`` slides at a time.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from slidescout.core.pidlock import PidLock
from slidescout.errors import DatasetError, SlidescoutError
from slidescout.eval.datasets import SlideFinder
from slidescout.eval.fetch.download import download, md5_of, part_path
from slidescout.eval.fetch.plan import GDC_URL, GTEX_URL, SlideItem
from slidescout.eval.fetch.retry import RetryPolicy, SlideFailed, describe, retrying
from slidescout.eval.fetch.sources import (
    gdc_data_url,
    gdc_info,
    gtex_size,
    gtex_url,
    kaggle_download,
    load_kaggle,
    opens_as_slide,
)
from slidescout.eval.fetch.state import FetchState, RemoteInfo


def disk_free(path: Path) -> int:
    return shutil.disk_usage(path).free


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


class FolderLock(PidLock):
    """Keeps a second ``data fetch`` out of a folder another one is filling:
    ``<folder>/.slidescout/fetch.lock`` (a :class:`~slidescout.core.pidlock.PidLock`)."""

    def __init__(self, folder: str | Path, what: str = "slidescout data fetch") -> None:
        self.folder = Path(folder)
        self.what = what
        super().__init__(self.folder / ".slidescout" / "fetch.lock")

    def busy(self, holder: dict[str, Any]) -> SlidescoutError:
        started = holder.get("started") or holder.get("since")
        since = f", since {started}" if started else ""
        return DatasetError(
            f"another {self.what} (pid {holder.get('pid')} on host {holder.get('host')}{since}) is "
            f"fetching into {self.folder}; wait for it to finish, or remove {self.path} if that "
            "process is gone"
        )


@dataclass
class FetchConfig:
    """Where to fetch into, from where, and how (every part injectable for tests)."""

    root: Path
    gdc_url: str = GDC_URL
    gtex_url: str = GTEX_URL
    concurrency: int = 4
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    disk_free: Callable[[Path], int] | None = None  # default: this module's disk_free
    kaggle: Callable[[], Any] | None = None  # default: sources.load_kaggle
    progress: FetchProgress | None = None  # None: no display


@dataclass
class Outcome:
    item: SlideItem
    status: str  # fetched | present | failed
    path: Path | None = None
    bytes: int = 0  # bytes received over the network for this slide
    reason: str = ""


@dataclass
class FetchSummary:
    outcomes: list[Outcome] = field(default_factory=list)

    def of(self, status: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def bytes_fetched(self) -> int:
        return sum(o.bytes for o in self.outcomes)


class FetchProgress(Protocol):
    """Progress in bytes, overall and per file (the CLI draws it: ``cli.progress``)."""

    def start(self, total: int | None, n: int) -> None: ...

    def grow(self, n: int) -> None:
        """The overall total grows by ``n`` bytes (a file whose size was unknown)."""
        ...

    def file(self, name: str, total: int | None) -> Callable[[int], None]:
        """A file starts; returns the callback that advances it by a number of bytes."""
        ...

    def done(self, advance: Callable[[int], None]) -> None: ...

    def stop(self) -> None: ...


class NoProgress:
    """No progress display."""

    def start(self, total: int | None, n: int) -> None:
        return None

    def grow(self, n: int) -> None:
        return None

    def file(self, name: str, total: int | None) -> Callable[[int], None]:
        return lambda n: None

    def done(self, advance: Callable[[int], None]) -> None:
        return None

    def stop(self) -> None:
        return None


class Fetcher:
    def __init__(self, cfg: FetchConfig, items: list[SlideItem]) -> None:
        self.cfg = cfg
        self.items = items
        self.root = cfg.root
        self.state = FetchState.load(self.root)
        self.errors: dict[str, str] = {}  # remote-info failures by item key
        self._kaggle: Any = None
        self._kaggle_error: str | None = None

    # -- what the sources say ------------------------------------------------------------------
    async def _learn(
        self, client: httpx.AsyncClient, item: SlideItem, sem: asyncio.Semaphore
    ) -> None:
        if item.source == "panda" or (
            item.key in self.state.remote and self.state.remote[item.key].size is not None
        ):
            return
        async with sem:
            try:
                if item.source == "tcga":
                    self.state.remote[item.key] = await gdc_info(
                        client, self.cfg.gdc_url, item, self.cfg.policy
                    )
                elif item.source == "gtex":
                    size = await gtex_size(client, self.cfg.gtex_url, item, self.cfg.policy)
                    if size is not None:
                        self.state.remote[item.key] = RemoteInfo(size=size)
            except Exception as exc:  # reported per slide
                self.errors[item.key] = describe(exc)

    # -- what is already here ------------------------------------------------------------------
    def _check_file(self, item: SlideItem, path: Path, info: RemoteInfo | None) -> str | None:
        """None when ``path`` is the slide (size, md5 or opening as a slide), else what is wrong."""
        size = path.stat().st_size
        if info is not None and info.size is not None and size != info.size:
            return f"size {size} bytes, expected {info.size}"
        if info is not None and info.md5:
            got = md5_of(path)
            return None if got == info.md5 else f"md5 {got} differs from the GDC's {info.md5}"
        return opens_as_slide(path)

    def _present(self, item: SlideItem, path: Path) -> bool:
        info = self.state.remote.get(item.key)
        if info is not None and info.size is not None and path.stat().st_size != info.size:
            return False
        if self.state.is_verified(path):
            return True
        if self._check_file(item, path, info) is None:
            self.state.mark_verified(path, info.md5 if info else None)
            return True
        return False

    # -- fetching ------------------------------------------------------------------------------
    def _accept(
        self, item: SlideItem, got: Path, dest: Path, info: RemoteInfo | None
    ) -> str | None:
        """Verify ``got`` (out of the slide search's sight) and give it its final name (runs in a
        worker thread: it leaves the shared state alone)."""
        check = self.root / ".slidescout" / "verify" / dest.name
        check.parent.mkdir(parents=True, exist_ok=True)
        os.replace(got, check)
        problem = self._check_file(item, check, info)
        if problem is not None:
            check.unlink(missing_ok=True)
            return problem
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(check, dest)
        return None

    async def _get_bytes(
        self,
        client: httpx.AsyncClient,
        item: SlideItem,
        dest: Path,
        info: RemoteInfo | None,
        bar: FetchProgress,
    ) -> tuple[Path, int]:
        """Download one slide's bytes; returns (the downloaded file, bytes received)."""
        received = 0
        expected = info.size if info else None
        advance = bar.file(item.name, expected)

        def count(n: int) -> None:
            nonlocal received
            received += n
            advance(n)

        def seen_size(n: int) -> None:
            if expected is None:
                key_info = self.state.remote.setdefault(item.key, RemoteInfo())
                key_info.size = n

        try:
            if item.source == "panda":
                api = self._kaggle_api()
                work = self.root / ".slidescout" / "kaggle"
                got: Path | None = None
                async for attempt in retrying(self.cfg.policy):
                    with attempt:
                        got = await asyncio.to_thread(kaggle_download, api, item, work)
                assert got is not None
                received = got.stat().st_size
                return got, received
            if item.source == "tcga":
                url, what = gdc_data_url(self.cfg.gdc_url, item.remote_id), "the GDC data endpoint"
            else:
                url, what = gtex_url(self.cfg.gtex_url, item.remote_id), "the GTEx image endpoint"
            part, _ = await download(
                client,
                url,
                dest,
                expected_size=expected,
                what=what,
                policy=self.cfg.policy,
                advance=count,
                on_size=seen_size,
            )
            return part, received
        finally:
            bar.done(advance)

    def _kaggle_api(self) -> Any:
        if self._kaggle_error is not None:
            raise SlideFailed(self._kaggle_error)
        if self._kaggle is None:
            try:
                self._kaggle = (self.cfg.kaggle or load_kaggle)()
            except SlideFailed as exc:
                self._kaggle_error = str(exc)
                raise
        return self._kaggle

    async def _fetch(
        self,
        client: httpx.AsyncClient,
        item: SlideItem,
        dest: Path,
        sem: asyncio.Semaphore,
        bar: FetchProgress,
    ) -> Outcome:
        async with sem:
            total = 0
            problem = ""
            for round_ in (1, 2):
                try:
                    got, received = await self._get_bytes(
                        client, item, dest, self.state.remote.get(item.key), bar
                    )
                    total += received
                    bad = await asyncio.to_thread(
                        self._accept, item, got, dest, self.state.remote.get(item.key)
                    )
                except Exception as exc:  # one slide's failure never stops the others
                    return Outcome(item, "failed", bytes=total, reason=describe(exc))
                finally:
                    self.state.save()
                if bad is None:
                    info = self.state.remote.get(item.key)
                    self.state.mark_verified(
                        dest, info.md5 if info else None
                    )  # in the loop's thread
                    self.state.save()
                    return Outcome(item, "fetched", path=dest, bytes=total)
                problem = bad
                if round_ == 1:
                    bar.grow(received)  # the bytes are fetched once more
            return Outcome(
                item,
                "failed",
                bytes=total,
                reason=f"{problem}, again after fetching it a second time",
            )

    async def run(self) -> FetchSummary:
        self.root.mkdir(parents=True, exist_ok=True)
        cfg = self.cfg
        index = SlideFinder(self.root)
        done: dict[str, Outcome] = {}
        limits = httpx.Limits(max_connections=max(8, cfg.concurrency * 2))
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(cfg.policy.timeout), limits=limits, follow_redirects=True
        ) as client:
            sem = asyncio.Semaphore(max(8, cfg.concurrency * 2))
            await asyncio.gather(*(self._learn(client, it, sem) for it in self.items))
            todo: list[tuple[SlideItem, Path]] = []
            for it in self.items:
                found = index.find(it.name)
                if found is not None and await asyncio.to_thread(self._present, it, found):
                    done[it.key] = Outcome(it, "present", path=found)
                elif it.key in self.errors:
                    done[it.key] = Outcome(it, "failed", reason=self.errors[it.key])
                else:
                    todo.append((it, found or it.default_path(self.root)))
            self.state.save()
            self._check_space(todo)
            bar: FetchProgress = cfg.progress if cfg.progress is not None and todo else NoProgress()
            bar.start(self._remaining(todo)[0], len(todo))
            try:
                sem = asyncio.Semaphore(cfg.concurrency)
                results = await asyncio.gather(
                    *(self._fetch(client, it, dest, sem, bar) for it, dest in todo)
                )
            finally:
                bar.stop()
                self.state.save()
        for o in results:
            done[o.item.key] = o
        return FetchSummary([done[it.key] for it in self.items])

    def _remaining(self, todo: list[tuple[SlideItem, Path]]) -> tuple[int, int]:
        """(bytes still to fetch of the slides whose size is known, number of slides of unknown size)."""
        need, unknown = 0, 0
        for it, dest in todo:
            info = self.state.remote.get(it.key)
            if info is None or info.size is None:
                unknown += 1
                continue
            part = part_path(dest)
            have = part.stat().st_size if part.exists() else 0
            need += max(0, info.size - have)
        return need, unknown

    def _check_space(self, todo: list[tuple[SlideItem, Path]]) -> None:
        need, unknown = self._remaining(todo)
        if not need:
            return
        free = (self.cfg.disk_free or disk_free)(self.root)
        if need > free:
            more = f" (plus {unknown} slides of unknown size)" if unknown else ""
            raise DatasetError(
                f"not enough disk space in {self.root}: {human_bytes(need)} still to fetch{more}, "
                f"{human_bytes(free)} free; free some space or fetch into another folder (--to)"
            )


def fetch_slides(items: list[SlideItem], cfg: FetchConfig) -> FetchSummary:
    """Fetch ``items`` into ``cfg.root`` under the folder's lock (see the module docstring)."""
    cfg.root.mkdir(parents=True, exist_ok=True)
    with FolderLock(cfg.root):
        return asyncio.run(Fetcher(cfg, items).run())
