"""The studio's server: sessions as run folders, live events over SSE (and reattaching), and the
viewer's security (token off loopback, same-origin writes, Host check, slides only by key)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
from cli_helpers import run_cli
from slidefactory import make_tiff

from slidescout.agents.config import AgentConfig
from slidescout.studio.server import start_in_thread

TIMEOUT = httpx.Timeout(120.0)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("studio")
    slides = root / "slides"
    slides.mkdir()
    make_tiff(slides / "a.tiff", 3000, 2000, mpp=0.5)
    outside = root / "outside.tiff"
    make_tiff(outside, 600, 400, mpp=0.5)
    os.symlink(outside, slides / "link-out.tiff")  # leads out of the folder: never listed
    return root


@pytest.fixture()
def server(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-never-on-a-page")
    config = AgentConfig(model="expert", preset="vitar", max_steps=4)
    srv = start_in_thread(folder / "slides", tmp_path / "runs", config)
    yield srv
    srv.stop()


def sse(client: httpx.Client, sid: str, *, after: int = 0, until: str = "end") -> list[dict]:
    """Events of a session until one of kind ``until`` (the stream stays open otherwise)."""
    out = []
    headers = {"last-event-id": str(after)} if after else {}
    with client.stream("GET", f"api/sessions/{sid}/events", headers=headers) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        event: dict = {}
        for line in resp.iter_lines():
            if line.startswith(("id:", "event:", "data:")):
                key, _, value = line.partition(":")
                event[key] = value.strip()
            elif not line and event:
                event["data"] = json.loads(event.get("data") or "null")
                out.append(event)
                if event.get("event") == until:
                    return out
                event = {}
    return out


def test_a_session_is_a_run_folder_and_events_replay(server, tmp_path, capsys):
    c = httpx.Client(base_url=server.url, timeout=TIMEOUT)
    state = c.get("api/studio").json()
    assert [s["name"] for s in state["slides"]] == ["a.tiff"]  # the symlink out is not listed
    key = state["slides"][0]["key"]
    assert state["slides"][0]["width"] == 3000 and state["slides"][0]["mpp"] == 0.5
    r = c.post(
        "api/sessions", json={"slide": key, "question": "What is it?", "options": ["A", "B"]}
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    busy = c.post(f"api/sessions/{sid}/turns", json={"question": "again?"})
    events = sse(c, sid)
    if busy.status_code != 409:  # the first turn may have ended already on a fast machine
        assert busy.status_code == 202
        events = sse(c, sid, after=int(events[-1]["id"]))
    kinds = [e["event"] for e in events]
    assert kinds[0] in ("session", "turn", "snapshot", "end") and kinds[-1] == "end"
    # a page that reconnects with the last id it saw gets only what came after
    all_events = sse(c, sid)
    later = sse(c, sid, after=int(all_events[0]["id"]))
    assert [e["id"] for e in later] == [e["id"] for e in all_events[1:]]
    assert all_events[0]["event"] == "session"
    end = all_events[-1]["data"]
    assert end["status"] == "answered" and end["session"]["running"] is False
    snap = next(e for e in reversed(all_events) if e["event"] == "snapshot")["data"]["view"]
    assert snap["regions"] and snap["steps"]
    # the images of a session are served by hash, only from its own run folder
    url = snap["steps"][0]["shown"][0]["url"]
    assert c.get(url).headers["content-type"] == "image/jpeg"
    assert c.get(f"api/sessions/{sid}/blobs/{'0' * 64}").status_code == 404
    assert c.get(f"api/sessions/{sid}/blobs/..%2F..%2Fmanifest.json").status_code == 404
    # the run folder is a normal run: trace show and report-html read it
    runs = [d for d in (tmp_path / "runs").iterdir() if d.is_dir()]
    assert len(runs) == 1
    rc, out, _ = run_cli(capsys, "trace", "show", runs[0])
    assert rc == 0 and "a/turn-1" in out
    rc, _, _ = run_cli(capsys, "report-html", runs[0], "-o", tmp_path / "r.html")
    assert rc == 0
    # it is listed in the viewer mounted at /viewer
    assert runs[0].name in c.get("viewer/").text
    # no key reaches a page or the API
    for body in (c.get("/").text, c.get("api/studio").text, json.dumps(all_events)):
        assert "sk-secret-never-on-a-page" not in body


def test_writes_must_be_same_origin_json(server):
    c = httpx.Client(base_url=server.url, timeout=TIMEOUT)
    key = c.get("api/studio").json()["slides"][0]["key"]
    body = {"slide": key, "question": "q"}
    evil = c.post("api/sessions", json=body, headers={"origin": "http://evil.example"})
    assert evil.status_code == 403
    site = c.post("api/sessions", json=body, headers={"sec-fetch-site": "cross-site"})
    assert site.status_code == 403
    plain = c.post("api/sessions", content=json.dumps(body), headers={"content-type": "text/plain"})
    assert plain.status_code == 415
    host = c.get("api/studio", headers={"host": "evil.example"})
    assert host.status_code == 400  # DNS rebinding: a foreign Host header
    assert "content-security-policy" in c.get("/").headers


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "replay:/etc/passwd"}, "the page can pick"),
        ({"preset": "nope"}, "unknown preset"),
        ({"max_steps": 0}, "max steps"),
        ({"question": " "}, "question is empty"),
        ({"region": "1,2,3"}, "region"),
        ({"slide": "0" * 20}, "no such slide"),
    ],
)
def test_bad_requests_get_one_line(server, body, message):
    c = httpx.Client(base_url=server.url, timeout=TIMEOUT)
    key = c.get("api/studio").json()["slides"][0]["key"]
    r = c.post("api/sessions", json={"slide": key, "question": "q", **body})
    assert r.status_code in (400, 404) and message in r.json()["error"]


def test_slides_only_by_key(server):
    c = httpx.Client(base_url=server.url, timeout=TIMEOUT)
    key = c.get("api/studio").json()["slides"][0]["key"]
    assert c.get(f"slides/{key}.dzi").status_code == 200
    assert c.get(f"slides/{key}_files/8/0_0.jpeg").headers["content-type"] == "image/jpeg"
    for bad in ("a.tiff.dzi", "..%2F..%2Fetc%2Fpasswd.dzi", f"{key[:-1]}x.dzi"):
        assert c.get(f"slides/{bad}").status_code == 404


def test_token_required_off_loopback(folder, tmp_path):
    srv = start_in_thread(
        folder / "slides", tmp_path / "runs", AgentConfig(model="expert"), token=True
    )
    try:
        assert "?token=" in srv.url
        base = srv.url.split("?")[0]
        token = srv.url.split("token=")[1]
        bare = httpx.Client(base_url=base, timeout=TIMEOUT)
        assert bare.get("api/studio").status_code == 403
        assert bare.get("api/studio", params={"token": "wrong"}).status_code == 403
        first = bare.get("/", params={"token": token})
        assert first.status_code == 200 and "HttpOnly" in first.headers["set-cookie"]
        assert bare.get("api/studio").status_code == 200  # the cookie carries it from now on
        auth = httpx.Client(
            base_url=base, timeout=TIMEOUT, headers={"authorization": f"token {token}"}
        )
        assert auth.get("api/studio").status_code == 200
    finally:
        srv.stop()


def test_studio_binds_loopback_and_prints_no_token(folder, tmp_path, capsys, monkeypatch):
    """``slidescout studio``: one line per fact; on loopback the URL has no token."""
    import slidescout.studio.server as server_mod

    seen = {}

    class FakeServer:
        def __init__(self, *a, **k):
            pass

        def run(self, sockets):
            seen["host"] = sockets[0].getsockname()[0]

    monkeypatch.setattr(server_mod, "_server", lambda *a, **k: (FakeServer(), None))
    rc, out, err = run_cli(
        capsys, "studio", folder / "slides", "--no-browser", "--no-install", "-o", tmp_path / "r"
    )
    assert rc == 0, err
    assert seen["host"] == "127.0.0.1"
    assert "slidescout studio: http://127.0.0.1:" in out and "token" not in out
