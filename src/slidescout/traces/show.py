"""Terminal view of a trace: one block per step."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from slidescout.core.trace import (
    AnswerEvent,
    ErrorEvent,
    Event,
    ImageEvent,
    ModelCallEvent,
    NoteEvent,
    ToolEvent,
)
from slidescout.traces.rundir import load_trace


def resolve_trace_paths(path: Path) -> list[Path]:
    """A trace file, or every trace of a run directory."""
    path = Path(path)
    if path.is_dir():
        tdir = path / "traces" if (path / "traces").is_dir() else path
        return sorted(tdir.glob("*.json"))
    return [path]


def _short(text: str, n: int, full: bool) -> str:
    """Shortened and escaped for rich markup (model text may hold [brackets])."""
    text = (text or "").strip()
    return escape(text if full or len(text) <= n else text[: n - 1] + "…")


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _fmt_box(box) -> str:
    return f"({box[0]},{box[1]}) {box[2]}x{box[3]}" if box else "-"


def render_trace(path: Path, console: Console, *, full: bool = False) -> None:
    tr = load_trace(path)
    cost = tr.usage.cost_usd
    console.rule(
        f"[bold]{escape(tr.sample_id)}[/] · {escape(tr.model)} · {escape(tr.preset)} · status [bold]{tr.status}[/]"
    )
    console.print(f"[bold]Q:[/] {_short(tr.question, 600, full)}", highlight=False)
    if tr.slide.width:
        mpp = f", {tr.slide.mpp:.3f} µm/px ({tr.slide.mpp_source})" if tr.slide.mpp else ""
        console.print(
            f"[dim]slide {tr.slide.slide_id}: {tr.slide.width} x {tr.slide.height} px{mpp}[/]",
            highlight=False,
        )
    for ev in tr.events:
        _print_event(ev, console, full)
    console.print(
        f"\n[dim]{tr.n_steps} model calls · {len(tr.images())} images · "
        f"{tr.usage.input_tokens} in / {tr.usage.output_tokens} out tokens · "
        f"cost {'unknown' if cost is None else f'${cost:.4f}'}[/]",
        highlight=False,
    )


def _print_model_call(ev: ModelCallEvent, console: Console, full: bool) -> None:
    """A step's header, reasoning, text, hypothesis, tool calls and retries."""
    c = "cost ?" if ev.usage.cost_usd is None else f"${ev.usage.cost_usd:.4f}"
    console.print(
        f"\n[bold]Step {(ev.step or 0) + 1}[/] [dim]· {ev.usage.input_tokens} in / "
        f"{ev.usage.output_tokens} out tokens · {c} · {ev.latency_s:.2f} s · "
        f"{ev.images_in_context} images in context"
        f"{' · final step' if ev.forced_final else ''}[/]",
        highlight=False,
    )
    for r in ev.output.reasoning:
        if r.text:
            console.print(f"  [magenta]reasoning:[/] {_short(r.text, 300, full)}", highlight=False)
    if ev.output.text:
        console.print(_indent(_short(ev.output.text, 600, full)), highlight=False)
    if ev.rethink:
        rt = ev.rethink
        conf = f" ({rt.confidence:.0%})" if rt.confidence is not None else ""
        console.print(
            f"  [cyan]hypothesis:[/] {escape(str(rt.hypothesis))}{conf}; differential: "
            f"{escape(', '.join(rt.differential) or '-')}; needs: {escape(str(rt.needed_evidence or '-'))}",
            highlight=False,
        )
    for call in ev.output.tool_calls:
        args = ", ".join(f"{k}={v}" for k, v in call.arguments.items())
        console.print(f"  [yellow]→ {escape(f'{call.name}({args})')}[/]", highlight=False)
    if ev.retries:
        console.print(
            f"  [red]{len(ev.retries)} retries:[/] {', '.join(r.reason for r in ev.retries)}"
        )


def _print_tool(ev: ToolEvent, console: Console, full: bool) -> None:
    """A tool's outcome and the images it viewed."""
    if ev.error:
        console.print(
            f"  [red]✗ {escape(ev.call.name)}: {_short(ev.error, 300, full)}[/]",
            highlight=False,
        )
    else:
        console.print(
            f"  [green]✓ {escape(ev.call.name)}[/] [dim]({ev.duration_s:.2f} s)[/] {_short(ev.text, 240, full)}",
            highlight=False,
        )
    for i in ev.images:
        mpp = f" at {i.mpp:.2f} µm/px" if i.mpp else ""
        console.print(
            f"    [dim]viewed {_fmt_box(i.box)}{mpp}{escape(f' [{i.label}]') if i.label else ''} "
            f"→ {i.width}x{i.height} px, blob {i.sha256[:12]}[/]",
            highlight=False,
        )


def _print_event(ev: Event, console: Console, full: bool) -> None:
    """One event: model calls and tools have their own printers; the rest is one line."""
    if isinstance(ev, ModelCallEvent):
        _print_model_call(ev, console, full)
    elif isinstance(ev, ToolEvent):
        _print_tool(ev, console, full)
    elif isinstance(ev, ImageEvent):
        console.print(
            f"[dim]{ev.purpose}: {_fmt_box(ev.image.box)} → {ev.image.width}x{ev.image.height} px[/]",
            highlight=False,
        )
    elif isinstance(ev, ErrorEvent):
        console.print(
            f"  [red]{'fatal ' if ev.fatal else ''}error:[/] {_short(ev.message, 400, full)}",
            highlight=False,
        )
    elif isinstance(ev, NoteEvent):
        console.print(f"  [dim]{_short(ev.message, 300, full)}[/]", highlight=False)
    elif isinstance(ev, AnswerEvent):
        sup = (
            f" (supporting steps {', '.join(map(str, ev.supporting_steps))})"
            if ev.supporting_steps
            else ""
        )
        console.print(
            f"\n[bold green]Answer{' (forced)' if ev.forced else ''}{sup}:[/]", highlight=False
        )
        console.print(_indent(_short(ev.text, 1200, full)), highlight=False)
