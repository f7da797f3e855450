"""Run every benchmark at full size and write its results into ``docs/benchmarks.md``.

    python3 benchmarks/run_all.py                           # every run below (about an hour)
    python3 benchmarks/run_all.py --only bench_loop,bench_eval
    python3 benchmarks/run_all.py --smoke --doc /tmp/b.md   # tiny sizes: checks the plumbing
    python3 benchmarks/run_all.py --list

Each run is one command of ``RUNS`` (a ``bench_*.py`` that ``RUNS`` does not name runs once,
without arguments, so a new script is never left out). What it prints on stdout (its markdown
tables) replaces the block between ``<!-- run_all: KEY -->`` and ``<!-- /run_all: KEY -->`` in the
doc, under a line with the command, the date, the load average before and after, and the wall
time; the block ``machine`` describes the machine (cores, CPU model, memory, GPU, versions). A run
with no block in the doc is appended at its end. A run that fails leaves its exit status and the
end of its stderr in its block, and ``run_all`` exits 1 after the others have run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "benchmarks.md"


@dataclass(frozen=True)
class Run:
    key: str  # the doc block it fills
    script: str  # bench_*.py, without the suffix
    args: tuple[str, ...] = ()


RUNS = [
    Run("bench_startup", "bench_startup"),
    Run("bench_slides", "bench_slides", ("--boxes", "40")),
    Run("bench_loop", "bench_loop"),
    Run("bench_eval", "bench_eval", ("--samples", "200", "--inprocess")),
    Run(
        "bench_eval-ray",
        "bench_eval",
        ("--samples", "200", "--inprocess", "--executor", "asyncio,ray", "--rounds", "3"),
    ),
    Run("bench_protocols", "bench_protocols"),
    Run("bench_formats", "bench_formats", ("--repeats", "9")),
    Run(
        "bench_formats-zarr-dicom",
        "bench_formats",
        ("--width", "16000", "--height", "12000", "--repeats", "7")
        + ("--formats", "ome-subifd,ome-zarr,dicom"),
    ),
    Run(
        "bench_formats-zarr1024",
        "bench_formats",
        ("--width", "16000", "--height", "12000", "--repeats", "7")
        + ("--formats", "ome-zarr", "--zarr-chunk", "1024"),
    ),
    Run("bench_fetch", "bench_fetch", ("--files", "4", "--mb", "64", "--repeats", "3")),
    Run("bench_synthpath", "bench_synthpath"),
    Run("bench_report", "bench_report"),
    Run("bench_lookup", "bench_lookup", ("--misses",)),
    Run("bench_experts", "bench_experts", ("--rounds", "3")),
    Run("bench_experts-threads1", "bench_experts", ("--rounds", "3", "--threads", "1")),
    Run(
        "bench_experts-medium",
        "bench_experts",
        ("--model", "medium", "--rounds", "3", "--threads", "1"),
    ),
    Run(
        "bench_experts-resnet50",
        "bench_experts",
        ("--model", "resnet50-like", "--patches", "256", "--naive-patches", "32", "--rounds", "2"),
    ),
    Run(
        "bench_experts-segment",
        "bench_experts",
        ("--path", "segment", "--size", "16000x12000", "--rounds", "3", "--side", "1024"),
    ),
    Run(
        "bench_experts-zeroshot",
        "bench_experts",
        ("--path", "zero-shot", "--size", "16000x12000", "--rounds", "3", "--patches", "64"),
    ),
]


def scripts() -> list[str]:
    return sorted(p.stem for p in HERE.glob("bench_*.py"))


def plan(smoke: bool, only: set[str] | None) -> list[Run]:
    """The runs to make: ``RUNS`` plus any script it misses; with ``smoke``, each script once."""
    named = {r.script for r in RUNS}
    runs = [r for r in RUNS if r.script in scripts()] + [
        Run(s, s) for s in scripts() if s not in named
    ]
    if smoke:
        runs = [Run(s, s, ("--smoke",)) for s in dict.fromkeys(r.script for r in runs)]
    if only:  # a run's key selects that run; a script's name, every run of the script
        keys = {r.key for r in runs}
        runs = [r for r in runs if r.key in only or (r.script in only and r.script not in keys)]
    return runs


def _first_line(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def machine() -> str:
    """The machine and software the figures come from, as markdown."""
    mem = _first_line("/proc/meminfo", "MemTotal")
    mem_gb = f"{int(mem.split()[0]) / 2**20:.0f} GiB" if mem else "unknown"
    gpu = "none"
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        gpu = "; ".join(smi.stdout.strip().splitlines()) or "none"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        import pyvips

        libvips = ".".join(str(pyvips.version(i)) for i in range(3))
    except Exception:  # noqa: BLE001  (an optional library: its version or "unknown")
        libvips = "unknown"
    dists = ["numpy", "pyvips", "openslide-python", "openslide-bin", "Pillow", "torch"]
    dists += ["openai", "anthropic", "ray", "typer", "pydantic"]
    versions = ", ".join(f"{d} {_version(d)}" for d in dists if _version(d))
    status = _git("status", "--porcelain", "--", ".", ":!docs/benchmarks.md")  # this page aside
    dirty = " (uncommitted changes)" if status not in ("", "unknown") else ""
    return "\n".join(
        [
            f"- **Written:** {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')} by "
            "`python3 benchmarks/run_all.py`",
            f"- **CPU:** {os.cpu_count()} cores, "
            f"{_first_line('/proc/cpuinfo', 'model name') or platform.processor() or 'unknown'}",
            f"- **Memory:** {mem_gb}; **GPU:** {gpu}",
            f"- **OS:** {platform.platform()}",
            f"- **Python** {platform.python_version()}; libvips {libvips}; {versions}",
            f"- **slidescout:** {_version('slidescout')}, git {_git('rev-parse', '--short', 'HEAD')}"
            f"{dirty}",
            "- The machine may be shared: each block gives the load average (1 min) before and "
            "after its run.",
        ]
    )


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def execute(run: Run, timeout: float) -> tuple[bool, str]:
    """Run one benchmark; (succeeded, the block's markdown)."""
    cmd = ["python3", f"benchmarks/{run.script}.py", *run.args]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])
        ),
    }
    before, t0 = _load(), time.perf_counter()
    print(f"run_all: {shlex.join(cmd)} (load {before})", file=sys.stderr, flush=True)
    try:
        proc = subprocess.run(
            [sys.executable, *cmd[1:]],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out = -1, exc.stdout if isinstance(exc.stdout, str) else ""
        err = f"timed out after {timeout:.0f} s"
    wall = time.perf_counter() - t0
    head = (
        f"`{shlex.join(cmd)}`: {dt.date.today().isoformat()}, load average {before} before and "
        f"{_load()} after, {wall:.0f} s"
    )
    if rc != 0:
        tail = "\n".join(err.strip().splitlines()[-15:])
        return False, f"{head}: **failed (exit {rc})**\n\n```text\n{tail}\n```"
    return True, f"{head}.\n\n{as_markdown(out)}"


def as_markdown(out: str) -> str:
    """A script's stdout for the doc: as it is when it holds a markdown table, else fenced as
    text (aligned columns stay aligned)."""
    out = out.strip("\n")
    if re.search(r"^\|.*\|\s*\n\|(\s*:?-{3,}:?\s*\|)+\s*$", out, re.M):
        return out.strip()
    return f"```text\n{out}\n```"


def _marker(key: str) -> tuple[str, str]:
    return f"<!-- run_all: {key} -->", f"<!-- /run_all: {key} -->"


def put_block(doc: str, key: str, body: str) -> str:
    """``doc`` with the block ``key`` replaced by ``body`` (appended when the doc has none)."""
    start, end = _marker(key)
    block = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(doc):
        return pattern.sub(lambda _: block, doc, count=1)
    return f"{doc.rstrip()}\n\n## {key}\n\n{block}\n"


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--doc", type=Path, default=DOC, help="the markdown file to update")
    ap.add_argument(
        "--only", help="comma-separated run keys (bench_experts-medium) or script names"
    )
    ap.add_argument("--smoke", action="store_true", help="each script once with --smoke")
    ap.add_argument("--list", action="store_true", help="print the commands and exit")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    args = ap.parse_args()
    only = {s.strip() for s in args.only.split(",")} if args.only else None
    runs = plan(args.smoke, only)
    if args.list:
        for r in runs:
            print(f"{r.key}: python3 benchmarks/{r.script}.py {shlex.join(r.args)}".rstrip())
        return 0
    if not runs:
        print(f"error: no benchmark matches --only {args.only}", file=sys.stderr)
        return 2
    failed = []
    for run in runs:
        ok, body = execute(run, args.timeout)
        if not ok:
            failed.append(run.key)
        # read just before writing: the page may have been edited while the benchmark ran
        doc = args.doc.read_text(encoding="utf-8") if args.doc.exists() else "# Benchmarks\n"
        doc = put_block(doc, run.key, body)
        doc = put_block(doc, "machine", machine())
        args.doc.write_text(doc, encoding="utf-8")  # after each run: a crash keeps what finished
    if failed:
        print(f"error: {len(failed)} benchmark(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"run_all: {len(runs)} benchmark(s) written to {args.doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
