"""MultiPathQA and SynthPath loaders, against the real question file where it is present."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from slidescout.errors import DatasetError
from slidescout.eval import (
    DatasetLoad,
    Sample,
    SlideIndex,
    load_dataset,
    load_multipathqa,
    load_synth,
)
from slidescout.eval.samples import fill_template, numbered_options, option_numbers

CSV_PATH = Path(__file__).resolve().parents[2] / "shared/data/multipathqa/MultiPathQA.csv"
needs_csv = pytest.mark.skipif(not CSV_PATH.exists(), reason="MultiPathQA.csv not present")

COLUMNS = [
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
EXPECTED = {"tcga": 221, "gtex": 191, "panda": 197, "tcga_slidebench": 197, "tcga_expert_vqa": 128}


@pytest.fixture(scope="module")
def mpqa() -> DatasetLoad:
    return load_multipathqa(CSV_PATH)


def _rows() -> list[dict[str, str]]:
    with CSV_PATH.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _write_csv(path: Path, rows: list[dict[str, str]], columns: list[str] = COLUMNS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


# ---- the real file --------------------------------------------------------------------------


@needs_csv
def test_counts_per_task_match_design(mpqa: DatasetLoad) -> None:
    counts = Counter(s.task for s in mpqa.samples)
    assert dict(counts) == EXPECTED
    assert len(mpqa.samples) == 934 == mpqa.n_rows
    assert mpqa.n_invalid == 0 and mpqa.n_missing == 0


@needs_csv
def test_sample_ids_unique_stable_and_prefixed(mpqa: DatasetLoad) -> None:
    ids = [s.sample_id for s in mpqa.samples]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith(f"{s.task}/") for i, s in zip(ids, mpqa.samples, strict=True))
    # benchmark ids repeat across tasks (e.g. slidebench and expert_vqa), never within one
    raw = Counter(s.meta["benchmark_id"] for s in mpqa.samples)
    assert any(v > 1 for v in raw.values())
    again = load_multipathqa(CSV_PATH)
    assert [s.sample_id for s in again.samples] == ids
    assert [s.question for s in again.samples] == [s.question for s in mpqa.samples]


@needs_csv
def test_metrics_and_answer_formats(mpqa: DatasetLoad) -> None:
    by = mpqa.by_task()
    assert {s.metric for s in by["tcga"]} == {"balanced_accuracy"}
    assert {s.metric for s in by["gtex"]} == {"balanced_accuracy"}
    assert {s.metric for s in by["panda"]} == {"balanced_accuracy"}
    assert {s.metric for s in by["tcga_slidebench"]} == {"accuracy"}
    assert {s.metric for s in by["tcga_expert_vqa"]} == {"accuracy"}
    assert {s.answer_format for s in by["tcga"]} == {"index"}
    assert {s.answer_format for s in by["gtex"]} == {"label"}
    assert {s.answer_format for s in by["panda"]} == {"isup_json"}
    for s in by["tcga"] + by["tcga_slidebench"] + by["tcga_expert_vqa"]:
        assert isinstance(s.answer, int) and 1 <= s.answer <= len(s.options)
        assert s.answer_label == s.options[s.answer - 1] and s.answer_index == s.answer
    for s in by["gtex"]:
        assert isinstance(s.answer, str) and s.answer in s.options and len(s.options) == 20
        assert s.options[s.answer_index - 1] == s.answer  # type: ignore[operator]
    assert all(len(s.options) == 30 for s in by["tcga"])
    grades = Counter(s.answer for s in by["panda"])
    assert grades == {0: 54, 1: 49, 2: 25, 3: 23, 4: 23, 5: 23}
    assert all(s.options == [] and s.answer_label == str(s.answer) for s in by["panda"])


@needs_csv
def test_questions_render_like_giant(mpqa: DatasetLoad) -> None:
    by = mpqa.by_task()
    tcga = by["tcga"][0]
    assert "{options}" not in tcga.question and "{{" not in tcga.question
    assert (
        "Select from the following options:\n1. Glioblastoma multiforme\n2. Ovarian"
        in tcga.question
    )
    assert (
        "30. Thymoma\n\n\nPlease choose the number" in tcga.question
    )  # GIANT's trailing newline per option
    assert '```json\n{"answer": YOUR_ANSWER}\n```' in tcga.question
    gtex = by["gtex"][0]
    assert "\n16. Small Intestine\n" in gtex.question
    panda = by["panda"][0]
    assert (
        '{\n  "primary_pattern": PRIMARY_NUMBER,' in panda.question and "{{" not in panda.question
    )
    sb = next(s for s in by["tcga_slidebench"] if s.meta["benchmark_id"] == "2270")
    assert sb.question.startswith("What is the secondary Gleason pattern")
    assert "Select from the following options:\n1. 2\n2. 3\n3. 4\n4. 5\n" in sb.question
    assert "OPTION NUMBER (1, 2, 3, or 4)" in sb.question
    assert 'respond with {"answer": 2}' in sb.question
    ev = by["tcga_expert_vqa"][0]
    assert "1. Low\n2. Medium\n3. High\n4. Cannot determine\n" in ev.question
    for s in mpqa.samples:
        assert "{options}" not in s.question and "{question}" not in s.question
        assert s.image_paths == [s.image_path] and "/" not in s.image_path


@needs_csv
def test_task_filter(tmp_path: Path) -> None:
    d = load_multipathqa(CSV_PATH, tasks=["gtex", "panda"])
    assert Counter(s.task for s in d.samples) == {"gtex": 191, "panda": 197}
    assert d.n_filtered == 934 - 191 - 197
    assert len(load_multipathqa(CSV_PATH, tasks="tcga").samples) == 221
    with pytest.raises(DatasetError, match="unknown task.*tcga_expert_vqa"):
        load_multipathqa(CSV_PATH, tasks=["nope"])


@needs_csv
def test_missing_slides_are_skipped_and_reported(tmp_path: Path) -> None:
    rows = [r for r in _rows() if r["benchmark_name"] == "tcga"]
    slides = tmp_path / "slides"
    (slides / "a" / "b").mkdir(parents=True)
    (slides / ".hidden").mkdir()
    (slides / rows[0]["image_path"]).touch()
    (slides / "a" / "b" / rows[1]["image_path"]).touch()  # nested
    (slides / "a" / (Path(rows[2]["image_path"]).stem + ".tiff")).touch()  # another extension
    (slides / ".hidden" / rows[3]["image_path"]).touch()  # hidden folders are not searched
    d = load_multipathqa(CSV_PATH, slides_dir=slides, tasks="tcga")
    assert len(d.samples) == 3
    assert d.n_missing == 218 and len(d.missing_sample_ids) == 218
    assert rows[3]["image_path"] in d.missing_files and len(d.missing_files) == 218
    found = {Path(s.image_path).name for s in d.samples}
    assert found == {
        rows[0]["image_path"],
        rows[1]["image_path"],
        Path(rows[2]["image_path"]).stem + ".tiff",
    }
    assert all(
        Path(s.image_path).is_absolute() and s.meta["file_name"].endswith(".svs") for s in d.samples
    )
    line = d.summary()
    assert "218 skipped" in line and str(slides) in line and "+215 more" in line
    # the ids do not depend on which slides are present
    full = {s.sample_id for s in load_multipathqa(CSV_PATH, tasks="tcga").samples}
    assert {s.sample_id for s in d.samples} <= full


def test_slide_index_prefers_exact_name(tmp_path: Path) -> None:
    (tmp_path / "X.svs").touch()
    (tmp_path / "X.tiff").touch()
    (tmp_path / "Y.tif").touch()
    (tmp_path / "Y.txt").touch()
    idx = SlideIndex(tmp_path)
    assert idx.find("X.tiff") == tmp_path / "X.tiff"
    assert idx.find("X.ndpi") == tmp_path / "X.svs"  # .svs ranks first among alternatives
    assert idx.find("Y.svs") == tmp_path / "Y.tif"
    assert idx.find("Z.svs") is None
    with pytest.raises(DatasetError, match="does not exist"):
        SlideIndex(tmp_path / "nope")


# ---- small hand-made files ------------------------------------------------------------------


def _row(**kw: str) -> dict[str, str]:
    base = {
        "benchmark_name": "tcga_expert_vqa",
        "benchmark_id": "1",
        "image_path": "S1.svs",
        "answer": "2",
        "options": "['Low', 'Medium', 'High', 'Cannot determine']",
        "image_exists": "True",
        "patch_exists": "True",
        "is_valid": "True",
        "metric_type": "accuracy",
        "file_id": "f",
        "prompt": "What is the level of mitotic activity?",
    }
    base.update(kw)
    return base


def test_invalid_rows_and_repeated_ids(tmp_path: Path) -> None:
    p = _write_csv(
        tmp_path / "q.csv",
        [
            _row(),
            _row(answer="3"),
            _row(is_valid="False"),
            _row(benchmark_id="2"),
            _row(),
            _row(
                benchmark_name="gtex",
                answer="skin",
                options="['Skin', 'Lung']",
                metric_type="balanced_accuracy",
            ),
        ],
    )
    d = load_multipathqa(p)
    assert d.n_invalid == 1 and d.n_rows == 6
    assert [s.sample_id for s in d.samples] == [
        "tcga_expert_vqa/1",
        "tcga_expert_vqa/1~2",
        "tcga_expert_vqa/2",
        "tcga_expert_vqa/1~3",
        "gtex/1",
    ]
    assert (
        d.samples[-1].answer == "Skin" and d.samples[-1].answer_index == 1
    )  # case-insensitive label
    assert "1 invalid rows excluded" in d.summary()


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_multipathqa(tmp_path / "missing.csv")
    bad_cols = _write_csv(
        tmp_path / "cols.csv", [_row()], [c for c in COLUMNS if c not in ("answer", "prompt")]
    )
    with pytest.raises(DatasetError, match="missing column\\(s\\) answer, prompt"):
        load_multipathqa(bad_cols)
    with pytest.raises(DatasetError, match=r"opts.csv:2: options is not a Python list literal"):
        load_multipathqa(_write_csv(tmp_path / "opts.csv", [_row(options="['Low', 'High'")]))
    with pytest.raises(DatasetError, match=r"answer '7' is not a 1-based option index \(1-4\)"):
        load_multipathqa(_write_csv(tmp_path / "ans.csv", [_row(answer="7")]))
    with pytest.raises(DatasetError, match="not an ISUP grade"):
        load_multipathqa(
            _write_csv(
                tmp_path / "panda.csv", [_row(benchmark_name="panda", options="", answer="6")]
            )
        )
    with pytest.raises(DatasetError, match="metric_type 'f1'"):
        load_multipathqa(_write_csv(tmp_path / "metric.csv", [_row(metric_type="f1")]))


def test_template_helpers() -> None:
    assert numbered_options(["a", "b"]) == "1. a\n2. b\n"
    assert option_numbers(4) == "1, 2, 3, or 4" and option_numbers(2) == "1 or 2"
    assert (
        fill_template('{options}x {{"a": {b}}} {question}', options="O")
        == 'Ox {"a": {b}} {question}'
    )


# ---- SynthPath --------------------------------------------------------------------------------


def _synth(tmp_path: Path) -> Path:
    root = tmp_path / "synth"
    (root / "slides").mkdir(parents=True)
    for name in ("s1", "s2"):
        (root / "slides" / f"{name}.tiff").write_bytes(b"II*\x00")
    (root / "slides" / "s1.json").write_text(json.dumps({"label": "carcinoma"}))
    (root / "slides" / "s2.geojson").write_text("{}")
    prompt = 'What is the diagnosis?\n\nSelect from the following options:\n{options}\n\nRespond as ```json\n{{"answer": N}}\n```'
    rows = [
        _row(
            benchmark_name="synth_diagnosis",
            benchmark_id="d1",
            image_path="slides/s1.tiff",
            answer="1",
            options="['carcinoma', 'benign']",
            prompt=prompt,
        ),
        _row(
            benchmark_name="synth_count",
            benchmark_id="c1",
            image_path="slides/s2.tiff",
            answer="3",
            options="['1', '2', '3', '4']",
            prompt="How many nodules are there?",
        ),
        _row(
            benchmark_name="synth_location",
            benchmark_id="l1",
            image_path="slides/gone.tiff",
            answer="1",
            options="['top left', 'bottom right']",
            prompt="Where is the lesion?",
        ),
    ]
    return _write_csv(root / "synth.csv", rows)


def test_load_synth_resolves_relative_paths_and_truth(tmp_path: Path) -> None:
    p = _synth(tmp_path)
    d = load_synth(p)
    assert d.dataset == "synthpath" and len(d.samples) == 2 and d.n_missing == 1
    assert d.missing_files == ["gone.tiff"]
    s1, s2 = d.samples
    assert (
        s1.sample_id == "synth_diagnosis/d1" and s1.answer == 1 and s1.answer_label == "carcinoma"
    )
    assert Path(s1.image_path) == (p.parent / "slides/s1.tiff").resolve()
    assert s1.meta["truth_path"].endswith("s1.json") and s2.meta["truth_path"].endswith(
        "s2.geojson"
    )
    assert "1. carcinoma\n2. benign\n" in s1.question and '{"answer": N}' in s1.question
    assert "OPTION NUMBER (1, 2, 3, or 4)" in s2.question
    assert isinstance(s1, Sample) and s1.metric == "accuracy"
    assert load_dataset(p).dataset == "synthpath"


@needs_csv
def test_load_dataset_dispatch(tmp_path: Path) -> None:
    assert load_dataset(CSV_PATH, tasks="panda").dataset == "multipathqa"
    with pytest.raises(DatasetError, match="cannot tell"):
        load_dataset(_write_text(tmp_path / "x.yaml"))


def _write_text(p: Path) -> Path:
    p.write_text("a: 1")
    return p
