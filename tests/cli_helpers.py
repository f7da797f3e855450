"""Run the ``slidescout`` command in this process, through its real entry point (``cli.main``).

Imported by the CLI tests; it holds no tests itself.
"""

from __future__ import annotations

import re
import signal
import sys
from typing import Any

import pytest
import typer.main
import typer.rich_utils

from slidescout.cli import main
from slidescout.cli.app import app, console, err_console


def run_cli(
    capsys: pytest.CaptureFixture[str], *args: object, width: int = 250
) -> tuple[int, str, str]:
    """``slidescout ARGS``: (exit status, stdout, stderr). The consoles (typer's help console too) are ``width`` columns wide
    while it runs; argv, the widths and the SIGTERM handler are put back afterwards."""
    old_argv, old_widths = sys.argv, (console.width, err_console.width)
    old_help_width = typer.rich_utils.MAX_WIDTH  # --help is printed by typer's own console
    sys.argv = ["slidescout", *map(str, args)]
    console.width = err_console.width = typer.rich_utils.MAX_WIDTH = width
    try:
        main()
        rc = 0
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old_argv
        console.width, err_console.width = old_widths
        typer.rich_utils.MAX_WIDTH = old_help_width
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    out, err = capsys.readouterr()
    return rc, out, err


def all_commands() -> dict[str, Any]:
    """Every command of the app by its path ("ask", "eval synth", "trace show"), each loaded (the
    root imports a command's module on first use). typer may vendor its own click, so groups
    are recognised by shape."""
    root: Any = typer.main.get_command(app)
    ctx = type(root).context_class(root)
    out: dict[str, Any] = {}

    def walk(group: Any, prefix: str) -> None:
        for name in group.list_commands(ctx):
            cmd = group.get_command(ctx, name)
            path = f"{prefix} {name}".strip()
            if cmd is not None and hasattr(cmd, "list_commands"):
                out[path] = cmd
                walk(cmd, path)
            elif cmd is not None:
                out[path] = cmd

    walk(root, "")
    return out


def plain_help(text: str | None) -> str:
    """A help text as shown: without the escapes that keep its square brackets from being read
    as Rich markup."""
    return re.sub(r"\\(\[)", r"\1", text or "")
