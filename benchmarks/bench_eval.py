"""Evaluation-runner benchmark: wall time of many samples against a slow fake model server.

    python3 benchmarks/bench_eval.py [--samples 200] [--steps 10] [--latency 0.2] [--concurrency 32]
                                     [--executor asyncio,ray] [--record docs/benchmarks.md]

Each sample is a GIANT-preset agent run on a small generated TIFF (slide I/O is not what is
measured) against the fake OpenAI server (``slidescout.testing``) in its own process, with
``--latency`` seconds per request and ``--steps`` model calls per sample (``--steps - 1`` tool
calls, then the answer). The ideal wall time is ``samples * steps * latency / concurrency``;
the runner should stay within 1.3x of it. The same run goes through the Ray executor on a local
Ray instance (``--executor ray``; worker start-up included).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVER = """
import socket, sys, time
from slidescout.testing.fake_openai import FakeOpenAI
srv = FakeOpenAI(auto_turns=int(sys.argv[1]), latency_s=float(sys.argv[2]), strict=False).start()
# no Nagle delay on replies (accepted sockets inherit TCP_NODELAY from the listening socket):
# without it every request waits ~40 ms for a delayed ACK, which no real server adds
sock = getattr(srv, "_sock", None)
if sock is not None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
print(srv.base_url, flush=True)
sys.stdin.read()
srv.stop()
"""

COLUMNS = [
    "benchmark_name",
    "benchmark_id",
    "image_path",
    "answer",
    "options",
    "image_exists",
    "patch_exists",
    "is_valid",
    "metric_type",
    "file_id",
    "prompt",
]


def make_dataset(root: Path, n: int) -> tuple[Path, Path]:
    """``n`` questions on four 2048x1536 generated TIFFs (``tests/slidefactory.py``'s tissue
    pattern: small JPEGs, so neither slide reads nor image payloads are what is measured), in
    MultiPathQA's columns."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from slidefactory import make_tiff

    slides = root / "slides"
    slides.mkdir(parents=True, exist_ok=True)
    for k in range(4):
        path = slides / f"bench-{k}.tiff"
        if not path.exists():
            make_tiff(
                path, 2048 + 256 * k, 1536, mpp=0.5, pattern="tissue" if k % 2 else "gradient"
            )
    options = [
        "Lung adenocarcinoma",
        "Hepatocellular carcinoma",
        "Renal cell carcinoma",
        "Melanoma",
    ]
    prompt = (
        "What is the primary diagnosis?\n\nSelect from the following options:\n{options}\n"
        'Respond in the following JSON format:\n```json\n{{"answer": YOUR_ANSWER}}\n```'
    )
    csv_path = root / "bench.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for i in range(n):
            w.writerow(
                {
                    "benchmark_name": "tcga",
                    "benchmark_id": f"B{i:04d}",
                    "image_path": f"bench-{i % 4}.tiff",
                    "answer": str(i % 4 + 1),
                    "options": repr(options),
                    "image_exists": "True",
                    "patch_exists": "True",
                    "is_valid": "True",
                    "metric_type": "balanced_accuracy",
                    "file_id": f"B{i:04d}",
                    "prompt": prompt,
                }
            )
    return csv_path, slides


def start_server(steps: int, latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(steps - 1), str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise RuntimeError("the fake server did not start")
    return proc, url


class InProcessModel:
    """The fake server's auto planner without HTTP: waits ``latency`` seconds, calls slide_zoom
    ``steps - 1`` times, then answers. Isolates the runner and the loop from the SDK's cost."""

    name = "bench:inprocess"
    api = "bench"
    supports_tools = True
    supports_images = True

    def __init__(self, steps: int, latency: float) -> None:
        self.steps, self.latency = steps, latency

    async def request(self, req):
        from slidescout.core.messages import (
            AssistantMessage,
            ModelResponse,
            TextPart,
            ToolCallPart,
            ToolMessage,
            Usage,
        )

        await asyncio.sleep(self.latency)
        done = sum(len(m.results) for m in req.messages if isinstance(m, ToolMessage))
        if done < self.steps - 1 and req.tools:
            parts = [
                ToolCallPart(
                    id=f"c{done}",
                    name="slide_zoom",
                    arguments={"x0": 100, "y0": 100, "w": 100, "h": 100},
                )
            ]
        else:
            parts = [TextPart(text='{"answer": 1}')]
        return ModelResponse(
            message=AssistantMessage(parts=parts),
            usage=Usage(cost_usd=None),
            model=self.name,
            latency_s=self.latency,
        )

    async def aclose(self) -> None:
        return None


def run_once(
    executor: str, samples: list, url: str | None, args: argparse.Namespace, out: Path
) -> dict:
    from slidescout.agents.config import AgentConfig
    from slidescout.agents.loop import make_agent
    from slidescout.eval.config import EvalConfig
    from slidescout.eval.runner import run_eval

    spec = factory = None
    if url is None:
        model = InProcessModel(args.steps, args.latency)

        def factory(budget, repeat):  # noqa: ANN001, ANN202
            return make_agent(model, preset="giant", budget=budget, max_steps=args.steps + 2)

    else:
        spec = AgentConfig(
            model="openai:bench-vlm", base_url=url, preset="giant", max_steps=args.steps + 2
        )
    ray_options = {}
    if executor == "ray":
        import ray

        ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)
        ray_options = {"workers": args.ray_cpus}
    import resource

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    summary = asyncio.run(
        run_eval(
            samples,
            out=out,
            agent=spec,
            agent_factory=factory,
            config=EvalConfig(
                concurrency=args.concurrency, executor=executor, ray_options=ray_options
            ),
        )
    )
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    if executor == "ray":
        import ray

        ray.shutdown()
    steps = [
        json.loads(line)["n_steps"] for line in (out / "results.jsonl").read_text().splitlines()
    ]
    ideal = len(samples) * args.steps * args.latency / args.concurrency
    return {
        "executor": executor if url else f"{executor}, in-process model",
        "samples": len(samples),
        "finished": summary.n_finished,
        "statuses": summary.statuses,
        "mean_steps": sum(steps) / max(1, len(steps)),
        "wall_s": round(wall, 2),
        "ideal_s": round(ideal, 2),
        "ratio": round(wall / ideal, 3),
        "driver_cpu_s": round(cpu, 2),
        "driver_cpu_ms_per_step": round(1000 * cpu / max(1, sum(steps)), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--executor", default="asyncio,ray", help="comma-separated: asyncio, ray")
    ap.add_argument(
        "--ray-cpus", type=int, default=2, help="CPUs of the local Ray instance (= worker actors)"
    )
    ap.add_argument(
        "--inprocess",
        action="store_true",
        help="also run the asyncio executor with an in-process model (no HTTP, no SDK)",
    )
    ap.add_argument(
        "--record", type=Path, default=None, help="append the results to this markdown file"
    )
    args = ap.parse_args()

    from slidescout.eval import load_multipathqa

    root = Path(tempfile.mkdtemp(prefix="slidescout-bench-eval-"))
    csv_path, slides = make_dataset(root, args.samples)
    samples = load_multipathqa(csv_path, slides_dir=slides).samples
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
    proc, url = start_server(args.steps, args.latency)
    results = []
    try:
        for executor in [e.strip() for e in args.executor.split(",") if e.strip()]:
            res = run_once(executor, samples, url, args, root / f"run-{executor}")
            results.append(res)
            print(json.dumps(res), flush=True)
        if args.inprocess:
            res = run_once("asyncio", samples, None, args, root / "run-inprocess")
            results.append(res)
            print(json.dumps(res), flush=True)
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
    cmd = " ".join(["python3 benchmarks/bench_eval.py", *sys.argv[1:]])
    lines = [
        "| executor | samples | steps/sample | concurrency | latency | ideal | wall | wall / ideal | driver CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['executor']} | {r['finished']}/{r['samples']} | {r['mean_steps']:.1f} | {args.concurrency} | "
            f"{args.latency * 1000:.0f} ms | {r['ideal_s']:.1f} s | {r['wall_s']:.1f} s | {r['ratio']:.2f}x | "
            f"{r['driver_cpu_s']:.1f} s ({r['driver_cpu_ms_per_step']:.1f} ms/step) |"
        )
    table = "\n".join(lines)
    print(f"\n{cmd}\n\n{table}")
    if args.record:
        load = os.getloadavg()[0]
        with args.record.open("a", encoding="utf-8") as f:
            f.write(
                f"\n`{cmd}` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, load average {load:.1f}):"
                f"\n\n{table}\n"
            )


if __name__ == "__main__":
    main()
