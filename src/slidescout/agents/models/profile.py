"""What a model's route can carry (its ``ModelProfile``), and the one merge of request settings.

Each adapter owns its profile (pydantic-ai's ``ModelProfile``): whether it calls tools natively,
takes images, and which :class:`~slidescout.core.model_settings.ModelSettings` its wire format
can carry (reasoning effort and summary, extended thinking, inline tool images, parallel tool
calls, cache breakpoints, temperature, seed). :func:`resolve_settings` merges the three layers of
settings once per agent (the model's defaults < the preset's < the user's flags) and checks them
against the profile:

- a user's flag the route cannot carry is an error, one line that says what to do instead
  (``--reasoning-summary`` on the chat route names ``--api responses``);
- a preset's setting the route cannot carry is dropped and listed in ``dropped`` (the manifest
  records it), unless the preset requires it (``Preset.requires``): then it is an error too;
- the seed is a hint: sent where the route takes one, dropped elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from slidescout.core.messages import ModelApi
from slidescout.core.model_settings import SETTING_NAMES, ModelSettings, flag_name
from slidescout.errors import ConfigError

__all__ = [
    "DEFAULT_IMAGE_FORMATS",
    "ModelApi",
    "ModelProfile",
    "ResolvedSettings",
    "offline_profile",
    "permissive_profile",
    "resolve_settings",
]

DEFAULT_IMAGE_FORMATS = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# ModelSettings field -> the profile flag that says whether the route carries it
_CAPABILITY = {
    "max_output_tokens": "max_output_tokens",
    "temperature": "temperature",
    "seed": "seed",
    "reasoning_effort": "reasoning_effort",
    "reasoning_summary": "reasoning_summary",
    "thinking_budget": "thinking",
    "tool_result_images": "inline_tool_images",
    "parallel_tool_calls": "parallel_tool_calls",
    "prompt_cache": "cache_breakpoints",
    "request_layout": "request_layout",
}
_HINTS = frozenset({"seed"})  # sent where carried, silently dropped elsewhere


@dataclass(frozen=True)
class ModelProfile:
    """What one model on one route can take. Built by the adapter (``profile_for``), never changed.

    Attributes:
        api: the wire format.
        provider: the provider's registry name (``openai``, ``anthropic``...); presets key their
            per-route settings by it or by ``api``.
        model: ``provider:model``, for messages.
        route: the route in words ("the Responses API"), for messages.
        tools: native function calling (False: the JSON-action fallback).
        images: the model takes images.
        image_formats, max_images: media types it takes, and how many images per request.
        custom_endpoint: served from a base URL that is not the provider's own (a local server,
            a proxy): priced only from the user's pricing.
        context_window: the model's context window in tokens (None: not known); ``scout`` drops
            old images only when a request would not fit in it.
        reasoning_effort ... seed: whether the route carries that setting.
        refusals: setting -> the one line that says why it cannot be carried and what to do.
    """

    api: ModelApi
    provider: str
    model: str
    route: str
    tools: bool = True
    images: bool = True
    image_formats: frozenset[str] = DEFAULT_IMAGE_FORMATS
    max_images: int | None = None
    custom_endpoint: bool = False
    context_window: int | None = None
    max_output_tokens: bool = True
    temperature: bool = True
    seed: bool = False
    reasoning_effort: bool = False
    reasoning_summary: bool = False
    thinking: bool = False
    inline_tool_images: bool = False
    parallel_tool_calls: bool = False
    cache_breakpoints: bool = False
    request_layout: bool = False
    refusals: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    def carries(self, name: str, value: object = None) -> bool:
        """Whether the route can send setting ``name`` (with ``value``, where it matters)."""
        if name == "tool_result_images" and value == "user":
            return True  # images after the results: every route can
        return bool(getattr(self, _CAPABILITY[name]))

    def refusal(self, name: str) -> str:
        """One line: why ``name`` cannot be carried here, and what to do instead."""
        return self.refusals.get(name) or (
            f"{flag_name(name)} cannot be sent to {self.model} through {self.route}; drop it"
        )

    def check(self, settings: ModelSettings) -> None:
        """A ``ConfigError`` (one line) for the first setting this route cannot carry."""
        for name, value in settings.given().items():
            if name not in _HINTS and not self.carries(name, value):
                raise ConfigError(self.refusal(name))
        _check_combination(settings, user=settings)

    def keep(self, settings: ModelSettings) -> ModelSettings:
        """``settings`` less what this route cannot carry (for the request as sent)."""
        bad = [n for n, v in settings.given().items() if not self.carries(n, v)]
        return settings.without(*bad) if bad else settings


def _check_combination(merged: ModelSettings, *, user: ModelSettings) -> ModelSettings:
    """Settings that cannot go together: Claude takes no temperature with extended thinking."""
    if merged.thinking_budget and merged.temperature is not None:
        if user.temperature is not None:
            raise ConfigError(
                "--temperature cannot be sent with extended thinking (Claude rejects it); "
                "drop --temperature, or the thinking budget"
            )
        return merged.without("temperature")
    return merged


@dataclass(frozen=True)
class ResolvedSettings:
    """The settings every request of an agent carries, and the preset's that were left out."""

    settings: ModelSettings
    dropped: Mapping[str, str] = field(default_factory=dict)  # setting -> why


def resolve_settings(
    profile: ModelProfile,
    *,
    model: ModelSettings | None = None,
    preset: ModelSettings | None = None,
    user: ModelSettings | None = None,
    required: frozenset[str] = frozenset(),
    preset_name: str = "",
) -> ResolvedSettings:
    """Merge model defaults < preset < user flags once and check the result against ``profile``.

    ``required``: preset settings the protocol cannot do without (GIANT's reasoning on the
    Responses API); if the route cannot carry one, that is an error, not a silent drop."""
    model = model or ModelSettings()
    preset = preset or ModelSettings()
    user = user or ModelSettings()
    for name, value in user.given().items():
        if name not in _HINTS and not profile.carries(name, value):
            raise ConfigError(profile.refusal(name))
    dropped: dict[str, str] = {}
    for name, value in preset.given().items():
        if name in user.given() or profile.carries(name, value):
            continue
        if name in required:
            raise ConfigError(
                f"preset {preset_name} needs {flag_name(name)}, which {profile.route} cannot "
                f"carry: {profile.refusal(name)}"
            )
        dropped[name] = profile.refusal(name)
    merged = model.merged(preset.without(*dropped), user)
    merged = _check_combination(merged, user=user)
    if merged.seed is not None and not profile.seed:
        merged = merged.without("seed")
    return ResolvedSettings(settings=merged, dropped=dropped)


def offline_profile(name: str, api: ModelApi, carries: tuple[str, ...] = ()) -> ModelProfile:
    """The profile of a model that makes no request: it carries no setting but ``carries``."""
    refusal = "{flag} applies to OpenAI and Claude models, not to " + name
    return ModelProfile(
        api=api,
        provider=name,
        model=name,
        route=f"the {name} model",
        max_output_tokens="max_output_tokens" in carries,
        temperature="temperature" in carries,
        seed="seed" in carries,
        refusals={s: refusal.format(flag=flag_name(s)) for s in SETTING_NAMES},
    )


def permissive_profile(name: str, api: ModelApi = "function") -> ModelProfile:
    """A profile that carries every setting (test doubles such as ``FunctionModel``)."""
    return ModelProfile(
        api=api,
        provider=name.split(":", 1)[0],
        model=name,
        route=f"the {name} model",
        seed=True,
        reasoning_effort=True,
        reasoning_summary=True,
        thinking=True,
        inline_tool_images=True,
        parallel_tool_calls=True,
        cache_breakpoints=True,
        request_layout=True,
    )
