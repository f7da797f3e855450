"""The three sources: the GDC (files + data endpoints), the GTEx image download endpoint, and
Kaggle's PANDA competition through the optional ``kaggle`` package."""

from __future__ import annotations

import asyncio
import shutil
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from slidescout.eval.fetch.plan import PANDA_COMPETITION, SlideItem
from slidescout.eval.fetch.retry import (
    RetryPolicy,
    SlideFailed,
    TransientError,
    check_response,
    describe,
    retrying,
)
from slidescout.eval.fetch.state import RemoteInfo
from slidescout.slides import open_slide

KAGGLE_HINT = (
    "PANDA slides need the kaggle package and your Kaggle API token: pip install 'slidescout[kaggle]', "
    "put kaggle.json in ~/.kaggle/ (or set KAGGLE_USERNAME and KAGGLE_KEY) and accept the rules of "
    f"kaggle.com/competitions/{PANDA_COMPETITION}"
)


def base(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def gdc_files_url(gdc: str, file_id: str) -> str:
    return f"{base(gdc)}files/{quote(file_id)}?fields=file_name,file_size,md5sum"


def gdc_data_url(gdc: str, file_id: str) -> str:
    return f"{base(gdc)}data/{quote(file_id)}"


def gtex_url(gtex: str, sample_id: str) -> str:
    return f"{base(gtex)}{quote(sample_id)}"


async def gdc_info(
    client: httpx.AsyncClient, gdc: str, item: SlideItem, policy: RetryPolicy
) -> RemoteInfo:
    """Name, size and md5 of a GDC file from the files endpoint."""
    what = "the GDC files endpoint"
    data: Any = None
    async for attempt in retrying(policy):
        with attempt:
            resp = await client.get(gdc_files_url(gdc, item.remote_id))
            check_response(resp, what)
            try:
                data = resp.json().get("data") or {}
            except ValueError:
                raise TransientError(f"{what} answered with something that is not JSON") from None
    try:
        size = int(data["file_size"])
        md5 = str(data["md5sum"]).lower()
    except (KeyError, TypeError, ValueError):
        raise SlideFailed(f"{what} gave no file_size/md5sum for {item.remote_id}") from None
    return RemoteInfo(size=size, md5=md5, file_name=data.get("file_name"))


async def gtex_size(
    client: httpx.AsyncClient, gtex: str, item: SlideItem, policy: RetryPolicy
) -> int | None:
    """The size the GTEx endpoint announces (HEAD), or None when it does not say."""
    resp: httpx.Response | None = None
    try:
        async for attempt in retrying(policy):
            with attempt:
                resp = await client.head(gtex_url(gtex, item.remote_id))
                check_response(resp, "the GTEx image endpoint")
    except (SlideFailed, TransientError, httpx.TransportError):
        return None  # the GET will tell
    if resp is None:
        return None
    length = resp.headers.get("content-length")
    return int(length) if length and length.isdigit() else None


def opens_as_slide(path: Path) -> str | None:
    """None when ``path`` opens as a slide with a non-empty level 0, else the reason."""
    try:
        with open_slide(path) as s:
            w, h = s.dimensions
    except Exception as exc:  # any reader failure means a damaged or wrong file
        return f"the file does not open as a slide ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    return None if w > 0 and h > 0 else "the slide has an empty level 0"


def load_kaggle() -> Any:
    """The authenticated ``kaggle`` API, or :class:`SlideFailed` with the one-line fix."""
    try:
        import kaggle  # optional extra; authenticates on import

        api = kaggle.api
    except BaseException as exc:  # noqa: BLE001 - kaggle raises OSError, SystemExit...; never a traceback
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise SlideFailed(KAGGLE_HINT) from None
    return api


def kaggle_download(api: Any, item: SlideItem, work: Path) -> Path:
    """Download one PANDA image (``train_images/<id>``) into ``work``; unzips what Kaggle zipped."""
    work.mkdir(parents=True, exist_ok=True)
    try:
        api.competition_download_file(
            PANDA_COMPETITION, f"train_images/{item.remote_id}", path=str(work), quiet=True
        )
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, KeyboardInterrupt):
            raise
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if any(code in text for code in ("401", "403", "404")):
            raise SlideFailed(f"Kaggle refused {item.remote_id} ({text}); {KAGGLE_HINT}") from None
        raise TransientError(f"Kaggle download of {item.remote_id} failed: {text}") from None
    got = work / Path(item.remote_id).name
    zipped = got.with_name(got.name + ".zip")
    if zipped.exists():
        with zipfile.ZipFile(zipped) as z:
            member = next((m for m in z.namelist() if Path(m).name == got.name), None)
            if member is None:
                raise SlideFailed(f"Kaggle's zip for {item.remote_id} does not hold {got.name}")
            with z.open(member) as src, got.open("wb") as dst:
                shutil.copyfileobj(src, dst)
        zipped.unlink()
    if not got.exists():
        raise SlideFailed(f"Kaggle returned no file for {item.remote_id}")
    return got


async def gdc_infos(
    items: list[SlideItem], gdc: str, policy: RetryPolicy, concurrency: int = 8
) -> tuple[dict[str, RemoteInfo], dict[str, str]]:
    """Files-endpoint answers for the TCGA items: (infos by item key, one-line errors by item key)."""
    infos: dict[str, RemoteInfo] = {}
    errors: dict[str, str] = {}
    sem = asyncio.Semaphore(concurrency)

    async def one(client: httpx.AsyncClient, item: SlideItem) -> None:
        async with sem:
            try:
                infos[item.key] = await gdc_info(client, gdc, item, policy)
            except Exception as exc:
                errors[item.key] = describe(exc)

    async with httpx.AsyncClient(
        timeout=httpx.Timeout(policy.timeout), follow_redirects=True
    ) as client:
        await asyncio.gather(*(one(client, it) for it in items if it.source == "tcga"))
    return infos, errors
