"""``EvalConfig``: every setting of an evaluation run, spelled once.

``slidescout eval`` derives its run flags from these fields (name and help), ``run_eval`` takes one
``EvalConfig`` (or its fields as keywords), and the manifest records it as it is.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from slidescout.eval.grounding import DEFAULT_MAX_MPP

__all__ = ["EvalConfig"]


class EvalConfig(BaseModel):
    """How to run samples: repeats, concurrency, budgets, resume, executor."""

    model_config = ConfigDict(extra="forbid")

    repeats: int = Field(
        default=1, ge=1, le=100, description="runs of every sample (mean of runs, majority vote)"
    )
    concurrency: int = Field(default=16, ge=1, le=1024, description="samples in flight at once")
    max_connections: int | None = Field(
        default=None,
        ge=1,
        description="concurrent requests to the model endpoint (default: --concurrency)",
    )
    budget_usd: float | None = Field(
        default=None, ge=0, description="stop starting samples once this many dollars are spent"
    )
    budget_tokens: int | None = Field(
        default=None, ge=0, description="stop starting samples once this many tokens are used"
    )
    budget_seconds: float | None = Field(
        default=None, ge=0, description="stop starting samples after this many seconds"
    )
    resume: bool = Field(
        default=False,
        description="continue the run directory: finished samples are kept, not run again",
    )
    retry_errors: bool = Field(
        default=False, description="with --resume, also rerun samples that ended in error"
    )
    executor: Literal["asyncio", "ray"] = Field(
        default="asyncio", description="asyncio (this process) or ray"
    )
    ray_address: str | None = Field(
        default=None, description="Ray cluster address (default: a local Ray instance)"
    )
    ray_options: dict[str, Any] = Field(
        default_factory=dict, description="mode, workers, num_cpus, num_gpus of the Ray executor"
    )
    max_mpp: float = Field(
        default=DEFAULT_MAX_MPP,
        gt=0,
        description="grounding: a lesion counts as seen in a view at this µm/px or finer",
    )
    stop_after_failures: int = Field(
        default=5,
        ge=0,
        description="stop when the model endpoint failed every call of this "
        "many samples in a row (0: never)",
    )
    n_bootstrap: int = Field(default=1000, ge=10, description="bootstrap draws for the intervals")

    def manifest(self) -> dict[str, Any]:
        """What the manifest records (the settings that shape results)."""
        data = self.model_dump(mode="json")
        data["max_connections"] = self.max_connections or self.concurrency
        data["budget"] = {
            "usd": self.budget_usd,
            "tokens": self.budget_tokens,
            "seconds": self.budget_seconds,
        }
        return data
