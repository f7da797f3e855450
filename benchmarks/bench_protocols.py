"""What ``scout`` costs and how long it takes against ``giant``, for the same views, billed by the
providers' own rules.

One scripted trajectory of distinct views (19 by default: GIANT's T = 20) on a synthetic slide,
replayed under each preset through the real ``openai`` (gpt-5, Responses API) and ``anthropic``
(claude-sonnet-4-5) SDKs against the fake servers, which answer after a model latency (2 s per
call) and report usage as the providers count it (``slidescout.testing.fake_billing``: image
tokens by each provider's rule, OpenAI's automatic prefix cache, Claude's breakpoints). Dollars come
from ``agents.models.accounting.bill`` at the built-in list prices.

The scripted model asks for the same regions in the same order under every preset: one per turn
under ``giant`` (GIANT's prompt asks for one call at a time; its Claude agent runs only the first),
and as many as ``scout`` invites (4) per turn under ``scout``. Rows per route:

- OpenAI: ``giant`` (as GIANT's code sends it: OpenAI caches prefixes by itself) and ``scout``;
- Anthropic: GIANT as its code sends it (``giant``: no ``cache_control``), ``giant`` with
  ``--prompt-cache`` (breakpoints, as slidescout's ``giant`` sent them before), and ``scout``.

Printed per row: model requests, distinct views, input tokens (reported), cache reads and writes,
billed USD (with the cache) and uncached USD (the same tokens at the full input price), wall time;
then the ratios the targets of issue 20 are about.

    python benchmarks/bench_protocols.py [--views 19] [--latency 2] [--json]
    python benchmarks/bench_protocols.py --smoke     # a small slide, 16 views, 10 ms latency
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import bench_dir

from slidescout.agents.loop import make_agent
from slidescout.agents.models import resolve_model
from slidescout.agents.models.accounting import context_window
from slidescout.agents.models.pricing import load_price_table
from slidescout.eval.ask import question_sample
from slidescout.testing.fake_anthropic import FakeAnthropic
from slidescout.testing.fake_openai import FakeOpenAI, Reply, ToolCall
from slidescout.traces.rundir import RunDir

MODELS = {"openai": "gpt-5", "anthropic": "claude-sonnet-4-5"}
# (route, row label, preset, extra flags)
ROWS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("openai", "giant", "giant", {}),
    ("openai", "scout", "scout", {}),
    ("anthropic", "GIANT as its code sends it", "giant", {}),
    ("anthropic", "giant --prompt-cache", "giant", {"prompt_cache": True}),
    ("anthropic", "scout", "scout", {}),
]
ANSWER = '<report>Glands and nuclei examined.</report>\n<response>{"answer": 1}</response>'


def bench_slide(size: tuple[int, int]) -> Path:
    from slidescout.slides.synth import generate_slide

    out = bench_dir()
    name = f"bench-protocols-{size[0]}x{size[1]}"
    p = out / f"{name}.tiff"
    if not p.exists():
        print(f"generating a {size[0]}x{size[1]} synthetic slide (once)...", file=sys.stderr)
        generate_slide(out, name, size=size, seed=11)
    return p


def warm_up(slide: Path, regions: list[tuple[int, int, int, int]]) -> None:
    """Read every region once with both level rules, so no row pays for a cold disk cache."""
    from slidescout.slides import Slide

    s = Slide.open(slide)
    try:
        for box in regions:
            for rule in ("fine", "giant"):
                s.read(box, max_side=1000, level_rule=rule)
    finally:
        s.close()


def trajectory(n: int, size: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """``n`` distinct regions: screens at low power, then closer looks."""
    w, h = size
    out = []
    for i in range(n):
        side = [w // 3, w // 6, w // 12, w // 24][i % 4]
        out.append(
            (
                (w // 16 + (w // 8) * i) % (w - side),
                (h // 15 + (h // 10) * i) % (h - side),
                side,
                side,
            )
        )
    assert len(set(out)) == n
    return out


def scripted(srv: Any, path: str, regions: list[tuple[int, int, int, int]], per_turn: int) -> Any:
    """The model: the next ``per_turn`` regions of the trajectory each turn, then the answer."""

    def fn(body: dict[str, Any]) -> Reply:
        done = srv.prior_tool_calls(body, path)
        if done >= len(regions) or srv.tool_choice(body, path) == "none":
            return Reply(text=ANSWER, reasoning="The views agree.")
        calls = [
            ToolCall("slide_zoom", {"x0": x, "y0": y, "w": w, "h": h})
            for x, y, w, h in regions[done : done + per_turn]
        ]
        return Reply(tool_calls=calls, reasoning=f"Next, {len(calls)} region(s).")

    return fn


async def run_row(
    route: str,
    preset: str,
    flags: dict[str, Any],
    slide: Path,
    regions: list[tuple[int, int, int, int]],
    latency: float,
    out: Path,
) -> dict[str, Any]:
    name = MODELS[route]
    price = load_price_table(use_env=False).lookup(route, name)
    server: Any = (FakeOpenAI if route == "openai" else FakeAnthropic)(
        latency_s=latency, record=False
    )
    path = "/v1/responses" if route == "openai" else "/v1/messages"
    per_turn = 4 if preset == "scout" else 1
    server._fn, server._scripted = scripted(server, path, regions, per_turn), True
    async with server:
        # the fakes are a custom endpoint: the list price and context window are given
        model = resolve_model(
            f"{route}:{name}",
            base_url=server.base_url,
            price=price,
            context_window=context_window(route, name),
            **({"api": "responses"} if route == "openai" else {}),  # type: ignore[arg-type]
        )
        agent = make_agent(model, preset=preset, max_steps=len(regions) + 1, **flags)
        run = RunDir.create(
            out / f"{route}-{preset}-{len(flags)}", agent.config(), agent.prompt_hashes()
        )
        sample = question_sample(slide, "What is the diagnosis?", ["Adenocarcinoma", "Benign"])
        t0 = time.monotonic()
        try:
            trace = await agent.run(sample, run.recorder())
        finally:
            await model.aclose()
        wall = time.monotonic() - t0
        requests = len(server.requests)
    views = [t.images[0] for t in trace.tool_events if t.images]
    u = trace.usage
    return {
        "status": trace.status,
        "requests": requests,
        "distinct_views": len({v.box for v in views}),
        "smallest_view_px": min((max(v.width, v.height) for v in views), default=0),
        "input_tokens": u.input_tokens,
        "estimated_input_tokens": u.estimated_input_tokens,
        "cache_read_tokens": u.cached_input_tokens,
        "cache_write_tokens": u.cache_write_tokens,
        "output_tokens": u.output_tokens,
        "billed_usd": u.cost_usd,
        "cache_read_usd": u.cache_read_usd,
        "cache_write_usd": u.cache_write_usd,
        "uncached_usd": u.uncached_usd,
        "wall_s": round(wall, 2),
    }


def ratios(rows: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The ratios issue 20 sets targets for."""

    def r(a: str, b: str, key: str) -> float:
        return round(rows[a][key] / rows[b][key], 3)

    oa_s, oa_g = "openai/scout", "openai/giant"
    an_s, an_g = "anthropic/scout", "anthropic/GIANT as its code sends it"
    an_c = "anthropic/giant --prompt-cache"
    return {
        "anthropic_scout_vs_GIANT_billed": r(an_s, an_g, "billed_usd"),  # target <= 0.2
        "anthropic_scout_vs_giant_cached_billed": r(an_s, an_c, "billed_usd"),  # target <= 0.75
        "openai_scout_vs_giant_billed": r(oa_s, oa_g, "billed_usd"),  # target <= 0.7
        "openai_scout_vs_giant_requests": r(oa_s, oa_g, "requests"),  # target <= 0.4
        "anthropic_scout_vs_giant_requests": r(an_s, an_g, "requests"),  # target <= 0.4
        "openai_scout_vs_giant_wall": r(oa_s, oa_g, "wall_s"),  # target <= 0.5
        "anthropic_scout_vs_giant_wall": r(an_s, an_g, "wall_s"),  # target <= 0.5
    }


TARGETS = {
    "anthropic_scout_vs_GIANT_billed": 0.2,
    "anthropic_scout_vs_giant_cached_billed": 0.75,
    "openai_scout_vs_giant_billed": 0.7,
    "openai_scout_vs_giant_requests": 0.4,
    "anthropic_scout_vs_giant_requests": 0.4,
    "openai_scout_vs_giant_wall": 0.5,
    "anthropic_scout_vs_giant_wall": 0.5,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--views", type=int, default=19, help="distinct views in the trajectory (>= 16)"
    )
    ap.add_argument("--latency", type=float, default=2.0, help="model latency per call, seconds")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--smoke", action="store_true", help="a small slide, 16 views, 10 ms latency")
    args = ap.parse_args()
    if args.views < 16:
        ap.error("--views must be at least 16")
    size = (6000, 4500) if args.smoke else (24000, 18000)
    latency = 0.01 if args.smoke else args.latency
    views = 16 if args.smoke else args.views
    slide = bench_slide(size)
    regions = trajectory(views, size)
    warm_up(slide, regions)
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as d:
        for route, label, preset, flags in ROWS:
            rows[f"{route}/{label}"] = asyncio.run(
                run_row(route, preset, flags, slide, regions, latency, Path(d))
            )
    result = {
        "command": "python benchmarks/bench_protocols.py" + (" --smoke" if args.smoke else ""),
        "views": views,
        "latency_s": latency,
        "slide": f"{size[0]}x{size[1]}",
        "models": MODELS,
        "rows": rows,
        "ratios": ratios(rows),
        "targets": TARGETS,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    head = (
        "row",
        "requests",
        "views",
        "input tok",
        "cache read",
        "cache write",
        "billed $",
        "uncached $",
        "wall s",
    )
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for key, r in rows.items():
        print(
            "| "
            + " | ".join(
                str(v)
                for v in (
                    key,
                    r["requests"],
                    r["distinct_views"],
                    r["input_tokens"],
                    r["cache_read_tokens"],
                    r["cache_write_tokens"],
                    f"{r['billed_usd']:.4f}",
                    f"{r['uncached_usd']:.4f}",
                    r["wall_s"],
                )
            )
            + " |"
        )
    print("\n| ratio | measured | target | |\n|---|---|---|---|")
    for name, value in result["ratios"].items():
        mark = "met" if value <= TARGETS[name] else "MISSED"
        print(f"| {name} | {value:.2f} | <= {TARGETS[name]} | {mark} |")


if __name__ == "__main__":
    main()
