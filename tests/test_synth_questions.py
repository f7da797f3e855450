"""SynthPath questions (MultiPathQA columns), generate_dataset and the ``slidescout synth`` command."""

from __future__ import annotations

import ast
import csv
import sys

import pytest

from slidescout.errors import ConfigError
from slidescout.slides.synth import COLUMNS, generate_dataset, load_truth
from slidescout.slides.synth.questions import DIAGNOSIS_OPTIONS, LOCATION_OPTIONS

MULTIPATHQA_COLUMNS = [
    "benchmark_name",
    "benchmark_id",
    "image_path",
    "answer",
    "options",
    "image_exists",
    "patch_exists",
    "is_valid",
    "metric_type",
    "file_id",
    "prompt",
]
SMALL = (2048, 1536)


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds")
    return out, generate_dataset(out, n=4, size=SMALL, seed=3)


def test_csv_has_multipathqa_columns_and_valid_rows(dataset):
    out, csv_path = dataset
    assert csv_path == out / "questions.csv"
    header, rows = _rows(csv_path)
    assert header == MULTIPATHQA_COLUMNS == COLUMNS
    assert {r["benchmark_name"] for r in rows} <= {
        "synth_diagnosis",
        "synth_location",
        "synth_count",
    }
    ids = [(r["benchmark_name"], r["benchmark_id"]) for r in rows]
    assert len(ids) == len(set(ids))
    for r in rows:
        options = ast.literal_eval(r["options"])
        assert isinstance(options, list) and all(isinstance(o, str) for o in options)
        assert 1 <= int(r["answer"]) <= len(options)
        assert r["metric_type"] == "accuracy" and r["is_valid"] == "True"
        assert (out / r["image_path"]).is_file() and not r["image_path"].startswith("/")
        assert "{options}" in r["prompt"]
        text = r["prompt"].format(options="\n".join(f"{i}. {o}" for i, o in enumerate(options, 1)))
        assert '{"answer": YOUR_ANSWER}' in text and options[0] in text


def test_answers_agree_with_truth(dataset):
    out, csv_path = dataset
    _, rows = _rows(csv_path)
    primaries = []
    for r in rows:
        truth = load_truth(out / r["image_path"])
        options = ast.literal_eval(r["options"])
        chosen = options[int(r["answer"]) - 1]
        kind = r["benchmark_id"].split("-", 2)[-1]
        if r["benchmark_name"] == "synth_diagnosis":
            primaries.append(truth.primary)
            assert chosen == DIAGNOSIS_OPTIONS[truth.primary]
        elif r["benchmark_name"] == "synth_location":
            (lesion,) = truth.lesions_of(truth.primary)
            assert chosen == lesion.quadrant.capitalize() and chosen in LOCATION_OPTIONS
            x, y, w, h = lesion.box
            right, lower = x >= truth.width / 2, y >= truth.height / 2
            assert chosen == ("Lower " if lower else "Upper ") + ("right" if right else "left")
        elif kind == "count-pieces":
            assert int(chosen) == len(truth.tissue)
        else:
            assert int(chosen) == len(truth.lesions_of(truth.primary))
    assert sorted(primaries) == sorted(DIAGNOSIS_OPTIONS)  # 4 slides: one per class


def test_rerun_keeps_existing_slides(dataset):
    out, csv_path = dataset
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tiff")}
    seen = []
    again = generate_dataset(out, n=4, size=SMALL, seed=3, on_done=lambda item: seen.append(item))
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.tiff")} == before
    assert len(seen) == 4 and again.read_text() == csv_path.read_text()


def test_eval_loader_reads_it(dataset):
    from slidescout.eval import load_dataset

    _, csv_path = dataset
    loaded = load_dataset(csv_path)
    _, rows = _rows(csv_path)
    assert len(loaded.samples) == len(rows) and loaded.n_missing == 0
    assert all(s.meta.get("truth_path", "").endswith(".json") for s in loaded.samples)


def test_bad_n():
    with pytest.raises(ConfigError):
        generate_dataset("unused", n=0)


def test_cli_synth(tmp_path):
    from typer.testing import CliRunner

    from slidescout.cli.app import app
    from slidescout.cli.synth_cmd import synth  # noqa: F401  (registers the command)

    out = tmp_path / "cli"
    result = CliRunner().invoke(
        app, ["synth", str(out), "--n", "1", "--size", "2048x1536", "--seed", "4", "--lesions", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "questions.csv" in result.output and str(out) in result.output.replace("\n", "")
    assert (out / "synth-000.tiff").is_file() and (out / "synth-000.geojson").is_file()
    assert load_truth(out / "synth-000.json").params["n_lesions"] == 2


@pytest.mark.parametrize("size", ["big", "40000", "0x100", "12x12"])
def test_cli_bad_size_is_one_line_error(tmp_path, monkeypatch, capsys, size):
    from slidescout.cli import main

    monkeypatch.setattr(sys, "argv", ["slidescout", "synth", str(tmp_path / "x"), "--size", size])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1
    assert "size" in err and "Traceback" not in err
    assert not (tmp_path / "x" / "questions.csv").exists()
