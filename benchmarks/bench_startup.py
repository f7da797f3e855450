"""Start-up cost of the ``slidescout`` command: CPU time (user + system) of whole processes.

Each command runs ``--repeats`` times as a fresh ``python -m slidescout`` process; the table gives
the median CPU time and wall time, beside the floor of importing the libraries the light commands
need anyway (``python -c "import openslide, PIL.Image, typer, rich"``), and lists the heavy
libraries each command imported (read from ``python -X importtime``; there should be none).
Target: ``slidescout --help`` at most 0.6 s of CPU.

    python3 benchmarks/bench_startup.py [--repeats 5]
    python3 benchmarks/bench_startup.py --smoke      # once each
"""

from __future__ import annotations

import argparse
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import cpu_seconds, md_table, small_slide

HEAVY = ("scipy", "networkx", "openai", "anthropic", "torch", "transformers", "ray", "mcp")
TARGET_S = 0.6


def timed(argv: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one run of ``argv``; it must succeed."""
    c0, t0 = cpu_seconds(resource.RUSAGE_CHILDREN), time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    wall, cpu = time.perf_counter() - t0, cpu_seconds(resource.RUSAGE_CHILDREN) - c0
    if proc.returncode != 0:
        raise SystemExit(f"error: {' '.join(argv)} exited {proc.returncode}: {proc.stderr[-500:]}")
    return cpu, wall


def heavy_imports(argv: list[str]) -> list[str]:
    proc = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]], capture_output=True, text=True, timeout=600
    )
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)", proc.stderr, re.M)
    return sorted({n.split(".")[0] for n in names} & set(HEAVY))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--smoke", action="store_true", help="each command once")
    args = ap.parse_args()
    if args.smoke:
        args.repeats = 1
    py = sys.executable
    with tempfile.TemporaryDirectory() as d:
        slide = small_slide(Path(d) / "s.tiff", 2000, 1500)
        cli = [py, "-m", "slidescout"]
        commands = [
            (
                "floor: `import openslide, PIL.Image, typer, rich`",
                [py, "-c", "import openslide, PIL.Image, typer, rich"],
            ),
            ("`slidescout --help`", [*cli, "--help"]),
            ("`slidescout --version`", [*cli, "--version"]),
            ("`slidescout info SLIDE`", [*cli, "info", str(slide)]),
            (
                "`slidescout render SLIDE --box 0,0,1000,1000`",
                [*cli, "render", str(slide), "--box", "0,0,1000,1000", "-o", f"{d}/r.jpg"],
            ),
            ("`slidescout thumbnail SLIDE`", [*cli, "thumbnail", str(slide), "-o", f"{d}/t.jpg"]),
            ("`slidescout ask --help`", [*cli, "ask", "--help"]),
        ]
        rows, help_cpu = [], None
        for label, argv in commands:
            runs = [timed(argv) for _ in range(args.repeats)]
            cpu = statistics.median(c for c, _ in runs)
            wall = statistics.median(w for _, w in runs)
            heavy = heavy_imports(argv) if argv[1] == "-m" else []
            if label == "`slidescout --help`":
                help_cpu = cpu
            rows.append([label, f"{cpu:.2f} s", f"{wall:.2f} s", ", ".join(heavy) or "none"])
    print(
        md_table(
            [f"command (median of {args.repeats})", "CPU (user + sys)", "wall", "heavy imports"],
            rows,
        )
    )
    assert help_cpu is not None
    verdict = "met" if help_cpu <= TARGET_S else "MISSED"
    print(f"\n`slidescout --help`: {help_cpu:.2f} s of CPU (target <= {TARGET_S} s: {verdict})")


if __name__ == "__main__":
    main()
