"""The ``slidescout`` command. User errors print one line and exit 2, never a traceback; a failed
command exits non-zero; Ctrl-C exits 130 and SIGTERM 143, both after the same clean finish."""

from __future__ import annotations

import importlib
import os
import sys

from rich.markup import escape

from slidescout.cli.app import app, err_console
from slidescout.cli.paths import os_error_text
from slidescout.cli.signals import install_signal_handlers, interrupt_code, terminated
from slidescout.errors import SlidescoutError

# Each module registers its commands on ``app`` (or a group) when imported.
_COMMAND_MODULES = [
    "slides_cmd",  # info, render, thumbnail
    "synth_cmd",  # synth
    "agent_cmd",  # ask, demo, trace show
    "tools_cmd",  # tools list/show, experts add/list
    "knowledge_cmd",  # kb add, lookup
    "eval_cmd",  # eval, report, compare
    "data_cmd",  # data fetch/status/manifest
    "view_cmd",  # view
    "mcp_cmd",  # mcp
    "experts_cmd",  # experts add/list/show/remove/run
]

for _name in _COMMAND_MODULES:
    importlib.import_module(f"slidescout.cli.{_name}")


def main() -> None:
    """Entry point: run the app, turning user errors into one line on stderr and results into
    the exit status."""
    install_signal_handlers()
    try:
        rc = app(standalone_mode=False)
    except SlidescoutError as exc:
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("terminated" if terminated() else "interrupted")
        sys.exit(interrupt_code())
    except SystemExit:
        raise
    except BrokenPipeError:  # output piped into `head`: stop quietly, as other tools do
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (Python flushes stdout at exit)
        except OSError:
            pass
        sys.exit(141)
    except OSError as exc:  # a path that cannot be written, a full disk: one line, no traceback
        err_console.print(
            f"[bold red]error:[/] {escape(os_error_text(exc))}", highlight=False, soft_wrap=True
        )
        sys.exit(1)
    except Exception as exc:  # usage errors (typer may vendor its own click: match by shape)
        names = {c.__name__ for c in type(exc).__mro__}
        show = getattr(exc, "show", None)
        if "ClickException" in names and callable(show):
            show()
            sys.exit(getattr(exc, "exit_code", 2))
        if "Abort" in names:
            err_console.print("aborted")
            sys.exit(1)
        raise
    if isinstance(rc, int) and rc != 0:  # typer.Exit(n) with standalone_mode=False returns n
        sys.exit(rc)


__all__ = ["app", "main"]
