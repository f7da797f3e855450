"""``benchmarks/bench_experts.py --smoke`` runs every path (classify, segment, zero-shot, add)
end to end on a small generated slide; it checks the script works, never its speed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_bench_experts_smoke(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "SLIDESCOUT_BENCH_CACHE": str(tmp_path / "cache"),
        "SLIDESCOUT_HOME": str(tmp_path / "home"),
    }
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_experts.py"), "--smoke"],
        capture_output=True,
        text=True,
        env=env,
        timeout=840,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "smoke: every path ran" in proc.stdout
