"""Run the ``slidescout`` command in this process, through its real entry point (``cli.main``).

Imported by the CLI tests; it holds no tests itself.
"""

from __future__ import annotations

import signal
import sys

import pytest

from slidescout.cli import main
from slidescout.cli.app import console, err_console


def run_cli(
    capsys: pytest.CaptureFixture[str], *args: object, width: int = 250
) -> tuple[int, str, str]:
    """``slidescout ARGS``: (exit status, stdout, stderr). The consoles are ``width`` columns wide
    while it runs; argv, the widths and the SIGTERM handler are put back afterwards."""
    old_argv, old_widths = sys.argv, (console.width, err_console.width)
    sys.argv = ["slidescout", *map(str, args)]
    console.width = err_console.width = width
    try:
        main()
        rc = 0
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old_argv
        console.width, err_console.width = old_widths
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    out, err = capsys.readouterr()
    return rc, out, err
