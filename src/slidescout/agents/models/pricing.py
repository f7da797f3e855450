"""Token prices and call costs.

Built-in list prices live in ``slidescout/data/pricing.toml`` (USD per 1M tokens, dated there).
Users add or override entries with a TOML file of the same shape, found at ``$SLIDESCOUT_PRICING``
or ``$SLIDESCOUT_HOME/pricing.toml`` (default ``~/.slidescout/pricing.toml``)::

    [openai."qwen2.5-vl"]        # a model served from a custom --base-url
    input = 0.0
    output = 0.0

    [anthropic."claude-sonnet-4-5"]
    input = 3.0
    cached_input = 0.30
    cache_write = 3.75
    output = 15.0

An unknown model costs ``None`` (unknown), never 0. A model reached through a custom base URL
(vLLM, Ollama, a proxy) is priced only from the user's file: its name may collide with an
OpenAI model while its price does not.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from slidescout.core.home import slidescout_home
from slidescout.errors import ConfigError

try:  # Python 3.11+
    import tomllib as _toml
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as _toml  # type: ignore[no-redef]

_SNAPSHOT = re.compile(r"^(?P<base>.+?)-(?:\d{4}-\d{2}-\d{2}|\d{8}|latest)$")
SNAPSHOT = _SNAPSHOT  # a dated snapshot or "-latest" alias of a model name


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens. ``cached_input`` / ``cache_write`` default to ``input`` when unset."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    source: str = "builtin"

    def cost(
        self,
        *,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> float:
        """Cost of one call. ``input_tokens`` counts every input token, cached and cache-written ones
        included; ``output_tokens`` includes reasoning tokens."""
        cached = max(0, min(cached_input_tokens, input_tokens))
        written = max(0, min(cache_write_tokens, input_tokens - cached))
        plain = max(0, input_tokens - cached - written)
        usd = (
            plain * self.input
            + cached * (self.input if self.cached_input is None else self.cached_input)
            + written * (self.input if self.cache_write is None else self.cache_write)
            + output_tokens * self.output
        )
        return usd / 1_000_000


def _parse_entry(provider: str, model: str, raw: Any, source: str) -> Price:
    if not isinstance(raw, dict):
        raise ConfigError(f'pricing file {source}: [{provider}."{model}"] must be a table')
    try:
        return Price(
            input=float(raw["input"]),
            output=float(raw["output"]),
            cached_input=None if raw.get("cached_input") is None else float(raw["cached_input"]),
            cache_write=None if raw.get("cache_write") is None else float(raw["cache_write"]),
            source=source,
        )
    except KeyError as exc:
        raise ConfigError(
            f'pricing file {source}: [{provider}."{model}"] lacks {exc.args[0]!r}; '
            "give input and output in USD per 1M tokens"
        ) from None
    except (TypeError, ValueError):
        raise ConfigError(
            f'pricing file {source}: [{provider}."{model}"] has a non-numeric price'
        ) from None


def _parse_table(data: dict[str, Any], source: str) -> dict[str, dict[str, Price]]:
    table: dict[str, dict[str, Price]] = {}
    for provider, models in data.items():
        if provider == "meta" or not isinstance(models, dict):
            continue
        section = table.setdefault(provider.lower(), {})
        for model, raw in models.items():
            price = _parse_entry(provider, model, raw, source)
            section[model.lower()] = price
            for alias in raw.get("aliases") or []:
                section[str(alias).lower()] = price
    return table


class PriceTable:
    """Built-in prices plus the user's; the user's win. Look-ups accept dated snapshots."""

    def __init__(
        self,
        builtin: dict[str, dict[str, Price]],
        user: dict[str, dict[str, Price]] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.builtin = builtin
        self.user = user or {}
        self.meta = meta or {}

    @staticmethod
    def _find(section: dict[str, Price], model: str) -> Price | None:
        name = model.lower()
        if name in section:
            return section[name]
        m = _SNAPSHOT.match(name)
        if m and m.group("base") in section:
            return section[m.group("base")]
        return None

    def lookup(self, provider: str, model: str, *, custom_endpoint: bool = False) -> Price | None:
        """The price of ``provider:model``, or None when unknown.

        ``custom_endpoint``: the model is served from a user-supplied base URL; only the user's
        own entries apply.
        """
        provider = provider.lower()
        price = self._find(self.user.get(provider, {}), model)
        if price is not None or custom_endpoint:
            return price
        return self._find(self.builtin.get(provider, {}), model)

    def cost(
        self,
        provider: str,
        model: str,
        *,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        cache_write_tokens: int = 0,
        custom_endpoint: bool = False,
    ) -> float | None:
        price = self.lookup(provider, model, custom_endpoint=custom_endpoint)
        if price is None:
            return None
        return price.cost(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_input_tokens=cached_input_tokens,
            cache_write_tokens=cache_write_tokens,
        )


def user_pricing_path() -> Path | None:
    """The user's pricing file: ``$SLIDESCOUT_PRICING`` (must exist), else
    ``$SLIDESCOUT_HOME/pricing.toml`` (default ``~/.slidescout``) when present."""
    env = os.environ.get("SLIDESCOUT_PRICING")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ConfigError(f"SLIDESCOUT_PRICING points to {path}, which is not a file")
        return path
    path = slidescout_home() / "pricing.toml"
    return path if path.is_file() else None


def _read_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return _toml.loads(text)
    except _toml.TOMLDecodeError as exc:
        raise ConfigError(f"pricing file {source} is not valid TOML: {exc}") from None


def builtin_pricing_text() -> str:
    return resources.files("slidescout").joinpath("data/pricing.toml").read_text(encoding="utf-8")


def load_price_table(user_path: str | Path | None = None, *, use_env: bool = True) -> PriceTable:
    """Built-in prices, overridden by ``user_path`` (or the file found from the environment)."""
    builtin_data = _read_toml(builtin_pricing_text(), "slidescout/data/pricing.toml")
    builtin = _parse_table(builtin_data, "builtin")
    path = Path(user_path) if user_path is not None else (user_pricing_path() if use_env else None)
    user: dict[str, dict[str, Price]] = {}
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read pricing file {path}: {exc.strerror}") from None
        user = _parse_table(_read_toml(text, str(path)), str(path))
    return PriceTable(builtin, user, meta=dict(builtin_data.get("meta", {})))


_cache: dict[tuple[str, float], PriceTable] = {}


def price_table() -> PriceTable:
    """The table for the current environment, re-read when the user's file changes."""
    path = user_pricing_path()
    key = (str(path or ""), path.stat().st_mtime if path else 0.0)
    table = _cache.get(key)
    if table is None:
        table = load_price_table(path, use_env=False)
        _cache.clear()
        _cache[key] = table
    return table


@functools.lru_cache(maxsize=1)
def ceiling_price() -> Price:
    """The highest built-in input and output prices: what a call of unknown price is charged
    against a dollar budget, so an unknown price never means unbounded spending."""
    table = load_price_table(use_env=False)
    prices = [p for section in table.builtin.values() for p in section.values()]
    return Price(
        input=max(p.input for p in prices), output=max(p.output for p in prices), source="ceiling"
    )


def user_price(
    provider: str,
    model: str,
    *,
    price_in: float | None = None,
    price_out: float | None = None,
    pricing_file: str | Path | None = None,
    custom_endpoint: bool = False,
) -> Price | None:
    """The price a user gave: ``price_in``/``price_out`` (USD per 1M tokens, both needed), or the
    entry for ``provider:model`` in ``pricing_file`` (an error when it has none)."""
    if (price_in is None) != (price_out is None):
        raise ConfigError(
            "give both --price-in and --price-out (USD per 1M input and output tokens)"
        )
    if price_in is not None and price_out is not None:
        if price_in < 0 or price_out < 0:
            raise ConfigError("--price-in and --price-out must be 0 or more (USD per 1M tokens)")
        if pricing_file is not None:
            raise ConfigError("give either --price-in/--price-out or --pricing, not both")
        return Price(input=float(price_in), output=float(price_out), source="command line")
    if pricing_file is None:
        return None
    path = Path(pricing_file).expanduser()
    if not path.is_file():
        raise ConfigError(f"--pricing {path}: no such file")
    table = load_price_table(path)
    price = table._find(table.user.get(provider.lower(), {}), model)
    if price is None:
        raise ConfigError(
            f"--pricing {path} has no price for {provider}:{model}; add a table "
            f'[{provider}."{model}"] with input and output in USD per 1M tokens'
        )
    return price


def estimate_cost(
    provider: str,
    model: str,
    *,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int = 0,
    cache_write_tokens: int = 0,
    custom_endpoint: bool = False,
) -> float | None:
    """USD cost of one call, or None when the model has no known price."""
    return price_table().cost(
        provider,
        model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached_input_tokens,
        cache_write_tokens=cache_write_tokens,
        custom_endpoint=custom_endpoint,
    )
