"""Model ids → model objects: ``resolve_model("openai:gpt-5")``.

Valid ids:

- ``openai:MODEL``: OpenAI, or with ``base_url`` any OpenAI-compatible server (vLLM, Ollama,
  llama.cpp). The API is explicit: Responses for OpenAI's own endpoint (no base URL, or
  api.openai.com), Chat Completions for any other base URL; ``api`` overrides. The choice is
  ``model.api`` ("openai-responses" or "openai-chat").
- ``anthropic:MODEL``: Anthropic's Messages API (``base_url`` for a compatible endpoint).
- ``expert`` (or ``expert:VARIANT``): the offline expert planner.
- ``replay:PATH``: replays the model outputs recorded in a trace.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any, Literal

from slidescout.agents.models.anthropic import AnthropicModel
from slidescout.agents.models.base import Model, ModelAdapter
from slidescout.agents.models.openai_chat import OpenAIChatModel
from slidescout.agents.models.openai_responses import OpenAIResponsesModel
from slidescout.agents.models.providers import AnthropicProvider, OpenAIProvider, _host
from slidescout.agents.models.retry import RetryPolicy
from slidescout.errors import ConfigError

ApiChoice = Literal["auto", "responses", "chat"]

VALID_FORMS = (
    "openai:MODEL (e.g. openai:gpt-5; with --base-url, any OpenAI-compatible server)",
    "anthropic:MODEL (e.g. anthropic:claude-sonnet-4-5)",
    "expert",
    "replay:PATH",
)
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+\-]*$")


def _valid_forms() -> str:
    return "; ".join(VALID_FORMS)


def parse_model_id(model_id: str) -> tuple[str, str]:
    """``(provider, model)`` of an id; the model part may itself hold colons (``qwen2.5vl:7b``)."""
    text = (model_id or "").strip()
    if not text:
        raise ConfigError(f"empty model id; valid forms: {_valid_forms()}")
    provider, sep, rest = text.partition(":")
    provider = provider.lower()
    if provider == "expert":
        return provider, rest
    if not sep or not rest.strip():
        raise ConfigError(
            f"malformed model id {model_id!r}: expected provider:model; valid forms: {_valid_forms()}"
        )
    if provider == "replay":
        return provider, rest
    if provider not in ("openai", "anthropic"):
        raise ConfigError(
            f"unknown model provider {provider!r} in {model_id!r}; valid forms: {_valid_forms()}"
        )
    if not _MODEL_NAME.match(rest):
        raise ConfigError(
            f"malformed model name {rest!r} in {model_id!r}; valid forms: {_valid_forms()}"
        )
    return provider, rest


def choose_openai_api(base_url: str | None, api: str = "auto") -> str:
    """ "responses" for OpenAI's own endpoint, "chat" for any other base URL, unless ``api`` says."""
    if api not in ("auto", "responses", "chat"):
        raise ConfigError(f"api must be auto, responses or chat, not {api!r}")
    if api != "auto":
        return api
    return "responses" if _host(base_url) in ("", "api.openai.com") else "chat"


def _construct(
    cls: type[ModelAdapter], provider: Any, model: str, options: dict[str, Any]
) -> ModelAdapter:
    accepted: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            accepted |= {
                p
                for p in inspect.signature(init).parameters
                if p not in ("self", "provider", "model", "common")
            }
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(
            f"{cls.api} model options {unknown} are not known; valid options: "
            f"{', '.join(sorted(accepted))}"
        )
    return cls(provider, model, **options)


def _lazy(module: str, attr: str, what: str) -> Any:
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"{what} is not available in this installation ({module}:{attr} could not be "
            f"imported: {exc})"
        ) from None


def resolve_model(
    model_id: str,
    *,
    base_url: str | None = None,
    api: ApiChoice = "auto",
    timeout_s: float = 120.0,
    max_retries: int | None = None,
    retry: RetryPolicy | None = None,
    **options: Any,
) -> Model:
    """A ``Model`` for ``model_id`` (see the module doc for the valid forms).

    Args:
        model_id: ``provider:model``, ``expert`` or ``replay:PATH``.
        base_url: an OpenAI-compatible (or Anthropic-compatible) server, e.g.
            ``http://localhost:8000/v1``. Default: the provider's own (or ``OPENAI_BASE_URL`` /
            ``ANTHROPIC_BASE_URL``).
        api: for ``openai:``, "responses", "chat" or "auto" (see ``choose_openai_api``).
        timeout_s: per-request timeout of one attempt.
        max_retries: retries after the first attempt (default ``RetryPolicy().max_retries``).
        retry: the full retry policy; ``max_retries`` overrides its count.
        **options: adapter options (``tools``, ``images``, ``max_output_tokens``, ``temperature``,
            ``extra_body``; ``reasoning_effort``, ``reasoning_summary``, ``store``,
            ``tool_result_images`` for Responses; ``thinking_budget``, ``prompt_cache`` for
            Anthropic). Unknown options raise ``ConfigError`` listing the valid ones.
    """
    provider_name, model = parse_model_id(model_id)
    if provider_name == "expert":
        cls = _lazy("slidescout.agents.models.expert", "ExpertModel", "the expert planner")
        if model:
            options = {**options, "variant": model}
        return cls(**options)
    if provider_name == "replay":
        cls = _lazy("slidescout.agents.models.replay", "ReplayModel", "replay")
        return cls(model, **options)
    policy = retry or RetryPolicy()
    if max_retries is not None:
        if max_retries < 0:
            raise ConfigError("max_retries must be 0 or more")
        policy = RetryPolicy(**{**policy.__dict__, "max_retries": int(max_retries)})
    if timeout_s is None or timeout_s <= 0:
        raise ConfigError("timeout_s must be positive")
    options = {**options, "retry": policy}
    if provider_name == "openai":
        provider = OpenAIProvider.from_env(base_url, timeout_s=timeout_s)
        chosen = choose_openai_api(
            None if provider.base_url == OpenAIProvider.default_url else provider.base_url, api
        )
        if chosen == "responses":
            return _construct(OpenAIResponsesModel, provider, model, options)

        return _construct(OpenAIChatModel, provider, model, options)
    if api not in ("auto",):
        raise ConfigError(f"api={api!r} applies to openai: models only")

    anthropic = AnthropicProvider.from_env(base_url, timeout_s=timeout_s)
    return _construct(AnthropicModel, anthropic, model, options)
