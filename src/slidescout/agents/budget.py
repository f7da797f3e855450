"""Budgets in steps, tokens, dollars and wall time, shared by the samples of a run.

A call whose price is unknown (a ``--base-url`` model, a model newer than the price list) is
charged against a dollar budget at the highest list price known (``ceiling_price``): the run may
stop early, but an unknown price never means unbounded spending."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Literal

from slidescout.agents.models.pricing import Price, ceiling_price
from slidescout.core.messages import Usage

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
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

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
        if self.usd is not None and self.spent_usd >= self.usd:
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
