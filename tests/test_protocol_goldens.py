"""Conformance (issue 19): the WHOLE request body of ``giant``, ``thumbnail``, ``patch`` and
``medframeqa`` on each route (OpenAI Responses, OpenAI Chat, Anthropic), sent through the real SDKs
to the fake servers, equals its golden file (``tests/goldens/``), where every field cites the
upstream line it comes from (GIANT, KianWeihrauch/GIANT; MedFrameQA, haojinw0027/MedFrameQA) or
says why it is ours. A route that cannot carry a protocol refuses it in one line.

To add a field: run with ``GOLDEN_DUMP=DIR`` to write the normalised bodies, copy the new field
into the golden file and justify it in a comment.
"""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from goldens import as_yaml, load, normalise, unjustified
from PIL import Image
from slidefactory import make_tiff

from slidescout.agents.loop import make_agent
from slidescout.core.sample import Sample
from slidescout.core.trace import Trace
from slidescout.errors import ConfigError
from slidescout.eval import load_medframeqa
from slidescout.eval.ask import question_sample
from slidescout.testing.fake_anthropic import FakeAnthropic
from slidescout.testing.fake_openai import FakeOpenAI, Reply, ToolCall
from slidescout.traces.rundir import RunDir

ZOOM = ToolCall("slide_zoom", {"x0": 1000, "y0": 800, "w": 2000, "h": 1500})
ZOOM2 = ToolCall("slide_zoom", {"x0": 3000, "y0": 2000, "w": 1000, "h": 1000})
BAD = ToolCall("slide_zoom", {"x0": 10, "y0": 20, "w": 300})  # no h: an error result
ANSWER = Reply(text='<report>Glands.</report>\n<response>{"answer": 1}</response>', reasoning="ok")
MODELS = {
    "openai-responses": ("openai:gpt-5", "responses"),
    "openai-chat": ("openai:gpt-4o", "chat"),
    "anthropic": ("anthropic:claude-sonnet-4-5", "auto"),
}
# (preset, route): (the script, which request is compared)
CASES: dict[tuple[str, str], tuple[list[Reply], int]] = {
    ("giant", "openai-responses"): (
        [
            Reply(reasoning="look", text="Zooming.", tool_calls=[ZOOM]),
            Reply(tool_calls=[BAD]),
            ANSWER,
        ],
        2,
    ),
    ("giant", "anthropic"): (
        [
            Reply(reasoning="look", text="Zooming.", tool_calls=[ZOOM]),
            Reply(reasoning="again", tool_calls=[BAD, ZOOM2]),
            ANSWER,
        ],
        2,
    ),
    **{(p, r): ([ANSWER] * 30, 0) for p in ("thumbnail", "patch") for r in MODELS},
    **{("medframeqa", r): ([Reply(text="Answer: A")], 0) for r in MODELS},
}


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000000000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0000000")


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("goldens") / "s.tiff"
    make_tiff(p, 6000, 4000, mpp=0.25)
    return p


def _frame(fmt: str, colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buf, fmt)
    return buf.getvalue()


def _medframeqa_sample(tmp_path: Path) -> Sample:
    """One MedFrameQA question with a JPEG and a PNG frame, loaded as the dataset loader does."""
    frames = [("jpg", _frame("JPEG", (200, 40, 40))), ("png", _frame("PNG", (40, 200, 40)))]
    cols: dict[str, Any] = {
        "question_id": ["q-1"],
        "video_id": ["v1"],
        "question": ["Which finding do the frames show?"],
        "options": pa.array([["Aortic dissection", "Effusion", "Aneurysm"]], pa.list_(pa.string())),
        "correct_answer": ["A"],
        "system": ["Cardiovascular"],
        "organ": ["Heart"],
        "keyword": ["x"],
        "modality": ["CT"],
    }
    for slot in range(5):
        cols[f"image_{slot + 1}"] = [
            {"bytes": frames[slot][1], "path": f"v1_{slot}.{frames[slot][0]}"}
            if slot < len(frames)
            else None
        ]
    path = tmp_path / "mfqa.parquet"
    pq.write_table(pa.table(cols), path)
    return load_medframeqa(path, cache_dir=tmp_path / "cache").samples[0]


def _capture(preset: str, route: str, slide_path: Path, tmp_path: Path) -> list[dict[str, Any]]:
    """Every request body of one sample under ``preset`` on ``route``."""
    script, _ = CASES[(preset, route)]
    model_id, api = MODELS[route]
    if preset == "medframeqa" and route == "openai-responses":
        model_id = "openai:gpt-4o"  # MedFrameQA's GPT: a model that takes a temperature
    sample = (
        _medframeqa_sample(tmp_path)
        if preset == "medframeqa"
        else question_sample(slide_path, "What is the diagnosis?", ["Tumour", "Normal"])
    )
    server: Any = FakeAnthropic(script) if route == "anthropic" else FakeOpenAI(script)
    with server as srv:
        agent = make_agent(model_id, preset=preset, base_url=srv.base_url, api=api, max_steps=4)
        run = RunDir.create(tmp_path / "run", agent.config(), agent.prompt_hashes())

        async def go() -> Trace:
            try:
                return await agent.run(sample, run.recorder())
            finally:
                await agent.aclose()

        trace = asyncio.run(go())
        bodies = srv.bodies
    assert trace.status == "answered", trace.error
    return bodies


@pytest.mark.parametrize(("preset", "route"), sorted(CASES))
def test_request_body_equals_its_golden(
    preset: str, route: str, slide_path: Path, tmp_path: Path
) -> None:
    bodies = _capture(preset, route, slide_path, tmp_path)
    body = normalise(bodies[CASES[(preset, route)][1]])
    dump = os.environ.get("GOLDEN_DUMP")
    if dump:
        Path(dump).mkdir(parents=True, exist_ok=True)
        (Path(dump) / f"{preset}.{route}.yaml").write_text(as_yaml(body), encoding="utf-8")
    golden = load(f"{preset}.{route}")
    assert body == golden["body"], (
        f"the {preset} body on {route} differs from tests/goldens/{preset}.{route}.yaml; a new "
        "field needs its upstream line (see the module doc). Sent:\n" + as_yaml(body)
    )


def test_giant_patch_and_thumbnail_bodies_are_the_same_on_every_request(
    slide_path: Path, tmp_path: Path
) -> None:
    """The patch baseline's 30 requests differ only in their image (the golden is the first)."""
    bodies = [normalise(b) for b in _capture("patch", "openai-responses", slide_path, tmp_path)]
    assert len(bodies) == 4 and all(b == bodies[0] for b in bodies)


def test_every_golden_field_is_justified() -> None:
    names = sorted({f"{p}.{r}" for p, r in CASES})
    assert [
        n for n in names if not (Path(__file__).parent / "goldens" / f"{n}.yaml").exists()
    ] == []
    bad = [line for n in names for line in unjustified(n)]
    assert bad == [], "fields without a citation of upstream (X:123) or 'ours':\n" + "\n".join(bad)


def test_giant_refuses_the_chat_route_in_one_line() -> None:
    """GIANT always uses the Responses API (tool images inside the tool output, reasoning summary):
    the chat route cannot carry it, and says so in one line naming --api responses."""
    with pytest.raises(ConfigError) as err:
        make_agent("openai:gpt-5", preset="giant", base_url="http://127.0.0.1:9/v1", api="chat")
    text = str(err.value)
    assert "\n" not in text and "--api responses" in text and "giant" in text
