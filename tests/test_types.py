"""The code type-checks: mypy (``check_untyped_defs``) and pyright (basic), both configured in
pyproject.toml, report zero errors over ``src/slidescout``.

Both checkers are in the ``[test]`` extra (pyright with ``[nodejs]``: its wheel bundles pyright's
JavaScript and the extra brings a Node binary, so nothing is downloaded when the test runs). On CI
(``CI`` set) a missing checker fails the test; elsewhere it is skipped with the reason.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is not None:
        return
    reason = f"{module} is not installed; it is in the [test] extra: pip install -e '.[test]'"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.mark.timeout(2400)  # a whole-package mypy run takes minutes on a loaded 2-core machine
def test_mypy_reports_no_errors() -> None:
    _require("mypy")
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=2300,
    )
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert r.stdout.strip() == ""


def test_mypy_checks_untyped_functions_too() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert "check_untyped_defs = true" in text


def test_pyright_basic_reports_no_errors() -> None:
    _require("pyright")
    env = {
        **os.environ,
        "PYRIGHT_PYTHON_IGNORE_WARNINGS": "1",  # no look-up of the newest version
        "PYRIGHT_PYTHON_FORCE_VERSION": "",  # the bundled pyright, never a download
    }
    r = subprocess.run(
        [sys.executable, "-m", "pyright", "--outputjson", "--pythonpath", sys.executable],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    try:
        report = json.loads(r.stdout)
    except ValueError:
        pytest.fail(f"pyright did not run: {r.stdout[-2000:]} {r.stderr[-2000:]}")
    errors = [d for d in report["generalDiagnostics"] if d["severity"] == "error"]
    shown = [f"{d['file']}:{d['range']['start']['line'] + 1}: {d['message']}" for d in errors]
    assert errors == [] and report["summary"]["errorCount"] == 0, "\n".join(shown[:40])
    assert report["summary"]["filesAnalyzed"] > 100


def test_the_package_ships_its_types() -> None:
    assert (ROOT / "src" / "slidescout" / "py.typed").is_file()
