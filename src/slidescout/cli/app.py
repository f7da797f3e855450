"""The typer application and its command groups. Command modules register on these.

The root group loads a command's module only when that command is resolved (``cli/commands.py``
maps names to modules), so ``slidescout --help`` and ``slidescout info`` do not import the agents,
the evaluation runner or the experts. Help texts are shown as written: square brackets in them
(``pip install 'slidescout[dense]'``, ``[openai."MODEL"]``) are text, not Rich markup.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

import typer
import typer.main
from rich.console import Console
from rich.markup import escape
from typer._click.exceptions import UsageError  # typer's own click
from typer.core import TyperCommand, TyperGroup

from slidescout import __version__
from slidescout.cli.commands import COMMANDS


def _escape_help(cmd: Any) -> None:
    """Escape Rich markup in the help of ``cmd``, its parameters and its subcommands (once)."""
    if getattr(cmd, "_slidescout_escaped", False):
        return
    cmd._slidescout_escaped = True
    for attr in ("help", "short_help", "epilog"):
        if getattr(cmd, attr, None):
            setattr(cmd, attr, escape(getattr(cmd, attr)))
    for param in getattr(cmd, "params", []):
        if getattr(param, "help", None):
            param.help = escape(param.help)
    for sub in getattr(cmd, "commands", {}).values():
        _escape_help(sub)


class LazyGroup(TyperGroup):
    """The root group: imports a command's module on first use; lists commands from the table."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self._resolved: set[str] = set()
        self._listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return list(dict.fromkeys([*COMMANDS, *self.commands]))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        entry = COMMANDS.get(cmd_name)
        if entry is not None and cmd_name not in self._resolved:
            if self._listing:  # the root's help needs the one-line summary only
                return TyperCommand(name=cmd_name, short_help=escape(entry.summary))
            for module in entry.modules:
                importlib.import_module(f"slidescout.cli.{module}")
            built = typer.main.get_command(app)
            assert isinstance(built, TyperGroup)
            if cmd_name in built.commands:
                self.commands[cmd_name] = built.commands[cmd_name]
            self._resolved.add(cmd_name)
        cmd = self.commands.get(cmd_name)
        if cmd is not None:
            _escape_help(cmd)
        return cmd

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except UsageError as exc:  # suggest names not loaded yet too
            if args and "Did you mean" not in exc.message:
                close = difflib.get_close_matches(args[0], self.list_commands(ctx))
                if close:
                    names = ", ".join(repr(n) for n in close)
                    exc.message = f"{exc.message.rstrip('.')}. Did you mean {names}?"
            raise

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    cls=LazyGroup,
    name="slidescout",
    help="An agent that reads gigapixel pathology slides the way a pathologist does.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
trace_app = typer.Typer(help="Inspect traces.", no_args_is_help=True)
tools_app = typer.Typer(help="List and inspect tools (built-in and plugins).", no_args_is_help=True)
experts_app = typer.Typer(
    help="Register and list expert models (checkpoints with a model card).", no_args_is_help=True
)
kb_app = typer.Typer(
    help="Manage the knowledge base used by the lookup tool.", no_args_is_help=True
)


def _print_version(value: bool) -> None:
    if value:
        Console().print(f"slidescout {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        "-V",
        callback=_print_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """An agent that reads gigapixel pathology slides the way a pathologist does."""


app.add_typer(trace_app, name="trace")
app.add_typer(tools_app, name="tools")
app.add_typer(experts_app, name="experts")
app.add_typer(kb_app, name="kb")

# One-line messages are not broken (paths stay whole and greppable; a terminal wraps them itself).
# Tables and panels are printed with soft_wrap=False so that they wrap their cells instead of
# cropping them: see slidescout.eval.textfit.print_table and the ask panel. emoji=False: a model id
# such as ``openai:x:`` prints as text, never as an emoji.
console = Console(soft_wrap=True, emoji=False)
err_console = Console(stderr=True, soft_wrap=True, emoji=False)
