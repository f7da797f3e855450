"""OME-TIFF with a SubIFD pyramid vs the same pixels as a main-chain pyramid.

    python3 benchmarks/bench_formats.py [--width 50000] [--height 40000] [--repeats 5]

Writes (once, cached in /tmp/slidescout-bench/) the procedural slide of ``bench_slides.py`` twice
with pyvips ``tiffsave`` (256 px JPEG tiles, Q80): as a main-chain pyramid (OpenSlide's
generic-tiff; read by OpenSlide's level table + pyvips), and as an OME-TIFF whose pyramid lives
in SubIFDs (tifffile's structure + pyvips ``tiffload(subifd=N)``). Then, in one run and
alternating between the two files, measures a fresh open plus a 1024 px thumbnail, and a 1000 px
view of a 4000 px box (every cache cleared first). Prints medians and the OME / main-chain ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_slides import BENCH_DIR, bench_image  # noqa: E402

OME = (
    '<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
    '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint8" SizeX="{w}" SizeY="{h}" '
    'SizeC="3" SizeZ="1" SizeT="1" Interleaved="true" PhysicalSizeX="0.25" PhysicalSizeXUnit="µm" '
    'PhysicalSizeY="0.25" PhysicalSizeYUnit="µm"><Channel ID="Channel:0:0" SamplesPerPixel="3"/>'
    '<TiffData IFD="0" PlaneCount="1"/></Pixels></Image></OME>'
)


def make(path: Path, width: int, height: int, subifd: bool) -> Path:
    if path.exists():
        return path
    import pyvips

    t0 = time.perf_counter()
    img = bench_image(width, height).copy()
    if subifd:
        img.set_type(pyvips.GValue.gstr_type, "image-description", OME.format(w=width, h=height))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.tif")
    img.tiffsave(
        str(tmp),
        tile=True,
        tile_width=256,
        tile_height=256,
        pyramid=True,
        subifd=subifd,
        compression="jpeg",
        Q=80,
        bigtiff=True,
        xres=4000.0,
        yres=4000.0,
        resunit="cm",
    )
    tmp.rename(path)
    print(
        f"made {path.name} in {time.perf_counter() - t0:.0f} s ({path.stat().st_size / 1e9:.2f} GB)",
        flush=True,
    )
    return path


def measure(path: Path, box: tuple[int, int, int, int]) -> tuple[float, float, str]:
    import pyvips

    from slidescout.slides import Slide, clear_cache

    clear_cache()
    pyvips.cache_set_max(0)  # no libvips operation cache between runs
    t0 = time.perf_counter()
    s = Slide.open(path)
    thumb = s.thumbnail(1024)
    t1 = time.perf_counter()
    view = s.read(box, 1000)
    t2 = time.perf_counter()
    desc = (
        f"{s.format}, {s.level_count} levels, backend {s.backend_name}, mpp {s.mpp}, "
        f"thumbnail from level {thumb.level}, view from level {view.level}"
    )
    s.close()
    return t1 - t0, t2 - t1, desc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=50_000)
    ap.add_argument("--height", type=int, default=40_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    w, h = args.width, args.height
    files = {
        "main-chain": make(BENCH_DIR / f"formats_main_{w}x{h}.tif", w, h, subifd=False),
        "ome-subifd": make(BENCH_DIR / f"formats_ome_{w}x{h}.ome.tif", w, h, subifd=True),
    }
    box = (w // 2 - 2000, h // 2 - 2000, 4000, 4000)
    times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in files}
    for _ in range(args.repeats):
        for key, path in files.items():  # alternate, so both see the same machine load
            thumb, view, desc = measure(path, box)
            times[key][0].append(thumb)
            times[key][1].append(view)
    med = {k: (statistics.median(a), statistics.median(b)) for k, (a, b) in times.items()}
    for key, path in files.items():
        print(f"{key:<11} {measure(path, box)[2]}")
        print(
            f"{'':<11} open + 1024 px thumbnail: median {med[key][0] * 1000:.0f} ms; "
            f"1000 px view of a 4000 px box: median {med[key][1] * 1000:.0f} ms"
        )
    print(
        f"ratio OME / main-chain: thumbnail {med['ome-subifd'][0] / med['main-chain'][0]:.2f}x, "
        f"view {med['ome-subifd'][1] / med['main-chain'][1]:.2f}x"
    )


if __name__ == "__main__":
    main()
