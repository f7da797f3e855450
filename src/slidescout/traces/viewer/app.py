"""The viewer's ASGI app (Starlette) over one run directory or trace file.

Endpoints (all GET):

- ``/``: the single-page front end (``static/``); ``/static/...``, ``/vendor/openseadragon/...``
- ``/api/run``: manifest essentials, totals and every sample row (re-read from disk each time,
  so a run still being written shows its new samples on refresh)
- ``/api/samples``: the rows only; ``/api/samples/{id}``: one sample's trace, as timeline and regions
- ``/blobs/{sha256}``: an image the model saw, only from ``RUN/blobs/``
- ``/slides/{key}.dzi``, ``/slides/{key}_files/{level}/{col}_{row}.jpeg``: DeepZoom of a slide the
  run references, ``{key}`` opaque; ``/slides/{key}_thumb.jpeg``: its thumbnail

There is no endpoint that takes a path, and none for a slide's label or macro images.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from slidescout.errors import SlidescoutError
from slidescout.traces.viewer.dzi import MIME, TileServer
from slidescout.traces.viewer.runindex import RunIndex
from slidescout.traces.viewer.sampleview import build_sample

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=str, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8"
        )


def _not_found(what: str = "not found") -> JSON:
    return JSON({"error": what}, status_code=404)


class SecurityHeaders:
    """Pure ASGI middleware adding CSP and friends to every response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                ]
                if b"cache-control" not in names:
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = headers + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ViewerApp:
    """Handlers bound to one run (an object so tests can reach the index and tile server)."""

    def __init__(self, path: Path | str, *, openseadragon_dir: Path | None = None) -> None:
        self.index = RunIndex(path)
        self.tiles = TileServer()
        self.osd_dir = openseadragon_dir

    # -- pages and data -------------------------------------------------------------------------
    def home(self, request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    def run(self, request: Request) -> Response:
        out = self.index.summary()
        out["deep_zoom"] = self.osd_dir is not None
        out["runs_home"] = request.scope.get(
            "slidescout.runs_home"
        )  # set when served from a folder of runs
        return JSON(out)

    def samples(self, request: Request) -> Response:
        return JSON(self.index.rows(self.index.refresh()))

    def sample(self, request: Request) -> Response:
        stem = request.path_params["sample"]
        try:
            trace = self.index.load(stem)
        except SlidescoutError as exc:
            return JSON({"error": str(exc)}, status_code=422)
        if trace is None:
            return _not_found(f"no sample {stem!r} in this run")

        root = str(request.scope.get("root_path", "")).rstrip(
            "/"
        )  # "/runs/<name>" in a folder of runs

        def image_url(ref: Any) -> str | None:
            return f"{root}/blobs/{ref.sha256}" if self.index.blob_path(ref.sha256) else None

        payload = build_sample(trace, image_url, self.index.slide_key_for)
        for img in payload["images"]:
            self._describe_slide(img, root)
        payload["row"] = next((r for r in self.index.rows() if r["trace"] == stem), None)
        payload["deep_zoom"] = self.osd_dir is not None
        payload["runs_home"] = request.scope.get("slidescout.runs_home")
        return JSON(payload)

    def _describe_slide(self, img: dict[str, Any], root: str = "") -> None:
        """Fill the size, DZI and thumbnail URLs of a display image whose slide file is at hand."""
        entry = self.index.slide(img["key"]) if img.get("key") else None
        img["available"] = entry is not None
        if entry is None:
            img["key"] = None
            return
        try:
            geometry = self.tiles.geometry(entry.path)
        except SlidescoutError as exc:
            img.update(available=False, key=None, error=str(exc))
            return
        img.update(
            width=geometry.width,
            height=geometry.height,
            dzi=f"{root}/slides/{entry.key}.dzi",
            thumbnail=f"{root}/slides/{entry.key}_thumb.jpeg",
            thumb_box=list(self.tiles.thumb_box(entry.path)),
        )

    # -- files ------------------------------------------------------------------------------------
    def blob(self, request: Request) -> Response:
        found = self.index.blob_bytes(request.path_params["sha"])
        if found is None:
            return _not_found("no such image in this run")
        data, media = found
        return Response(
            data, media_type=media, headers={"cache-control": "public, max-age=31536000, immutable"}
        )

    def dzi(self, request: Request) -> Response:
        entry = self.index.slide(request.path_params["key"])
        if entry is None:
            return _not_found("no such slide in this run")
        try:
            xml = self.tiles.descriptor(entry.path)
        except SlidescoutError as exc:
            return JSON({"error": str(exc)}, status_code=422)
        return Response(xml, media_type="application/xml", headers={"cache-control": "max-age=300"})

    def tile(self, request: Request) -> Response:
        entry = self.index.slide(request.path_params["key"])
        if entry is None:
            return _not_found("no such slide in this run")
        p = request.path_params
        try:
            data = self.tiles.tile(entry.path, p["level"], p["col"], p["row"])
        except SlidescoutError as exc:
            return JSON({"error": str(exc)}, status_code=422)
        if data is None:
            return _not_found("no such tile")
        return Response(data, media_type=MIME, headers={"cache-control": "max-age=3600"})

    def thumbnail(self, request: Request) -> Response:
        entry = self.index.slide(request.path_params["key"])
        if entry is None:
            return _not_found("no such slide in this run")
        try:
            data, box = self.tiles.thumbnail(entry.path)
        except SlidescoutError as exc:
            return JSON({"error": str(exc)}, status_code=422)
        return Response(
            data,
            media_type=MIME,
            headers={"cache-control": "max-age=300", "x-slide-box": ",".join(map(str, box))},
        )


def create_app(
    path: Path | str,
    *,
    openseadragon_dir: Path | None = None,
    allowed_hosts: list[str] | None = None,
) -> Starlette:
    """The ASGI app for a run directory or a trace file.

    ``openseadragon_dir``: the folder with ``openseadragon.min.js`` (see ``assets``); None serves
    the static-thumbnail fallback. ``allowed_hosts``: Host headers to accept (guards against DNS
    rebinding); None accepts any (tests).
    """
    v = ViewerApp(path, openseadragon_dir=openseadragon_dir)
    routes: list[Any] = [
        Route("/", v.home),
        Route("/api/run", v.run),
        Route("/api/samples", v.samples),
        Route("/api/samples/{sample}", v.sample),
        Route("/blobs/{sha}", v.blob),
        Route("/slides/{key}.dzi", v.dzi),
        Route("/slides/{key}_files/{level:int}/{col:int}_{row:int}.jpeg", v.tile),
        Route("/slides/{key}_thumb.jpeg", v.thumbnail),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    if openseadragon_dir is not None:
        routes.append(
            Mount("/vendor/openseadragon", app=StaticFiles(directory=openseadragon_dir), name="osd")
        )
    middleware = [Middleware(SecurityHeaders)]
    if allowed_hosts:
        middleware.insert(0, Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    app = Starlette(routes=routes, middleware=middleware)
    app.state.viewer = v
    return app
