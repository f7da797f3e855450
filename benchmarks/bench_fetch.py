"""Throughput of ``data fetch`` against the local fake GDC server (loopback, no network).

    PYTHONPATH=src python3 benchmarks/bench_fetch.py --files 4 --mb 64 --repeats 3
    PYTHONPATH=src python3 benchmarks/bench_fetch.py --smoke     # 2 files of 2 MiB, once

Measures the whole fetch (files endpoint, download to .part, md5, rename) and, separately, the
md5 pass alone, so the download rate can be told apart from the verification cost.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time
from pathlib import Path

from benchlib import cpu_seconds, md_table

from slidescout.eval.fetch import FetchConfig, RetryPolicy, SlideItem, fetch_slides
from slidescout.eval.fetch.download import md5_of
from slidescout.testing.fake_gdc import FakeSlideServer


def _blob(i: int, mb: int) -> bytes:
    return bytes((j * 7 + i) & 0xFF for j in range(256)) * (mb << 12)


def _serve(files: int, mb: int, q: mp.Queue) -> None:
    """The server in its own process, so it does not share the client's GIL."""
    srv = FakeSlideServer().start()
    for i in range(files):
        srv.add_gdc(f"id-{i}", _blob(i, mb))
    q.put(srv.gdc_url)
    time.sleep(3600)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--mb", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--smoke", action="store_true", help="2 files of 2 MiB, once")
    a = ap.parse_args()
    if a.smoke:
        a.files, a.mb, a.repeats, a.concurrency = 2, 2, 1, 2
    items = [SlideItem("tcga", f"slide-{i}.svs", f"id-{i}", ["tcga"], 1) for i in range(a.files)]
    total = a.files * (a.mb << 20)
    q: mp.Queue = mp.Queue()
    server = mp.Process(target=_serve, args=(a.files, a.mb, q), daemon=True)
    server.start()
    try:
        url = q.get(timeout=120)
        rates, md5s, cpus = [], [], []
        for _ in range(a.repeats):
            with tempfile.TemporaryDirectory() as d:
                cfg = FetchConfig(
                    root=Path(d),
                    gdc_url=url,
                    concurrency=a.concurrency,
                    policy=RetryPolicy(base=0.01),
                )
                t, c = time.perf_counter(), cpu_seconds()
                s = fetch_slides(items, cfg)
                dt = time.perf_counter() - t
                cpus.append(cpu_seconds() - c)
                assert len(s.of("fetched")) == a.files, s.outcomes
                rates.append(total / dt / 1e6)
                t = time.perf_counter()
                for it in items:
                    md5_of(Path(d) / "tcga" / it.name)
                md5s.append(total / (time.perf_counter() - t) / 1e6)
    finally:
        server.terminate()
    print(
        md_table(
            [
                f"{a.files} files x {a.mb} MiB, concurrency {a.concurrency}",
                f"median of {a.repeats}",
            ],
            [
                [
                    "`data fetch` (files endpoint, download, md5, rename)",
                    f"{statistics.median(rates):.0f} MB/s",
                ],
                ["client CPU per fetch", f"{statistics.median(cpus):.2f} s"],
                ["md5 pass alone over the same files", f"{statistics.median(md5s):.0f} MB/s"],
            ],
        )
    )


if __name__ == "__main__":
    main()
