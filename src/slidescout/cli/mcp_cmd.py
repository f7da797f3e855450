"""``slidescout mcp SLIDE_DIR``: serve the agent's tools over the Model Context Protocol.

``mcp``, ``uvicorn`` and the tool modules are imported only when the command runs.
"""

from __future__ import annotations

import logging
import re
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from slidescout.cli.app import app, err_console
from slidescout.errors import ConfigError

if TYPE_CHECKING:
    from slidescout.tools.mcp_server.server import SlidescoutMCP


class Transport(str, Enum):
    stdio = "stdio"
    http = "http"


@app.command("mcp")
def mcp_serve(
    slide_dir: Path = typer.Argument(
        ...,
        help="Folder of slides to serve; clients address them by "
        "their path relative to it, and nothing outside it is served.",
    ),
    transport: Transport = typer.Option(
        Transport.stdio,
        "--transport",
        help="stdio (the client starts the server) or http "
        "(streamable HTTP at http://HOST:PORT/mcp).",
    ),
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address for --transport http; loopback only unless --allow-remote.",
    ),
    port: int = typer.Option(8000, "--port", help="Port for --transport http (0: a free one)."),
    allow_remote: bool = typer.Option(
        False,
        "--allow-remote",
        help="Allow a non-loopback --host (anyone who reaches it can read every slide).",
    ),
    tools: str | None = typer.Option(
        None,
        "--tools",
        help="Change the tool set: '+lookup,-pan', "
        "or a full list 'slide_zoom,measure' (default: every tool).",
    ),
    max_side: int = typer.Option(
        1000, "--max-side", help="Long side in pixels of every image returned."
    ),
    guides: bool = typer.Option(
        True, "--guides/--no-guides", help="Draw coordinate guides on images."
    ),
    jpeg_quality: int = typer.Option(
        90, "--jpeg-quality", help="JPEG quality of returned images (1-100)."
    ),
    device: str = typer.Option(
        "auto", "--device", help="Device for expert models: auto, cpu, cuda, cuda:N."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log requests on stderr."),
) -> None:
    """Serve the agent's tools (navigation, experts, lookup, plugins) over MCP for a folder of slides."""
    _check_options(slide_dir, jpeg_quality, max_side, port, device)
    # the MCP SDK takes seconds to import: the server loads only when this command runs
    from slidescout.tools.mcp_server.server import ServerOptions, SlidescoutMCP
    from slidescout.tools.mcp_server.transports import check_host

    if transport is Transport.http:
        check_host(host, allow_remote)  # before anything is loaded
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )  # stderr: stdout is the wire
    mcp_app = SlidescoutMCP(
        slide_dir,
        tools=tools,
        options=ServerOptions(
            max_side=max_side, guides=guides, jpeg_quality=jpeg_quality, device=device
        ),
    )
    if transport is Transport.http and port == 0:
        port = _free_port(host)
    _announce(mcp_app, transport, host, port)
    _serve(mcp_app, transport, host, port, allow_remote, verbose)


def _check_options(
    slide_dir: Path, jpeg_quality: int, max_side: int, port: int, device: str
) -> None:
    """Every option in range, before the (slow) MCP SDK loads; a ``ConfigError`` if not."""
    if not slide_dir.is_dir():
        raise ConfigError(f"{slide_dir}: no such folder; give the folder that holds the slides")
    if not 1 <= jpeg_quality <= 100:
        raise ConfigError(f"--jpeg-quality must be 1 to 100, got {jpeg_quality}")
    if not 64 <= max_side <= 4096:
        raise ConfigError(f"--max-side must be 64 to 4096 pixels, got {max_side}")
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be 0 to 65535, got {port}")
    if not re.fullmatch(r"auto|best|cpu|mps|(cuda|xpu)(:\d+)?", device.strip().lower()):
        raise ConfigError(f"unknown --device {device!r}; use auto, cpu, cuda or cuda:N")


def _announce(mcp_app: SlidescoutMCP, transport: Transport, host: str, port: int) -> None:
    """One line on stderr: the slides, the tools and where the server listens."""
    from slidescout.tools.mcp_server.transports import HTTP_PATH

    ids, n_links = mcp_app.library.scan()
    where = "stdio" if transport is Transport.stdio else f"http://{host}:{port}{HTTP_PATH}"
    links = (
        f" ({n_links} symbolic link(s) skipped: they lead out of the folder or to a folder)"
        if n_links
        else ""
    )
    err_console.print(
        f"slidescout mcp: {len(ids)} slide(s) in {mcp_app.library.root}{links}, "
        f"{len(mcp_app.tool_names)} tools ({', '.join(accepted_names(mcp_app))}), on {where}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def _serve(
    mcp_app: SlidescoutMCP,
    transport: Transport,
    host: str,
    port: int,
    allow_remote: bool,
    verbose: bool,
) -> None:
    """Serve until the client hangs up (stdio) or the process is stopped (HTTP)."""
    import anyio

    from slidescout.tools.mcp_server.transports import http_server, serve_stdio

    if transport is Transport.stdio:
        anyio.run(serve_stdio, mcp_app.server)
        return
    uv = http_server(
        mcp_app.server,
        host=host,
        port=port,
        allow_remote=allow_remote,
        log_level="info" if verbose else "warning",
    )
    anyio.run(uv.serve)


def accepted_names(mcp_app: object) -> list[str]:
    """Each served tool as clients call it, with the other spellings it accepts
    (``pkg__name (or pkg/name, name)`` for a plugin)."""
    out = []
    for wire, entry in getattr(mcp_app, "entries", {}).items():
        tool = entry.tool
        others = [
            n
            for n in dict.fromkeys((tool.name, getattr(tool, "short_name", tool.name)))
            if n != wire
        ]
        out.append(f"{wire} (or {', '.join(others)})" if others else wire)
    return out


def _free_port(host: str) -> int:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host.strip("[]"), 0))
        return int(sock.getsockname()[1])
