"""Connecting the driver to Ray within a deadline, in one line on failure and quietly.

``ray.init(address=...)`` on an address where nothing listens retries for minutes and prints
Ray's own warnings ("Failed to connect to GCS ...") on the terminal. Here:

- an address given as ``host:port`` or ``ray://host:port`` (or in ``RAY_ADDRESS``) is first
  reached with a plain TCP connection within ``timeout_s`` (``--timeout``): nothing listening
  is a :class:`ConfigError` at once;
- then ``ray.init`` runs in a helper thread with the process's stderr sent to a file, and is
  given up after ``max(timeout_s, MIN_HANDSHAKE_S)`` seconds with one line naming Ray's last
  complaint; a local instance (no address) is started in the caller's thread, its notes (token
  authentication...) also kept off the terminal.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from slidescout.errors import ConfigError

__all__ = ["MIN_HANDSHAKE_S", "connect", "import_ray", "probe_address"]

MIN_HANDSHAKE_S = 60.0  # Ray's own handshake on a reachable address, however short --timeout is
_HINT = "start a cluster with `ray start --head` or check --address"
_RAISED = re.compile(r"^(?:[\w]+\.)*(\w+(?:Error|Exception): .*)$")
_RAY_LINE = re.compile(r"^\[[^\]]*\]\s*(?:\S+:\d+:\s*)?(.*)$")


def import_ray() -> Any:
    """The ``ray`` module, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("the Ray executor needs ray: pip install 'ray[default]'") from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of an explicit address; None for ``auto``/``local``."""
    if address in ("auto", "local"):
        return None
    target = address.removeprefix("ray://").rstrip("/")
    host, sep, port = target.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"--address {address!r}: expected host:port, ray://host:port, auto or local"
        )
    return host, int(port)


def probe_address(address: str, timeout_s: float) -> None:
    """Raise a one-line :class:`ConfigError` unless something accepts a TCP connection at
    ``address`` within ``timeout_s`` (``auto`` and ``local`` are left to Ray)."""
    hp = _host_port(address)
    if hp is None:
        return
    try:
        socket.create_connection(hp, timeout=timeout_s).close()
    except TimeoutError:
        raise ConfigError(
            f"cannot reach the Ray cluster at {address}: no answer within {timeout_s:g} s; {_HINT}"
        ) from None
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {why}; {_HINT}") from None


@contextmanager
def _stderr_to_file() -> Iterator[Any]:
    """Send file descriptor 2 (where Ray's C++ core logs) into a temporary file meanwhile."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            yield log
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _last_complaint(log: Any) -> str:
    """Ray's last log line, without its timestamp and source location."""
    log.seek(0)
    lines = [ln.strip() for ln in log.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    if not lines:
        return ""
    m = _RAY_LINE.match(lines[-1])
    return (m.group(1) if m else lines[-1])[:200]


def connect(ray: Any, address: str | None, timeout_s: float) -> bool:
    """Connect this process to Ray; True when this call did it (the caller shuts it down).

    A process already connected (``ray.init`` called by the caller) is left as it is."""
    if ray.is_initialized():
        return False
    target = address or os.environ.get("RAY_ADDRESS") or None
    options: dict[str, Any] = dict(
        address=address,
        include_dashboard=False,
        ignore_reinit_error=True,
        log_to_driver=False,
        configure_logging=False,
    )
    if target is None or target == "local":  # Ray starts its processes; its notes stay off
        with _stderr_to_file() as log:
            try:
                ray.init(**options)
            except ConnectionError as exc:
                said = _last_complaint(log)
                raise ConfigError(
                    f"cannot start a local Ray instance: {exc}"
                    + (f" (Ray: {said})" if said else "")
                ) from None
        return True
    probe_address(target, timeout_s)
    deadline = max(float(timeout_s), MIN_HANDSHAKE_S)
    outcome: dict[str, BaseException] = {}
    done = threading.Event()

    def init() -> None:
        try:
            ray.init(**options)
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc
        finally:
            done.set()

    with _stderr_to_file() as log:
        threading.Thread(target=init, name="ray-connect", daemon=True).start()
        done.wait(deadline)
        said = _last_complaint(log)
    if not done.is_set():  # the thread goes on retrying in the background; nothing waits for it
        raise ConfigError(
            f"the Ray cluster at {target} did not answer within {deadline:g} s"
            + (f" (Ray: {said})" if said else "")
            + f"; {_HINT}"
        )
    err = outcome.get("error")
    if err is not None:
        raise ConfigError(f"cannot connect to the Ray cluster at {target}: {_first_line(err)}")
    return True


def _first_line(err: BaseException) -> str:
    """The error's first line, and its root cause's (Ray wraps an authentication failure, for
    one, in a bare "Failed to connect")."""
    text = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    root = err
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    if root is not err:
        lines = str(root).strip().splitlines() or [""]
        # Ray puts the last attempt's traceback into the message: its last "...Error: ..." line
        raised = [m.group(1) for ln in lines if (m := _RAISED.match(ln.strip()))]
        why = raised[-1] if raised else f"{type(root).__name__}: {lines[0]}"
        text += f" ({why[:300]})"
    return text
