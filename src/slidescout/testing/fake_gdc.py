"""A local stand-in for the GDC API (files + data endpoints) and the GTEx image download
endpoint, on 127.0.0.1 in a thread, for testing ``slidescout data fetch`` without the network.

It serves byte strings (small generated slides) with ``Range`` support and records every request.
Faults are queued per (endpoint, id) and each is used once, by a GET (HEAD requests never fail):

- ``"drop"``: send the headers and half the body, then close the connection;
- ``"corrupt"``: serve the bytes with one byte changed (a wrong md5);
- ``"norange"``: ignore a ``Range`` header and send the whole file with 200;
- ``"429"`` (with ``Retry-After: 0``), ``"500"``, ``"404"``: that status instead of the answer.

An id the server does not hold answers 404 on every endpoint.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import unquote, urlsplit


@dataclass
class SeenRequest:
    method: str
    endpoint: str  # files | data | gtex
    id: str
    range: str | None
    status: int


class FakeSlideServer:
    """``with FakeSlideServer() as srv: srv.add_gdc(...); ... srv.gdc_url, srv.gtex_url``."""

    def __init__(self) -> None:
        self.gdc: dict[str, tuple[str, bytes]] = {}  # file id -> (file name, bytes)
        self.gtex: dict[str, bytes] = {}
        self.faults: dict[tuple[str, str], deque[str]] = defaultdict(deque)
        self.requests: list[SeenRequest] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- content -------------------------------------------------------------------------------
    def add_gdc(self, file_id: str, data: bytes, file_name: str | None = None) -> None:
        self.gdc[file_id] = (file_name or f"{file_id}.svs", data)

    def add_gtex(self, sample_id: str, data: bytes) -> None:
        self.gtex[sample_id] = data

    def fault(self, endpoint: str, id: str, *faults: str) -> None:
        self.faults[(endpoint, id)].extend(faults)

    def seen(self, endpoint: str | None = None, id: str | None = None) -> list[SeenRequest]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (endpoint is None or r.endpoint == endpoint) and (id is None or r.id == id)
            ]

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    @property
    def gdc_url(self) -> str:
        return self.url

    @property
    def gtex_url(self) -> str:
        return self.url + "gtex/"

    # -- life ----------------------------------------------------------------------------------
    def start(self) -> FakeSlideServer:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-gdc", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeSlideServer:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _next_fault(self, endpoint: str, id: str) -> str | None:
        with self._lock:
            q = self.faults.get((endpoint, id))
            return q.popleft() if q else None

    def _record(self, req: SeenRequest) -> None:
        with self._lock:
            self.requests.append(req)


_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class _Handler(BaseHTTPRequestHandler):
    """One request to the fake server ``srv`` (bound per server by :func:`_handler`)."""

    srv: FakeSlideServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _route(self) -> tuple[str, str]:
        parts = [unquote(p) for p in urlsplit(self.path).path.split("/") if p]
        if len(parts) == 2 and parts[0] in ("files", "data", "gtex"):
            return parts[0], parts[1]
        return "", ""

    def _plain(
        self,
        status: int,
        body: bytes,
        ctype: str = "application/json",
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int) -> None:
        extra = {"Retry-After": "0"} if status == 429 else None
        self._plain(status, json.dumps({"message": f"fake error {status}"}).encode(), extra=extra)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        endpoint, id = self._route()
        rng = self.headers.get("Range")
        fault = self.srv._next_fault(endpoint, id) if endpoint and self.command == "GET" else None
        content = self._content(endpoint, id)
        status = 404 if content is None else 200
        if fault in ("429", "500", "404"):
            status = int(fault)
        if status != 200 or content is None:
            self.srv._record(SeenRequest(self.command, endpoint, id, rng, status))
            self._error(status)
            return
        if endpoint == "files":
            self.srv._record(SeenRequest(self.command, endpoint, id, rng, 200))
            self._plain(200, self._metadata(id))
            return
        self._bytes(endpoint, id, content, rng, fault)

    def _metadata(self, id: str) -> bytes:
        """The GDC ``files/<id>`` answer: name, size, md5."""
        name, data = self.srv.gdc[id]
        return json.dumps(
            {
                "data": {
                    "file_name": name,
                    "file_size": len(data),
                    "id": id,
                    "md5sum": hashlib.md5(data).hexdigest(),
                },
                "warnings": {},
            }
        ).encode()

    def _content(self, endpoint: str, id: str) -> bytes | None:
        if endpoint in ("files", "data"):
            return self.srv.gdc[id][1] if id in self.srv.gdc else None
        if endpoint == "gtex":
            return self.srv.gtex.get(id)
        return None

    def _bytes(
        self, endpoint: str, id: str, data: bytes, rng: str | None, fault: str | None
    ) -> None:
        start, status = 0, 200
        m = _RANGE.match(rng or "") if fault != "norange" else None
        if m:
            start = int(m.group(1))
            if start >= len(data):
                self.srv._record(SeenRequest(self.command, endpoint, id, rng, 416))
                self._plain(416, b"", extra={"Content-Range": f"bytes */{len(data)}"})
                return
            status = 206
        body = data[start:]
        if fault == "corrupt":
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        self.srv._record(SeenRequest(self.command, endpoint, id, rng, status))
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if self.command == "HEAD":
            return
        if fault == "drop":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(body)


def _handler(srv: FakeSlideServer) -> type[BaseHTTPRequestHandler]:
    """A handler class bound to ``srv`` (``ThreadingHTTPServer`` takes a class, not an object)."""
    return type("Handler", (_Handler,), {"srv": srv})
