"""Image-set tools (view_image, crop_image, compare_images) and MedFrameQA end to end: a parquet in
the official schema, the agent loop with the image-set tools, and the thumbnail baseline."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from slidescout.agents.config import AgentConfig
from slidescout.errors import ToolError
from slidescout.eval import load_medframeqa
from slidescout.eval.config import EvalConfig
from slidescout.eval.runner import run_eval
from slidescout.slides.imageset import ImageSet
from slidescout.testing.fake_openai import FakeOpenAI, Reply, ToolCall
from slidescout.tools import ToolContext, default_registry
from slidescout.tools.imageset_tools import compare_images, crop_image, view_image

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def _png(color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    arr = np.zeros((size[1], size[0], 3), np.uint8)
    arr[:, :] = color
    arr[: size[1] // 2, : size[0] // 2] = (
        255,
        255,
        255,
    )  # a white top-left quarter, to check crops
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    out = []
    for i, c in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
        p = tmp_path / f"img{i + 1}.png"
        p.write_bytes(_png(c))
        out.append(p)
    return out


def _ctx(paths: list[Path], **kw) -> ToolContext:
    return ToolContext(
        imageset=ImageSet([str(p) for p in paths]), slide_id="imageset", guides=False, **kw
    )


async def test_view_crop_compare(images: list[Path]) -> None:
    ctx = _ctx(images, max_side=200)
    res = await view_image.invoke({"index": 2}, ctx)
    assert "Image 2 of 3: 64 x 48 px" in res.text
    img = res.images[0]
    assert img.source == "image:2" and img.box.as_tuple() == (0, 0, 64, 48) and img.mpp is None
    assert tuple(img.image[30, 40]) == pytest.approx(
        (30, 200, 30), abs=3
    )  # never upscaled: 64 px wide
    assert img.image.shape[:2] == (48, 64)

    res = await crop_image.invoke({"index": 1, "x": 0, "y": 0, "w": 32, "h": 24}, ctx)
    assert res.data["box"] == [0, 0, 32, 24] and not res.data["clamped"]
    assert np.all(res.images[0].image > 240)  # the white quarter
    assert "full resolution" in res.text

    res = await crop_image.invoke({"index": 3, "x": 50, "y": 40, "w": 100, "h": 100}, ctx)
    assert res.data["box"] == [50, 40, 14, 8] and res.data["clamped"] and "clamped" in res.text

    res = await compare_images.invoke({"a": 1, "b": 3}, ctx)
    arr = res.images[0].image
    assert arr.shape[1] > 2 * 64 and "side by side" in res.text
    assert res.data["images"] == [1, 3]


async def test_errors_are_tool_errors(images: list[Path]) -> None:
    ctx = _ctx(images)
    with pytest.raises(ToolError, match="numbered 1 to 3"):
        await view_image.invoke({"index": 4}, ctx)
    with pytest.raises(ToolError, match="outside image 1"):
        await crop_image.invoke({"index": 1, "x": 500, "y": 0, "w": 10, "h": 10}, ctx)
    with pytest.raises(ToolError):
        await crop_image.invoke({"index": 1, "x": 0, "y": 0, "w": 0, "h": 10}, ctx)
    with pytest.raises(ToolError, match="two different images"):
        await compare_images.invoke({"a": 2, "b": 2}, ctx)
    with pytest.raises(ToolError, match="single slide"):
        await view_image.invoke({"index": 1}, ToolContext())


def test_registered_in_the_default_registry() -> None:
    reg = default_registry()
    for name in ("view_image", "crop_image", "compare_images"):
        assert reg.get(name).spec.parameters["properties"]


# ---- MedFrameQA end to end ------------------------------------------------------------------


def _parquet(path: Path) -> Path:
    rows = [
        {
            "question_id": "q-1",
            "video_id": "v1",
            "question": "Which finding do the frames show?",
            "options": ["Aortic dissection", "Effusion", "Aneurysm", "Embolism"],
            "correct_answer": "A",
            "frames": [_png((200, 30, 30)), _png((30, 200, 30))],
        },
        {
            "question_id": "q-2",
            "video_id": "v2",
            "question": "What is the most likely diagnosis?",
            "options": ["Glioma", "Meningioma", "Abscess", "Metastasis", "Lymphoma"],
            "correct_answer": "C",
            "frames": [_png((10, 10, 10)), _png((90, 90, 90)), _png((200, 200, 30))],
        },
    ]
    cols = {
        k: [r[k] for r in rows]
        for k in ("question_id", "video_id", "question", "options", "correct_answer")
    }
    cols.update(
        system=["Cardiovascular", "Nervous"],
        organ=["Heart", "Brain"],
        keyword=["x", "y"],
        modality=["CT", "MRI"],
    )
    arrays = {
        k: pa.array(v, type=pa.list_(pa.string()) if k == "options" else pa.string())
        for k, v in cols.items()
    }
    for slot in range(5):
        arrays[f"image_{slot + 1}"] = pa.array(
            [
                {"bytes": r["frames"][slot], "path": f"{r['video_id']}_{slot}.png"}
                if slot < len(r["frames"])
                else None
                for r in rows
            ],
            type=IMAGE,
        )
    pq.write_table(pa.table(arrays), path)
    return path


def _n_tool_results(body: dict) -> int:
    """Tool results in a Chat Completions body, or a Responses body (``giant`` uses Responses)."""
    chat = sum(1 for m in body.get("messages", []) if m.get("role") == "tool")
    return chat + sum(1 for i in body.get("input", []) if i.get("type") == "function_call_output")


def _images_in(body: dict) -> int:
    n = 0
    for m in body.get("messages", []) + body.get("input", []):
        if isinstance(m.get("content"), list):
            n += sum(1 for part in m["content"] if part.get("type") in ("image_url", "input_image"))
    return n


def _tool_names(body: dict) -> set[str]:
    return {t.get("name") or t["function"]["name"] for t in body.get("tools", [])}


def agent_script(body: dict) -> Reply:
    k = _n_tool_results(body)
    calls = [
        ToolCall("view_image", {"index": 1}),
        ToolCall("crop_image", {"index": 2, "x": 0, "y": 0, "w": 20, "h": 20}),
        ToolCall("compare_images", {"a": 1, "b": 2}),
    ]
    if k < len(calls):
        return Reply(text=f"Looking closer ({k}).", tool_calls=[calls[k]])
    return Reply(text="Comparing the frames, the first option fits best.\nAnswer: A")


async def test_medframeqa_agent_and_thumbnail_baseline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    load = load_medframeqa(_parquet(tmp_path / "mfqa.parquet"), cache_dir=tmp_path / "cache")
    assert [len(s.image_paths) for s in load.samples] == [2, 3]

    with FakeOpenAI(agent_script) as srv:
        spec = AgentConfig(
            model="openai:fake-vlm", base_url=srv.base_url, preset="giant", max_steps=6
        )
        summary = await run_eval(
            load.samples, out=tmp_path / "run-agent", agent=spec, config=EvalConfig(concurrency=2)
        )
        tools_offered = set().union(*(_tool_names(b) for b in srv.bodies))
    assert tools_offered == {"view_image", "crop_image", "compare_images"}
    recs = [
        json.loads(line)
        for line in (tmp_path / "run-agent" / "results.jsonl").read_text().splitlines()
    ]
    assert len(recs) == 2 and {r["status"] for r in recs} == {"answered"}
    assert {r["sample_id"]: r["predicted"] for r in recs} == {
        "medframeqa/q-1": "A",
        "medframeqa/q-2": "A",
    }
    assert all(r["n_steps"] == 4 and r["n_views"] == 3 for r in recs)
    s = summary.scores["medframeqa"]
    assert s.n == 2 and s.n_correct == 1 and s.value == pytest.approx(0.5)
    trace = json.loads((tmp_path / "run-agent" / recs[0]["trace"]).read_text())
    assert trace["slide"]["kind"] == "imageset"
    sources = [
        img["source"] for ev in trace["events"] if ev["kind"] == "tool" for img in ev["images"]
    ]
    assert sources[:2] == ["image:1", "image:2"]

    with FakeOpenAI(lambda body: Reply(text="All images together.\nAnswer: C")) as srv:
        spec = AgentConfig(model="openai:fake-vlm", base_url=srv.base_url, preset="thumbnail")
        summary = await run_eval(
            load.samples, out=tmp_path / "run-thumb", agent=spec, config=EvalConfig(concurrency=2)
        )
        per_request = sorted(_images_in(b) for b in srv.bodies)
        assert len(srv.bodies) == 2 and all(not b.get("tools") for b in srv.bodies)
    assert per_request == [2, 3]  # every image in one message
    assert summary.scores["medframeqa"].n_correct == 1
