"""Slide-reading benchmark: slidescout's engine vs GIANT's way vs the JPEG decode floor.

    python3 benchmarks/bench_slides.py [--slide PATH] [--boxes 40] [--seed 0] [--only views]
    python3 benchmarks/bench_slides.py --smoke      # a 4000 x 3000 px slide, seconds

Makes (once, cached in /tmp/slidescout-bench/) a 100,000 x 80,000 px tiled JPEG pyramidal TIFF
with a procedural tissue-like texture, then measures on the same random boxes (1k-50k px long
side, at most the slide's short side; output 1000 px): our ``Slide.read`` (uncached), GIANT's
``crop_to_image`` recipe (OpenSlide ``read_region`` + PIL LANCZOS, its level choice), and the
floor of only decoding the JPEG tiles our view needs (raw tile bytes via tifffile, decoded by
PIL/libjpeg-turbo). Wall and CPU time (``time.process_time``) of each, side by side in the same
run; the CPU ratio to the floor is taken with one core per view. Also: a 1024 px thumbnail vs
GIANT's overview, and 1 vs 2 threads throughput for views and for 224 px patches. Prints medians,
per-box ratios, the load average and every repeat count.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BENCH_DIR = Path(os.environ.get("SLIDESCOUT_BENCH_DIR", "/tmp/slidescout-bench"))
WIDTH, HEIGHT = 100_000, 80_000
SMOKE_SIZE = (4_000, 3_000)


# ------------------------------------------------------------------------------------------
# the benchmark slide


def make_bench_slide(path: Path, width: int = WIDTH, height: int = HEIGHT, seed: int = 0) -> Path:
    """Procedural H&E-like tiled JPEG TIFF (256 px tiles, 2x pyramid, mpp 0.25)."""
    slide = bench_image(width, height, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.tif")
    slide.tiffsave(
        str(tmp),
        tile=True,
        tile_width=256,
        tile_height=256,
        pyramid=True,
        compression="jpeg",
        Q=80,
        bigtiff=True,
        xres=4000.0,
        yres=4000.0,
        resunit="cm",
    )
    tmp.rename(path)
    return path


def bench_image(width: int = WIDTH, height: int = HEIGHT, seed: int = 0):
    """The benchmark slide's pixels as a lazy pyvips image (procedural, H&E-like)."""
    import pyvips

    rng = np.random.default_rng(seed)
    # a 4093 px texture tile (not a multiple of the 256 px JPEG tile, so tiles differ)
    t, pad = 4093, 32
    n = t + 2 * pad
    field = pyvips.Image.new_from_array(
        rng.normal(0, 1, (n // 8 + 1, n // 8 + 1)).astype(np.float32)
    )
    field = field.resize(8, kernel="cubic").crop(0, 0, n, n).gaussblur(3)
    fine = pyvips.Image.new_from_array(rng.normal(0, 1, (n, n)).astype(np.float32)).gaussblur(1.2)
    nuclei = (
        pyvips.Image.new_from_array(rng.random((n // 6 + 1, n // 6 + 1)).astype(np.float32))
        .resize(6, kernel="cubic")
        .crop(0, 0, n, n)
    )
    stain = field * 0.6 + fine * 0.5
    pink = [232.0, 160.0, 196.0]
    purple = [95.0, 55.0, 140.0]
    nmask = (nuclei > 0.86).cast("float").gaussblur(1.0) / 255.0
    base = (stain * 18).bandjoin([stain * 26, stain * 14]) + pink
    tex = (base * (1 - nmask) + nmask * purple).crop(pad, pad, t, t)
    tex = tex.cast("uchar").copy(interpretation="srgb").copy_memory()
    tiled = tex.replicate(width // t + 1, height // t + 1).crop(0, 0, width, height)
    # tissue islands on a white background
    low = pyvips.Image.new_from_array(
        rng.normal(0, 1, (height // 2000 + 2, width // 2000 + 2)).astype(np.float32)
    )
    mask = low.resize(2000, kernel="cubic").crop(0, 0, width, height)
    mask = ((mask + 0.3) * 255 * 3).cast("uchar")  # soft edges, ~60% tissue
    white = pyvips.Image.black(width, height, bands=3) + 244
    return mask.ifthenelse(tiled, white.cast("uchar"), blend=True).copy(interpretation="srgb")


def bench_slide(width: int = WIDTH, height: int = HEIGHT) -> Path:
    path = BENCH_DIR / f"bench_{width}x{height}.tif"
    if not path.exists():
        t0 = time.perf_counter()
        print(f"making {path} ...", flush=True)
        make_bench_slide(path, width, height)
        print(
            f"  done in {time.perf_counter() - t0:.0f} s, {path.stat().st_size / 1e9:.2f} GB",
            flush=True,
        )
    return path


# ------------------------------------------------------------------------------------------
# the three ways of making a view


def random_boxes(
    n: int, seed: int, width: int, height: int, lo: int = 1000, hi: int = 50_000
) -> list[tuple[int, int, int, int]]:
    """Boxes with a log-uniform long side of ``lo``..``hi`` px (at most the slide's short side),
    aspect 0.6..1, anywhere on the slide."""
    rng = np.random.default_rng(seed)
    hi = max(1, min(hi, width, height))
    lo = min(lo, hi)
    boxes = []
    for _ in range(n):
        long_side = int(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        short = max(1, int(long_side * rng.uniform(0.6, 1.0)))
        w, h = (long_side, short) if rng.random() < 0.5 else (short, long_side)
        x = int(rng.integers(0, width - w + 1))
        y = int(rng.integers(0, height - h + 1))
        boxes.append((x, y, w, h))
    return boxes


class GiantWay:
    """GIANT's crop_to_image recipe (reimplemented from its description in DESIGN.md):
    ds = long/target; level = best_level_for_downsample(max(1, 0.85 ds)), one level finer if the
    read would be smaller than the target; OpenSlide read_region at the box origin; LANCZOS down."""

    def __init__(self, path: Path) -> None:
        import openslide

        self.osr = openslide.OpenSlide(str(path))

    def view(self, x: int, y: int, w: int, h: int, target: int = 1000):
        from PIL import Image

        osr = self.osr
        ds = max(w, h) / target
        level = osr.get_best_level_for_downsample(max(1.0, ds * 0.85))
        down = osr.level_downsamples[level]
        rw, rh = max(1, round(w / down)), max(1, round(h / down))
        if max(rw, rh) < target and level > 0:
            level -= 1
            down = osr.level_downsamples[level]
            rw, rh = max(1, round(w / down)), max(1, round(h / down))
        img = osr.read_region((x, y), level, (rw, rh)).convert("RGB")
        if max(img.size) > target:
            scale = target / max(img.size)
            img = img.resize(
                (max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                Image.Resampling.LANCZOS,
            )
        return img


class DecodeFloor:
    """Only decode the JPEG tiles a view needs: raw tile bytes (tifffile's offsets, os.pread),
    JPEGTables spliced in, decoded by PIL (libjpeg-turbo) in one thread. No resampling."""

    def __init__(self, path: Path) -> None:
        import tifffile

        self.fd = os.open(path, os.O_RDONLY)
        self.pages = []
        with tifffile.TiffFile(path) as tif:
            for page in tif.pages:
                self.pages.append(
                    dict(
                        offsets=np.asarray(page.dataoffsets),
                        counts=np.asarray(page.databytecounts),
                        tw=page.tilewidth,
                        th=page.tilelength,
                        cols=math.ceil(page.imagewidth / page.tilewidth),
                        tables=bytes(page.jpegtables or b""),
                    )
                )

    def decode_region(self, page: int, x0: float, y0: float, x1: float, y1: float) -> int:
        import io

        from PIL import Image

        p = self.pages[page]
        tw, th, cols = p["tw"], p["th"], p["cols"]
        head = p["tables"][:-2]  # tables stream without its EOI
        n = 0
        for ty in range(int(y0) // th, (math.ceil(y1) - 1) // th + 1):
            for tx in range(int(x0) // tw, (math.ceil(x1) - 1) // tw + 1):
                i = ty * cols + tx
                data = os.pread(self.fd, int(p["counts"][i]), int(p["offsets"][i]))
                stream = head + data[2:] if head else data
                with Image.open(io.BytesIO(stream)) as im:
                    im.load()
                n += 1
        return n


# ------------------------------------------------------------------------------------------
# measuring


def timed(f) -> tuple[float, float]:
    """(wall ms, CPU ms of this process) for one call, with the garbage collector collected
    before and off during the call, as ``timeit`` does (the open slides a benchmark leaves
    behind would otherwise be collected inside whichever call happens to run then)."""
    gc.collect()
    gc.disable()
    try:
        c0, t0 = time.process_time(), time.perf_counter()
        f()
        return (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000
    finally:
        gc.enable()


def med(values: list[float]) -> float:
    return float(np.median(values))


def throughput(fn, items: list, threads: int, batches: bool = False) -> float:
    """Items per second with ``threads`` worker threads taking items one by one, or (``batches``)
    each working through its own contiguous share, as the expert runtime's reader threads do."""
    from concurrent.futures import ThreadPoolExecutor

    t0 = time.perf_counter()
    if threads == 1:
        for it in items:
            fn(it)
    elif batches:
        k = -(-len(items) // threads)
        with ThreadPoolExecutor(threads) as pool:
            list(
                pool.map(
                    lambda part: [fn(it) for it in part],
                    [items[i : i + k] for i in range(0, len(items), k)],
                )
            )
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(fn, items))
    return len(items) / (time.perf_counter() - t0)


@dataclass
class Bench:
    """The slide opened every way the benchmark reads it, and the view settings."""

    path: Path
    out_side: int = 1000

    def __post_init__(self) -> None:
        import pyvips

        from slidescout.slides import Slide

        pyvips.cache_set_max(0)  # no libvips operation cache: every view is computed
        self.slide = Slide.open(self.path)
        self.slide_1core = Slide.open(self.path)  # own level images: no tiles shared with .slide
        self.giant = GiantWay(self.path)
        self.floor = DecodeFloor(self.path)
        self.width, self.height = self.slide.dimensions

    def ours(self, b, one_core: bool = False, slide=None):
        """Our view of box ``b`` (the view cache cleared first, unless ``slide`` is given: then
        the caller cleared it, outside the timing)."""
        from slidescout.slides import clear_cache
        from slidescout.slides.backend_vips import realize

        realize.mode = "serial" if one_core else "adaptive"
        if slide is None:
            clear_cache()  # measure rendering, not the view cache
        try:
            return (slide or (self.slide_1core if one_core else self.slide)).read(b, self.out_side)
        finally:
            realize.mode = "adaptive"

    def cold(self, b):
        """A freshly opened slide on which a view of box ``b`` starts cold, as a view of a new
        region does on a slide already in use: the level the view reads is open (a small view
        in its far corner was made), none of the box's tiles is decoded, the view cache is empty.
        """
        from slidescout.core.types import Box
        from slidescout.slides import Slide, clear_cache
        from slidescout.slides.render import fit_output, plan_region

        slide = Slide.open(self.path)
        box = Box(*b)
        level = plan_region(slide._b, box, *fit_output(box, self.out_side)).level
        d = round(slide.level_downsamples[level])
        far_x = 0 if box.x + box.w / 2 > self.width / 2 else self.width - 8 * d
        far_y = 0 if box.y + box.h / 2 > self.height / 2 else self.height - 8 * d
        slide.read((far_x, far_y, 8 * d, 8 * d), 8)
        clear_cache()
        return slide

    def floor_for(self, b) -> int:
        from slidescout.core.types import Box
        from slidescout.slides.render import fit_output, plan_region

        box = Box(*b)
        region = plan_region(self.slide._b, box, *fit_output(box, self.out_side))
        page = self.slide._b.pages[region.level]
        return self.floor.decode_region(
            page, region.x, region.y, region.x + region.w, region.y + region.h
        )


def measure_views(bench: Bench, boxes: list, repeats: int = 1) -> dict:
    """Wall and CPU ms of each way of making each view, and the per-box ratios.

    Two passes over the same boxes. First the floor ratio: our one-core view, the decode floor
    and the same view rendered by libvips (the engine's path before views were made from the
    JPEG tiles), side by side (adjacent, the order rotating), each the least of ``repeats`` runs
    (other jobs only ever add time). Then our default view and GIANT's way (its OpenSlide reads
    churn memory and caches; kept apart from the pair being compared), the order alternating.
    Every run starts cold: our views on a slide whose level is open but none of the box's tiles
    decoded (``Bench.cold``), GIANT's on a fresh OpenSlide handle (OpenSlide caches tiles too),
    the floor decodes every tile."""
    for b in random_boxes(3, 99, bench.width, bench.height):  # warm up: page loads, file cache
        bench.ours(b), bench.ours(b, True), bench.giant.view(*b, target=bench.out_side)
        bench.floor_for(b)

    def cold_libvips(b):
        slide = bench.cold(b)
        slide._b.jpeg_tiles = False  # the same view rendered by libvips (tiffload + reduce)
        return slide

    methods = {
        "ours": (bench.cold, lambda b, s: bench.ours(b, False, s)),
        "ours_1core": (bench.cold, lambda b, s: bench.ours(b, True, s)),
        "libvips_1core": (cold_libvips, lambda b, s: bench.ours(b, True, s)),
        "giant": (lambda b: GiantWay(bench.path), lambda b, g: g.view(*b, target=bench.out_side)),
        "floor": (lambda b: None, lambda b, _: bench.floor_for(b)),
    }
    res: dict = {f"{k}_{u}": [] for k in methods for u in ("wall", "cpu")}

    def least(names: list[str], b, runs: int) -> None:
        best = {name: (math.inf, math.inf) for name in names}
        for r in range(runs):
            for name in names if r % 2 == 0 else names[::-1]:
                prepare, run = methods[name]
                handle = prepare(b)  # not timed
                wall, cpu = timed(lambda run=run, handle=handle: run(b, handle))
                best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
        for name, (wall, cpu) in best.items():
            res[f"{name}_wall"].append(wall)
            res[f"{name}_cpu"].append(cpu)

    for i, b in enumerate(boxes):
        trio = ["ours_1core", "floor", "libvips_1core"]
        least(trio[i % 3 :] + trio[: i % 3], b, repeats)
    for i, b in enumerate(boxes):
        least(["ours", "giant"] if i % 2 == 0 else ["giant", "ours"], b, 1)

    def ratio(a: str, b: str) -> list[float]:
        return [x / y for x, y in zip(res[a], res[b], strict=True)]

    res["ratio_giant"] = ratio("giant_wall", "ours_wall")
    res["ratio_giant_cpu"] = ratio("giant_cpu", "ours_1core_cpu")
    res["ratio_floor"] = ratio("ours_wall", "floor_wall")
    res["ratio_floor_cpu"] = ratio("ours_1core_cpu", "floor_cpu")
    res["ratio_libvips_cpu"] = ratio("libvips_1core_cpu", "floor_cpu")
    return res


def measure_thumbnails(bench: Bench, repeats: int) -> dict:
    """A 1024 px thumbnail vs GIANT's overview (its crop function on the whole slide)."""
    from slidescout.slides import Slide, clear_cache
    from slidescout.slides.backend_vips import realize

    def one_core():
        realize.mode = "serial"
        clear_cache()
        bench.slide_1core.thumbnail(1024)
        realize.mode = "adaptive"

    w, h = bench.width, bench.height
    thumbs = {
        "thumb": lambda: (clear_cache(), bench.slide.thumbnail(1024)),
        "thumb_1core": one_core,
        "over": lambda: bench.giant.view(0, 0, w, h, target=1024),
        "thumb_open": lambda: (clear_cache(), Slide.open(bench.path).thumbnail(1024)),
        "over_open": lambda: GiantWay(bench.path).view(0, 0, w, h, target=1024),
    }
    res: dict = {f"{k}_{u}": [] for k in thumbs for u in ("wall", "cpu")}
    for _ in range(repeats):
        for key, fn in thumbs.items():
            wall, cpu = timed(fn)
            res[key + "_wall"].append(wall)
            res[key + "_cpu"].append(cpu)
    return res


def measure_threads(bench: Bench, n_boxes: int, rounds: int, seed: int) -> dict:
    """1 vs 2 threads: views (adaptive, and one core per view), 224 px patches at level 1.
    Best of ``rounds`` alternating rounds (fresh boxes and areas each time): the machine is
    shared, and a transient load elsewhere only ever lowers a throughput."""
    slide, width, height = bench.slide, bench.width, bench.height
    lw, lh = slide.level_dimensions[1]
    reader = slide.patch_reader(1)
    ds1 = slide.level_downsamples[1]
    n = max(2, min(28, (min(lw, lh) // 2) // (224 * 2 * rounds)))  # a grid per round and thread

    def patch(c):
        return reader.fetch(c[0], c[1], 224, 224)

    def os_patch(c):
        return bench.giant.osr.read_region((int(c[0] * ds1), int(c[1] * ds1)), 1, (224, 224))

    def grid(x0: int, y0: int) -> list[tuple[int, int]]:
        return [(x0 + x, y0 + y) for y in range(0, 224 * n, 224) for x in range(0, 224 * n, 224)]

    rng = np.random.default_rng(seed + 2)
    res: dict = {}
    for key in ("views{}_adaptive", "views{}_serial", "grid{}", "rand{}", "os_grid{}"):
        for t in (1, 2):
            res[key.format(t)] = 0.0
    for rnd in range(rounds):
        for t in (1, 2):
            for k, mode in enumerate(("adaptive", "serial")):
                # boxes never seen before: libvips keeps decoded tiles of recent reads
                tp_boxes = random_boxes(n_boxes, seed + 100 * rnd + 10 * t + k + 1, width, height)
                rate = throughput(lambda b, m=mode: bench.ours(b, m == "serial"), tp_boxes, t)
                res[f"views{t}_{mode}"] = max(res[f"views{t}_{mode}"], rate)
            y0 = 224 * n * (2 * rnd + t - 1)
            res[f"grid{t}"] = max(res[f"grid{t}"], throughput(patch, grid(0, y0), t, batches=True))
            res[f"os_grid{t}"] = max(
                res[f"os_grid{t}"], throughput(os_patch, grid(lw // 2, y0), t, batches=True)
            )
            rand = [
                (int(rng.integers(0, lw - 224)), int(rng.integers(0, lh - 224)))
                for _ in range(max(20, n * n))
            ]
            res[f"rand{t}"] = max(res[f"rand{t}"], throughput(patch, rand, t))
    return res


def row(res: dict, label: str, key: str) -> str:
    return f"  {label:34s} {med(res[key + '_wall']):8.1f} {med(res[key + '_cpu']):8.1f}"


def report_views(res: dict, n_boxes: int, out_side: int, repeats: int) -> list[str]:
    floor_cpu = med(res["floor_cpu"])
    return [
        f"views: {n_boxes} random boxes, 1k-50k px long side, output {out_side} px, one core and "
        f"floor each the least of {repeats} cold runs, default and GIANT one; median ms",
        f"  {'':34s} {'wall':>8s} {'CPU':>8s}",
        row(res, "slidescout Slide.read (default)", "ours"),
        row(res, "slidescout, one core per view", "ours_1core"),
        row(res, "GIANT way (OpenSlide + PIL)", "giant"),
        row(res, "decode floor (tiles only, 1 thr)", "floor"),
        row(res, "libvips rendering, one core", "libvips_1core"),
        f"  GIANT / ours, per box (median):   wall {med(res['ratio_giant']):.1f}x, "
        f"CPU (one core each) {med(res['ratio_giant_cpu']):.1f}x",
        f"  ours / floor, per box (median):   wall {med(res['ratio_floor']):.2f}, "
        f"CPU (one core each) {med(res['ratio_floor_cpu']):.2f} "
        f"(quartiles {np.percentile(res['ratio_floor_cpu'], 25):.2f}-"
        f"{np.percentile(res['ratio_floor_cpu'], 75):.2f})",
        f"  ours / floor, medians of CPU:     {med(res['ours_1core_cpu']) / floor_cpu:.2f}",
        f"  libvips / floor, per box (median): CPU (one core) {med(res['ratio_libvips_cpu']):.2f} "
        f"(quartiles {np.percentile(res['ratio_libvips_cpu'], 25):.2f}-"
        f"{np.percentile(res['ratio_libvips_cpu'], 75):.2f})",
    ]


def report_thumbnails(res: dict, repeats: int) -> list[str]:
    return [
        f"thumbnail 1024 px vs GIANT's overview (the same crop on the whole slide); "
        f"median ms of {repeats}",
        f"  {'':34s} {'wall':>8s} {'CPU':>8s}",
        row(res, "slidescout thumbnail (default)", "thumb"),
        row(res, "slidescout, one core", "thumb_1core"),
        row(res, "GIANT overview", "over"),
        row(res, "slidescout open + thumbnail", "thumb_open"),
        row(res, "GIANT open + overview", "over_open"),
        f"  GIANT / ours: wall {med(res['over_wall']) / med(res['thumb_wall']):.1f}x, "
        f"CPU (one core each) {med(res['over_cpu']) / med(res['thumb_1core_cpu']):.1f}x; "
        f"with opening: wall {med(res['over_open_wall']) / med(res['thumb_open_wall']):.1f}x",
    ]


def report_threads(res: dict, rounds: int) -> list[str]:
    lines = [f"throughput, 1 thread -> 2 threads (best of {rounds} rounds):"]
    for key, what in (
        ("views{}_adaptive", "views/s, default (all cores when alone)"),
        ("views{}_serial", "views/s, one core per view"),
        ("grid{}", "224 px patches/s, level 1, grid, batches"),
        ("rand{}", "224 px patches/s, level 1, random"),
        ("os_grid{}", "  same grid with OpenSlide read_region"),
    ):
        a, b = res[key.format(1)], res[key.format(2)]
        lines.append(f"  {what:42s} {a:7.1f} -> {b:7.1f}  ({b / a:.2f}x)")
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--slide", type=Path, default=None, help="slide (default: the generated one)")
    ap.add_argument("--boxes", type=int, default=40, help="views measured (default 40)")
    ap.add_argument(
        "--repeats", type=int, default=5, help="runs per view for the floor ratio, the least kept"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--thumb-repeats", type=int, default=9)
    ap.add_argument("--rounds", type=int, default=3, help="throughput rounds (best of)")
    ap.add_argument(
        "--only", choices=("views", "thumbnails", "threads"), action="append", default=None
    )
    ap.add_argument("--smoke", action="store_true", help="a 4000 x 3000 px slide, a few repeats")
    args = ap.parse_args(argv)
    if args.smoke:
        args.boxes, args.repeats, args.thumb_repeats, args.rounds = 4, 1, 2, 1
    path = args.slide or bench_slide(*(SMOKE_SIZE if args.smoke else (WIDTH, HEIGHT)))
    parts = args.only or ["views", "thumbnails", "threads"]
    print(f"command: python3 {' '.join(sys.argv)}")
    print(
        f"slide: {path} ({path.stat().st_size / 1e9:.2f} GB), cores: {os.cpu_count()}, "
        f"load avg before: {os.getloadavg()[0]:.2f}; views: {args.boxes} boxes x "
        f"{args.repeats} runs, "
        f"thumbnails: {args.thumb_repeats} repeats, throughput: best of {args.rounds} rounds",
        flush=True,
    )
    bench = Bench(path)
    boxes = random_boxes(args.boxes, args.seed, bench.width, bench.height)
    lines: list[str] = []
    if "views" in parts:
        res = measure_views(bench, boxes, args.repeats)
        lines += report_views(res, args.boxes, bench.out_side, args.repeats)
    if "thumbnails" in parts:
        lines += report_thumbnails(
            measure_thumbnails(bench, args.thumb_repeats), args.thumb_repeats
        )
    if "threads" in parts:
        res = measure_threads(bench, args.boxes, args.rounds, args.seed)
        lines += report_threads(res, args.rounds)
    print("\n".join(lines))
    print(f"load avg after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
