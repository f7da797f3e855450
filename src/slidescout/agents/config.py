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

from slidescout.agents.models import Model, parse_model_id, resolve_model
from slidescout.agents.models.pricing import user_price
from slidescout.agents.presets import DEFAULT_PRESET, get_preset
from slidescout.agents.protocol import MODEL_SETTINGS, check_model_settings, read_prompt_file

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
        None,
        description="provider:model (openai:gpt-5, anthropic:claude-sonnet-4-5, "
        "expert, replay:TRACE); default: by the API key set, else expert",
    )
    preset: str = Field(
        DEFAULT_PRESET,
        description="protocol: scout (default), giant, vitar, thumbnail, patch or medframeqa",
    )
    base_url: str | None = Field(
        None, description="an OpenAI-compatible server, e.g. http://localhost:8000/v1"
    )
    api: Literal["auto", "responses", "chat"] = Field(
        "auto", description="OpenAI API: responses, chat or auto"
    )
    tools: str | None = Field(
        None, description="change the preset's tools: '+name,-name' (or a full list)"
    )
    max_steps: int | None = Field(None, ge=1, description="step budget T (default: the preset's)")
    max_side: int | None = Field(
        None,
        ge=64,
        le=8192,
        description="long side of every image in px (default: the preset's, by provider)",
    )
    keep_images: KeepImages = Field(
        None,
        description="images kept in the context besides the overview: "
        "a number, or 'all' (default: the preset's)",
    )
    guides: bool | None = Field(
        None, description="draw coordinate guides on images (default: the preset's)"
    )
    jpeg_quality: int | None = Field(
        None, ge=1, le=100, description="JPEG quality of images sent (default: the preset's)"
    )
    seed: int | None = Field(None, description="model sampling seed (repeat r uses seed + r)")
    temperature: float | None = Field(None, ge=0, le=2, description="model sampling temperature")
    max_errors: int = Field(
        3, ge=1, description="consecutive failing steps before a sample ends in error"
    )
    sample_seconds: float | None = Field(
        None, gt=0, description="wall-time limit of one sample, in seconds"
    )
    device: str | None = Field(
        None, description="device of expert tools: cpu, cuda, cuda:N (default: cuda if present)"
    )
    timeout: float | None = Field(
        None,
        gt=0,
        description="seconds one model request may take before it is retried (default 120)",
    )
    retries: int | None = Field(
        None,
        ge=0,
        le=20,
        description="retries of a failed model request (default 5): a dead "
        "server is given up after timeout × (retries + 1) plus backoff",
    )
    price_in: float | None = Field(
        None,
        ge=0,
        description="USD per 1M input tokens, for a model with no known price (with --price-out)",
    )
    price_out: float | None = Field(
        None,
        ge=0,
        description="USD per 1M output tokens, for a model with no known price (with --price-in)",
    )
    pricing: str | None = Field(
        None,
        description='a pricing TOML file ([openai."MODEL"] input/output per 1M '
        "tokens) for this run",
    )
    reasoning_effort: str | None = Field(
        None,
        description="OpenAI reasoning models: none, minimal, low, medium, "
        "high, xhigh (giant: high)",
    )
    reasoning_summary: str | None = Field(
        None, description="OpenAI reasoning models: auto, concise or detailed (giant: detailed)"
    )
    thinking_budget: int | None = Field(
        None, ge=1024, description="Claude: extended thinking budget in tokens (giant: 1024)"
    )
    max_output_tokens: int | None = Field(
        None, ge=1, description="output token limit per call (giant, Claude: 30000)"
    )
    system_prompt: str | None = Field(
        None,
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

    def check(self) -> None:
        """Fail now, with one line, on a malformed model id, an unknown preset, a reasoning setting
        the provider cannot take or an unreadable prompt file: before any slide is opened."""
        parse_model_id(self.model_id)
        get_preset(self.preset)
        self.model_settings()
        if self.system_prompt:
            read_prompt_file(self.system_prompt)

    def model_settings(self) -> dict[str, Any]:
        """The reasoning settings the user set, checked against the provider (one-line ``ConfigError``)."""
        return check_model_settings(self.model_id, {k: getattr(self, k) for k in MODEL_SETTINGS})

    def adapter_options(self) -> dict[str, Any]:
        """Options for ``resolve_model``: ``model_options`` with the timeout, retries and reasoning settings."""
        opts = {**self.model_options, **self.model_settings()}
        if self.timeout is not None:
            opts["timeout_s"] = float(self.timeout)
        if self.retries is not None:
            opts["max_retries"] = int(self.retries)
        return opts

    def resolve_model(self) -> Model:
        """The model, with the price the user gave (``price_in``/``price_out`` or ``pricing``) when any."""
        opts = self.adapter_options()
        provider, name = parse_model_id(self.model_id)
        given = self.price_in is not None or self.price_out is not None or self.pricing is not None
        if provider in ("openai", "anthropic") and given:
            probe = resolve_model(
                self.model_id, base_url=self.base_url, api=self.api, **opts
            )  # no request
            custom = bool(getattr(getattr(probe, "provider", None), "custom_endpoint", False))
            price = user_price(
                provider,
                name,
                price_in=self.price_in,
                price_out=self.price_out,
                pricing_file=self.pricing,
                custom_endpoint=custom,
            )
            if price is not None:
                opts["price"] = price
        return resolve_model(self.model_id, base_url=self.base_url, api=self.api, **opts)

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-able data (the manifest's form)."""
        return self.model_dump(mode="json")
