"""The agent from the command line: ask, demo, trace show; exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from slidefactory import make_tiff

from slidescout.testing.fake_openai import FakeOpenAI


def cli(*args, env=None, timeout=240):
    import os

    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "slidescout.cli", *args]
        if False
        else [sys.executable, "-c", "from slidescout.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=e,
    )


@pytest.fixture(scope="module")
def slide(tmp_path_factory):
    p = tmp_path_factory.mktemp("s") / "s.tiff"
    make_tiff(p, 5000, 4000, mpp=0.25)
    return p


def test_ask_expert_json(slide, tmp_path):
    r = cli(
        "ask",
        str(slide),
        "What is the main finding?",
        "--option",
        "Tumour",
        "--option",
        "Normal",
        "--model",
        "expert",
        "-o",
        str(tmp_path / "run"),
        "--json",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == "answered" and out["choice"] in ("Tumour", "Normal")
    assert (tmp_path / "run" / "manifest.json").exists()
    lines = (tmp_path / "run" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["sample_id"] == "s"
    shown = cli("trace", "show", out["trace"])
    assert shown.returncode == 0 and "Step 1" in shown.stdout and "Answer" in shown.stdout


def test_ask_through_openai_sdk_against_fake_server(slide, tmp_path):
    sentinel = "sk-test-SENTINEL-0042"
    with FakeOpenAI(auto_turns=2) as srv:
        r = cli(
            "ask",
            str(slide),
            "Diagnosis?",
            "--option",
            "A",
            "--option",
            "B",
            "--model",
            "openai:gpt-5",
            "--base-url",
            srv.base_url,
            "--api",
            "responses",
            "-o",
            str(tmp_path / "run"),
            "--json",
            env={"OPENAI_API_KEY": sentinel},
        )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["choice"] == "A" and out["steps"] == 3
    trace = json.loads(open(out["trace"]).read())
    assert trace["events"][1]["api"] == "openai-responses"
    for f in (tmp_path / "run").rglob("*"):
        if f.is_file():
            assert sentinel.encode() not in f.read_bytes()
    assert sentinel not in r.stdout + r.stderr


@pytest.mark.parametrize(
    "args,needle",
    [
        (["ask", "/nonexistent/slide.svs", "q", "--model", "expert"], "slide.svs"),
        (["ask", "{slide}", "q", "--model", "nosuch:model"], "nosuch"),
        (["ask", "{slide}", "q", "--model", "expert", "--preset", "bogus"], "bogus"),
        (["ask", "{slide}", "q", "--model", "expert", "--tools", "+no_such_tool"], "no_such_tool"),
        (["ask", "{slide}", "q", "--model", "openai:gpt-5"], "OPENAI_API_KEY"),
    ],
)
def test_user_errors_are_one_line(slide, tmp_path, args, needle):
    args = [a.replace("{slide}", str(slide)) for a in args] + ["-o", str(tmp_path / "r")]
    r = cli(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error:") and needle in err[0], r.stderr


def test_bad_slide_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "empty.svs"
    bad.write_bytes(b"")
    r = cli("ask", str(bad), "q", "--model", "expert", "-o", str(tmp_path / "r"))
    assert r.returncode == 2 and "empty.svs" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_demo_runs_offline_and_scores(tmp_path):
    r = cli("demo", "-o", str(tmp_path / "demo"), "--json")
    assert r.returncode == 0, r.stderr
    # piped, not a terminal: one line per phase (on stderr: stdout holds the JSON alone)
    phases = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert phases[0] == "generating a synthetic slide..." and phases[1].startswith("  done in ")
    assert phases[2] == "running expert (vitar)..." and phases[3].startswith("  done in ")
    out = json.loads(r.stdout)
    assert out["status"] == "answered" and out["truth"] and out["choice"]
    rec = json.loads(
        (tmp_path / "demo" / "results.jsonl").read_text()
    )  # -o is the run directory, as for ask
    assert rec["truth_label"] == out["truth"] and rec["correct"] == (out["choice"] == out["truth"])
    assert (
        out["run_dir"] == str(tmp_path / "demo")
        and (tmp_path / "demo" / "slides" / "demo-7.tiff").is_file()
    )
