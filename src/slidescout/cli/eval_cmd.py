"""``slidescout eval multipathqa|medframeqa|synth``, ``slidescout report``, ``slidescout compare``
and ``slidescout judge``."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import sys
from pathlib import Path
from typing import Any

import typer

from slidescout.cli.app import app, console, err_console
from slidescout.cli.progress import slide_progress
from slidescout.cli.synth_cmd import DEFAULT_SIZE
from slidescout.errors import ConfigError, DatasetError, SlidescoutError

eval_app = typer.Typer(help="Score an agent on a benchmark (MultiPathQA, MedFrameQA, SynthPath).",
                       no_args_is_help=True)
app.add_typer(eval_app, name="eval")

# Options every `eval` command takes: (name, annotation, typer.Option)
_COMMON: list[tuple[str, Any, Any]] = [
    ("model", str | None, typer.Option(None, "--model", "-m", help="provider:model (openai:gpt-5, anthropic:claude-sonnet-4-5, expert...). Default: by available key, else expert.")),
    ("preset", str, typer.Option("giant", "--preset", "-p", help="giant, vitar, thumbnail or patch.")),
    ("base_url", str | None, typer.Option(None, "--base-url", help="An OpenAI- or Anthropic-compatible server (vLLM, Ollama, llama.cpp).")),
    ("api", str, typer.Option("auto", "--api", help="OpenAI API: auto, responses or chat.")),
    ("tools", str | None, typer.Option(None, "--tools", help="Change the preset's tools: '+lookup,-pan' or a full list.")),
    ("max_steps", int | None, typer.Option(None, "--max-steps", min=1, max=200, help="Step budget per sample.")),
    ("max_side", int | None, typer.Option(None, "--max-side", min=64, max=4096, help="Long side of every image.")),
    ("seed", int | None, typer.Option(None, "--model-seed", help="Model seed (repeat r uses seed + r).")),
    ("temperature", float | None, typer.Option(None, "--temperature", help="Sampling temperature.")),
    ("repeats", int, typer.Option(1, "--repeats", "-r", min=1, max=100, help="Runs of every sample (mean of runs, majority vote).")),
    ("concurrency", int, typer.Option(16, "--concurrency", "-c", min=1, max=1024, help="Samples in flight at once.")),
    ("max_connections", int | None, typer.Option(None, "--max-connections", min=1, help="Concurrent requests to the model endpoint (default: --concurrency).")),
    ("budget_usd", float | None, typer.Option(None, "--budget-usd", min=0.0, help="Stop starting samples once this many dollars are spent.")),
    ("budget_tokens", int | None, typer.Option(None, "--budget-tokens", min=0, help="Stop starting samples once this many tokens are used.")),
    ("budget_time", float | None, typer.Option(None, "--budget-time", min=0.0, help="Stop starting samples after this many seconds.")),
    ("sample_timeout", float | None, typer.Option(None, "--sample-timeout", min=1.0, help="Wall-time limit of one sample, seconds.")),
    ("out", Path | None, typer.Option(None, "-o", "--out", help="Run directory (default runs/<time>-<dataset>).")),
    ("resume", Path | None, typer.Option(None, "--resume", help="Continue this run directory: finished samples are kept and not run again.")),
    ("retry_errors", bool, typer.Option(False, "--retry-errors", help="With --resume, also rerun samples that ended in error.")),
    ("tasks", str | None, typer.Option(None, "--tasks", help="Only these tasks, comma-separated (e.g. tcga,gtex).")),
    ("limit", int | None, typer.Option(None, "--limit", min=1, help="Only the first N samples (after --tasks).")),
    ("executor", str, typer.Option("asyncio", "--executor", help="asyncio (this process) or ray.")),
    ("address", str | None, typer.Option(None, "--address", help="Ray cluster address (default: a local Ray instance).")),
    ("ray_mode", str, typer.Option("actors", "--ray-mode", help="actors (async worker actors, default) or tasks (one Ray task per sample).")),
    ("ray_workers", int | None, typer.Option(None, "--ray-workers", min=1, help="Ray worker actors (default: one per CPU).")),
    ("num_gpus", float | None, typer.Option(None, "--num-gpus", min=0.0, help="GPUs per Ray worker (default: the cluster's GPUs shared among workers).")),
    ("max_mpp", float, typer.Option(1.0, "--grounding-mpp", min=0.01, help="Grounding: a lesion counts as seen in a view at this µm/px or finer.")),
    ("plots", Path | None, typer.Option(None, "--plots", help="Also write plots into this folder.")),
    ("no_progress", bool, typer.Option(False, "--no-progress", help="No progress bars.")),
    ("as_json", bool, typer.Option(False, "--json", help="Print the run summary as JSON instead of tables.")),
]


def _with_common(fn: Any) -> Any:
    """Add the common options to an eval command; they arrive as one ``common`` dict."""
    sig = inspect.signature(fn)
    own = [p for p in sig.parameters.values() if p.name != "common"]
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=ann)
             for name, ann, opt in _COMMON]

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> Any:
        common = {name: kwargs.pop(name) for name, _, _ in _COMMON}
        return fn(**kwargs, common=common)

    wrapper.__signature__ = sig.replace(parameters=own + extra)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**{p.name: p.annotation for p in own}, **{n: a for n, a, _ in _COMMON}}
    return wrapper


def _check_model(model: str | None) -> None:
    if model:
        from slidescout.agents.models.registry import parse_model_id

        parse_model_id(model)  # ConfigError naming the valid forms


def _run_dir(common: dict[str, Any], dataset: str) -> Path:
    out, resume = common["out"], common["resume"]
    if resume is not None:
        if out is not None and Path(out).resolve() != Path(resume).resolve():
            raise ConfigError(f"--resume {resume} and -o {out} name different folders; give one of them")
        if not Path(resume).is_dir():
            raise ConfigError(f"--resume {resume}: no such run directory")
        return Path(resume)
    if out is not None:
        return Path(out)
    from slidescout.agents.api import default_run_dir

    return default_run_dir(f"eval-{dataset}")


def _select(load: Any, common: dict[str, Any], what: str) -> list[Any]:
    samples = list(load.samples)
    if not samples:
        if load.n_missing:
            where = f" under {load.search_dir}" if load.search_dir else ""
            raise DatasetError(f"no {what} found{where}: all {load.n_missing} questions' files are missing "
                               f"(e.g. {', '.join(load.missing_files[:3])}); check the folder")
        raise DatasetError(f"{load.source}: no questions to run")
    if common["limit"]:
        samples = samples[: common["limit"]]
    return samples


def _execute(load: Any, samples: list[Any], common: dict[str, Any], dataset: str) -> None:
    from slidescout.eval.report import load_run, print_report, report_data, write_plots
    from slidescout.eval.runner import run_eval
    from slidescout.eval.sample_run import AgentSpec

    _check_model(common["model"])
    run_dir = _run_dir(common, dataset)
    spec = AgentSpec(model=common["model"], preset=common["preset"], base_url=common["base_url"], api=common["api"],
                     tools=common["tools"], max_steps=common["max_steps"], max_side=common["max_side"],
                     seed=common["seed"], temperature=common["temperature"], sample_seconds=common["sample_timeout"])
    if not common["as_json"]:
        console.print(load.summary(), highlight=False)
        if common["limit"]:
            console.print(f"running the first {len(samples)} samples (--limit)", highlight=False)
    ray_options = {"mode": common["ray_mode"], "workers": common["ray_workers"], "num_gpus": common["num_gpus"]}
    info = {"name": load.dataset, "source": load.source, "n_loaded": len(load.samples), "n_run": len(samples),
            "n_missing": load.n_missing, "n_invalid": load.n_invalid, "tasks": common["tasks"], "limit": common["limit"]}
    try:
        summary = asyncio.run(run_eval(
            samples, out=run_dir, agent=spec, repeats=common["repeats"], concurrency=common["concurrency"],
            max_connections=common["max_connections"], budget_usd=common["budget_usd"],
            budget_tokens=common["budget_tokens"], budget_seconds=common["budget_time"],
            resume=common["resume"] is not None, executor=common["executor"], ray_address=common["address"],
            ray_options=ray_options, progress=not common["no_progress"] and not common["as_json"],
            retry_errors=common["retry_errors"], max_mpp=common["max_mpp"], dataset=info, console=console))
    except KeyboardInterrupt:
        err_console.print(f"interrupted: finished samples are kept in {run_dir}; continue with "
                          f"`slidescout eval {dataset} ... --resume {run_dir}`", highlight=False)
        raise typer.Exit(130) from None
    if common["as_json"]:  # exactly what `slidescout report RUN --json` prints
        try:
            data = report_data(load_run(run_dir))
        except SlidescoutError:  # nothing written (a budget of 0): the same keys, empty
            data = {"run": str(run_dir), "agent": {}, "n_records": 0, "n_finished": 0, "unfinished": {},
                    "scores": {}, "grounding": {}, "judge": {},
                    "summary": summary.model_dump(mode="json", exclude={"scores"})}
        sys.stdout.write(json.dumps(data, default=str) + "\n")
    else:
        print_report(run_dir, console)
        if summary.stopped:
            console.print(f"[yellow]stopped: {summary.stopped}[/]; {summary.n_unfinished} samples not finished. "
                          f"Continue with --resume {run_dir} (and a larger budget).", highlight=False)
        console.print(f"run directory: {run_dir} · view it: slidescout view {run_dir}", highlight=False)
    if common["plots"]:
        for p in write_plots(run_dir, common["plots"]):
            if not common["as_json"]:
                console.print(f"plot: {p}", highlight=False)


@eval_app.command("multipathqa")
@_with_common
def eval_multipathqa(
    csv_path: Path = typer.Option(..., "--csv", help="MultiPathQA.csv (GIANT's question file)."),
    slides: Path = typer.Option(..., "--slides", help="Folder holding the downloaded slides (searched recursively)."),
    common: Any = None,
) -> None:
    """Run MultiPathQA (TCGA, GTEx, PANDA, SlideBench, ExpertVQA) on the slides found under --slides."""
    from slidescout.eval import load_multipathqa

    _check_model(common["model"])
    load = load_multipathqa(csv_path, slides_dir=slides, tasks=common["tasks"])
    _execute(load, _select(load, common, "slides"), common, "multipathqa")


@eval_app.command("medframeqa")
@_with_common
def eval_medframeqa(
    data: Path = typer.Option(..., "--data", help="MedFrameQA parquet file (or folder of shards), or the JSON/JSONL with image paths."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Where parquet images are extracted (default $SLIDESCOUT_HOME/cache/images)."),
    common: Any = None,
) -> None:
    """Run MedFrameQA (2-5 frames per question) with the image-set tools."""
    from slidescout.eval import load_medframeqa

    _check_model(common["model"])
    load = load_medframeqa(data, cache_dir=cache_dir)
    if common["tasks"]:
        wanted = {t.strip() for t in common["tasks"].split(",") if t.strip()}
        load.samples = [s for s in load.samples if s.task in wanted or str(s.meta.get("system", "")) in wanted]
    _execute(load, _select(load, common, "images"), common, "medframeqa")


@eval_app.command("file")
@_with_common
def eval_file(
    path: Path = typer.Argument(..., help="A question file: MultiPathQA or SynthPath CSV, MedFrameQA parquet/JSON."),
    slides: Path | None = typer.Option(None, "--slides", help="Folder of the slides (MultiPathQA CSVs)."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Where parquet images are extracted."),
    common: Any = None,
) -> None:
    """Run any supported question file; the dataset is recognised from the file."""
    from slidescout.eval import load_dataset

    _check_model(common["model"])
    load = load_dataset(path, slides_dir=slides, tasks=common["tasks"], cache_dir=cache_dir)
    if load.dataset == "multipathqa" and slides is None:
        raise ConfigError("a MultiPathQA CSV needs --slides (the folder holding the downloaded slides)")
    name = {"synthpath": "synth"}.get(load.dataset, load.dataset)
    _execute(load, _select(load, common, "images" if name == "medframeqa" else "slides"), common, name)


def _synth_cache(n: int, size: tuple[int, int], seed: int) -> Path:
    import os

    home = Path(os.environ.get("SLIDESCOUT_HOME") or Path.home() / ".slidescout").expanduser()
    return home / "cache" / "synth" / f"n{n}-{size[0]}x{size[1]}-seed{seed}"


@eval_app.command("synth")
@_with_common
def eval_synth(
    n: int = typer.Option(20, "--n", "-n", min=1, max=10000, help="Number of synthetic slides."),
    size: str = typer.Option(DEFAULT_SIZE, "--size", help="Level-0 size WIDTHxHEIGHT of each slide (as for synth)."),
    data_seed: int = typer.Option(0, "--seed", help="Seed of the dataset."),
    data: Path | None = typer.Option(None, "--data", help="Dataset folder: used as is if it holds questions.csv, else generated there (default: a cache under $SLIDESCOUT_HOME)."),
    common: Any = None,
) -> None:
    """Generate SynthPath slides (cached) and score the agent, including grounding on the lesions."""
    from slidescout.cli.synth_cmd import parse_size
    from slidescout.eval import load_synth

    _check_model(common["model"])
    width, height = parse_size(size)
    folder = data if data is not None else _synth_cache(n, (width, height), data_seed)
    csv_path = folder / "questions.csv"
    if data is None or not csv_path.exists():
        from slidescout.slides.synth import generate_dataset

        out_console = err_console if common["as_json"] else console  # --json keeps stdout for the JSON
        with slide_progress(out_console, n, f"generating {n} SynthPath slides {width}x{height} in {folder}") as prog:
            generate_dataset(folder, n, size=(width, height), seed=data_seed, on_slide=prog.on_slide,
                             on_done=prog.on_done)
    load = load_synth(csv_path, tasks=common["tasks"])
    _execute(load, _select(load, common, "slides"), common, "synth")


# ---- report, compare, judge -----------------------------------------------------------------

@app.command("report")
def report_cmd(
    run: Path = typer.Argument(..., help="A run directory."),
    plots: Path | None = typer.Option(None, "--plots", help="Write plots (PNG) into this folder."),
    out: Path | None = typer.Option(None, "-o", "--out", help="Write a self-contained HTML report (a path ending in .html)."),
    as_json: bool = typer.Option(False, "--json", help="Print the scores as JSON."),
) -> None:
    """Print a run's score tables again, and optionally write plots or an HTML report."""
    from slidescout.eval.report import load_run, print_report, report_data, write_plots

    rep = load_run(run)
    if as_json:
        sys.stdout.write(json.dumps(report_data(rep), default=str) + "\n")
    else:
        print_report(rep, console)
    if plots:
        for p in write_plots(rep, plots):
            if not as_json:
                console.print(f"plot: {p}", highlight=False)
    if out is not None:
        if out.suffix.lower() not in (".html", ".htm"):
            raise ConfigError(f"-o {out}: the report is HTML; give a path ending in .html")
        try:
            from slidescout.traces.viewer.report import write_report
        except ImportError as exc:
            raise ConfigError(f"the HTML report is not available in this installation ({exc})") from None
        path = write_report(run, out)
        size = path.stat().st_size / 1e6
        if not as_json:
            console.print(f"report: {path} ({size:.1f} MB)", highlight=False, soft_wrap=True)
        if size > 50:
            err_console.print(f"warning: the report is over 50 MB ({size:.1f} MB); `slidescout report-html RUN "
                              "--limit N` includes fewer samples", highlight=False)


@app.command("compare")
def compare_cmd(
    runs: list[Path] = typer.Argument(..., help="Two or more run directories."),
    plots: Path | None = typer.Option(None, "--plots", help="Write comparison plots into this folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Put runs side by side: score per task with intervals, and the paired difference from the first."""
    from slidescout.eval.compare import compare_data, load_runs, print_compare
    from slidescout.eval.report import write_plots

    if as_json:
        reports = load_runs(list(runs))
        sys.stdout.write(json.dumps(compare_data(reports), default=str) + "\n")
        if plots:
            write_plots(reports, plots)
        return
    print_compare(list(runs), console, plots=plots)


@app.command("judge")
def judge_cmd(
    run: Path = typer.Argument(..., help="A run directory."),
    model: str = typer.Option(..., "--model", "-m", help="The judge model, provider:model."),
    base_url: str | None = typer.Option(None, "--base-url", help="An OpenAI- or Anthropic-compatible server."),
    api: str = typer.Option("auto", "--api", help="OpenAI API: auto, responses or chat."),
    concurrency: int = typer.Option(8, "--concurrency", "-c", min=1, max=256, help="Answers graded at once."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Grade at most N records."),
) -> None:
    """Grade the rationales of a run's answers with an LLM judge (writes RUN/judge.jsonl)."""
    from slidescout.eval.judge import judge_run
    from slidescout.eval.report import judge_summary
    from slidescout.traces.rundir import RunDir

    _check_model(model)
    RunDir.open(run)
    written = asyncio.run(judge_run(run, model, base_url=base_url, api=api, concurrency=concurrency, limit=limit))
    failed = sum(1 for w in written if w.get("score") is None)
    console.print(f"graded {len(written) - failed} answers" + (f", {failed} could not be graded" if failed else ""),
                  highlight=False)
    for task, v in judge_summary(run).items():
        console.print(f"{task}: mean score {v['mean_score']:.2f} (n={v['n']})", highlight=False)
