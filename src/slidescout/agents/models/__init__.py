"""Model adapters: OpenAI Responses, OpenAI Chat Completions (any compatible server), Anthropic
Messages; profiles (what a route can carry) and the one merge of request settings; the
JSON-action fallback; retries; pricing; the provider registry. ``resolve_model(id)`` is the
entry point.

The provider SDKs are imported only when a client is first used.
"""

from slidescout.agents.models.base import AdapterOptions, Model, ModelAdapter, TokenCounts
from slidescout.agents.models.builtin_providers import choose_openai_api
from slidescout.agents.models.json_actions import (
    parse_json_action,
    render_tools_as_text,
    to_text_only,
)
from slidescout.agents.models.pricing import (
    Price,
    PriceTable,
    estimate_cost,
    load_price_table,
    price_table,
)
from slidescout.agents.models.profile import ModelProfile, ResolvedSettings, resolve_settings
from slidescout.agents.models.providers import AnthropicProvider, OpenAIProvider, Provider
from slidescout.agents.models.registry import (
    PROVIDERS,
    ProviderSpec,
    Route,
    parse_model_id,
    resolve_model,
    route_profile,
)
from slidescout.agents.models.retry import Decision, RetryPolicy, call_with_retries

__all__ = [
    "PROVIDERS",
    "AdapterOptions",
    "AnthropicProvider",
    "Decision",
    "Model",
    "ModelAdapter",
    "ModelProfile",
    "OpenAIProvider",
    "Price",
    "PriceTable",
    "Provider",
    "ProviderSpec",
    "ResolvedSettings",
    "RetryPolicy",
    "Route",
    "TokenCounts",
    "call_with_retries",
    "choose_openai_api",
    "estimate_cost",
    "load_price_table",
    "parse_json_action",
    "parse_model_id",
    "price_table",
    "render_tools_as_text",
    "resolve_model",
    "resolve_settings",
    "route_profile",
    "to_text_only",
]
