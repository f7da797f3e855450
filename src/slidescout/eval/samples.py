"""The evaluation sample, the result of loading a dataset, and helpers shared by the loaders.

Schemas (``schemas/*.json``) and question templates (``templates/*.md``) are package data:
the templates use ``str.format`` syntax exactly as GIANT's and MultiPathQA's prompts do
(``{options}``, ``{question}``; ``{{``/``}}`` are literal braces).
"""

from __future__ import annotations

import ast
import json
import os
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from slidescout.core.parsing import LETTERS
from slidescout.core.sample import Metric, Sample
from slidescout.errors import DatasetError

__all__ = ["LETTERS", "DatasetLoad", "Metric", "Sample"]


class DatasetLoad(BaseModel):
    """What a loader produced: the samples, and what it left out and why."""

    dataset: str
    source: str  # the file that was read
    samples: list[Sample] = Field(default_factory=list)
    n_rows: int = 0  # rows read (before filtering)
    n_invalid: int = 0  # rows excluded because the dataset marks them invalid (is_valid False)
    n_filtered: int = 0  # rows of tasks not asked for
    n_missing: int = 0  # samples skipped because an image/slide file is missing
    missing_files: list[str] = Field(default_factory=list)  # distinct missing file names, sorted
    missing_sample_ids: list[str] = Field(default_factory=list)
    search_dir: str | None = None  # where missing files were looked for

    def by_task(self) -> dict[str, list[Sample]]:
        out: dict[str, list[Sample]] = {}
        for s in self.samples:
            out.setdefault(s.task, []).append(s)
        return out

    def summary(self, examples: int = 3) -> str:
        """One line for the CLI: how many samples, how many skipped and a few missing names."""
        counts = ", ".join(f"{t} {len(v)}" for t, v in self.by_task().items())
        text = f"{self.dataset}: {len(self.samples)} samples ({counts})"
        if self.n_invalid:
            text += f"; {self.n_invalid} invalid rows excluded"
        if self.n_missing:
            names = ", ".join(self.missing_files[:examples])
            more = (
                f", +{len(self.missing_files) - examples} more"
                if len(self.missing_files) > examples
                else ""
            )
            where = f" in {self.search_dir}" if self.search_dir else ""
            text += f"; {self.n_missing} skipped, file not found{where} (e.g. {names}{more})"
        return text


# ---- package data ---------------------------------------------------------------------------

_PACKAGE = "slidescout.eval"


@cache
def load_schema(name: str) -> dict[str, Any]:
    """``eval/schemas/<name>.json``: columns and per-task settings of a dataset."""
    try:
        text = (
            resources.files(_PACKAGE)
            .joinpath("schemas", f"{name}.json")
            .read_text(encoding="utf-8")
        )
    except FileNotFoundError:
        raise DatasetError(f"no dataset schema named {name!r} in slidescout/eval/schemas") from None
    return json.loads(text)


@cache
def load_template(name: str) -> str:
    """``eval/templates/<name>.md``, a ``str.format``-style question template."""
    try:
        return (
            resources.files(_PACKAGE)
            .joinpath("templates", f"{name}.md")
            .read_text(encoding="utf-8")
        )
    except FileNotFoundError:
        raise DatasetError(
            f"no question template named {name!r} in slidescout/eval/templates"
        ) from None


_FIELD = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill_template(template: str, **values: str) -> str:
    """``str.format`` for the named fields only: ``{{``/``}}`` become braces, any other
    ``{name}`` not given is left as it is (a prompt may contain literal JSON)."""

    def sub(m: re.Match[str]) -> str:
        token = m.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name = m.group(1)
        return values[name] if name in values else token

    return _FIELD.sub(sub, template)


def numbered_options(options: list[str]) -> str:
    """GIANT's rendering of ``{options}``: ``"1. A\\n2. B\\n"``, one line per option, each line
    ending in a newline (so the template's following blank line shows as two)."""
    return "".join(f"{i}. {opt}\n" for i, opt in enumerate(options, 1))


def lettered_options(options: list[str]) -> str:
    """MedFrameQA options: ``"A. first\\nB. second"``."""
    return "\n".join(f"{LETTERS[i]}. {opt}" for i, opt in enumerate(options))


def option_numbers(n: int) -> str:
    """``"1, 2, 3, or 4"`` for n=4 (GIANT's wording), ``"1 or 2"`` for n=2."""
    nums = [str(i) for i in range(1, n + 1)]
    if n <= 1:
        return "".join(nums)
    if n == 2:
        return f"{nums[0]} or {nums[1]}"
    return ", ".join(nums[:-1]) + f", or {nums[-1]}"


def parse_options(text: str, where: str = "") -> list[str]:
    """The ``options`` cell: a Python list literal of strings (``"['A', 'B']"``); empty → []."""
    text = (text or "").strip()
    if not text or text.lower() in {"nan", "none", "[]"}:
        return []
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as e:
        raise DatasetError(
            f"{where}options is not a Python list literal ({e.__class__.__name__}): {text[:80]!r}"
        ) from None
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list) or not all(isinstance(o, (str, int, float)) for o in value):
        raise DatasetError(f"{where}options must be a list of strings, got {text[:80]!r}")
    return [str(o) for o in value]


# ---- ids ------------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def clean_id(text: str) -> str:
    """A file-system and URL friendly id part (letters, digits, ``._-``)."""
    return _UNSAFE.sub("_", str(text).strip()).strip("_") or "x"


class IdMaker:
    """Deterministic unique ids: the first ``tcga/X`` is ``tcga/X``, the second ``tcga/X~2``."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def make(self, task: str, raw_id: str) -> str:
        base = f"{clean_id(task)}/{clean_id(raw_id)}"
        sid, k = base, 1
        while sid in self._seen:
            k += 1
            sid = f"{base}~{k}"
        self._seen.add(sid)
        return sid


# ---- finding slide files --------------------------------------------------------------------


class SlideIndex:
    """Every file under a folder, by name and by stem, built with one walk.

    ``find("X.svs")`` returns ``X.svs`` if present, else a file with the same stem and another
    slide extension (``X.tiff``...), else None. Hidden folders are skipped.
    """

    def __init__(self, root: str | Path, extensions: list[str] | None = None) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetError(
                f"slides folder {self.root} does not exist; pass the folder that holds the downloaded slides"
            )
        self.extensions = [
            e.lower() for e in (extensions or load_schema("multipathqa")["slide_extensions"])
        ]
        self._by_name: dict[str, Path] = {}
        self._by_stem: dict[str, list[Path]] = {}
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fn in sorted(filenames):
                p = Path(dirpath) / fn
                self._by_name.setdefault(fn, p)
                self._by_name.setdefault(fn.lower(), p)
                stem, ext = os.path.splitext(fn)
                if ext.lower() in self.extensions:
                    self._by_stem.setdefault(stem.lower(), []).append(p)

    def find(self, name: str) -> Path | None:
        base = os.path.basename(name.replace("\\", "/"))
        hit = self._by_name.get(base) or self._by_name.get(base.lower())
        if hit is not None:
            return hit
        stem = os.path.splitext(base)[0].lower()
        candidates = self._by_stem.get(stem, [])
        if not candidates:
            return None
        order = {e: i for i, e in enumerate(self.extensions)}
        return min(candidates, key=lambda p: (order.get(p.suffix.lower(), 99), str(p)))

    def __len__(self) -> int:
        return len({str(p) for p in self._by_name.values()})


def require_file(path: str | Path, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError(
            f"{what} {p} does not exist; check the path (download the dataset first)"
        )
    return p
