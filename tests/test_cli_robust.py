"""Issue 12 defects: exit codes, SIGTERM, one writer per run, torn results, timeouts, bad paths,
budgets with unknown prices, and inputs that used to be accepted but were wrong."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from slidefactory import make_tiff
from test_eval_runner_data import finished_keys, make_mpqa, read_results

from slidescout.cli import main
from slidescout.testing.fake_common import hang
from slidescout.testing.fake_openai import FakeOpenAI


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``slidescout ARGS`` in this process: (exit status, stdout, stderr)."""
    old = sys.argv
    sys.argv = ["slidescout", *args]
    try:
        main()
        rc = 0
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    out, err = capsys.readouterr()
    return rc, out, err


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("slide") / "s.tiff"
    make_tiff(p, 3000, 2000, mpp=0.25)
    return p


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- 1. exit codes ----------------------------------------------------------------------------

def test_ask_against_a_refused_port_exits_1_with_an_error_field(capsys, slide: Path, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    rc, out, err = run_cli(capsys, "ask", str(slide), "Diagnosis?", "-m", "openai:x", "--base-url", url,
                           "--retries", "0", "--timeout", "2", "-o", str(tmp_path / "run"), "--json")
    assert rc == 1
    data = json.loads(out)
    assert data["status"] == "error" and "could not connect" in data["error"]
    assert "Traceback" not in err and "error: no answer (error): openai:x" in err


def test_ask_against_a_server_that_never_answers_ends_within_timeout_times_attempts(
        capsys, slide: Path, tmp_path: Path) -> None:
    with FakeOpenAI(lambda body: hang(20)) as srv:
        t0 = time.monotonic()
        rc, out, _ = run_cli(capsys, "ask", str(slide), "Diagnosis?", "-m", "openai:x", "--base-url", srv.base_url,
                             "--timeout", "0.5", "--retries", "1", "-o", str(tmp_path / "run"), "--json")
        elapsed = time.monotonic() - t0
    assert rc == 1 and "timed out" in json.loads(out)["error"]
    assert len(srv.requests) == 2  # timeout × attempts (+ one backoff of about a second)
    assert elapsed < 2 * 0.5 + 1.25 + 4.0


@pytest.mark.parametrize("args,needle", [
    (["--model", "openai:x", "--base-url", "notaurl"], "not an http(s) URL"),
    (["--model", "expert", "--option", "A"], "one --option"),
    (["--model", "openai:x", "--base-url", "http://127.0.0.1:9/v1", "--price-in", "1"], "--price-out"),
])
def test_ask_refuses_bad_options_before_any_work(capsys, slide: Path, tmp_path: Path, args, needle) -> None:
    rc, _, err = run_cli(capsys, "ask", str(slide), "Diagnosis?", *args, "-o", str(tmp_path / "r"))
    assert rc == 2 and needle in one_error_line(err)
    assert not (tmp_path / "r").exists()


def test_ask_refuses_an_empty_question(capsys, slide: Path) -> None:
    rc, _, err = run_cli(capsys, "ask", str(slide), "  ", "--model", "expert")
    assert rc == 2 and "question is empty" in one_error_line(err)


# ---- 2. budgets with unknown prices -------------------------------------------------------------

def test_budget_usd_with_an_unknown_price_warns_and_is_enforced(capsys, slide: Path, tmp_path: Path) -> None:
    with FakeOpenAI(auto_turns=5) as srv:
        rc, out, err = run_cli(capsys, "ask", str(slide), "Diagnosis?", "-m", "openai:gpt-6", "--base-url",
                               srv.base_url, "--budget-usd", "0.0001", "-o", str(tmp_path / "a"), "--json")
        assert "warning: no price is known for openai:gpt-6" in err and "--price-in" in err
        assert rc == 1 and json.loads(out)["status"] == "budget_usd"
        assert len(srv.requests) == 1  # stopped after the first call, charged at the ceiling price
        # a price the user gives: no warning, the real cost
        rc, out, err = run_cli(capsys, "ask", str(slide), "Diagnosis?", "-m", "openai:gpt-6", "--base-url",
                               srv.base_url, "--budget-usd", "5", "--price-in", "1", "--price-out", "2",
                               "--max-steps", "3", "-o", str(tmp_path / "b"), "--json")
    assert rc == 0 and "warning" not in err
    data = json.loads(out)
    assert data["status"] == "answered" and data["cost_usd"] > 0


def test_pricing_file_must_name_the_model(capsys, slide: Path, tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text('[openai."other"]\ninput = 1.0\noutput = 2.0\n')
    rc, _, err = run_cli(capsys, "ask", str(slide), "q", "-m", "openai:x", "--base-url", "http://127.0.0.1:9/v1",
                         "--pricing", str(f))
    assert rc == 2 and "has no price for openai:x" in one_error_line(err)


# ---- 7. bad paths -----------------------------------------------------------------------------

BAD_PATHS = [
    ["synth", "{file}/x", "-n", "1"],
    ["synth", "{file}", "-n", "1"],
    ["ask", "{slide}", "q", "--model", "expert", "-o", "{file}"],
    ["ask", "{slide}", "q", "--model", "expert", "-o", "{file}/run"],
    ["demo", "-o", "{file}"],
    ["eval", "synth", "-n", "1", "--model", "expert", "-o", "{file}"],
    ["eval", "synth", "-n", "1", "--model", "expert", "--data", "{file}"],
    ["eval", "multipathqa", "--csv", "{dir}", "--slides", "{dir}"],
    ["eval", "multipathqa", "--csv", "{file}", "--slides", "{file}"],
    ["eval", "medframeqa", "--data", "{file}", "--cache-dir", "{file}/c"],
    ["eval", "file", "{file}", "--cache-dir", "{file}"],
    ["report", "{dir}", "--plots", "{file}"],
    ["report-html", "{dir}", "-o", "{dir}"],
    ["report-html", "{dir}", "-o", "{file}/r.html"],
]


@pytest.mark.parametrize("args", BAD_PATHS, ids=lambda a: " ".join(a[:2]))
def test_bad_paths_are_one_line(capsys, slide: Path, tmp_path: Path, args: list[str]) -> None:
    f = tmp_path / "afile"
    f.write_text("x")
    d = tmp_path / "adir"
    d.mkdir()
    args = [a.replace("{file}", str(f)).replace("{dir}", str(d)).replace("{slide}", str(slide)) for a in args]
    rc, _, err = run_cli(capsys, *args)
    assert rc == 2
    one_error_line(err)
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("args,needle", [
    (["report-html", "{dir}", "--limit", "-1"], "--limit"),
    (["compare", "{dir}"], "two or more"),
])
def test_accepted_but_wrong_report_inputs(capsys, tmp_path: Path, args, needle) -> None:
    d = tmp_path / "adir"
    d.mkdir()
    rc, _, err = run_cli(capsys, *[a.replace("{dir}", str(d)) for a in args])
    assert rc == 2 and needle in one_error_line(err)


# ---- 1, 3, 4. SIGTERM, one writer, torn tail ---------------------------------------------------

def test_sigterm_second_writer_and_torn_tail(tmp_path: Path) -> None:
    csv_path, slides = make_mpqa(tmp_path / "data", n_tcga=6, n_gtex=2)
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with FakeOpenAI(auto_turns=1, latency_s=0.6) as srv:
        cmd = [sys.executable, "-c", "from slidescout.cli import main; main()", "eval", "multipathqa",
               "--csv", str(csv_path), "--slides", str(slides), "-m", "openai:fake-vlm", "--base-url", srv.base_url,
               "-c", "1", "--max-steps", "4", "--no-progress"]
        proc = subprocess.Popen([*cmd, "-o", str(run)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 90
            while len(finished_keys(read_results(run))) < 1:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
                assert time.monotonic() < deadline
                time.sleep(0.05)
            lock = json.loads((run / ".lock").read_text())
            assert lock["pid"] == proc.pid
            second = subprocess.run([*cmd, "--resume", str(run)], env=env, capture_output=True, text=True, timeout=120)
            assert second.returncode == 2
            assert f"being written by pid {proc.pid} on {socket.gethostname()}" in one_error_line(second.stderr)
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert rc == 143, proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
        assert not (run / ".lock").exists()
        statuses = {json.loads(p.read_text())["status"] for p in (run / "traces").glob("*.json")}
        assert "running" not in statuses
        before = finished_keys(read_results(run))
        assert 1 <= len(before) < 8
        with open(run / "results.jsonl", "ab") as f:  # a kill in the middle of a write
            f.write(b'{"sample_id": "tcga/TCGA-0')
        out = subprocess.run([*cmd, "--resume", str(run)], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
    after = finished_keys(read_results(run))
    assert set(before) <= set(after) and len(after) == len(set(after)) == 8
    torn = list(run.glob("results.jsonl.torn-*"))
    assert len(torn) == 1 and torn[0].read_bytes() == b'{"sample_id": "tcga/TCGA-0'
