"""CLI: ``slidescout info``, ``slidescout render``, ``slidescout thumbnail``.

The slide engine is imported inside each command so that ``slidescout --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from slidescout.cli.app import app, console
from slidescout.cli.paths import check_output_file
from slidescout.errors import SlideError
from slidescout.slides import Slide

if TYPE_CHECKING:
    from slidescout.slides import Slide, View

_IMAGE_SUFFIXES = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


def _open(path: str, backend: str) -> Slide:
    """A slide file, an OME-Zarr folder, or a URL fsspec reads (kept as text: a URL is no path)."""
    return Slide.open(path, backend=backend)


def _save(view: View, out: Path, quality: int) -> None:
    fmt = _IMAGE_SUFFIXES.get(out.suffix.lower())
    if fmt is None:
        raise SlideError(
            f"cannot tell the image format from {out.name!r}; use .jpg, .png, .webp or .tif"
        )
    check_output_file(out, "-o")
    try:
        out.write_bytes(view.encode(fmt, quality=quality))
    except OSError as exc:
        raise SlideError(f"cannot write {out}: {exc.strerror or exc}") from None


_JPEG_QUALITY = typer.Option(
    90, "--jpeg-quality", min=1, max=100, help="JPEG quality (1-100), as for ask and eval."
)
_OLD_QUALITY = typer.Option(
    None, "--quality", min=1, max=100, hidden=True, help="Old spelling of --jpeg-quality."
)


def _fmt_mpp(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.4g} µm/px"


@app.command("info")
def info_cmd(
    slide: str = typer.Argument(
        ...,
        help="Slide file (SVS, NDPI, MRXS, DICOM, CZI, iSyntax, VSI, LIF, tiled TIFF, PNG/JPEG...), "
        "an OME-Zarr folder, or an OME-Zarr URL.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the full SlideInfo as JSON."),
    backend: str = typer.Option("auto", "--backend", help="auto, pyvips or openslide."),
) -> None:
    """Show a slide's format, size, pyramid levels, resolution and associated image names."""
    with _open(slide, backend) as s:
        info = s.info()
    if json_out:
        typer.echo(info.to_json())
        return
    from rich.table import Table

    console.print(f"[bold]{info.slide_id}[/]  {info.path}", highlight=False, soft_wrap=True)
    rows = [
        (
            "format",
            f"{info.format}"
            + (f" (vendor {info.vendor})" if info.vendor and info.vendor != info.format else ""),
        ),
        ("backend", info.backend + (f" ({info.backend_reason})" if info.backend_reason else "")),
        ("level 0", f"{info.width} x {info.height} px"),
        (
            "mpp",
            f"{_fmt_mpp(info.mpp)} ({info.mpp_source.value})"
            + (f", {info.mpp_note}" if info.mpp_note else ""),
        ),
        ("objective power", f"{info.objective_power:g}x" if info.objective_power else "unknown"),
        ("bounds", "none" if info.bounds is None else "x={} y={} w={} h={}".format(*info.bounds)),
        ("associated images", ", ".join(info.associated_images) or "none"),
    ]
    if info.channels:
        rows.append(("channels", ", ".join(info.channels)))
        rows.append(
            ("composite", ", ".join(f"{c} as {col}" for c, col in info.channel_mapping.items()))
        )
    for key, value in rows:
        console.print(f"  {key:<18} {value}", highlight=False, soft_wrap=True)
    table = Table("level", "width", "height", "downsample", "mpp", box=None, pad_edge=False)
    for lv in info.levels:
        table.add_row(
            str(lv.level), str(lv.width), str(lv.height), f"{lv.downsample:.4g}", _fmt_mpp(lv.mpp)
        )
    console.print(table)


@app.command("render")
def render_cmd(
    slide: str = typer.Argument(..., help="Slide file, OME-Zarr folder or URL."),
    box: str = typer.Option(..., "--box", help="Level-0 box x,y,w,h (pixels)."),
    max_side: int | None = typer.Option(
        None, "--max-side", help="Longest output side in px (default 1000; never upscaled)."
    ),
    mpp: float | None = typer.Option(
        None, "--mpp", help="Render at this output resolution (µm/px) instead."
    ),
    guides: bool = typer.Option(False, "--guides", help="Draw GIANT-style coordinate guides."),
    out: Path | None = typer.Option(
        None, "-o", "--out", help="Output image (.jpg/.png); default SLIDEID_x_y_w_h.jpg."
    ),
    jpeg_quality: int = _JPEG_QUALITY,
    quality: int | None = _OLD_QUALITY,
    backend: str = typer.Option("auto", "--backend", help="auto, pyvips or openslide."),
) -> None:
    """Render a level-0 box of a slide to an image file."""
    with _open(slide, backend) as s:
        if mpp is not None:
            view = s.read_mpp(box, mpp, max_side=max_side, guides=guides)
        else:
            view = s.read(box, max_side=1000 if max_side is None else max_side, guides=guides)
        target = out or Path(
            f"{s.slide_id}_{view.box.x}_{view.box.y}_{view.box.w}_{view.box.h}.jpg"
        )
    _save(view, target, jpeg_quality if quality is None else quality)
    note = " (clamped to the slide)" if view.clamped else ""
    console.print(
        f"{target}: {view.describe()}, level {view.level}{note}", highlight=False, soft_wrap=True
    )
    if view.meta.get("note"):
        console.print(f"note: {view.meta['note']}", highlight=False, soft_wrap=True)


@app.command("thumbnail")
def thumbnail_cmd(
    slide: str = typer.Argument(..., help="Slide file, OME-Zarr folder or URL."),
    max_side: int = typer.Option(1024, "--max-side", help="Longest output side in px."),
    guides: bool = typer.Option(False, "--guides", help="Draw GIANT-style coordinate guides."),
    out: Path | None = typer.Option(
        None, "-o", "--out", help="Output image; default SLIDEID_thumb.jpg."
    ),
    jpeg_quality: int = _JPEG_QUALITY,
    quality: int | None = _OLD_QUALITY,
    backend: str = typer.Option("auto", "--backend", help="auto, pyvips or openslide."),
) -> None:
    """Write the slide overview (never the label or macro image)."""
    with _open(slide, backend) as s:
        view = s.thumbnail(max_side=max_side, guides=guides)
        target = out or Path(f"{s.slide_id}_thumb.jpg")
    _save(view, target, jpeg_quality if quality is None else quality)
    console.print(
        f"{target}: {view.describe()}, level {view.level}", highlight=False, soft_wrap=True
    )
