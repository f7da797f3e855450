"""MedFrameQA loader: the Hugging Face parquet schema (image structs) and the JSON variant."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from slidescout.errors import DatasetError
from slidescout.eval import load_dataset, load_medframeqa, parse_answer

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def _png(color: tuple[int, int, int], size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, format="JPEG")
    return buf.getvalue()


ROWS = [
    {
        "question_id": "q-101",
        "video_id": "vid1",
        "system": "Cardiovascular",
        "organ": "Heart",
        "keyword": "aortic dissection",
        "modality": "CT",
        "question": "Comparing the first and second image, which finding is most likely?",
        "options": [
            "Aortic dissection",
            "Pericardial effusion",
            "Aortic aneurysm",
            "Pulmonary embolism",
        ],
        "correct_answer": "A",
        "frames": [_png((255, 0, 0)), _png((0, 255, 0))],
    },
    {
        "question_id": "q-102",
        "video_id": "vid2",
        "system": "Nervous",
        "organ": "Brain",
        "keyword": "glioma",
        "modality": "MRI",
        "question": "Across all five images, what is the most likely diagnosis?",
        "options": [
            "Glioblastoma",
            "Meningioma",
            "Abscess",
            "Metastasis",
            "Lymphoma",
            "Demyelination",
        ],
        "correct_answer": "D",
        "frames": [
            _png((0, 0, 255)),
            _jpeg((10, 10, 10)),
            _png((255, 0, 0)),
            _png((1, 2, 3)),
            _png((4, 5, 6)),
        ],
    },
    {
        "question_id": None,
        "video_id": "vid3",
        "system": "Digestive",
        "organ": "Liver",
        "keyword": "cirrhosis",
        "modality": "Ultrasound",
        "question": "What do the three images show?",
        "options": ["Cirrhosis", "Steatosis", "Hepatitis", "Normal liver", "Hemangioma"],
        "correct_answer": "B",
        "frames": [_png((7, 7, 7)), _png((8, 8, 8)), _png((9, 9, 9))],
    },
]


def _parquet(path: Path, rows: list[dict] = ROWS) -> Path:
    cols: dict[str, list] = {
        k: [r[k] for r in rows]
        for k in (
            "question_id",
            "system",
            "organ",
            "keyword",
            "modality",
            "video_id",
            "question",
            "options",
            "correct_answer",
        )
    }
    cols["reasoning_chain"] = ["because ..."] * len(rows)
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


def test_parquet_official_schema(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    d = load_medframeqa(_parquet(tmp_path / "test-00000.parquet"), cache_dir=cache)
    assert d.dataset == "medframeqa" and d.n_rows == 3 and len(d.samples) == 3 and d.n_missing == 0
    a, b, c = d.samples
    assert [s.sample_id for s in d.samples] == [
        "medframeqa/q-101",
        "medframeqa/q-102",
        "medframeqa/q00002",
    ]
    assert [len(s.image_paths) for s in d.samples] == [2, 5, 3]
    assert a.image_path == a.image_paths[0] and a.is_multi_image
    assert (a.answer, a.answer_label, a.answer_index) == ("A", "Aortic dissection", 1)
    assert (b.answer, b.answer_label, b.answer_index) == ("D", "Metastasis", 4)
    assert a.metric == "accuracy" and a.answer_format == "letter" and a.task == "medframeqa"
    assert (
        a.meta["organ"] == "Heart"
        and a.meta["modality"] == "CT"
        and "reasoning_chain" not in a.meta
    )
    # images are real files named by their content hash
    for s, row in zip(d.samples, ROWS, strict=True):
        for p, data in zip(s.image_paths, row["frames"], strict=True):
            assert Path(p).read_bytes() == data
            assert Path(p).stem == hashlib.sha256(data).hexdigest()
    assert Path(b.image_paths[1]).suffix == ".jpg" and Path(b.image_paths[0]).suffix == ".png"
    assert len(list(cache.iterdir())) == 9  # the red frame is stored once
    # the question: lettered options and the official final-line instruction
    assert "'Answer: $LETTER'" in b.question and "step by step" in b.question
    assert "Question: Across all five images" in b.question
    assert (
        "Options:\nA. Glioblastoma\nB. Meningioma\nC. Abscess\nD. Metastasis\nE. Lymphoma\nF. Demyelination"
        in b.question
    )
    # a second load is identical and writes nothing new
    mtimes = {p: p.stat().st_mtime_ns for p in cache.iterdir()}
    again = load_medframeqa(tmp_path / "test-00000.parquet", cache_dir=cache)
    assert [s.model_dump() for s in again.samples] == [s.model_dump() for s in d.samples]
    assert {p: p.stat().st_mtime_ns for p in cache.iterdir()} == mtimes
    # and the parser reads an answer for it
    reply = "The first image shows an intimal flap...\n\nAnswer: D"
    assert parse_answer(reply, b).value == b.answer


def test_parquet_folder_and_default_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIDESCOUT_HOME", str(tmp_path / "home"))
    folder = tmp_path / "data"
    folder.mkdir()
    _parquet(folder / "test-00000-of-00002.parquet", ROWS[:2])
    _parquet(folder / "test-00001-of-00002.parquet", ROWS[2:])
    d = load_dataset(folder)
    assert len(d.samples) == 3 and d.samples[2].sample_id == "medframeqa/q00002"
    assert all(
        Path(p).is_relative_to(tmp_path / "home" / "cache" / "images")
        for s in d.samples
        for p in s.image_paths
    )


def test_parquet_wrong_schema(tmp_path: Path) -> None:
    p = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"question": ["q"], "choices": [["a", "b"]]}), p)
    with pytest.raises(
        DatasetError, match="missing options, correct_answer or answer, image_1..image_5"
    ):
        load_medframeqa(p, cache_dir=tmp_path / "c")


def _json_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "mfqa"
    (root / "images").mkdir(parents=True)
    for name, color in (("f1.png", (1, 1, 1)), ("f2.png", (2, 2, 2)), ("f3.jpg", (3, 3, 3))):
        (root / "images" / name).write_bytes(_png(color))
    items = [
        {
            "question_id": "j1",
            "question": "Which?",
            "options": ["Alpha", "Beta", "Gamma", "Delta"],
            "correct_answer": "C",
            "image_path": ["images/f1.png", "images/f2.png"],
            "organ": "Kidney",
        },
        {
            "question_id": "j2",
            "question": "Which now?",
            "options": "['Alpha', 'Beta']",
            "correct_answer": "(B)",
            "image_1": "images/f3.jpg",
            "image_2": "images/f1.png",
            "image_3": None,
        },
        {
            "question_id": "j3",
            "question": "Gone?",
            "options": ["Alpha", "Beta", "Gamma"],
            "correct_answer": "A",
            "image_path": ["images/f1.png", "images/missing.png"],
        },
        {
            "question_id": "j1",
            "question": "Same id again",
            "options": ["Alpha", "Beta"],
            "answer": "Beta",
            "images": ["images/f2.png"],
        },
    ]
    p = root / "MedFrameQA.json"
    p.write_text(json.dumps(items))
    return p


def test_json_variant_relative_paths(tmp_path: Path) -> None:
    p = _json_dataset(tmp_path)
    d = load_medframeqa(p, cache_dir=tmp_path / "cache")
    assert [s.sample_id for s in d.samples] == ["medframeqa/j1", "medframeqa/j2", "medframeqa/j1~2"]
    assert (
        d.n_missing == 1
        and d.missing_files == ["missing.png"]
        and d.missing_sample_ids == ["medframeqa/j3"]
    )
    j1, j2, dup = d.samples
    assert j1.image_paths == [
        str((p.parent / "images/f1.png").resolve()),
        str((p.parent / "images/f2.png").resolve()),
    ]
    assert j2.answer == "B" and j2.options == ["Alpha", "Beta"] and len(j2.image_paths) == 2
    assert dup.answer == "B" and dup.answer_label == "Beta"
    assert not (tmp_path / "cache").exists()  # nothing to extract from JSON
    assert "1 skipped" in d.summary()


def test_jsonl_variant_and_errors(tmp_path: Path) -> None:
    p = _json_dataset(tmp_path)
    items = json.loads(p.read_text())
    jl = p.with_suffix(".jsonl")
    jl.write_text("\n".join(json.dumps(x) for x in items[:2]) + "\n")
    assert len(load_dataset(jl).samples) == 2
    bad = p.with_name("bad.json")
    bad.write_text(json.dumps([{**items[0], "correct_answer": "F"}]))
    with pytest.raises(DatasetError, match="not a letter A-D"):
        load_medframeqa(bad)
    bad.write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        load_medframeqa(bad)
    with pytest.raises(DatasetError, match="does not exist"):
        load_medframeqa(tmp_path / "nope.parquet")
