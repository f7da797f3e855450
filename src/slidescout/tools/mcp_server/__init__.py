"""The MCP server: ``slidescout mcp SLIDE_DIR`` serves the agent's tools for the slides of a folder.

``library`` (slide ids, path checks, ``list_slides``) does not import ``mcp``; ``server`` (the SDK
server and result conversion) and ``transports`` do, and are imported on first use of their names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from slidescout.tools.mcp_server.library import (
    SLIDE_EXTENSIONS,
    SlideIdError,
    SlideLibrary,
    list_slides,
)

if TYPE_CHECKING:  # pragma: no cover
    from slidescout.tools.mcp_server.server import ServerOptions, SlidescoutMCP, build_server
    from slidescout.tools.mcp_server.transports import http_server, serve_stdio

_LAZY = {
    "ServerOptions": "server",
    "SlidescoutMCP": "server",
    "build_server": "server",
    "http_server": "transports",
    "serve_stdio": "transports",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SLIDE_EXTENSIONS",
    "ServerOptions",
    "SlideIdError",
    "SlideLibrary",
    "SlidescoutMCP",
    "build_server",
    "http_server",
    "list_slides",
    "serve_stdio",
]
