"""``slidescout view`` (local web viewer) and ``slidescout report-html`` (self-contained report)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from slidescout.cli.app import app, console, err_console
from slidescout.cli.paths import check_output_file
from slidescout.errors import ConfigError
from slidescout.eval.textfit import print_table
from slidescout.traces.rundir import RunDir
from slidescout.traces.viewer import assets
from slidescout.traces.viewer.report import write_report
from slidescout.traces.viewer.runs import RunsFolder, is_run_dir, run_row
from slidescout.traces.viewer.server import serve


@app.command("view")
def view(
    path: Path | None = typer.Argument(
        None,
        help="A run directory, one trace file (RUN/traces/ID.json), "
        "or a folder of runs (all of them are listed).",
    ),
    port: int = typer.Option(0, "--port", help="Port to listen on (default: a free one)."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to bind; anything but loopback exposes the run."
    ),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in a browser."),
    install: bool = typer.Option(
        True,
        "--install/--no-install",
        help="Install OpenSeadragon with npm on first use (else: static thumbnails).",
    ),
    setup: bool = typer.Option(
        False, "--setup", help="Only install the viewer's npm packages, then exit."
    ),
    list_runs: bool = typer.Option(
        False, "--list", help="List the runs (a run, or every run of a folder) and exit."
    ),
    as_json: bool = typer.Option(False, "--json", help="With --list: print the runs as JSON."),
) -> None:
    """Serve a local web viewer: the samples of a run (or every run of a folder), and each trace over its slide."""
    if as_json and not list_runs:
        raise ConfigError("--json goes with --list (the viewer itself is a web page)")
    if setup:
        where = assets.install()
        console.print(f"OpenSeadragon installed: {where}", highlight=False, soft_wrap=True)
        return
    if path is None:
        raise ConfigError(
            "give a run directory, a trace file or a folder of runs: slidescout view RUN_DIR"
        )
    if not path.exists():
        raise ConfigError(f"{path}: no such run directory or trace file")
    if list_runs:
        _list(path, as_json)
        return
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be 0 to 65535, got {port}")

    osd = assets.ensure_openseadragon(
        allow_install=install,
        log=lambda line: err_console.print(line, highlight=False, soft_wrap=True),
    )
    serve(
        path,
        host=host,
        port=port,
        open_browser=open_browser,
        openseadragon_dir=osd,
        echo=lambda line: console.print(line, highlight=False, soft_wrap=True),
    )


def _list(path: Path, as_json: bool) -> None:
    """``view --list``: what the viewer's home page lists, as a table or JSON."""
    if is_run_dir(path) or path.is_file():
        rows = [run_row(path.name, path)]
    else:
        rows = RunsFolder(path, None).rows()
        if not rows:
            raise ConfigError(f"{path}: no run directories (manifest.json or traces/) below it")
    if as_json:
        sys.stdout.write(json.dumps({"runs": rows}, default=str) + "\n")
        return
    table = Table(title=f"{len(rows)} run(s) in {path}", title_justify="left")
    for col in ("run", "model", "preset", "samples", "scored", "correct", "cost"):
        table.add_column(col, justify="left" if col in ("run", "model", "preset") else "right")
    for r in rows:
        cost = "unknown" if r.get("cost_usd") is None else f"${r['cost_usd']:.4f}"
        table.add_row(
            str(r["name"]),
            str(r.get("model") or "-"),
            str(r.get("preset") or "-"),
            *(str(r.get(k, "-")) for k in ("n_samples", "n_scored", "n_correct")),
            r.get("error") or cost,
        )
    print_table(console, table)


@app.command("report-html")
def report_html(
    path: Path = typer.Argument(..., help="A run directory, or one trace file."),
    out: Path = typer.Option(Path("report.html"), "-o", "--out", help="The HTML file to write."),
    limit: int | None = typer.Option(
        None, "--limit", help="At most this many samples (in run order)."
    ),
    max_mb: float = typer.Option(
        50.0,
        "--max-mb",
        min=1.0,
        help="Size to stay within: images are embedded smaller until the file fits.",
    ),
) -> None:
    """Write one self-contained HTML file (images embedded, downscaled to fit --max-mb) that opens offline."""
    if not path.exists():
        raise ConfigError(f"{path}: no such run directory or trace file")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit}: give 1 or more samples")
    if path.is_dir() and next(RunDir.open(path).iter_traces(), None) is None:
        raise ConfigError(f"{path} holds no traces (traces/*.json): nothing to report")
    check_output_file(out, "-o", suffixes=(".html", ".htm"))
    written = write_report(path, out, limit=limit, max_bytes=int(max_mb * 1e6))
    size = written.stat().st_size / 1e6
    console.print(f"wrote {written} ({size:.1f} MB)", highlight=False, soft_wrap=True)
    if size > max_mb:
        err_console.print(
            f"warning: the report is over {max_mb:g} MB ({size:.1f} MB) even with the smallest images; "
            "give --limit N to include fewer samples",
            highlight=False,
        )
