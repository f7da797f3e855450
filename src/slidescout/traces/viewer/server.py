"""Running the viewer: a uvicorn server on a socket we bind ourselves (a free port by default)."""

from __future__ import annotations

import errno
import ipaddress
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from slidescout.errors import ConfigError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 = a free one), or a one-line ConfigError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(
                f"cannot listen on {host}: not an address of this machine; give --host 127.0.0.1 "
                "(this machine only) or one of its own addresses"
            ) from None
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"cannot listen on {host}:{port}: the port is in use; choose another --port, "
                "or omit it for a free one"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_for(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


@dataclass
class Running:
    """A server started in a thread (tests, notebooks): ``url`` and ``stop()``."""

    url: str
    server: object
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True  # type: ignore[attr-defined]
        self.thread.join(timeout=10)


def allowed_hosts(host: str) -> list[str]:
    hosts = {host, "127.0.0.1", "localhost", "[::1]", "::1"}
    if host in ("0.0.0.0", "::"):
        return ["*"]  # the user asked to serve every interface
    return sorted(hosts)


def _server(path: Path | str, sock: socket.socket, openseadragon_dir: Path | None):
    import uvicorn

    from slidescout.traces.viewer.app import create_app
    from slidescout.traces.viewer.runs import create_runs_app, find_runs, is_run_dir

    host = sock.getsockname()[0]
    p = Path(path)
    if p.is_dir() and not is_run_dir(p):  # a folder of runs: list them all
        if not find_runs(p):
            raise ConfigError(
                f"{p} is neither a run directory nor a folder of runs (no manifest.json or "
                "traces/ in it or in its subfolders); pass a run directory or a trace file"
            )
        app = create_runs_app(
            p, openseadragon_dir=openseadragon_dir, allowed_hosts=allowed_hosts(host)
        )
    else:
        app = create_app(
            path, openseadragon_dir=openseadragon_dir, allowed_hosts=allowed_hosts(host)
        )
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    return uvicorn.Server(config)


def start_in_thread(
    path: Path | str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    openseadragon_dir: Path | None = None,
) -> Running:
    """Serve in a daemon thread and return once it accepts connections."""
    sock = bind(host, port)
    try:
        server = _server(path, sock, openseadragon_dir)
    except BaseException:
        sock.close()
        raise
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="slidescout-viewer"
    )
    thread.start()
    for _ in range(500):
        if getattr(server, "started", False):
            break
        if not thread.is_alive():
            raise RuntimeError("the viewer server stopped while starting")
        threading.Event().wait(0.01)
    return Running(url_for(sock), server, thread)


def serve(
    path: Path | str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    open_browser: bool = False,
    openseadragon_dir: Path | None = None,
    echo: Callable[[str], None] = print,
) -> None:
    """Serve until interrupted; prints the address; opens a browser only when asked."""
    sock = bind(host, port)
    try:
        server = _server(path, sock, openseadragon_dir)
    except BaseException:
        sock.close()
        raise
    url = url_for(sock)
    if not is_loopback(host):
        echo(
            f"warning: serving on {host}, reachable from other machines; traces and slides are not "
            "access-controlled"
        )
    echo(f"slidescout viewer: {url}  (Ctrl+C to stop)")
    if open_browser:
        import webbrowser

        threading.Timer(0.5, lambda: webbrowser.open(url)).start()
    server.run(sockets=[sock])
