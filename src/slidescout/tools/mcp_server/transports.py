"""Running the server: stdio (for desktop clients that start it) or streamable HTTP on loopback."""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from slidescout.errors import ConfigError

log = logging.getLogger(__name__)

HTTP_PATH = "/mcp"


def is_loopback(host: str) -> bool:
    """``127.0.0.1``, ``::1``, ``localhost`` and the rest of 127/8."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(host: str, allow_remote: bool) -> bool:
    """Refuse a non-loopback ``host`` unless ``allow_remote``; returns whether it is remote."""
    if is_loopback(host):
        return False
    if not allow_remote:
        raise ConfigError(
            f"--host {host} is not a loopback address: anyone who can reach it could read "
            "every slide in the folder. Use 127.0.0.1, or pass --allow-remote if you "
            "really mean it (and put authentication in front of it)"
        )
    return True


async def serve_stdio(server: Any) -> None:
    """Serve one client over this process's stdin/stdout until it closes them."""
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def http_server(
    server: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    path: str = HTTP_PATH,
    allow_remote: bool = False,
    log_level: str = "warning",
) -> Any:
    """A ``uvicorn.Server`` serving streamable HTTP at ``http://host:port/path``.

    Loopback hosts get the SDK's DNS-rebinding protection (Host and Origin checked). ``port=0``
    takes a free port: read it from ``bound_port(uv)`` once ``uv.started`` is true. Run it with
    ``await uv.serve()``; set ``uv.should_exit = True`` to stop.
    """
    import uvicorn

    remote = check_host(host, allow_remote)
    if remote:
        log.warning(
            "serving slides on %s:%s, which is not a loopback address: any client that "
            "reaches it can read every slide in the folder",
            host,
            port,
        )
    app = server.streamable_http_app(streamable_http_path=path, host=host)
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, lifespan="on", access_log=False
    )
    return uvicorn.Server(config)


def bound_port(uv: Any) -> int:
    """The port a started ``uvicorn.Server`` listens on."""
    for srv in getattr(uv, "servers", []):
        for sock in srv.sockets:
            return int(sock.getsockname()[1])
    return int(uv.config.port)


__all__ = ["HTTP_PATH", "bound_port", "check_host", "http_server", "is_loopback", "serve_stdio"]
