"""What the viewer knows about a run: its samples, their traces, and the files it may serve.

``RunIndex`` reads a run directory (or one trace file) from disk on every ``refresh`` and keeps
a per-file cache keyed by (mtime, size), so a run still being written shows its new samples on
the next request without re-reading the traces that did not change.

Only two kinds of files ever leave the index: blobs (``RUN/blobs/<sha256>.<ext>``, looked up by
hash) and slides referenced by a trace of the run (looked up by an opaque key). Nothing takes a
path from a client.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slidescout.core.trace import Trace
from slidescout.errors import SlidescoutError
from slidescout.traces.rundir import RunDir, load_trace

_SHA = re.compile(r"[0-9a-f]{64}")
_BLOB_EXTS = ("jpg", "png", "bin")


@dataclass
class SlideEntry:
    """A slide (or image-set member) the run references: served under ``key`` only."""

    key: str
    path: Path
    exists: bool


@dataclass
class TraceSummary:
    """The fields of a trace the run table needs (read without validating every event)."""

    stem: str
    sample_id: str
    task: str
    question: str
    options: list[str]
    status: str
    answer: str | None
    truth: str | None
    n_steps: int
    cost_usd: float | None
    input_tokens: int
    output_tokens: int
    model: str
    preset: str
    slide_kind: str
    slide_paths: list[str]
    started_at: str | None
    finished_at: str | None


@dataclass
class _Cached:
    stamp: tuple[int, int]
    summary: TraceSummary | None
    error: str | None = None


@dataclass
class RunState:
    """One consistent snapshot of the run (rebuilt by ``RunIndex.refresh``)."""

    traces: dict[str, TraceSummary] = field(default_factory=dict)  # stem -> summary
    broken: dict[str, str] = field(default_factory=dict)  # stem -> error
    results: list[dict[str, Any]] = field(default_factory=list)
    slides: dict[str, SlideEntry] = field(default_factory=dict)  # key -> entry
    slide_keys: dict[str, str] = field(default_factory=dict)  # resolved path -> key


def _key(value: Any) -> str | None:
    return None if value is None else str(value).strip().lower()


def correctness(rec: dict[str, Any]) -> bool | None:
    """Whether a results.jsonl record is correct; None when there is no ground truth to compare.

    Accepts the shapes the project writes: an explicit ``correct``; eval records
    (``predicted``/``parsed_ok``/``truth``); and ``slidescout ask`` records (``choice``/``truth``).
    """
    if "truth" in rec and rec["truth"] is None:
        return None  # a question asked without an answer (ask, studio): nothing to score
    if rec.get("correct") is not None:
        return bool(rec["correct"])
    truth = rec.get("truth")
    if truth is None:
        return None
    if "predicted" in rec or "parsed_ok" in rec:
        pred = rec.get("predicted")
        return bool(rec.get("parsed_ok", True)) and pred is not None and _key(pred) == _key(truth)
    if "choice" in rec:
        choice = rec.get("choice")
        return choice is not None and _key(choice) == _key(truth)
    return None


def _option_label(value: Any, options: list[str]) -> str | None:
    """``3`` -> ``"3. Adenocarcinoma"`` when the value is a 1-based option index."""
    if value is None:
        return None
    text = str(value).strip()
    if options and text.isdigit() and 1 <= int(text) <= len(options):
        return f"{text}. {options[int(text) - 1]}"
    return text


_QUESTION_LABEL = re.compile(r"(?:^|\n)\s*Question:\s*", re.IGNORECASE)
_OPTIONS_LABEL = re.compile(r"\n\s*Options:\s*\n", re.IGNORECASE)


def display_question(text: str) -> str:
    """The question itself, for the run table: a benchmark template that wraps it in a shared
    instruction (MedFrameQA's ``... Question: {question} Options: ...``) shows only the part after
    its ``Question:`` label, up to its ``Options:``; other questions are shown as they are."""
    m = _QUESTION_LABEL.search(text or "")
    if m is None:
        return text
    rest = text[m.end() :]
    end = _OPTIONS_LABEL.search(rest)
    return (rest[: end.start()] if end else rest).strip() or text


def _first_line(text: str | None, limit: int = 160) -> str | None:
    if not text:
        return None
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _summarise(stem: str, data: dict[str, Any]) -> TraceSummary:
    events = data.get("events") or []
    usage = data.get("usage") or {}
    slide = data.get("slide") or {}
    truth = data.get("truth") or {}
    kind = slide.get("kind") or "slide"
    paths = list(slide.get("images") or []) if kind == "imageset" else [slide.get("path") or ""]
    return TraceSummary(
        stem=stem,
        sample_id=str(data.get("sample_id") or stem),
        task=str(data.get("task") or ""),
        question=str(data.get("question") or ""),
        options=[str(o) for o in data.get("options") or []],
        status=str(data.get("status") or "running"),
        answer=data.get("answer"),
        truth=truth.get("answer") if isinstance(truth, dict) else None,
        n_steps=sum(1 for e in events if isinstance(e, dict) and e.get("kind") == "model_call"),
        cost_usd=usage.get("cost_usd", 0.0),
        input_tokens=int(usage.get("input_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        model=str(data.get("model") or ""),
        preset=str(data.get("preset") or ""),
        slide_kind=kind,
        slide_paths=[p for p in paths if p],
        started_at=data.get("started_at"),
        finished_at=data.get("finished_at"),
    )


class RunIndex:
    """A run directory (or a single trace file) as the viewer sees it. Thread-safe."""

    def __init__(self, path: Path | str) -> None:
        p = Path(path).expanduser()
        if not p.exists():
            raise SlidescoutError(f"{p}: no such run directory or trace file")
        self.single_trace: Path | None = None
        if p.is_file():
            load_trace(p)  # a clear error now rather than an empty page later
            self.single_trace = p.resolve()
            parent = p.resolve().parent
            self.root = parent.parent if parent.name == "traces" else parent
            self.traces_dir = parent
        else:
            if not (p / "traces").is_dir() and not (p / "manifest.json").exists():
                raise SlidescoutError(
                    f"{p} is not a run directory (no manifest.json or traces/); "
                    "pass a run directory or a trace file"
                )
            self.root = p.resolve()
            self.traces_dir = self.root / "traces"
        self.blobs_dir = self.root / "blobs"
        self.name = self.single_trace.stem if self.single_trace else self.root.name
        self._lock = threading.Lock()
        self._cache: dict[str, _Cached] = {}
        self._salt = os.urandom(8)
        self.state = RunState()
        self.refresh()

    # -- reading ------------------------------------------------------------------------------
    def _trace_files(self) -> list[Path]:
        if self.single_trace is not None:
            return [self.single_trace]
        if not self.traces_dir.is_dir():
            return []
        return sorted(p for p in self.traces_dir.glob("*.json") if p.is_file())

    def _load_summary(self, path: Path) -> _Cached:
        try:
            st = path.stat()
        except OSError as exc:
            return _Cached((0, 0), None, str(exc))
        stamp = (st.st_mtime_ns, st.st_size)
        cached = self._cache.get(path.stem)
        if cached is not None and cached.stamp == stamp:
            return cached
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or "sample_id" not in data or "events" not in data:
                raise ValueError("not a slidescout trace")
            entry = _Cached(stamp, _summarise(path.stem, data))
        except (OSError, ValueError) as exc:
            entry = _Cached(stamp, None, f"{type(exc).__name__}: {exc}"[:300])
        self._cache[path.stem] = entry
        return entry

    def _results(self) -> list[dict[str, Any]]:
        if self.single_trace is not None or not (self.root / "results.jsonl").exists():
            return []
        return RunDir.results(_ResultsOnly(self.root))  # type: ignore[arg-type]

    def manifest(self) -> dict[str, Any]:
        p = self.root / "manifest.json"
        if self.single_trace is not None or not p.is_file():
            return {}
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def resolve_slide_path(self, path: str) -> Path:
        """Where a trace's slide path points: absolute, or relative to the working directory,
        the run directory or its parent (``slidescout demo`` keeps slides beside the run)."""
        p = Path(path).expanduser()
        if p.is_absolute():
            return p
        for base in (Path.cwd(), self.root, self.root.parent):
            cand = base / p
            if cand.exists():
                return cand.resolve()
        return (Path.cwd() / p).resolve()

    def _slide_key(self, resolved: Path) -> str:
        return hashlib.sha256(self._salt + str(resolved).encode()).hexdigest()[:20]

    def refresh(self) -> RunState:
        """Re-read results.jsonl and every changed trace; returns the new snapshot."""
        with self._lock:
            state = RunState()
            for path in self._trace_files():
                entry = self._load_summary(path)
                if entry.summary is None:
                    state.broken[path.stem] = entry.error or "unreadable"
                    continue
                s = entry.summary
                state.traces[path.stem] = s
                for sp in s.slide_paths:
                    resolved = self.resolve_slide_path(sp)
                    k = str(resolved)
                    if k not in state.slide_keys:
                        key = self._slide_key(resolved)
                        state.slide_keys[k] = key
                        state.slides[key] = SlideEntry(key, resolved, resolved.is_file())
            state.results = self._results()
            self.state = state
            return state

    # -- lookups --------------------------------------------------------------------------------
    def slide_key_for(self, path: str) -> str | None:
        return self.state.slide_keys.get(str(self.resolve_slide_path(path)))

    def slide(self, key: str) -> SlideEntry | None:
        """The slide behind an opaque key, or None (unknown key, or a file that is gone)."""
        if not re.fullmatch(r"[0-9a-f]{20}", key or ""):
            return None
        entry = self.state.slides.get(key)
        if entry is None:
            entry = self.refresh().slides.get(key)
        if entry is None or not entry.path.is_file():
            return None
        return entry

    def blob_path(self, sha: str) -> Path | None:
        """``RUN/blobs/<sha>.<ext>`` when ``sha`` is a sha256 and the file lies inside blobs/."""
        if not _SHA.fullmatch(sha or ""):
            return None
        blobs = self.blobs_dir.resolve() if self.blobs_dir.exists() else None
        if blobs is None:
            return None
        for ext in _BLOB_EXTS:
            p = blobs / f"{sha}.{ext}"
            if p.is_file():
                real = p.resolve()
                if real.parent != blobs:  # a symlink out of the folder is not ours to serve
                    return None
                return real
        return None

    def blob_bytes(self, sha: str) -> tuple[bytes, str] | None:
        p = self.blob_path(sha)
        if p is None:
            return None
        media = {"jpg": "image/jpeg", "png": "image/png"}.get(
            p.suffix[1:], "application/octet-stream"
        )
        return p.read_bytes(), media

    def trace_path(self, stem: str) -> Path | None:
        """The trace file of a row id (the file's stem), only when the index lists it."""
        if stem not in self.state.traces:
            self.refresh()
        s = self.state.traces.get(stem)
        if s is None:
            return None
        if self.single_trace is not None:
            return self.single_trace
        return self.traces_dir / f"{stem}.json"

    def load(self, stem: str) -> Trace | None:
        p = self.trace_path(stem)
        return load_trace(p) if p is not None else None

    # -- the run table ---------------------------------------------------------------------------
    def rows(self, state: RunState | None = None) -> list[dict[str, Any]]:
        """One row per results record, plus one per trace without a record (still running)."""
        state = state or self.state
        by_sample: dict[str, list[str]] = {}
        for name, summary in state.traces.items():
            by_sample.setdefault(summary.sample_id, []).append(name)
        used: set[str] = set()
        rows: list[dict[str, Any]] = []
        for rec in state.results:
            sid = str(rec.get("sample_id"))
            repeat = int(rec.get("repeat", 0) or 0)
            stems = by_sample.get(sid, [])
            stem = stems[min(repeat, len(stems) - 1)] if stems else None
            s = state.traces.get(stem) if stem else None
            if stem:
                used.add(stem)
            options = s.options if s else []
            answer = rec.get("answer_label") or rec.get(
                "choice"
            )  # "choice": records of older `ask` runs
            if answer is None and rec.get("predicted") is not None:
                answer = _option_label(rec.get("predicted"), options)
            if answer is None:
                answer = _first_line(rec.get("answer_text") or (s.answer if s else None))
            truth = rec.get("truth_label") or _option_label(rec.get("truth"), options)
            if truth is None and s is not None:
                truth = s.truth
            cost = rec.get("cost_usd", s.cost_usd if s else None)
            rows.append(
                {
                    "id": f"{stem}~{repeat}"
                    if stem and repeat
                    else (stem or f"result:{sid}:{repeat}"),
                    "trace": stem,
                    "sample_id": sid,
                    "repeat": repeat,
                    "task": str(rec.get("task") or (s.task if s else "")),
                    "question": display_question(s.question if s else "")[:400],
                    "answer": None if answer is None else str(answer)[:200],
                    "truth": None if truth is None else str(truth)[:200],
                    "correct": correctness(rec),
                    "status": str(rec.get("status") or (s.status if s else "answered")),
                    "steps": rec.get("n_steps", s.n_steps if s else None),
                    "cost_usd": cost,
                    "tokens": (rec.get("input_tokens") or 0) + (rec.get("output_tokens") or 0),
                    "latency_s": rec.get("latency_s"),
                    "error": rec.get("error"),
                    "model": rec.get("model") or (s.model if s else ""),
                }
            )
        for name, running in state.traces.items():
            if name in used:
                continue
            rows.append(
                {
                    "id": name,
                    "trace": name,
                    "sample_id": running.sample_id,
                    "repeat": 0,
                    "task": running.task,
                    "question": display_question(running.question)[:400],
                    "answer": _first_line(running.answer),
                    "truth": (
                        _option_label(running.truth, running.options)
                        if running.truth and running.truth.isdigit()
                        else running.truth
                    ),
                    "correct": None,
                    "status": running.status,
                    "steps": running.n_steps,
                    "cost_usd": running.cost_usd,
                    "tokens": running.input_tokens + running.output_tokens,
                    "latency_s": None,
                    "error": None,
                    "model": running.model,
                }
            )
        return rows

    def summary(self) -> dict[str, Any]:
        """The run page's payload: manifest essentials, totals, and the sample rows."""
        state = self.refresh()
        rows = self.rows(state)
        manifest = self.manifest()
        scored = [r for r in rows if r["correct"] is not None]
        costs = [r["cost_usd"] for r in rows if isinstance(r["cost_usd"], (int, float))]
        raw = manifest.get("config")
        config: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if isinstance(
            config.get("agent"), dict
        ):  # {"agent": ..., "eval": ...}; older `ask` runs: the agent's
            config = config["agent"]
        return {
            "name": self.name,
            "kind": "trace" if self.single_trace else "run",
            "created_at": manifest.get("created_at"),
            "model": config.get("model") or next((r["model"] for r in rows if r["model"]), ""),
            "preset": config.get("preset", ""),
            "git_revision": manifest.get("git_revision"),
            "n_samples": len(rows),
            "n_running": sum(r["status"] == "running" for r in rows),
            "n_scored": len(scored),
            "n_correct": sum(bool(r["correct"]) for r in scored),
            "cost_usd": round(sum(costs), 6) if costs else None,
            "cost_unknown": sum(r["cost_usd"] is None for r in rows),
            "tasks": sorted({r["task"] for r in rows if r["task"]}),
            "statuses": sorted({r["status"] for r in rows}),
            "broken": [{"file": f"{k}.json", "error": v} for k, v in sorted(state.broken.items())],
            "samples": rows,
        }


class _ResultsOnly:
    """Just enough of a ``RunDir`` for ``RunDir.results`` (which must not create folders)."""

    def __init__(self, path: Path) -> None:
        self.path = path
