"""``slidescout ask``, ``slidescout demo`` and ``slidescout trace show``."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text

from slidescout.agents.config import AgentConfig
from slidescout.cli.app import app, console, err_console, trace_app
from slidescout.cli.model_opts import warn_price, warn_unused_tools
from slidescout.cli.options import agent_options
from slidescout.cli.paths import ensure_dir
from slidescout.core.trace import load_trace
from slidescout.errors import ConfigError
from slidescout.eval.ask import RunResult, default_run_dir, question_sample, run
from slidescout.slides.synth import demo_sample, load_truth
from slidescout.traces.runlock import RunLock
from slidescout.traces.show import render_trace, resolve_trace_paths


def _print_result(res: RunResult, as_json: bool, truth: str | None = None) -> None:
    rec = res.record
    if as_json:
        out = {
            "choice": res.choice,
            "answer": res.answer,
            "rationale": res.rationale,
            "status": res.status,
            "error": res.error,
            "steps": rec.n_steps,
            "cost_usd": rec.cost_usd,
            "trace": str(res.trace_path),
            "run_dir": str(res.run_dir),
            "record": rec.to_json_dict(),
        }
        if truth is not None:
            out["truth"] = truth
        sys.stdout.write(json.dumps(out, default=str) + "\n")
        return
    body = Text()  # plain text, not markup: a reply or a model name may hold brackets or colons
    if res.choice:
        body.append("Answer: ", style="bold").append(f"{res.choice}\n")
    if res.answer:
        body.append("Reply: ", style="bold").append(f"{res.answer.strip()[:1500]}\n")
    if truth is not None:
        body.append("Ground truth: ", style="bold").append(f"{truth}\n")
    cost = rec.cost_usd
    tokens = (rec.input_tokens or 0) + (rec.output_tokens or 0)
    body.append(
        f"status {res.status} · {rec.n_steps or 0} steps · {tokens} tokens · "
        f"cost {'unknown' if cost is None else f'${cost:.4f}'}\n",
        style="dim",
    )
    body.append(f"trace: {res.trace_path}", style="dim")
    # the panel wraps long replies at word boundaries and folds long paths (nothing is cut)
    console.print(Panel(body, title="slidescout", expand=False), highlight=False, soft_wrap=False)


def _first(*values: int | None) -> int:
    """The first value given (the last one is the default)."""
    return next(v for v in values if v is not None)


@contextlib.contextmanager
def _phase(text: str) -> Iterator[None]:
    """A spinner on a terminal; elsewhere (piped, redirected) one line on stderr when the phase
    starts and one when it ends, so a log shows progress instead of minutes of silence."""
    if console.is_terminal:
        with console.status(text):
            yield
        return
    t0 = time.monotonic()
    err_console.print(text, highlight=False, markup=False)
    yield
    err_console.print(f"  done in {time.monotonic() - t0:.1f} s", highlight=False, markup=False)


def _fail_unless_answered(res: RunResult) -> None:
    if not res.ok:
        reason = (res.error or "").splitlines()[0] if res.error else ""
        err_console.print(
            f"error: no answer ({res.status}){': ' + reason if reason and reason != res.status else ''}",
            highlight=False,
            markup=False,
        )
        raise typer.Exit(1)


@app.command()
@agent_options()
def ask(
    slide: Path = typer.Argument(
        ..., help="A whole-slide image (SVS, NDPI, MRXS, TIFF...) or a PNG/JPEG."
    ),
    question: str = typer.Argument(..., help="The question to answer."),
    option: list[str] | None = typer.Option(
        None, "--option", help="An answer option (repeat for each)."
    ),
    budget_usd: float | None = typer.Option(
        None, "--budget-usd", min=0.0, help="Stop when this many dollars are spent."
    ),
    out: Path | None = typer.Option(
        None, "-o", "--out", help="Run directory (default under runs/)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the answer and the run directory as one JSON object."
    ),
    agent: AgentConfig = AgentConfig(),
) -> None:
    """Ask a question about a slide; prints the answer, a rationale and where the trace went."""
    sample = question_sample(slide, question, option or [])  # a bad question fails before any work
    agent.check()
    warn_unused_tools(agent)
    warn_price(agent, budget_usd)
    if out is not None:
        ensure_dir(out, "run directory")
    with (
        RunLock(out) if out is not None else contextlib.nullcontext()
    ):  # one writer per run directory
        res = run(
            slide,
            question,
            option or [],
            config=agent,
            out=out,
            budget_usd=budget_usd,
            sample=sample,
        )
    _print_result(res, as_json)
    _fail_unless_answered(res)


@app.command()
@agent_options(model="expert", preset="vitar", seed=7)
def demo(
    out: Path | None = typer.Option(
        None,
        "-o",
        "--out",
        help="Run directory, as for ask (the synthetic slide goes in its slides/ folder). "
        "Default: runs/<time>-demo.",
    ),
    data_seed: int | None = typer.Option(
        None,
        "--data-seed",
        help="Seed of the generated slide and question, as for synth (default: --seed).",
    ),
    slide_seed: int | None = typer.Option(
        None, "--slide-seed", hidden=True, help="Old spelling of --data-seed."
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print the answer, the truth and the run directory as one JSON object.",
    ),
    agent: AgentConfig = AgentConfig(),
) -> None:
    """Offline demo: generate a synthetic slide and question, run the expert planner, show answer and truth."""
    t0 = time.monotonic()
    agent.check()  # a bad model id or preset fails before the slide is generated
    # -o X is the run directory, as for ask; without it the slide is cached in runs/demo/slides
    run_dir = ensure_dir(out, "run directory") if out is not None else default_run_dir("demo")
    slides_dir = (
        ensure_dir(run_dir / "slides", "slides folder")
        if out is not None
        else Path("runs/demo/slides")
    )
    with _phase("generating a synthetic slide..."):
        slide_path, question, options, truth = demo_sample(
            slides_dir, seed=_first(slide_seed, data_seed, agent.seed or 0)
        )
    if not as_json:
        console.print(
            f"slide: {slide_path} ({time.monotonic() - t0:.1f} s)", highlight=False, markup=False
        )
        console.print(f"question: {question}", highlight=False, markup=False)
    sample = question_sample(slide_path, question, options, answer=truth)
    regions = [
        {"id": f"lesion{i + 1}", "label": les.cls, "box": list(les.box)}
        for i, les in enumerate(load_truth(slide_path).lesions)
    ]
    sample = sample.model_copy(update={"regions": regions})
    with _phase(f"running {agent.model_id} ({agent.preset})..."):
        res = run(slide_path, question, options, config=agent, out=run_dir, sample=sample)
    _print_result(res, as_json, truth=truth)
    if not as_json:
        verdict = "[green]correct[/]" if res.choice == truth else "[red]wrong[/]"
        console.print(
            f"{verdict} · {time.monotonic() - t0:.1f} s · view it: slidescout view {escape(str(res.run_dir))}"
        )
    _fail_unless_answered(res)


@trace_app.command("show")
def trace_show(
    trace: Path = typer.Argument(..., help="A trace file (RUN/traces/ID.json) or a run directory."),
    full: bool = typer.Option(False, "--full", help="Do not shorten long texts."),
    as_json: bool = typer.Option(
        False, "--json", help="Print each trace as one JSON object per line (the trace file)."
    ),
) -> None:
    """Print a trace's steps: thought, tool call, what was viewed, tokens, cost, latency."""
    paths = resolve_trace_paths(trace)
    if not paths:
        raise ConfigError(f"{trace}: no traces found")
    for p in paths:
        if as_json:
            sys.stdout.write(load_trace(p).model_dump_json() + "\n")
        else:
            render_trace(p, console, full=full)
