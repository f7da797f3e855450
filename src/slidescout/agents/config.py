"""``AgentConfig``: every setting of an agent, spelled once.

The CLI's ``ask`` and ``eval`` derive their flags from these fields (same names, same help),
the manifest records the config as it is, and Ray workers rebuild the agent from it (it is
picklable).
"""

from __future__ import annotations

import os
from pathlib import PurePath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from slidescout import prompts
from slidescout.agents.models import (
    Model,
    ModelProfile,
    ResolvedSettings,
    parse_model_id,
    resolve_model,
    resolve_settings,
    route_profile,
)
from slidescout.agents.models.pricing import user_price
from slidescout.agents.models.registry import PROVIDERS, ApiChoice, split_options
from slidescout.agents.presets import DEFAULT_PRESET, PRESETS, Preset, get_preset
from slidescout.core.model_settings import (
    SETTING_NAMES,
    ModelSettings,
    ReasoningEffort,
    ReasoningSummary,
)

__all__ = ["AgentConfig", "KeepImages", "default_model_id"]

KeepImages = int | Literal["all"] | None


def default_model_id() -> str:
    """``openai:gpt-5`` or ``anthropic:claude-sonnet-4-5`` when their key is set, else the offline ``expert``."""
    if os.environ.get("OPENAI_API_KEY"):
        return "openai:gpt-5"
    if os.environ.get("ANTHROPIC_API_KEY"):
        return "anthropic:claude-sonnet-4-5"
    return "expert"


class AgentConfig(BaseModel):
    """How to build an agent: the model, the protocol (preset) and overrides of the preset."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str | None = Field(
        default=None,
        description=f"provider:model ({', '.join(PROVIDERS.builtin_names())} built in; plugins "
        "add more), e.g. openai:gpt-5, anthropic:claude-sonnet-4-5, expert, replay:TRACE; "
        "default: by the API key set, else expert",
    )
    preset: str = Field(
        default=DEFAULT_PRESET,
        description="protocol: "
        + ", ".join(f"{n} (default)" if n == DEFAULT_PRESET else n for n in PRESETS.builtin_names())
        + ", or a plugin's",
    )
    base_url: str | None = Field(
        default=None,
        description="the server of the model's provider, e.g. http://localhost:8000/v1 (an "
        "OpenAI-compatible server); the host root and the /v1 form both work",
    )
    api: ApiChoice = Field(
        default="auto",
        description="OpenAI API: responses, chat or auto (auto: the preset's, else Responses "
        "for OpenAI's endpoint and chat for a --base-url)",
    )
    tools: str | None = Field(
        default=None, description="change the preset's tools: '+name,-name' (or a full list)"
    )
    max_steps: int | None = Field(
        default=None, ge=1, description="step budget T (default: the preset's)"
    )
    max_side: int | None = Field(
        default=None,
        ge=64,
        le=8192,
        description="long side of every image in px (default: the preset's, by provider)",
    )
    keep_images: KeepImages = Field(
        default=None,
        description="images kept in the context besides the overview: "
        "a number, or 'all' (default: the preset's)",
    )
    views_per_turn: int | None = Field(
        default=None,
        ge=1,
        le=16,
        description="regions the model is invited to ask for in one turn, rendered together "
        "(default: the preset's; scout: 4)",
    )
    guides: bool | None = Field(
        default=None, description="draw coordinate guides on images (default: the preset's)"
    )
    jpeg_quality: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="JPEG quality of images sent (default: the preset's)",
    )
    seed: int | None = Field(
        default=None, description="model sampling seed (repeat r uses seed + r)"
    )
    temperature: float | None = Field(
        default=None, ge=0, le=2, description="model sampling temperature"
    )
    max_errors: int = Field(
        default=3, ge=1, description="consecutive failing steps before a sample ends in error"
    )
    sample_seconds: float | None = Field(
        default=None,
        gt=0,
        description="deadline of one sample, in seconds: model calls, tool calls and rendering "
        "together; the sample then ends budget_time, its trace kept",
    )
    device: str | None = Field(
        default=None,
        description="device of expert tools: cpu, cuda, cuda:N (default: cuda if present)",
    )
    timeout: float | None = Field(
        default=None,
        gt=0,
        description="deadline of one model request in seconds, from connecting to the last "
        "byte of the reply (not per read); past it the request is abandoned and retried "
        "(default 120)",
    )
    retries: int | None = Field(
        default=None,
        ge=0,
        le=20,
        description="retries of a failed or timed-out model request (default 5): a dead or "
        "stalled server is given up after timeout × (retries + 1) plus backoff",
    )
    price_in: float | None = Field(
        default=None,
        ge=0,
        description="USD per 1M input tokens, for a model with no known price (with --price-out)",
    )
    price_out: float | None = Field(
        default=None,
        ge=0,
        description="USD per 1M output tokens, for a model with no known price (with --price-in)",
    )
    pricing: str | None = Field(
        default=None,
        description='a pricing TOML file ([openai."MODEL"] input/output per 1M '
        "tokens) for this run",
    )
    reasoning_effort: ReasoningEffort | None = Field(
        default=None,
        description="OpenAI reasoning models: none, minimal, low, medium, "
        "high, xhigh (giant: high)",
    )
    reasoning_summary: ReasoningSummary | None = Field(
        default=None,
        description="OpenAI reasoning models, Responses API: auto, concise or detailed "
        "(giant: detailed)",
    )
    thinking_budget: int | None = Field(
        default=None,
        ge=1024,
        description="Claude: extended thinking budget in tokens (giant: 1024)",
    )
    max_output_tokens: int | None = Field(
        default=None, ge=1, description="output token limit per call (giant, Claude: 30000)"
    )
    prompt_cache: bool | None = Field(
        default=None,
        description="Claude: cache breakpoints on the requests (scout: on; giant and the "
        "baselines: off, as GIANT's requests); changes the bill, not what the model sees. "
        "OpenAI caches prompt prefixes by itself",
    )
    system_prompt: str | None = Field(
        default=None,
        description="a system prompt file used instead of the preset's (e.g. "
        "GIANT's exact text); its hash goes into the manifest",
    )
    model_options: dict[str, Any] = Field(
        default_factory=dict, description="extra options of the model adapter"
    )

    @field_validator("system_prompt", "pricing", mode="before")
    @classmethod
    def _path_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, PurePath) else value

    @property
    def model_id(self) -> str:
        """The model id in force: ``model``, else the default by the API key set."""
        return self.model or default_model_id()

    @property
    def endpoint(self) -> str:
        """The key of the model endpoint whose connections are limited together."""
        provider = self.model_id.split(":", 1)[0]
        return f"{provider}@{self.base_url}" if self.base_url else provider

    @property
    def route_api(self) -> ApiChoice:
        """The API in force: ``api``, or under ``auto`` the one the preset needs when the
        provider offers a choice (``giant`` needs OpenAI's Responses API)."""
        if self.api != "auto":
            return self.api
        wanted = get_preset(self.preset).api
        provider = PROVIDERS.get(parse_model_id(self.model_id)[0])
        return wanted if wanted in provider.api_choices else "auto"

    def check(self) -> None:
        """Fail now, with one line, on a malformed model id, an unknown preset, a model setting
        the route cannot carry or an unreadable prompt file: before any slide is opened."""
        parse_model_id(self.model_id)
        _, own = split_options(self.model_options)
        self.resolve_settings(self.profile(), get_preset(self.preset), own)
        if self.system_prompt:
            prompts.read_file(self.system_prompt)

    def user_settings(self) -> ModelSettings:
        """The model settings the user set (the top layer of the merge)."""
        given = {k: getattr(self, k) for k in SETTING_NAMES if k in type(self).model_fields}
        return ModelSettings(**{k: v for k, v in given.items() if v is not None})

    def profile(self) -> ModelProfile:
        """What the model on its route can carry (no key is read, no request sent)."""
        return route_profile(
            self.model_id, base_url=self.base_url, api=self.route_api, **self.model_options
        )

    def resolve_settings(
        self, profile: ModelProfile, preset: Preset, model_defaults: ModelSettings | None = None
    ) -> ResolvedSettings:
        """The settings every request carries: the model's defaults < the preset's for this route
        < the user's flags, checked against ``profile`` (a one-line ``ConfigError``)."""
        return resolve_settings(
            profile,
            model=model_defaults,
            preset=preset.settings_for(profile),
            user=self.user_settings(),
            required=preset.requires,
            preset_name=preset.name,
        )

    def _build_options(self) -> dict[str, Any]:
        """``model_options`` with the timeout and retries: how the model is built."""
        opts = dict(self.model_options)
        if self.timeout is not None:
            opts["timeout_s"] = float(self.timeout)
        if self.retries is not None:
            opts["max_retries"] = int(self.retries)
        return opts

    def resolve_model(self) -> Model:
        """The model, with the price the user gave (``price_in``/``price_out`` or ``pricing``) when any."""
        opts = self._build_options()
        provider, name = parse_model_id(self.model_id)
        given = self.price_in is not None or self.price_out is not None or self.pricing is not None
        if provider in ("openai", "anthropic") and given:
            price = user_price(
                provider,
                name,
                price_in=self.price_in,
                price_out=self.price_out,
                pricing_file=self.pricing,
                custom_endpoint=self.profile().custom_endpoint,
            )
            if price is not None:
                opts["price"] = price
        return resolve_model(self.model_id, base_url=self.base_url, api=self.route_api, **opts)

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-able data (the manifest's form)."""
        return self.model_dump(mode="json")
