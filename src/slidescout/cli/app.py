"""The typer application and its command groups. Command modules register on these."""

from __future__ import annotations

import typer
from rich.console import Console

from slidescout import __version__

app = typer.Typer(
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
