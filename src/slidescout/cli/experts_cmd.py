"""``slidescout experts add|list|show|remove|run``: register checkpoints with a model card and run
them over a slide.

Registered experts live in ``$SLIDESCOUT_HOME/experts.json`` and are offered to agents through the
``patch_classifier`` tool. Torch is imported only by the commands that load a model.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from slidescout.cli.app import console, err_console, experts_app
from slidescout.cli.progress import CountProgress
from slidescout.core.imaging import encode_image
from slidescout.core.types import Box
from slidescout.errors import ConfigError, ToolError
from slidescout.eval.textfit import print_table
from slidescout.slides import open_slide
from slidescout.tools.experts import catalog, hub, named
from slidescout.tools.experts.cards import load_card
from slidescout.tools.experts.loading import check_model, resolve_device
from slidescout.tools.experts.model_tools import (
    zero_shot_labels,
    zero_shot_run,
    zero_shot_summary,
)
from slidescout.tools.experts.runtime import run_patches
from slidescout.tools.experts.segment import run_segmentation
from slidescout.tools.experts.tiling import PatchLimitExceeded

DEFAULT_RUN_PATCHES = 10_000


@experts_app.command("add")
def experts_add(
    card: Path = typer.Argument(
        ...,
        help="Model card (.yaml, .toml or .json) next to its weights, or a "
        "name from `slidescout experts catalog`.",
    ),
    replace: bool = typer.Option(False, "--replace", help="Replace an expert of the same name."),
    device: str = typer.Option(
        "cpu", "--device", help="Device for the check load (cpu, cuda, auto)."
    ),
    weights: Path | None = typer.Option(
        None,
        "--weights",
        help="Catalog models: weights file (or model "
        "folder) already on disk, instead of downloading them.",
    ),
) -> None:
    """Validate a model card, load its checkpoint once to check the output shape, and register it."""

    entry = named.get(str(card)) if not card.exists() else None
    if entry is not None:
        c = load_card(_catalog_card(entry, weights))
    elif weights is not None:
        raise ConfigError(
            "--weights is for catalog models (`slidescout experts catalog`); a card file names "
            "its weights in field 'path'"
        )
    else:
        c = load_card(card)
    c.check_weights()
    t0 = time.perf_counter()

    def step(msg: str) -> None:
        console.print(
            f"  [{time.perf_counter() - t0:5.1f} s] {escape(msg)}", highlight=False, soft_wrap=True
        )

    step(f"card {c.file.name} is valid: {c.card.describe()}")
    dev = resolve_device(device)
    report = check_model(c, dev, progress=step)
    step(f"checked the output on 2 blank patches: {report.output_width} values per patch")
    catalog.add(c, replace=replace, info={"output_width": report.output_width})
    console.print(
        f"registered {escape(c.card.describe())}; "
        f"{report.output_width} values per patch (loaded in {report.load_s:.2f} s, "
        f"{time.perf_counter() - t0:.1f} s in all)",
        highlight=False,
        soft_wrap=True,
    )


def _catalog_card(entry: Any, weights: Path | None) -> Path:
    """Write the catalog model's card under $SLIDESCOUT_HOME/cards, its weights fetched (or given)."""
    import yaml

    if not entry.loadable:
        raise ConfigError(
            f"{entry.name}: slidescout cannot load this model ({'; '.join(entry.notes)})"
        )
    if weights is not None:
        path = weights.expanduser().resolve()
        if not path.exists():
            raise ConfigError(f"--weights: {path} does not exist")
    else:
        dest = catalog.home() / "weights" / entry.name
        console.print(
            f"fetching {escape(entry.hub)} from the Hugging Face hub into {escape(str(dest))} "
            f"({escape(entry.gate)}; licence: {escape(entry.license)})",
            highlight=False,
            soft_wrap=True,
        )
        path = hub.hub_download(entry.hub, dest, what=entry.name, filenames=entry.files)
    card = {
        "name": entry.name,
        "path": str(path),
        **entry.card,
        "hub": entry.hub,
        "description": entry.title,
        "source": entry.source,
        "license": entry.license,
    }
    out = catalog.home() / "cards" / f"{entry.name}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(card, sort_keys=False, allow_unicode=True), encoding="utf-8")
    console.print(f"wrote card {escape(str(out))}", highlight=False, soft_wrap=True)
    return out


@experts_app.command("catalog")
def experts_catalog(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List ready cards for published pathology models (add one with `slidescout experts add NAME`)."""
    rows = [m.summary() for m in named.NAMED.values()]
    if as_json:
        console.print_json(json.dumps({"models": rows}))
        return
    table = Table(
        title="ready model cards (no weights ship: `experts add NAME` fetches them with your "
        "Hugging Face token, or `--weights PATH`)"
    )
    for col in (
        "name",
        "model",
        "hub repo",
        "licence",
        "access",
        "input",
        "normalisation",
        "output",
    ):
        table.add_column(col, no_wrap=col == "name")
    for r in rows:
        inp = f"{r['patch_size']} px @ {r['mpp']:g} µm/px" if r["loadable"] else "n/a"
        out = r["output"] if r["loadable"] else "[red]not loadable[/]"
        table.add_row(
            escape(r["name"]),
            escape(r["title"]),
            escape(r["hub"] or ""),
            escape(r["license"]),
            escape(r["gate"]),
            inp,
            escape(r["normalisation"]),
            out,
        )
    print_table(console, table)


def _status(entry: dict) -> tuple[str, object]:
    try:
        c = load_card(entry["card"])
    except ConfigError as exc:
        return f"broken: {exc}", None
    try:
        c.check_weights()
    except ConfigError:
        return f"weights missing: {c.weights}", c
    return "ok", c


@experts_app.command("list")
def experts_list(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the registered experts and whether their card and weights are still in place."""
    entries = catalog.entries()
    rows = []
    for name in sorted(entries):
        status, c = _status(entries[name])
        card = getattr(c, "card", None)
        rows.append(
            {
                "name": name,
                "status": status,
                "card": entries[name]["card"],
                "format": card.format if card else entries[name].get("format"),
                "mpp": card.mpp if card else None,
                "patch_size": card.patch_size if card else None,
                "output": card.output if card else None,
                "labels": list(card.labels) if card else [],
            }
        )
    if as_json:
        console.print_json(json.dumps({"registry": str(catalog.registry_path()), "experts": rows}))
        return
    if not rows:
        console.print(
            f"no experts registered ({escape(str(catalog.registry_path()))}); add one with "
            "`slidescout experts add CARD`",
            highlight=False,
        )
        return
    table = Table(title="registered experts")
    for col in ("name", "format", "input", "output", "status", "card"):
        table.add_column(col, no_wrap=col in ("name", "format"))
    for r in rows:
        inp = f"{r['patch_size']} px @ {r['mpp']:g} µm/px" if r["mpp"] else "?"
        out = f"{r['output']}: {', '.join(r['labels'])}" if r["output"] else "?"
        style = "green" if r["status"] == "ok" else "red"
        table.add_row(
            escape(r["name"]),
            escape(str(r["format"])),
            inp,
            escape(out),
            f"[{style}]{escape(r['status'])}[/]",
            escape(r["card"]),
        )
    console.print(table)


@experts_app.command("show")
def experts_show(name: str = typer.Argument(..., help="Registered expert name.")) -> None:
    """Show a registered expert's model card (as validated)."""
    c = catalog.get(name)
    payload = {"card_file": str(c.file), "weights": str(c.weights), **c.card.model_dump()}
    console.print_json(json.dumps(payload))


@experts_app.command("remove")
def experts_remove(name: str = typer.Argument(..., help="Registered expert name.")) -> None:
    """Unregister an expert (its card and weights are left where they are)."""
    entry = catalog.remove(name)
    console.print(
        f"removed [bold cyan]{escape(name)}[/] (card {escape(entry['card'])} left in place)",
        highlight=False,
    )


@experts_app.command("run")
def experts_run(
    model: str = typer.Argument(..., help="Registered expert name, or a model card file."),
    slide: Path = typer.Argument(..., help="Slide file."),
    box: str | None = typer.Option(
        None, "--box", help="Region x,y,w,h in level-0 px (default: all tissue)."
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
        help="Refuse runs with more patches (a whole slide at 20x holds "
        "10,000-50,000; on a CPU a ResNet-50 does roughly 30 a second).",
    ),
    min_tissue: float | None = typer.Option(
        None,
        "--min-tissue",
        min=0.0,
        max=1.0,
        help="Skip patches with less tissue (default 0.25 whole slide, 0 region).",
    ),
    out: Path | None = typer.Option(None, "--out", help="Write the heatmap here (PNG)."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Run an expert over a region (or all the tissue) and report class fractions and timing."""

    card = catalog.resolve(model)
    tool = card.card.kind.tool  # the expert kind says which path runs it
    if tool == "zero_shot":
        _run_zero_shot(
            card,
            slide,
            box,
            labels,
            device,
            batch_size,
            workers,
            max_patches,
            min_tissue,
            out,
            as_json,
        )
        return
    if tool == "segment":
        _run_segmentation(card, slide, box, device, batch_size, workers, out, as_json)
        return
    if label is not None and label not in card.card.labels:
        raise ConfigError(
            f"model {card.name!r} has no label {label!r}; its labels are "
            f"{', '.join(card.card.labels) or 'none'}"
        )
    s = open_slide(slide)
    try:
        region = Box.of(box) if box else None
    except ValueError as exc:
        raise ConfigError(f"--box: {exc}") from None

    try:
        with CountProgress(err_console, card.name, "patches", as_json) as bar:
            run = run_patches(
                s,
                card,
                region,
                device=device,
                batch_size=batch_size,
                workers=workers,
                max_patches=max_patches,
                min_tissue=min_tissue,
                progress=bar,
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
    if run.is_classifier:
        result["class_fractions"] = run.class_fractions()
        result["mean_probs"] = run.mean_probs()
    if out is not None and len(run.plan):
        result["heatmap"] = _save_heatmap(run, s, label, out)
    if _print_header(result, as_json, card.name, slide.name, run.plan.describe()):
        return
    for key in ("class_fractions", "mean_probs"):
        if key in result:
            console.print(
                f"  {key.replace('_', ' ')}: "
                + ", ".join(f"{k} {v:.3f}" for k, v in result[key].items()),
                highlight=False,
            )
    console.print(f"  {escape(run.stats.describe())}", highlight=False, soft_wrap=True)
    if "heatmap" in result:
        console.print(
            f"  heatmap: {escape(str(out))} ({escape(result['heatmap']['legend'])})",
            highlight=False,
            soft_wrap=True,
        )


def _run_zero_shot(
    card: Any,
    slide: Path,
    box: str | None,
    labels: str | None,
    device: str,
    batch_size: int | None,
    workers: int | None,
    max_patches: int,
    min_tissue: float | None,
    out: Path | None,
    as_json: bool,
) -> None:

    try:
        chosen = zero_shot_labels(card, labels.split(",") if labels else None)
        region = Box.of(box) if box else None
    except (ToolError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    s = open_slide(slide)
    tissue = min_tissue if min_tissue is not None else (0.25 if region is None else 0.1)
    with CountProgress(err_console, card.name, "patches", as_json) as bar:
        run = zero_shot_run(
            s,
            card,
            region,
            chosen,
            resolve_device(device),
            max_patches,
            min_tissue=tissue,
            batch_size=batch_size,
            workers=workers,
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
    if out is not None:
        result["heatmap"] = _save_heatmap(run, s, data["best"], out)
    if _print_header(result, as_json, card.name, slide.name, run.plan.describe()):
        return
    console.print(f"  {escape(text)}", highlight=False, soft_wrap=True)
    console.print(f"  {escape(run.stats.describe())}", highlight=False, soft_wrap=True)
    if "heatmap" in result:
        console.print(
            f"  heatmap: {escape(str(out))} ({escape(result['heatmap']['legend'])})",
            highlight=False,
            soft_wrap=True,
        )


def _run_segmentation(
    card: Any,
    slide: Path,
    box: str | None,
    device: str,
    batch_size: int | None,
    workers: int | None,
    out: Path | None,
    as_json: bool,
) -> None:
    if not box:
        raise ConfigError(
            f"model {card.name!r} segments a region: give --box x,y,w,h (level-0 px), about "
            "1-2 mm across"
        )
    try:
        region = Box.of(box)
    except ValueError as exc:
        raise ConfigError(f"--box: {exc}") from None
    s = open_slide(slide)
    try:
        with CountProgress(err_console, card.name, "patches", as_json) as bar:
            seg = run_segmentation(
                s, card, region, device=device, batch_size=batch_size, workers=workers, progress=bar
            )
    except ToolError as exc:
        raise ConfigError(str(exc)) from None
    result: dict[str, Any] = {
        "model": card.name,
        "slide": str(slide),
        "patches": len(seg.plan),
        "segmentation": seg.summary(),
        "stats": seg.stats.to_dict() if seg.stats else {},
    }
    if out is not None:
        over = seg.overlay(max_side=2048)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(encode_image(over.image, "PNG"))
        result["overlay"] = {
            "path": str(out),
            "box": list(over.box.as_tuple()),
            "mpp": over.mpp,
            "legend": over.legend,
        }
    if as_json:
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
            f"  overlay: {escape(str(out))} ({escape(result['overlay']['legend'])})",
            highlight=False,
            soft_wrap=True,
        )


__all__ = [
    "experts_add",
    "experts_catalog",
    "experts_list",
    "experts_remove",
    "experts_run",
    "experts_show",
]


def _save_heatmap(run: Any, slide: Any, label: str | None, out: Path) -> dict[str, Any]:
    """Write the heatmap of ``label`` over the run's region as an image; what the result records."""
    heat = run.heatmap(slide, label, max_side=2048)
    out.parent.mkdir(parents=True, exist_ok=True)
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
