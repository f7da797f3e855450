"""Small datasets for the evaluation tests: generated TIFFs and a CSV in MultiPathQA's columns.

Imported by the runner, Ray and CLI tests; it holds no tests itself.
"""

from __future__ import annotations

import asyncio
import csv
import json
import threading
from pathlib import Path
from typing import Any

from slidefactory import make_tiff

from slidescout.testing.fake_openai import FakeOpenAI


class _GatedServer(FakeOpenAI):
    """The fake OpenAI server (auto planner) answering ``after`` requests, then holding each
    further one (without blocking the server) until ``release`` is set."""

    def __init__(self, after: int, **kw: Any) -> None:
        super().__init__(**kw)
        self.after = after
        self.release = threading.Event()
        self._seen = 0
        self._count = threading.Lock()

    async def handle(self, request: Any) -> Any:
        with self._count:
            self._seen += 1
            held = self._seen > self.after
        if held:
            await asyncio.to_thread(self.release.wait, 600)
        return await super().handle(request)


def gated_server(after_calls: int, **kw: Any) -> tuple[FakeOpenAI, threading.Event]:
    """A fake OpenAI server that answers ``after_calls`` requests, then holds the others until the
    returned event is set: a run is caught mid-way by an event, not by a race with the clock.
    Set the event in a ``finally`` (a held request also gives up after 10 minutes). With ``c``
    samples at once of ``t`` calls each, ``c * (t - 1) + m`` calls finish at least ``m`` samples."""
    srv = _GatedServer(after_calls, **kw)
    return srv, srv.release


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
TCGA_OPTIONS = [
    "Lung adenocarcinoma",
    "Hepatocellular carcinoma",
    "Clear cell renal cell carcinoma",
]
GTEX_OPTIONS = ["Lung", "Liver", "Kidney"]
TCGA_PROMPT = (
    "What is the primary diagnosis?\n\nSelect from the following options:\n{options}\n"
    "Please choose the number of the correct option and respond in the following JSON format:\n"
    '```json\n{{"answer": YOUR_ANSWER}}\n```'
)
GTEX_PROMPT = (
    "Which organ is this tissue from?\n\nSelect from the following options:\n{options}\n"
    'Respond in the following JSON format:\n```json\n{{"answer": YOUR_ANSWER}}\n```'
)


def make_mpqa(
    root: Path,
    n_tcga: int = 4,
    n_gtex: int = 2,
    *,
    bad: int = 0,
    missing: int = 1,
    size: tuple[int, int] = (1024, 768),
) -> tuple[Path, Path]:
    """``(csv_path, slides_dir)``: ``n_tcga`` + ``n_gtex`` questions on two small TIFFs; the first
    ``bad`` tcga questions point at a corrupt slide; ``missing`` extra questions name absent slides.

    Answers cycle through the options, so the fake model's ``{"answer": 1}`` is right for some.
    """
    slides = root / "slides"
    slides.mkdir(parents=True, exist_ok=True)
    make_tiff(slides / "good-a.tiff", *size, mpp=0.5, pattern="tissue")
    make_tiff(slides / "good-b.tiff", *size, mpp=0.5, pattern="gradient")
    (slides / "corrupt.tiff").write_bytes(b"II*\x00 this is not a slide" * 20)
    rows: list[dict[str, Any]] = []
    for i in range(n_tcga):
        name = "corrupt.tiff" if i < bad else ("good-a.tiff" if i % 2 == 0 else "good-b.tiff")
        rows.append(
            _row(
                "tcga",
                f"TCGA-{i:02d}",
                name,
                str(i % 3 + 1),
                TCGA_OPTIONS,
                "balanced_accuracy",
                TCGA_PROMPT,
            )
        )
    for i in range(n_gtex):
        rows.append(
            _row(
                "gtex",
                f"GTEX-{i:02d}",
                "good-b.tiff",
                GTEX_OPTIONS[i % 3],
                GTEX_OPTIONS,
                "balanced_accuracy",
                GTEX_PROMPT,
            )
        )
    for i in range(missing):
        rows.append(
            _row(
                "tcga",
                f"TCGA-M{i}",
                f"absent-{i}.svs",
                "1",
                TCGA_OPTIONS,
                "balanced_accuracy",
                TCGA_PROMPT,
            )
        )
    csv_path = root / "MultiPathQA.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return csv_path, slides


def _row(
    task: str, bid: str, image: str, answer: str, options: list[str], metric: str, prompt: str
) -> dict[str, Any]:
    return {
        "benchmark_name": task,
        "benchmark_id": bid,
        "image_path": image,
        "answer": answer,
        "options": repr(options),
        "image_exists": "True",
        "patch_exists": "True",
        "is_valid": "True",
        "metric_type": metric,
        "file_id": bid,
        "prompt": prompt,
    }


def read_results(run: Path) -> list[dict[str, Any]]:
    """Every line of ``results.jsonl`` (duplicates included, torn lines skipped)."""
    out = []
    p = run / "results.jsonl"
    if not p.exists():
        return out
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def finished_keys(lines: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """(sample_id, repeat) of every finished line, duplicates kept (a test asserts there are none)."""
    from slidescout.eval.sample_run import is_finished

    return [(str(r["sample_id"]), int(r.get("repeat", 0))) for r in lines if is_finished(r)]
