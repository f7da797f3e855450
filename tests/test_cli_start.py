"""The CLI starts light: ``--help``, ``info``, ``render`` and ``thumbnail`` import none of the heavy
libraries (read from ``python -X importtime``), and the table that lets ``--help`` list commands
without importing them stays true to the command modules."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from cli_helpers import all_commands
from slidefactory import make_tiff

from slidescout.cli.app import app
from slidescout.cli.commands import COMMANDS

HEAVY = {"scipy", "networkx", "openai", "anthropic", "torch", "transformers", "ray", "mcp"}
CLI_DIR = Path(importlib.import_module("slidescout.cli").__file__ or "").parent


def imported_modules(*args: str) -> tuple[int, set[str], str]:
    """Run ``slidescout ARGS`` under ``-X importtime``: (exit status, top-level packages, stderr)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "slidescout", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    names = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)", proc.stderr, re.M))
    return proc.returncode, {n.split(".")[0] for n in names}, proc.stderr


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiff(tmp_path_factory.mktemp("start") / "s.tiff", 1200, 900)


def test_importtime_parser_sees_imports() -> None:
    rc, mods, _ = imported_modules("--version")
    assert rc == 0 and {"typer", "rich", "slidescout"} <= mods


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["info", "{slide}"],
        ["render", "{slide}", "--box", "0,0,600,600", "-o", "{out}/r.png"],
        ["thumbnail", "{slide}", "-o", "{out}/t.jpg"],
    ],
    ids=["help", "info", "render", "thumbnail"],
)
def test_light_commands_import_no_heavy_library(
    args: list[str], slide: Path, tmp_path: Path
) -> None:
    rc, mods, err = imported_modules(*(a.format(slide=slide, out=tmp_path) for a in args))
    assert rc == 0, err[-2000:]
    assert mods & HEAVY == set()


def test_import_slidescout_cli_loads_no_command_module() -> None:
    code = (
        "import sys, slidescout.cli; "
        "print(sorted(m for m in sys.modules if m.endswith('_cmd') or m.split('.')[0] in "
        f"{sorted(HEAVY)!r}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def _first_line(text: str | None) -> str:
    return " ".join(inspect.cleandoc(text or "").split("\n\n")[0].split())


def test_command_table_matches_the_command_modules() -> None:
    """Every command module's commands are in the table, under their module, with their help."""
    for path in sorted(CLI_DIR.glob("*_cmd.py")):
        importlib.import_module(f"slidescout.cli.{path.stem}")
    group = typer.main.get_command(app)
    names = list(group.commands)  # type: ignore[attr-defined]
    assert sorted(names) == sorted(COMMANDS)
    for name in names:
        cmd = group.commands[name]  # type: ignore[attr-defined]
        assert _first_line(cmd.help) == COMMANDS[name].summary, name
        callback = cmd.callback
        module = callback.__module__ if callback else None
        if module and module.startswith("slidescout.cli."):
            assert module.rsplit(".", 1)[1] in COMMANDS[name].modules, name
    for sub_path, sub in all_commands().items():  # a group's commands: from its listed modules
        callback = getattr(sub, "callback", None)
        if " " in sub_path and callback is not None and "slidescout.cli." in callback.__module__:
            top = sub_path.split()[0]
            assert callback.__module__.rsplit(".", 1)[1] in COMMANDS[top].modules, sub_path


def test_every_command_module_is_in_the_table() -> None:
    listed = {m for entry in COMMANDS.values() for m in entry.modules}
    assert {p.stem for p in CLI_DIR.glob("*_cmd.py")} == listed


def test_root_help_lists_every_command_and_suggests_unloaded_names(capsys) -> None:
    from cli_helpers import run_cli

    rc, out, _ = run_cli(capsys, "--help")
    assert rc == 0
    for name, entry in COMMANDS.items():
        assert re.search(rf"^\W*{re.escape(name)}\s+{re.escape(entry.summary[:30])}", out, re.M)
    rc, _, err = run_cli(capsys, "thumbnial")
    assert rc == 2 and "Did you mean 'thumbnail'" in err
