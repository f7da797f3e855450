"""Getting the benchmark's slides: ``slidescout data fetch|status|manifest multipathqa``.

- ``plan``: which slides the question file names and where each comes from;
- ``download``/``retry``: resumable HTTP downloads with tenacity retries;
- ``sources``: the GDC, GTEx and Kaggle (PANDA) specifics;
- ``runner``: the whole fetch (lock, sizes, disk check, progress, summary);
- ``status``: what a folder holds, and a GDC manifest for the gdc-client.
"""

from slidescout.eval.fetch.plan import GDC_URL, GTEX_URL, SlideItem, default_csv, plan_slides
from slidescout.eval.fetch.retry import RetryPolicy, SlideFailed
from slidescout.eval.fetch.runner import (
    FetchConfig,
    FetchSummary,
    FolderLock,
    Outcome,
    fetch_slides,
    human_bytes,
)
from slidescout.eval.fetch.status import (
    SlideStatus,
    StatusReport,
    can_run_line,
    folder_status,
    write_manifest,
)

__all__ = [
    "GDC_URL",
    "GTEX_URL",
    "FetchConfig",
    "FetchSummary",
    "FolderLock",
    "Outcome",
    "RetryPolicy",
    "SlideFailed",
    "SlideItem",
    "SlideStatus",
    "StatusReport",
    "can_run_line",
    "default_csv",
    "fetch_slides",
    "folder_status",
    "human_bytes",
    "plan_slides",
    "write_manifest",
]
