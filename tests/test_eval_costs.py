"""``slidescout report``: billed cost with the prompt cache's reads and writes split out, the uncached
cost beside it, dollars per correct answer, and reported input tokens beside the estimate."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from cli_helpers import run_cli
from test_eval_runner_data import make_mpqa, read_results

from slidescout.agents.config import AgentConfig
from slidescout.eval import load_multipathqa
from slidescout.eval.costs import cost_summary
from slidescout.eval.runner import run_eval
from slidescout.testing.fake_anthropic import FakeAnthropic


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An eval of 3 questions with Claude (scout: cache breakpoints on), priced by the user."""
    root = tmp_path_factory.mktemp("costs")
    csv, slides = make_mpqa(root, n_tcga=3, n_gtex=0, missing=0)
    samples = load_multipathqa(csv, slides_dir=slides).samples
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0000000")
        with FakeAnthropic(auto_turns=3) as srv:
            spec = AgentConfig(
                model="anthropic:claude-sonnet-4-5",
                base_url=srv.base_url,
                max_steps=5,
                price_in=3.0,
                price_out=15.0,
            )
            asyncio.run(run_eval(samples, out=root / "run", agent=spec))
    return root / "run"


def test_records_carry_the_cache_split_and_the_estimate(run: Path) -> None:
    records = read_results(run)
    assert len(records) == 3
    for r in records:
        assert r["cache_write_tokens"] > 0 and r["cached_input_tokens"] > 0
        assert r["cache_read_usd"] > 0 and r["cache_write_usd"] > 0
        assert r["cost_usd"] < r["uncached_usd"]  # the cache pays on a 4-request trajectory
        assert r["estimated_input_tokens"] > 0 and r["input_tokens"] > 0


def test_cost_summary_adds_up(run: Path) -> None:
    records = read_results(run)
    (task, c), *_ = cost_summary(records).items()
    assert task == "tcga" and c["n"] == 3
    assert c["billed_usd"] == pytest.approx(sum(r["cost_usd"] for r in records))
    assert c["cache_read_tokens"] == sum(r["cached_input_tokens"] for r in records)
    correct = sum(bool(r["correct"]) for r in records)
    assert correct >= 1  # the fake answers option 1, which is right for one of three
    assert c["usd_per_correct"] == pytest.approx(c["billed_usd"] / correct)
    unknown = cost_summary([{**records[0], "cost_usd": None, "cache_read_usd": None}])
    assert unknown["tcga"]["billed_usd"] is None and unknown["tcga"]["usd_per_correct"] is None


def test_report_shows_the_cost_table(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "report", run)
    assert code == 0, err
    for text in ("Cost (as billed)", "cache reads", "cache writes", "uncached", "$/correct"):
        assert text in out, text
    code, out, err = run_cli(capsys, "report", run, "--json")
    data = json.loads(out)
    assert data["costs"]["tcga"]["cache_write_tokens"] > 0
