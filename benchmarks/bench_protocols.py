"""What ``scout`` saves against ``giant``: one scripted 20-step trajectory under each preset, through
the real ``openai`` and ``anthropic`` SDKs against the fake servers.

The fake model zooms into the same 19 distinct regions, one per turn, then answers at step 20 (the
same replies under both presets: no reruns). Printed per question and provider: requests, image
inclusions (images summed over the requests), request bytes, input tokens as the fake counts them
(text / 4 + 765 per image), the tokens a provider's prompt cache would serve at the cached rate,
and the billed input in full-rate token equivalents, under each provider's cache rules:

- OpenAI (automatic caching): the longest prefix shared with the previous request, if at least
  1024 tokens, in 128-token steps; cached tokens cost 10% (gpt-5 pricing).
- Anthropic (``cache_control`` on the request's last block and at the end of the first turn, as the
  adapter sends them): the longest prefix ending at an earlier request's breakpoint is read at 10%
  (if at least 1024 tokens); the rest is written at 125%.

Prefixes are compared block by block (tools, system, then each input item or content block), with
``cache_control`` markers ignored. Goal: ``scout`` at most half of ``giant``'s input tokens, with no
fewer distinct views.

    python benchmarks/bench_protocols.py [--steps 20]
    python benchmarks/bench_protocols.py --smoke     # 4 steps on a small slide: seconds
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from benchlib import bench_dir, small_slide

from slidescout.agents.loop import make_agent
from slidescout.agents.models import resolve_model
from slidescout.eval.ask import question_sample
from slidescout.testing.fake_anthropic import FakeAnthropic
from slidescout.testing.fake_common import count_images, estimate_input_tokens
from slidescout.testing.fake_openai import FakeOpenAI, Reply, ToolCall
from slidescout.traces.rundir import RunDir

SIZE = (24000, 18000)


def bench_slide() -> Path:
    from slidescout.slides.synth import generate_slide

    out = Path(tempfile.gettempdir()) / "slidescout-bench"
    p = out / "bench-protocols.tiff"
    if not p.exists():
        print(f"generating a {SIZE[0]}x{SIZE[1]} synthetic slide (once)...", flush=True)
        generate_slide(out, "bench-protocols", size=SIZE, seed=11)
    return p


def boxes(n: int) -> list[tuple[int, int, int, int]]:
    """n distinct regions: a screen at low power, then closer looks."""
    out = []
    for i in range(n):
        side = [8000, 4000, 2000, 1000][i % 4]
        x = (1500 + 3100 * i) % (SIZE[0] - side)
        y = (1200 + 1900 * i) % (SIZE[1] - side)
        out.append((x, y, side, side))
    return out


def script(srv: Any, path: str, steps: int) -> Any:
    regions = boxes(steps - 1)

    def fn(body: dict[str, Any]) -> Reply:
        done = srv.prior_tool_calls(body, path)
        if done >= steps - 1 or srv.tool_choice(body, path) == "none":
            return Reply(
                text='<report>Glands and nuclei examined.</report>\n<response>{"answer": 1}</response>'
            )
        x, y, w, h = regions[done]
        return Reply(tool_calls=[ToolCall("slide_zoom", {"x0": x, "y0": y, "w": w, "h": h})])

    return fn


def _strip(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k != "cache_control"}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def blocks(body: dict[str, Any], api: str) -> tuple[list[tuple[str, int]], int]:
    """(key, tokens) of each cacheable block of a request, in prompt order, and how many blocks end
    the first turn (tools, system and the question with the overview)."""
    first = 0
    if api == "openai":
        parts: list[Any] = [body.get("tools"), body.get("instructions"), *body.get("input", [])]
        first = 3
    else:
        parts = [body.get("tools"), body.get("system")]
        for i, m in enumerate(body.get("messages", [])):
            parts += (
                [[m["role"], b] for b in m["content"]] if isinstance(m["content"], list) else [m]
            )
            if i == 0:
                first = len(parts)
    out = []
    for p in parts:
        plain = _strip(p)
        out.append(
            (json.dumps(plain, sort_keys=True), estimate_input_tokens(plain) if plain else 0)
        )
    return out, first


def cache_stats(bodies: list[dict[str, Any]], api: str) -> tuple[int, float]:
    """(tokens served at the cached rate, billed input in full-rate token equivalents)."""
    cached_total, billed = 0, 0.0
    written: set[tuple[str, ...]] = set()  # Anthropic: prefixes ending at a past breakpoint
    prev: list[tuple[str, int]] = []
    for body in bodies:
        cur, first = blocks(body, api)
        keys = [k for k, _ in cur]
        tokens = [t for _, t in cur]
        total = sum(tokens)
        if api == "openai":  # automatic: the longest prefix shared with the previous request
            n = 0
            while n < min(len(cur), len(prev)) and cur[n][0] == prev[n][0]:
                n += 1
            shared = sum(tokens[:n])
            cached = (shared // 128) * 128 if shared >= 1024 else 0
            billed += (total - cached) + 0.1 * cached
        else:  # the longest prefix ending where an earlier request set a breakpoint
            n = next((i for i in range(len(cur), 0, -1) if tuple(keys[:i]) in written), 0)
            cached = sum(tokens[:n]) if sum(tokens[:n]) >= 1024 else 0
            billed += 1.25 * (total - cached) + 0.1 * cached
            written.update({tuple(keys), tuple(keys[:first])})
        cached_total += cached
        prev = cur
    return cached_total, billed


async def run_one(provider: str, preset: str, slide: Path, steps: int, out: Path) -> dict[str, Any]:
    server: Any = FakeOpenAI() if provider == "openai" else FakeAnthropic()
    path = "/v1/responses" if provider == "openai" else "/v1/messages"
    server._fn = script(server, path, steps)
    server._scripted = True
    async with server:
        model_id = "openai:gpt-5" if provider == "openai" else "anthropic:claude-sonnet-4-5"
        model = resolve_model(
            model_id,
            base_url=server.base_url,
            **({"api": "responses"} if provider == "openai" else {}),
        )
        agent = make_agent(model, preset=preset, max_steps=steps)
        run = RunDir.create(out / f"{provider}-{preset}", agent.config(), agent.prompt_hashes())
        sample = question_sample(slide, "What is the diagnosis?", ["Adenocarcinoma", "Benign"])
        try:
            trace = await agent.run(sample, run.recorder())
        finally:
            await model.aclose()
        bodies = server.bodies
        sizes = [r.size for r in server.requests]
    cached, billed = cache_stats(bodies, provider)
    views = {tuple(i.box) for i in trace.images() if i.box}
    return {
        "provider": provider,
        "preset": preset,
        "status": trace.status,
        "requests": len(bodies),
        "images": sum(count_images(b) for b in bodies),
        "bytes": sum(sizes),
        "input_tokens": trace.usage.input_tokens,
        "cached": cached,
        "billed": billed,
        "views": len(views),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--smoke", action="store_true", help="4 steps on a small slide")
    args = ap.parse_args()
    if args.smoke:
        args.steps = 4
        slide = small_slide(bench_dir() / "bench-protocols-smoke.tiff", 4000, 3000)
    else:
        slide = bench_slide()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for provider in ("openai", "anthropic"):
            for preset in ("giant", "scout"):
                rows.append(asyncio.run(run_one(provider, preset, slide, args.steps, Path(d))))
    head = (
        "provider",
        "preset",
        "status",
        "requests",
        "image inclusions",
        "request MB",
        "input tokens",
        "cached-rate tokens",
        "billed (full-rate eq.)",
        "distinct views",
    )
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        print(
            "| "
            + " | ".join(
                str(v)
                for v in (
                    r["provider"],
                    r["preset"],
                    r["status"],
                    r["requests"],
                    r["images"],
                    f"{r['bytes'] / 1e6:.2f}",
                    r["input_tokens"],
                    r["cached"],
                    f"{r['billed']:.0f}",
                    r["views"],
                )
            )
            + " |"
        )
    print()
    for provider in ("openai", "anthropic"):
        g = next(r for r in rows if r["provider"] == provider and r["preset"] == "giant")
        s = next(r for r in rows if r["provider"] == provider and r["preset"] == "scout")
        print(
            f"{provider}: scout/giant input tokens {s['input_tokens'] / g['input_tokens']:.2f}, "
            f"billed {s['billed'] / g['billed']:.2f}, request bytes {s['bytes'] / g['bytes']:.2f}, "
            f"distinct views {s['views']} vs {g['views']}"
        )


if __name__ == "__main__":
    main()
