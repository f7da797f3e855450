"""Model ids → model objects: ``resolve_model("openai:gpt-5")``, through the provider registry.

A model id is ``provider:model``. The provider is an entry of the ``slidescout.providers``
registry (:data:`PROVIDERS`): the built-ins ``openai`` (OpenAI or any OpenAI-compatible server
through ``base_url``; Responses for OpenAI's own endpoint, Chat Completions for any other base
URL, unless ``api`` says), ``anthropic``, ``expert`` (the offline planner) and ``replay``
(``replay:TRACE``), and any plugin's. A provider entry is a :class:`ProviderSpec`: how its ids
are written, the profile of a model on a route (without a key or a request), and how to build
the model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import ValidationError

from slidescout.agents.models.base import ADAPTER_OPTIONS, AdapterOptions, Model
from slidescout.agents.models.profile import ModelProfile
from slidescout.agents.models.retry import RetryPolicy
from slidescout.core.model_settings import SETTING_NAMES, ModelSettings
from slidescout.core.registry import Registry
from slidescout.errors import ConfigError

__all__ = [
    "PROVIDERS",
    "ApiChoice",
    "ProviderSpec",
    "Route",
    "api_choice",
    "parse_model_id",
    "resolve_model",
    "route_profile",
    "split_options",
    "valid_forms",
]

ApiChoice = Literal["auto", "responses", "chat"]
_API_CHOICES: tuple[ApiChoice, ...] = ("auto", "responses", "chat")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+\-]*$")


@dataclass(frozen=True)
class Route:
    """Where and how a model is reached: everything a provider needs to build it."""

    base_url: str | None = None
    api: ApiChoice = "auto"
    timeout_s: float = 120.0
    options: AdapterOptions = field(default_factory=AdapterOptions)
    settings: ModelSettings = field(default_factory=ModelSettings)  # the model's own defaults


@runtime_checkable
class ProviderSpec(Protocol):
    """An entry of the ``slidescout.providers`` registry (a plugin's entry point holds one)."""

    @property
    def forms(self) -> tuple[str, ...]:
        """How its model ids are written, for help and errors: ``"openai:MODEL (e.g. ...)"``."""
        ...

    @property
    def model_part(self) -> Literal["name", "path", "optional"]:
        """What follows ``provider:``: a model name, a file path, or an optional variant."""
        ...

    @property
    def api_choices(self) -> tuple[ApiChoice, ...]:
        """The ``--api`` values it takes (``("auto",)``: none to choose)."""
        ...

    def profile(self, model: str, route: Route) -> ModelProfile:
        """What ``model`` on ``route`` can carry, known without a key or a request."""
        ...

    def build(self, model: str, route: Route) -> Model:
        """The model (its client is made on the first request)."""
        ...


def _as_provider(obj: object, name: str) -> ProviderSpec:
    if isinstance(obj, type):
        obj = obj()
    if not isinstance(obj, ProviderSpec):
        raise TypeError(
            f"{obj!r} is not a provider: expected an object with forms, model_part, "
            "api_choices, profile(model, route) and build(model, route)"
        )
    return obj


PROVIDERS: Registry[ProviderSpec] = Registry(
    "slidescout.providers",
    "model provider",
    {
        "openai": "slidescout.agents.models.builtin_providers:OPENAI",
        "anthropic": "slidescout.agents.models.builtin_providers:ANTHROPIC",
        "expert": "slidescout.agents.models.builtin_providers:EXPERT",
        "replay": "slidescout.agents.models.builtin_providers:REPLAY",
    },
    _as_provider,
)


def api_choice(value: str) -> ApiChoice:
    """``--api`` as given: auto, responses or chat (a one-line ``ConfigError`` otherwise)."""
    for choice in _API_CHOICES:
        if value == choice:
            return choice
    raise ConfigError(f"--api must be auto, responses or chat, not {value!r}")


def valid_forms() -> str:
    """Every provider's id forms, for messages (loads the providers: call it on an error)."""
    forms: list[str] = []
    for spec in PROVIDERS.load_all().values():
        forms.extend(spec.forms)
    return "; ".join(forms)


def parse_model_id(model_id: str) -> tuple[str, str]:
    """``(provider, model)`` of an id; the model part may itself hold colons (``qwen2.5vl:7b``)."""
    text = (model_id or "").strip()
    if not text:
        raise ConfigError(f"empty model id; valid forms: {valid_forms()}")
    provider, sep, rest = text.partition(":")
    provider = provider.lower()
    if provider not in PROVIDERS:
        if not sep:
            raise ConfigError(
                f"malformed model id {model_id!r}: expected provider:model; valid forms: "
                f"{valid_forms()}"
            )
        raise ConfigError(
            f"unknown model provider {provider!r} in {model_id!r}; valid forms: {valid_forms()}"
        )
    part = PROVIDERS.get(provider).model_part
    if part == "optional":
        return provider, rest
    if not sep or not rest.strip():
        raise ConfigError(
            f"malformed model id {model_id!r}: expected provider:model; valid forms: {valid_forms()}"
        )
    if part == "name" and not _MODEL_NAME.match(rest):
        raise ConfigError(
            f"malformed model name {rest!r} in {model_id!r}; valid forms: {valid_forms()}"
        )
    return provider, rest


def split_options(options: dict[str, Any]) -> tuple[AdapterOptions, ModelSettings]:
    """Model options as given (``tools``, ``reasoning_effort``...): how the adapter is built, and
    the model's own default settings. An unknown option or a bad value is one ``ConfigError``."""
    unknown = sorted(set(options) - set(ADAPTER_OPTIONS) - set(SETTING_NAMES))
    if unknown:
        valid = ", ".join(sorted({*ADAPTER_OPTIONS, *SETTING_NAMES}))
        raise ConfigError(f"model options {unknown} are not known; valid options: {valid}")
    try:
        settings = ModelSettings(**{k: v for k, v in options.items() if k in SETTING_NAMES})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(
            f"model option {'.'.join(str(x) for x in err['loc'])}: {err['msg']}"
        ) from None
    adapter = AdapterOptions(**{k: v for k, v in options.items() if k in ADAPTER_OPTIONS})
    return adapter, settings


def _route(
    base_url: str | None,
    api: ApiChoice,
    timeout_s: float,
    max_retries: int | None,
    retry: RetryPolicy | None,
    options: dict[str, Any],
) -> Route:
    if api not in ("auto", "responses", "chat"):
        raise ConfigError(f"api must be auto, responses or chat, not {api!r}")
    policy = retry or RetryPolicy()
    if max_retries is not None:
        if max_retries < 0:
            raise ConfigError("max_retries must be 0 or more")
        policy = RetryPolicy(**{**policy.__dict__, "max_retries": int(max_retries)})
    if timeout_s is None or not timeout_s > 0:
        raise ConfigError("timeout_s must be positive")
    adapter, settings = split_options({"retry": policy, **options})
    return Route(
        base_url=base_url, api=api, timeout_s=float(timeout_s), options=adapter, settings=settings
    )


def route_profile(
    model_id: str,
    *,
    base_url: str | None = None,
    api: ApiChoice = "auto",
    **options: Any,
) -> ModelProfile:
    """The profile of ``model_id`` on a route, known before any key is read or request sent."""
    provider, model = parse_model_id(model_id)
    spec = PROVIDERS.get(provider)
    _check_api(spec, provider, api)
    return spec.profile(model, _route(base_url, api, 120.0, None, None, options))


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
    """A ``Model`` for ``model_id`` (see the module doc for the providers).

    Args:
        model_id: ``provider:model``, ``expert`` or ``replay:PATH``.
        base_url: an OpenAI-compatible (or Anthropic-compatible) server, e.g.
            ``http://localhost:8000/v1``. Default: the provider's own (or ``OPENAI_BASE_URL`` /
            ``ANTHROPIC_BASE_URL``).
        api: for ``openai:``, "responses", "chat" or "auto" (see ``choose_openai_api``).
        timeout_s: per-request timeout of one attempt.
        max_retries: retries after the first attempt (default ``RetryPolicy().max_retries``).
        retry: the full retry policy; ``max_retries`` overrides its count.
        **options: how the adapter is built (``tools``, ``images``, ``extra_body``, ``price``;
            ``reasoning``, ``store`` for Responses) and the model's own default settings (any
            ``ModelSettings`` field: ``max_output_tokens``, ``reasoning_effort``...). Unknown
            options raise ``ConfigError`` listing the valid ones.
    """
    provider, model = parse_model_id(model_id)
    spec = PROVIDERS.get(provider)
    _check_api(spec, provider, api)
    return spec.build(model, _route(base_url, api, timeout_s, max_retries, retry, options))


def _check_api(spec: ProviderSpec, provider: str, api: str) -> None:
    if api not in spec.api_choices:
        choices = [a for a in spec.api_choices if a != "auto"]
        raise ConfigError(
            f"api={api!r} does not apply to {provider}: models"
            + (f" (it takes {', '.join(choices)})" if choices else "; drop --api")
        )
