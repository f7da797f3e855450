"""Tokens and cost by each provider's published rules, in one place.

Every rule reads its numbers from ``slidescout/data/token_rules.toml``, which names the page it
comes from (``rule_source``); prices come from ``pricing.toml`` (``agents.models.pricing``).

- **Claude images** (:func:`claude_image_tokens`): ``w·h/750`` after Claude's own resize (long
  edge at most 1568 px, at most about 1600 tokens).
- **OpenAI images** (:func:`openai_image_tokens`), per model family: the tile rule (fit 2048 px,
  short side to 768 px, 512 px tiles: ``base + tile × n``; ``detail="low"``: ``base``) for the
  gpt-4o-class models, gpt-5 and the o-series; the patch rule (32 px patches, at most 1536,
  times the model's multiplier) for gpt-5-mini/nano, gpt-4.1-mini/nano and o4-mini.
- **Prompt caches**: Anthropic's breakpoints (5-minute writes at 1.25× the input price, reads at
  0.1×, a model's minimum prefix); OpenAI's automatic prefix cache (prompts of 1024 tokens or
  more, cached in 128-token steps, at the model's cached price).
- **Reasoning and thinking** tokens are part of the output and billed at the output price.

:func:`bill` turns token counts into dollars with the cache reads and writes split out, and
what the same tokens would cost with no cache. :func:`estimate_request` counts a request's
input tokens by these rules (text at about 4 characters a token); the adapters keep it beside
the counts the provider reports, which win.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from slidescout.agents.models.pricing import SNAPSHOT, Price
from slidescout.agents.models.wire import WireCache
from slidescout.core.messages import (
    AssistantMessage,
    ImagePart,
    Message,
    ModelRequest,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
)

try:  # Python 3.11+
    import tomllib as _toml
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as _toml  # type: ignore[no-redef]

__all__ = [
    "Bill",
    "anthropic_min_cache_tokens",
    "bill",
    "char_tokens",
    "claude_image_size",
    "claude_image_tokens",
    "context_window",
    "estimate_request",
    "image_tokens",
    "message_tokens",
    "openai_cached_tokens",
    "openai_image_tokens",
    "rule_source",
    "rules",
    "text_tokens",
]

Detail = Literal["auto", "low", "high"] | None


@functools.lru_cache(maxsize=1)
def rules() -> dict[str, Any]:
    """The rules as published (``data/token_rules.toml``)."""
    text = resources.files("slidescout").joinpath("data/token_rules.toml").read_text("utf-8")
    return _toml.loads(text)


def rule_source(*path: str) -> str:
    """The page a rule comes from: ``rule_source("anthropic", "image")``."""
    node: Any = rules()
    for key in path:
        node = node[key]
    return str(node["source"])


def _by_model(table: dict[str, Any], model: str) -> Any:
    """``table[model]``, also for a dated snapshot (``gpt-5-2025-08-07``) or ``-latest``; the
    longest family name that prefixes ``model`` otherwise (``gpt-4o-2024-11-20`` -> ``gpt-4o``)."""
    name = model.lower()
    if name in table:
        return table[name]
    m = SNAPSHOT.match(name)
    if m and m.group("base") in table:
        return table[m.group("base")]
    family = max((k for k in table if name.startswith(k + "-")), key=len, default=None)
    return table[family] if family is not None else None


# ---- text ---------------------------------------------------------------------------------


def char_tokens(n_chars: int) -> int:
    """About ``n_chars / 4`` tokens (the providers' rule of thumb; their tokenizers are not run)."""
    return math.ceil(n_chars / int(rules()["text"]["chars_per_token"])) if n_chars > 0 else 0


def text_tokens(text: str) -> int:
    """The tokens of ``text``, about one per 4 characters (:func:`char_tokens`)."""
    return char_tokens(len(text))


# ---- images -------------------------------------------------------------------------------


def claude_image_size(width: int, height: int) -> tuple[int, int]:
    """The size Claude sees: scaled down (aspect kept) until the long edge is at most 1568 px and
    the image at most about 1600 tokens; never up."""
    r = rules()["anthropic"]["image"]
    scale = min(
        1.0,
        r["max_long_edge"] / max(width, height),
        math.sqrt(r["max_tokens"] * r["pixels_per_token"] / (width * height)),
    )
    if scale >= 1.0:
        return width, height
    return max(1, int(width * scale)), max(1, int(height * scale))


def claude_image_tokens(width: int, height: int) -> int:
    """Claude's tokens for an image: ``w·h/750`` after its resize (rounded up)."""
    w, h = claude_image_size(width, height)
    return math.ceil(w * h / rules()["anthropic"]["image"]["pixels_per_token"])


def _tiles(width: int, height: int) -> int:
    """512 px tiles of an image after the tile rule's two scalings (fit 2048, short side 768)."""
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        s = 2048 / max(w, h)
        w, h = w * s, h * s
    if min(w, h) > 768:
        s = 768 / min(w, h)
        w, h = w * s, h * s
    return _ceil(w / 512) * _ceil(h / 512)


def _ceil(x: float) -> int:
    """``ceil`` that forgives float noise (33.0000001 patches are 33)."""
    return math.ceil(x - 1e-6)


def _patches(width: int, height: int) -> int:
    """32 px patches that cover an image, after scaling it down to at most 1536 patches."""
    n = _ceil(width / 32) * _ceil(height / 32)
    if n <= 1536:
        return n
    s = math.sqrt(32 * 32 * 1536 / (width * height))
    # scale further so the width (or height) is a whole number of patches, as the guide says
    s *= min(
        math.floor(width * s / 32) / (width * s / 32),
        math.floor(height * s / 32) / (height * s / 32),
    )
    return min(1536, _ceil(width * s / 32) * _ceil(height * s / 32))


def openai_image_tokens(model: str, width: int, height: int, detail: Detail = None) -> int:
    """OpenAI's tokens for an image, by the rule of the model's family (tiles or patches).

    ``detail`` "low" is the base tokens alone (tile rule only); "high", "auto" and unset are
    counted as "high" (the model chooses under "auto"; high is the upper bound)."""
    table = rules()["openai"]["image"]
    patch = _by_model(table["patches"], model)
    if patch is not None:
        return math.ceil(_patches(width, height) * float(patch["multiplier"]))
    tile = _by_model(table["tiles"], model) or table["tiles"][table["default_family"]]
    if detail == "low":
        return int(tile["base"])
    return int(tile["base"]) + int(tile["tile"]) * _tiles(width, height)


def image_tokens(provider: str, model: str, width: int, height: int, detail: Detail = None) -> int:
    """An image's input tokens for ``provider:model`` (Claude's rule for ``anthropic``, OpenAI's
    for everything else: OpenAI-compatible servers count their own way, unknown here)."""
    if provider == "anthropic":
        return claude_image_tokens(width, height)
    return openai_image_tokens(model, width, height, detail)


# ---- caches -------------------------------------------------------------------------------


def anthropic_min_cache_tokens(model: str) -> int:
    """The shortest prefix Claude caches for ``model`` (shorter ones are sent uncached)."""
    cache = rules()["anthropic"]["cache"]
    found = _by_model(cache["min_tokens"], model)
    return int(found if found is not None else cache["min_tokens_default"])


def openai_cached_tokens(shared_prefix_tokens: int) -> int:
    """Tokens OpenAI serves from its automatic cache for a prefix seen before: none under 1024,
    else the prefix rounded down to a multiple of 128."""
    c = rules()["openai"]["cache"]
    if shared_prefix_tokens < int(c["min_tokens"]):
        return 0
    return (shared_prefix_tokens // int(c["step"])) * int(c["step"])


def context_window(provider: str, model: str) -> int | None:
    """The model's context window in tokens, None when not known (a local server's model)."""
    found = _by_model(rules()["context_window"].get(provider, {}), model)
    return int(found) if found is not None else None


# ---- dollars ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bill:
    """What one call (or a sum of calls) costs, in USD, with the prompt cache's parts apart.

    ``usd`` = ``input_usd`` (uncached input) + ``cache_read_usd`` + ``cache_write_usd`` +
    ``output_usd``; ``uncached_usd`` is what the same tokens would cost with no cache at all."""

    usd: float
    input_usd: float
    cache_read_usd: float
    cache_write_usd: float
    output_usd: float
    uncached_usd: float


def _rates(provider: str, price: Price) -> tuple[float, float]:
    """(cache read, cache write) USD per 1M tokens: the price table's, else the provider's rule
    (Anthropic: 0.1× and 1.25× the input price; OpenAI: no discount known without a cached price)."""
    if provider == "anthropic":
        c = rules()["anthropic"]["cache"]
        read = price.input * float(c["read"]) if price.cached_input is None else price.cached_input
        write = (
            price.input * float(c["write_5m"]) if price.cache_write is None else price.cache_write
        )
        return read, write
    read = price.input if price.cached_input is None else price.cached_input
    return read, price.input if price.cache_write is None else price.cache_write


def bill(
    provider: str,
    price: Price,
    *,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> Bill:
    """The bill of one call. ``input_tokens`` counts every input token (cache reads and writes
    included); ``output_tokens`` includes reasoning and thinking tokens, billed as output."""
    read_rate, write_rate = _rates(provider, price)
    cached = max(0, min(cached_input_tokens, input_tokens))
    written = max(0, min(cache_write_tokens, input_tokens - cached))
    plain = input_tokens - cached - written
    m = 1_000_000
    parts = (
        plain * price.input / m,
        cached * read_rate / m,
        written * write_rate / m,
        output_tokens * price.output / m,
    )
    return Bill(
        usd=sum(parts),
        input_usd=parts[0],
        cache_read_usd=parts[1],
        cache_write_usd=parts[2],
        output_usd=parts[3],
        uncached_usd=(input_tokens * price.input + output_tokens * price.output) / m,
    )


# ---- a request's input, estimated -------------------------------------------------------------


def _image_part_tokens(provider: str, model: str, part: ImagePart) -> int:
    return image_tokens(provider, model, part.image.width, part.image.height, part.detail)


def estimate_request(provider: str, model: str, req: ModelRequest) -> int:
    """A request's input tokens by the provider's rules: every text (system, messages, tool
    results, tool calls and the tools offered) at about 4 characters a token, and every image by
    the provider's image rule. Reasoning and thinking passed back are not counted (the providers
    drop them from earlier turns). Each message is counted once while it lives (the history is
    append-only: a step counts only its new messages)."""
    n = sum(text_tokens(t.name + t.description + str(t.parameters)) for t in req.tools)
    key = (provider, model)
    for m in req.messages:
        n += _MESSAGE_TOKENS.get(m, key, message_tokens, provider, model, m)
    return n


_MESSAGE_TOKENS: WireCache[int] = WireCache()


def message_tokens(provider: str, model: str, m: Message) -> int:
    """One message's input tokens (:func:`estimate_request`)."""
    n = 0
    if isinstance(m, SystemMessage):
        n += text_tokens(m.content)
    elif isinstance(m, UserMessage):
        for p in m.parts:
            n += (
                text_tokens(p.text)
                if isinstance(p, TextPart)
                else _image_part_tokens(provider, model, p)
            )
    elif isinstance(m, AssistantMessage):
        n += text_tokens(m.text)
        n += sum(text_tokens(c.name + str(c.arguments)) for c in m.tool_calls)
    elif isinstance(m, ToolMessage):
        for r in m.results:
            for c in r.content:
                n += (
                    text_tokens(c.text)
                    if isinstance(c, TextPart)
                    else _image_part_tokens(provider, model, c)
                )
    return n
