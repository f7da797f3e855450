"""``slidescout tools list`` / ``tools show``."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from slidescout.cli import app
from slidescout.tools import default_registry, tool


@tool
def greet(name: str, times: int = 1) -> str:
    """Greet someone a number of times.

    Args:
        name: Who to greet.
        times: How many times.
    """
    return " ".join([f"hi {name}"] * times)


class EP:
    def __init__(self, name, value, obj=None, error=None, dist="demo-plugin"):
        self.name, self.value, self.group = name, value, "slidescout.tools"
        self.dist = SimpleNamespace(name=dist, version="0.3.0")
        self._obj, self._error = obj, error

    def load(self):
        if self._error:
            raise self._error
        return self._obj


@pytest.fixture
def plugins(monkeypatch):
    eps = [
        EP("greet", "demo_plugin:greet", greet),
        EP(
            "bad",
            "bad_plugin:x",
            error=ModuleNotFoundError("No module named 'cv3'"),
            dist="bad-plugin",
        ),
    ]
    real = importlib.metadata.entry_points
    monkeypatch.setattr(
        importlib.metadata,
        "entry_points",
        lambda **kw: eps if kw.get("group") == "slidescout.tools" else real(**kw),
    )
    default_registry.cache_clear()
    yield
    default_registry.cache_clear()


runner = CliRunner()


def test_tools_list(plugins, monkeypatch):
    from slidescout.cli.app import console

    monkeypatch.setattr(console, "_width", 200)  # no wrapping inside table cells
    result = runner.invoke(app, ["tools", "list"], terminal_width=200)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "slide_zoom" in out and "builtin" in out
    assert "Show a rectangle of the whole-slide image." in out
    assert "demo-plugin/greet" in out and "demo-plugin 0.3.0" in out
    assert "Greet someone a number of times." in out
    assert "could not be loaded" in out and "bad-plugin" in out and "cv3" in out


def test_tools_list_json(plugins):
    result = runner.invoke(app, ["tools", "list", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    names = [t["name"] for t in data["tools"]]
    assert "pan" in names and "demo-plugin/greet" in names
    assert any("cv3" in e["error"] for e in data["errors"])


def test_tools_show(plugins, monkeypatch):
    from slidescout.cli.app import console

    monkeypatch.setattr(console, "_width", 200)
    result = runner.invoke(app, ["tools", "show", "demo-plugin/greet"], terminal_width=200)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "demo-plugin 0.3.0" in out and "offered to models as demo-plugin__greet" in out
    assert '"times"' in out and '"default": 1' in out and "Who to greet." in out
    result = runner.invoke(app, ["tools", "show", "view_region", "--json"])
    spec = json.loads(result.output)["spec"]
    assert spec["name"] == "view_region" and "mpp" in spec["parameters"]["properties"]


def test_tools_show_unknown_is_one_line_error():
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from slidescout.cli import main; main()",
            "tools",
            "show",
            "slide_zom",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "unknown tool 'slide_zom'" in proc.stderr and "did you mean slide_zoom" in proc.stderr
    assert "Traceback" not in proc.stderr
