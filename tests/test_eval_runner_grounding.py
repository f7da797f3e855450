"""Grounding and trace scores on hand-built traces, and the record built from a trace."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from slidescout.core.messages import AssistantMessage, ImageRef, TextPart, ToolCallPart, Usage
from slidescout.core.trace import (
    GroundTruth,
    ImageEvent,
    ModelCallEvent,
    SlideRef,
    ToolEvent,
    Trace,
)
from slidescout.eval.grounding import grounding, mag_bucket, trace_scores, trace_views
from slidescout.eval.sample_run import build_record, is_finished
from slidescout.eval.samples import Sample
from slidescout.traces.rundir import BlobStore

W, H = 10000, 8000
REGIONS = [
    {"id": "a", "label": "tumor", "box": [1000, 1000, 500, 500]},
    {"id": "b", "label": "normal", "box": [6000, 5000, 800, 800]},
]


def _ref(box, width, height, mpp, sha="0" * 64) -> ImageRef:
    return ImageRef(sha256=sha, width=width, height=height, box=box, mpp=mpp)


def _call(step: int, text: str = "", usage: Usage | None = None) -> ModelCallEvent:
    return ModelCallEvent(
        id=f"m{step}",
        step=step,
        model="fake",
        latency_s=0.5,
        usage=usage or Usage(),
        output=AssistantMessage(
            parts=[TextPart(text=text)]
            if text
            else [ToolCallPart(id=f"c{step}", name="slide_zoom", arguments={})]
        ),
    )


def _tool(step: int, box, mpp, width=1000, height=1000) -> ToolEvent:
    return ToolEvent(
        id=f"t{step}",
        step=step,
        call=ToolCallPart(id=f"c{step}", name="slide_zoom", arguments={}),
        images=[_ref(box, width, height, mpp)],
        duration_s=0.1,
    )


def make_trace(
    overview_sha: str = "0" * 64, *, regions=REGIONS, answer: str = '{"answer": 1}'
) -> Trace:
    events = [
        ImageEvent(
            id="i0",
            step=0,
            purpose="overview",
            image=_ref((0, 0, W, H), 1000, 800, 2.5, overview_sha),
        ),
        _call(0),
        _tool(0, (0, 0, 5000, 4000), 1.25, 1000, 800),  # touches lesion a, too coarse
        _call(1),
        _tool(1, (900, 900, 1000, 1000), 0.25),  # lesion a at 40x
        _call(2),
        _tool(2, (3000, 3000, 1000, 1000), None),  # no lesion; mpp from the slide's: 0.25
        _call(3),
        _tool(3, (7000, 1000, 2000, 2000), 0.5),  # glass (right half), no lesion
        _call(4, answer),
    ]
    return Trace(
        sample_id="synth/s1",
        question="What is the finding?",
        options=["tumor", "normal"],
        slide=SlideRef(path="s1.tiff", width=W, height=H, mpp=0.25),
        model="fake",
        preset="giant",
        truth=GroundTruth(answer="tumor", regions=regions),
        events=events,
        status="answered",
        answer=answer,
        usage=Usage(input_tokens=1000, output_tokens=50, cost_usd=0.01),
    )


def test_views_steps_and_resolution() -> None:
    views = trace_views(make_trace())
    assert [v.step for v in views] == [0, 1, 2, 3, 4]
    assert views[0].whole_slide and not views[1].whole_slide
    assert views[3].mpp == pytest.approx(
        0.25
    )  # computed from the slide's mpp: 1000 px over 1000 px
    assert [mag_bucket(m) for m in (0.25, 0.5, 1.0, 2.0, 8.0, None)] == [
        "40x",
        "20x",
        "10x",
        "5x",
        "<5x",
        "unknown",
    ]


def test_grounding_lesions_and_views_on_lesions() -> None:
    g = grounding(make_trace(), answer_label="tumor")
    assert g is not None and g.n_lesions == 2 and g.n_seen == 1 and g.fraction_seen == 0.5
    a, b = g.lesions
    assert (
        a.seen and a.first_step == 2 and a.first_view == 2 and a.best_mpp == 0.25 and a.n_views == 1
    )
    assert a.touched and not b.touched and not b.seen and b.first_step is None
    assert g.first_step == 2
    assert g.n_views == 4 and g.n_views_on_lesion == 2 and g.fraction_views_on_lesion == 0.5
    assert g.answer_lesion_seen is True
    assert (
        grounding(make_trace(), answer_label="necrosis").answer_lesion_seen is None
    )  # no such lesion
    strict = grounding(make_trace(), max_mpp=0.2)
    assert strict.n_seen == 0 and strict.lesions[0].touched
    assert grounding(make_trace(regions=[])) is None


def test_trace_scores_area_per_magnification(tmp_path: Path) -> None:
    # overview: tissue on the left half, glass on the right half
    arr = np.full((800, 1000, 3), 245, np.uint8)
    arr[:, :500] = (220, 150, 190)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    blobs = BlobStore(tmp_path / "blobs")
    sha = blobs.put(buf.getvalue(), "image/png")
    ts = trace_scores(make_trace(sha), blobs)
    assert ts.n_steps == 5 and ts.n_images == 5 and ts.n_views == 4
    assert (
        ts.input_tokens == 1000 and ts.cost_usd == 0.01 and ts.model_latency_s == pytest.approx(2.5)
    )
    mm2 = 0.25**2 / 1e6
    assert ts.viewed_mm2["10x"] == pytest.approx(5000 * 4000 * mm2, rel=0.02)
    assert ts.viewed_mm2["40x"] == pytest.approx(2 * 1000 * 1000 * mm2, rel=0.05)  # two 40x views
    assert ts.viewed_mm2["20x"] == pytest.approx(2000 * 2000 * mm2, rel=0.05)
    assert ts.tissue_mm2["10x"] == pytest.approx(ts.viewed_mm2["10x"], rel=0.02)
    assert ts.tissue_mm2["20x"] == pytest.approx(0.0, abs=1e-3)  # the glass
    assert ts.finest_mpp == 0.25
    no_blobs = trace_scores(make_trace(sha))
    assert no_blobs.tissue_mm2 == {} and no_blobs.viewed_mm2["10x"] == pytest.approx(1.25, rel=0.02)
    unknown = make_trace(sha)
    unknown.slide.mpp = None
    assert trace_scores(unknown).viewed_mm2 == {}  # areas need the slide's mpp


def _sample(**kw) -> Sample:
    base = dict(
        sample_id="synth/s1",
        task="synth_diagnosis",
        question="q",
        options=["tumor", "normal"],
        answer=1,
        answer_label="tumor",
        answer_index=1,
        image_path="s1.tiff",
        image_paths=["s1.tiff"],
        meta={"dataset": "synthpath"},
    )
    return Sample(**{**base, **kw})


def test_record_from_a_trace() -> None:
    rec = build_record(_sample(), make_trace(), repeat=1, latency_s=3.21)
    assert rec.predicted == 1 and rec.parsed_ok and rec.truth == 1 and rec.repeat == 1
    assert rec.status == "answered" and rec.finished and is_finished(rec)
    assert rec.n_steps == 5 and rec.n_views == 4 and rec.cost_usd == 0.01 and rec.latency_s == 3.21
    assert rec.grounding["n_seen"] == 1 and rec.grounding["answer_lesion_seen"] is True
    assert rec.trace == "traces/synth__s1.r01.json"

    unparsed = build_record(_sample(), make_trace(answer="I am not sure."))
    assert not unparsed.parsed_ok and unparsed.predicted is None and unparsed.error

    stopped = make_trace()
    stopped.status, stopped.answer = "budget_usd", None
    rec = build_record(_sample(), stopped, run_budget_hit="budget_usd")
    assert rec.finished is False and not is_finished(rec)
    timed = make_trace()
    timed.status = "budget_time"
    assert build_record(_sample(), timed).finished is True  # the per-sample time limit alone: final
    assert is_finished({"status": "error"}) and not is_finished(
        {"status": "error"}, retry_errors=True
    )
    assert not is_finished({"status": "cancelled"})
