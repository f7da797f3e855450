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

from slidescout.cli.app import console, experts_app
from slidescout.errors import ConfigError
from slidescout.eval.textfit import print_table
from slidescout.tools.experts import catalog, hub, named
from slidescout.tools.experts.cards import load_card
from slidescout.tools.experts.checks import check_model
from slidescout.tools.experts.loading import resolve_device
from slidescout.tools.experts.slidehead import check_head

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
        help="Weights file (or model folder) already on disk: for a catalog model instead of "
        "downloading them; for a card file instead of its field 'path' (a copy of the card is "
        "registered).",
    ),
) -> None:
    """Validate a model card, load its checkpoint once to check the output shape, and register it."""

    entry = named.get(str(card)) if not card.exists() else None
    if entry is not None:
        c = load_card(_catalog_card(entry, weights))
    elif not card.exists():
        raise ConfigError(_unknown_card(card))
    else:
        c = load_card(card)
        if weights is not None:
            c = load_card(_card_with_weights(c, weights))
    c.check_weights()
    t0 = time.perf_counter()

    def step(msg: str) -> None:
        console.print(
            f"  [{time.perf_counter() - t0:5.1f} s] {escape(msg)}", highlight=False, soft_wrap=True
        )

    step(f"card {c.file.name} is valid: {c.card.describe()}")
    dev = resolve_device(device)
    if c.card.kind.tool == "slide_classifier":  # a slide-level head: checked on random features
        width = check_head(c)
        step(f"checked the head on random {c.card.encoder} features: {width} class probabilities")
        catalog.add(c, replace=replace, info={"output_width": width})
        console.print(f"registered {escape(c.card.describe())}", highlight=False, soft_wrap=True)
        return
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


def _unknown_card(card: Path) -> str:
    """Neither a card file nor a catalog name: say so, with the catalog's names."""
    import difflib

    text = str(card)
    if card.suffix.lower() in (".yaml", ".yml", ".toml", ".json") or "/" in text:
        return f"model card not found: {card}"
    names = sorted(named.NAMED)
    close = difflib.get_close_matches(text.lower(), names, n=2, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return (
        f"{text!r} is neither a model card file nor a catalog model; {hint}catalog: "
        f"{', '.join(names)} (`slidescout experts catalog`)"
    )


def _card_with_weights(card: Any, weights: Path) -> Path:
    """A copy of ``card`` under $SLIDESCOUT_HOME/cards whose field 'path' is ``weights``."""
    import yaml

    path = weights.expanduser().resolve()
    if not path.exists():
        raise ConfigError(f"--weights: {path} does not exist")
    data = card.card.model_dump(mode="json", exclude_unset=True)
    data["path"] = str(path)
    out = catalog.home() / "cards" / f"{card.name}.yaml"
    if out.resolve() == card.file:
        raise ConfigError(f"--weights: {card.file} is already the registered copy; edit its 'path'")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    console.print(
        f"wrote card {escape(str(out))} (from {escape(card.file.name)}, weights {escape(str(path))})",
        highlight=False,
        soft_wrap=True,
    )
    return out


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


__all__ = [
    "experts_add",
    "experts_catalog",
    "experts_list",
    "experts_remove",
    "experts_show",
]
