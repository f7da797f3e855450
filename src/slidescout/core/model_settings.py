"""``ModelSettings``: the settings one model request carries, immutable and merged once.

A request's settings come from three layers, later ones winning field by field (pydantic-ai's
merged ``ModelSettings``): the model's own defaults < the preset's settings for the route < the
user's flags. The agent merges them once, checks them against the model's profile (what its
route can carry, see ``slidescout.agents.models.profile``) and sends the same frozen object with
every request. Nothing is ever set onto a model object.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SETTING_NAMES",
    "ModelSettings",
    "ReasoningEffort",
    "ReasoningSummary",
    "RequestLayout",
    "ToolResultImages",
    "flag_name",
]

ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]
ReasoningSummary = Literal["auto", "concise", "detailed"]
# where a tool result's images go: a user message after the results ("user"), or inside the
# tool output itself ("inline": GIANT's way on the Responses API)
ToolResultImages = Literal["user", "inline"]
# how a request lays out what it carries: "giant" as GIANT's own code sends it (the system
# prompt as the first input item, "auto" tool choice left to the API's default, tools without
# "strict" or "additionalProperties", a text-only tool result as a plain string)
RequestLayout = Literal["giant"]


class ModelSettings(BaseModel):
    """Settings of one model request; None means "not set" (the next layer down decides)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_output_tokens: int | None = Field(
        default=None, ge=1, description="output token limit per call"
    )
    temperature: float | None = Field(default=None, ge=0, le=2, description="sampling temperature")
    seed: int | None = Field(
        default=None, description="sampling seed; sent where the route takes one (Chat Completions)"
    )
    reasoning_effort: ReasoningEffort | None = Field(
        default=None, description="OpenAI reasoning models: how hard to think"
    )
    reasoning_summary: ReasoningSummary | None = Field(
        default=None, description="OpenAI reasoning models (Responses API): the summary asked for"
    )
    thinking_budget: int | None = Field(
        default=None, ge=1024, description="Claude: extended thinking budget in tokens"
    )
    tool_result_images: ToolResultImages | None = Field(
        default=None, description="where a tool result's images go: 'user' message or 'inline'"
    )
    parallel_tool_calls: bool | None = Field(
        default=None, description="whether the model may call several tools in one turn"
    )
    prompt_cache: bool | None = Field(
        default=None, description="cache breakpoints on the request (Claude's prompt caching)"
    )
    request_layout: RequestLayout | None = Field(
        default=None, description="'giant': the request laid out as GIANT's code sends it"
    )

    def given(self) -> dict[str, Any]:
        """The fields that are set, in field order."""
        return {k: v for k, v in self.model_dump().items() if v is not None}

    def merged(self, *over: ModelSettings) -> ModelSettings:
        """These settings with each of ``over`` laid on top (a field set later wins)."""
        data = self.given()
        for layer in over:
            data.update(layer.given())
        return ModelSettings(**data)

    def without(self, *names: str) -> ModelSettings:
        """A copy with ``names`` unset."""
        return ModelSettings(**{k: v for k, v in self.given().items() if k not in names})


SETTING_NAMES: tuple[str, ...] = tuple(ModelSettings.model_fields)


def flag_name(setting: str) -> str:
    """The command-line flag of a setting: ``reasoning_effort`` -> ``--reasoning-effort``."""
    return "--" + setting.replace("_", "-")
