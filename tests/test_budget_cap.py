"""``--budget-usd`` is a cap (issue 21 item 9): each call's worst case is reserved before it is
sent, so with several samples in flight what is billed never passes the budget, at a known price
and at an unknown one (charged at the highest list price). The fake OpenAI server bills replies
that use nearly all of ``max_output_tokens``, with a latency that keeps calls in flight together.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_eval_runner_data import make_mpqa, read_results

from slidescout.agents.budget import (
    IMAGE_TOKEN_BOUND,
    Budget,
    CallBound,
    call_bound,
    input_token_bound,
    worst_case_usd,
)
from slidescout.agents.config import AgentConfig
from slidescout.agents.models import resolve_model
from slidescout.agents.models.pricing import Price, ceiling_price
from slidescout.core.messages import ImagePart, ImageRef, ModelRequest, TextPart, Usage, UserMessage
from slidescout.errors import BudgetExceeded
from slidescout.eval import load_multipathqa
from slidescout.eval.config import EvalConfig
from slidescout.eval.report import budget_line
from slidescout.eval.runner import run_eval
from slidescout.testing.fake_common import estimate_input_tokens
from slidescout.testing.fake_openai import FakeOpenAI, Reply, ToolCall

MAX_OUT = 2000


@pytest.fixture(scope="module")
def mpqa(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_mpqa(tmp_path_factory.mktemp("mpqa"), n_tcga=6, n_gtex=4)


def _greedy(body: dict[str, Any]) -> Reply:
    """Zoom until told to answer; every reply uses nearly all of its output limit."""
    usage = {"output": MAX_OUT - 50}
    if body.get("tool_choice") == "none":
        return Reply(text='{"answer": 1}', usage=usage)
    zoom = ToolCall("slide_zoom", {"x0": 0, "y0": 0, "w": 512, "h": 512})
    return Reply(text="Looking closer.", tool_calls=[zoom], usage=usage)


@pytest.mark.parametrize(
    "price,budget_usd",
    [((1.0, 4.0), 0.08), (None, 1.2)],
    ids=["known-price", "unknown-price"],
)
async def test_spending_never_passes_the_budget_with_samples_in_flight(
    mpqa: tuple[Path, Path],
    tmp_path: Path,
    price: tuple[float, float] | None,
    budget_usd: float,
) -> None:
    samples = load_multipathqa(mpqa[0], slides_dir=mpqa[1]).samples
    priced = {"price_in": price[0], "price_out": price[1]} if price else {}
    with FakeOpenAI(_greedy, latency_s=0.2) as srv:
        agent = AgentConfig(
            model="openai:fake-vlm",
            base_url=srv.base_url,
            preset="giant",
            max_steps=6,
            max_output_tokens=MAX_OUT,
            **priced,  # type: ignore[arg-type]
        )
        summary = await run_eval(
            samples,
            out=tmp_path / "run",
            agent=agent,
            config=EvalConfig(concurrency=4, budget_usd=budget_usd),
        )
        n_requests = len(srv.requests)
    records = read_results(tmp_path / "run")
    # what the provider billed: every reply's usage at the price (unknown: the ceiling price)
    billed_price = Price(*price) if price else ceiling_price()
    billed = sum(
        billed_price.cost(input_tokens=r["input_tokens"], output_tokens=r["output_tokens"])
        for r in records
    )
    assert n_requests >= 2  # the budget allowed some work, and stopped it
    assert summary.stopped == "budget_usd"
    assert billed <= budget_usd  # before: 6-24 % over at a known price, 58 % at an unknown one
    b = summary.budget
    assert b is not None and b["usd"] == budget_usd
    assert b["spent_usd"] == pytest.approx(billed, rel=1e-6) and b["spent_usd"] <= budget_usd
    assert 0 < b["peak_reserved_usd"] <= budget_usd and b["reserved_usd"] == 0
    assert b["refused_calls"] >= 1
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert written["budget"] == b
    line = budget_line(written["budget"])
    assert line is not None and f"of ${budget_usd:g}" in line and "reserved at once" in line


def _request(n_images: int) -> ModelRequest:
    ref = ImageRef(sha256="0" * 64, width=1000, height=1000)
    parts: list[Any] = [TextPart(text="Diagnosis? é" * 50)]
    parts += [ImagePart(image=ref, data=b"x") for _ in range(n_images)]
    return ModelRequest(messages=[UserMessage(parts=parts)])


def test_the_worst_case_bounds_what_a_reply_can_be_billed() -> None:
    req = _request(3)
    bound = input_token_bound(req)
    assert bound >= len(("Diagnosis? é" * 50).encode()) + 3 * IMAGE_TOKEN_BOUND
    assert bound >= estimate_input_tokens(req.model_dump(mode="json"))
    model = resolve_model("openai:gpt-5", base_url="http://127.0.0.1:9/v1")
    b = call_bound(model, req)
    assert b is not None and b.price is None  # a custom endpoint: priced from the user's file only
    assert b.output_tokens == 128_000  # no output limit: the largest any listed model allows
    claude = resolve_model("anthropic:claude-sonnet-4-5", base_url="http://127.0.0.1:9")
    cb = call_bound(claude, req)
    assert cb is not None and cb.output_tokens == 4096  # Claude's max_tokens is always sent
    p = Price(input=2.0, output=10.0)
    assert worst_case_usd(CallBound(1000, 100, p)) == pytest.approx(0.003)
    assert worst_case_usd(CallBound(1000, 100, None)) == pytest.approx(
        ceiling_price().cost(input_tokens=1000, output_tokens=100)
    )


async def test_a_call_that_does_not_fit_is_refused_before_it_is_sent_and_release_frees() -> None:
    model = resolve_model("openai:gpt-5", base_url="http://127.0.0.1:9/v1", price=Price(1.0, 10.0))
    req = _request(1).model_copy(update={"settings": req_settings(100)})
    worst = worst_case_usd(call_bound(model, req))  # type: ignore[arg-type]
    budget = Budget(usd=worst * 2.5)
    first = await budget.reserve(model, req)
    second = await budget.reserve(model, req)
    assert budget.reserved_usd == pytest.approx(2 * worst)
    first.settle(Usage(input_tokens=10, output_tokens=10, cost_usd=0.0001))
    second.release()
    assert budget.reserved_usd == pytest.approx(0) and budget.spent_usd == pytest.approx(0.0001)
    assert budget.exceeded() is None
    tiny = Budget(usd=worst / 2)
    with pytest.raises(BudgetExceeded) as info:
        await tiny.reserve(model, req)
    assert info.value.kind == "budget_usd" and "may cost up to" in str(info.value)
    assert tiny.exceeded() == "budget_usd" and tiny.refused_calls == 1


def req_settings(max_out: int) -> Any:
    from slidescout.core.model_settings import ModelSettings

    return ModelSettings(max_output_tokens=max_out)


def test_bench_budget_smoke() -> None:
    """``benchmarks/bench_budget.py --smoke``: both prices, two samples in flight, never over."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "bench_budget.py"), "--smoke"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [
        ln
        for ln in out.stdout.splitlines()
        if ln.startswith("| known") or ln.startswith("| unknown")
    ]
    assert len(rows) == 2 and all("budget_usd" in r for r in rows)
