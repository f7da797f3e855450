"""``slidescout eval multipathqa|medframeqa|synth``, ``report``, ``compare`` and ``judge``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from cli_helpers import run_cli
from test_eval_runner_data import make_mpqa, read_results

from slidescout.agents.config import AgentConfig
from slidescout.eval import load_multipathqa
from slidescout.eval.config import EvalConfig
from slidescout.eval.runner import run_eval
from slidescout.testing.fake_openai import FakeOpenAI, Reply


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    return make_mpqa(tmp_path_factory.mktemp("cli-data"), n_tcga=4, n_gtex=2, bad=1)


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory) -> tuple[Path, Path]:
    """Two finished runs of the same questions: 3 tool steps (2 repeats), and an immediate answer."""
    root = tmp_path_factory.mktemp("cli-runs")
    samples = load_multipathqa(data[0], slides_dir=data[1]).samples
    with FakeOpenAI(auto_turns=2) as srv:
        spec = AgentConfig(model="openai:fake-vlm", base_url=srv.base_url, max_steps=5)
        asyncio.run(
            run_eval(
                samples, out=root / "a", agent=spec, config=EvalConfig(repeats=2, concurrency=4)
            )
        )
    with FakeOpenAI(auto_turns=0, auto_answer='{"answer": 2}') as srv:
        spec = AgentConfig(model="openai:other-vlm", base_url=srv.base_url, max_steps=5)
        asyncio.run(run_eval(samples, out=root / "b", agent=spec, config=EvalConfig(concurrency=4)))
    return root / "a", root / "b"


def test_eval_multipathqa(data, tmp_path: Path, monkeypatch, capsys) -> None:
    with FakeOpenAI(auto_turns=1) as srv:
        code, out, err = run_cli(
            capsys,
            "eval",
            "multipathqa",
            "--csv",
            data[0],
            "--slides",
            data[1],
            "-m",
            "openai:fake-vlm",
            "--base-url",
            srv.base_url,
            "-c",
            "3",
            "--tasks",
            "tcga",
            "--no-progress",
            "-o",
            tmp_path / "run",
            "--plots",
            tmp_path / "plots",
        )
    assert code == 0, err
    assert "multipathqa: 4 samples (tcga 4); 1 skipped, file not found" in out
    assert (
        "tcga" in out and "bal.acc" in out and "unknown" in out
    )  # cost of an unpriced local model
    assert "gtex" not in out.split("skipped")[1]
    assert len(read_results(tmp_path / "run")) == 4
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "accuracy_vs_steps.png",
        "cost_per_correct.png",
        "scores.png",
    ]


def test_eval_errors_are_one_line(data, tmp_path: Path, monkeypatch, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["--csv", tmp_path / "nope.csv", "--slides", data[1]], "does not exist"),
        (["--csv", data[0], "--slides", empty], "no slides found"),
        (["--csv", data[0], "--slides", tmp_path / "no-dir"], "does not exist"),
        (["--csv", data[0], "--slides", data[1], "-m", "gpt5"], "malformed model id"),
        (["--csv", data[0], "--slides", data[1], "-m", "foo:bar"], "unknown model provider"),
        (
            ["--csv", data[0], "--slides", data[1], "--resume", tmp_path / "missing-run"],
            "no such run directory",
        ),
        (["--csv", data[0], "--slides", data[1], "--tasks", "nope"], "unknown task"),
    ]
    for args, message in cases:
        out_args = [] if "--resume" in args else ["-o", tmp_path / "r"]
        code, out, err = run_cli(capsys, "eval", "multipathqa", *args, "--no-progress", *out_args)
        assert code == 2, (args, out, err)
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) <= 3, err


def test_report_tables_json_plots_and_html(runs, tmp_path: Path, monkeypatch, capsys) -> None:
    a, _ = runs
    code, out, err = run_cli(capsys, "report", a, "--plots", tmp_path / "plots")
    assert code == 0, err
    for text in ("tcga", "gtex", "majority", "score % [95% CI]", "4×2", "unknown", "Traces", "20x"):
        assert text in out, text
    for p in (tmp_path / "plots").iterdir():
        assert p.read_bytes()[:4] == b"\x89PNG"
    code, out, err = run_cli(capsys, "report", a, "--json")
    data = json.loads(out)
    assert set(data["scores"]) == {"tcga", "gtex"} and data["scores"]["tcga"]["repeats"] == 2
    assert data["n_finished"] == 12
    code, out, err = run_cli(capsys, "report", a, "-o", tmp_path / "report.html")
    assert code == 0, err
    assert (tmp_path / "report.html").read_text().lstrip().lower().startswith("<!doctype html")
    code, out, err = run_cli(capsys, "report", a, "-o", tmp_path / "report.txt")
    assert code == 2 and ".html" in err
    code, out, err = run_cli(capsys, "report", tmp_path / "no-run")
    assert code == 2 and "not a run directory" in err


def test_compare_side_by_side(runs, tmp_path: Path, monkeypatch, capsys) -> None:
    a, b = runs
    code, out, err = run_cli(capsys, "compare", a, b, "--plots", tmp_path / "cmp")
    assert code == 0, err
    assert "openai:fake-vlm" in out and "openai:other-vlm" in out and "Δ vs a" in out
    assert (tmp_path / "cmp" / "scores.png").exists()
    code, out, err = run_cli(capsys, "compare", a, b, "--json")
    data = json.loads(out)
    gtex = data["tasks"]["gtex"]
    assert len(gtex) == 2 and gtex[1]["n_paired"] == 2  # paired on the samples both finished
    # run a answers option 1 (gtex truths: Lung, Liver), run b option 2
    assert gtex[1]["delta_vs_first"] == pytest.approx(0.0)


def test_eval_synth_with_the_expert(tmp_path: Path, monkeypatch, capsys) -> None:
    code, out, err = run_cli(
        capsys,
        "eval",
        "synth",
        "--n",
        "1",
        "--size",
        "1536x1152",
        "--seed",
        "2",
        "--data",
        tmp_path / "synth",
        "-m",
        "expert",
        "--max-steps",
        "3",
        "--tasks",
        "synth_diagnosis",
        "--no-progress",
        "-o",
        tmp_path / "run",
    )
    assert code == 0, err
    assert (tmp_path / "synth" / "questions.csv").exists()
    assert "synth_diagnosis" in out and "Traces" in out
    rec = read_results(tmp_path / "run")[0]
    assert rec["model"] == "expert" and rec["status"] == "answered"
    code, out, err = run_cli(
        capsys,
        "eval",
        "file",
        tmp_path / "synth" / "questions.csv",
        "-m",
        "expert",
        "--max-steps",
        "2",
        "--tasks",
        "synth_diagnosis",
        "--json",
        "-o",
        tmp_path / "run2",
    )
    assert code == 0, err
    evaluated = json.loads(out)
    assert evaluated["n_finished"] == 1
    code, out, err = run_cli(capsys, "report", tmp_path / "run2", "--json")
    reported = json.loads(
        out
    )  # one shape: eval --json prints what report --json prints for its run
    assert code == 0 and sorted(evaluated) == sorted(reported)
    assert evaluated["scores"] == reported["scores"] and evaluated["summary"] == reported["summary"]


def test_eval_medframeqa_thumbnail_json(tmp_path: Path, monkeypatch, capsys) -> None:
    from test_imageset_tools import _parquet

    parquet = _parquet(tmp_path / "mfqa.parquet")
    with FakeOpenAI(lambda body: Reply(text="Answer: A")) as srv:
        code, out, err = run_cli(
            capsys,
            "eval",
            "medframeqa",
            "--data",
            parquet,
            "--cache-dir",
            tmp_path / "c",
            "-m",
            "openai:fake-vlm",
            "--base-url",
            srv.base_url,
            "-p",
            "thumbnail",
            "--json",
            "-o",
            tmp_path / "run",
        )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["n_finished"] == 2 and summary["scores"]["medframeqa"]["n_correct"] == 1


def test_judge(runs, tmp_path: Path, monkeypatch, capsys) -> None:
    import shutil

    run = tmp_path / "a"
    shutil.copytree(runs[0], run)
    reply = Reply(
        text='Here is my grade: {"score": 4, "answer_correct": true, "comment": "Looked at tissue."}'
    )
    with FakeOpenAI(lambda body: reply) as srv:
        code, out, err = run_cli(
            capsys, "judge", run, "-m", "openai:judge", "--base-url", srv.base_url
        )
        assert code == 0, err
        prompt = srv.bodies[0]["messages"][-1]["content"]
        prompt = prompt if isinstance(prompt, str) else prompt[0]["text"]
    assert "graded 10 answers" in out and "mean score 4.00" in out
    assert "Correct answer:" in prompt and "slide_zoom" in prompt
    lines = (run / "judge.jsonl").read_text().splitlines()
    assert len(lines) == 10 and json.loads(lines[0])["score"] == 4
    code, out, err = run_cli(capsys, "report", run)
    assert "judge: " in out


REAL_CSV = Path(__file__).resolve().parents[2] / "shared/data/multipathqa/MultiPathQA.csv"


@pytest.mark.skipif(not REAL_CSV.exists(), reason="MultiPathQA.csv not present")
def test_real_multipathqa_csv_runs_the_slides_present(tmp_path: Path, monkeypatch, capsys) -> None:
    """The real question file with two of its slides present (as small TIFFs under the expected
    names): those questions run, the rest are reported as skipped."""
    from slidefactory import make_tiff

    slides = tmp_path / "slides"
    slides.mkdir()
    make_tiff(slides / "GTEX-OIZH-0626.tiff", 1024, 768, mpp=0.5, pattern="tissue")
    make_tiff(
        slides / "TCGA-02-0266-01Z-00-DX1.tiff", 1024, 768, mpp=0.5
    )  # another extension, same stem
    with FakeOpenAI(auto_turns=1) as srv:
        code, out, err = run_cli(
            capsys,
            "eval",
            "multipathqa",
            "--csv",
            REAL_CSV,
            "--slides",
            slides,
            "-m",
            "openai:fake-vlm",
            "--base-url",
            srv.base_url,
            "--tasks",
            "tcga,gtex",
            "--no-progress",
            "-o",
            tmp_path / "run",
        )
    assert code == 0, err
    assert "multipathqa: 2 samples (gtex 1, tcga 1); 410 skipped, file not found" in " ".join(
        out.split()
    )
    lines = read_results(tmp_path / "run")
    assert {r["task"] for r in lines} == {"tcga", "gtex"} and all(
        r["status"] == "answered" for r in lines
    )
    gtex = next(r for r in lines if r["task"] == "gtex")
    assert gtex["predicted"] == "Esophagus" and gtex["parsed_ok"]  # option 1, mapped to its label
