"""Which slides a MultiPathQA question file names, where each comes from, and where it goes.

Tasks map to sources: ``tcga``, ``tcga_slidebench`` and ``tcga_expert_vqa`` come from the GDC
(``file_id`` is the GDC file uuid), ``gtex`` from the GTEx image download endpoint (``file_id`` is
the sample id) and ``panda`` from Kaggle (``file_id`` is the image file name). A slide is saved as
``<folder>/<source>/<image_path>``, the name ``eval multipathqa --slides`` looks for.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from slidescout.errors import DatasetError
from slidescout.eval.datasets import load_multipathqa

SOURCES = ("tcga", "gtex", "panda")
GDC_URL = "https://api.gdc.cancer.gov/"
GTEX_URL = "https://brd.nci.nih.gov/brd/imagedownload/"
PANDA_COMPETITION = "prostate-cancer-grade-assessment"


def source_of(task: str) -> str | None:
    """The download source of a task, or None for a task no source serves."""
    if task.startswith("tcga"):
        return "tcga"
    return task if task in ("gtex", "panda") else None


@dataclass
class SlideItem:
    """One slide to have: its source, file name (``image_path``), remote id and the questions on it."""

    source: str
    name: str
    remote_id: str
    tasks: list[str] = field(default_factory=list)
    questions: int = 0

    @property
    def key(self) -> str:
        return f"{self.source}:{self.remote_id}"

    def default_path(self, root: Path) -> Path:
        return root / self.source / self.name


def default_csv() -> Path:
    """The question file: ``$SLIDESCOUT_MULTIPATHQA_CSV``, else the copy shipped in the package."""
    env = os.environ.get("SLIDESCOUT_MULTIPATHQA_CSV")
    if env:
        return Path(env).expanduser()
    shipped = resources.files("slidescout").joinpath("data", "multipathqa", "MultiPathQA.csv")
    if shipped.is_file():
        return Path(str(shipped))
    raise DatasetError(
        "no MultiPathQA question file known; pass --csv MultiPathQA.csv "
        "(from Hugging Face tbuckley/MultiPathQA)"
    )


def parse_tasks(tasks: str | Iterable[str] | None) -> list[str] | None:
    if tasks is None:
        return None
    items = tasks.split(",") if isinstance(tasks, str) else list(tasks)
    out = [t.strip() for t in items if t and t.strip() and t.strip() != "all"]
    return out or None


def plan_slides(
    csv_path: str | Path, tasks: str | Iterable[str] | None = None, limit: int | None = None
) -> list[SlideItem]:
    """The distinct slides of the questions (valid rows, chosen tasks), in file order; ``limit``
    keeps the first N slides."""
    load = load_multipathqa(csv_path, tasks=parse_tasks(tasks))
    items: dict[str, SlideItem] = {}
    for s in load.samples:
        src = source_of(s.task)
        if src is None:
            continue
        name = Path(str(s.meta.get("file_name") or s.image_path)).name
        remote = str(s.meta.get("file_id") or "").strip() or name
        key = f"{src}:{name}"
        item = items.get(key)
        if item is None:
            if limit is not None and len(items) >= limit:
                continue
            item = items[key] = SlideItem(source=src, name=name, remote_id=remote)
        if s.task not in item.tasks:
            item.tasks.append(s.task)
        item.questions += 1
    return list(items.values())
