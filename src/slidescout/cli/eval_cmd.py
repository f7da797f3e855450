"""``slidescout eval multipathqa|medframeqa|synth``, ``slidescout report``, ``slidescout compare``
and ``slidescout judge``."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from slidescout.agents.config import AgentConfig
from slidescout.agents.models.registry import api_choice, parse_model_id
from slidescout.cli.app import app, console, err_console
from slidescout.cli.memory import memory_warning
from slidescout.cli.model_opts import warn_price, warn_unused_tools
from slidescout.cli.options import agent_options, eval_options, with_options
from slidescout.cli.paths import (
    check_input_dir,
    check_input_file,
    check_output_file,
    ensure_dir,
    os_error_text,
)
from slidescout.cli.progress import EvalProgress, slide_progress
from slidescout.cli.signals import interrupt_code, terminated
from slidescout.cli.synth_cmd import DEFAULT_SIZE, parse_size
from slidescout.core.home import slidescout_home
from slidescout.core.sample import Sample
from slidescout.errors import ConfigError, DatasetError, SlidescoutError
from slidescout.eval import load_medframeqa, load_multipathqa, load_synth
from slidescout.eval.ask import default_run_dir
from slidescout.eval.compare import compare_data, load_runs, print_compare
from slidescout.eval.config import EvalConfig
from slidescout.eval.dataset_registry import DATASETS, find_dataset, load_dataset
from slidescout.eval.fetch import can_run_line, default_csv
from slidescout.eval.judge import judge_run
from slidescout.eval.report import (
    failure_line,
    judge_summary,
    load_run,
    print_report,
    report_data,
    write_plots,
)
from slidescout.eval.runner import RunSummary, run_eval
from slidescout.eval.samples import DatasetLoad
from slidescout.slides.synth import generate_dataset
from slidescout.traces.rundir import RunDir, read_manifest
from slidescout.traces.viewer.report import write_report

eval_app = typer.Typer(
    help="Score an agent on a benchmark (MultiPathQA, MedFrameQA, SynthPath).", no_args_is_help=True
)
app.add_typer(eval_app, name="eval")

# Options every `eval` command takes: (name, annotation, typer.Option)
_COMMON: list[tuple[str, Any, Any]] = [
    (
        "out",
        Path | None,
        typer.Option(None, "-o", "--out", help="Run directory (default runs/<time>-<dataset>)."),
    ),
    (
        "resume",
        Path | None,
        typer.Option(
            None,
            "--resume",
            help="Continue this run directory: finished samples are kept and not run again.",
        ),
    ),
    (
        "tasks",
        str | None,
        typer.Option(None, "--tasks", help="Only these tasks, comma-separated (e.g. tcga,gtex)."),
    ),
    (
        "limit",
        int | None,
        typer.Option(None, "--limit", min=1, help="Only the first N samples (after --tasks)."),
    ),
    (
        "ray_mode",
        str,
        typer.Option(
            "actors",
            "--ray-mode",
            help="actors (async worker actors, default) or tasks (one Ray task per sample).",
        ),
    ),
    (
        "ray_workers",
        int | None,
        typer.Option(
            None, "--ray-workers", min=1, help="Ray worker actors (default: one per CPU)."
        ),
    ),
    (
        "ray_keep",
        bool | None,
        typer.Option(
            None,
            "--ray-keep/--ray-no-keep",
            help="Keep the Ray worker actors after the run, for the next run to reuse "
            "(default: kept on a cluster given by --address, not on a local instance).",
        ),
    ),
    (
        "num_gpus",
        float | None,
        typer.Option(
            None,
            "--num-gpus",
            min=0.0,
            help="GPUs per Ray worker (default: the cluster's GPUs shared among workers).",
        ),
    ),
    (
        "plots",
        Path | None,
        typer.Option(None, "--plots", help="Also write plots into this folder."),
    ),
    ("no_progress", bool, typer.Option(False, "--no-progress", help="No progress bars.")),
    (
        "as_json",
        bool,
        typer.Option(False, "--json", help="Print the run summary as JSON instead of tables."),
    ),
]


@dataclass(frozen=True)
class EvalCommon:
    """The options every ``eval`` command takes besides the agent and run flags."""

    out: Path | None = None
    resume: Path | None = None
    tasks: str | None = None
    limit: int | None = None
    ray_mode: str = "actors"
    ray_workers: int | None = None
    ray_keep: bool | None = None
    num_gpus: float | None = None
    plots: Path | None = None
    no_progress: bool = False
    as_json: bool = False


def _with_common(fn: Callable[..., None]) -> Callable[..., None]:
    """Add the agent flags and the common eval options; they arrive as ``agent``, ``settings``
    and ``common`` (an :class:`EvalCommon`)."""
    return agent_options()(
        eval_options()(with_options(_COMMON, lambda values: EvalCommon(**values), "common")(fn))
    )


def _check_model(agent: AgentConfig) -> None:
    agent.check()  # a ConfigError naming the valid forms, before any slide is opened


def _run_dir(common: EvalCommon, dataset: str) -> Path:
    out, resume = common.out, common.resume
    if resume is not None:
        if out is not None and Path(out).resolve() != Path(resume).resolve():
            raise ConfigError(
                f"--resume {resume} and -o {out} name different folders; give one of them"
            )
        if not Path(resume).exists():
            raise ConfigError(f"--resume {resume}: no such run directory")
        folder = check_input_dir(resume, "--resume run directory")
        if not any((folder / name).exists() for name in ("manifest.json", "results.jsonl")):
            raise ConfigError(
                f"--resume {resume}: not a run directory (no manifest.json or results.jsonl); "
                "give the folder of an earlier run, or -o for a new one"
            )
        read_manifest(folder / "manifest.json")  # a damaged manifest: one line, before any work
        return folder
    if out is not None:
        return ensure_dir(out, "run directory (-o)")
    return default_run_dir(f"eval-{dataset}")


def _select(load: DatasetLoad, common: EvalCommon, what: str) -> list[Sample]:
    samples = list(load.samples)
    if not samples:
        if load.n_missing:
            where = f" under {load.search_dir}" if load.search_dir else ""
            raise DatasetError(
                f"no {what} found{where}: all {load.n_missing} questions' files are missing "
                f"(e.g. {', '.join(load.missing_files[:3])}); check the folder"
            )
        raise DatasetError(f"{load.source}: no questions to run")
    if common.limit:
        samples = samples[: common.limit]
    return samples


def _execute(
    load: DatasetLoad,
    samples: list[Sample],
    common: EvalCommon,
    dataset: str,
    agent: AgentConfig,
    settings: EvalConfig,
) -> None:
    _check_model(agent)
    warn_price(agent, settings.budget_usd)
    warn_unused_tools(agent)
    if settings.executor == "asyncio":
        warning = memory_warning(settings.concurrency, agent.model_id)
        if warning:
            err_console.print(warning, highlight=False, markup=False)
    run_dir = _run_dir(common, dataset)
    if common.plots:
        ensure_dir(common.plots, "--plots folder")
    if not common.as_json:
        console.print(load.summary(), highlight=False)
        if common.limit:
            console.print(f"running the first {len(samples)} samples (--limit)", highlight=False)
    ray_options = {
        "mode": common.ray_mode,
        "workers": common.ray_workers,
        "num_gpus": common.num_gpus,
        "keep_workers": common.ray_keep,
    }
    info = {
        "name": load.dataset,
        "source": load.source,
        "n_loaded": len(load.samples),
        "n_run": len(samples),
        "n_missing": load.n_missing,
        "n_invalid": load.n_invalid,
        "tasks": common.tasks,
        "limit": common.limit,
    }
    try:
        config = settings.model_copy(
            update={
                "resume": common.resume is not None,
                "ray_options": {k: v for k, v in ray_options.items() if v is not None},
            }
        )
        show = not common.no_progress and not common.as_json
        summary = asyncio.run(
            run_eval(
                samples,
                out=run_dir,
                agent=agent,
                config=config,
                dataset=info,
                progress=EvalProgress(console) if show else None,
            )
        )
    except KeyboardInterrupt:
        err_console.print(
            f"{'terminated' if terminated() else 'interrupted'}: finished samples are kept in {run_dir}; continue with "
            f"`slidescout eval {dataset} ... --resume {run_dir}`",
            highlight=False,
        )
        raise typer.Exit(interrupt_code()) from None
    except OSError as exc:  # a full disk, a folder gone: a failure of the run (1), not bad input
        err_console.print(
            f"error: {os_error_text(exc)}; finished samples are kept in {run_dir}; fix that and "
            f"continue with --resume {run_dir}",
            highlight=False,
            markup=False,
        )
        raise typer.Exit(1) from None
    _report(summary, run_dir, common, settings)


def _report(summary: RunSummary, run_dir: Path, common: EvalCommon, settings: EvalConfig) -> None:
    """What a finished run prints (tables, or the report's JSON), its plots, and its exit code:
    1 when no sample could be scored or the endpoint failed every call."""
    rep = None
    if common.as_json:  # exactly what `slidescout report RUN --json` prints
        try:
            rep = load_run(run_dir)
            data = report_data(rep)
        except SlidescoutError:  # nothing written (a budget of 0): the same keys, empty
            data = {
                "run": str(run_dir),
                "agent": {},
                "n_records": 0,
                "n_finished": 0,
                "n_failed": 0,
                "unfinished": {},
                "scores": {},
                "grounding": {},
                "judge": {},
                "summary": summary.model_dump(mode="json", exclude={"scores"}),
            }
        sys.stdout.write(json.dumps(data, default=str) + "\n")
    else:
        rep = print_report(run_dir, console)
        if summary.stopped and summary.stopped != "endpoint_failed":
            console.print(
                f"[yellow]stopped: {summary.stopped}[/]; {summary.n_unfinished} samples not finished. "
                f"Continue with --resume {run_dir} (and a larger budget).",
                highlight=False,
            )
        console.print(
            f"run directory: {run_dir} · view it: slidescout view {run_dir}", highlight=False
        )
    if common.plots:
        for p in write_plots(run_dir, common.plots):
            if not common.as_json:
                console.print(f"plot: {p}", highlight=False)
    if summary.stopped != "endpoint_failed" and rep is not None and rep.finished:
        if len(rep.failed) == len(rep.finished):  # every score would be a failure's zero
            err_console.print(
                f"error: no sample was scored: {failure_line(rep)}. Fix that, then run them "
                f"again with --resume {run_dir} --retry-errors",
                highlight=False,
                markup=False,
            )
            raise typer.Exit(1)
    if summary.stopped == "endpoint_failed":
        err_console.print(
            f"error: the model endpoint failed every call of the last {settings.stop_after_failures} "
            f"samples (last error: {summary.stop_detail}). Check the server and --base-url, then "
            f"continue with --resume {run_dir} --retry-errors",
            highlight=False,
            markup=False,
        )
        raise typer.Exit(1)


@eval_app.command("multipathqa")
@_with_common
def eval_multipathqa(
    csv_path: Path | None = typer.Option(
        None,
        "--csv",
        help="MultiPathQA.csv (GIANT's question file; default: the copy shipped with slidescout).",
    ),
    slides: Path = typer.Option(
        ..., "--slides", help="Folder holding the downloaded slides (searched recursively)."
    ),
    common: EvalCommon = EvalCommon(),
    agent: AgentConfig = AgentConfig(),
    settings: EvalConfig = EvalConfig(),
) -> None:
    """Run MultiPathQA (TCGA, GTEx, PANDA, SlideBench, ExpertVQA) on the slides found under --slides."""
    _check_model(agent)
    check_input_file(csv_path or default_csv(), "--csv")
    check_input_dir(slides, "--slides")
    load = load_multipathqa(csv_path or default_csv(), slides_dir=slides, tasks=common.tasks)
    if load.n_missing and not common.as_json:
        console.print(
            f"{can_run_line(len(load.samples), len(load.samples) + load.n_missing, slides)}; "
            f"fetch the rest with: slidescout data fetch multipathqa --to {slides}",
            highlight=False,
        )
    _execute(load, _select(load, common, "slides"), common, "multipathqa", agent, settings)


@eval_app.command("medframeqa")
@_with_common
def eval_medframeqa(
    data: Path = typer.Option(
        ...,
        "--data",
        help="MedFrameQA parquet file (or folder of shards), or the JSON/JSONL with image paths.",
    ),
    cache_dir: Path | None = typer.Option(
        None,
        "--cache-dir",
        help="Where parquet images are extracted (default $SLIDESCOUT_HOME/cache/images).",
    ),
    common: EvalCommon = EvalCommon(),
    agent: AgentConfig = AgentConfig(),
    settings: EvalConfig = EvalConfig(),
) -> None:
    """Run MedFrameQA (2-5 frames per question) with the image-set tools."""
    _check_model(agent)
    if not Path(data).exists():
        raise ConfigError(f"--data {data}: no such file or folder")
    if cache_dir is not None:
        ensure_dir(cache_dir, "--cache-dir")
    load = load_medframeqa(data, cache_dir=cache_dir)
    if common.tasks:
        wanted = {t.strip() for t in common.tasks.split(",") if t.strip()}
        load.samples = [
            s for s in load.samples if s.task in wanted or str(s.meta.get("system", "")) in wanted
        ]
    _execute(load, _select(load, common, "images"), common, "medframeqa", agent, settings)


@eval_app.command("file")
@_with_common
def eval_file(
    path: Path = typer.Argument(
        ...,
        help="A question file: MultiPathQA or SynthPath CSV, MedFrameQA parquet/JSON, or a plugin's.",
    ),
    dataset: str | None = typer.Option(
        None,
        "--dataset",
        help=f"The dataset of the file ({', '.join(DATASETS.builtin_names())} or a plugin's); "
        "default: recognised from the file.",
    ),
    slides: Path | None = typer.Option(
        None, "--slides", help="Folder of the slides (MultiPathQA CSVs)."
    ),
    cache_dir: Path | None = typer.Option(
        None, "--cache-dir", help="Where parquet images are extracted."
    ),
    common: EvalCommon = EvalCommon(),
    agent: AgentConfig = AgentConfig(),
    settings: EvalConfig = EvalConfig(),
) -> None:
    """Run any supported question file; the dataset is recognised from the file (or --dataset)."""
    _check_model(agent)
    if not Path(path).exists():
        raise ConfigError(f"question file {path}: no such file or folder")
    spec = find_dataset(Path(path), dataset)
    if slides is not None:
        if not spec.slides_dir:
            raise ConfigError(
                f"--slides applies to MultiPathQA CSVs only; {path} is a {spec.name} file, whose "
                "image paths are in the file itself: drop --slides"
            )
        check_input_dir(slides, "--slides")
    elif spec.slides_dir:
        raise ConfigError(
            f"a {spec.name} file needs --slides (the folder holding the downloaded slides)"
        )
    if cache_dir is not None:
        if not spec.cache_dir:
            raise ConfigError(
                f"--cache-dir applies to MedFrameQA parquet files only; drop it for {path}"
            )
        ensure_dir(cache_dir, "--cache-dir")
    load = load_dataset(
        path, slides_dir=slides, tasks=common.tasks, cache_dir=cache_dir, dataset=spec.name
    )
    name = {"synthpath": "synth"}.get(load.dataset, load.dataset)
    what = "images" if spec.media == "images" else "slides"
    _execute(load, _select(load, common, what), common, name, agent, settings)


def _synth_cache(n: int, size: tuple[int, int], seed: int) -> Path:

    return slidescout_home() / "cache" / "synth" / f"n{n}-{size[0]}x{size[1]}-seed{seed}"


@eval_app.command("synth")
@_with_common
def eval_synth(
    n: int = typer.Option(20, "--n", "-n", min=1, max=10000, help="Number of synthetic slides."),
    size: str = typer.Option(
        DEFAULT_SIZE, "--size", help="Level-0 size WIDTHxHEIGHT of each slide (as for synth)."
    ),
    data_seed: int = typer.Option(0, "--data-seed", help="Seed of the generated dataset."),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="Dataset folder: used as is if it holds questions.csv, else generated there (default: a cache under $SLIDESCOUT_HOME).",
    ),
    common: EvalCommon = EvalCommon(),
    agent: AgentConfig = AgentConfig(),
    settings: EvalConfig = EvalConfig(),
) -> None:
    """Generate SynthPath slides (cached) and score the agent, including grounding on the lesions."""
    _check_model(agent)
    width, height = parse_size(size)
    if common.out is not None or common.resume is not None:
        _run_dir(common, "synth")  # a bad -o/--resume fails before slides are generated
    folder = ensure_dir(
        data if data is not None else _synth_cache(n, (width, height), data_seed), "--data folder"
    )
    csv_path = folder / "questions.csv"
    if data is None or not csv_path.exists():
        out_console = err_console if common.as_json else console  # --json keeps stdout for the JSON
        with slide_progress(
            out_console, n, f"generating {n} SynthPath slides {width}x{height} in {folder}"
        ) as prog:
            generate_dataset(
                folder,
                n,
                size=(width, height),
                seed=data_seed,
                on_slide=prog.on_slide,
                on_done=prog.on_done,
            )
    load = load_synth(csv_path, tasks=common.tasks)
    _execute(load, _select(load, common, "slides"), common, "synth", agent, settings)


# ---- report, compare, judge -----------------------------------------------------------------


@app.command("report")
def report_cmd(
    run: Path = typer.Argument(..., help="A run directory."),
    plots: Path | None = typer.Option(None, "--plots", help="Write plots (PNG) into this folder."),
    out: Path | None = typer.Option(
        None, "-o", "--out", help="Write a self-contained HTML report (a path ending in .html)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the scores as JSON."),
) -> None:
    """Print a run's score tables again, and optionally write plots or an HTML report."""
    if plots:
        ensure_dir(plots, "--plots folder")
    if out is not None:
        check_output_file(out, "-o", suffixes=(".html", ".htm"))
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
        path = write_report(run, out)
        size = path.stat().st_size / 1e6
        if not as_json:
            console.print(f"report: {path} ({size:.1f} MB)", highlight=False, soft_wrap=True)
        if size > 50:
            err_console.print(
                f"warning: the report is over 50 MB ({size:.1f} MB); `slidescout report-html RUN "
                "--limit N` includes fewer samples",
                highlight=False,
            )


@app.command("compare")
def compare_cmd(
    runs: list[Path] = typer.Argument(..., help="Two or more run directories."),
    plots: Path | None = typer.Option(
        None, "--plots", help="Write comparison plots into this folder."
    ),
    out: Path | None = typer.Option(
        None, "-o", "--out", help="Also write the comparison as JSON into this file (.json)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Put runs side by side: score per task with intervals, and the paired difference from the first."""
    if len(runs) < 2:
        raise ConfigError(
            "compare needs two or more run directories (use `slidescout report RUN` for one)"
        )
    if plots:
        ensure_dir(plots, "--plots folder")
    if out is not None:
        check_output_file(out, "-o", suffixes=(".json",))
    if as_json or out is not None:
        reports = load_runs(list(runs))
        text = json.dumps(compare_data(reports), default=str)
        if out is not None:
            out.write_text(text + "\n", encoding="utf-8")
        if as_json:
            sys.stdout.write(text + "\n")
            if plots:
                write_plots(reports, plots)
            return
    print_compare(list(runs), console, plots=plots)
    if out is not None:
        console.print(f"comparison: {out}", highlight=False)


@app.command("judge")
def judge_cmd(
    run: Path = typer.Argument(..., help="A run directory."),
    model: str = typer.Option(..., "--model", "-m", help="The judge model, provider:model."),
    base_url: str | None = typer.Option(
        None, "--base-url", help="An OpenAI- or Anthropic-compatible server."
    ),
    api: str = typer.Option("auto", "--api", help="OpenAI API: auto, responses or chat."),
    concurrency: int = typer.Option(
        8, "--concurrency", "-c", min=1, max=256, help="Answers graded at once."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Grade at most N records."),
) -> None:
    """Grade the rationales of a run's answers with an LLM judge (writes RUN/judge.jsonl)."""
    parse_model_id(model)
    if not RunDir.open(run).results():
        raise ConfigError(f"{run} has no results to grade (results.jsonl is missing or empty)")
    written = asyncio.run(
        judge_run(
            run,
            model,
            base_url=base_url,
            api=api_choice(api),
            concurrency=concurrency,
            limit=limit,
        )
    )
    failed = sum(1 for w in written if w.get("score") is None)
    console.print(
        f"graded {len(written) - failed} answers"
        + (f", {failed} could not be graded" if failed else ""),
        highlight=False,
    )
    for task, v in judge_summary(run).items():
        console.print(f"{task}: mean score {v['mean_score']:.2f} (n={v['n']})", highlight=False)
