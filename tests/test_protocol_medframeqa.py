"""MedFrameQA: the official protocol (``--preset medframeqa``) and every frame first for the agents."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from test_imageset_tools import _n_tool_results, _parquet, agent_script

from slidescout.agents.config import AgentConfig
from slidescout.eval import load_medframeqa
from slidescout.eval.config import EvalConfig
from slidescout.eval.runner import run_eval
from slidescout.testing.fake_openai import FakeOpenAI, Reply


def _image_urls(body: dict, first_only: bool = False) -> list[str]:
    """The images of a Chat Completions body, or of a Responses body (``giant`` uses Responses)."""
    items = body.get("messages", []) + body.get("input", [])
    msgs = [m for m in items if m.get("role") == "user"]
    msgs = msgs[:1] if first_only else msgs
    return [
        p["image_url"]["url"] if isinstance(p["image_url"], dict) else p["image_url"]
        for m in msgs
        if isinstance(m.get("content"), list)
        for p in m["content"]
        if p.get("type") in ("image_url", "input_image")
    ]


async def test_medframeqa_preset_is_the_official_protocol(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    load = load_medframeqa(_parquet(tmp_path / "mfqa.parquet"), cache_dir=tmp_path / "cache")
    replies = iter([Reply(text="The frames show it. Answer: A"), Reply(text="")])
    with FakeOpenAI(lambda body: next(replies)) as srv:
        spec = AgentConfig(model="openai:fake-vlm", base_url=srv.base_url, preset="medframeqa")
        summary = await run_eval(
            load.samples, out=tmp_path / "run", agent=spec, config=EvalConfig(concurrency=1)
        )
        bodies = srv.bodies
    assert len(bodies) == 2
    for body, sample in zip(bodies, load.samples, strict=True):
        assert not body.get("tools") and body["temperature"] == 0
        system, user = body["messages"]
        assert system["role"] == "system" and "Answer: $LETTER" in system["content"]
        text = [p["text"] for p in user["content"] if p["type"] == "text"]
        # the question, then the options as the Python list's text
        assert text == [f"{sample.meta['raw_question']}\n{sample.options!s}"]
        urls = _image_urls(body)
        assert len(urls) == len(sample.image_paths)  # every frame, in the first (only) request
        for url, path in zip(
            urls, sample.image_paths, strict=True
        ):  # the original files, byte for byte
            assert url.startswith("data:image/png;base64,")
            assert base64.b64decode(url.split(",", 1)[1]) == Path(path).read_bytes()
        assert all("detail" not in p.get("image_url", {}) for p in user["content"])
    recs = [
        json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()
    ]
    by_id = {r["sample_id"]: r for r in recs}
    assert by_id["medframeqa/q-1"]["parse_method"] == "official_answer"
    s = summary.scores["medframeqa"]
    # official: the empty reply is left out of the denominator; ours: it counts wrong
    assert (
        s.n_empty == 1
        and s.value == pytest.approx(0.5)
        and s.value_excluding_empty == pytest.approx(1.0)
    )


async def test_agentic_presets_show_every_frame_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    load = load_medframeqa(_parquet(tmp_path / "mfqa.parquet"), cache_dir=tmp_path / "cache")
    for preset in ("scout", "giant"):
        with FakeOpenAI(agent_script) as srv:
            spec = AgentConfig(
                model="openai:fake-vlm", base_url=srv.base_url, preset=preset, max_steps=6
            )
            await run_eval(
                load.samples,
                out=tmp_path / f"run-{preset}",
                agent=spec,
                config=EvalConfig(concurrency=1),
            )
            firsts = [b for b in srv.bodies if not _n_tool_results(b)]
        assert sorted(len(_image_urls(b, first_only=True)) for b in firsts) == [2, 3], preset
