"""The evaluation runner: end to end with the fake OpenAI server and the offline expert, failing
samples, per-endpoint connection limits, budgets, Ctrl-C, and resume after SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from test_eval_runner_data import finished_keys, gated_server, make_mpqa, read_results

from slidescout.agents.config import AgentConfig
from slidescout.agents.loop import make_agent
from slidescout.agents.models.profile import permissive_profile
from slidescout.core.messages import AssistantMessage, ModelResponse, TextPart, Usage
from slidescout.core.model_settings import ModelSettings
from slidescout.errors import ConfigError
from slidescout.eval import load_multipathqa, load_synth
from slidescout.eval.config import EvalConfig
from slidescout.eval.runner import run_eval
from slidescout.eval.sample_run import truth_regions
from slidescout.testing.fake_openai import FakeOpenAI
from slidescout.traces.rundir import trace_file


@pytest.fixture(scope="module")
def mpqa(tmp_path_factory) -> tuple[Path, Path]:
    return make_mpqa(tmp_path_factory.mktemp("mpqa"), n_tcga=4, n_gtex=2, bad=1)


def _samples(mpqa: tuple[Path, Path]):
    return load_multipathqa(mpqa[0], slides_dir=mpqa[1]).samples


def _spec(srv: FakeOpenAI, **kw) -> AgentConfig:
    return AgentConfig(
        model="openai:fake-vlm", base_url=srv.base_url, preset="giant", max_steps=5, **kw
    )


async def test_end_to_end_fake_openai_with_a_bad_slide(mpqa, tmp_path: Path) -> None:
    samples = _samples(mpqa)
    with FakeOpenAI(auto_turns=2) as srv:
        summary = await run_eval(
            samples,
            out=tmp_path / "run",
            agent=_spec(srv),
            config=EvalConfig(repeats=2, concurrency=4),
        )
    lines = read_results(tmp_path / "run")
    assert len(lines) == 12  # one line per (sample, repeat)
    assert sorted(finished_keys(lines)) == sorted(
        {(s.sample_id, r) for s in samples for r in (0, 1)}
    )
    status = Counter((r["sample_id"], r["status"]) for r in lines)
    assert status[("tcga/TCGA-00", "error")] == 2  # the corrupt slide: recorded, the run went on
    bad = next(r for r in lines if r["sample_id"] == "tcga/TCGA-00")
    assert bad["error"] and not bad["parsed_ok"] and bad["finished"]
    good = [r for r in lines if r["status"] == "answered"]
    assert len(good) == 10 and all(r["n_steps"] == 3 and r["predicted"] is not None for r in good)
    assert all(r["cost_usd"] is None for r in good)  # a local model without a price: unknown, not 0
    assert {r["predicted"] for r in good if r["task"] == "gtex"} == {
        "Lung"
    }  # option 1 mapped to its label
    for r in lines:  # every repeat has its own trace
        assert (tmp_path / "run" / r["trace"]).exists()
    assert r["trace"].endswith(trace_file(r["sample_id"], r["repeat"]))
    assert summary.n_finished == 12 and summary.n_unfinished == 0 and summary.stopped is None
    tcga, gtex = summary.scores["tcga"], summary.scores["gtex"]
    assert (
        tcga.metric == "balanced_accuracy"
        and tcga.n == 4
        and tcga.repeats == 2
        and tcga.n_errors == 2
    )
    assert tcga.majority_vote is not None and gtex.value == pytest.approx(0.5)
    assert (tmp_path / "run" / "summary.json").exists() and (
        tmp_path / "run" / "manifest.json"
    ).exists()


class CountingModel:
    """A planner that answers after a pause, counting how many of its requests overlap."""

    name = "counting:model"
    profile = permissive_profile("counting:model")
    settings = ModelSettings()

    def __init__(self) -> None:
        self.active = 0
        self.peak = 0

    async def request(self, req):
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await asyncio.sleep(0.05)
        finally:
            self.active -= 1
        return ModelResponse(
            message=AssistantMessage(parts=[TextPart(text='{"answer": 2}')]),
            usage=Usage(input_tokens=10, output_tokens=2, cost_usd=0.001),
            model=self.name,
        )

    async def aclose(self) -> None:
        pass


async def test_connections_limited_per_endpoint(mpqa, tmp_path: Path) -> None:
    model = CountingModel()
    factory = lambda budget, repeat: make_agent(model, preset="giant", budget=budget)  # noqa: E731
    summary = await run_eval(
        _samples(mpqa),
        out=tmp_path / "run",
        agent_factory=factory,
        config=EvalConfig(repeats=3, concurrency=8, max_connections=2),
    )
    assert model.peak == 2
    assert summary.n_finished == 18 and summary.cost_usd == pytest.approx(
        15 * 0.001
    )  # 3 failed on the bad slide
    with pytest.raises(ConfigError, match="AgentConfig"):
        await run_eval(
            _samples(mpqa),
            out=tmp_path / "ray",
            agent_factory=factory,
            config=EvalConfig(executor="ray"),
        )


async def test_budget_stops_new_samples_and_resume_finishes(mpqa, tmp_path: Path) -> None:
    samples = _samples(mpqa)
    run = tmp_path / "run"
    with FakeOpenAI(auto_turns=2) as srv:
        summary = await run_eval(
            samples, out=run, agent=_spec(srv), config=EvalConfig(concurrency=1, budget_tokens=1)
        )
        assert summary.stopped == "budget_tokens"
        lines = read_results(run)
        # the corrupt slide fails before any model call; the next sample is stopped by the loop after one call
        assert [r["status"] for r in lines] == ["error", "budget_tokens"]
        assert lines[1]["finished"] is False and summary.n_unfinished == len(samples) - 1
        with pytest.raises(Exception, match="already holds a run"):
            await run_eval(samples, out=run, agent=_spec(srv))
        resumed = await run_eval(
            samples, out=run, agent=_spec(srv), config=EvalConfig(concurrency=3, resume=True)
        )
    assert (
        resumed.n_skipped == 1 and resumed.n_run == len(samples) - 1 and resumed.n_unfinished == 0
    )
    keys = finished_keys(read_results(run))
    assert len(keys) == len(set(keys)) == len(samples)  # nothing run twice


async def test_ctrl_c_cancels_in_flight_and_keeps_finished(mpqa, tmp_path: Path) -> None:
    samples = _samples(mpqa)
    run = tmp_path / "run"
    srv, release = gated_server(5, auto_turns=2)  # 2 at once x 3 calls: one sample answered
    with srv:
        task = asyncio.create_task(
            run_eval(samples, out=run, agent=_spec(srv), config=EvalConfig(concurrency=2))
        )
        try:
            deadline = time.monotonic() + 600  # a generous bound on waiting for the event
            while not any(r["status"] == "answered" for r in read_results(run)):
                assert time.monotonic() < deadline, "no sample was answered"
                await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            release.set()
        lines = read_results(run)
        cancelled = [r for r in lines if r["status"] == "cancelled"]
        assert cancelled and all(r["finished"] is False for r in cancelled)
        for r in cancelled:
            assert '"status": "cancelled"' in (run / r["trace"]).read_text()
        done_before = set(finished_keys(lines))
        resumed = await run_eval(
            samples, out=run, agent=_spec(srv), config=EvalConfig(concurrency=3, resume=True)
        )
    assert resumed.n_skipped == len(done_before) and resumed.n_unfinished == 0
    keys = finished_keys(read_results(run))
    assert len(keys) == len(set(keys)) == len(samples)


@pytest.mark.timeout(1800)  # CLI runs on a loaded machine: bounded by events, not speed
def test_resume_after_sigkill_gives_the_same_samples(tmp_path: Path) -> None:
    csv_path, slides = make_mpqa(tmp_path / "data", n_tcga=6, n_gtex=2, bad=1)
    samples = load_multipathqa(csv_path, slides_dir=slides).samples
    run = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    srv, release = gated_server(12, auto_turns=1)  # 2 at once x 2 calls: 5+ answered, then held
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
            "2",
            "-r",
            "2",
            "--max-steps",
            "4",
            "--no-progress",
        ]
        proc = subprocess.Popen(
            [*cmd, "-o", str(run)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            deadline = time.monotonic() + 600  # a generous bound on waiting for the event
            while len(finished_keys(read_results(run))) < 4:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "four samples never finished"
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=300)
        finally:
            release.set()
            if proc.poll() is None:
                proc.kill()
        before = finished_keys(read_results(run))
        assert 4 <= len(before) < 2 * len(samples)  # killed mid-way
        out = subprocess.run(
            [*cmd, "--resume", str(run)], env=env, capture_output=True, text=True, timeout=600
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert "tcga" in out.stdout and "gtex" in out.stdout  # the score tables
        straight = asyncio.run(
            run_eval(
                samples,
                out=tmp_path / "straight",
                agent=AgentConfig(model="openai:fake-vlm", base_url=srv.base_url, max_steps=4),
                config=EvalConfig(repeats=2, concurrency=8),
            )
        )
    after = finished_keys(read_results(run))
    assert len(after) == len(set(after))  # no (sample, repeat) recorded twice
    assert set(before) <= set(after)
    expected = finished_keys(read_results(tmp_path / "straight"))
    assert set(after) == set(expected) and straight.n_finished == len(expected) == 2 * len(samples)
    killed = {(r["sample_id"], r["repeat"]): r["predicted"] for r in read_results(run)}
    assert killed == {
        (r["sample_id"], r["repeat"]): r["predicted"] for r in read_results(tmp_path / "straight")
    }


def test_run_sample_carries_truth_regions(tmp_path: Path) -> None:
    from slidescout.slides.synth import generate_dataset

    csv_path = generate_dataset(tmp_path / "synth", 1, size=(1536, 1152), seed=5)
    load = load_synth(csv_path, tasks="synth_diagnosis")
    s = load.samples[0]
    assert not s.is_image_set and s.images == []
    regions = truth_regions(s)
    truth = __import__("json").loads(Path(s.meta["truth_path"]).read_text())
    assert [r["box"] for r in regions] == [les["box"] for les in truth["lesions"]]
    withregions = s.model_copy(update={"regions": regions})
    assert withregions.truth is not None and withregions.truth.answer == s.answer_label
    assert [r["box"] for r in withregions.truth.regions] == [les["box"] for les in truth["lesions"]]


async def test_expert_on_synthpath_with_grounding(tmp_path: Path) -> None:
    from slidescout.slides.synth import generate_dataset

    csv_path = generate_dataset(tmp_path / "synth", 1, size=(2048, 1536), seed=11)
    load = load_synth(csv_path)
    summary = await run_eval(
        load.samples,
        out=tmp_path / "run",
        agent=AgentConfig(model="expert", max_steps=3),
        config=EvalConfig(concurrency=4),
    )
    lines = read_results(tmp_path / "run")
    assert len(lines) == len(load.samples) >= 2
    assert all(r["status"] == "answered" and r["parsed_ok"] for r in lines)
    for r in lines:
        assert r["n_images"] >= 2 and r["viewed_mm2"] and r["finest_mpp"] is not None
        truth = __import__("json").loads(Path(load.samples[0].meta["truth_path"]).read_text())
        if r["sample_id"] == load.samples[0].sample_id and truth["lesions"]:
            g = r["grounding"]
            assert g["n_lesions"] == len(truth["lesions"]) and g["n_views"] >= 1
            assert 0 <= g["fraction_seen"] <= 1
    assert summary.scores["synth_diagnosis"].n == 1
