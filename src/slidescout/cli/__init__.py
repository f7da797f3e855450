"""The ``slidescout`` command. User errors print one line and exit 2, never a traceback; a failed
command exits non-zero; Ctrl-C exits 130 and SIGTERM 143, both after the same clean finish."""

from __future__ import annotations

import os
import sys

from rich.markup import escape

from slidescout.cli.app import app, err_console
from slidescout.cli.paths import os_error_text
from slidescout.cli.signals import install_signal_handlers, interrupt_code, terminated
from slidescout.errors import SlidescoutError

# Each command module registers its commands on ``app`` (or a group) when imported; the root group
# imports it when its command is first resolved (``cli/commands.py``), not here.


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
        sys.exit(getattr(exc, "exit_code", 2))  # 2: bad input; an error may say 1 (a failure)
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
