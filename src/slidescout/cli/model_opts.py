"""Model options the agent commands share: request timeout, retries, and the price of a model.

``--budget-usd`` never runs unbounded: a model with no known price is charged at the highest
list price known (see :mod:`slidescout.agents.budget`), with a warning at start that says how to
give the real price (``--price-in/--price-out`` or ``--pricing FILE``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from slidescout.cli.app import err_console

__all__ = ["MODEL_OPTIONS", "model_options", "warn_unused_tools"]

# (name, annotation, typer.Option) of the options `ask` and `eval` share
MODEL_OPTIONS: list[tuple[str, Any, Any]] = [
    ("timeout", float | None, typer.Option(None, "--timeout", min=0.1, help="Seconds one model request may take before it is retried (default 120).")),
    ("retries", int | None, typer.Option(None, "--retries", min=0, max=20, help="Retries of a failed model request (default 5): a dead server is given up after timeout × (retries + 1) plus backoff.")),
    ("price_in", float | None, typer.Option(None, "--price-in", min=0.0, help="USD per 1M input tokens, for a model with no known price (with --price-out).")),
    ("price_out", float | None, typer.Option(None, "--price-out", min=0.0, help="USD per 1M output tokens, for a model with no known price (with --price-in).")),
    ("pricing", Path | None, typer.Option(None, "--pricing", help="A pricing TOML file ([openai.\"MODEL\"] input/output per 1M tokens) for this run.")),
]


def model_options(model: str | None, *, base_url: str | None, api: str, timeout: float | None,
                  retries: int | None, price_in: float | None, price_out: float | None,
                  pricing: Path | None, budget_usd: float | None) -> dict[str, Any]:
    """``model_options`` for ``make_agent``/``AgentSpec``; checks the model and its endpoint now,
    before any work, and warns when a dollar budget meets an unknown price."""
    from slidescout.agents.api import default_model_id  # lazy, as every command: a fast CLI start
    from slidescout.agents.models import TokenCounts, parse_model_id, resolve_model
    from slidescout.agents.models.pricing import ceiling_price, user_price

    model_id = model or default_model_id()
    provider, name = parse_model_id(model_id)
    if provider not in ("openai", "anthropic"):
        if price_in is not None or price_out is not None or pricing is not None:
            err_console.print(f"warning: {model_id} makes no paid requests; the price options are ignored",
                              highlight=False, markup=False)
        return {}
    opts: dict[str, Any] = {}
    if timeout is not None:
        opts["timeout_s"] = float(timeout)
    if retries is not None:
        opts["max_retries"] = int(retries)
    probe = resolve_model(model_id, base_url=base_url, api=api, **opts)  # type: ignore[arg-type]  # no request
    custom = bool(getattr(getattr(probe, "provider", None), "custom_endpoint", False))
    price = user_price(provider, name, price_in=price_in, price_out=price_out, pricing_file=pricing,
                       custom_endpoint=custom)
    if price is not None:
        opts["price"] = price
    elif budget_usd is not None and getattr(probe, "cost", lambda c: 0.0)(TokenCounts(input=1000, output=1000)) is None:
        top = ceiling_price()
        why = "a model behind --base-url is priced only from your pricing file" if custom else "it is not in the price list"
        err_console.print(
            f"warning: no price is known for {model_id} ({why}); --budget-usd {budget_usd:g} is charged at the "
            f"highest list price known (${top.input:g} in / ${top.output:g} out per 1M tokens), so the run may "
            f"stop early. Give the real price with --price-in/--price-out or --pricing FILE.",
            highlight=False, markup=False)
    return opts


def warn_unused_tools(model: str | None, tools: str | None) -> None:
    """Warn when ``--tools`` names a tool the offline expert planner never calls."""
    if not tools:
        return
    from slidescout.agents.api import default_model_id
    from slidescout.agents.models import parse_model_id

    provider, _ = parse_model_id(model or default_model_id())
    if provider != "expert":
        return
    from slidescout.agents.models.expert import ExpertModel
    from slidescout.tools.registry import resolve_toolset

    resolve_toolset([], tools)  # an unknown tool is an error first (naming the known ones)
    named = [t.strip().lstrip("+") for t in tools.split(",") if t.strip() and not t.strip().startswith("-")]
    unused = [t for t in named if t not in ExpertModel.uses_tools]
    if unused:
        err_console.print(f"warning: the offline expert planner never calls {', '.join(unused)} (it calls only "
                          f"{', '.join(sorted(ExpertModel.uses_tools))}); use an LLM model (--model) to try "
                          f"{'them' if len(unused) > 1 else 'it'}", highlight=False, markup=False)
