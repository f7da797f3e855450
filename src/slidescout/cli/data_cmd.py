"""``slidescout data fetch|status|manifest multipathqa``: get the benchmark's slides."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from slidescout.cli.app import app, console
from slidescout.cli.paths import check_input_dir
from slidescout.cli.progress import TransferProgress
from slidescout.errors import ConfigError, DatasetError
from slidescout.eval.fetch import (
    GDC_URL,
    GTEX_URL,
    FetchConfig,
    RetryPolicy,
    default_csv,
    fetch_slides,
    folder_status,
    human_bytes,
    plan_slides,
    write_manifest,
)
from slidescout.eval.fetch.sources import gdc_infos
from slidescout.eval.fetch.state import FetchState

if TYPE_CHECKING:
    from slidescout.eval.fetch import FetchConfig, FetchSummary, SlideItem

# The eval layer is imported inside the commands: importing it costs about a second, which every
# other command would pay.
data_app = typer.Typer(
    help="Get benchmark slides: fetch (resumable, verified), status, GDC manifest.",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")

DATASETS = ("multipathqa",)
_GDC = "https://api.gdc.cancer.gov/"  # shown in --help; the value used is eval.fetch.plan.GDC_URL
_GTEX = "https://brd.nci.nih.gov/brd/imagedownload/"
_TASKS_HELP = "Only these tasks, comma-separated (tcga, gtex, panda, tcga_slidebench, tcga_expert_vqa); default all."


def _dataset(name: str) -> None:
    if name.lower() not in DATASETS:
        raise ConfigError(
            f"unknown dataset {name!r}; the one with downloadable slides is: {', '.join(DATASETS)}"
        )


def _csv(path: Path | None) -> Path:
    return path if path is not None else default_csv()


def _print_summary(summary: FetchSummary, root: Path) -> None:
    fetched, present, failed = summary.of("fetched"), summary.of("present"), summary.of("failed")
    console.print(
        f"{len(fetched)} fetched, {len(present)} already present, {len(failed)} failed; "
        f"{human_bytes(summary.bytes_fetched)} fetched into {root}",
        highlight=False,
    )
    by_reason: dict[str, list[str]] = defaultdict(list)
    for o in failed:
        by_reason[o.reason].append(o.item.name)
    for reason, names in by_reason.items():
        shown = ", ".join(names[:5]) + (f" +{len(names) - 5} more" if len(names) > 5 else "")
        console.print(f"[red]failed[/] {shown}: {reason}", highlight=False)


@data_app.command("fetch")
def fetch_cmd(
    dataset: str = typer.Argument(..., help="multipathqa"),
    to: Path = typer.Option(..., "--to", help="Folder for the slides (one subfolder per source)."),
    csv_path: Path | None = typer.Option(
        None, "--csv", help="Question file (default: the MultiPathQA.csv shipped with slidescout)."
    ),
    tasks: str | None = typer.Option(None, "--tasks", help=_TASKS_HELP),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="Only the first N slides (after --tasks)."
    ),
    concurrency: int = typer.Option(
        4, "--concurrency", "-c", min=1, max=64, help="Slides downloaded at once."
    ),
    gdc_url: str | None = typer.Option(
        None, "--gdc-url", help=f"GDC API base URL (files and data endpoints; default {_GDC})."
    ),
    gtex_url: str | None = typer.Option(
        None,
        "--gtex-url",
        help=f"GTEx image download base URL, the sample id is appended (default {_GTEX}).",
    ),
    retries: int = typer.Option(
        8, "--retries", min=1, max=100, help="Attempts per request (connection errors, 429, 5xx)."
    ),
    retry_wait: float = typer.Option(
        1.0,
        "--retry-wait",
        min=0.0,
        help="First wait before a retry, seconds (doubles each time; a server's Retry-After wins).",
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    """Download the slides a question file names: resumable, checked (md5/size, opens as a slide)."""
    _dataset(dataset)
    items = plan_slides(_csv(csv_path), tasks, limit)
    if not items:
        raise DatasetError("no slides to fetch for these tasks")
    cfg = FetchConfig(
        root=to.expanduser(),
        gdc_url=gdc_url or GDC_URL,
        gtex_url=gtex_url or GTEX_URL,
        concurrency=concurrency,
        policy=RetryPolicy(attempts=retries, base=retry_wait),
        progress=None if no_progress else TransferProgress(console),
    )
    _run_fetch(items, cfg)


def _run_fetch(items: list[SlideItem], cfg: FetchConfig) -> FetchSummary:
    summary = fetch_slides(items, cfg)
    _print_summary(summary, cfg.root)
    failed = summary.of("failed")
    if failed:
        first = failed[0]
        more = f" (and {len(failed) - 1} more, listed above)" if len(failed) > 1 else ""
        raise DatasetError(
            f"{len(failed)} of {len(summary.outcomes)} slides could not be fetched: "
            f"{first.item.name}: {first.reason}{more}"
        )
    return summary


@data_app.command("status")
def status_cmd(
    dataset: str = typer.Argument(..., help="multipathqa"),
    to: Path = typer.Option(..., "--to", help="The folder the slides were fetched into."),
    csv_path: Path | None = typer.Option(
        None, "--csv", help="Question file (default: the shipped MultiPathQA.csv)."
    ),
    tasks: str | None = typer.Option(None, "--tasks", help=_TASKS_HELP),
    verify: bool = typer.Option(
        False, "--verify", help="Also check md5 (TCGA) or that each slide opens (GTEx, PANDA)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the status as one JSON object."),
) -> None:
    """Per task: slides present, missing or damaged, and how many questions can run."""
    _dataset(dataset)
    root = check_input_dir(to.expanduser(), "--to folder")  # a typo must not read "0 present"
    rep = folder_status(_csv(csv_path), root, tasks, verify=verify)
    if as_json:
        known, missing, unknown = rep.bytes()
        data = {
            "root": str(rep.root),
            "tasks": [dataclasses.asdict(t) for t in rep.tasks],
            "slides": {k: rep.count(k) for k in ("present", "missing", "damaged")},
            "damaged": [
                {"path": str(s.path), "reason": s.reason}
                for s in rep.slides
                if s.state == "damaged"
            ],
            "bytes": {"known": known, "to_fetch": missing, "slides_of_unknown_size": unknown},
            "questions": rep.questions,
            "runnable": rep.runnable,
        }
        sys.stdout.write(json.dumps(data) + "\n")
        return
    table = Table(title=f"slides under {rep.root}", title_justify="left")
    for col in ("task", "slides", "present", "missing", "damaged", "questions", "can run"):
        table.add_column(col, justify="left" if col == "task" else "right")
    for t in rep.tasks:
        table.add_row(
            t.task,
            str(t.slides),
            str(t.present),
            str(t.missing),
            str(t.damaged),
            str(t.questions),
            str(t.runnable),
        )
    console.print(table)
    known, missing, unknown = rep.bytes()
    unk = f"; size unknown for {unknown} slides (run data fetch to learn it)" if unknown else ""
    console.print(
        f"{len(rep.slides)} slides: {rep.count('present')} present, {rep.count('missing')} missing, "
        f"{rep.count('damaged')} damaged; {human_bytes(known)} in all, {human_bytes(missing)} still to fetch{unk}",
        highlight=False,
    )
    for s in rep.slides:
        if s.state == "damaged":
            console.print(f"[red]damaged[/] {s.path}: {s.reason}", highlight=False)
    console.print(rep.can_run_line(), highlight=False)


@data_app.command("manifest")
def manifest_cmd(
    dataset: str = typer.Argument(..., help="multipathqa"),
    out: Path = typer.Option(
        ..., "-o", "--out", help="The manifest file to write (for gdc-client download -m)."
    ),
    csv_path: Path | None = typer.Option(
        None, "--csv", help="Question file (default: the shipped MultiPathQA.csv)."
    ),
    tasks: str | None = typer.Option(None, "--tasks", help=_TASKS_HELP),
    to: Path | None = typer.Option(
        None, "--to", help="A fetch folder whose remembered md5s and sizes to use."
    ),
    gdc_url: str | None = typer.Option(
        None, "--gdc-url", help=f"GDC API base URL, asked for md5 and size (default {_GDC})."
    ),
    offline: bool = typer.Option(
        False, "--offline", help="Ask nothing: write only the id and filename columns."
    ),
) -> None:
    """Write a GDC manifest of the TCGA slides, for users who prefer the gdc-client."""

    _dataset(dataset)
    items = [it for it in plan_slides(_csv(csv_path), tasks) if it.source == "tcga"]
    if not items:
        raise DatasetError(
            "no TCGA slides among these tasks; a GDC manifest lists only TCGA slides"
        )
    infos = (
        dict(FetchState.load(check_input_dir(to.expanduser(), "--to folder")).remote)
        if to is not None
        else {}
    )
    if not offline:
        todo = [it for it in items if it.key not in infos or not infos[it.key].md5]
        got, errors = asyncio.run(gdc_infos(todo, gdc_url or GDC_URL, RetryPolicy()))
        if errors:
            key, reason = next(iter(errors.items()))
            raise DatasetError(
                f"the GDC files endpoint failed for {len(errors)} of {len(todo)} files "
                f"({key.split(':', 1)[1]}: {reason}); retry, or use --offline"
            )
        infos.update(got)
    n = write_manifest(items, infos, out)
    console.print(
        f"wrote {out}: {n} TCGA files; download them with: gdc-client download -m {out} -d DIR",
        highlight=False,
    )
