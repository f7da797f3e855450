"""Throughput of ``data fetch`` against the local fake GDC server (loopback, no network).

    PYTHONPATH=src python3 benchmarks/bench_fetch.py --files 4 --mb 64 --repeats 3

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
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--mb", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=4)
    a = ap.parse_args()
    items = [SlideItem("tcga", f"slide-{i}.svs", f"id-{i}", ["tcga"], 1) for i in range(a.files)]
    total = a.files * (a.mb << 20)
    q: mp.Queue = mp.Queue()
    server = mp.Process(target=_serve, args=(a.files, a.mb, q), daemon=True)
    server.start()
    try:
        url = q.get(timeout=120)
        rates, md5s = [], []
        for _ in range(a.repeats):
            with tempfile.TemporaryDirectory() as d:
                cfg = FetchConfig(
                    root=Path(d),
                    gdc_url=url,
                    concurrency=a.concurrency,
                    progress=False,
                    policy=RetryPolicy(base=0.01),
                )
                t = time.perf_counter()
                s = fetch_slides(items, cfg)
                dt = time.perf_counter() - t
                assert len(s.of("fetched")) == a.files, s.outcomes
                rates.append(total / dt / 1e6)
                t = time.perf_counter()
                for it in items:
                    md5_of(Path(d) / "tcga" / it.name)
                md5s.append(total / (time.perf_counter() - t) / 1e6)
    finally:
        server.terminate()
    print(
        f"{a.files} files x {a.mb} MiB, concurrency {a.concurrency}: fetch {statistics.median(rates):.0f} MB/s "
        f"(median of {a.repeats}), md5 alone {statistics.median(md5s):.0f} MB/s"
    )


if __name__ == "__main__":
    main()
