"""``slidescout chat`` (the studio in a terminal) and ``slidescout studio``'s command line."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest
from cli_helpers import run_cli
from slidefactory import make_tiff

from slidescout.testing.fake_openai import FakeOpenAI, Reply, ToolCall


@pytest.fixture(scope="module")
def slide(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("chat") / "case-3.tiff"
    make_tiff(p, 4000, 3000, mpp=0.25)
    return p


@pytest.fixture()
def fake_env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-chat")

    def use(server):
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)

    return use


def _results(out: Path) -> list[dict]:
    (run,) = [d for d in out.iterdir() if d.is_dir()]
    return [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]


def test_chat_follow_up_region_cost_and_save(capsys, monkeypatch, slide, tmp_path, fake_env):
    zoom = ToolCall("slide_zoom", {"x0": 100, "y0": 100, "w": 800, "h": 600})
    with FakeOpenAI(
        [Reply(text="Looking.", tool_calls=[zoom]), Reply(text="Tumour."), Reply(text="Stroma.")]
    ) as srv:
        fake_env(srv)
        report = tmp_path / "chat.html"
        lines = [
            "What is it?",
            "/region 100,200,300,400",
            "And in this region?",
            "/cost",
            f"/save {report}",
            "/quit",
        ]
        monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
        rc, out, err = run_cli(
            capsys,
            "chat",
            slide,
            "--model",
            "openai:gpt-5",
            "--max-steps",
            "5",
            "-o",
            tmp_path / "runs",
        )
        assert rc == 0, err
        body = json.dumps(srv.requests[-1].body)
    assert "What is it?" in body and "Tumour." in body  # the follow-up carries the first turn
    assert "x=100, y=200" in body and "300 x 400" in body
    assert "slide_zoom(x0=100, y0=100, w=800, h=600)" in out and "region 1" in out
    assert "question 2: And in this region?" in out
    assert "steps ·" in out and f"saved {report}" in out
    assert report.stat().st_size > 1000
    recs = _results(tmp_path / "runs")
    assert [r["status"] for r in recs] == ["answered", "answered"]
    assert "sk-fake-chat" not in out + err


def test_chat_stop_keeps_the_trace(capsys, monkeypatch, slide, tmp_path, fake_env):
    held = threading.Event()
    with FakeOpenAI([Reply(text="never", gate=held)]) as srv:
        fake_env(srv)
        monkeypatch.setattr("sys.stdin", io.StringIO("What is it?\n/stop\n"))
        try:
            rc, out, err = run_cli(
                capsys, "chat", slide, "--model", "openai:gpt-5", "-o", tmp_path / "runs"
            )
        finally:
            held.set()
    assert rc == 0, err
    assert "stopped" in out
    assert [r["status"] for r in _results(tmp_path / "runs")] == ["stopped"]


def test_chat_and_studio_refuse_bad_input_in_one_line(capsys, tmp_path):
    rc, out, err = run_cli(capsys, "chat", tmp_path / "missing.svs")
    assert rc == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1
    rc, out, err = run_cli(capsys, "studio", tmp_path / "nowhere", "--no-browser")
    assert rc == 2 and "no such folder" in err and len(err.strip().splitlines()) == 1
    rc, out, err = run_cli(capsys, "studio", tmp_path, "--preset", "bogus", "--no-browser")
    assert rc == 2 and "unknown preset" in err
