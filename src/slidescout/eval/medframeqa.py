"""MedFrameQA loader: Hugging Face parquet (image structs) or JSON/JSONL (image paths).

Parquet images are written once to a cache folder under their sha256 (``<sha256>.png``), so the
agent opens them as ordinary files and a second load writes nothing. The question the agentic
presets see is rendered with lettered options after the instruction to end with ``Answer:
$LETTER`` (``templates/medframeqa.md``, in our words; upstream puts that instruction in the
system prompt). ``meta["raw_question"]`` keeps the question exactly as given, for the
``medframeqa`` preset's official layout (``agents.baselines.official_question``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from slidescout.core.home import slidescout_home
from slidescout.errors import DatasetError
from slidescout.eval.samples import (
    LETTERS,
    DatasetLoad,
    IdMaker,
    Sample,
    fill_template,
    lettered_options,
    load_schema,
    load_template,
    parse_options,
    require_file,
)

__all__ = ["default_cache_dir", "load_medframeqa"]

_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"GIF8", ".gif"),
    (b"BM", ".bmp"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
]


def default_cache_dir() -> Path:
    """``$SLIDESCOUT_HOME/cache/images`` (``~/.slidescout`` when the variable is unset)."""
    return slidescout_home() / "cache" / "images"


def _image_ext(data: bytes, name: str | None) -> str:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    suffix = Path(name or "").suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{2,5}", suffix) else ".img"


def _store(data: bytes, name: str | None, cache: Path) -> Path:
    sha = hashlib.sha256(data).hexdigest()
    path = cache / f"{sha}{_image_ext(data, name)}"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path


def _letter(raw: Any, options: list[str]) -> str | None:
    """The answer letter from ``"B"``, ``"(B)"``, ``"B. text"``, ``1`` (index) or the option text."""
    if raw is None:
        return None
    text = str(raw).strip()
    n = len(options)
    m = re.fullmatch(r"\(?([A-Za-z])\)?(?:[.:)]\s*.*)?", text, flags=re.S)
    if m and LETTERS.index(m.group(1).upper()) < n:
        return m.group(1).upper()
    lowered = [o.strip().lower() for o in options]
    if text.lower() in lowered:
        return LETTERS[lowered.index(text.lower())]
    return None


def _records_parquet(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise DatasetError(f"no .parquet files under {path}")
    i = 0
    for f in files:
        try:
            pf = pq.ParquetFile(f)
        except Exception as e:  # pyarrow raises several types for a bad file
            raise DatasetError(f"{f} is not a readable parquet file: {e}") from None
        _check_columns(pf.schema_arrow.names, f)
        for batch in pf.iter_batches(batch_size=16):
            for rec in batch.to_pylist():
                yield i, rec
                i += 1


def _records_json(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    text = path.read_text(encoding="utf-8")
    items: Any
    try:
        if path.suffix.lower() == ".jsonl":
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            items = json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path} is not valid JSON ({e})") from None
    if isinstance(items, dict):
        items = next(
            (
                items[k]
                for k in ("data", "questions", "samples", "items")
                if isinstance(items.get(k), list)
            ),
            None,
        )
    if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
        raise DatasetError(f"{path} must hold a list of question objects (or JSON lines)")
    if items:
        _check_columns(sorted(set().union(*(x.keys() for x in items))), path)
    yield from enumerate(items)


def _check_columns(names: list[str], path: Path) -> None:
    schema = load_schema("medframeqa")
    missing = [c for c in schema["required_columns"] if c not in names]
    if not any(c in names for c in schema["answer_columns"]):
        missing.append(" or ".join(schema["answer_columns"]))
    if not any(c in names for c in schema["image_columns"] + schema["image_list_columns"]):
        missing.append("image_1..image_5 (or image_path)")
    if missing:
        raise DatasetError(
            f"{path} is not in MedFrameQA's schema: missing {', '.join(missing)} "
            f"(found: {', '.join(names) or 'none'})"
        )


def _image_values(rec: dict[str, Any]) -> list[Any]:
    schema = load_schema("medframeqa")
    slots = [rec.get(c) for c in schema["image_columns"] if c in rec]
    if any(v is not None for v in slots):
        return [v for v in slots if v is not None]
    for col in schema["image_list_columns"]:
        v = rec.get(col)
        if v is None:
            continue
        return [x for x in (v if isinstance(v, (list, tuple)) else [v]) if x is not None]
    return []


def _resolve_image(value: Any, base: Path, cache: Path) -> tuple[Path | None, str]:
    """(file or None if missing, display name) of one image value."""
    if isinstance(value, dict):
        data, name = value.get("bytes"), value.get("path")
        if data:
            return _store(bytes(data), name, cache), str(name or "")
        value = name
    if isinstance(value, (bytes, bytearray)) and value:
        return _store(bytes(value), None, cache), ""
    if isinstance(value, str) and value.strip():
        p = Path(value.strip()).expanduser()
        p = p if p.is_absolute() else base / p
        return (p.resolve() if p.exists() else None), value.strip()
    return None, str(value)


def load_medframeqa(path: str | Path, cache_dir: str | Path | None = None) -> DatasetLoad:
    """Load MedFrameQA from the HF parquet file (or a folder of shards) or a JSON/JSONL file.

    Args:
        path: ``.parquet`` file or folder, or ``.json``/``.jsonl`` whose image paths are relative
            to the file's folder.
        cache_dir: where parquet images are written (default ``$SLIDESCOUT_HOME/cache/images``).

    Samples with an image that cannot be found are skipped and reported (``n_missing``).
    """
    path = require_file(path, "MedFrameQA file")
    schema = load_schema("medframeqa")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    is_json = path.is_file() and path.suffix.lower() in (".json", ".jsonl")
    records = _records_json(path) if is_json else _records_parquet(path)
    base = path.parent if path.is_file() else path
    out = DatasetLoad(dataset="medframeqa", source=str(path), search_dir=str(base))
    ids = IdMaker()
    template = load_template("medframeqa")
    missing: set[str] = set()
    for i, rec in records:
        out.n_rows += 1
        where = f"{path.name}: question {i + 1}: "
        options, letter = _options_and_answer(rec, schema, where)
        raw_id = next(
            (str(rec[c]) for c in schema["id_columns"] if rec.get(c) not in (None, "")), f"q{i:05d}"
        )
        sid = ids.make(schema["task"], raw_id)
        images, lost = _find_images(rec, base, cache)
        if not images and not lost:
            raise DatasetError(f"{where}has no images")
        if lost:
            out.n_missing += 1
            out.missing_sample_ids.append(sid)
            missing.update(Path(n).name or n for n in lost)
            continue
        idx = LETTERS.index(letter)
        question = fill_template(
            template, question=str(rec["question"]).strip(), options=lettered_options(options)
        )
        meta = {k: rec[k] for k in schema["meta_columns"] if rec.get(k) not in (None, "")}
        meta.update(
            dataset="medframeqa",
            row=i,
            n_images=len(images),
            raw_question=str(rec["question"]),  # as the official evaluation sends it
        )
        out.samples.append(
            Sample(
                sample_id=sid,
                task=schema["task"],
                question=question,
                options=options,
                answer=letter,
                answer_label=options[idx],
                answer_index=idx + 1,
                metric=schema["metric"],
                answer_format=schema["answer_format"],
                kind="imageset",
                image_path=images[0],
                image_paths=images,
                meta=meta,
            )
        )
    out.missing_files = sorted(missing)
    return out


def _options_and_answer(
    rec: dict[str, Any], schema: dict[str, Any], where: str
) -> tuple[list[str], str]:
    """The question's options (2 to 26) and its correct letter; a ``DatasetError`` if either is
    malformed."""
    options = rec.get("options")
    if isinstance(options, str):
        options = parse_options(options, where)
    if not isinstance(options, (list, tuple)) or not 2 <= len(options) <= len(LETTERS):
        raise DatasetError(
            f"{where}options must be a list of 2 to 26 strings, got {str(options)[:80]!r}"
        )
    options = [str(o) for o in options]
    raw_answer = next(
        (rec[c] for c in schema["answer_columns"] if rec.get(c) not in (None, "")), None
    )
    letter = _letter(raw_answer, options)
    if letter is None:
        raise DatasetError(
            f"{where}correct answer {raw_answer!r} is not a letter A-{LETTERS[len(options) - 1]}"
        )
    return options, letter


def _find_images(rec: dict[str, Any], base: Path, cache: Path) -> tuple[list[str], list[str]]:
    """The paths of the record's images that exist, and the names of those that do not."""
    images: list[str] = []
    lost: list[str] = []
    for value in _image_values(rec):
        found, name = _resolve_image(value, base, cache)
        if found is None:
            lost.append(name)
        else:
            images.append(str(found))
    return images, lost
