"""``--timeout`` is the deadline of a whole request, not of each read (issue 21 item 1).

A server that trickles its reply (a byte every half second, far under any per-read timeout) must
be given up on at the deadline, through the real openai and anthropic SDKs and slidescout's
adapters, with a one-line error; `slidescout ask` ends the same way. Every wait here has a
generous bound: nothing asserts how fast it went.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from slidefactory import make_tiff

from slidescout.agents.models import resolve_model
from slidescout.core.messages import ModelRequest, TextPart, UserMessage
from slidescout.errors import ModelError

BOUND_S = 60.0  # a 2 s deadline must end the request well before this


class TricklingServer:
    """A loopback HTTP server that reads a request, sends a 200 with a long JSON body, then the
    body one byte every ``pace_s`` seconds: no single read ever waits long, the reply never ends
    (until the client goes away or the server stops)."""

    def __init__(self, pace_s: float = 0.5) -> None:
        self.pace_s = pace_s
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.requests = 0
        self.gone = threading.Event()  # set when a client closed its end mid-reply
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            while len(body) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                body += chunk
            self.requests += 1
            payload = b'{"id": "x", "padding": "' + b"a" * 100_000 + b'"}'
            try:
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: " + str(len(payload)).encode() + b"\r\n\r\n"
                )
                for i in range(len(payload)):
                    if self.stop.wait(self.pace_s):
                        return
                    conn.sendall(payload[i : i + 1])
            except OSError:
                self.gone.set()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def trickle() -> Iterator[TricklingServer]:
    srv = TricklingServer()
    try:
        yield srv
    finally:
        srv.close()


def _request() -> ModelRequest:
    return ModelRequest(messages=[UserMessage(parts=[TextPart(text="Diagnosis?")])])


@pytest.mark.parametrize(
    "model_id,api,path",
    [
        ("openai:gpt-5", "responses", "/v1"),
        ("openai:gpt-4o", "chat", "/v1"),
        ("anthropic:claude-sonnet-4-5", "auto", ""),
    ],
)
async def test_a_trickling_reply_is_given_up_at_the_deadline(
    trickle: TricklingServer, model_id: str, api: str, path: str
) -> None:
    model = resolve_model(
        model_id, base_url=trickle.url + path, api=api, timeout_s=2.0, max_retries=0
    )
    try:
        with pytest.raises(ModelError) as info:
            await asyncio.wait_for(model.request(_request()), BOUND_S)
    finally:
        await model.aclose()
    msg = str(info.value)
    assert "\n" not in msg and "2 s" in msg and "--timeout" in msg
    assert msg.startswith(f"{model_id}:") and info.value.retryable
    assert trickle.requests == 1  # --retries 0: one attempt


async def test_each_retry_gets_its_own_deadline(trickle: TricklingServer) -> None:
    model = resolve_model(
        "openai:gpt-5", base_url=trickle.url + "/v1", timeout_s=1.0, max_retries=1
    )
    try:
        with pytest.raises(ModelError) as info:
            await asyncio.wait_for(model.request(_request()), BOUND_S)
    finally:
        await model.aclose()
    assert trickle.requests == 2 and "gave up after 2 attempts" in str(info.value)
    assert "retried: timeout" in str(info.value)


def test_ask_with_timeout_ends_on_a_trickling_server(
    trickle: TricklingServer, tmp_path: Path
) -> None:
    slide = make_tiff(tmp_path / "s.tiff", 2048, 1536, mpp=0.25)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "slidescout", "ask", str(slide), "Diagnosis?"]
    cmd += ["-m", "openai:gpt-5", "--base-url", trickle.url + "/v1"]
    cmd += ["--timeout", "2", "--retries", "0", "-o", str(tmp_path / "run"), "--json"]
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=BOUND_S * 2)
    except subprocess.TimeoutExpired:
        pytest.fail("ask was still running with --timeout 2 --retries 0")
    assert out.returncode == 1, out.stderr[-2000:]
    rec = json.loads(out.stdout)
    assert rec["status"] == "error" and "--timeout" in rec["error"]
    assert "Traceback" not in out.stderr
