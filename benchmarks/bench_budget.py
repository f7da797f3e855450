"""Dollar-budget benchmark: what a run is billed against ``--budget-usd``, with samples in flight.

    python3 benchmarks/bench_budget.py [--samples 12] [--concurrency 1,4,8] [--smoke]

Each run is ``slidescout eval`` (``run_eval``, GIANT preset, ``--max-output-tokens 2000``) on
small generated TIFFs against the fake OpenAI server, whose every reply uses 1950 output tokens
(nearly all of the limit) after 0.2 s, so several calls are in flight together. Two prices: a
known one ($1 in / $4 out per 1M tokens, given as ``--price-in/--price-out``) and an unknown one
(a ``--base-url`` model: reserved and charged at the highest list price). For each it prints the
budget, what the provider billed (every reply's usage at the price), the share of the budget
that is, the calls sent and refused (their worst case did not fit), and the most reserved at
once. Billed must never pass the budget.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_eval_runner_data import make_mpqa, read_results  # noqa: E402

from slidescout.agents.config import AgentConfig  # noqa: E402
from slidescout.agents.models.pricing import Price, ceiling_price  # noqa: E402
from slidescout.eval import load_multipathqa  # noqa: E402
from slidescout.eval.config import EvalConfig  # noqa: E402
from slidescout.eval.runner import run_eval  # noqa: E402
from slidescout.testing.fake_openai import FakeOpenAI, Reply, ToolCall  # noqa: E402

MAX_OUT = 2000
KNOWN = (1.0, 4.0)
BUDGETS = {"known": 0.15, "unknown": 2.0}


def greedy(body: dict[str, Any]) -> Reply:
    usage = {"output": MAX_OUT - 50}
    if body.get("tool_choice") == "none":
        return Reply(text='{"answer": 1}', usage=usage)
    zoom = ToolCall("slide_zoom", {"x0": 0, "y0": 0, "w": 512, "h": 512})
    return Reply(text="Looking closer.", tool_calls=[zoom], usage=usage)


def run_one(samples: list[Any], price: str, concurrency: int, out: Path) -> dict[str, Any]:
    budget = BUDGETS[price]
    priced = {"price_in": KNOWN[0], "price_out": KNOWN[1]} if price == "known" else {}
    with FakeOpenAI(greedy, latency_s=0.2, record=False) as srv:
        agent = AgentConfig(
            model="openai:fake-vlm",
            base_url=srv.base_url,
            preset="giant",
            max_steps=6,
            max_output_tokens=MAX_OUT,
            **priced,
        )
        t0 = time.monotonic()
        summary = asyncio.run(
            run_eval(
                samples,
                out=out,
                agent=agent,
                config=EvalConfig(concurrency=concurrency, budget_usd=budget),
            )
        )
        wall = time.monotonic() - t0
        sent = len(srv.requests)
    at = Price(*KNOWN) if price == "known" else ceiling_price()
    billed = sum(
        at.cost(input_tokens=r["input_tokens"], output_tokens=r["output_tokens"])
        for r in read_results(out)
    )
    b = summary.budget or {}
    return {
        "price": price,
        "concurrency": concurrency,
        "budget": budget,
        "billed": billed,
        "share": billed / budget,
        "sent": sent,
        "refused": b.get("refused_calls", 0),
        "peak_reserved": b.get("peak_reserved_usd", 0.0),
        "stopped": summary.stopped,
        "wall_s": wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--samples", type=int, default=12)
    ap.add_argument("--concurrency", default="1,4,8")
    ap.add_argument("--smoke", action="store_true", help="4 samples, concurrency 2 (the suite)")
    args = ap.parse_args()
    n = 4 if args.smoke else args.samples
    levels = [2] if args.smoke else [int(c) for c in args.concurrency.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        csv_path, slides = make_mpqa(root / "data", n_tcga=n, n_gtex=0, missing=0)
        samples = load_multipathqa(csv_path, slides_dir=slides).samples
        for price in ("known", "unknown"):
            for c in levels:
                rows.append(run_one(samples, price, c, root / f"run-{price}-{c}"))
    print(
        "| price | concurrency | budget | billed | of budget | calls sent | refused "
        "| most reserved at once | stopped |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['price']} | {r['concurrency']} | ${r['budget']:g} | ${r['billed']:.4f} "
            f"| {100 * r['share']:.1f} % | {r['sent']} | {r['refused']} "
            f"| ${r['peak_reserved']:.4f} | {r['stopped']} |"
        )
    over = [r for r in rows if r["billed"] > r["budget"]]
    if over:
        raise SystemExit(f"billed more than the budget in {len(over)} run(s)")


if __name__ == "__main__":
    main()
