"""``slidescout experts run``: an expert over a region or a whole slide, with its results printed
and written (``-o``: a PNG heatmap or overlay, and/or GeoJSON that QuPath imports)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from slidescout.cli.app import console, err_console, experts_app
from slidescout.cli.paths import check_output_file
from slidescout.cli.progress import CountProgress
from slidescout.core.imaging import encode_image
from slidescout.core.types import Box
from slidescout.errors import ConfigError, ToolError
from slidescout.slides import open_slide
from slidescout.tools.experts import catalog
from slidescout.tools.experts import geojson as gj
from slidescout.tools.experts.loading import resolve_device
from slidescout.tools.experts.model_tools import (
    zero_shot_labels,
    zero_shot_run,
    zero_shot_summary,
)
from slidescout.tools.experts.runtime import run_patches
from slidescout.tools.experts.segment import plan_segmentation, run_segmentation
from slidescout.tools.experts.tiling import PatchLimitExceeded
from slidescout.tools.experts.wholeslide import segment_slide

DEFAULT_RUN_PATCHES = 10_000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
GEOJSON_SUFFIXES = (".geojson", ".json")


@dataclass
class RunOptions:
    device: str
    batch_size: int | None
    workers: int | None
    max_patches: int
    min_tissue: float | None
    image: Path | None
    geojson: Path | None
    stain: str | None
    stain_target: Path | None
    as_json: bool

    def run_kw(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "batch_size": self.batch_size,
            "workers": self.workers,
            "stain": self.stain,
            "stain_target": self.stain_target,
        }


def _outputs(outs: list[Path]) -> tuple[Path | None, Path | None]:
    image = geo = None
    for p in outs:
        suffix = p.suffix.lower()
        if suffix in IMAGE_SUFFIXES and image is None:
            image = check_output_file(p, "-o")
        elif suffix in GEOJSON_SUFFIXES and geo is None:
            geo = check_output_file(p, "-o")
        else:
            raise ConfigError(
                f"-o {p}: give one image (.png, .jpg) and/or one GeoJSON file (.geojson)"
            )
    return image, geo


@experts_app.command("run")
def experts_run(
    model: str = typer.Argument(..., help="Registered expert name, or a model card file."),
    slide: Path = typer.Argument(..., help="Slide file."),
    box: str | None = typer.Option(
        None, "--box", help="Region x,y,w,h in level-0 px (default: the whole slide's tissue)."
    ),
    label: str | None = typer.Option(None, "--label", help="Class the heatmap shows."),
    labels: str | None = typer.Option(
        None,
        "--labels",
        help="Zero-shot models: labels to choose between, comma-separated (default: the card's).",
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=1, help="Default: 16 on CPU, 64 on GPU."
    ),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Reader threads."),
    max_patches: int = typer.Option(
        DEFAULT_RUN_PATCHES,
        "--max-patches",
        min=1,
        help="Refuse patch runs with more patches (a whole slide at 20x holds "
        "10,000-50,000; on a CPU a ResNet-50 does roughly 30 a second).",
    ),
    min_tissue: float | None = typer.Option(
        None,
        "--min-tissue",
        min=0.0,
        max=1.0,
        help="Skip patches with less tissue (default 0.25 whole slide, 0 region).",
    ),
    out: list[Path] = typer.Option(
        [],
        "-o",
        "--out",
        help="Write results: a .png heatmap or overlay, and/or a .geojson of the nuclei, mask "
        "regions or classified patches in level-0 px (QuPath: File > Import objects). Repeatable.",
    ),
    stain_norm: str | None = typer.Option(
        None, "--stain-norm", help="macenko, vahadane, reinhard or none (default: the card's)."
    ),
    stain_target: Path | None = typer.Option(
        None, "--stain-target", help="Image stained as the model's training data."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Run an expert over a region (or the whole slide, in tiles for segmentation models) and
    report class fractions, areas or nuclei, and timing."""
    card = catalog.resolve(model)
    image, geo = _outputs(out)
    opts = RunOptions(
        resolve_device(device),
        batch_size,
        workers,
        max_patches,
        min_tissue,
        image,
        geo,
        stain_norm,
        stain_target,
        as_json,
    )
    tool = card.card.kind.tool  # the expert kind says which path runs it
    if tool == "slide_classifier":
        raise ConfigError(
            f"model {card.name!r} is a slide-level head: the agent's slide_classifier tool runs "
            "it; `experts embed` caches the features it reads"
        )
    try:
        region = Box.of(box) if box else None
    except ValueError as exc:
        raise ConfigError(f"--box: {exc}") from None
    s = open_slide(slide)
    if tool == "zero_shot":
        _run_zero_shot(card, s, slide, region, labels, opts)
    elif tool == "segment":
        _run_segmentation(card, s, slide, region, opts)
    else:
        _run_patches(card, s, slide, region, label, opts)


def _run_patches(
    card: Any, s: Any, slide: Path, region: Box | None, label: str | None, opts: RunOptions
) -> None:
    if label is not None and label not in card.card.labels:
        raise ConfigError(
            f"model {card.name!r} has no label {label!r}; its labels are "
            f"{', '.join(card.card.labels) or 'none'}"
        )
    if opts.geojson is not None and card.card.output == "embedding":
        raise ConfigError(
            "-o .geojson: an embedding has no classes to export; cache embeddings with "
            "`slidescout experts embed` instead"
        )
    try:
        with CountProgress(err_console, card.name, "patches", opts.as_json) as bar:
            run = run_patches(
                s,
                card,
                region,
                max_patches=opts.max_patches,
                min_tissue=opts.min_tissue,
                progress=bar,
                **opts.run_kw(),
            )
    except PatchLimitExceeded as exc:
        raise ConfigError(f"{exc}; or raise --max-patches") from None
    result: dict[str, Any] = {
        "model": card.name,
        "slide": str(slide),
        "patches": len(run.plan),
        "plan": run.plan.describe(),
        "stats": run.stats.to_dict(),
    }
    if run.notes:
        result["notes"] = run.notes
    if run.is_classifier:
        result["class_fractions"] = run.class_fractions()
        result["mean_probs"] = run.mean_probs()
    if opts.image is not None and len(run.plan):
        result["heatmap"] = _save_heatmap(run, s, label, opts.image)
    if opts.geojson is not None:
        result["geojson"] = _grid_geojson(run, opts.geojson)
    if _print_header(result, opts.as_json, card.name, slide.name, run.plan.describe()):
        return
    for key in ("class_fractions", "mean_probs"):
        if key in result:
            console.print(
                f"  {key.replace('_', ' ')}: "
                + ", ".join(f"{k} {v:.3f}" for k, v in result[key].items()),
                highlight=False,
            )
    _print_tail(result, run.stats)


def _grid_geojson(run: Any, path: Path) -> dict[str, Any]:
    writer = gj.GeoJSONWriter(path)
    try:
        values = None if run.is_classifier else run.values()
        writer.add(gj.tile_features(run.boxes, run.probs, values, list(run.labels)))
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return {"path": str(path), "features": writer.count, "object_type": "tile"}


def _run_zero_shot(
    card: Any, s: Any, slide: Path, region: Box | None, labels: str | None, opts: RunOptions
) -> None:
    try:
        chosen = zero_shot_labels(card, labels.split(",") if labels else None)
    except ToolError as exc:
        raise ConfigError(str(exc)) from None
    tissue = opts.min_tissue if opts.min_tissue is not None else (0.25 if region is None else 0.1)
    with CountProgress(err_console, card.name, "patches", opts.as_json) as bar:
        run = zero_shot_run(
            s,
            card,
            region,
            chosen,
            opts.device,
            opts.max_patches,
            min_tissue=tissue,
            batch_size=opts.batch_size,
            workers=opts.workers,
            progress=bar,
        )
    result: dict[str, Any] = {
        "model": card.name,
        "slide": str(slide),
        "patches": len(run.plan),
        "plan": run.plan.describe(),
        "stats": run.stats.to_dict(),
    }
    if not len(run.plan):
        raise ConfigError(
            "no tissue patches in the region; choose a region with tissue or lower --min-tissue"
        )
    text, data = zero_shot_summary(run)
    result.update(data)
    if opts.image is not None:
        result["heatmap"] = _save_heatmap(run, s, data["best"], opts.image)
    if opts.geojson is not None:
        result["geojson"] = _grid_geojson(run, opts.geojson)
    if _print_header(result, opts.as_json, card.name, slide.name, run.plan.describe()):
        return
    console.print(f"  {escape(text)}", highlight=False, soft_wrap=True)
    _print_tail(result, run.stats)


def _fits_one_call(s: Any, card: Any, region: Box | None) -> bool:
    if region is None:
        return False
    try:
        plan_segmentation(s, card, region)  # refuses a canvas over MAX_SIDE px a side
    except ToolError:
        return False
    return True


def _run_segmentation(card: Any, s: Any, slide: Path, region: Box | None, opts: RunOptions) -> None:
    if region is not None and _fits_one_call(s, card, region):
        return _one_region(card, s, slide, region, opts)
    if opts.image is not None:
        raise ConfigError(
            "-o .png: an overlay needs a region that one call covers (a --box of about 1-2 mm); "
            "for a whole slide write -o NAME.geojson and open it in QuPath"
        )
    writer = gj.GeoJSONWriter(opts.geojson) if opts.geojson is not None else None
    try:
        with CountProgress(err_console, f"{card.name} (tiles)", "patches", opts.as_json) as bar:
            whole = segment_slide(s, card, region, writer=writer, progress=bar, **_seg_kw(opts))
        if writer is not None:
            writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    result: dict[str, Any] = {
        "model": card.name,
        "slide": str(slide),
        "segmentation": whole.summary(),
    }
    if opts.geojson is not None:
        result["geojson"] = {"path": str(opts.geojson), "features": whole.features}
    if opts.as_json:
        console.print_json(json.dumps(result, default=str))
        return
    console.print(
        f"[bold cyan]{escape(card.name)}[/] on {escape(slide.name)}, region "
        f"{escape(str(whole.region))}: {escape(whole.describe())}",
        highlight=False,
        soft_wrap=True,
    )
    if "geojson" in result:
        console.print(
            f"  GeoJSON: {escape(str(opts.geojson))} ({whole.features} features, level-0 px)",
            highlight=False,
        )


def _seg_kw(opts: RunOptions) -> dict[str, Any]:
    return {
        "device": opts.device,
        "batch_size": opts.batch_size,
        "workers": opts.workers,
        "stain": opts.stain,
    }


def _one_region(card: Any, s: Any, slide: Path, region: Box, opts: RunOptions) -> None:
    try:
        with CountProgress(err_console, card.name, "patches", opts.as_json) as bar:
            seg = run_segmentation(s, card, region, progress=bar, **_seg_kw(opts))
    except ToolError as exc:
        raise ConfigError(str(exc)) from None
    result: dict[str, Any] = {
        "model": card.name,
        "slide": str(slide),
        "patches": len(seg.plan),
        "segmentation": seg.summary(),
        "stats": seg.stats.to_dict() if seg.stats else {},
    }
    if opts.image is not None:
        over = seg.overlay(max_side=2048)
        opts.image.write_bytes(encode_image(over.image, "PNG"))
        result["overlay"] = {
            "path": str(opts.image),
            "box": list(over.box.as_tuple()),
            "mpp": over.mpp,
            "legend": over.legend,
        }
    if opts.geojson is not None:
        result["geojson"] = _region_geojson(seg, opts.geojson)
    if opts.as_json:
        console.print_json(json.dumps(result, default=str))
        return
    console.print(
        f"[bold cyan]{escape(card.name)}[/] on {escape(slide.name)}, region {escape(str(seg.box))} at "
        f"{seg.mpp:g} µm/px in {len(seg.plan)} patches: {escape(seg.describe())}",
        highlight=False,
        soft_wrap=True,
    )
    if seg.stats:
        console.print(f"  {escape(seg.stats.describe())}", highlight=False, soft_wrap=True)
    if "overlay" in result:
        console.print(
            f"  overlay: {escape(str(opts.image))} ({escape(result['overlay']['legend'])})",
            highlight=False,
            soft_wrap=True,
        )
    if "geojson" in result:
        console.print(
            f"  GeoJSON: {escape(str(opts.geojson))} ({result['geojson']['features']} features)",
            highlight=False,
        )


def _region_geojson(seg: Any, path: Path) -> dict[str, Any]:
    c = seg.card.card
    f = seg.plan.patch_l0 / seg.plan.patch_size
    origin = (float(seg.box.x), float(seg.box.y))
    writer = gj.GeoJSONWriter(path)
    try:
        if c.output == "instances" and seg.instances is not None:
            writer.add(gj.instance_features(seg.instances, seg.table, origin, f, list(c.labels)))
        else:
            writer.add(
                gj.class_features(seg.classes, seg.covered, origin, f, list(c.labels), c.background)
            )
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return {"path": str(path), "features": writer.count}


def _save_heatmap(run: Any, slide: Any, label: str | None, out: Path) -> dict[str, Any]:
    """Write the heatmap of ``label`` over the run's region as an image; what the result records."""
    heat = run.heatmap(slide, label, max_side=2048)
    out.write_bytes(encode_image(heat.image, "PNG"))
    return {
        "path": str(out),
        "box": list(heat.box.as_tuple()),
        "mpp": heat.mpp,
        "legend": heat.legend,
    }


def _print_header(result: dict[str, Any], as_json: bool, model: str, slide: str, plan: str) -> bool:
    """Print the result as JSON (True: nothing more to print), or the run's first line."""
    if as_json:
        console.print_json(json.dumps(result, default=str))
        return True
    console.print(
        f"[bold cyan]{escape(model)}[/] on {escape(slide)}: {escape(plan)}",
        highlight=False,
        soft_wrap=True,
    )
    return False


def _print_tail(result: dict[str, Any], stats: Any) -> None:
    for note in result.get("notes", []):
        console.print(f"  note: {escape(note)}", highlight=False, soft_wrap=True)
    console.print(f"  {escape(stats.describe())}", highlight=False, soft_wrap=True)
    if "heatmap" in result:
        console.print(
            f"  heatmap: {escape(result['heatmap']['path'])} ({escape(result['heatmap']['legend'])})",
            highlight=False,
            soft_wrap=True,
        )
    if "geojson" in result:
        console.print(
            f"  GeoJSON: {escape(result['geojson']['path'])} ({result['geojson']['features']} "
            "tiles, level-0 px)",
            highlight=False,
        )


__all__ = ["experts_run"]
