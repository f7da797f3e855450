"""``slidescout ask``, ``slidescout demo`` and ``slidescout trace show``."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import typer

from slidescout.cli.app import app, console, err_console, trace_app
from slidescout.cli.model_opts import MODEL_OPTIONS, model_options, warn_unused_tools
from slidescout.cli.paths import ensure_dir
from slidescout.errors import ConfigError
from slidescout.traces.runlock import RunLock

_STATUS_TEXT = {
    "max_steps": "the step budget ran out before the model answered (raise --max-steps)",
    "budget_usd": "the dollar budget was spent", "budget_tokens": "the token budget was spent",
    "budget_time": "the time limit was reached", "cancelled": "the run was interrupted",
    "error": "the run failed",
}


def failure_reason(res: Any) -> str | None:
    """Why a run did not answer, in one line: the last error (never a traceback), else the budget
    note, else what the status means. None when it answered."""
    if res.ok:
        return None
    events = list(reversed(res.trace.events))
    errors = [e for e in events if e.kind == "error"]
    chosen = next((e for e in errors if getattr(e, "fatal", False)), errors[0] if errors else None)
    text = chosen.message if chosen is not None else None
    if text is None and res.status.startswith("budget"):
        text = next((e.message for e in events if e.kind == "note" and not e.message.startswith("Traceback")), None)
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip() and not ln.startswith("Traceback")]
    if lines and lines[0] != res.status:
        return lines[0]
    return _STATUS_TEXT.get(res.status, res.status)


def check_question(question: str, options: list[str]) -> None:
    """An empty question, or a single answer option, is a mistake: say so before any work."""
    if not question.strip():
        raise ConfigError("the question is empty; give the question to answer")
    if len(options) == 1:
        raise ConfigError(f"one --option ({options[0]!r}) leaves nothing to choose; give two or more, or none "
                          "for a free-text answer")
    if any(not o.strip() for o in options):
        raise ConfigError("an --option is empty")
    if len({o.strip().lower() for o in options}) != len(options):
        raise ConfigError("the --option values repeat; give each answer once")


def _print_result(res: Any, as_json: bool, truth: str | None = None) -> None:
    if as_json:
        out = {"answer": res.answer, "choice": res.choice, "status": res.status, "rationale": res.rationale,
               "error": failure_reason(res), "steps": res.trace.n_steps, "cost_usd": res.trace.usage.cost_usd,
               "trace": str(res.trace_path), "run_dir": str(res.run_dir)}
        if truth is not None:
            out["truth"] = truth
        sys.stdout.write(json.dumps(out) + "\n")
        return
    from rich.markup import escape
    from rich.panel import Panel

    body = []
    if res.choice:
        body.append(f"[bold]Answer:[/] {escape(res.choice)}")
    if res.answer:
        body.append(f"[bold]Reply:[/] {escape(res.answer.strip()[:1500])}")
    if truth is not None:
        body.append(f"[bold]Ground truth:[/] {escape(truth)}")
    cost = res.trace.usage.cost_usd
    body.append(f"[dim]status {res.status} · {res.trace.n_steps} steps · "
                f"{res.trace.usage.input_tokens + res.trace.usage.output_tokens} tokens · "
                f"cost {'unknown' if cost is None else f'${cost:.4f}'}[/]")
    body.append(f"[dim]trace: {escape(str(res.trace_path))}[/]")
    console.print(Panel("\n".join(body), title="slidescout", expand=False), highlight=False)


@app.command()
def ask(
    slide: Path = typer.Argument(..., help="A whole-slide image (SVS, NDPI, MRXS, TIFF...) or a PNG/JPEG."),
    question: str = typer.Argument(..., help="The question to answer."),
    option: list[str] | None = typer.Option(None, "--option", help="An answer option (repeat for each)."),
    model: str | None = typer.Option(None, "--model", "-m", help="provider:model, e.g. openai:gpt-5, anthropic:claude-sonnet-4-5, expert, replay:TRACE. Default: by available key, else expert."),
    base_url: str | None = typer.Option(None, "--base-url", help="An OpenAI- or Anthropic-compatible server (vLLM, Ollama, llama.cpp)."),
    api: str = typer.Option("auto", "--api", help="OpenAI API: auto, responses or chat."),
    preset: str = typer.Option("giant", "--preset", "-p", help="giant, vitar, thumbnail or patch."),
    tools: str | None = typer.Option(None, "--tools", help="Change the preset's tools: '+lookup,-pan' or a full list 'slide_zoom,measure'."),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, max=200, help="Step budget (the last step is reserved for the answer)."),
    max_side: int | None = typer.Option(None, "--max-side", min=64, max=4096, help="Long side of every image (default 1000, 500 for Claude)."),
    keep_images: int | None = typer.Option(None, "--keep-images", min=0, help="Images kept in the context besides the overview (default: the preset's)."),
    budget_usd: float | None = typer.Option(None, "--budget-usd", min=0.0, help="Stop when this many dollars are spent."),
    seed: int | None = typer.Option(None, "--seed"),
    out: Path | None = typer.Option(None, "-o", "--out", help="Run directory (default under runs/)."),
    as_json: bool = typer.Option(False, "--json", help="Print the answer and the run directory as one JSON object."),
    sample_timeout: float | None = typer.Option(None, "--sample-timeout", min=1.0, help="Wall-time limit of the whole run, seconds."),
    timeout: float | None = MODEL_OPTIONS[0][2],
    retries: int | None = MODEL_OPTIONS[1][2],
    price_in: float | None = MODEL_OPTIONS[2][2],
    price_out: float | None = MODEL_OPTIONS[3][2],
    pricing: Path | None = MODEL_OPTIONS[4][2],
) -> None:
    """Ask a question about a slide; prints the answer, a rationale and where the trace went."""
    from slidescout.agents.api import run

    check_question(question, option or [])
    warn_unused_tools(model, tools)
    opts = model_options(model, base_url=base_url, api=api, timeout=timeout, retries=retries, price_in=price_in,
                         price_out=price_out, pricing=pricing, budget_usd=budget_usd)
    if out is not None:
        ensure_dir(out, "run directory")
    with RunLock(out) if out is not None else contextlib.nullcontext():  # one writer per run directory
        res = run(slide, question, option or [], model=model, preset=preset, out=out, base_url=base_url, api=api,
                  tools=tools, max_steps=max_steps, max_side=max_side, budget_usd=budget_usd, seed=seed,
                  keep_images=-1 if keep_images is None else keep_images, sample_seconds=sample_timeout,
                  model_options=opts)
    _print_result(res, as_json)
    if not res.ok:
        err_console.print(f"error: no answer ({res.status}): {failure_reason(res)}", highlight=False, markup=False)
        raise typer.Exit(1)


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), "-o", "--out", help="Where the synthetic slide and the run go."),
    seed: int = typer.Option(7, "--seed"),
    model: str = typer.Option("expert", "--model", "-m"),
    preset: str = typer.Option("vitar", "--preset", "-p"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Offline demo: generate a synthetic slide and question, run the expert planner, show answer and truth."""
    from slidescout.agents.api import run
    from slidescout.agents.presets import get_preset
    from slidescout.agents.sample import sample_for_question
    from slidescout.slides.synth import demo_sample, load_truth
    from slidescout.traces.schema import GroundTruth

    get_preset(preset)  # a bad model or preset fails now, not after the slide is generated
    opts = model_options(model, base_url=None, api="auto", timeout=None, retries=None, price_in=None,
                         price_out=None, pricing=None, budget_usd=None)
    t0 = time.monotonic()
    ensure_dir(out, "output folder")
    with console.status("generating a synthetic slide..."):
        slide_path, question, options, truth = demo_sample(out / "slides", seed=seed)
    if not as_json:
        console.print(f"slide: {slide_path} ({time.monotonic() - t0:.1f} s)")
        console.print(f"question: {question}")
    run_dir = out / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    sample = sample_for_question(slide_path, question, options)
    regions = [{"label": les.cls, "box": list(les.box)} for les in load_truth(slide_path).lesions]
    sample.truth = GroundTruth(answer=truth, regions=regions)
    with console.status(f"running {model} ({preset})..."):
        res = run(slide_path, question, options, model=model, preset=preset, out=run_dir, seed=seed, sample=sample,
                  model_options=opts)
    _print_result(res, as_json, truth=truth)
    if not as_json:
        verdict = "[green]correct[/]" if res.choice == truth else "[red]wrong[/]"
        console.print(f"{verdict} · {time.monotonic() - t0:.1f} s · view it: slidescout view {res.run_dir}")
    if not res.ok:
        raise typer.Exit(1)


@trace_app.command("show")
def trace_show(
    trace: Path = typer.Argument(..., help="A trace file (RUN/traces/ID.json) or a run directory."),
    full: bool = typer.Option(False, "--full", help="Do not shorten long texts."),
) -> None:
    """Print a trace's steps: thought, tool call, what was viewed, tokens, cost, latency."""
    from slidescout.traces.show import render_trace, resolve_trace_paths

    paths = resolve_trace_paths(trace)
    if not paths:
        raise ConfigError(f"{trace}: no traces found")
    for p in paths:
        render_trace(p, console, full=full)
