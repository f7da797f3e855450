"""Benchmark loaders: MultiPathQA (GIANT's CSV), SynthPath (same CSV columns) and MedFrameQA.

Each loader returns a :class:`DatasetLoad`: the :class:`Sample` list plus what was left out
(invalid rows, missing slide files). Sample ids are ``<task>/<benchmark_id>``, made unique in
file order (``~2`` for a second row with the same id), so they are identical on every run and a
resumed run can skip what finished.

How MultiPathQA questions are rendered (reproducing GIANT's ``scripts/run_benchmark.py``):

- ``{options}`` becomes ``"1. X\\n2. Y\\n..."``: one numbered line per option, every line
  ending in a newline, and ``{{``/``}}`` become braces (GIANT calls ``str.format``).
- ``tcga``, ``gtex`` and ``panda`` prompts are templates already; ``panda`` has no options.
- ``tcga_slidebench`` and ``tcga_expert_vqa`` rows hold only the question. GIANT wraps them in
  its ``TCGA_SLIDEBENCH_PROMPT`` (``templates/multipathqa_mcq.md``), whose "(1, 2, 3, or 4)" is
  generated from the number of options.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from slidescout.errors import DatasetError
from slidescout.eval.samples import (
    DatasetLoad,
    IdMaker,
    Sample,
    SlideIndex,
    fill_template,
    load_schema,
    load_template,
    numbered_options,
    option_numbers,
    parse_options,
    require_file,
)

__all__ = [
    "DatasetLoad",
    "Sample",
    "SlideFinder",
    "SlideIndex",
    "load_multipathqa",
    "load_synth",
    "parse_options",
]

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


class SlideFinder(SlideIndex):
    """:class:`SlideIndex` that also finds a GDC-named file: ``TCGA-...-DX1.<uuid>.svs`` (the name
    the gdc-client saves) for ``TCGA-...-DX1.svs`` (the name in the question file). ``eval`` and
    ``data status`` both search with it, so they count the same slides."""

    def __init__(self, root: str | Path, extensions: list[str] | None = None) -> None:
        super().__init__(root, extensions)
        self._by_prefix: dict[str, list[Path]] = {}
        for stem, paths in self._by_stem.items():
            prefix = stem.split(".", 1)[0]
            if prefix != stem:
                self._by_prefix.setdefault(prefix, []).extend(paths)

    def find(self, name: str) -> Path | None:
        hit = super().find(name)
        if hit is not None:
            return hit
        stem = os.path.splitext(os.path.basename(name.replace("\\", "/")))[0].lower()
        candidates = self._by_prefix.get(stem, [])
        return min(candidates, key=str) if candidates else None


def _flag(value: str | None, default: bool = True) -> bool:
    v = (value or "").strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    return default


def _as_int(text: str) -> int | None:
    t = str(text).strip()
    try:
        f = float(t)
    except ValueError:
        return None
    return int(f) if f.is_integer() else None


def _read_rows(path: Path, schema: dict[str, Any]) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in schema["required_columns"] if c not in columns]
            if missing:
                raise DatasetError(
                    f"{path} is not a MultiPathQA-style CSV: missing column(s) {', '.join(missing)} "
                    f"(found: {', '.join(columns) or 'none'}); expected {', '.join(schema['required_columns'])}"
                )
            return [
                {(k or "").strip(): (v if v is not None else "") for k, v in row.items()}
                for row in reader
            ]
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path} is not UTF-8 text ({e}); is it really the CSV?") from None
    except csv.Error as e:
        raise DatasetError(f"{path} is not a readable CSV: {e}") from None


def _task_config(task: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema["default_task"], **schema["tasks"].get(task, {})}


def _ground_truth(
    row: dict[str, str], options: list[str], fmt: str, where: str
) -> tuple[int | str, str, int | None, str]:
    """(answer, answer_label, answer_index, answer_format) of one row."""
    raw = row["answer"].strip()
    lowered = {o.strip().lower(): i for i, o in enumerate(options, 1)}
    if fmt == "isup_json":
        grade = _as_int(raw)
        if grade is None or not 0 <= grade <= 5:
            raise DatasetError(f"{where}answer {raw!r} is not an ISUP grade 0-5")
        return grade, str(grade), None, fmt
    if not options:
        raise DatasetError(
            f"{where}the row has no options but its task expects a choice among options"
        )
    if fmt == "label":
        idx = lowered.get(raw.lower())
        if idx is None:
            raise DatasetError(f"{where}answer {raw!r} is not one of the options {options}")
        return options[idx - 1], options[idx - 1], idx, fmt
    idx = _as_int(raw)
    if idx is None and raw.lower() in lowered:  # a label where an index was expected
        idx = lowered[raw.lower()]
    if idx is None or not 1 <= idx <= len(options):
        raise DatasetError(
            f"{where}answer {raw!r} is not a 1-based option index (1-{len(options)})"
        )
    return idx, options[idx - 1], idx, fmt


def _question(prompt: str, options: list[str], cfg: dict[str, Any]) -> str:
    opts = numbered_options(options)
    if not options or "{options}" in prompt:
        return fill_template(prompt, options=opts)
    return fill_template(
        load_template(cfg.get("wrap") or "multipathqa_mcq"),
        question=prompt,
        options=opts,
        option_numbers=option_numbers(len(options)),
    )


def _normalise_tasks(tasks: Iterable[str] | str | None) -> set[str] | None:
    if tasks is None:
        return None
    if isinstance(tasks, str):
        tasks = tasks.split(",")
    wanted = {t.strip() for t in tasks if t and t.strip()}
    return wanted or None


def _load_csv(
    path: str | Path,
    *,
    dataset: str,
    slides_dir: str | Path | None,
    base_dir: Path | None,
    tasks: Iterable[str] | str | None,
) -> DatasetLoad:
    path = require_file(path, f"{dataset} question file")
    schema = load_schema("multipathqa")
    rows = _read_rows(path, schema)
    wanted = _normalise_tasks(tasks)
    present = sorted({r["benchmark_name"].strip() for r in rows})
    if wanted is not None and wanted - set(present):
        raise DatasetError(
            f"unknown task(s) {', '.join(sorted(wanted - set(present)))} for {path}; "
            f"its tasks are {', '.join(present)}"
        )
    index = SlideFinder(slides_dir, schema["slide_extensions"]) if slides_dir is not None else None
    out = DatasetLoad(
        dataset=dataset,
        source=str(path),
        n_rows=len(rows),
        search_dir=str(index.root) if index else (str(base_dir) if base_dir else None),
    )
    ids = IdMaker()
    missing: set[str] = set()
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        task = row["benchmark_name"].strip()
        where = f"{path.name}:{line}: "
        if not task:
            raise DatasetError(f"{where}benchmark_name is empty")
        if wanted is not None and task not in wanted:
            out.n_filtered += 1
            continue
        if not _flag(row.get("is_valid"), True):
            out.n_invalid += 1
            continue
        name = row["image_path"].strip()
        sample = _row_sample(row, line, task, schema, ids, where, dataset)
        if index is None and base_dir is None:
            out.samples.append(sample)
            continue
        found = index.find(name) if index is not None else _under(base_dir, name)
        if found is None:
            out.n_missing += 1
            out.missing_sample_ids.append(sample.sample_id)
            missing.add(Path(name).name)
            continue
        meta = dict(sample.meta)
        if base_dir is not None and (truth := _truth_beside(found)) is not None:
            meta["truth_path"] = str(truth)
        out.samples.append(
            sample.model_copy(
                update={"image_path": str(found), "image_paths": [str(found)], "meta": meta}
            )
        )
    out.missing_files = sorted(missing)
    return out


def _row_sample(
    row: dict[str, str],
    line: int,
    task: str,
    schema: dict[str, Any],
    ids: IdMaker,
    where: str,
    dataset: str,
) -> Sample:
    """The sample of one valid row, its image path as the file gives it."""
    cfg = _task_config(task, schema)
    options = parse_options(row["options"], where)
    fmt = cfg["answer_format"]
    if task not in schema["tasks"] and options and _as_int(row["answer"]) is None:
        fmt = "label"  # an unknown task whose answers are option texts
    answer, label, answer_index, fmt = _ground_truth(row, options, fmt, where)
    metric = row.get("metric_type", "").strip() or cfg["metric"]
    if metric not in ("accuracy", "balanced_accuracy"):
        raise DatasetError(
            f"{where}metric_type {metric!r} is neither accuracy nor balanced_accuracy"
        )
    name = row["image_path"].strip()
    if not name:
        raise DatasetError(f"{where}image_path is empty")
    bench_id = row["benchmark_id"].strip() or f"row{line}"
    meta: dict[str, Any] = {
        "dataset": dataset,
        "benchmark_id": bench_id,
        "file_name": name,
        "file_id": row.get("file_id", "").strip(),
        "row": line,
        "image_exists": _flag(row.get("image_exists"), True),
        "patch_exists": _flag(row.get("patch_exists"), True),
    }
    return Sample(
        sample_id=ids.make(task, bench_id),
        task=task,
        question=_question(row["prompt"], options, cfg),
        options=options,
        answer=answer,
        answer_label=label,
        answer_index=answer_index,
        metric=metric,  # type: ignore[arg-type]
        answer_format=fmt,
        image_path=name,
        image_paths=[name],
        meta=meta,  # type: ignore[arg-type]
    )


def _under(base_dir: Path | None, name: str) -> Path | None:
    """``name`` resolved under ``base_dir``, if that file exists."""
    if base_dir is None:
        return None
    candidate = (base_dir / name).resolve()
    return candidate if candidate.exists() else None


def _truth_beside(found: Path) -> Path | None:
    """A generated slide's ground truth file beside it (``.json``, else ``.geojson``)."""
    return next(
        (
            found.with_suffix(ext)
            for ext in (".json", ".geojson")
            if found.with_suffix(ext).is_file()
        ),
        None,
    )


def load_multipathqa(
    csv_path: str | Path,
    slides_dir: str | Path | None = None,
    tasks: Iterable[str] | str | None = None,
) -> DatasetLoad:
    """Load ``MultiPathQA.csv`` (934 questions, 5 tasks).

    Args:
        csv_path: the question file.
        slides_dir: folder holding the downloaded slides (searched recursively by file name,
            accepting another slide extension for the same stem). When given, samples whose
            slide is not there are skipped and reported; ``image_path`` is then absolute.
        tasks: keep only these tasks (names or a comma-separated string).
    """
    return _load_csv(
        csv_path, dataset="multipathqa", slides_dir=slides_dir, base_dir=None, tasks=tasks
    )


def load_synth(csv_path: str | Path, tasks: Iterable[str] | str | None = None) -> DatasetLoad:
    """Load a SynthPath CSV (MultiPathQA's columns; ``image_path`` relative to the CSV's folder).

    A slide's ground truth ``<stem>.json`` or ``<stem>.geojson`` beside it goes into
    ``meta['truth_path']``. Rows whose slide file is missing are skipped and reported.
    """
    csv_path = require_file(csv_path, "SynthPath question file")
    return _load_csv(
        csv_path,
        dataset="synthpath",
        slides_dir=None,
        base_dir=csv_path.resolve().parent,
        tasks=tasks,
    )
