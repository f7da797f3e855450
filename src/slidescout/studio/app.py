"""The studio's ASGI app (Starlette): the page, its JSON API, live events over Server-Sent Events,
the slides' deep-zoom tiles, and the runs of the studio in the viewer (under ``/viewer/``).

Endpoints:

- ``GET /``: the page; ``/static/...`` (the viewer's), ``/studio/...`` (the studio's),
  ``/vendor/openseadragon/...``
- ``GET /api/studio``: the slides of the folder, the sessions, the defaults and presets
- ``GET /slides/{key}.dzi``, ``/slides/{key}_files/{level}/{col}_{row}.jpeg``,
  ``/slides/{key}_thumb.jpeg``: DeepZoom of a slide of the folder, by opaque key
- ``POST /api/sessions``: a new conversation (slide, model, preset, max steps) and its first
  question; ``POST /api/sessions/{id}/turns``: a follow-up; ``POST /api/sessions/{id}/stop``
- ``GET /api/sessions/{id}``: a session; ``GET /api/sessions/{id}/events``: its events, as SSE
  (from the start, or after ``Last-Event-ID``), then live
- ``GET /api/sessions/{id}/blobs/{sha256}``: an image the model saw in that session

Security, as the viewer's: the Host header must be one of the server's names (DNS rebinding); a
``POST`` must be JSON and, when it has an ``Origin``, come from the page's own origin; every
response carries a strict Content-Security-Policy; off loopback every request needs the token
printed at start (see ``access.py``). No endpoint takes a path; no key reaches the page.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from slidescout.agents.config import AgentConfig
from slidescout.agents.conversation import parse_region
from slidescout.agents.models import parse_model_id
from slidescout.agents.presets import PRESETS, get_preset
from slidescout.errors import SlidescoutError
from slidescout.studio.access import AccessGuard
from slidescout.studio.library import StudioLibrary
from slidescout.studio.session import Busy, Session
from slidescout.traces.viewer.app import JSON, STATIC_DIR, SecurityHeaders
from slidescout.traces.viewer.dzi import MIME, TileServer
from slidescout.traces.viewer.runs import create_runs_app, find_runs

log = logging.getLogger(__name__)

STUDIO_STATIC = Path(__file__).parent / "static"
PAGE_MODELS = ("openai", "anthropic", "expert")  # providers a page may pick (never replay: a path)
MAX_STEPS_LIMIT = 100
MAX_QUESTION = 8000


def _error(message: str, status: int = 400) -> JSON:
    return JSON({"error": message}, status_code=status)


class Studio:
    """Handlers bound to one slide folder, one runs folder and the sessions of this process."""

    def __init__(
        self,
        slides_dir: Path | str,
        runs_dir: Path | str,
        config: AgentConfig,
        *,
        openseadragon_dir: Path | None = None,
    ) -> None:
        self.library = StudioLibrary(slides_dir)
        self.runs_dir = Path(runs_dir)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.tiles = TileServer()
        self.osd_dir = openseadragon_dir
        self.sessions: dict[str, Session] = {}

    # -- pages and data -------------------------------------------------------------------------
    def home(self, request: Request) -> Response:
        return FileResponse(STUDIO_STATIC / "index.html", media_type="text/html")

    async def state(self, request: Request) -> Response:
        slides = await asyncio.to_thread(
            lambda: [self.library.describe(e) for e in self.library.refresh()]
        )
        live = {s.name for s in self.sessions.values()}
        return JSON(
            {
                "folder": self.library.root.name,
                "slides": slides,
                "sessions": [
                    s.public() for s in sorted(self.sessions.values(), key=lambda s: -s.created)
                ],
                "runs": [
                    r for r in await asyncio.to_thread(self._past_runs) if r["name"] not in live
                ],
                "defaults": {
                    "model": self.config.model_id,
                    "preset": self.config.preset,
                    "max_steps": self.config.max_steps or get_preset(self.config.preset).max_steps,
                },
                "presets": [
                    {"name": n, "description": p.description} for n, p in PRESETS.load_all().items()
                ],
                "deep_zoom": self.osd_dir is not None,
            }
        )

    def _past_runs(self) -> list[dict[str, Any]]:
        """Run folders of earlier studio sessions (and any other run kept there), newest first."""
        out = []
        for name in find_runs(self.runs_dir, depth=1):
            manifest_path = self.runs_dir / name / "manifest.json"
            try:
                manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                manifest = {}
            manifest = _dict(manifest)
            config = _dict(manifest.get("config"))
            agent, studio = _dict(config.get("agent")), _dict(config.get("studio"))
            n_turns = len(list((self.runs_dir / name / "traces").glob("*.json")))
            out.append(
                {
                    "name": name,
                    "slide_name": studio.get("slide"),
                    "model": agent.get("model"),
                    "preset": agent.get("preset"),
                    "turns": n_turns,
                    "created_at": manifest.get("created_at")
                    if isinstance(manifest, dict)
                    else None,
                    "href": f"viewer/runs/{name}/",
                }
            )
        return sorted(out, key=lambda r: r.get("created_at") or "", reverse=True)

    # -- sessions -------------------------------------------------------------------------------
    def _session(self, request: Request) -> Session | None:
        return self.sessions.get(str(request.path_params.get("sid", "")))

    async def create_session(self, request: Request) -> Response:
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        entry = self.library.get(str(body.get("slide") or ""))
        if entry is None:
            return _error("no such slide in this folder", 404)
        try:
            config = self._session_config(body)
            question, options, region = _question(body)
            session = await Session.start(entry, config, self.runs_dir)
        except SlidescoutError as exc:
            return _error(str(exc))
        self.sessions[session.id] = session
        try:
            session.ask(question, options, region)
        except SlidescoutError as exc:
            return _error(str(exc))
        return JSON(session.public(), status_code=201)

    def _session_config(self, body: dict[str, Any]) -> AgentConfig:
        """The command line's config with the page's model, preset and max steps."""
        update: dict[str, Any] = {}
        model = body.get("model")
        if model not in (None, ""):
            model = str(model).strip()
            provider, _ = parse_model_id(model)
            if provider not in PAGE_MODELS and model != self.config.model_id:
                raise SlidescoutError(
                    f"model {model!r}: the page can pick openai:…, anthropic:… or expert "
                    "(other models: give --model when starting the studio)"
                )
            update["model"] = model
        if body.get("preset") not in (None, ""):
            update["preset"] = get_preset(str(body["preset"])).name
        if body.get("max_steps") not in (None, ""):
            try:
                steps = int(body["max_steps"])
            except (TypeError, ValueError):
                raise SlidescoutError("max steps: give a whole number") from None
            if not 1 <= steps <= MAX_STEPS_LIMIT:
                raise SlidescoutError(f"max steps: give 1 to {MAX_STEPS_LIMIT}")
            update["max_steps"] = steps
        config = self.config.model_copy(update=update)
        config.check()
        return config

    def session(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return _error("no such session (the studio was restarted?)", 404)
        return JSON(session.public())

    async def follow_up(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return _error("no such session (the studio was restarted?)", 404)
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        try:
            question, options, region = _question(body)
            session.ask(question, options, region)
        except Busy as exc:
            return _error(str(exc), 409)
        except SlidescoutError as exc:
            return _error(str(exc))
        return JSON(session.public(), status_code=202)

    async def stop(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return _error("no such session", 404)
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        return JSON({"stopped": session.stop()})

    async def events(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return _error("no such session (the studio was restarted?)", 404)
        raw = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
        try:
            last = int(raw)
        except ValueError:
            last = 0

        async def stream() -> AsyncIterator[dict[str, Any]]:
            nonlocal last
            while True:
                for entry in await session.log.wait(last):
                    last = entry.id
                    yield {
                        "id": str(entry.id),
                        "event": entry.kind,
                        "data": json.dumps(entry.data, default=str, ensure_ascii=False),
                    }

        return EventSourceResponse(stream(), ping=15, headers={"cache-control": "no-store"})

    def blob(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return _error("no such session", 404)
        path = session.run.blobs.path(str(request.path_params["sha"]))
        if path is None or path.resolve().parent != session.run.blobs.root.resolve():
            return _error("no such image in this session", 404)
        media = {".jpg": "image/jpeg", ".png": "image/png"}.get(
            path.suffix, "application/octet-stream"
        )
        return Response(
            path.read_bytes(),
            media_type=media,
            headers={"cache-control": "private, max-age=31536000, immutable"},
        )

    # -- slides ---------------------------------------------------------------------------------
    def dzi(self, request: Request) -> Response:
        entry = self.library.get(request.path_params["key"])
        if entry is None:
            return _error("no such slide in this folder", 404)
        try:
            xml = self.tiles.descriptor(entry.path)
        except SlidescoutError as exc:
            return _error(self.library.library.scrub(str(exc)), 422)
        return Response(xml, media_type="application/xml")

    def tile(self, request: Request) -> Response:
        entry = self.library.get(request.path_params["key"])
        if entry is None:
            return _error("no such slide in this folder", 404)
        p = request.path_params
        try:
            data = self.tiles.tile(entry.path, p["level"], p["col"], p["row"])
        except SlidescoutError as exc:
            return _error(self.library.library.scrub(str(exc)), 422)
        if data is None:
            return _error("no such tile", 404)
        return Response(data, media_type=MIME, headers={"cache-control": "private, max-age=3600"})

    def thumbnail(self, request: Request) -> Response:
        entry = self.library.get(request.path_params["key"])
        if entry is None:
            return _error("no such slide in this folder", 404)
        try:
            data, box = self.tiles.thumbnail(entry.path, max_side=512)
        except SlidescoutError as exc:
            return _error(self.library.library.scrub(str(exc)), 422)
        return Response(
            data,
            media_type=MIME,
            headers={
                "cache-control": "private, max-age=300",
                "x-slide-box": ",".join(map(str, box)),
            },
        )

    async def aclose(self) -> None:
        await asyncio.gather(*(s.aclose() for s in self.sessions.values()), return_exceptions=True)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


async def _json_body(request: Request) -> dict[str, Any] | Response:
    if "application/json" not in request.headers.get("content-type", ""):
        return _error("send JSON (content-type: application/json)", 415)
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return _error("the request body is not valid JSON")
    if not isinstance(body, dict):
        return _error("the request body must be a JSON object")
    return body


def _question(body: dict[str, Any]) -> tuple[str, list[str], tuple[int, int, int, int] | None]:
    question = str(body.get("question") or "").strip()
    if not question:
        raise SlidescoutError("the question is empty; type a question")
    if len(question) > MAX_QUESTION:
        raise SlidescoutError(f"the question is too long (over {MAX_QUESTION} characters)")
    raw = body.get("options") or []
    if isinstance(raw, str):
        raw = raw.splitlines()
    if not isinstance(raw, list):
        raise SlidescoutError("options: give a list of texts")
    options = [str(o).strip() for o in raw if str(o).strip()]
    return question, options, parse_region(body.get("region"))


def create_app(
    slides_dir: Path | str,
    runs_dir: Path | str,
    config: AgentConfig | None = None,
    *,
    openseadragon_dir: Path | None = None,
    allowed_hosts: list[str] | None = None,
    token: str | None = None,
) -> Starlette:
    """The studio's ASGI app over a slide folder; sessions are recorded under ``runs_dir``.

    ``allowed_hosts``: Host headers to accept (None: any, for tests); ``token``: required on
    every request when set (the server sets it when bound off loopback)."""
    studio = Studio(
        slides_dir,
        runs_dir,
        config or AgentConfig.model_validate({}),
        openseadragon_dir=openseadragon_dir,
    )
    routes: list[Any] = [
        Route("/", studio.home),
        Route("/api/studio", studio.state),
        Route("/api/sessions", studio.create_session, methods=["POST"]),
        Route("/api/sessions/{sid}", studio.session),
        Route("/api/sessions/{sid}/turns", studio.follow_up, methods=["POST"]),
        Route("/api/sessions/{sid}/stop", studio.stop, methods=["POST"]),
        Route("/api/sessions/{sid}/events", studio.events),
        Route("/api/sessions/{sid}/blobs/{sha}", studio.blob),
        Route("/slides/{key}.dzi", studio.dzi),
        Route("/slides/{key}_files/{level:int}/{col:int}_{row:int}.jpeg", studio.tile),
        Route("/slides/{key}_thumb.jpeg", studio.thumbnail),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        Mount("/studio", app=StaticFiles(directory=STUDIO_STATIC), name="studio"),
        Mount("/viewer", app=create_runs_app(studio.runs_dir, openseadragon_dir=openseadragon_dir)),
    ]
    if openseadragon_dir is not None:
        routes.append(
            Mount("/vendor/openseadragon", app=StaticFiles(directory=openseadragon_dir), name="osd")
        )
    middleware = [Middleware(SecurityHeaders), Middleware(AccessGuard, token=token)]
    if allowed_hosts:
        middleware.insert(0, Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await studio.aclose()

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.studio = studio
    return app
