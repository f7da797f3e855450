"""``slidescout tools list`` and ``slidescout tools show NAME``.

(The ``experts`` command group is registered elsewhere.)
"""

from __future__ import annotations

import json
import textwrap

import typer
from rich.markup import escape
from rich.table import Table

from slidescout.cli.app import app, console, tools_app  # noqa: F401
from slidescout.eval.textfit import print_table
from slidescout.tools.registry import default_registry


@tools_app.command("list")
def tools_list(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List every tool: built-ins and plugins, with broken plugins and their errors below."""
    registry = default_registry()
    tools = list(registry)
    errors = registry.errors
    if as_json:
        payload = {
            "tools": [
                {
                    "name": t.name,
                    "wire_name": t.wire_name,
                    "source": t.source,
                    "description": t.summary,
                }
                for t in tools
            ],
            "errors": [{"name": e.name, "kind": e.kind, "error": e.error} for e in errors],
        }
        console.print_json(json.dumps(payload))
        return
    if console.is_terminal:
        table = Table(title="slidescout tools", show_lines=False)
        table.add_column("name", style="bold cyan", no_wrap=True)
        table.add_column("source", style="green", no_wrap=True)
        table.add_column("description")
        for t in tools:
            table.add_row(escape(t.name), escape(t.source), escape(t.summary))
        print_table(console, table)
    else:  # piped: one line per tool (greppable), its description wrapped and indented below
        for t in tools:
            console.print(f"{t.name}  ({t.source})", highlight=False, markup=False, soft_wrap=True)
            for line in textwrap.wrap(t.summary, max(40, console.width - 4)):
                console.print(f"    {line}", highlight=False, markup=False, soft_wrap=True)
    missing = [e for e in errors if e.kind == "builtin" and e.error == "module not present"]
    broken = [e for e in errors if e not in missing]
    if broken:
        console.print(
            f"[bold red]{len(broken)} tool module(s) or plugin(s) could not be loaded:[/]"
        )
        for e in broken:
            console.print(f"  [red]{escape(e.name)}[/]: {escape(e.error)}", soft_wrap=True)
    if missing:
        console.print(
            "[dim]built-in tool modules not installed: "
            f"{escape(', '.join(e.name for e in missing))}[/]"
        )


@tools_app.command("show")
def tools_show(
    name: str = typer.Argument(..., help="Tool name, e.g. slide_zoom or package/name."),
    as_json: bool = typer.Option(False, "--json", help="Print the tool spec as JSON."),
) -> None:
    """Show one tool: description, source and the JSON schema of its arguments."""
    t = default_registry().get(name)  # ConfigError (one line, exit 2) for an unknown name
    if as_json:
        console.print_json(
            json.dumps({"name": t.name, "source": t.source, "spec": t.spec.model_dump()})
        )
        return
    console.print(f"[bold cyan]{escape(t.name)}[/]  [green]{escape(t.source)}[/]")
    if t.wire_name != t.name:
        console.print(f"[dim]offered to models as {escape(t.wire_name)}[/]")
    console.print(f"[dim]call:[/] {escape(t.signature)}")
    console.print()
    console.print(escape(t.description))
    console.print()
    console.print("[bold]parameters (JSON schema):[/]")
    console.print_json(json.dumps(t.parameters, ensure_ascii=False))
