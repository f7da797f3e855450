"""Terminal view of a trace: one block per step."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from slidescout.traces.rundir import load_trace
from slidescout.traces.schema import (
    AnswerEvent,
    ErrorEvent,
    ImageEvent,
    ModelCallEvent,
    NoteEvent,
    ToolEvent,
)


def resolve_trace_paths(path: Path) -> list[Path]:
    """A trace file, or every trace of a run directory."""
    path = Path(path)
    if path.is_dir():
        tdir = path / "traces" if (path / "traces").is_dir() else path
        return sorted(tdir.glob("*.json"))
    return [path]


def _short(text: str, n: int, full: bool) -> str:
    text = (text or "").strip()
    return text if full or len(text) <= n else text[: n - 1] + "…"


def _fmt_box(box) -> str:
    return f"({box[0]},{box[1]}) {box[2]}x{box[3]}" if box else "-"


def render_trace(path: Path, console: Console, *, full: bool = False) -> None:
    tr = load_trace(path)
    cost = tr.usage.cost_usd
    console.rule(f"[bold]{tr.sample_id}[/] · {tr.model} · {tr.preset} · status [bold]{tr.status}[/]")
    console.print(f"[bold]Q:[/] {_short(tr.question, 600, full)}", highlight=False)
    if tr.slide.width:
        mpp = f", {tr.slide.mpp:.3f} µm/px ({tr.slide.mpp_source})" if tr.slide.mpp else ""
        console.print(f"[dim]slide {tr.slide.slide_id}: {tr.slide.width} x {tr.slide.height} px{mpp}[/]", highlight=False)
    table = Table(show_lines=True, expand=True)
    for col, kw in (("step", {"width": 4}), ("thought / call", {"ratio": 3}), ("viewed", {"ratio": 2}),
                    ("tokens", {"width": 11}), ("cost", {"width": 9}), ("s", {"width": 6})):
        table.add_column(col, **kw)
    for ev in tr.events:
        if isinstance(ev, ModelCallEvent):
            lines = []
            for r in ev.output.reasoning:
                if r.text:
                    lines.append(f"[magenta]reasoning:[/] {_short(r.text, 300, full)}")
            if ev.output.text:
                lines.append(_short(ev.output.text, 500, full))
            if ev.rethink:
                rt = ev.rethink
                conf = f" ({rt.confidence:.0%})" if rt.confidence is not None else ""
                lines.append(f"[cyan]hypothesis:[/] {rt.hypothesis}{conf}; differential: {', '.join(rt.differential)}")
            for c in ev.output.tool_calls:
                lines.append(f"[yellow]→ {c.name}[/]({', '.join(f'{k}={v}' for k, v in c.arguments.items())})")
            if ev.retries:
                lines.append(f"[red]{len(ev.retries)} retries[/]: {', '.join(r.reason for r in ev.retries)}")
            c = "?" if ev.usage.cost_usd is None else f"${ev.usage.cost_usd:.4f}"
            table.add_row(str((ev.step or 0) + 1), "\n".join(lines) or "-", f"{ev.images_in_context} img in context",
                          f"{ev.usage.input_tokens}/{ev.usage.output_tokens}", c, f"{ev.latency_s:.2f}")
        elif isinstance(ev, ToolEvent):
            views = "\n".join(f"{_fmt_box(i.box)}" + (f" @ {i.mpp:.2f} µm/px" if i.mpp else "") + (f" [{i.label}]" if i.label else "")
                              for i in ev.images)
            txt = f"[red]error:[/] {ev.error}" if ev.error else _short(ev.text, 300, full)
            table.add_row("", f"[green]{ev.call.name}[/] {txt}", views or "-", "", "", f"{ev.duration_s:.2f}")
        elif isinstance(ev, ImageEvent):
            table.add_row("", f"[dim]{ev.purpose}[/]", _fmt_box(ev.image.box), "", "", "")
        elif isinstance(ev, ErrorEvent):
            table.add_row("", f"[red]{'fatal ' if ev.fatal else ''}error:[/] {_short(ev.message, 400, full)}", "", "", "", "")
        elif isinstance(ev, NoteEvent):
            table.add_row("", f"[dim]{_short(ev.message, 300, full)}[/]", "", "", "", "")
        elif isinstance(ev, AnswerEvent):
            sup = f" (supporting steps {', '.join(map(str, ev.supporting_steps))})" if ev.supporting_steps else ""
            table.add_row("", f"[bold green]answer{' (forced)' if ev.forced else ''}:[/] {_short(ev.text, 800, full)}{sup}",
                          "", "", "", "")
    console.print(table)
    console.print(f"[dim]{tr.n_steps} model calls · {len(tr.images())} images · "
                  f"{tr.usage.input_tokens} in / {tr.usage.output_tokens} out tokens · "
                  f"cost {'unknown' if cost is None else f'${cost:.4f}'}[/]", highlight=False)
