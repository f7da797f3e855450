"""What the viewer's tables and figures say (issue 21, item 19): the question itself rather than a
benchmark's shared instruction, labels that stay on the slide, the right name for the home button."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_viewer_fixtures import build_run

from slidescout.eval.samples import fill_template, lettered_options, load_template
from slidescout.traces.viewer.report import home_label, label_place
from slidescout.traces.viewer.runindex import RunIndex, display_question


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_run(tmp_path_factory.mktemp("labels"))


def test_medframeqa_rows_show_the_question_not_the_instruction(built, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(built["run"], run)
    text = fill_template(
        load_template("medframeqa"),
        question="Which frame shows the perforation?",
        options=lettered_options(["Frame 1", "Frame 2", "Neither"]),
    )
    p = run / "traces" / "set-1.json"
    data = json.loads(p.read_text())
    data["question"] = text
    p.write_text(json.dumps(data))
    rows = {r["sample_id"]: r for r in RunIndex(run).rows()}
    assert rows["set-1"]["question"] == "Which frame shows the perforation?"
    assert rows["case-1"]["question"].startswith("Which tissue is shown?")  # others unchanged


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Which tissue?\n1. a\n2. b", "Which tissue?\n1. a\n2. b"),
        ("Answer the question.\n\nQuestion: Is it benign?\n\nOptions:\nA. yes", "Is it benign?"),
        ("Question:What organ? \n\nOptions:\n['A. x']", "What organ?"),
        ("", ""),
    ],
)
def test_display_question(text, shown):
    assert display_question(text) == shown


@pytest.mark.parametrize(
    ("box", "anchor", "dy"),
    [
        ([100, 100, 200, 200], "start", "1em"),  # room below and to the right: under the box
        ([5700, 100, 300, 200], "end", "1em"),  # at the right edge: right-aligned
        ([100, 3800, 300, 200], "start", "-0.3em"),  # at the bottom: above the box
    ],
)
def test_truth_label_placement(box, anchor, dy):
    shown = (0, 0, 6000, 4000)
    fs = 6000 / 42
    x, y, got_dy, got_anchor = label_place(box, shown, fs, "normal mucosa")
    width = 0.62 * fs * len("normal mucosa")
    assert (got_anchor, got_dy) == (anchor, dy)
    left = x - width if got_anchor == "end" else x
    assert 0 <= left and left + width <= 6000


def test_home_button_names_what_it_shows():
    slide = {"slide": {"kind": "slide"}, "images": [{}]}
    assert home_label(slide) == "Whole slide"
    assert home_label({"slide": {"kind": "imageset"}, "images": [{}, {}]}) == "All images"
    assert home_label({"slide": {"kind": "imageset"}, "images": [{}]}) == "Whole image"


def test_runs_api_shows_no_absolute_path(built, tmp_path):
    from starlette.testclient import TestClient

    from slidescout.traces.viewer.runs import create_runs_app

    folder = tmp_path / "runs"
    shutil.copytree(built["run"], folder / "one")
    client = TestClient(create_runs_app(folder))
    assert str(folder.resolve()) not in client.get("/").text
    assert client.get("/api/runs").json()["root"] == "runs"
    assert str(Path(folder).resolve()) not in client.get("/api/runs").text


def test_a_question_without_truth_is_not_scored():
    """A studio or ``ask`` question has no truth: the viewer says "not scored", never "wrong"
    (``results.jsonl`` records carry ``correct: false`` for them)."""
    from slidescout.traces.viewer.runindex import correctness

    assert correctness({"truth": None, "correct": False, "predicted": 2, "parsed_ok": True}) is None
    assert correctness({"truth": 2, "correct": False, "predicted": 1, "parsed_ok": True}) is False
    assert correctness({"correct": True}) is True  # an explicit verdict without a truth field
