"""The live workspace: ``slidescout studio DIR`` (ask a slide in the browser, watch the agent work,
stop it, ask a follow-up, hint a region) and ``slidescout chat SLIDE`` (the same in a terminal).

- ``library.py``: the slides of the folder (by opaque key; nothing outside it is served);
- ``session.py``: one conversation on one slide, its turns run through ``run_sample`` into a
  normal run folder, its live events kept for every page that (re)attaches;
- ``app.py``: the Starlette app (JSON, Server-Sent Events, tiles), with the viewer's security;
- ``server.py``: binding, the access token off loopback, uvicorn;
- ``chat.py``: the terminal front end.

Heavy imports (starlette, uvicorn, sse-starlette) happen in the modules that need them.
"""

from __future__ import annotations

__all__: list[str] = []
