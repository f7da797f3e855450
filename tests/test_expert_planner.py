"""The offline expert planner navigates SynthPath slides and answers well above chance."""

from __future__ import annotations

import ast
import asyncio
import csv

import pytest

from slidescout.core.sample import Sample
from slidescout.eval.ask import arun
from slidescout.slides.synth import generate_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    csv_path = generate_dataset(out, n=4, size=(8000, 6000), seed=11)
    return out, list(csv.DictReader(open(csv_path)))


def _ask(out, row, tmp_path, preset="scout"):
    opts = ast.literal_eval(row["options"])
    question = row["prompt"].replace(
        "{options}", "".join(f"{i}. {o}\n" for i, o in enumerate(opts, 1))
    )
    question = question.replace("{{", "{").replace("}}", "}")
    sample = Sample(
        sample_id=row["benchmark_id"],
        question=question,
        options=opts,
        image_path=str(out / row["image_path"]),
    )
    res = asyncio.run(
        arun(
            sample.image_path,
            question,
            opts,
            model="expert",
            preset=preset,
            out=tmp_path / preset,
            sample=sample,
        )
    )
    return res, opts[int(row["answer"]) - 1]


@pytest.mark.slow
def test_expert_planner_beats_chance_on_synthpath(dataset, tmp_path):
    out, rows = dataset
    right = 0
    for row in rows:
        res, truth = _ask(out, row, tmp_path)
        assert res.status == "answered"
        right += res.choice == truth
        # it really navigated: screened at low power, then looked closer
        mpps = [i.mpp for i in res.trace.images() if i.label != "overview"]
        assert mpps and min(mpps) <= 0.3 and max(mpps) >= 0.8
    # chance is 25% (4 options) to 20% (5 options); the planner should get most right
    assert right / len(rows) >= 0.6, f"{right}/{len(rows)}"


def test_expert_planner_uses_expert_tools_in_vitar(dataset, tmp_path):
    out, rows = dataset
    row = next(
        r for r in rows if r["benchmark_name"] == "synth_diagnosis" and r["answer"] != "4"
    )  # abnormal
    res, _ = _ask(out, row, tmp_path, preset="vitar")
    names = [e.call.name for e in res.trace.tool_events]
    assert "nuclei_morphometry" in names and "lookup" in names
    assert res.trace.events[-1].kind == "answer" and res.trace.events[-1].supporting_steps
    # its written findings are its memory: no region is screened twice despite context pruning
    boxes = [
        tuple(e.call.arguments.values())
        for e in res.trace.tool_events
        if e.call.name == "slide_zoom"
    ]
    assert len(boxes) == len(set(boxes))
