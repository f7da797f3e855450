"""benchmarks/bench_slides.py stays alive: its smoke mode runs and prints its tables, and its box
sampler works on slides of any size (it crashed on slides under 50k px)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_slides.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_slides", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_slides", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("size", [(4000, 3000), (900, 700), (60_000, 1_200), (100_000, 80_000)])
def test_random_boxes_fit_any_slide(size):
    width, height = size
    boxes = _bench().random_boxes(200, 0, width, height)
    assert len(boxes) == 200
    for x, y, w, h in boxes:
        assert 0 <= x and 0 <= y and w >= 1 and h >= 1 and x + w <= width and y + h <= height
        assert max(w, h) <= max(1000, min(width, height, 50_000))


def test_smoke_run_prints_its_tables(tmp_path):
    env = {**os.environ, "SLIDESCOUT_BENCH_DIR": str(tmp_path)}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    for needle in (
        "views: 4 random boxes",
        "ours / floor, per box (median)",
        "decode floor (tiles only, 1 thr)",
        "thumbnail 1024 px",
        "224 px patches/s",
        "load avg after",
    ):
        assert needle in r.stdout, needle
