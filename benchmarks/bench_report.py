"""Size and CPU time of a shareable HTML report (``slidescout report-html``) of a large run.

A generated run of ``--samples`` samples, each with ``--images`` distinct textured JPEG images of
``--side`` px (quality 85: worse than real H&E crops, which compress better), written by
``make_big_run`` of ``tests/test_viewer_report_size.py``; then ``write_report`` with the default
50 MB budget. Reports the blobs of the run, the report's size and the CPU time of writing it.

    python3 benchmarks/bench_report.py [--samples 150] [--images 10] [--side 1000]
    python3 benchmarks/bench_report.py --smoke      # 3 samples of 2 small images
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from benchlib import ROOT, cpu_seconds, md_table

from slidescout.traces.viewer.report import write_report


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--samples", type=int, default=150)
    ap.add_argument("--images", type=int, default=10)
    ap.add_argument("--side", type=int, default=1000)
    ap.add_argument("--max-mb", type=float, default=50.0)
    ap.add_argument("--smoke", action="store_true", help="3 samples of 2 images of 200 px")
    args = ap.parse_args()
    if args.smoke:
        args.samples, args.images, args.side = 3, 2, 200
    sys.path.insert(0, str(ROOT / "tests"))
    from test_viewer_report_size import make_big_run

    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        run = make_big_run(
            root, n_samples=args.samples, images_per_sample=args.images, side=args.side
        )
        blobs = [p.stat().st_size for p in (run / "blobs").rglob("*") if p.is_file()]
        c0, t0 = cpu_seconds(), time.perf_counter()
        out = write_report(run, root / "r.html", max_bytes=int(args.max_mb * 1e6))
        cpu, wall = cpu_seconds() - c0, time.perf_counter() - t0
        size = out.stat().st_size
    print(
        f"{args.samples} samples x {args.images} images of {args.side} x {args.side * 3 // 4} px, "
        f"report budget {args.max_mb:g} MB\n"
    )
    print(
        md_table(
            ["", "result"],
            [
                ["blobs of the run", f"{sum(blobs) / 1e6:.1f} MB in {len(blobs)} files"],
                ["report file", f"{size / 1e6:.1f} MB"],
                ["CPU time of `write_report`", f"{cpu:.1f} s ({wall:.1f} s wall)"],
            ],
        )
    )


if __name__ == "__main__":
    main()
