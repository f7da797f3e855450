"""``slidescout ask``, ``slidescout demo`` and ``slidescout trace show``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer

from slidescout.cli.app import app, console, err_console, trace_app
from slidescout.errors import ConfigError


def _print_result(res, as_json: bool, truth: str | None = None) -> None:
    if as_json:
        out = {"answer": res.answer, "choice": res.choice, "status": res.status, "rationale": res.rationale,
               "steps": res.trace.n_steps, "cost_usd": res.trace.usage.cost_usd,
               "trace": str(res.trace_path), "run_dir": str(res.run_dir)}
        if truth is not None:
            out["truth"] = truth
        sys.stdout.write(json.dumps(out) + "\n")
        return
    from rich.panel import Panel
    from rich.text import Text

    body = Text()  # plain text, not markup: a reply or a model name may hold brackets or colons
    if res.choice:
        body.append("Answer: ", style="bold").append(f"{res.choice}\n")
    if res.answer:
        body.append("Reply: ", style="bold").append(f"{res.answer.strip()[:1500]}\n")
    if truth is not None:
        body.append("Ground truth: ", style="bold").append(f"{truth}\n")
    cost = res.trace.usage.cost_usd
    body.append(f"status {res.status} · {res.trace.n_steps} steps · "
                f"{res.trace.usage.input_tokens + res.trace.usage.output_tokens} tokens · "
                f"cost {'unknown' if cost is None else f'${cost:.4f}'}\n", style="dim")
    body.append(f"trace: {res.trace_path}", style="dim")
    # the panel wraps long replies at word boundaries and folds long paths (nothing is cut)
    console.print(Panel(body, title="slidescout", expand=False), highlight=False, soft_wrap=False)


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
    seed: int | None = typer.Option(None, "--seed", help="Model seed, where the provider supports one."),
    out: Path | None = typer.Option(None, "-o", "--out", help="Run directory (default under runs/)."),
    as_json: bool = typer.Option(False, "--json", help="Print the answer and the run directory as one JSON object."),
) -> None:
    """Ask a question about a slide; prints the answer, a rationale and where the trace went."""
    from slidescout.agents.api import run

    res = run(slide, question, option or [], model=model, preset=preset, out=out, base_url=base_url, api=api,
              tools=tools, max_steps=max_steps, max_side=max_side, budget_usd=budget_usd, seed=seed,
              keep_images=-1 if keep_images is None else keep_images)
    _print_result(res, as_json)
    if not res.ok:
        reason = next((e.message for e in reversed(res.trace.events) if e.kind in ("error", "note")), res.status)
        err_console.print(f"error: no answer ({res.status}): {reason.splitlines()[0] if reason else ''}", highlight=False)
        raise typer.Exit(1)


@app.command()
def demo(
    out: Path | None = typer.Option(None, "-o", "--out",
                                    help="Run directory, as for ask (the synthetic slide goes in its slides/ folder). "
                                         "Default: runs/<time>-demo."),
    seed: int = typer.Option(7, "--seed", help="Seed of the synthetic slide and question (and of the model)."),
    model: str = typer.Option("expert", "--model", "-m", help="provider:model; the default runs offline."),
    preset: str = typer.Option("vitar", "--preset", "-p", help="giant, vitar, thumbnail or patch."),
    as_json: bool = typer.Option(False, "--json", help="Print the answer, the truth and the run directory as one JSON object."),
) -> None:
    """Offline demo: generate a synthetic slide and question, run the expert planner, show answer and truth."""
    from slidescout.agents.api import default_run_dir, run
    from slidescout.agents.sample import sample_for_question
    from slidescout.slides.synth import demo_sample, load_truth
    from slidescout.traces.schema import GroundTruth

    t0 = time.monotonic()
    # -o X is the run directory, as for ask; without it the slide is cached in runs/demo/slides
    run_dir = out if out is not None else default_run_dir("demo")
    slides_dir = out / "slides" if out is not None else Path("runs/demo/slides")
    with console.status("generating a synthetic slide..."):
        slide_path, question, options, truth = demo_sample(slides_dir, seed=seed)
    if not as_json:
        console.print(f"slide: {slide_path} ({time.monotonic() - t0:.1f} s)", highlight=False, markup=False)
        console.print(f"question: {question}", highlight=False, markup=False)
    sample = sample_for_question(slide_path, question, options)
    regions = [{"label": les.cls, "box": list(les.box)} for les in load_truth(slide_path).lesions]
    sample.truth = GroundTruth(answer=truth, regions=regions)
    with console.status(f"running {model} ({preset})..."):
        res = run(slide_path, question, options, model=model, preset=preset, out=run_dir, seed=seed, sample=sample)
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
