"""The built-in entries of the provider registry: ``openai``, ``anthropic``, ``expert``, ``replay``.

Each is a :class:`~slidescout.agents.models.registry.ProviderSpec`. The OpenAI and Anthropic
SDKs are imported when a client is first used; the offline expert planner and replay are
imported when such a model is built.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Literal

from slidescout.agents.models.anthropic import AnthropicModel
from slidescout.agents.models.base import Model, ModelAdapter
from slidescout.agents.models.openai_chat import OpenAIChatModel
from slidescout.agents.models.openai_responses import OpenAIResponsesModel
from slidescout.agents.models.profile import ModelProfile, offline_profile
from slidescout.agents.models.providers import (
    ANTHROPIC_URL,
    OPENAI_URL,
    AnthropicProvider,
    OpenAIProvider,
    _host,
)
from slidescout.agents.models.registry import ApiChoice, Route
from slidescout.core.registry import load_path
from slidescout.errors import ConfigError

__all__ = ["ANTHROPIC", "EXPERT", "OPENAI", "REPLAY", "choose_openai_api"]


def choose_openai_api(base_url: str | None, api: str = "auto") -> Literal["responses", "chat"]:
    """ "responses" for OpenAI's own endpoint, "chat" for any other base URL, unless ``api`` says."""
    if api == "responses":
        return "responses"
    if api == "chat":
        return "chat"
    if api != "auto":
        raise ConfigError(f"api must be auto, responses or chat, not {api!r}")
    return "responses" if _host(base_url) in ("", _host(OPENAI_URL)) else "chat"


class OpenAISpec:
    forms = ("openai:MODEL (e.g. openai:gpt-5; with --base-url, any OpenAI-compatible server)",)
    model_part: Literal["name", "path", "optional"] = "name"
    api_choices: tuple[ApiChoice, ...] = ("auto", "responses", "chat")

    @staticmethod
    def _adapter(base_url: str | None, api: str) -> type[ModelAdapter]:
        chosen = choose_openai_api(base_url, api)
        return OpenAIResponsesModel if chosen == "responses" else OpenAIChatModel

    def profile(self, model: str, route: Route) -> ModelProfile:
        base_url = route.base_url or os.environ.get("OPENAI_BASE_URL") or None
        custom = _host(base_url) not in ("", _host(OPENAI_URL))
        cls = self._adapter(base_url, route.api)
        return cls.profile_for("openai", model, route.options, custom_endpoint=custom)

    def build(self, model: str, route: Route) -> Model:
        provider = OpenAIProvider.from_env(route.base_url, timeout_s=route.timeout_s)
        own = None if provider.base_url == OpenAIProvider.default_url else provider.base_url
        cls = self._adapter(own, route.api)
        return cls(provider, model, route.options, route.settings)


class AnthropicSpec:
    forms = ("anthropic:MODEL (e.g. anthropic:claude-sonnet-4-5)",)
    model_part: Literal["name", "path", "optional"] = "name"
    api_choices: tuple[ApiChoice, ...] = ("auto",)

    def profile(self, model: str, route: Route) -> ModelProfile:
        base_url = route.base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        custom = _host(base_url) not in ("", _host(ANTHROPIC_URL))
        return AnthropicModel.profile_for("anthropic", model, route.options, custom_endpoint=custom)

    def build(self, model: str, route: Route) -> Model:
        provider = AnthropicProvider.from_env(route.base_url, timeout_s=route.timeout_s)
        return AnthropicModel(provider, model, route.options, route.settings)


def _as_model(obj: object) -> Model:
    if not isinstance(obj, Model):
        raise TypeError(f"{obj!r} is not a Model")
    return obj


def _lazy(path: str, what: str) -> Callable[..., object]:
    try:
        found = load_path(path)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"{what} is not available in this installation ({path} could not be imported: {exc})"
        ) from None
    if not callable(found):
        raise ConfigError(f"{what} is not available in this installation ({path} is not a class)")
    return found


class ExpertSpec:
    forms = ("expert",)
    model_part: Literal["name", "path", "optional"] = "optional"
    api_choices: tuple[ApiChoice, ...] = ("auto",)

    def profile(self, model: str, route: Route) -> ModelProfile:
        return offline_profile("expert", "expert")

    def build(self, model: str, route: Route) -> Model:
        cls = _lazy("slidescout.agents.models.expert:ExpertModel", "the expert planner")
        return _as_model(cls(variant=model) if model else cls())


class ReplaySpec:
    forms = ("replay:PATH",)
    model_part: Literal["name", "path", "optional"] = "path"
    api_choices: tuple[ApiChoice, ...] = ("auto",)

    def profile(self, model: str, route: Route) -> ModelProfile:
        return offline_profile("replay", "replay")

    def build(self, model: str, route: Route) -> Model:
        cls = _lazy("slidescout.agents.models.replay:ReplayModel", "replay")
        return _as_model(cls(model))


OPENAI = OpenAISpec()
ANTHROPIC = AnthropicSpec()
EXPERT = ExpertSpec()
REPLAY = ReplaySpec()
