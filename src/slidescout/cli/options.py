"""Options shared by commands, derived from the config types so a setting is spelled once.

``agent_options`` adds one flag per :class:`~slidescout.agents.config.AgentConfig` field (same
name and help in ``ask``, ``demo`` and every ``eval`` command); the command receives them as one
``AgentConfig`` in its ``agent`` parameter.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from slidescout.agents.config import AgentConfig
from slidescout.agents.models.providers import check_base_url
from slidescout.errors import ConfigError
from slidescout.eval.config import EvalConfig

M = TypeVar("M", bound=BaseModel)

__all__ = [
    "AGENT_FLAGS",
    "EVAL_FLAGS",
    "agent_options",
    "eval_options",
    "parse_keep_images",
    "with_options",
]

# AgentConfig field -> (flag names, CLI annotation); the help text is the field's description
AGENT_FLAGS: dict[str, tuple[tuple[str, ...], Any]] = {
    "model": (("--model", "-m"), str | None),
    "preset": (("--preset", "-p"), str | None),
    "base_url": (("--base-url",), str | None),
    "api": (("--api",), str | None),
    "tools": (("--tools",), str | None),
    "max_steps": (("--max-steps",), int | None),
    "max_side": (("--max-side",), int | None),
    "keep_images": (("--keep-images",), str | None),
    "views_per_turn": (("--views-per-turn",), int | None),
    "guides": (("--guides/--no-guides",), bool | None),
    "jpeg_quality": (("--jpeg-quality",), int | None),
    "seed": (("--seed", "--model-seed"), int | None),
    "temperature": (("--temperature",), float | None),
    "max_errors": (("--max-errors",), int | None),
    "sample_seconds": (("--sample-timeout",), float | None),
    "device": (("--device",), str | None),
    "timeout": (("--timeout",), float | None),
    "retries": (("--retries",), int | None),
    "price_in": (("--price-in",), float | None),
    "price_out": (("--price-out",), float | None),
    "pricing": (("--pricing",), str | None),
    "reasoning_effort": (("--reasoning-effort",), str | None),
    "reasoning_summary": (("--reasoning-summary",), str | None),
    "thinking_budget": (("--thinking-budget",), int | None),
    "max_output_tokens": (("--max-output-tokens",), int | None),
    "prompt_cache": (("--prompt-cache/--no-prompt-cache",), bool | None),
    "system_prompt": (("--system-prompt", "--prompt-file"), str | None),
}


# EvalConfig field -> (flag names, CLI annotation); the help text is the field's description
EVAL_FLAGS: dict[str, tuple[tuple[str, ...], Any]] = {
    "repeats": (("--repeats", "-r"), int | None),
    "concurrency": (("--concurrency", "-c"), int | None),
    "max_connections": (("--max-connections",), int | None),
    "budget_usd": (("--budget-usd",), float | None),
    "budget_tokens": (("--budget-tokens",), int | None),
    "budget_seconds": (("--budget-time",), float | None),
    "retry_errors": (("--retry-errors",), bool),
    "executor": (("--executor",), str | None),
    "ray_address": (("--address",), str | None),
    "max_mpp": (("--grounding-mpp",), float | None),
    "stop_after_failures": (("--stop-after-failures",), int | None),
}


def parse_keep_images(value: str | None) -> int | str | None:
    """``--keep-images``: a number, or ``all``."""
    if value is None or value == "all":
        return value
    try:
        n = int(value)
    except ValueError:
        raise ConfigError(f"--keep-images takes a number or 'all', not {value!r}") from None
    if n < 0:
        raise ConfigError("--keep-images must be 0 or more (or 'all')")
    return n


def _params(
    model: type[BaseModel],
    flags_by_field: dict[str, tuple[tuple[str, ...], Any]],
    defaults: dict[str, Any],
) -> list[tuple[str, Any, Any]]:
    """One typer option per field: its flags, and its description as the help."""
    params = []
    for name, (flags, annotation) in flags_by_field.items():
        field = model.model_fields[name]
        help_text = (field.description or "").rstrip(".") + "."
        default = defaults.get(name, field.default)
        if default not in (None, {}, False):
            help_text += f" [default: {default}]"
        first = False if annotation is bool else None
        params.append(
            (name, annotation, typer.Option(first, *flags, help=help_text, show_default=False))
        )
    return params


# the device names ``tools.experts.loading.resolve_device`` accepts (checked there against torch)
_DEVICE = re.compile(r"auto|best|cpu|mps|cuda(:\d+)?|xpu(:\d+)?", re.IGNORECASE)


def _flag(name: str, flags_by_field: dict[str, tuple[tuple[str, ...], Any]]) -> str:
    return flags_by_field.get(name, ((f"--{name.replace('_', '-')}",), None))[0][0].split("/")[0]


def _check_given(
    values: dict[str, Any], flags_by_field: dict[str, tuple[tuple[str, ...], Any]]
) -> None:
    """What the types let through but no command can use: NaN and infinite numbers, an empty or
    malformed ``--base-url``, a device no backend has."""
    for name, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{_flag(name, flags_by_field)}: {value} is not a finite number")
    base_url = values.get("base_url")
    if base_url is not None:
        if not str(base_url).strip():
            raise ConfigError(
                "--base-url is empty; give a server's URL (e.g. http://localhost:8000/v1), or "
                "leave the flag out for the provider's own endpoint"
            )
        check_base_url(str(base_url))
    device = values.get("device")
    if device is not None and not _DEVICE.fullmatch(str(device).strip()):
        raise ConfigError(
            f"--device {device!r}: unknown device; use auto, cpu, cuda, cuda:N or mps"
        )


def _validated(
    model: type[M], values: dict[str, Any], flags_by_field: dict[str, tuple[tuple[str, ...], Any]]
) -> M:
    _check_given(values, flags_by_field)
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else ""
        raise ConfigError(f"{_flag(name, flags_by_field)}: {err['msg']}") from None


def with_options(
    params: list[tuple[str, Any, Any]], collect: Callable[[dict[str, Any]], Any], as_name: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add ``params`` (name, annotation, typer.Option) to a command; ``collect`` turns their values
    into the one object the command receives as ``as_name``."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn)
        own = [p for p in sig.parameters.values() if p.name != as_name]
        extra = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=ann)
            for name, ann, opt in params
        ]

        @functools.wraps(fn)
        def wrapper(**kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name, _, _ in params}
            return fn(**kwargs, **{as_name: collect(values)})

        wrapper.__signature__ = sig.replace(parameters=own + extra)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {
            **{p.name: p.annotation for p in own},
            **{n: a for n, a, _ in params},
        }
        return wrapper

    return decorate


def agent_options(**defaults: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add every agent flag to a command, which receives an ``agent: AgentConfig``.

    ``defaults`` override AgentConfig's defaults for this command (e.g. ``demo``'s model)."""

    def collect(values: dict[str, Any]) -> AgentConfig:
        given = {k: v for k, v in values.items() if v is not None}
        if "keep_images" in given:
            given["keep_images"] = parse_keep_images(given["keep_images"])
        return _validated(AgentConfig, {**defaults, **given}, AGENT_FLAGS)

    return with_options(_params(AgentConfig, AGENT_FLAGS, defaults), collect, "agent")


def eval_options() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the run flags of an evaluation, which the command receives as ``settings: EvalConfig``."""

    def collect(values: dict[str, Any]) -> EvalConfig:
        return _validated(
            EvalConfig, {k: v for k, v in values.items() if v is not None}, EVAL_FLAGS
        )

    return with_options(_params(EvalConfig, EVAL_FLAGS, {}), collect, "settings")
