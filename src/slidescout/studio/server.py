"""Running the studio: a uvicorn server on a socket we bind ourselves, the token off loopback."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slidescout.agents.config import AgentConfig
from slidescout.traces.viewer.server import allowed_hosts, bind, is_loopback, url_for

__all__ = ["Running", "serve", "start_in_thread"]


@dataclass
class Running:
    """A studio started in a thread (tests, notebooks): ``url`` (with the token) and ``stop()``."""

    url: str
    server: Any
    thread: threading.Thread
    app: Any

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def _server(
    slides_dir: Path | str,
    runs_dir: Path | str,
    config: AgentConfig,
    sock: Any,
    openseadragon_dir: Path | None,
    token: str | None,
) -> tuple[Any, Any]:
    import uvicorn

    from slidescout.studio.app import create_app

    host = sock.getsockname()[0]
    app = create_app(
        slides_dir,
        runs_dir,
        config,
        openseadragon_dir=openseadragon_dir,
        allowed_hosts=allowed_hosts(host),
        token=token,
    )
    # open event streams must not hold the shutdown: then running questions are stopped (lifespan)
    cfg = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5
    )
    return uvicorn.Server(cfg), app


def _token_for(host: str, token: bool | None) -> str | None:
    """A fresh token off loopback (or when asked for); none on loopback unless asked for."""
    want = (not is_loopback(host)) if token is None else token
    return secrets.token_urlsafe(24) if want else None


def _url(sock: Any, token: str | None) -> str:
    return url_for(sock) + (f"?token={token}" if token else "")


def start_in_thread(
    slides_dir: Path | str,
    runs_dir: Path | str,
    config: AgentConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    openseadragon_dir: Path | None = None,
    token: bool | None = None,
) -> Running:
    """Serve in a daemon thread and return once it accepts connections."""
    sock = bind(host, port)
    secret = _token_for(host, token)
    try:
        server, app = _server(
            slides_dir,
            runs_dir,
            config or AgentConfig.model_validate({}),
            sock,
            openseadragon_dir,
            secret,
        )
    except BaseException:
        sock.close()
        raise
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="slidescout-studio"
    )
    thread.start()
    waiting = threading.Event()
    for _ in range(6000):  # up to a minute on a loaded machine
        if getattr(server, "started", False):
            break
        if not thread.is_alive():
            raise RuntimeError("the studio server stopped while starting")
        waiting.wait(0.01)
    return Running(_url(sock, secret), server, thread, app)


def serve(
    slides_dir: Path | str,
    runs_dir: Path | str,
    config: AgentConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    open_browser: bool = True,
    openseadragon_dir: Path | None = None,
    echo: Callable[[str], None] = print,
) -> None:
    """Serve until interrupted; prints the address (with the token off loopback)."""
    sock = bind(host, port)
    secret = _token_for(host, None)
    try:
        server, _ = _server(slides_dir, runs_dir, config, sock, openseadragon_dir, secret)
    except BaseException:
        sock.close()
        raise
    url = _url(sock, secret)
    if secret:
        echo(
            f"serving on {host}, reachable from other machines: every request needs the token "
            "in this URL (keep it private)"
        )
    echo(f"slidescout studio: {url}  (Ctrl+C to stop)")
    echo(f"sessions are recorded under {runs_dir}")
    if open_browser:
        import webbrowser

        threading.Timer(0.5, lambda: webbrowser.open(url)).start()
    server.run(sockets=[sock])
