"""Evaluation-runner benchmark: wall time of many samples against a slow fake model server.

    python3 benchmarks/bench_eval.py [--samples 200] [--steps 10] [--latency 0.2] [--concurrency 32]
                                     [--executor asyncio,ray] [--inprocess] [--rounds 3]
    python3 benchmarks/bench_eval.py --smoke     # 6 samples x 3 steps, asyncio + in-process: seconds

Each sample is a GIANT-preset agent run on a small generated TIFF (slide I/O is not what is
measured) against the fake OpenAI server (``slidescout.testing``) in its own process, with
``--latency`` seconds per request and ``--steps`` model calls per sample (``--steps - 1`` tool
calls, then the answer). The ideal wall time is ``samples * steps * latency / concurrency``;
the runner should stay within 1.3x of it.

Every executor runs the same samples in the same invocation, ``--rounds`` times each (medians are
shown, and the range of the run time). Start-up (until the first sample is sent: for Ray, starting
or reaching the instance and the worker actors, whose imports happen there) is reported apart from
the run (first sample sent to last record); for asyncio the driver's CPU per step is also shown
for the run alone (the provider client and its SDK import belong to the start-up).
``--executor ray`` gives three rows:

- *new local instance*: what ``slidescout eval --executor ray`` does on one machine (the executor
  starts a local Ray instance and its workers, and ends them);
- *running instance, new workers*: a Ray instance already up (as a cluster is), workers started
  and kept (``keep_workers``, the default with ``--address``);
- *running instance, kept workers*: the next run on that instance, finding those workers ready.
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

from benchlib import md_table

from slidescout.core.messages import (
    AssistantMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolMessage,
    Usage,
)
from slidescout.testing.scripted import FunctionModel

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


class InProcessModel(FunctionModel):
    """The fake server's auto planner without HTTP: waits ``latency`` seconds, calls slide_zoom
    ``steps - 1`` times, then answers. Isolates the runner and the loop from the SDK's cost."""

    def __init__(self, steps: int, latency: float) -> None:
        super().__init__(self._reply, name="bench:inprocess")
        self.steps, self.latency = steps, latency

    async def request(self, req: ModelRequest) -> ModelResponse:  # keeps no request log
        return await self._reply(req, 0)

    async def _reply(self, req: ModelRequest, turn: int) -> ModelResponse:
        await asyncio.sleep(self.latency)
        done = sum(len(m.results) for m in req.messages if isinstance(m, ToolMessage))
        if done < self.steps - 1 and req.tools:
            args = {"x0": 100, "y0": 100, "w": 100, "h": 100}
            parts: list = [ToolCallPart(id=f"c{done}", name="slide_zoom", arguments=args)]
        else:
            parts = [TextPart(text='{"answer": 1}')]
        return ModelResponse(
            message=AssistantMessage(parts=parts),
            usage=Usage(cost_usd=None),
            model=self.name,
            latency_s=self.latency,
        )


RAY_ROWS = ("ray, new local instance", "ray, running instance, new workers", "ray, kept workers")


def run_once(
    label: str,
    samples: list,
    url: str | None,
    args: argparse.Namespace,
    out: Path,
    ray_options: dict | None = None,
) -> dict:
    """One run of ``samples``: its timings (start-up apart from the run) and driver CPU, also
    printed on stderr as soon as the run ends."""
    from benchlib import cpu_seconds

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
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    summary = asyncio.run(
        run_eval(
            samples,
            out=out,
            agent=spec,
            agent_factory=factory,
            config=EvalConfig(
                concurrency=args.concurrency,
                executor="ray" if ray_options is not None else "asyncio",
                ray_options=ray_options or {},
            ),
        )
    )
    wall = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    steps = [
        json.loads(line)["n_steps"] for line in (out / "results.jsonl").read_text().splitlines()
    ]
    ideal = len(samples) * args.steps * args.latency / args.concurrency
    ex = summary.executor
    res = {
        "executor": label,
        "samples": len(samples),
        "finished": summary.n_finished,
        "statuses": summary.statuses,
        "mean_steps": sum(steps) / max(1, len(steps)),
        "wall_s": round(wall, 2),
        "startup_s": round(float(ex.get("startup_s") or 0.0), 2),
        "run_s": round(float(ex.get("run_s") or 0.0), 2),
        "workers": ex.get("workers"),
        "workers_reused": ex.get("workers_reused"),
        "ideal_s": round(ideal, 2),
        "ratio": round(float(ex.get("run_s") or wall) / ideal, 3),
        "driver_cpu_s": round(cpu, 2),
        "driver_cpu_ms_per_step": round(1000 * cpu / max(1, sum(steps)), 2),
        "run_cpu_s": ex.get("run_cpu_s"),
        "run_cpu_ms_per_step": (
            None
            if ex.get("run_cpu_s") is None
            else round(1000 * float(ex["run_cpu_s"]) / max(1, sum(steps)), 2)
        ),
        "workers_cpu_s": ex.get("workers_cpu_s"),
        "steps": sum(steps),
    }
    print(json.dumps(res), file=sys.stderr, flush=True)
    return res


def ray_round(samples: list, url: str, args: argparse.Namespace, root: Path) -> list[dict]:
    """The three Ray rows of one round (see the module doc)."""
    import ray

    from slidescout.eval.ray_pool import release_pool

    workers = {"workers": args.ray_cpus}
    rows = [run_once(RAY_ROWS[0], samples, url, args, root / "ray-local", dict(workers))]
    # a running instance of the same size, as a cluster would be (address="local": ours alone)
    ray.init(address="local", num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)
    try:
        kept = {**workers, "keep_workers": True}
        for k, label in enumerate(RAY_ROWS[1:]):
            rows.append(run_once(label, samples, url, args, root / f"ray-kept{k}", kept))
        release_pool(ray)
    finally:
        ray.shutdown()
    return rows


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


def summarize(rounds: list[list[dict]]) -> list[dict]:
    """Per row: the median over rounds of each timing, and the range of the run time."""
    out = []
    for row in zip(*rounds, strict=True):
        first = dict(row[0])
        for key in ("wall_s", "startup_s", "run_s", "ratio", "driver_cpu_s"):
            first[key] = _median([r[key] for r in row])
        first["driver_cpu_ms_per_step"] = _median([r["driver_cpu_ms_per_step"] for r in row])
        if first.get("run_cpu_ms_per_step") is not None:
            first["run_cpu_ms_per_step"] = _median([r["run_cpu_ms_per_step"] or 0.0 for r in row])
        if first.get("workers_cpu_s") is not None:
            first["workers_cpu_s"] = _median([r["workers_cpu_s"] or 0.0 for r in row])
        first["run_range"] = (min(r["run_s"] for r in row), max(r["run_s"] for r in row))
        first["finished"] = min(r["finished"] for r in row)
        out.append(first)
    return out


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
    ap.add_argument("--rounds", type=int, default=1, help="runs of every row (medians shown)")
    ap.add_argument(
        "--smoke", action="store_true", help="6 samples x 3 steps, asyncio and in-process only"
    )
    args = ap.parse_args()
    if args.smoke:
        args.samples, args.steps, args.latency, args.concurrency = 6, 3, 0.02, 3
        args.executor, args.inprocess, args.rounds = "asyncio", True, 1

    from slidescout.eval import load_multipathqa

    root = Path(tempfile.mkdtemp(prefix="slidescout-bench-eval-"))
    csv_path, slides = make_dataset(root, args.samples)
    samples = load_multipathqa(csv_path, slides_dir=slides).samples
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
    executors = [e.strip() for e in args.executor.split(",") if e.strip()]
    proc, url = start_server(args.steps, args.latency)
    load0 = os.getloadavg()[0]
    rounds = []
    try:
        for k in range(max(1, args.rounds)):
            results = []
            for executor in executors:
                if executor == "ray":
                    results += ray_round(samples, url, args, root / f"r{k}")
                else:
                    results.append(run_once(executor, samples, url, args, root / f"r{k}-asyncio"))
            if args.inprocess:
                label = "asyncio, in-process model"
                results.append(run_once(label, samples, None, args, root / f"r{k}-inprocess"))
            rounds.append(results)
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
    print_table(summarize(rounds), args, load0, os.getloadavg()[0])


def print_table(results: list[dict], args: argparse.Namespace, load0: float, load1: float) -> None:
    rows = [
        [
            r["executor"],
            f"{r['finished']}/{r['samples']}",
            f"{r['mean_steps']:.1f}",
            f"{r['ideal_s']:.1f} s",
            f"{r['startup_s']:.1f} s",
            f"{r['run_s']:.1f} s"
            + (f" ({r['run_range'][0]:.1f}-{r['run_range'][1]:.1f})" if args.rounds > 1 else ""),
            f"{r['ratio']:.2f}x",
            f"{r['wall_s']:.1f} s",
            f"{r['driver_cpu_s']:.1f} s ({r['driver_cpu_ms_per_step']:.1f} ms/step)",
            "-" if r.get("run_cpu_ms_per_step") is None else f"{r['run_cpu_ms_per_step']:.2f} ms",
            _workers_cpu(r),
        ]
        for r in results
    ]
    head = ["executor", "samples", "steps/sample", "ideal", "start-up", "run", "run / ideal"]
    print(
        f"\n{args.samples} samples x {args.steps} steps, concurrency {args.concurrency}, "
        f"{args.latency * 1000:.0f} ms per request, Ray instance of {args.ray_cpus} CPUs; "
        f"median of {max(1, args.rounds)} round(s); load average {load0:.1f} before, "
        f"{load1:.1f} after, {os.cpu_count()} cores\n"
    )
    print(
        md_table(
            [*head, "wall", "driver CPU", "driver CPU/step in the run", "Ray workers' CPU"], rows
        )
    )


def _workers_cpu(r: dict) -> str:
    cpu = r.get("workers_cpu_s")
    if cpu is None:
        return "-"
    return f"{cpu:.1f} s ({1000 * cpu / max(1, r['steps']):.1f} ms/step)"


if __name__ == "__main__":
    main()
