"""The code type-checks: mypy, configured in pyproject.toml, reports zero errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(2400)  # a whole-package mypy run takes minutes on a loaded 2-core machine
def test_mypy_reports_no_errors() -> None:
    pytest.importorskip("mypy", reason="mypy is in the [test] extra")
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=2300,
    )
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert r.stdout.strip() == ""


def test_the_package_ships_its_types() -> None:
    assert (ROOT / "src" / "slidescout" / "py.typed").is_file()
