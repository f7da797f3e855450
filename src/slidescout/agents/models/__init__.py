"""Model adapters: OpenAI Responses, OpenAI Chat Completions (any compatible server), Anthropic
Messages; the JSON-action fallback; retries; pricing. ``resolve_model(id)`` is the entry point.

The provider SDKs are imported only when a client is first used.
"""

from slidescout.agents.models.base import Model, ModelAdapter, TokenCounts
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
from slidescout.agents.models.providers import AnthropicProvider, OpenAIProvider, Provider
from slidescout.agents.models.registry import choose_openai_api, parse_model_id, resolve_model
from slidescout.agents.models.retry import RetryPolicy, call_with_retries, should_retry

__all__ = [
    "AnthropicProvider",
    "Model",
    "ModelAdapter",
    "OpenAIProvider",
    "Price",
    "PriceTable",
    "Provider",
    "RetryPolicy",
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
    "should_retry",
    "to_text_only",
]
