"""``slidescout experts embed|train-head``: tile features of whole slides to disk, and slide-level
heads trained on them. Torch is imported only when a command runs."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from slidescout.cli.app import console, err_console, experts_app
from slidescout.cli.paths import ensure_dir
from slidescout.cli.progress import CountProgress
from slidescout.errors import ConfigError, SlidescoutError
from slidescout.slides import open_slide
from slidescout.tools.experts import catalog
from slidescout.tools.experts import features as feats
from slidescout.tools.experts.loading import resolve_device
from slidescout.tools.experts.slidehead import train_head


@experts_app.command("embed")
def experts_embed(
    model: str = typer.Argument(..., help="Registered tile encoder (output: embedding) or card."),
    slides: list[Path] = typer.Argument(..., help="Slide files, or folders of slides."),
    out: Path = typer.Option(..., "-o", "--out", help="Folder for the features (one .h5 a slide)."),
    min_tissue: float = typer.Option(
        0.25, "--min-tissue", min=0.0, max=1.0, help="Skip patches with less tissue."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=1, help="Patches per batch (default: 16 on CPU, 64 on GPU)."
    ),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Reader threads."),
    stain_norm: str | None = typer.Option(
        None, "--stain-norm", help="macenko, vahadane, reinhard or none (default: the card's)."
    ),
    stain_target: Path | None = typer.Option(
        None, "--stain-target", help="Image stained as the model's training data."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo slides already done."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Embed every tissue patch of each slide with a tile encoder, into OUT/<slide>.h5 (the HDF5
    layout CLAM and TRIDENT use: features, coords). Slides already done are skipped."""
    card = catalog.resolve(model)
    if card.card.output != "embedding":
        raise ConfigError(
            f"model {card.name!r} has output {card.card.output!r}; `experts embed` needs a tile "
            "encoder (output: embedding), e.g. uni from `slidescout experts catalog`"
        )
    paths = feats.slide_files(slides)
    if not paths:
        raise ConfigError("no slide files found in " + ", ".join(str(s) for s in slides))
    folder = ensure_dir(out, "-o folder")
    dev = resolve_device(device)
    results: list[feats.EmbedResult] = []
    for i, path in enumerate(paths, 1):
        target = folder / f"{path.stem}{feats.SUFFIX}"
        what = f"[{i}/{len(paths)}] {path.name}"
        try:
            with (
                open_slide(path) as slide,
                CountProgress(err_console, what, "patches", as_json) as bar,
            ):
                res = feats.embed_slide(
                    slide,
                    card,
                    target,
                    min_tissue=min_tissue,
                    overwrite=overwrite,
                    progress=bar,
                    device=dev,
                    batch_size=batch_size,
                    workers=workers,
                    stain=stain_norm,
                    stain_target=stain_target,
                )
        except SlidescoutError as exc:
            res = feats.EmbedResult(path.stem, target, "failed", reason=str(exc))
        results.append(res)
        if not as_json:
            console.print(
                f"  {escape(what)}: {escape(_line(res))}", highlight=False, soft_wrap=True
            )
    _report_embeddings(results, card.name, folder, as_json)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


def _report_embeddings(
    results: list[feats.EmbedResult], model: str, folder: Path, as_json: bool
) -> None:
    """Each slide's outcome as JSON, or the count of slides that have features."""
    rows = [
        {
            "slide": r.slide,
            "path": str(r.path),
            "status": r.status,
            "patches": r.patches,
            "seconds": round(r.seconds, 2),
            **({"reason": r.reason} if r.reason else {}),
        }
        for r in results
    ]
    if as_json:
        console.print_json(json.dumps({"model": model, "out": str(folder), "slides": rows}))
    else:
        done = sum(r.status != "failed" for r in results)
        console.print(
            f"{done}/{len(results)} slides have {escape(model)} features in {escape(str(folder))}",
            highlight=False,
        )


def _line(r: feats.EmbedResult) -> str:
    if r.status == "failed":
        return f"failed: {r.reason}"
    if r.status == "skipped":
        return f"already done ({r.patches} patches), skipped"
    rate = r.patches / r.seconds if r.seconds > 0 else 0.0
    return f"{r.patches} patches in {r.seconds:.1f} s ({rate:.0f}/s) -> {r.path.name}"


@experts_app.command("train-head")
def experts_train_head(
    features_dir: Path = typer.Argument(..., help="Folder of features from `experts embed`."),
    labels_csv: Path = typer.Argument(
        ..., help="CSV with columns slide,label (slide = file stem)."
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Folder for the head's weights and card."),
    name: str | None = typer.Option(None, "--name", help="Registry name (default: the folder's)."),
    kind: str = typer.Option("abmil", "--kind", help="abmil (gated attention) or linear."),
    val_fraction: float = typer.Option(
        0.3, "--val-fraction", min=0.05, max=0.9, help="Held-out share of the slides."
    ),
    epochs: int = typer.Option(60, "--epochs", min=1, max=10_000, help="Passes over the slides."),
    lr: float = typer.Option(1e-3, "--lr", min=1e-6, max=1.0, help="Adam's learning rate."),
    train_seed: int = typer.Option(
        0, "--train-seed", help="Seed of the split, the order and the weights."
    ),
    seed: int | None = typer.Option(
        None, "--seed", hidden=True, help="Old spelling of --train-seed."
    ),
    register: bool = typer.Option(
        True, "--register/--no-register", help="Register the head (the agent can consult it)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Fit a slide-level head (attention-MIL or linear) on cached tile features and slide labels,
    with a stratified held-out split; print its held-out metric, write weights and a card."""
    report = train_head(
        features_dir,
        labels_csv,
        out,
        name=name,
        kind=kind,
        val_fraction=val_fraction,
        epochs=epochs,
        lr=lr,
        seed=train_seed if seed is None else seed,
    )
    if register:
        catalog.add(report.card, replace=True, info={"output": "slide"})
    if as_json:
        console.print_json(json.dumps(report.to_dict() | {"registered": register}))
        return
    table = Table(title=f"{report.card.name}: {report.kind} head on {report.encoder} features")
    for col in ("split", "slides", "accuracy", "balanced accuracy", "AUC"):
        table.add_column(col)
    for split, m in (("train", report.train), ("held-out", report.val)):
        auc = "" if m.get("auc") is None else f"{m['auc']:.3f}"
        table.add_row(
            split, str(m["n"]), f"{m['accuracy']:.3f}", f"{m['balanced_accuracy']:.3f}", auc
        )
    console.print(table)
    console.print(
        f"chance (balanced accuracy) {1 / len(report.labels):.3f}; card {escape(str(report.card.file))}"
        + ("; registered" if register else ""),
        highlight=False,
        soft_wrap=True,
    )


__all__ = ["experts_embed", "experts_train_head"]
