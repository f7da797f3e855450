"""MedFrameQA: the official protocol (``--preset medframeqa``) and every frame first for the agents."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from test_imageset_tools import _n_tool_results, _parquet, agent_script

from slidescout.agents.baselines import official_question
from slidescout.agents.config import AgentConfig
from slidescout.core.sample import Sample
from slidescout.eval import load_medframeqa
from slidescout.eval.config import EvalConfig
from slidescout.eval.runner import run_eval
from slidescout.testing.fake_anthropic import FakeAnthropic
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


def _official_text(sample: Sample) -> str:
    """MedFrameQA's ``eval_prompt_template`` (config/prompt.yaml, a YAML block scalar that keeps
    one trailing newline) filled with the question and ``add_letter(options)``."""
    lettered = [f"{chr(65 + i)}. {o}" for i, o in enumerate(sample.options)]
    return "Question:" + sample.meta["raw_question"] + " \n\nOptions:\n" + str(lettered) + "\n"


def test_official_text_has_letters_and_the_layout() -> None:
    sample = Sample(
        sample_id="s",
        question="ignored",
        options=["Crohn's disease", "Ulcerative colitis"],
        answer="A",
        answer_format="letter",
        image_path="x.png",
        meta={"raw_question": "Which disease? "},
    )
    assert official_question(sample) == (
        "Question:Which disease?  \n\nOptions:\n[\"A. Crohn's disease\", 'B. Ulcerative colitis']\n"
    )
    assert official_question(sample) == _official_text(sample)


def _route_message(route: str, body: dict) -> list[dict]:
    """The one user message's content blocks of a request body on ``route``."""
    if route == "responses":
        return [i for i in body["input"] if i.get("role") == "user"][0]["content"]
    return [m for m in body["messages"] if m.get("role") == "user"][0]["content"]


@pytest.mark.parametrize("route", ["chat", "responses", "anthropic"])
async def test_medframeqa_layout_on_every_route(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, route: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    load = load_medframeqa(_parquet(tmp_path / "mfqa.parquet"), cache_dir=tmp_path / "cache")
    server = FakeAnthropic if route == "anthropic" else FakeOpenAI
    with server(lambda body: Reply(text="Answer: A")) as srv:
        if route == "anthropic":
            spec = AgentConfig(
                model="anthropic:claude-x", base_url=srv.base_url, preset="medframeqa"
            )
        else:
            spec = AgentConfig(
                model="openai:fake-vlm", base_url=srv.base_url, preset="medframeqa", api=route
            )
        await run_eval(
            load.samples, out=tmp_path / "run", agent=spec, config=EvalConfig(concurrency=1)
        )
        bodies = srv.bodies
    assert len(bodies) == len(load.samples)
    for body, sample in zip(bodies, load.samples, strict=True):
        blocks = _route_message(route, body)
        kinds = ["text" if b["type"] in ("text", "input_text") else "image" for b in blocks]
        n = len(sample.image_paths)
        # GPT: the text, then every image; Claude: every image, then the text
        assert kinds == (
            ["image"] * n + ["text"] if route == "anthropic" else ["text"] + ["image"] * n
        )
        text = next(b["text"] for b in blocks if b["type"] in ("text", "input_text"))
        assert text == _official_text(sample)
        assert "['A. " in text and "Answer" not in text


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
        # the official layout: the question, then the lettered options as the Python list's text
        assert text == [_official_text(sample)]
        assert user["content"][0]["type"] == "text"  # GPT: the text first, then the images
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
