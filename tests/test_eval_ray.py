"""The Ray executor on a local Ray instance: worker actors and one-task-per-sample."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from test_eval_runner_data import finished_keys, make_mpqa, read_results

from slidescout.agents.config import AgentConfig
from slidescout.eval import load_multipathqa
from slidescout.eval.config import EvalConfig
from slidescout.eval.runner import run_eval
from slidescout.testing.fake_openai import FakeOpenAI

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


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
