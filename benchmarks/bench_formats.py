"""Slide formats beside the main-chain TIFF: OME-TIFF (SubIFD pyramid), OME-Zarr, DICOM.

    python3 benchmarks/bench_formats.py [--width 50000] [--height 40000] [--repeats 5]
        [--formats ome-subifd,ome-zarr,dicom] [--smoke]

Writes (once, cached in /tmp/slidescout-bench/) the procedural slide of ``bench_slides.py`` with
pyvips ``tiffsave`` (256 px JPEG tiles, Q80) as a main-chain pyramid (OpenSlide's generic-tiff;
read by OpenSlide's level table + pyvips) and, as asked by ``--formats``:

- ``ome-subifd``: an OME-TIFF whose pyramid lives in SubIFDs (tifffile's structure + pyvips
  ``tiffload(subifd=N)``);
- ``ome-zarr``: OME-NGFF 0.4 on Zarr v2, 256 px chunks per channel (``--zarr-chunk``; zarr's
  default Blosc/LZ4, lossless), the levels halved by 2x2 means (read by zarr);
- ``dicom``: one DICOM WSI file per level, 256 px JPEG (q95) frames with the edge frames cropped
  to the image, as OpenSlide rejects (read by wsidicom). The levels are written from memory: keep
  the size to ~20k px a side.

Then, in one run and alternating between the files, measures a fresh open plus a 1024 px
thumbnail, and a 1000 px view of a 4000 px box (every cache cleared first). Prints medians and
each format's ratio to the main-chain TIFF (target: within 1.5x). ``--smoke``: a 1,200 x 900 px
slide, one repeat, in a temporary folder (the suite runs it so).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent / "tests"))  # the writers the tests use (formatfactory)

from bench_slides import BENCH_DIR, bench_image  # noqa: E402

FORMATS = ("ome-subifd", "ome-zarr", "dicom")

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
        file=sys.stderr,
    )
    return path


def _levels(width: int, height: int, min_side: int = 256) -> list[np.ndarray]:
    import slidefactory as sf

    base = np.asarray(bench_image(width, height).numpy(), np.uint8)[..., :3]
    return sf.pyramid(np.ascontiguousarray(base), min_side=min_side)


def make_zarr(path: Path, width: int, height: int, chunk: int = 256) -> Path:
    if path.exists():
        return path
    import formatfactory as ff

    t0 = time.perf_counter()
    levels = [np.ascontiguousarray(np.moveaxis(a, 2, 0)) for a in _levels(width, height)]
    tmp = path.with_name(path.name + ".part")
    ff.make_ome_zarr(tmp, levels, mpp=0.25, chunk=chunk)
    tmp.rename(path)
    print(f"made {path.name} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return path


def make_dicom(folder: Path, width: int, height: int) -> Path:
    first = folder / "level0.dcm"
    if first.exists():
        return first
    import formatfactory as ff

    t0 = time.perf_counter()
    tmp = folder.with_name(folder.name + ".part")
    ff.make_dicom_wsi(tmp, _levels(width, height), tile=256, crop_edges=True)
    tmp.rename(folder)
    print(f"made {folder.name} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return first


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
    ap.add_argument(
        "--formats", default="ome-subifd", help=f"comma-separated: {', '.join(FORMATS)}"
    )
    ap.add_argument("--zarr-chunk", type=int, default=256, help="OME-Zarr chunk side (px)")
    ap.add_argument("--smoke", action="store_true", help="tiny slide, one repeat, temp folder")
    args = ap.parse_args()
    wanted = [f for f in args.formats.split(",") if f]
    bad = [f for f in wanted if f not in FORMATS]
    if bad:
        ap.error(f"unknown format(s) {', '.join(bad)}; choose from {', '.join(FORMATS)}")
    root = BENCH_DIR
    if args.smoke:
        args.width, args.height, args.repeats = 1200, 900, 1
        wanted = list(FORMATS)
        root = Path(tempfile.mkdtemp(prefix="slidescout-bench-formats-"))
    w, h = args.width, args.height
    files = {"main-chain": make(root / f"formats_main_{w}x{h}.tif", w, h, subifd=False)}
    if "ome-subifd" in wanted:
        files["ome-subifd"] = make(root / f"formats_ome_{w}x{h}.ome.tif", w, h, subifd=True)
    if "ome-zarr" in wanted:
        c = args.zarr_chunk
        name = f"formats_{w}x{h}.ome.zarr" if c == 256 else f"formats_{w}x{h}_c{c}.ome.zarr"
        files["ome-zarr"] = make_zarr(root / name, w, h, c)
    if "dicom" in wanted:
        files["dicom"] = make_dicom(root / f"formats_dicom_{w}x{h}", w, h)
    side = min(4000, w // 2, h // 2)
    box = (w // 2 - side // 2, h // 2 - side // 2, side, side)
    times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in files}
    for _ in range(args.repeats):
        for key, path in files.items():  # alternate, so both see the same machine load
            thumb, view, desc = measure(path, box)
            times[key][0].append(thumb)
            times[key][1].append(view)
    med = {k: (statistics.median(a), statistics.median(b)) for k, (a, b) in times.items()}
    base = med["main-chain"]

    def cell(key: str, i: int) -> str:
        ratio = "" if key == "main-chain" else f" ({med[key][i] / base[i]:.2f}x)"
        return f"{med[key][i] * 1000:.0f} ms{ratio}"

    print(f"{w} x {h} px, medians of {args.repeats}; ratios to the main-chain TIFF\n")
    print(f"| file | as read | open + 1024 px thumbnail | 1000 px view of a {side} px box |")
    print("|---|---|---|---|")
    for key, path in files.items():
        print(f"| {key} | {measure(path, box)[2]} | {cell(key, 0)} | {cell(key, 1)} |")
    if args.smoke:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
