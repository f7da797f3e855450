"""SynthPath with the offline planner: accuracy of the `expert` planner under several presets.

Generates (once, cached) ``--n`` SynthPath slides of ``--size`` with ``--data-seed``, then runs
``slidescout eval synth``'s path (``run_eval``) with the offline ``expert`` planner under each
preset of ``--presets`` (the thumbnail baseline is the same planner given one 1024 px image and
no tools), ``--concurrency`` samples at a time. Prints accuracy per task with its 95% bootstrap
interval, mean steps, lesions seen at <= 1 µm/px (grounding) and wall time per preset.

    python3 benchmarks/bench_synthpath.py [--n 20] [--size 12000x9000] [--data-seed 5]
    python3 benchmarks/bench_synthpath.py --smoke      # 2 small slides, giant and thumbnail
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchlib import bench_dir, md_table

from slidescout.agents.config import AgentConfig
from slidescout.eval import load_synth
from slidescout.eval.config import EvalConfig
from slidescout.eval.report import grounding_summary, load_run
from slidescout.eval.runner import run_eval
from slidescout.slides.synth import generate_dataset


def dataset(n: int, size: tuple[int, int], seed: int) -> Path:
    folder = bench_dir() / f"synthpath-n{n}-{size[0]}x{size[1]}-seed{seed}"
    csv_path = folder / "questions.csv"
    if not csv_path.exists():
        print(f"generating {n} SynthPath slides {size[0]}x{size[1]} (once)...", file=sys.stderr)
        generate_dataset(folder, n, size=size, seed=seed)
    return csv_path


def run_preset(
    csv_path: Path, preset: str, concurrency: int, out: Path, max_steps: int | None
) -> dict:
    samples = load_synth(csv_path).samples
    t0 = time.perf_counter()
    asyncio.run(
        run_eval(
            samples,
            out=out,
            agent=AgentConfig(model="expert", preset=preset, max_steps=max_steps),
            config=EvalConfig(concurrency=concurrency),
        )
    )
    wall = time.perf_counter() - t0
    rep = load_run(out)
    ground = grounding_summary(rep.finished)
    return {
        "preset": preset,
        "scores": rep.scores,
        "steps": statistics.fmean(int(r.get("n_steps") or 0) for r in rep.finished),
        "seen": sum(g["n_seen"] for g in ground.values()),
        "lesions": sum(g["n_lesions"] for g in ground.values()),
        "wall": wall,
    }


def _acc(score) -> str:  # noqa: ANN001
    v, lo, hi = (100 * x for x in (score.value, score.ci_low, score.ci_high))
    return f"{v:.1f} [{lo:.1f}-{hi:.1f}]"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--size", default="12000x9000")
    ap.add_argument("--data-seed", type=int, default=5)
    ap.add_argument("--presets", default="giant,vitar,thumbnail")
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument(
        "--smoke", action="store_true", help="2 slides of 3000x2000, two presets, 4 steps"
    )
    args = ap.parse_args()
    if args.smoke:
        args.n, args.size, args.presets = 2, "3000x2000", "giant,thumbnail"
    w, h = (int(v) for v in args.size.lower().split("x"))
    csv_path = dataset(args.n, (w, h), args.data_seed)
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    with tempfile.TemporaryDirectory() as d:
        steps = 4 if args.smoke else None
        rows = [run_preset(csv_path, p, args.concurrency, Path(d) / p, steps) for p in presets]
    tasks = sorted({t for r in rows for t in r["scores"]})
    n_per_task = {t: next(r["scores"][t].n for r in rows if t in r["scores"]) for t in tasks}
    head = ["task (n)", *(f"expert · {r['preset']}" for r in rows)]
    body = [
        [
            f"{t} ({n_per_task[t]})",
            *(_acc(r["scores"][t]) if t in r["scores"] else "-" for r in rows),
        ]
        for t in tasks
    ]
    body.append(["mean steps / sample", *(f"{r['steps']:.1f}" for r in rows)])
    body.append(
        [
            "lesions seen at <= 1 µm/px",
            *(f"{r['seen']}/{r['lesions']}" if r["lesions"] else "-" for r in rows),
        ]
    )
    body.append(
        [f"wall time ({args.concurrency} samples at a time)", *(f"{r['wall']:.0f} s" for r in rows)]
    )
    print(
        f"{args.n} SynthPath slides of {w} x {h} px (data seed {args.data_seed}), accuracy % with "
        "95% bootstrap intervals\n"
    )
    print(md_table(head, body))


if __name__ == "__main__":
    main()
