"""The trace viewer (a local Starlette app over a run directory) and the self-contained HTML report.

Heavy imports (starlette, uvicorn) happen in the functions that need them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["create_app", "serve", "start_in_thread", "write_report"]


def create_app(path: Path | str, **kwargs: Any) -> Any:
    """The ASGI app for a run directory or trace file (see ``app.create_app``)."""
    from slidescout.traces.viewer.app import create_app as _create

    return _create(path, **kwargs)


def serve(path: Path | str, **kwargs: Any) -> None:
    """Serve the viewer until interrupted (see ``server.serve``)."""
    from slidescout.traces.viewer.server import serve as _serve

    _serve(path, **kwargs)


def start_in_thread(path: Path | str, **kwargs: Any) -> Any:
    """Serve the viewer in a background thread; returns an object with ``url`` and ``stop()``."""
    from slidescout.traces.viewer.server import start_in_thread as _start

    return _start(path, **kwargs)


def write_report(path_in: Path | str, out_html: Path | str, **kwargs: Any) -> Path:
    """Write a self-contained HTML report of a run directory or trace (see ``report.write_report``)."""
    from slidescout.traces.viewer.report import write_report as _write

    return _write(path_in, out_html, **kwargs)
