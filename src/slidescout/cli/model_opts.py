"""Warnings about a model's settings that the agent commands share.

``--budget-usd`` never runs unbounded: a model with no known price is charged at the highest
list price known (see :mod:`slidescout.agents.budget`), with a warning at start that says how to
give the real price (``--price-in/--price-out`` or ``--pricing FILE``).
"""

from __future__ import annotations

from slidescout.agents.config import AgentConfig
from slidescout.agents.models import ModelAdapter, TokenCounts, parse_model_id
from slidescout.agents.models.expert import ExpertModel
from slidescout.agents.models.pricing import ceiling_price
from slidescout.cli.app import err_console
from slidescout.tools.registry import resolve_toolset

__all__ = ["warn_price", "warn_unused_tools"]


def warn_price(config: AgentConfig, budget_usd: float | None) -> None:
    """Check the model and its endpoint now, before any work; warn when a dollar budget meets an
    unknown price, and when price options are given for a model that makes no paid requests."""
    provider, _ = parse_model_id(config.model_id)
    given = (
        config.price_in is not None or config.price_out is not None or config.pricing is not None
    )
    if provider not in ("openai", "anthropic"):
        if given:
            err_console.print(
                f"warning: {config.model_id} makes no paid requests; the price options are ignored",
                highlight=False,
                markup=False,
            )
        return
    model = config.resolve_model()  # builds no client and sends no request
    if (
        budget_usd is None
        or not isinstance(model, ModelAdapter)
        or model.cost(TokenCounts(input=1000, output=1000)) is not None
    ):
        return
    custom = model.profile.custom_endpoint
    top = ceiling_price()
    why = (
        "a model behind --base-url is priced only from your pricing file"
        if custom
        else "it is not in the price list"
    )
    err_console.print(
        f"warning: no price is known for {config.model_id} ({why}); --budget-usd {budget_usd:g} is charged at the "
        f"highest list price known (${top.input:g} in / ${top.output:g} out per 1M tokens), so the run may "
        f"stop early. Give the real price with --price-in/--price-out or --pricing FILE.",
        highlight=False,
        markup=False,
    )


def warn_unused_tools(config: AgentConfig) -> None:
    """Warn when ``--tools`` names a tool the offline expert planner never calls."""
    tools = config.tools
    if not tools:
        return
    provider, _ = parse_model_id(config.model_id)
    if provider != "expert":
        return
    resolve_toolset([], tools)  # an unknown tool is an error first (naming the known ones)
    named = [
        t.strip().lstrip("+")
        for t in tools.split(",")
        if t.strip() and not t.strip().startswith("-")
    ]
    unused = [t for t in named if t not in ExpertModel.uses_tools]
    if unused:
        err_console.print(
            f"warning: the offline expert planner never calls {', '.join(unused)} (it calls only "
            f"{', '.join(sorted(ExpertModel.uses_tools))}); use an LLM model (--model) to try "
            f"{'them' if len(unused) > 1 else 'it'}",
            highlight=False,
            markup=False,
        )
