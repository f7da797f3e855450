"""Per-step overhead of the agent loop, and concurrency of samples, against a fake model server.

The fake OpenAI server (Responses API, through the real SDK) runs in its own process, as a remote
server would, and answers each request with a random ``slide_zoom`` (1k-25k px boxes) until the
last step.

1. Overhead: one sample at a time, the server answering at once. The server notes when each
   request reached it and how long it spent on it (parsing the body, writing the reply). A step's
   overhead is the time between two requests' arrivals minus the server's own time on the first:
   everything the client side does in between, i.e. read the reply, run the tool (render the view
   at 1000 px, guides, JPEG, blob), write the trace, build the next request through the SDK and
   send it over local HTTP. Also reported: the client process's CPU time per model call.
   Target: median < 50 ms.
2. Concurrency: the server answers after ``--latency``; ``--samples`` samples of ``--steps``
   steps run concurrently (asyncio) and should take at most 1.25x the time of one sample, with
   ``slide_zoom`` and with a cheap tool (``measure``, no image) that isolates the loop from slide
   rendering.

    python3 benchmarks/bench_loop.py [--steps 10] [--samples 32] [--latency 0.2] [--slide PATH]
    python3 benchmarks/bench_loop.py --smoke      # a small slide, 3 steps, 4 samples: seconds
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import bench_dir, cpu_seconds, md_table, small_slide

from slidescout.agents.loop import make_agent
from slidescout.eval.ask import question_sample
from slidescout.slides import open_slide
from slidescout.testing.fake_openai import FakeOpenAI, Reply, ToolCall
from slidescout.traces.rundir import RunDir


def bench_slide(path: str | None, smoke: bool) -> Path:
    if path:
        return Path(path)
    if smoke:
        return small_slide(bench_dir() / "bench-loop-smoke.tiff", 4000, 3000)
    from slidescout.slides.synth import generate_slide

    out = bench_dir()
    p = out / "bench-loop.tiff"
    if not p.exists():
        print("generating a 40000x30000 synthetic slide (once)...", file=sys.stderr, flush=True)
        generate_slide(out, "bench-loop", size=(40000, 30000), seed=3)
    return p


class TimedServer(FakeOpenAI):
    """The fake server, noting per request when it arrived and the server's own time on it (after
    the body was read: JSON parsing, the script, the reply; the ``latency`` sleep excluded)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.timings: list[tuple[float, float]] = []

    async def handle(self, request: Any) -> Any:
        arrived = time.monotonic()
        await request.body()  # starlette keeps it for the handler
        t0 = time.monotonic()
        reply = await super().handle(request)
        self.timings.append((arrived, time.monotonic() - t0 - self.latency_s))
        return reply


def zoom_script(srv: FakeOpenAI, steps: int, size: tuple[int, int], seed: int, tool: str):
    rng = random.Random(seed)
    lo, hi = min(1000, size[0] / 4), min(25000, size[0] * 0.6)  # 1k..25k px boxes on big slides

    def fn(body: dict[str, Any]) -> Reply:
        done = srv.prior_tool_calls(body, "/v1/responses")
        if done >= steps - 1 or srv.tool_choice(body, "/v1/responses") == "none":
            return Reply(text='Done.\n```json\n{"answer": 1}\n```')
        side = int(10 ** rng.uniform(math.log10(lo), math.log10(hi)))  # log-uniform
        x = rng.randrange(0, max(1, size[0] - side))
        y = rng.randrange(0, max(1, size[1] - side))
        if tool == "measure":  # no image: the loop's own concurrency, without slide rendering
            args = {"x1": x, "y1": y, "x2": x + side, "y2": y + side}
            return Reply(tool_calls=[ToolCall("measure", args)])
        return Reply(tool_calls=[ToolCall("slide_zoom", {"x0": x, "y0": y, "w": side, "h": side})])

    return fn


def _serve(conn: Any, steps: int, size: tuple[int, int], latency: float, tool: str) -> None:
    """The server process: serve until told to stop; answer ``timings`` requests on ``conn``."""
    srv = TimedServer(record=False, latency_s=latency)
    srv._fn = zoom_script(srv, steps, size, seed=1, tool=tool)
    srv._scripted = True
    srv.start()
    conn.send(srv.base_url)
    while True:
        msg = conn.recv()
        if msg == "timings":
            conn.send(list(srv.timings))
            srv.timings.clear()
        else:
            break
    srv.stop()


class ServerProcess:
    def __init__(self, steps: int, size: tuple[int, int], latency: float, tool: str) -> None:
        ctx = mp.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=_serve, args=(child, steps, size, latency, tool), daemon=True
        )

    def __enter__(self) -> ServerProcess:
        self.proc.start()
        if not self.conn.poll(120):
            raise RuntimeError("the fake server did not start")
        self.base_url: str = self.conn.recv()
        return self

    def timings(self) -> list[tuple[float, float]]:
        self.conn.send("timings")
        return self.conn.recv()

    def __exit__(self, *exc: object) -> None:
        self.conn.send("stop")
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()


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
        traces = await asyncio.gather(*(agent.run(s, run.recorder()) for s in samples))
    finally:
        await agent.model.aclose()  # inside this loop: a client closed after its loop is gone errs
    return time.perf_counter() - t0, traces


def check_answered(traces: list) -> None:
    bad = [t.status for t in traces if t.status != "answered"]
    if bad:
        errors = {t.error for t in traces if t.error}
        raise SystemExit(f"error: {len(bad)} samples did not answer: {set(bad)} {errors}")


def overhead(slide: Path, steps: int, reps: int) -> tuple[list[float], list[float]]:
    """(per-step overhead in s, client CPU per model call in s), over ``reps`` samples."""
    size = open_slide(slide).dimensions
    per_step, cpu_per_call = [], []
    with ServerProcess(steps, size, 0.0, "slide_zoom") as srv, tempfile.TemporaryDirectory() as d:
        # warm-up, not timed: imports the SDK, opens the slide, fills the caches a run keeps
        asyncio.run(run_samples(srv.base_url, slide, 1, min(steps, 3), Path(d) / "warm"))
        srv.timings()
        for rep in range(reps):
            cpu0 = cpu_seconds()
            _, traces = asyncio.run(run_samples(srv.base_url, slide, 1, steps, Path(d) / f"o{rep}"))
            cpu = cpu_seconds() - cpu0
            check_answered(traces)
            timings = srv.timings()
            for (arrived, own), (nxt, _) in zip(timings, timings[1:], strict=False):
                per_step.append(nxt - arrived - own)
            cpu_per_call.append(cpu / len(timings))
    return per_step, cpu_per_call


def concurrency(slide: Path, steps: int, n: int, latency: float, tool: str) -> tuple[float, float]:
    size = open_slide(slide).dimensions
    tools = "+measure" if tool == "measure" else None
    with ServerProcess(steps, size, latency, tool) as srv, tempfile.TemporaryDirectory() as d:
        one, traces = asyncio.run(run_samples(srv.base_url, slide, 1, steps, Path(d) / "1", tools))
        check_answered(traces)
        many, traces = asyncio.run(run_samples(srv.base_url, slide, n, steps, Path(d) / "n", tools))
        check_answered(traces)
    return one, many


def _ms(v: float) -> str:
    return f"{v * 1000:.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--reps", type=int, default=3, help="samples timed one at a time")
    ap.add_argument("--slide")
    ap.add_argument("--smoke", action="store_true", help="a small slide, 3 steps, 4 samples")
    args = ap.parse_args()
    if args.smoke:
        args.steps, args.samples, args.latency, args.reps = 3, 4, 0.02, 1
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench-not-a-real-key")
    slide = bench_slide(args.slide, args.smoke)
    w, h = open_slide(slide).dimensions
    steps, cpu = overhead(slide, args.steps, args.reps)
    med = statistics.median(steps)
    p90 = sorted(steps)[math.ceil(0.9 * len(steps)) - 1]  # nearest rank
    print(f"slide: {slide.name}, {w} x {h} px; preset giant, openai:gpt-5 (Responses API)\n")
    print(
        md_table(
            ["per-step loop overhead, 1000 px views, server answering at once", "result", "target"],
            [
                [
                    f"step wall time minus the server's own time (n={len(steps)})",
                    f"median {_ms(med)}, p90 {_ms(p90)}",
                    f"< 50 ms: {'met' if med < 0.05 else 'MISSED'}",
                ],
                [
                    f"client CPU per model call ({args.reps} samples x {args.steps} calls)",
                    f"median {_ms(statistics.median(cpu))}",
                    "",
                ],
            ],
        )
    )
    rows = []
    for tool in ("measure", "slide_zoom"):
        one, many = concurrency(slide, args.steps, args.samples, args.latency, tool)
        ratio = many / one
        rows.append(
            [
                tool,
                f"{args.samples} x {args.steps}",
                f"{args.latency * 1000:.0f} ms",
                f"{one:.2f} s",
                f"{many:.2f} s",
                f"{ratio:.2f}x",
                f"<= 1.25x: {'met' if ratio <= 1.25 else 'MISSED'}",
            ]
        )
    print()
    print(
        md_table(
            ["tool", "samples x steps", "latency", "one sample", "all at once", "ratio", "target"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
