"""A small run directory for the viewer tests: real slides, real blobs, traces of every shape.

``build_run(tmp)`` writes:
- ``slides/case.tiff`` (6000 x 4000 tissue-like pyramid TIFF) and two PNGs of an image set;
- ``run/`` with a manifest, three results lines and four traces:
  ``case-1`` (answered, correct: overview, two zooms, a heatmap, rethink, answer, truth regions),
  ``case-2`` (answered, wrong, a tool error), ``case-3`` (still running: a trace, no results line),
  ``set-1`` (an image set of two images, a crop of image 2).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from slidefactory import make_png, make_tiff

from slidescout.core.messages import (
    AssistantMessage,
    ImageRef,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    Usage,
)
from slidescout.core.trace import (
    AnswerEvent,
    GroundTruth,
    ImageEvent,
    ModelCallEvent,
    NoteEvent,
    Rethink,
    SlideRef,
    ToolEvent,
    Trace,
)
from slidescout.traces.rundir import RunDir

SLIDE_W, SLIDE_H = 6000, 4000
ZOOM_1 = (1000, 800, 2000, 1500)
ZOOM_2 = (3900, 2500, 800, 600)
TRUTH = (3800, 2400, 1000, 800)


def _jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def _store(
    run: RunDir,
    rgb: np.ndarray,
    box,
    label: str,
    source: str,
    mpp: float | None = None,
    level: int | None = 0,
) -> ImageRef:
    data = _jpeg(rgb)
    sha = run.blobs.put(data)
    return ImageRef(
        sha256=sha,
        width=rgb.shape[1],
        height=rgb.shape[0],
        box=tuple(box),
        level=level,
        mpp=mpp,
        source=source,
        label=label,
    )


def _heatmap(w: int, h: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    v = np.exp(-(((xs - w * 0.6) / (w * 0.25)) ** 2 + ((ys - h * 0.5) / (h * 0.3)) ** 2))
    out = np.zeros((h, w, 3), np.uint8)
    out[..., 0] = (255 * v).astype(np.uint8)
    out[..., 1] = (255 * (1 - abs(v - 0.5) * 2)).astype(np.uint8)
    out[..., 2] = (255 * (1 - v)).astype(np.uint8)
    return out


def _call(
    step: int,
    name: str,
    args: dict,
    text: str,
    usage: Usage,
    rethink: Rethink | None = None,
    reasoning: str = "",
) -> ModelCallEvent:
    parts: list = []
    if reasoning:
        parts.append(ReasoningPart(text=reasoning, provider="test"))
    parts.append(TextPart(text=text))
    if name:
        parts.append(ToolCallPart(id=f"c{step}", name=name, arguments=args))
    return ModelCallEvent(
        id=f"m{step}",
        step=step,
        model="openai:gpt-test",
        api="openai-responses",
        output=AssistantMessage(parts=parts),
        usage=usage,
        latency_s=1.2 + step,
        rethink=rethink,
        images_in_context=step + 1,
    )


def build_run(tmp: Path) -> dict:
    from slidescout.slides import open_slide

    tmp = Path(tmp)
    (tmp / "slides").mkdir(parents=True, exist_ok=True)
    slide_path = make_tiff(
        tmp / "slides" / "case.tiff", SLIDE_W, SLIDE_H, mpp=0.25, pattern="tissue"
    )
    img1 = make_png(tmp / "slides" / "frame1.png", 640, 480)
    img2 = make_png(tmp / "slides" / "frame2.png", 480, 480, pattern="tissue")
    slide = open_slide(slide_path)
    run = RunDir.create(
        tmp / "run", {"model": "openai:gpt-test", "preset": "vitar"}, {"system": "abc"}
    )
    sref = SlideRef(
        path=str(slide_path),
        slide_id="case",
        width=SLIDE_W,
        height=SLIDE_H,
        mpp=0.25,
        mpp_source="metadata",
    )

    overview = slide.thumbnail(1000)
    ov = _store(
        run,
        overview.image,
        overview.box.as_tuple(),
        "overview",
        "case",
        overview.mpp,
        overview.level,
    )
    v1 = slide.read(ZOOM_1, 800)
    r1 = _store(run, v1.image, ZOOM_1, "slide_zoom", "case", v1.mpp, v1.level)
    v2 = slide.read(ZOOM_2, 800)
    r2 = _store(run, v2.image, ZOOM_2, "slide_zoom", "case", v2.mpp, v2.level)
    heat = _store(run, _heatmap(400, 300), ZOOM_2, "heatmap", "case", None, None)

    u = Usage(input_tokens=1500, output_tokens=120, cost_usd=0.0042)
    t1 = Trace(
        sample_id="case-1",
        run_id="run",
        task="synth",
        question="Which tissue is shown?\n1. tumour\n2. stroma",
        options=["tumour", "stroma"],
        slide=sref,
        model="openai:gpt-test",
        preset="vitar",
        truth=GroundTruth(answer="tumour", regions=[{"label": "tumour", "box": list(TRUTH)}]),
        status="answered",
        answer="Answer: 1 (tumour)",
        usage=Usage(input_tokens=4500, output_tokens=360, cost_usd=0.0126),
    )
    t1.events = [
        ImageEvent(id="i0", step=0, image=ov, purpose="overview"),
        _call(
            0,
            "slide_zoom",
            {"x": ZOOM_1[0], "y": ZOOM_1[1], "w": ZOOM_1[2], "h": ZOOM_1[3]},
            "The overview shows two tissue pieces; the left piece looks denser.",
            u,
            Rethink(
                hypothesis="dense cellular area, maybe tumour",
                differential=["tumour", "stroma"],
                confidence=0.4,
            ),
            reasoning="Look at the dense area first.",
        ),
        ToolEvent(
            id="t0",
            step=0,
            call=ToolCallPart(id="c0", name="slide_zoom", arguments={"x": ZOOM_1[0]}),
            text="region with top-left (1000,800) and size 2000 x 1500",
            images=[r1],
            duration_s=0.05,
        ),
        _call(
            1,
            "slide_zoom",
            {"x": ZOOM_2[0], "y": ZOOM_2[1], "w": ZOOM_2[2], "h": ZOOM_2[3]},
            "Crowded nuclei at the lower right: zoom there and ask for a tumour heatmap.",
            u,
            Rethink(hypothesis="tumour", differential=["tumour"], confidence=0.75),
        ),
        ToolEvent(
            id="t1",
            step=1,
            call=ToolCallPart(id="c1", name="slide_zoom", arguments={"x": ZOOM_2[0]}),
            text="region with top-left (3900,2500) and size 800 x 600",
            images=[r2, heat],
            duration_s=0.08,
            data={
                "heatmap": {
                    "legend": "P(tumour): blue = low (0), pale yellow = middle, red = high (1)"
                }
            },
        ),
        NoteEvent(id="n1", step=1, message="context pruned to 4 images"),
        _call(2, "", {}, "Answer: 1 (tumour)", u, Rethink(hypothesis="tumour", confidence=0.9)),
        AnswerEvent(
            id="a2",
            step=2,
            text="Answer: 1 (tumour)",
            rationale="crowded atypical nuclei",
            supporting_steps=[2],
        ),
    ]
    run.write_trace(t1)

    t2 = Trace(
        sample_id="case-2",
        run_id="run",
        task="synth",
        question="Is there necrosis?",
        options=["yes", "no"],
        slide=sref,
        model="openai:gpt-test",
        preset="vitar",
        truth=GroundTruth(answer="yes"),
        status="answered",
        answer="no",
        usage=Usage(input_tokens=2000, output_tokens=100, cost_usd=0.003),
    )
    t2.events = [
        ImageEvent(id="i0", step=0, image=ov, purpose="overview"),
        _call(0, "slide_zoom", {"x": -5, "y": 0, "w": 0, "h": 10}, "Zoom somewhere.", u),
        ToolEvent(
            id="t0",
            step=0,
            call=ToolCallPart(id="c0", name="slide_zoom", arguments={"x": -5}),
            error="a box needs a positive width and height",
        ),
        _call(1, "", {}, "no", u),
        AnswerEvent(id="a1", step=1, text="no"),
    ]
    run.write_trace(t2)

    t3 = Trace(
        sample_id="case-3",
        run_id="run",
        task="other",
        question="Still thinking about this one?",
        slide=sref,
        model="openai:gpt-test",
        preset="vitar",
        status="running",
    )
    t3.events = [
        ImageEvent(id="i0", step=0, image=ov, purpose="overview"),
        _call(0, "slide_zoom", {"x": 0, "y": 0, "w": 3000, "h": 2000}, "Start at the top left.", u),
        ToolEvent(
            id="t0",
            step=0,
            call=ToolCallPart(id="c0", name="slide_zoom", arguments={}),
            text="ok",
            images=[
                _store(
                    run,
                    slide.read((0, 0, 3000, 2000), 600).image,
                    (0, 0, 3000, 2000),
                    "slide_zoom",
                    "case",
                )
            ],
        ),
    ]
    run.write_trace(t3)

    f2 = np.asarray(Image.open(img2).convert("RGB"))
    crop = _store(run, f2[100:300, 200:400], (200, 100, 200, 200), "crop", "image:2")
    t4 = Trace(
        sample_id="set-1",
        run_id="run",
        task="medframeqa",
        question="Which frame shows the lesion?",
        options=["A", "B"],
        slide=SlideRef(path="", kind="imageset", images=[str(img1), str(img2)]),
        model="openai:gpt-test",
        preset="vitar",
        truth=GroundTruth(answer="B"),
        status="answered",
        answer="Answer: B",
        usage=u,
    )
    t4.events = [
        _call(
            0,
            "crop",
            {"image": 2, "box": [200, 100, 200, 200]},
            "Frame 2 has a lesion; look closer.",
            u,
        ),
        ToolEvent(
            id="t0",
            step=0,
            call=ToolCallPart(id="c0", name="crop", arguments={"image": 2}),
            text="crop of image 2",
            images=[crop],
        ),
        _call(1, "", {}, "Answer: B", u),
        AnswerEvent(id="a1", step=1, text="Answer: B"),
    ]
    run.write_trace(t4)

    run.append_result(
        {
            "sample_id": "case-1",
            "repeat": 0,
            "task": "synth",
            "status": "answered",
            "answer_text": "Answer: 1 (tumour)",
            "choice": "tumour",
            "truth": "tumour",
            "n_steps": 3,
            "input_tokens": 4500,
            "output_tokens": 360,
            "cost_usd": 0.0126,
            "latency_s": 4.2,
        }
    )
    run.append_result(
        {
            "sample_id": "case-2",
            "repeat": 0,
            "task": "synth",
            "status": "answered",
            "answer_text": "no",
            "choice": "no",
            "truth": "yes",
            "n_steps": 2,
            "cost_usd": 0.003,
        }
    )
    run.append_result(
        {
            "sample_id": "set-1",
            "repeat": 0,
            "task": "medframeqa",
            "status": "answered",
            "predicted": "B",
            "parsed_ok": True,
            "truth": "B",
            "n_steps": 2,
            "cost_usd": 0.0042,
        }
    )
    return {
        "run": run.path,
        "slide": slide_path,
        "blobs": {
            "overview": ov.sha256,
            "zoom1": r1.sha256,
            "zoom2": r2.sha256,
            "heat": heat.sha256,
            "crop": crop.sha256,
        },
        "images": [img1, img2],
    }
