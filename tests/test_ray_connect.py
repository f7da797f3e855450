"""Reaching a Ray cluster: one line within the deadline, Ray's own log kept off the terminal, and
nothing the driver ships to workers holds a key."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from test_eval_runner_data import make_mpqa

from slidescout.agents.config import AgentConfig
from slidescout.errors import ConfigError
from slidescout.eval import ray_connect
from slidescout.eval.executors import make_executor
from slidescout.eval.ray_worker import Limits, RayJob, code_key

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StubRay:
    """Just enough of ``ray`` for ``connect``: ``init`` writes what Ray's C++ core writes to
    stderr, then waits until released (or raises ``error``)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.release = threading.Event()
        self.error = error
        self.calls: list[dict[str, Any]] = []

    def is_initialized(self) -> bool:
        return False

    def init(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)
        os.write(
            2,
            b"[2026-12-07 03:32:28,773 W 15489 15489] rpc_client.h:153: Failed to connect to "
            b"GCS at address 127.0.0.1:1 within 5 seconds.\n",
        )
        if self.error is not None:
            raise self.error
        self.release.wait(600)


def test_nothing_listening_is_one_line_at_once() -> None:
    port = _free_port()
    with pytest.raises(ConfigError, match=rf"cannot reach the Ray cluster at 127\.0\.0\.1:{port}"):
        ray_connect.probe_address(f"127.0.0.1:{port}", 5.0)
    with pytest.raises(ConfigError, match="cannot reach"):
        ray_connect.probe_address(f"ray://127.0.0.1:{port}", 5.0)
    for bad in ("127.0.0.1", "host:port", "127.0.0.1:0", "127.0.0.1:70000", ":1"):
        with pytest.raises(ConfigError, match="expected host:port"):
            ray_connect.probe_address(bad, 5.0)
    ray_connect.probe_address("auto", 5.0)  # left to Ray
    ray_connect.probe_address("local", 5.0)


def test_a_silent_listener_is_given_up_with_rays_complaint(monkeypatch, capfd) -> None:
    """Something accepts the connection but never speaks Ray: the handshake is abandoned at its
    deadline, Ray's stderr lines never reach the terminal, the error names the last one."""
    monkeypatch.setattr(ray_connect, "MIN_HANDSHAKE_S", 0.5)
    stub = StubRay()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        try:
            with pytest.raises(ConfigError) as err:
                ray_connect.connect(stub, f"127.0.0.1:{port}", 0.1)
        finally:
            stub.release.set()
    msg = str(err.value)
    assert "did not answer within 0.5 s" in msg and "\n" not in msg
    assert "(Ray: Failed to connect to GCS at address 127.0.0.1:1 within 5 seconds.)" in msg
    assert stub.calls and stub.calls[0]["log_to_driver"] is False
    assert "Failed to connect" not in capfd.readouterr().err


def test_an_init_error_is_one_line(capfd) -> None:
    stub = StubRay(error=ConnectionError("GCS refused us\nmore detail\n"))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with pytest.raises(
            ConfigError, match=r"cannot connect to the Ray cluster at .*: GCS refused us$"
        ):
            ray_connect.connect(stub, f"127.0.0.1:{port}", 5.0)
        # Ray wraps the reason (a missing token...) in a bare "Failed to connect": it is named
        wrapped = ConnectionError("Failed to connect to Ray cluster at 192.0.2.2:6391")
        wrapped.__cause__ = RuntimeError(
            "Failed to connect to GCS. Last connection error: Traceback (most recent call last):\n"
            '  File "python/ray/includes/common.pxi", line 119, in ray._raylet.check_status\n'
            "ray.exceptions.AuthenticationError: RPC error: InvalidAuthToken: token missing\n"
        )
        with pytest.raises(ConfigError) as err:
            ray_connect.connect(StubRay(error=wrapped), f"127.0.0.1:{port}", 5.0)
    assert str(err.value).endswith(
        "Failed to connect to Ray cluster at 192.0.2.2:6391 "
        "(AuthenticationError: RPC error: InvalidAuthToken: token missing)"
    )
    assert "Failed to connect to GCS" not in capfd.readouterr().err


def test_ray_options_are_checked() -> None:
    spec = AgentConfig(model="openai:m", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="unknown Ray option 'bogus'"):
        make_executor("ray", spec, bogus=1)
    with pytest.raises(ConfigError, match="--address is for the Ray executor"):
        make_executor("asyncio", spec, address="auto")
    ex = make_executor("ray", spec, keep_workers=True, workers=2)
    assert ex.name == "ray" and ex.stats.executor == "ray"


def test_what_the_driver_ships_holds_no_key(monkeypatch) -> None:
    """The job sent with every sample is the agent's config, never a client or its key; a model
    that holds a key refuses to be pickled."""
    cloudpickle = pytest.importorskip("ray.cloudpickle")
    secret = "sk-test-0123456789abcdefSECRET"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    spec = AgentConfig(model="openai:gpt-5")
    job = RayJob(key="k", spec=spec, run_path="/tmp/run", limits=Limits(usd=1.0))
    payload = cloudpickle.dumps(job)
    assert secret.encode() not in payload
    assert cloudpickle.loads(payload) == job
    with pytest.raises(TypeError, match="cannot be pickled"):
        cloudpickle.dumps(spec.resolve_model())


def test_code_key_is_stable() -> None:
    assert code_key() == code_key() and len(code_key()) == 16


def test_cli_unreachable_address_is_one_error_line(tmp_path: Path) -> None:
    """``eval --executor ray --address 127.0.0.1:PORT`` with nothing listening: exit 2 and one
    ``error:`` line on stderr, no Ray log, and no run written."""
    pytest.importorskip("ray")
    csv_path, slides = make_mpqa(tmp_path / "data", n_tcga=2, n_gtex=0, missing=0)
    out = tmp_path / "run"
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "slidescout",
            "eval",
            "file",
            str(csv_path),
            "--slides",
            str(slides),
            "--model",
            "openai:fake",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--executor",
            "ray",
            "--address",
            f"127.0.0.1:{port}",
            "--timeout",
            "5",
            "--no-progress",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,  # a generous bound on a loaded machine; what is checked is the outcome
    )
    err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert err == [
        f"error: cannot reach the Ray cluster at 127.0.0.1:{port}: Connection refused; start a "
        "cluster with `ray start --head` or check --address"
    ]
    assert "GCS" not in proc.stdout
    assert not (out / "manifest.json").exists() and not (out / "results.jsonl").exists()
