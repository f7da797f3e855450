"""Per-step overhead of the agent loop, and concurrency of samples, against a local fake model server.

1. Overhead: the fake OpenAI server answers instantly with a random ``slide_zoom`` each turn; the
   per-step overhead is the step's wall time minus the server's answer time, i.e. everything the
   loop does: render the view (1000 px), encode JPEG, store the blob, write the trace, build the
   request (SDK serialisation and the local HTTP round trip included). Target: median < 50 ms.
2. Concurrency: the server answers after 200 ms; 32 samples of 10 steps run concurrently
   (asyncio) and should finish in at most 1.25x the time of one sample.

    python benchmarks/bench_loop.py [--steps 10] [--samples 32] [--slide PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from slidescout.agents.loop import make_agent
from slidescout.eval.ask import question_sample
from slidescout.testing.fake_openai import FakeOpenAI, Reply, ToolCall
from slidescout.traces.rundir import RunDir


def bench_slide(path: str | None) -> Path:
    if path:
        return Path(path)
    from slidescout.slides.synth import generate_slide

    out = Path(tempfile.gettempdir()) / "slidescout-bench"
    p = out / "bench-loop.tiff"
    if not p.exists():
        print("generating a 40000x30000 synthetic slide (once)...", flush=True)
        generate_slide(out, "bench-loop", size=(40000, 30000), seed=3)
    return p


def zoom_script(
    srv: FakeOpenAI, steps: int, size: tuple[int, int], seed: int = 0, tool: str = "slide_zoom"
):
    rng = random.Random(seed)

    def fn(body):
        done = srv.prior_tool_calls(body, "/v1/responses")
        if done >= steps - 1 or srv.tool_choice(body, "/v1/responses") == "none":
            return Reply(text='Done.\n```json\n{"answer": 1}\n```')
        side = int(10 ** rng.uniform(3, 4.4))  # 1k..25k px boxes
        x, y = rng.randrange(0, max(1, size[0] - side)), rng.randrange(0, max(1, size[1] - side))
        if tool == "measure":  # no image: isolates the loop's own concurrency from slide rendering
            return Reply(
                tool_calls=[ToolCall("measure", {"x1": x, "y1": y, "x2": x + side, "y2": y + side})]
            )
        return Reply(tool_calls=[ToolCall("slide_zoom", {"x0": x, "y0": y, "w": side, "h": side})])

    return fn


async def run_samples(
    base_url: str, slide: Path, n: int, steps: int, out: Path, tools: str | None = None
) -> tuple[float, list]:
    agent = make_agent(
        "openai:gpt-5", base_url=base_url, api="responses", max_steps=steps + 1, tools=tools
    )
    run = RunDir.create(out, agent.config(), agent.prompt_hashes())
    samples = [
        question_sample(slide, "What is the diagnosis?", ["A", "B"], sample_id=f"s{i}")
        for i in range(n)
    ]
    t0 = time.perf_counter()
    try:
        traces = await asyncio.gather(*(agent.run(s, run) for s in samples))
    finally:
        await (
            agent.model.aclose()
        )  # inside this loop: a client closed after its loop is gone spews tracebacks
    return time.perf_counter() - t0, traces


def overhead(slide: Path, steps: int) -> list[float]:
    from slidescout.slides import open_slide

    size = open_slide(slide).dimensions
    srv = FakeOpenAI(record=False)
    srv._fn = zoom_script(srv, steps, size)
    srv._scripted = True
    per_step = []
    with srv, tempfile.TemporaryDirectory() as d:
        for rep in range(3):
            _, traces = asyncio.run(run_samples(srv.base_url, slide, 1, steps, Path(d) / f"o{rep}"))
            tr = traces[0]
            events = tr.events
            # step wall time: from one model call's end to the next call's end, minus the next call's latency
            calls = [e for e in events if e.kind == "model_call"]
            for a, b in zip(calls, calls[1:], strict=False):
                wall = (b.timestamp - a.timestamp).total_seconds()
                per_step.append(wall - b.duration_s)
    return per_step


def _serve(port_q, steps: int, size: tuple[int, int], latency: float, tool: str) -> None:
    """The fake server in its own process, as a real remote server would be (it must not take our
    process's GIL: parsing megabytes of base64 JSON per request is the server's cost, not ours)."""
    srv = FakeOpenAI(record=False, latency_s=latency)
    srv._fn = zoom_script(srv, steps, size, seed=1, tool=tool)
    srv._scripted = True
    srv.start()
    port_q.put(srv.base_url)
    import threading

    threading.Event().wait()


def concurrency(
    slide: Path, steps: int, n: int, latency: float, tool: str = "slide_zoom"
) -> tuple[float, float]:
    import multiprocessing as mp

    from slidescout.slides import open_slide

    size = open_slide(slide).dimensions
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    proc = ctx.Process(target=_serve, args=(q, steps, size, latency, tool), daemon=True)
    proc.start()
    try:
        base_url = q.get(timeout=30)
        with tempfile.TemporaryDirectory() as d:
            tools = "+measure" if tool == "measure" else None
            one, _ = asyncio.run(run_samples(base_url, slide, 1, steps, Path(d) / "one", tools))
            many, traces = asyncio.run(
                run_samples(base_url, slide, n, steps, Path(d) / "many", tools)
            )
            bad = [t.status for t in traces if t.status != "answered"]
            if bad:
                print(f"warning: {len(bad)} samples did not answer: {set(bad)}", file=sys.stderr)
    finally:
        proc.terminate()
    return one, many


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--slide")
    args = ap.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench-not-a-real-key")
    slide = bench_slide(args.slide)
    print(f"slide: {slide}")
    steps = overhead(slide, args.steps)
    med = statistics.median(steps) * 1000
    p90 = sorted(steps)[int(0.9 * (len(steps) - 1))] * 1000
    print(
        f"per-step loop overhead at 1000 px (n={len(steps)}): median {med:.1f} ms, p90 {p90:.1f} ms "
        f"(target < 50 ms: {'OK' if med < 50 else 'MISSED'})"
    )
    for tool in ("slide_zoom", "measure"):
        one, many = concurrency(slide, args.steps, args.samples, args.latency, tool)
        ratio = many / one
        print(
            f"{tool}: {args.samples} concurrent samples x {args.steps} steps at {args.latency * 1000:.0f} ms/call: "
            f"one sample {one:.2f} s, {args.samples} samples {many:.2f} s, ratio {ratio:.2f}x "
            f"(target <= 1.25x: {'OK' if ratio <= 1.25 else 'MISSED'})"
        )


if __name__ == "__main__":
    main()
