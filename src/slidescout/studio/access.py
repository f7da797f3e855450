"""Who may use a studio: the token off loopback (as Jupyter does), and no cross-site writes.

- With a token (the server makes one when it is bound to anything but loopback), every request
  must carry it: the ``?token=`` of the URL printed at start (the page then keeps it in an
  HttpOnly, SameSite=Strict cookie), or an ``Authorization: token …`` header.
- A request that changes something (any method but GET/HEAD) must come from the page itself:
  an ``Origin`` that is not this server's, or ``Sec-Fetch-Site: cross-site``, is refused, so
  another web site cannot start or stop a run through the browser.
"""

from __future__ import annotations

import hmac
import json
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["COOKIE", "AccessGuard"]

COOKIE = "slidescout_studio"
SAFE_METHODS = ("GET", "HEAD")


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class AccessGuard:
    """Pure ASGI middleware: the token (when set) and the same-origin rule for writes."""

    def __init__(self, app: ASGIApp, token: str | None = None) -> None:
        self.app = app
        self.token = token

    def _given(self, scope: Scope, headers: dict[str, str]) -> tuple[str | None, bool]:
        """The token the request carries, and whether it came in the URL."""
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if query.get("token"):
            return query["token"][0], True
        auth = headers.get("authorization", "")
        if auth.lower().startswith("token "):
            return auth[6:].strip(), False
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header is no token
            return None, False
        morsel = cookie.get(COOKIE)
        return (morsel.value if morsel else None), False

    def _same_origin(self, scope: Scope, headers: dict[str, str]) -> bool:
        if headers.get("sec-fetch-site") == "cross-site":
            return False
        origin = headers.get("origin")
        if not origin:
            return True  # not a browser's cross-site request (those always carry Origin)
        host = headers.get("host", "")
        parts = urlsplit(origin)
        return parts.netloc == host and parts.scheme in ("http", "https")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        from_url = False
        if self.token:
            given, from_url = self._given(scope, headers)
            if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
                await _refuse(
                    send, 403, "this studio needs its token: open the URL it printed at start"
                )
                return
        if scope.get("method", "GET") not in SAFE_METHODS and not self._same_origin(scope, headers):
            await _refuse(send, 403, "cross-site requests are refused")
            return
        if not from_url:
            await self.app(scope, receive, send)
            return
        token = self.token or ""

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie.encode())]
            await send(message)

        await self.app(scope, receive, send_with_cookie)
