"""The viewer over a folder of runs (``slidescout view runs/``): a list of every run, each served
by its own single-run app under ``/runs/<name>/``.

A run is a folder below the root (up to three levels down) with a ``manifest.json`` or a
``traces/`` folder. Names in URLs are matched against that list only: no path from a client is
ever opened.
"""

from __future__ import annotations

import html
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from slidescout.errors import SlidescoutError
from slidescout.traces.viewer.app import JSON, STATIC_DIR, SecurityHeaders, create_app
from slidescout.traces.viewer.compare_page import compare_page
from slidescout.traces.viewer.runindex import RunIndex

__all__ = ["RunsFolder", "create_runs_app", "find_runs", "is_run_dir", "run_row"]

_SKIP = {"blobs", "traces", "slides", "plots", "node_modules", "__pycache__"}


def is_run_dir(p: Path) -> bool:
    """A run directory: ``manifest.json`` or ``traces/`` inside."""
    return (p / "manifest.json").is_file() or (p / "traces").is_dir()


def find_runs(root: Path, depth: int = 3) -> list[str]:
    """Names (paths relative to ``root``, with ``/``) of the run directories below ``root``.

    A folder that is (or lies behind) a symlink leading out of ``root`` is left out: the viewer
    serves what is inside the folder it was given, nothing else."""
    found: list[str] = []
    real_root = root.resolve()

    def inside(c: Path) -> bool:
        try:
            return c.resolve().is_relative_to(real_root)
        except (OSError, RuntimeError):  # a symlink loop
            return False

    def walk(d: Path, level: int) -> None:
        try:
            children = sorted(
                c
                for c in d.iterdir()
                if c.is_dir() and not c.name.startswith(".") and c.name not in _SKIP and inside(c)
            )
        except OSError:
            return
        for c in children:
            if is_run_dir(c):
                found.append(c.relative_to(root).as_posix())
            elif level < depth:
                walk(c, level + 1)

    walk(root, 1)
    return found


def _row(name: str, index: RunIndex | None, error: str | None, path: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "href": f"runs/{quote(name)}/", "error": error}
    try:
        out["modified"] = max(
            (
                p.stat().st_mtime
                for p in (path, path / "results.jsonl", path / "traces")
                if p.exists()
            ),
            default=None,
        )
    except OSError:
        out["modified"] = None
    if index is not None:
        s = index.summary()
        out.update(
            {
                k: s[k]
                for k in (
                    "model",
                    "preset",
                    "created_at",
                    "n_samples",
                    "n_running",
                    "n_scored",
                    "n_correct",
                    "cost_usd",
                    "cost_unknown",
                    "tasks",
                )
            }
        )
    return out


def run_row(name: str, path: Path) -> dict[str, Any]:
    """The home page's row of one run (``error`` set when it cannot be read)."""
    try:
        return _row(name, RunIndex(path), None, path)
    except SlidescoutError as exc:
        return _row(name, None, str(exc), path)


class RunsFolder:
    """The list of runs under a folder, and one single-run app per run, made on first use."""

    def __init__(self, root: Path, openseadragon_dir: Path | None) -> None:
        self.root = root.resolve()
        self.osd_dir = openseadragon_dir
        self._lock = threading.Lock()
        self._indexes: dict[str, RunIndex] = {}
        self._apps: dict[str, Any] = {}
        self.names: list[str] = find_runs(self.root)

    def rows(self) -> list[dict[str, Any]]:
        self.names = find_runs(self.root)
        rows = []
        for name in self.names:
            index, error = None, None
            try:
                with self._lock:
                    index = self._indexes.get(name) or self._indexes.setdefault(
                        name, RunIndex(self.root / name)
                    )
            except SlidescoutError as exc:
                error = str(exc)
            rows.append(_row(name, index, error, self.root / name))
        return sorted(rows, key=lambda r: -(r.get("modified") or 0))

    def match(self, route_path: str) -> str | None:
        """The run whose name starts ``route_path`` (``/<name>/...``), longest name first."""
        for attempt in range(2):
            for name in sorted(self.names, key=len, reverse=True):
                if route_path == f"/{name}" or route_path.startswith(f"/{name}/"):
                    return name
            if attempt == 0:
                self.names = find_runs(self.root)
        return None

    def index_for(self, name: str) -> RunIndex:
        """The index of a listed run (made on first use)."""
        with self._lock:
            if name not in self._indexes:
                self._indexes[name] = RunIndex(self.root / name)
            return self._indexes[name]

    def app_for(self, name: str) -> Any:
        with self._lock:
            if name not in self._apps:
                self._apps[name] = create_app(self.root / name, openseadragon_dir=self.osd_dir)
            return self._apps[name]


def _fmt_pct(n: int, d: int) -> str:
    return f"{100 * n / d:.1f}%" if d else "–"


def _page(folder: RunsFolder, rows: list[dict[str, Any]], notice: str = "") -> str:
    e = html.escape
    body = []
    for r in rows:
        if r.get("error"):
            body.append(
                f'<tr><td class="c-id">{e(r["name"])}</td><td colspan="6" class="err">{e(r["error"])}</td></tr>'
            )
            continue
        cost = "–" if r.get("cost_usd") is None else f"${r['cost_usd']:.4f}"
        body.append(
            f'<tr><td class="c-id"><a href="{e(r["href"])}">{e(r["name"])}</a></td><td>{e(r.get("model") or "–")}</td>'
            f'<td>{e(r.get("preset") or "–")}</td><td class="c-num">{r.get("n_samples", 0)}'
            + (
                f' <span class="muted">({r["n_running"]} running)</span>'
                if r.get("n_running")
                else ""
            )
            + f'</td><td class="c-num">{_fmt_pct(r.get("n_correct", 0), r.get("n_scored", 0))}</td>'
            f'<td class="c-num">{cost}</td><td>{e((r.get("created_at") or "")[:19].replace("T", " "))}</td>'
            f'<td class="c-pick"><input type="checkbox" name="run" value="{e(r["name"])}" '
            f'aria-label="Compare {e(r["name"])}"></td></tr>'
        )
    table = (
        '<form method="get" action="compare" class="compare-form">'
        '<div class="table-wrap"><table class="samples runs"><caption class="sr-only">Runs</caption><thead><tr>'
        '<th scope="col" class="c-id">Run</th><th scope="col">Model</th><th scope="col">Preset</th>'
        '<th scope="col" class="c-num">Samples</th><th scope="col" class="c-num">Accuracy</th>'
        '<th scope="col" class="c-num">Cost</th><th scope="col">Started (UTC)</th>'
        '<th scope="col" class="c-pick">Compare</th></tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
        + (
            '<p class="compare-bar"><button type="submit" class="btn">Compare the two selected runs</button> '
            '<span class="muted small">per sample: answers, results, cost and steps side by side</span></p>'
            if len(rows) > 1
            else ""
        )
        + "</form>"
    )
    empty = "" if rows else '<p class="empty">No runs in this folder yet.</p>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(folder.root.name)} · slidescout runs</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="static/viewer.css"></head>
<body><a class="skip-link" href="#main">Skip to content</a>
<header class="topbar"><a class="brand" href="./"><span class="logo" aria-hidden="true"></span>slidescout</a>
<nav class="crumbs" aria-label="Breadcrumb"><ol><li><span aria-current="page">{e(folder.root.name)}</span></li></ol></nav></header>
<main id="main" class="run-page"><h1 class="runs-title">{len(rows)} run{"" if len(rows) == 1 else "s"} in {e(folder.root.name)}</h1>
{f'<p class="notice notice-warn" role="alert">{e(notice)}</p>' if notice else ""}{table}{empty}</main></body></html>"""


def create_runs_app(
    root: Path | str,
    *,
    openseadragon_dir: Path | None = None,
    allowed_hosts: list[str] | None = None,
) -> Starlette:
    """The ASGI app for a folder of runs: ``/`` lists them, ``/runs/<name>/`` is each run's viewer."""
    folder = RunsFolder(Path(root), openseadragon_dir)

    def home(request: Request) -> Response:
        return HTMLResponse(_page(folder, folder.rows()))

    def compare(request: Request) -> Response:
        picked = [n for n in request.query_params.getlist("run") if n]
        names = [m for m in (folder.match(f"/{n}") for n in picked[:2]) if m is not None]
        if len(picked) != 2 or len(names) != 2 or names[0] == names[1]:
            return HTMLResponse(
                _page(folder, folder.rows(), notice="Pick two different runs to compare.")
            )
        # the older run first (the baseline, as ``slidescout compare`` takes its first run)
        first, second = sorted(
            names, key=lambda n: (str(folder.index_for(n).manifest().get("created_at") or ""), n)
        )
        page = compare_page(
            (first, second),
            folder.index_for(first),
            folder.index_for(second),
            only_diff=bool(request.query_params.get("diff")),
        )
        return HTMLResponse(page)

    def api_runs(request: Request) -> Response:
        return JSON({"root": folder.root.name, "runs": folder.rows()})

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        root_path, path = scope.get("root_path", ""), scope["path"]
        rest = (
            path[len(root_path) :] if path.startswith(root_path) else path
        )  # "/<name>/..." below /runs
        name = folder.match(rest)
        if name is None:
            await JSON({"error": "no such run in this folder"}, status_code=404)(
                scope, receive, send
            )
            return
        if rest == f"/{name}":
            await RedirectResponse(quote(f"{scope.get('root_path', '')}/{name}/"))(
                scope, receive, send
            )
            return
        home = root_path[: -len("/runs")] if root_path.endswith("/runs") else root_path
        sub = dict(scope, root_path=f"{root_path}/{name}")
        sub["slidescout.runs_home"] = f"{home}/"
        await folder.app_for(name)(sub, receive, send)

    routes: list[Any] = [
        Route("/", home),
        Route("/api/runs", api_runs),
        Route("/compare", compare),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        Mount("/runs", app=dispatch),
    ]
    middleware = [Middleware(SecurityHeaders)]
    if allowed_hosts:
        middleware.insert(0, Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    app = Starlette(routes=routes, middleware=middleware)
    app.state.runs = folder
    return app
