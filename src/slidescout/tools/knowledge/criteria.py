"""Numeric grading and staging criteria as tables (``corpus/criteria/*.yaml``), answered exactly.

A table names its published source and the corpus section that explains it, the words that
name it in a question ("nottingham", "fnclcc"), the organs it applies to (HER2 scoring here is
breast scoring), and its parts: either categories ("HER2 2+", "WHO/ISUP grade 3") or numeric
bands written as intervals ("[10, 19]", "(75, 100]", "[20, inf)"), with one or two inputs told
apart by their unit (depth of invasion in mm, size in cm). ``criteria_answer`` finds the table a
question names, the part it asks about and the value it gives, and answers from the row that
holds it; with no value it gives the whole table.

Per-task criteria cards (``corpus/cards/*.yaml``, e.g. PANDA's biopsy rules and grade group
table) are rendered by ``criteria_card`` for a preset to put in its system prompt.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError, field_validator

from slidescout.errors import DatasetError
from slidescout.tools.knowledge.corpus import starter_corpus_dir
from slidescout.tools.knowledge.graph import ConceptGraph, normalize_name

_INTERVAL = re.compile(r"^\s*([\[(])\s*([-\d.]+)\s*,\s*([-\d.]+|inf)\s*([\])])\s*$")
_NUMBER = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)(?=\s|$|%|mm|cm|[),;:?+])")
_UNIT = re.compile(r"(\d+(?:\.\d+)?)\s*(mm|cm)\b")


class Interval(BaseModel):
    low: float
    high: float
    low_closed: bool
    high_closed: bool

    @classmethod
    def parse(cls, text: str) -> Interval:
        m = _INTERVAL.match(text)
        if not m:
            raise ValueError(f"not an interval: {text!r} (write e.g. '[10, 19]' or '(75, 100]')")
        return cls(
            low=float(m.group(2)),
            high=math.inf if m.group(3) == "inf" else float(m.group(3)),
            low_closed=m.group(1) == "[",
            high_closed=m.group(4) == "]",
        )

    def holds(self, value: float) -> bool:
        above = value >= self.low if self.low_closed else value > self.low
        below = value <= self.high if self.high_closed else value < self.high
        return above and below

    def text(self) -> str:
        low, high = _num(self.low), _num(self.high)
        if math.isinf(self.high):
            return f"{low} or more" if self.low_closed else f"more than {low}"
        if self.low == self.high:
            return low
        if self.low == 0 and self.low_closed and not self.high_closed:
            return f"under {high}"
        prefix = "" if self.low_closed else "over "
        return f"{prefix}{low}-{high}" if self.high_closed else f"{prefix}{low} to under {high}"


def _unit(unit: str) -> str:
    return "" if not unit else (unit if unit.startswith("%") else f" {unit}")


def _num(value: float) -> str:
    if math.isinf(value):
        return "inf"
    return str(int(value)) if value == int(value) else f"{value:g}"


class Input(BaseModel):
    name: str
    unit: str | None = None
    label: str = ""


class Row(BaseModel):
    result: str
    key: str | None = None  # a category ("2" for HER2 2+)
    range: Interval | None = None  # the one input's band
    when: dict[str, Interval] = {}  # bands of several inputs

    @field_validator("range", mode="before")
    @classmethod
    def _range(cls, value: Any) -> Any:
        return Interval.parse(value) if isinstance(value, str) else value

    @field_validator("when", mode="before")
    @classmethod
    def _when(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: Interval.parse(v) if isinstance(v, str) else v for k, v in value.items()}
        return value


class Part(BaseModel):
    name: str
    words: list[str] = []
    unit: str = ""
    default: bool = False
    integer: bool = False  # counts and scores: bands such as [0, 9], [10, 19] hold whole numbers
    pattern: str | None = None  # a regex whose first matching group is the category key
    inputs: list[Input] = []
    rows: list[Row]

    @property
    def categorical(self) -> bool:
        return any(r.key is not None for r in self.rows)

    def render(self) -> str:
        if self.categorical:
            return "; ".join(r.result for r in self.rows)
        if self.inputs:
            return "; ".join(
                ", ".join(
                    f"{i.label or i.name} {r.when[i.name].text()}{_unit(i.unit or '')}"
                    for i in self.inputs
                )
                + f" -> {r.result}"
                for r in self.rows
            )
        return "; ".join(
            f"{r.range.text()}{_unit(self.unit)} -> {r.result}" for r in self.rows if r.range
        )


class Table(BaseModel):
    id: str
    title: str
    source: str
    section: str  # "file § heading": the corpus section that explains the table
    names: list[str]
    organs: list[str] = []  # organ keys of concepts.yaml the table applies to; [] = any
    parts: list[Part]
    note: str = ""

    def render(self, parts: list[Part] | None = None) -> str:
        lines = [f"{p.name}: {p.render()}." for p in (parts or self.parts)]
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)


class Card(BaseModel):
    task: str
    title: str
    source: str
    rules: list[str]
    tables: list[str] = []


def criteria_dir() -> Path:
    return starter_corpus_dir() / "criteria"


@lru_cache(maxsize=1)
def load_tables() -> tuple[Table, ...]:
    """Every criteria table shipped with slidescout, sorted by id."""
    tables = (_load(Table, p) for p in criteria_dir().glob("*.yaml"))
    return tuple(sorted(tables, key=lambda t: t.id))


def table(table_id: str) -> Table:
    for t in load_tables():
        if t.id == table_id:
            return t
    raise DatasetError(f"no criteria table {table_id!r}")


def _load(model: Any, path: Path) -> Any:
    import yaml

    try:
        return model.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError, ValueError) as exc:
        raise DatasetError(f"bad criteria file {path.name}: {exc}") from exc


# ---------------------------------------------------------------------- answering


def criteria_answer(
    query: str, graph: ConceptGraph
) -> tuple[str, list[str], dict[str, Any]] | None:
    """(text, citations, data) from the table a question names, or None when it names none."""
    found = _table_for(query, graph)
    if found is None:
        return None
    parts = _parts_for(found, normalize_name(query))
    lines: list[str] = []
    results: list[dict[str, str]] = []
    for part in parts:
        result = _row_for(part, query)
        if result is not None:
            given, row = result
            lines.append(f"{found.title}: {part.name} {given} -> {row.result}.")
            results.append({"part": part.name, "value": given, "result": row.result})
    if not lines:
        lines.append(f"{found.title}:")
    lines.append(found.render(parts if results else None))
    lines.append(f"Source: {found.source} ({found.section}).")
    data: dict[str, Any] = {"criteria": found.id, "results": results}
    return "\n".join(lines), [found.section], data


def _table_for(query: str, graph: ConceptGraph) -> Table | None:
    padded = f" {normalize_name(query)} "
    named = graph.mentions(query, kinds=("organ", "entity"))
    organs = {o.split(":", 1)[1] for n in named for o in graph.organs_of(n)}
    for candidate in load_tables():
        if not any(f" {normalize_name(n)} " in padded for n in candidate.names):
            continue
        if candidate.organs and organs and not organs & set(candidate.organs):
            continue  # another organ's rules (e.g. HER2 scoring of gastric cancer)
        return candidate
    return None


def _parts_for(found: Table, asked: str) -> list[Part]:
    """The parts a question names (several when they tie: the two Nottingham mitotic tables),
    else the default part."""
    words = set(asked.split())
    padded = f" {asked} "
    scores = [
        sum(1 for w in p.words if w in words or f" {normalize_name(w)} " in padded)
        for p in found.parts
    ]
    best = max(scores)
    if best:
        return [p for p, score in zip(found.parts, scores, strict=True) if score == best]
    return [p for p in found.parts if p.default][:1]


def _row_for(part: Part, query: str) -> tuple[str, Row] | None:
    text = query.lower()
    if part.categorical:
        m = re.search(part.pattern or r"\b(\d)\b", text)
        key = next((g for g in m.groups() if g is not None), None) if m else None
        row = next((r for r in part.rows if r.key == key), None)
        return (key, row) if key is not None and row is not None else None
    if part.inputs:
        values = {u: float(v) for v, u in _UNIT.findall(text)}
        known = {i.name: values[i.unit] for i in part.inputs if i.unit in values}
        if len(known) < len(part.inputs):
            return None
        row = next(
            (r for r in part.rows if all(r.when[n].holds(v) for n, v in known.items())), None
        )
        given = ", ".join(
            f"{i.label or i.name} {_num(known[i.name])}{_unit(i.unit or '')}" for i in part.inputs
        )
        return (given, row) if row is not None else None
    for raw in _NUMBER.findall(text):
        value = float(raw)
        row = next((r for r in part.rows if r.range is not None and r.range.holds(value)), None)
        if row is not None:
            return f"{_num(value)}{_unit(part.unit)}", row
    return None


# ---------------------------------------------------------------------- cards


def cards_dir() -> Path:
    return starter_corpus_dir() / "cards"


@lru_cache(maxsize=1)
def load_cards() -> dict[str, Card]:
    """Criteria cards by task name."""
    cards = (_load(Card, p) for p in sorted(cards_dir().glob("*.yaml")))
    return {c.task: c for c in cards}


def criteria_card(task: str) -> str | None:
    """The criteria card of a task as system-prompt text (rules, then its tables, with their
    sources), or None when the task has none."""
    card = load_cards().get(task)
    if card is None:
        return None
    lines = [f"## {card.title}", *(f"- {rule}" for rule in card.rules)]
    for table_id in card.tables:
        found = table(table_id)
        lines.append(f"{found.title}: {found.render()}")
    pieces = [
        p.strip()
        for s in (card.source, *(table(t).source for t in card.tables))
        for p in s.split(";")
    ]
    lines.append("Sources: " + "; ".join(dict.fromkeys(pieces)) + ".")
    return "\n".join(lines)
