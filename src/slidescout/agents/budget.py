"""Budgets in steps, tokens, dollars and wall time, shared by the samples of a run.

A dollar budget is a cap: before a model call is sent, its worst case is reserved
(:meth:`Budget.reserve`): an upper bound of its input tokens plus its output token limit, at the
model's price (:func:`call_bound`, :func:`worst_case_usd`). Calls in flight together never
reserve more than is left, so what they are billed cannot pass the budget; when the reply's usage
arrives the reservation is settled (:meth:`Reservation.settle`) and its unused part is free again.
A call whose worst case does not fit waits for the calls in flight to settle; when nothing is in
flight and it still does not fit, the budget counts as spent (``BudgetExceeded``).

A call whose price is unknown (a ``--base-url`` model, a model newer than the price list) is
reserved and charged at the highest list price known (``ceiling_price``): the run may stop early,
but an unknown price never means unbounded spending.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from slidescout.agents.models.base import ModelAdapter
from slidescout.agents.models.pricing import Price, ceiling_price
from slidescout.core.messages import ModelRequest, Usage
from slidescout.errors import BudgetExceeded

__all__ = [
    "IMAGE_TOKEN_BOUND",
    "UNLIMITED_OUTPUT_BOUND",
    "Budget",
    "CallBound",
    "Reservation",
    "call_bound",
    "input_token_bound",
    "worst_case_usd",
]

# The most input tokens one image is billed for under the providers' published rules, sizes as
# sent (OpenAI tiles: 85 + 170 × 8 tiles; OpenAI patches: 1536 × 2.46; Anthropic: about
# 1.15 MP / 750), except the models that bill an image as many more tokens at a lower price.
IMAGE_TOKEN_BOUND = 3_800
_IMAGE_TOKEN_BOUNDS = {"gpt-4o-mini": 2_833 + 5_667 * 8}
# a request with no output limit (OpenAI's routes, unless --max-output-tokens) may run to the
# largest output any listed model allows (GPT-5: 128k tokens, reasoning included)
UNLIMITED_OUTPUT_BOUND = 128_000
_WAIT_S = (0.01, 0.25)  # first and longest poll while a call waits for room


@dataclass(frozen=True)
class CallBound:
    """The most one reply to a request can be billed: an upper bound of its input tokens, its
    output token limit, and the model's price (None: unknown)."""

    input_tokens: int
    output_tokens: int
    price: Price | None


def input_token_bound(req: ModelRequest, *, model: str = "") -> int:
    """An upper bound of the input tokens ``req`` is billed: one token per byte of its text as
    JSON (no tokenizer makes more tokens than bytes), and each image at its worst case."""
    dumped: list[Any] = [m.model_dump(mode="json") for m in req.messages]
    dumped += [t.model_dump(mode="json") for t in req.tools]
    n_images = 0
    stack: list[Any] = [dumped]
    while stack:
        obj = stack.pop()
        if isinstance(obj, dict):
            n_images += obj.get("kind") == "image"
            stack.extend(obj.values())
        elif isinstance(obj, list):
            stack.extend(obj)
    per_image = next(
        (n for name, n in _IMAGE_TOKEN_BOUNDS.items() if name in model), IMAGE_TOKEN_BOUND
    )
    return len(json.dumps(dumped).encode("utf-8")) + n_images * per_image


def call_bound(model: object, req: ModelRequest) -> CallBound | None:
    """The worst case of ``model`` answering ``req``, for a provider adapter (through any
    wrapper that exposes ``wrapped``); None for a model that bills nothing or cannot say (the
    offline planner, a replay, a test's ``FunctionModel``: charged after the call)."""
    while not isinstance(model, ModelAdapter) and hasattr(model, "wrapped"):
        model = getattr(model, "wrapped")  # noqa: B009 - any wrapper, no common base
    if not isinstance(model, ModelAdapter):
        return None
    prepared = model.prepare(req)
    limit = model.request_settings(prepared).max_output_tokens
    return CallBound(
        input_tokens=input_token_bound(prepared, model=model.model),
        output_tokens=limit or UNLIMITED_OUTPUT_BOUND,
        price=model.price(),
    )


def worst_case_usd(bound: CallBound, unknown_price: Price | None = None) -> float:
    """What a call within ``bound`` can cost at most: every input token uncached, every output
    token used, at its price (an unknown price: ``unknown_price``, default the ceiling)."""
    price = bound.price or unknown_price or ceiling_price()
    return price.cost(input_tokens=bound.input_tokens, output_tokens=bound.output_tokens)


@dataclass
class Reservation:
    """Dollars held for one call in flight; ``settle`` (the reply's usage) or ``release`` (no
    reply) gives them back, once."""

    budget: Budget
    usd: float
    done: bool = False

    def settle(self, usage: Usage) -> None:
        """The reply arrived: charge what it cost, free the rest."""
        if not self.done:
            self.done = True
            self.budget._settle(self.usd, usage)

    def release(self) -> None:
        """No reply (the call failed or was cancelled): free the whole reservation."""
        if not self.done:
            self.done = True
            self.budget._settle(self.usd, None)


# the statuses a spent budget (or a run stopped from outside) ends a sample with: a subset of
# ``core.trace.Status``
BudgetStatus = Literal["budget_usd", "budget_tokens", "budget_time", "cancelled"]


@dataclass
class Budget:
    """Thread-safe running totals against optional limits. ``exceeded()`` names the first limit hit."""

    usd: float | None = None
    tokens: int | None = None
    seconds: float | None = None
    started: float = field(default_factory=time.monotonic)
    spent_usd: float = 0.0
    spent_tokens: int = 0
    unknown_cost_calls: int = 0
    estimated_usd: float = 0.0  # part of spent_usd charged at the ceiling price (unknown prices)
    unknown_price: Price | None = (
        None  # what an unknown-price call is charged (default: ceiling_price())
    )
    reserved_usd: float = 0.0  # held now for the calls in flight
    in_flight: int = 0  # calls holding a reservation
    peak_reserved_usd: float = 0.0  # the most ever held at once
    refused_calls: int = 0  # calls not sent: their worst case did not fit in what was left
    _exhausted: bool = False  # a call was refused with nothing in flight: the budget is spent
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    async def reserve(self, model: object, req: ModelRequest) -> Reservation:
        """Hold the worst case of ``model`` answering ``req`` before it is sent. Waits while
        calls in flight may free room; ``BudgetExceeded`` (kind ``budget_usd``) when nothing is
        in flight and it still does not fit, or when a limit is hit meanwhile."""
        if self.usd is None:
            return Reservation(self, 0.0)
        bound = call_bound(model, req)
        usd = 0.0 if bound is None else worst_case_usd(bound, self.unknown_price)
        wait = _WAIT_S[0]
        while True:
            with self._lock:
                if self.spent_usd + self.reserved_usd + usd <= self.usd and not self._exhausted:
                    self.in_flight += 1
                    self.reserved_usd += usd
                    self.peak_reserved_usd = max(self.peak_reserved_usd, self.reserved_usd)
                    return Reservation(self, usd)
                if self.in_flight == 0 or self._exhausted:
                    self.refused_calls += 1
                    self._exhausted = True
                    left = max(0.0, self.usd - self.spent_usd)
                    raise BudgetExceeded(
                        f"dollar budget spent: the next call may cost up to ${usd:.4f} "
                        f"({_bound_text(bound)}), more than the ${left:.4f} left of "
                        f"${self.usd:g}",
                        kind="budget_usd",
                    )
            hit = self.exceeded()
            if hit is not None:
                raise BudgetExceeded(self.describe(hit), kind=hit)
            await asyncio.sleep(wait)
            wait = min(wait * 2, _WAIT_S[1])

    def _settle(self, reserved: float, usage: Usage | None) -> None:
        with self._lock:
            self.in_flight -= 1
            # exactly 0 when nothing is in flight (no float residue from the subtractions)
            self.reserved_usd = max(0.0, self.reserved_usd - reserved) if self.in_flight else 0.0
        if usage is not None:
            self.charge(usage)

    def charge(self, usage: Usage) -> None:
        with self._lock:
            self.spent_tokens += usage.input_tokens + usage.output_tokens
            if usage.cost_usd is None:
                self.unknown_cost_calls += 1
                if self.usd is not None:
                    price = self.unknown_price or ceiling_price()
                    est = price.cost(
                        input_tokens=usage.input_tokens, output_tokens=usage.output_tokens
                    )
                    self.estimated_usd += est
                    self.spent_usd += est
            else:
                self.spent_usd += usage.cost_usd

    def exceeded(self) -> BudgetStatus | None:
        """``"budget_usd"``, ``"budget_tokens"``, ``"budget_time"`` or None."""
        if self.usd is not None and (self.spent_usd >= self.usd or self._exhausted):
            return "budget_usd"
        if self.tokens is not None and self.spent_tokens >= self.tokens:
            return "budget_tokens"
        if self.seconds is not None and time.monotonic() - self.started >= self.seconds:
            return "budget_time"
        return None

    def describe(self, kind: BudgetStatus) -> str:
        if kind == "budget_usd":
            note = (
                f" (${self.estimated_usd:.4f} of it estimated at the highest known list price for "
                f"{self.unknown_cost_calls} calls of unknown price)"
                if self.estimated_usd
                else ""
            )
            return f"dollar budget spent: ${self.spent_usd:.4f} of ${self.usd:.2f}{note}"
        if kind == "budget_tokens":
            return f"token budget spent: {self.spent_tokens} of {self.tokens}"
        if kind == "budget_time":
            return f"time budget spent: {time.monotonic() - self.started:.1f} s of {self.seconds:.0f} s"
        return "the run was stopped"

    def report(self) -> dict[str, Any]:
        """The dollar budget as a run reports it (summary.json): the limit, what was spent (and
        of it estimated at the ceiling price), the most held at once for calls in flight, the
        calls refused."""
        with self._lock:
            return {
                "usd": self.usd,
                "spent_usd": round(self.spent_usd, 6),
                "estimated_usd": round(self.estimated_usd, 6),
                "reserved_usd": round(self.reserved_usd, 6),
                "peak_reserved_usd": round(self.peak_reserved_usd, 6),
                "refused_calls": self.refused_calls,
            }


def _bound_text(bound: CallBound | None) -> str:
    if bound is None:
        return "no bound known"
    price = "unknown price, at the highest list price" if bound.price is None else "its price"
    return (
        f"≤ {bound.input_tokens:,} input and {bound.output_tokens:,} output tokens at {price}; "
        "--max-output-tokens lowers it"
    )
