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
from cli_helpers import run_cli
from slidefactory import make_tiff
from test_eval_runner_data import finished_keys, gated_server, make_mpqa, read_results

from slidescout.eval.config import EvalConfig
from slidescout.testing.fake_common import hang
from slidescout.testing.fake_openai import FakeOpenAI


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


def test_ask_against_a_refused_port_exits_1_with_an_error_field(
    capsys, slide: Path, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    rc, out, err = run_cli(
        capsys,
        "ask",
        str(slide),
        "Diagnosis?",
        "-m",
        "openai:x",
        "--base-url",
        url,
        "--retries",
        "0",
        "--timeout",
        "2",
        "-o",
        str(tmp_path / "run"),
        "--json",
    )
    assert rc == 1
    data = json.loads(out)
    assert data["status"] == "error" and "could not connect" in data["error"]
    assert "Traceback" not in err and "error: no answer (error): openai:x" in err


def test_ask_against_a_server_that_never_answers_ends_within_timeout_times_attempts(
    capsys, slide: Path, tmp_path: Path
) -> None:
    import openai  # noqa: F401  (its first import takes seconds on a loaded machine: not what is measured)

    # --timeout bounds the whole request, sending included: it is long enough for each attempt
    # to reach the server on a loaded machine, and far shorter than the server's silence
    with FakeOpenAI(lambda body: hang(120)) as srv:
        rc, out, _ = run_cli(
            capsys,
            "ask",
            str(slide),
            "Diagnosis?",
            "-m",
            "openai:x",
            "--base-url",
            srv.base_url,
            "--timeout",
            "5",
            "--retries",
            "1",
            "-o",
            str(tmp_path / "run"),
            "--json",
        )
    # the client gave up on each attempt (a reply after 120 s would read "504", not "timed out")
    assert rc == 1 and "timed out" in json.loads(out)["error"]
    assert len(srv.requests) == 2  # two attempts, then the error


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--model", "openai:x", "--base-url", "notaurl"], "not an http(s) URL"),
        (["--model", "expert", "--option", "A"], "one option"),
        (
            ["--model", "openai:x", "--base-url", "http://127.0.0.1:9/v1", "--price-in", "1"],
            "--price-out",
        ),
    ],
)
def test_ask_refuses_bad_options_before_any_work(
    capsys, slide: Path, tmp_path: Path, args, needle
) -> None:
    rc, _, err = run_cli(capsys, "ask", str(slide), "Diagnosis?", *args, "-o", str(tmp_path / "r"))
    assert rc == 2 and needle in one_error_line(err)
    assert not (tmp_path / "r").exists()


def test_ask_refuses_an_empty_question(capsys, slide: Path) -> None:
    rc, _, err = run_cli(capsys, "ask", str(slide), "  ", "--model", "expert")
    assert rc == 2 and "question is empty" in one_error_line(err)


# ---- 2. budgets with unknown prices -------------------------------------------------------------


def test_budget_usd_with_an_unknown_price_warns_and_is_enforced(
    capsys, slide: Path, tmp_path: Path
) -> None:
    with FakeOpenAI(auto_turns=5) as srv:
        rc, out, err = run_cli(
            capsys,
            "ask",
            str(slide),
            "Diagnosis?",
            "-m",
            "openai:gpt-6",
            "--base-url",
            srv.base_url,
            "--budget-usd",
            "0.0001",
            "-o",
            str(tmp_path / "a"),
            "--json",
        )
        assert "warning: no price is known for openai:gpt-6" in err and "--price-in" in err
        assert rc == 1 and json.loads(out)["status"] == "budget_usd"
        # the first call's worst case at the ceiling price does not fit: it is never sent
        assert len(srv.requests) == 0 and "may cost up to" in json.loads(out)["error"]
        # a price the user gives: no warning, the real cost
        rc, out, err = run_cli(
            capsys,
            "ask",
            str(slide),
            "Diagnosis?",
            "-m",
            "openai:gpt-6",
            "--base-url",
            srv.base_url,
            "--budget-usd",
            "5",
            "--price-in",
            "1",
            "--price-out",
            "2",
            "--max-steps",
            "3",
            "-o",
            str(tmp_path / "b"),
            "--json",
        )
    assert rc == 0 and "warning" not in err
    data = json.loads(out)
    assert data["status"] == "answered" and data["cost_usd"] > 0


def test_pricing_file_must_name_the_model(capsys, slide: Path, tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text('[openai."other"]\ninput = 1.0\noutput = 2.0\n')
    rc, _, err = run_cli(
        capsys,
        "ask",
        str(slide),
        "q",
        "-m",
        "openai:x",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--pricing",
        str(f),
    )
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
    args = [
        a.replace("{file}", str(f)).replace("{dir}", str(d)).replace("{slide}", str(slide))
        for a in args
    ]
    rc, _, err = run_cli(capsys, *args)
    assert rc == 2
    one_error_line(err)
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize(
    "args,needle",
    [
        (["report-html", "{dir}", "--limit", "-1"], "--limit"),
        (["compare", "{dir}"], "two or more"),
    ],
)
def test_accepted_but_wrong_report_inputs(capsys, tmp_path: Path, args, needle) -> None:
    d = tmp_path / "adir"
    d.mkdir()
    rc, _, err = run_cli(capsys, *[a.replace("{dir}", str(d)) for a in args])
    assert rc == 2 and needle in one_error_line(err)


# ---- 1, 3, 4. SIGTERM, one writer, torn tail ---------------------------------------------------


@pytest.mark.timeout(1800)  # three CLI runs on a loaded machine: bounded by events, not speed
def test_sigterm_second_writer_and_torn_tail(tmp_path: Path) -> None:
    """The first writer finishes one sample, then its next request is held (an event, not a
    delay) until the second writer has been refused and SIGTERM sent: no race with the clock."""
    csv_path, slides = make_mpqa(tmp_path / "data", n_tcga=6, n_gtex=2)
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    srv, release = gated_server(2, auto_turns=1)  # one sample (two calls), then held
    with srv:
        cmd = [
            sys.executable,
            "-c",
            "from slidescout.cli import main; main()",
            "eval",
            "multipathqa",
            "--csv",
            str(csv_path),
            "--slides",
            str(slides),
            "-m",
            "openai:fake-vlm",
            "--base-url",
            srv.base_url,
            "-c",
            "1",
            "--max-steps",
            "4",
            "--no-progress",
        ]
        proc = subprocess.Popen(
            [*cmd, "-o", str(run)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            deadline = time.monotonic() + 600  # a generous bound on waiting for the event
            while len(finished_keys(read_results(run))) < 1:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the first sample never finished"
                time.sleep(0.05)
            lock = json.loads((run / ".lock").read_text())
            assert lock["pid"] == proc.pid
            second = subprocess.run(
                [*cmd, "--resume", str(run)], env=env, capture_output=True, text=True, timeout=600
            )
            assert second.returncode == 2, second.stdout[-2000:] + second.stderr[-2000:]
            assert f"being written by pid {proc.pid} on {socket.gethostname()}" in one_error_line(
                second.stderr
            )
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=300)
        finally:
            release.set()
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
        out = subprocess.run(
            [*cmd, "--resume", str(run)], env=env, capture_output=True, text=True, timeout=600
        )
        assert out.returncode == 0, out.stderr[-2000:]
    after = finished_keys(read_results(run))
    assert set(before) <= set(after) and len(after) == len(set(after)) == 8
    torn = list(run.glob("results.jsonl.torn-*"))
    assert len(torn) == 1 and torn[0].read_bytes() == b'{"sample_id": "tcga/TCGA-0'


# ---- 3. full disk, torn tails, the lock (units) -----------------------------------------------


def test_full_disk_is_one_line_and_leaves_no_tmp(capsys, monkeypatch, tmp_path: Path) -> None:
    import errno

    from slidescout.traces.rundir import RunDir

    csv_path, slides = make_mpqa(tmp_path / "data", n_tcga=3, n_gtex=0)
    run = tmp_path / "run"
    real_replace = os.replace

    def full(src, dst, *a, **kw):
        if str(run) in str(dst) and "traces" in str(dst):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real_replace(src, dst, *a, **kw)

    def append_full(self, record):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path / "results.jsonl"))

    monkeypatch.setattr(os, "replace", full)
    monkeypatch.setattr(RunDir, "append_result", append_full)
    rc, _, err = run_cli(
        capsys,
        "eval",
        "multipathqa",
        "--csv",
        str(csv_path),
        "--slides",
        str(slides),
        "-m",
        "expert",
        "-c",
        "1",
        "--no-progress",
        "-o",
        str(run),
    )
    line = one_error_line(err)
    assert rc == 1 and "no space left on the device" in line and f"--resume {run}" in line
    assert not list(run.rglob("*.tmp"))
    assert not (run / ".lock").exists()


def test_full_disk_stops_the_run_and_resume_reruns_the_samples_in_flight(
    capsys, monkeypatch, tmp_path: Path
) -> None:
    """Images cannot be stored (ENOSPC) while results still can: no sample may end as a final
    ``error`` record; the run stops with exit 1, and ``--resume`` runs every sample."""
    import errno

    from slidescout.traces.rundir import BlobStore

    csv_path, slides = make_mpqa(tmp_path / "data", n_tcga=4, n_gtex=0, missing=0)
    run = tmp_path / "run"
    real_put = BlobStore.put

    def full(self, data, media_type="image/jpeg"):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.root))

    args = ["eval", "multipathqa", "--csv", csv_path, "--slides", slides, "-m", "expert"]
    args += ["-c", "2", "--no-progress"]
    monkeypatch.setattr(BlobStore, "put", full)
    rc, _, err = run_cli(capsys, *args, "-o", run)
    line = one_error_line(err)
    assert rc == 1 and "no space left on the device" in line and f"--resume {run}" in line
    assert finished_keys(read_results(run)) == []  # nothing final: every sample is to be rerun
    monkeypatch.setattr(BlobStore, "put", real_put)
    rc, out, err = run_cli(capsys, *args, "--resume", run)
    assert rc == 0, err
    keys = finished_keys(read_results(run))
    assert len(keys) == len(set(keys)) == 4


def test_repair_keeps_a_complete_last_record_without_newline(tmp_path: Path) -> None:
    from slidescout.traces.safeio import repair_jsonl_tail

    p = tmp_path / "results.jsonl"
    p.write_bytes(b'{"a": 1}\n{"b": 2}')
    assert repair_jsonl_tail(p) is None
    assert p.read_bytes() == b'{"a": 1}\n{"b": 2}\n'
    p.write_bytes(b'{"a": 1}\n{"b": ')
    saved = repair_jsonl_tail(p)
    assert p.read_bytes() == b'{"a": 1}\n' and saved is not None and saved.read_bytes() == b'{"b": '
    assert repair_jsonl_tail(p) is None  # already clean


def test_atomic_write_failure_leaves_no_tmp(monkeypatch, tmp_path: Path) -> None:
    import errno

    from slidescout.traces.safeio import atomic_write

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError):
        atomic_write(tmp_path / "x.json", "{}")
    assert list(tmp_path.iterdir()) == []


def test_run_lock_takes_over_a_dead_pid_and_refuses_another_host(tmp_path: Path) -> None:
    from slidescout.traces.runlock import RunLock, RunLockedError

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".lock").write_text(
        json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "x"})
    )
    with RunLock(tmp_path) as lock:
        assert lock.held and lock.took_over and lock.took_over["pid"] == dead.pid
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    assert not (tmp_path / ".lock").exists()
    (tmp_path / ".lock").write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "t"}))
    with pytest.raises(RunLockedError, match="pid 1 on elsewhere"):
        RunLock(tmp_path).acquire()


# ---- 2. budget units ---------------------------------------------------------------------------


def test_unknown_cost_is_charged_at_the_ceiling_only_against_a_dollar_budget() -> None:
    from slidescout.agents.budget import Budget
    from slidescout.agents.models.pricing import ceiling_price
    from slidescout.core.messages import Usage

    top = ceiling_price()
    assert top.input >= 15.0 and top.output >= 75.0  # claude-opus-4-1 list price (pricing.toml)
    b = Budget(usd=0.03)
    b.charge(Usage(input_tokens=1000, output_tokens=100, cost_usd=None))
    assert b.spent_usd == pytest.approx((1000 * top.input + 100 * top.output) / 1e6)
    assert b.exceeded() is None
    b.charge(Usage(input_tokens=1000, output_tokens=0, cost_usd=None))
    assert b.exceeded() == "budget_usd" and "estimated" in b.describe("budget_usd")
    free = Budget(tokens=10**6)
    free.charge(Usage(input_tokens=1000, output_tokens=100, cost_usd=None))
    assert free.spent_usd == 0.0 and free.unknown_cost_calls == 1


# ---- 5. endpoint failures stop an eval ---------------------------------------------------------


async def test_eval_stops_after_n_samples_whose_every_call_failed(tmp_path: Path) -> None:
    from slidescout.agents.config import AgentConfig
    from slidescout.eval import load_multipathqa
    from slidescout.eval.runner import run_eval

    csv_path, slides = make_mpqa(tmp_path / "data", n_tcga=6, n_gtex=2)
    samples = load_multipathqa(csv_path, slides_dir=slides).samples
    spec = AgentConfig(
        model="openai:x",
        base_url=f"http://127.0.0.1:{_closed_port()}/v1",
        model_options={"max_retries": 0},
    )
    summary = await run_eval(
        samples,
        out=tmp_path / "run",
        agent=spec,
        config=EvalConfig(concurrency=1, stop_after_failures=3),
    )
    assert summary.stopped == "endpoint_failed" and summary.n_run == 3
    assert summary.stop_detail and "could not connect" in summary.stop_detail


# ---- 6. memory ---------------------------------------------------------------------------------


def test_memory_warning_names_the_peak_and_a_concurrency_that_fits() -> None:
    from slidescout.cli.memory import memory_warning

    assert memory_warning(4, "expert", available=16000) is None
    msg = memory_warning(1024, "expert", available=8000)
    assert (
        msg is not None
        and "--concurrency 1024" in msg
        and "70.2 GB" in msg
        and "--concurrency 53 " in msg
    )


# ---- 8. messages -------------------------------------------------------------------------------


def _raw_server(body: bytes, ctype: str):
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.mark.parametrize(
    "body,ctype,needle",
    [
        (b'{"id": "x", "choices": [{"mess', "application/json", "not valid JSON"),
        (
            b"<!doctype html><html><body>login</body></html>",
            "text/html",
            "answered with an HTML page",
        ),
    ],
)
async def test_cut_off_or_html_replies_are_named(body: bytes, ctype: str, needle: str) -> None:
    from slidescout.agents.models import resolve_model
    from slidescout.core.messages import ModelRequest, TextPart, UserMessage
    from slidescout.errors import ModelError

    srv = _raw_server(body, ctype)
    try:
        model = resolve_model(
            "openai:x", base_url=f"http://127.0.0.1:{srv.server_address[1]}/v1", max_retries=0
        )
        with pytest.raises(ModelError) as info:
            await model.request(
                ModelRequest(messages=[UserMessage(parts=[TextPart(text="hi")])], tools=[])
            )
        await model.aclose()
    finally:
        srv.shutdown()
    assert needle in str(info.value) and "Traceback" not in str(info.value)


def test_malformed_results_and_bad_view_host_are_named(capsys, tmp_path: Path) -> None:
    from slidescout.errors import ConfigError
    from slidescout.traces.viewer.server import bind

    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / "results.jsonl").write_text("garbage\nmore\n")
    rc, _, err = run_cli(capsys, "report", str(tmp_path))
    assert rc == 2 and "malformed" in one_error_line(err)
    with pytest.raises(ConfigError, match="not an address of this machine") as info:
        bind("999.1.1.1", 0)
    assert "--port" not in str(info.value)


def test_model_ids_print_as_text_not_emoji(capsys, slide: Path) -> None:
    rc, _, err = run_cli(capsys, "ask", str(slide), "q", "--model", "nosuch:x:")
    line = one_error_line(err)
    assert rc == 2 and "'nosuch:x:'" in line and "\u274c" not in line


def test_failure_reason_is_never_a_traceback_or_the_status_again() -> None:
    from slidescout.agents.loop import failure_reason
    from slidescout.core.trace import ErrorEvent, NoteEvent, SlideRef, Trace

    def res(status, events):
        return Trace(
            sample_id="s",
            question="q",
            model="m",
            preset="p",
            slide=SlideRef(path="x"),
            status=status,
            events=events,
        )

    assert "step budget ran out" in (failure_reason(res("max_steps", [])) or "")
    events = [
        ErrorEvent(id="e1", message="JSONDecodeError: cut", fatal=True),
        NoteEvent(id="n1", message="Traceback (most recent call last):\n  File x"),
    ]
    assert failure_reason(res("error", events)) == "JSONDecodeError: cut"
    assert failure_reason(res("answered", [])) is None


def test_eval_file_refuses_slides_for_a_file_that_does_not_use_them(capsys, tmp_path: Path) -> None:
    from slidescout.slides.synth import generate_dataset

    csv_path = generate_dataset(tmp_path / "synth", 1, size=(1024, 1024), seed=0)
    rc, _, err = run_cli(
        capsys,
        "eval",
        "file",
        str(csv_path),
        "--slides",
        str(tmp_path),
        "-m",
        "expert",
        "-o",
        str(tmp_path / "run"),
    )
    assert rc == 2 and "--slides applies to MultiPathQA" in one_error_line(err)


# ---- 9. accepted but wrong ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,needle",
    [
        (["render", "{slide}", "--quality", "500", "-o", "{tmp}/x.jpg"], "--quality"),
        (["lookup", "x", "--index", "{tmp}/no/x.sqlite"], "no such index"),
        (["mcp", "{tmp}", "--device", "bogus"], "unknown --device"),
        (["demo", "--model", "bogus", "-o", "{tmp}/demo"], "malformed model id"),
    ],
)
def test_wrong_inputs_are_refused_before_any_work(
    capsys, slide: Path, tmp_path: Path, args, needle
) -> None:
    args = [a.replace("{slide}", str(slide)).replace("{tmp}", str(tmp_path)) for a in args]
    rc, _, err = run_cli(capsys, *args)
    assert rc == 2 and needle in err and "Traceback" not in err
    assert not (tmp_path / "no").exists() and not (tmp_path / "demo").exists()


def test_replay_of_another_question_fails_and_expert_tool_warning(
    capsys, slide: Path, tmp_path: Path
) -> None:
    rc, out, err = run_cli(
        capsys,
        "ask",
        str(slide),
        "Where is the tumour?",
        "-m",
        "expert",
        "--tools",
        "+measure",
        "--max-steps",
        "3",
        "-o",
        str(tmp_path / "a"),
        "--json",
    )
    assert rc == 0, err
    assert "warning: the offline expert planner never calls measure" in err
    trace = json.loads(out)["trace"]
    rc, out, err = run_cli(
        capsys,
        "ask",
        str(slide),
        "Is this benign?",
        "-m",
        f"replay:{trace}",
        "--max-steps",
        "3",
        "-o",
        str(tmp_path / "b"),
        "--json",
    )
    assert rc == 1 and "recorded the question 'Where is the tumour?'" in json.loads(out)["error"]
    rc, out, err = run_cli(
        capsys,
        "ask",
        str(slide),
        "Where is the tumour?",
        "-m",
        f"replay:{trace}",
        "--max-steps",
        "3",
        "-o",
        str(tmp_path / "c"),
        "--json",
    )
    assert rc == 0 and json.loads(out)["status"] == "answered"


def test_eval_interrupted_exits_130(capsys, monkeypatch, tmp_path: Path) -> None:
    import slidescout.cli.eval_cmd as runner

    async def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    csv_path, slides = make_mpqa(tmp_path / "data", n_tcga=2, n_gtex=0)
    monkeypatch.setattr(runner, "run_eval", interrupted)
    rc, _, err = run_cli(
        capsys,
        "eval",
        "multipathqa",
        "--csv",
        str(csv_path),
        "--slides",
        str(slides),
        "-m",
        "expert",
        "--no-progress",
        "-o",
        str(tmp_path / "run"),
    )
    assert rc == 130 and "interrupted: finished samples are kept" in err and "Traceback" not in err


def test_sigterm_inside_asyncio_run_cancels_like_ctrl_c() -> None:
    import asyncio

    from slidescout.cli import signals

    cancelled: list[bool] = []

    async def work() -> None:
        never = asyncio.Event()
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(never.wait(), timeout=300)  # only the cancellation ends it
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    # as in a fresh `slidescout` process: Python's own SIGINT handler, which asyncio.run replaces
    # with its cancelling one (an earlier test in this worker, Ray's driver for one, may have
    # installed another)
    old_sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
    signals.install_signal_handlers()
    try:
        with pytest.raises(KeyboardInterrupt):
            asyncio.run(work())
        assert cancelled == [True] and signals.interrupt_code() == 143
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, old_sigint)
        signals._terminated.clear()


def test_model_text_with_markup_prints_as_text(capsys, slide: Path, tmp_path: Path) -> None:
    with FakeOpenAI(
        auto_turns=1, auto_answer='{"answer": 1} see [/] and [bold]x[/bold] :x:'
    ) as srv:
        rc, out, err = run_cli(
            capsys,
            "ask",
            str(slide),
            "Diagnosis?",
            "--option",
            "A",
            "--option",
            "B",
            "-m",
            "openai:x:",
            "--base-url",
            srv.base_url,
            "--max-steps",
            "3",
            "-o",
            str(tmp_path / "run"),
        )
    assert rc == 0, err
    assert "see [/] and [bold]x[/bold] :x:" in out and "\u274c" not in out
    rc, out, err = run_cli(capsys, "trace", "show", str(tmp_path / "run"))
    assert rc == 0, err
    assert "openai:x:" in out and "[bold]x[/bold] :x:" in out


def test_eval_on_a_dead_endpoint_exits_1_with_the_reason(capsys, tmp_path: Path) -> None:
    csv_path, slides = make_mpqa(tmp_path / "data", n_tcga=3, n_gtex=0)
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    rc, _, err = run_cli(
        capsys,
        "eval",
        "multipathqa",
        "--csv",
        str(csv_path),
        "--slides",
        str(slides),
        "-m",
        "openai:x",
        "--base-url",
        url,
        "--retries",
        "0",
        "--stop-after-failures",
        "2",
        "-c",
        "4",
        "--no-progress",
        "-o",
        str(tmp_path / "run"),
    )
    line = one_error_line(err)
    assert (
        rc == 1
        and "failed every call of the last 2 samples" in line
        and "could not connect" in line
    )
    assert "--retry-errors" in line


def test_eval_where_every_sample_failed_exits_1_and_the_report_leads_with_failures(
    capsys, tmp_path: Path
) -> None:
    csv_path, slides = make_mpqa(tmp_path / "data", n_tcga=3, n_gtex=0, bad=3, missing=0)
    run = tmp_path / "run"
    args = ["eval", "multipathqa", "--csv", csv_path, "--slides", slides, "-m", "expert"]
    rc, out, err = run_cli(capsys, *args, "--no-progress", "-o", run)
    line = one_error_line(err)
    assert rc == 1 and line.startswith("error: no sample was scored: 3 of 3 finished samples")
    assert f"--resume {run} --retry-errors" in line
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines[0].startswith("multipathqa: 3 samples")  # what was loaded, then the report
    assert lines[1].startswith("3 of 3 finished samples failed (status error)")
    rc, out, _ = run_cli(capsys, "report", run)  # the report says the same, first
    assert rc == 0 and out.lstrip().startswith("3 of 3 finished samples failed")
    rc, out, _ = run_cli(capsys, "report", run, "--json")
    assert json.loads(out)["n_failed"] == 3


def test_eval_with_some_failed_samples_exits_0(capsys, tmp_path: Path) -> None:
    csv_path, slides = make_mpqa(tmp_path / "data", n_tcga=3, n_gtex=0, bad=1, missing=0)
    args = ["eval", "multipathqa", "--csv", csv_path, "--slides", slides, "-m", "expert"]
    rc, out, err = run_cli(capsys, *args, "--no-progress", "-o", tmp_path / "run")
    assert rc == 0, err
    assert out.splitlines()[1].startswith("1 of 3 finished samples failed")


# ---- issue 21, item 13: one line, exit 2, where a traceback or a wrong message appeared --------


@pytest.fixture(scope="module")
def not_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("notruns")
    empty = root / "empty"
    empty.mkdir()
    damaged = root / "damaged"
    (damaged / "traces").mkdir(parents=True)
    (damaged / "manifest.json").write_text('{"config": ')
    (damaged / "results.jsonl").write_text("")
    traces_only = root / "traces_only"
    (traces_only / "traces").mkdir(parents=True)
    fifo = root / "pipe.svs"
    os.mkfifo(fifo)
    return {"empty": empty, "damaged": damaged, "fifo": fifo, "traces_only": traces_only}


ASK = ["ask", "{slide}", "Diagnosis?", "-m"]
BAD_INPUTS = {
    "ipv6 base url": (ASK + ["openai:x", "--base-url", "http://[::1"], "is malformed"),
    "empty base url": (ASK + ["openai:x", "--base-url", ""], "--base-url is empty"),
    "port 99999": (ASK + ["openai:x", "--base-url", "http://127.0.0.1:99999/v1"], "Port out"),
    "device tpu:9": (ASK + ["expert", "--device", "tpu:9"], "unknown device"),
    "nan temperature": (ASK + ["expert", "--temperature", "nan"], "--temperature: nan is not"),
    "nan timeout": (ASK + ["expert", "--timeout", "nan"], "--timeout: nan is not a finite"),
    "nan price": (ASK + ["expert", "--price-in", "nan"], "--price-in: nan is not a finite"),
    "nan budget": (
        ["eval", "file", "{slide}", "-m", "expert", "--budget-usd", "nan"],
        "--budget-usd: nan is not a finite",
    ),
    "fifo slide": (["info", "{fifo}"], "is not a regular file"),
    "resume a folder that is no run": (
        ["eval", "synth", "-n", "1", "-m", "expert", "--resume", "{empty}"],
        "not a run directory",
    ),
    "resume a damaged manifest": (
        ["eval", "synth", "-n", "1", "-m", "expert", "--resume", "{damaged}"],
        "manifest.json is damaged (not JSON",
    ),
    "report of a damaged manifest": (["report", "{damaged}"], "manifest.json is damaged"),
    "report-html of no run": (["report-html", "{empty}"], "not a run directory"),
    "judge of no run": (["judge", "{empty}", "-m", "openai:x"], "not a run directory"),
    "compare of no runs": (["compare", "{empty}", "{empty}"], "not a run directory"),
    "report-html of no traces": (["report-html", "{traces_only}"], "holds no traces"),
    "judge of no results": (["judge", "{traces_only}", "-m", "openai:x"], "no results to grade"),
    "compare of no results": (["compare", "{traces_only}", "{traces_only}"], "no results yet"),
    "data status of a missing folder": (
        ["data", "status", "multipathqa", "--to", "{empty}/missing"],
        "--to folder",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_2(
    case: str, capsys, slide: Path, not_runs: dict[str, Path], monkeypatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    args, expected = BAD_INPUTS[case]
    where = {"slide": slide, **not_runs}
    rc, _, err = run_cli(capsys, *(a.format(**where) for a in args))
    line = one_error_line(err)
    assert rc == 2 and expected in line, line
