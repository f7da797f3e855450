"""A tool's schema from its signature: docstrings (``docstring_parser``), type hints to a pydantic
model and JSON schema, and readable validation errors."""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_args, get_origin

import docstring_parser
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.fields import FieldInfo

from slidescout.errors import ConfigError
from slidescout.tools.context import ToolContext

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_WIRE_MAX = 64  # OpenAI and Anthropic function names: ^[a-zA-Z0-9_-]{1,64}$


# ---------------------------------------------------------------------------------------------
# docstrings
# ---------------------------------------------------------------------------------------------
def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """``(description, {param: description})`` of a google, reST (``:param x:``) or numpy docstring.

    The description is the summary and body (``docstring_parser`` does the parsing); parameter
    texts are joined into one line each.
    """
    if not doc:
        return "", {}
    parsed = docstring_parser.parse(inspect.cleandoc(doc))
    body = "\n\n".join(p for p in (parsed.short_description, parsed.long_description) if p)
    params = {
        p.arg_name.lstrip("*"): " ".join((p.description or "").split()) for p in parsed.params
    }
    return _reflow(body.splitlines()), params


_LIST_ITEM_RE = re.compile(r"^\s*([-*•]|\d+[.)])\s")


def _reflow(lines: list[str]) -> str:
    """Join hard-wrapped lines into paragraphs; keep blank lines, list items and indented blocks."""
    out: list[str] = []
    for line in lines:
        if (
            out
            and out[-1]
            and line.strip()
            and not _LIST_ITEM_RE.match(line)
            and not line.startswith(" ")
        ):
            out[-1] = f"{out[-1]} {line.strip()}"
        else:
            out.append(line.rstrip())
    return "\n".join(out).strip()


def summary_line(description: str) -> str:
    """The first sentence-ish line of a description (for tables)."""
    first = " ".join(description.strip().split("\n\n")[0].split())
    m = re.match(r"^(.+?[.!?])\s+(?=[A-Z])", first)
    return m.group(1) if m else first


# ---------------------------------------------------------------------------------------------
# signatures -> pydantic model -> JSON schema
# ---------------------------------------------------------------------------------------------
def _is_context(annotation: Any) -> bool:
    if annotation is ToolContext or (
        isinstance(annotation, type) and issubclass(annotation, ToolContext)
    ):
        return True
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _is_context(get_args(annotation)[0])
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        args = [a for a in get_args(annotation) if a is not type(None)]
        return len(args) == 1 and _is_context(args[0])
    return annotation == "ToolContext"


def _has_description(annotation: Any) -> bool:
    if get_origin(annotation) is typing.Annotated:
        return any(isinstance(m, FieldInfo) and m.description for m in get_args(annotation)[1:])
    return False


def _strip_titles(node: Any) -> Any:
    if isinstance(node, dict):
        if isinstance(node.get("title"), str):
            node.pop("title")
        for key, value in node.items():
            if key in ("properties", "$defs"):
                for sub in value.values():
                    _strip_titles(sub)
            else:
                _strip_titles(value)
    elif isinstance(node, list):
        for item in node:
            _strip_titles(item)
    return node


@dataclass(frozen=True)
class _Signature:
    model: type[BaseModel]
    fields: dict[str, str]  # internal field name -> parameter name
    context_param: str | None
    schema: dict[str, Any]


def _analyse(
    fn: Callable[..., Any],
    tool_name: str,
    param_docs: dict[str, str],
    localns: dict[str, Any] | None = None,
) -> _Signature:
    target = inspect.unwrap(getattr(fn, "__func__", fn))
    try:
        hints = typing.get_type_hints(
            target, localns={**(localns or {}), "ToolContext": ToolContext}, include_extras=True
        )
    except Exception as exc:  # NameError for an annotation that names something not imported
        raise ConfigError(
            f"tool {tool_name!r}: cannot resolve its type hints ({exc}); import every "
            "type used in the signature at module level"
        ) from None
    sig = inspect.signature(fn)
    fields: dict[str, Any] = {}
    names: dict[str, str] = {}
    context_param = None
    for i, (pname, p) in enumerate(sig.parameters.items()):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            raise ConfigError(
                f"tool {tool_name!r}: parameter {pname!r} must be an ordinary named "
                "parameter (no *args, **kwargs or positional-only)"
            )
        annotation = hints.get(pname, Any)
        if _is_context(annotation):
            context_param = pname
            continue
        default = ... if p.default is inspect.Parameter.empty else p.default
        doc = param_docs.get(pname)
        kwargs: dict[str, Any] = {"alias": pname}
        if doc and not _has_description(annotation):
            kwargs["description"] = doc
        internal = f"p{i}"
        fields[internal] = (annotation, Field(default, **kwargs))
        names[internal] = pname
    try:
        model = create_model(
            f"{tool_name.replace('/', '__')}_arguments",
            __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=False),
            **fields,
        )
        schema = _strip_titles(model.model_json_schema(by_alias=True))
    except Exception as exc:
        raise ConfigError(
            f"tool {tool_name!r}: its parameters cannot be turned into a JSON schema "
            f"({type(exc).__name__}: {exc}); use JSON types (int, float, str, bool, "
            "Literal, lists, pydantic models)"
        ) from None
    schema.setdefault("properties", {})
    schema.setdefault("required", [])
    return _Signature(model, names, context_param, schema)


def _signature_text(name: str, schema: dict[str, Any]) -> str:
    def typ(s: dict[str, Any]) -> str:
        if "enum" in s:
            return "|".join(json.dumps(v) for v in s["enum"])
        if "anyOf" in s:
            return " | ".join(typ(a) for a in s["anyOf"])
        if s.get("type") == "array":
            return f"list[{typ(s.get('items', {}))}]"
        return str(s.get("type", "any"))

    required = set(schema.get("required", []))
    args = []
    for pname, s in schema.get("properties", {}).items():
        part = f"{pname}: {typ(s)}"
        if pname not in required:
            part += f" = {json.dumps(s.get('default'))}"
        args.append(part)
    return f"{name}({', '.join(args)})"


def _format_validation_error(name: str, exc: ValidationError, schema: dict[str, Any]) -> str:
    problems = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
        kind = err.get("type", "")
        if kind == "missing":
            problems.append(f"missing required argument '{loc}'")
        elif kind == "extra_forbidden":
            problems.append(f"unexpected argument '{loc}'")
        else:
            got = json.dumps(err.get("input"), default=str)
            if len(got) > 60:
                got = got[:57] + "..."
            problems.append(f"'{loc}': {err.get('msg', 'invalid')} (got {got})")
    return (
        f"invalid arguments for {name}: {'; '.join(problems)}. "
        f"Expected {_signature_text(name, schema)}."
    )


def wire_name(name: str) -> str:
    """The function name a model is offered: ``pkg/name`` becomes ``pkg__name`` (max 64 chars)."""
    wire = re.sub(r"[^A-Za-z0-9_-]", "_", name.replace("/", "__"))
    if len(wire) > _WIRE_MAX:
        wire = wire[: _WIRE_MAX - 9] + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return wire
