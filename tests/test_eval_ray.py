"""The Ray executor on a local Ray instance: worker actors and one-task-per-sample, a worker pool
kept and reused by the next run, and a worker that crashes mid-run.

Everything here waits for events (records, requests reaching the fake server), each with a
generous bound; nothing asserts a duration.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from test_eval_runner_data import finished_keys, make_mpqa, read_results

from slidescout.agents.config import AgentConfig
from slidescout.eval import load_multipathqa
from slidescout.eval.config import EvalConfig
from slidescout.eval.ray_pool import pool_namespace, release_pool
from slidescout.eval.report import print_report
from slidescout.eval.runner import run_eval
from slidescout.testing.fake_openai import FakeOpenAI

ray = pytest.importorskip("ray")

BOUND_S = 900  # generous: Ray starts worker processes, minutes on a loaded 2-core machine


@pytest.fixture(scope="module")
def local_ray():
    # address="local": a fresh instance of our own, even when another cluster runs on this machine.
    # Ray gives its raylet 30 s to register (not configurable); on a loaded machine that can pass,
    # so the start is tried again, a few times, before the test is failed
    for attempt in range(4):
        try:
            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
            break
        except Exception as exc:
            if "timed out during startup" not in str(exc) or attempt == 3:
                raise
            ray.shutdown()
    yield ray
    ray.shutdown()


@pytest.fixture
def pool(local_ray):
    """Kept workers made by a test are ended after it (they hold the instance's CPUs)."""
    yield local_ray
    release_pool(local_ray)


class GatedOpenAI(FakeOpenAI):
    """The fake server holding every request until ``gate`` is set; ``arrived`` counts them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = threading.Event()
        self.arrived = 0

    async def handle(self, request: Any) -> Any:
        self.arrived += 1
        await asyncio.to_thread(self.gate.wait, BOUND_S)
        return await super().handle(request)


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait for an event (polled), up to a generous bound."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND_S
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"still waiting for {what} after {BOUND_S} s")
        await asyncio.sleep(0.05)


@pytest.mark.timeout(1800)
async def test_ray_actors_and_tasks(local_ray, tmp_path: Path) -> None:
    csv_path, slides = make_mpqa(tmp_path / "data", n_tcga=4, n_gtex=2, bad=1)
    samples = load_multipathqa(csv_path, slides_dir=slides).samples
    with FakeOpenAI(auto_turns=2, latency_s=0.05) as srv:
        spec = AgentConfig(model="openai:fake-vlm", base_url=srv.base_url, max_steps=5)
        summary = await run_eval(
            samples,
            out=tmp_path / "actors",
            agent=spec,
            config=EvalConfig(repeats=2, concurrency=4, executor="ray"),
        )
        lines = read_results(tmp_path / "actors")
        assert len(lines) == 12 and sorted(finished_keys(lines)) == sorted(
            {(s.sample_id, r) for s in samples for r in (0, 1)}
        )
        status = Counter(r["status"] for r in lines)
        assert status == {
            "answered": 10,
            "error": 2,
        }  # the corrupt slide fails in the worker, the run goes on
        for r in lines:  # the workers wrote every trace into the shared run directory
            assert (tmp_path / "actors" / r["trace"]).exists()
        assert summary.scores["tcga"].n == 4 and summary.scores["gtex"].n_records == 4
        assert len(srv.requests) == 30  # 10 answered samples x 3 model calls
        # start-up is reported apart from the run, in the summary and in summary.json
        assert summary.executor["executor"] == "ray" and summary.executor["workers_ready"] >= 1
        assert summary.startup_s is not None and summary.startup_s >= 0
        on_disk = json.loads((tmp_path / "actors" / "summary.json").read_text())
        assert on_disk["executor"]["workers"] == summary.executor["workers"]

        tasks = await run_eval(
            samples[:3],
            out=tmp_path / "tasks",
            agent=spec,
            config=EvalConfig(
                concurrency=2, executor="ray", ray_options={"mode": "tasks", "num_cpus": 0.5}
            ),
        )
    assert tasks.n_finished == 3 and tasks.statuses == {"error": 1, "answered": 2}
    assert ray.is_initialized()  # a Ray instance the caller started is left running


@pytest.mark.timeout(1800)
async def test_kept_workers_serve_the_next_run(pool, tmp_path: Path) -> None:
    """With ``keep_workers`` the worker actors outlive the run; the next run finds them by name,
    ready, with nothing to import: both workers of the second run are the first run's."""
    csv_path, slides = make_mpqa(tmp_path / "data", n_tcga=2, n_gtex=1, missing=0)
    samples = load_multipathqa(csv_path, slides_dir=slides).samples
    options = {"keep_workers": True, "workers": 2}
    summaries = []
    with GatedOpenAI(auto_turns=1) as srv:
        spec = AgentConfig(model="openai:fake-vlm", base_url=srv.base_url, max_steps=4)
        for k in (1, 2):
            srv.gate.clear()
            arrived = srv.arrived
            run = asyncio.ensure_future(
                run_eval(
                    samples,
                    out=tmp_path / f"run{k}",
                    agent=spec,
                    config=EvalConfig(concurrency=2, executor="ray", ray_options=options),
                )
            )
            # one sample per worker (concurrency 2, 2 workers): both are ready once 2 arrive
            await _until(lambda a=arrived, r=run: srv.arrived >= a + 2 or r.done(), "both workers")
            srv.gate.set()
            summaries.append(await asyncio.wait_for(run, BOUND_S))
    first, second = (r.executor for r in summaries)
    assert all(r.n_finished == 3 and r.statuses == {"answered": 3} for r in summaries)
    assert first["workers_ready"] == 2 and first["workers_reused"] == 0
    assert second["workers_ready"] == second["workers_reused"] == 2
    assert sorted(second["worker_pids"]) == sorted(first["worker_pids"])
    named = [
        a
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == pool_namespace()
    ]
    assert len(named) == 2  # still there for a third run
    assert release_pool(ray) == 2
    out = io.StringIO()
    print_report(tmp_path / "run2", Console(file=out, width=200))
    assert "2 Ray workers (2 reused)" in out.getvalue()


@pytest.mark.timeout(1800)
async def test_a_crashed_worker_loses_only_its_samples_in_flight(pool, tmp_path: Path) -> None:
    """Two workers hold two samples each at the fake server; one is killed. Its two samples get
    records that are not finished, the other samples are answered (the crashed worker is started
    again and takes its share of the rest), and ``--resume`` runs the two lost ones."""
    csv_path, slides = make_mpqa(tmp_path / "data", n_tcga=4, n_gtex=2, missing=0)
    samples = load_multipathqa(csv_path, slides_dir=slides).samples
    out = tmp_path / "run"
    options = {"keep_workers": True, "workers": 2}  # named, so the test can find one to kill
    with GatedOpenAI(auto_turns=1) as srv:
        spec = AgentConfig(model="openai:fake-vlm", base_url=srv.base_url, max_steps=4)
        run = asyncio.ensure_future(
            run_eval(
                samples,
                out=out,
                agent=spec,
                config=EvalConfig(concurrency=4, executor="ray", ray_options=options),
            )
        )
        await _until(lambda: srv.arrived >= 4 or run.done(), "4 samples at the server")
        assert not run.done() and srv.arrived == 4  # 2 per worker, each held at its first call
        names = sorted(
            a["name"]
            for a in ray.util.list_named_actors(all_namespaces=True)
            if a["namespace"] == pool_namespace()
        )
        assert len(names) == 2
        victim = ray.get_actor(names[0], namespace=pool_namespace())
        ray.kill(victim, no_restart=False)  # a crash: Ray starts the worker again
        await _until(lambda: len(read_results(out)) >= 2, "the lost samples' records")
        srv.gate.set()
        summary = await asyncio.wait_for(run, BOUND_S)
        lines = read_results(out)
        lost = [r for r in lines if not r["finished"]]
        assert len(lines) == 6 and len(lost) == 2
        assert all(
            r["status"] == "error" and "Ray worker lost the sample" in r["error"] for r in lost
        )
        assert Counter(r["status"] for r in lines if r["finished"]) == {"answered": 4}
        assert summary.n_finished == 4 and summary.n_unfinished == 2
        assert summary.executor["worker_restarts"] >= 1

        resumed = await run_eval(
            samples,
            out=out,
            agent=spec,
            config=EvalConfig(concurrency=4, executor="ray", ray_options=options, resume=True),
        )
    assert resumed.n_skipped == 4 and resumed.n_run == 2 and resumed.n_unfinished == 0
    assert {r["sample_id"] for r in lost} == {
        r["sample_id"] for r in read_results(out)[6:] if r["status"] == "answered"
    }
