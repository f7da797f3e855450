"""Datasets as a registry: the built-in loaders and any plugin's, under one name each.

A dataset is a :class:`DatasetSpec`: its name, a line for help, ``load(request) ->
DatasetLoad``, and how to recognise its files. ``slidescout eval file PATH`` picks the dataset
from the file (``recognise``) or by ``--dataset NAME``; a plugin adds one with an entry point in
``slidescout.datasets`` whose value is a ``DatasetSpec``. Samples use an answer format from the
answer-format registry (``core.answer_formats``), built-in or a plugin's.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from slidescout.core.registry import Registry
from slidescout.errors import DatasetError
from slidescout.eval.datasets import load_multipathqa, load_synth
from slidescout.eval.medframeqa import load_medframeqa
from slidescout.eval.samples import DatasetLoad, load_schema, require_file

__all__ = ["DATASETS", "DatasetRequest", "DatasetSpec", "find_dataset", "load_dataset"]


@dataclass(frozen=True)
class DatasetRequest:
    """What a loader is asked for: the question file (or folder) and the user's options."""

    path: Path
    slides_dir: Path | None = None  # where the slides the file names are (MultiPathQA)
    tasks: tuple[str, ...] | None = None  # only these tasks
    cache_dir: Path | None = None  # where images held inside the file are extracted


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset. ``media`` says what a sample shows (a slide or a set of images);
    ``slides_dir``: the file names slides found under ``--slides`` (required, or refused)."""

    name: str
    description: str
    load: Callable[[DatasetRequest], DatasetLoad]
    recognise: Callable[[Path], bool] = lambda path: False
    media: Literal["slides", "images"] = "slides"
    slides_dir: bool = False
    cache_dir: bool = False


def _csv_columns(path: Path) -> set[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return set()
    return {c.strip() for c in header}


def _csv_tasks(path: Path) -> set[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            names = {(r.get("benchmark_name") or "").strip() for r in csv.DictReader(f)}
    except (OSError, UnicodeDecodeError, csv.Error):
        return set()
    names.discard("")
    return names


def _is_csv(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in (".csv", ".tsv", ".txt")


def _is_synth(path: Path) -> bool:
    if not _is_csv(path) or not set(load_schema("multipathqa")["required_columns"]) <= (
        _csv_columns(path)
    ):
        return False
    tasks = _csv_tasks(path)
    return bool(tasks) and all(t.startswith("synth") for t in tasks)


def _is_medframeqa(path: Path) -> bool:
    return path.is_dir() or path.suffix.lower() in (".parquet", ".json", ".jsonl")


BUILTIN_DATASETS: dict[str, DatasetSpec] = {
    "multipathqa": DatasetSpec(
        "multipathqa",
        "MultiPathQA (GIANT's CSV; the slides under --slides)",
        lambda r: load_multipathqa(r.path, slides_dir=r.slides_dir, tasks=r.tasks),
        lambda p: _is_csv(p) and not _is_synth(p),  # its loader names any missing column
        slides_dir=True,
    ),
    "synthpath": DatasetSpec(
        "synthpath",
        "SynthPath (MultiPathQA's columns; slides beside the CSV)",
        lambda r: load_synth(r.path, tasks=r.tasks),
        _is_synth,
    ),
    "medframeqa": DatasetSpec(
        "medframeqa",
        "MedFrameQA (parquet file or folder, or JSON/JSONL with image paths)",
        lambda r: load_medframeqa(r.path, cache_dir=r.cache_dir),
        _is_medframeqa,
        media="images",
        cache_dir=True,
    ),
}


def _as_dataset(obj: object, name: str) -> DatasetSpec:
    if not isinstance(obj, DatasetSpec):
        raise TypeError(f"{obj!r} is not a DatasetSpec")
    return obj


DATASETS: Registry[DatasetSpec] = Registry(
    "slidescout.datasets", "dataset", BUILTIN_DATASETS, _as_dataset
)


def find_dataset(path: Path, name: str | None = None) -> DatasetSpec:
    """The dataset ``name``, or the one that recognises ``path``: plugins first (theirs are the
    specific formats), then the built-ins (MultiPathQA takes any other CSV and names what
    columns it misses)."""
    if name is not None:
        return DATASETS.get(name)
    found = DATASETS.load_all()
    order = [*DATASETS.plugin_names(), *DATASETS.builtin_names()]
    for key in order:
        spec = found.get(key)
        if spec is not None and spec.recognise(path):
            return spec
    raise DatasetError(
        f"cannot tell the dataset of {path}: none of {', '.join(DATASETS.names())} recognises "
        "it; name it with --dataset (MultiPathQA/SynthPath: a CSV with MultiPathQA's columns; "
        "MedFrameQA: .parquet, .json or .jsonl)"
    )


def load_dataset(
    path: str | Path,
    *,
    slides_dir: str | Path | None = None,
    tasks: str | tuple[str, ...] | list[str] | None = None,
    cache_dir: str | Path | None = None,
    dataset: str | None = None,
) -> DatasetLoad:
    """Load a question file with the dataset that recognises it (or ``dataset``)."""
    p = require_file(path, "dataset")
    spec = find_dataset(p, dataset)
    if isinstance(tasks, str):
        tasks = tuple(t.strip() for t in tasks.split(",") if t.strip())
    request = DatasetRequest(
        path=p,
        slides_dir=Path(slides_dir) if slides_dir is not None else None,
        tasks=tuple(tasks) if tasks else None,
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
    )
    return spec.load(request)
