"""Tools: typed Python callables offered to a model, with a JSON schema taken from their signature.

A tool is a function (sync or async) or a :class:`ToolClass` subclass. Its schema comes from the
type hints (built into a pydantic model), each parameter's description from the google-style
docstring's ``Args:`` section, and every call is validated before it runs: a bad call becomes a
:class:`~slidescout.errors.ToolError` whose message the model can act on. A parameter annotated
:class:`~slidescout.tools.context.ToolContext` is injected and stays out of the schema.

    @tool
    def slide_zoom(x0: int, y0: int, w: int, h: int, ctx: ToolContext) -> View:
        \"\"\"Crop a region of the slide.

        Args:
            x0: Left edge, level-0 pixels.
            ...
        \"\"\"

Tools return ``str``, a ``View``, a :class:`ToolResult`, ``(text, views)`` or ``(text, views, data)``;
:meth:`ToolResult.coerce` normalises all of them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import inspect
import io
import json
import re
import sys
import threading
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, ClassVar, Literal, get_args, get_origin

import anyio.to_thread
import docstring_parser
import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.fields import FieldInfo

from slidescout.core.imaging import encode_jpeg
from slidescout.core.messages import ImagePart, ImageRef, TextPart, ToolSpec
from slidescout.core.types import Box, View
from slidescout.errors import ConfigError, SlideError, ToolError
from slidescout.tools.context import ToolContext

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_WIRE_MAX = 64  # OpenAI and Anthropic function names: ^[a-zA-Z0-9_-]{1,64}$


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------
@dataclass
class ToolImage:
    """An image a tool returns: pixels (``image``) or encoded bytes (``data``), plus provenance.

    ``box`` is the level-0 region shown, ``level`` the pyramid level read and ``mpp`` the output
    microns per pixel; all None for images that are not slide regions (plots, overlays of an
    ImageSet member...). ``label`` names what it is ("zoom", "heatmap", "nuclei overlay").
    """

    image: np.ndarray | None = None
    data: bytes | None = None
    media_type: str = "image/jpeg"
    box: Box | None = None
    level: int | None = None
    mpp: float | None = None
    label: str = ""
    source: str | None = None
    detail: Literal["auto", "low", "high"] = "high"

    def __post_init__(self) -> None:
        if self.image is None and self.data is None:
            raise ValueError("a ToolImage needs pixels (image=) or encoded bytes (data=)")
        if self.image is not None:
            arr = np.asarray(self.image)
            if arr.ndim == 2:
                arr = np.stack([arr] * 3, axis=-1)
            if arr.ndim != 3 or arr.shape[2] not in (3, 4):
                raise ValueError(f"a ToolImage array must be (H, W, 3) RGB, got shape {arr.shape}")
            if arr.shape[2] == 4:
                arr = arr[:, :, :3]
            if arr.dtype != np.uint8:
                arr = np.clip(arr, 0, 255).astype(np.uint8)
            self.image = np.ascontiguousarray(arr)
        if self.box is not None and not isinstance(self.box, Box):
            self.box = Box.of(self.box)

    @classmethod
    def from_view(cls, view: View, label: str = "", source: str | None = None) -> ToolImage:
        return cls(image=view.image, box=view.box, level=view.level, mpp=view.mpp, label=label,
                   source=source)

    @classmethod
    def from_pil(cls, img: Image.Image, **kw: Any) -> ToolImage:
        return cls(image=np.asarray(img.convert("RGB")), **kw)

    def _size(self) -> tuple[int, int]:
        if self.image is not None:
            return int(self.image.shape[1]), int(self.image.shape[0])
        with Image.open(io.BytesIO(self.data or b"")) as im:
            return im.size

    @property
    def width(self) -> int:
        return self._size()[0]

    @property
    def height(self) -> int:
        return self._size()[1]

    def to_array(self) -> np.ndarray:
        if self.image is not None:
            return self.image
        with Image.open(io.BytesIO(self.data or b"")) as im:
            return np.asarray(im.convert("RGB"))

    def encode(self, quality: int = 90) -> tuple[bytes, str]:
        """``(bytes, media_type)``: the given bytes as they are, or the pixels as JPEG."""
        if self.data is not None:
            return self.data, self.media_type
        return encode_jpeg(self.to_array(), quality), "image/jpeg"

    def to_ref(self, quality: int = 90, source: str | None = None) -> tuple[ImageRef, bytes]:
        """The :class:`ImageRef` recorded in traces (sha256 of the encoded bytes) and the bytes."""
        data, media_type = self.encode(quality)
        w, h = self._size()
        ref = ImageRef(sha256=hashlib.sha256(data).hexdigest(), media_type=media_type, width=w,
                       height=h, box=self.box.as_tuple() if self.box else None, level=self.level,
                       mpp=self.mpp, source=self.source or source, label=self.label or None)
        return ref, data


@dataclass
class ToolResult:
    """What a tool call produced: text, zero or more images, and structured ``data`` (JSON-able)."""

    text: str = ""
    images: list[ToolImage] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_view(cls, view: View, text: str | None = None, *, label: str = "",
                  data: dict[str, Any] | None = None) -> ToolResult:
        return cls(text=view.describe() if text is None else text,
                   images=[ToolImage.from_view(view, label=label)], data=dict(data or {}))

    @classmethod
    def coerce(cls, value: Any) -> ToolResult:
        """Normalise whatever a tool returned.

        Accepts ``ToolResult``, ``str``, ``View``, ``ToolImage``, a PIL image or an RGB array,
        a ``dict`` or pydantic model (becomes ``data``, shown as JSON), a list of images, and the
        tuples ``(text, image_or_images)`` and ``(text, image_or_images, data)``. None gives an
        empty result. Anything else is a programming error (``TypeError``).
        """
        if isinstance(value, ToolResult):
            return value
        if value is None:
            return cls()
        if isinstance(value, str):
            return cls(text=value)
        if isinstance(value, (bool, int, float)):
            return cls(text=str(value))
        if isinstance(value, View):
            return cls.from_view(value)
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        if isinstance(value, dict):
            return cls(text=json.dumps(value, default=str), data=dict(value))
        if isinstance(value, tuple) and len(value) in (2, 3) and isinstance(value[0], str):
            images = _coerce_images(value[1])
            data = dict(value[2]) if len(value) == 3 and value[2] else {}
            return cls(text=value[0], images=images, data=data)
        try:
            images = _coerce_images(value)
        except TypeError:
            raise TypeError(f"a tool returned {type(value).__name__}, which is not a tool result; "
                            "return str, View, ToolResult, or (text, [views])") from None
        text = "\n".join(v.describe() for v in (value if isinstance(value, list) else [value])
                         if isinstance(v, View))
        return cls(text=text, images=images)

    def to_parts(self, quality: int = 90, source: str | None = None,
                 detail: Literal["auto", "low", "high"] | None = None) -> list[TextPart | ImagePart]:
        """Message parts for a ``ToolResultPart``: the text, then each image with its bytes in
        ``ImagePart.data`` (the run's blob store keeps them; ``ImagePart.image`` is the ref)."""
        parts: list[TextPart | ImagePart] = []
        if self.text:
            parts.append(TextPart(text=self.text))
        for img in self.images:
            ref, data = img.to_ref(quality, source)
            parts.append(ImagePart(image=ref, data=data, detail=detail or img.detail))
        return parts


def _coerce_images(value: Any) -> list[ToolImage]:
    if value is None:
        return []
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    out: list[ToolImage] = []
    for v in items:
        if isinstance(v, ToolImage):
            out.append(v)
        elif isinstance(v, View):
            out.append(ToolImage.from_view(v))
        elif isinstance(v, Image.Image):
            out.append(ToolImage.from_pil(v))
        elif isinstance(v, np.ndarray):
            out.append(ToolImage(image=v))
        else:
            raise TypeError(f"not an image: {type(v).__name__}")
    return out


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
    params = {p.arg_name.lstrip("*"): " ".join((p.description or "").split()) for p in parsed.params}
    return _reflow(body.splitlines()), params


_LIST_ITEM_RE = re.compile(r"^\s*([-*•]|\d+[.)])\s")


def _reflow(lines: list[str]) -> str:
    """Join hard-wrapped lines into paragraphs; keep blank lines, list items and indented blocks."""
    out: list[str] = []
    for line in lines:
        if out and out[-1] and line.strip() and not _LIST_ITEM_RE.match(line) and not line.startswith(" "):
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
    if annotation is ToolContext or (isinstance(annotation, type) and issubclass(annotation, ToolContext)):
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


def _analyse(fn: Callable[..., Any], tool_name: str, param_docs: dict[str, str],
             localns: dict[str, Any] | None = None) -> _Signature:
    target = inspect.unwrap(getattr(fn, "__func__", fn))
    try:
        hints = typing.get_type_hints(target, localns={**(localns or {}), "ToolContext": ToolContext},
                                      include_extras=True)
    except Exception as exc:  # NameError for an annotation that names something not imported
        raise ConfigError(f"tool {tool_name!r}: cannot resolve its type hints ({exc}); import every "
                          "type used in the signature at module level") from None
    sig = inspect.signature(fn)
    fields: dict[str, Any] = {}
    names: dict[str, str] = {}
    context_param = None
    for i, (pname, p) in enumerate(sig.parameters.items()):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            raise ConfigError(f"tool {tool_name!r}: parameter {pname!r} must be an ordinary named "
                              "parameter (no *args, **kwargs or positional-only)")
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
        model = create_model(f"{tool_name.replace('/', '__')}_arguments",
                             __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=False),
                             **fields)
        schema = _strip_titles(model.model_json_schema(by_alias=True))
    except Exception as exc:
        raise ConfigError(f"tool {tool_name!r}: its parameters cannot be turned into a JSON schema "
                          f"({type(exc).__name__}: {exc}); use JSON types (int, float, str, bool, "
                          "Literal, lists, pydantic models)") from None
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
    return (f"invalid arguments for {name}: {'; '.join(problems)}. "
            f"Expected {_signature_text(name, schema)}.")


def wire_name(name: str) -> str:
    """The function name a model is offered: ``pkg/name`` becomes ``pkg__name`` (max 64 chars)."""
    wire = re.sub(r"[^A-Za-z0-9_-]", "_", name.replace("/", "__"))
    if len(wire) > _WIRE_MAX:
        wire = wire[: _WIRE_MAX - 9] + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return wire


# ---------------------------------------------------------------------------------------------
# Tool
# ---------------------------------------------------------------------------------------------
@dataclass(eq=False)
class Tool:
    """A callable offered to models. Build one with :func:`tool` or from a :class:`ToolClass`.

    ``name`` is the registry name (``slide_zoom``, or ``package/name`` for plugins); ``spec.name``
    is the name the model sees (:func:`wire_name`). ``source`` is ``"builtin"`` or
    ``"<distribution> <version>"``.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    is_async: bool
    args_model: type[BaseModel]
    arg_names: dict[str, str]
    context_param: str | None = None
    source: str = "builtin"
    limiter: str | None = None
    setup_hook: Callable[[ToolContext], Any] | None = None  # awaited before each call (ToolClass)
    origin: Any = None  # the function / ToolClass instance this tool wraps

    @property
    def short_name(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    @property
    def namespace(self) -> str | None:
        return self.name.rsplit("/", 1)[0] if "/" in self.name else None

    @property
    def wire_name(self) -> str:
        return wire_name(self.name)

    @property
    def summary(self) -> str:
        return summary_line(self.description)

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.wire_name, description=self.description,
                        parameters=json.loads(json.dumps(self.parameters)))

    @property
    def signature(self) -> str:
        return _signature_text(self.name, self.parameters)

    def namespaced(self, namespace: str, source: str) -> Tool:
        """A copy named ``namespace/short_name`` (same function and setup state)."""
        return dataclasses.replace(self, name=f"{namespace}/{self.short_name}", source=source)

    def validate(self, arguments: Any) -> dict[str, Any]:
        """Validate a call's arguments; returns keyword arguments for the function."""
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise ToolError(f"arguments for {self.name} must be a JSON object, got "
                            f"{type(arguments).__name__}. Expected {self.signature}.")
        try:
            model = self.args_model.model_validate(arguments)
        except ValidationError as exc:
            raise ToolError(_format_validation_error(self.name, exc, self.parameters)) from None
        return {pname: getattr(model, internal) for internal, pname in self.arg_names.items()}

    async def invoke(self, arguments: dict[str, Any] | None, ctx: ToolContext | None = None) -> ToolResult:
        """Validate and run one call. Sync functions run in a worker thread.

        Raises ``ToolError`` for anything the model should see (bad arguments, a region outside the
        slide, a ``SlideError``); any other exception is the tool's bug and propagates.
        """
        ctx = ctx if ctx is not None else ToolContext()
        kwargs = self.validate(arguments)
        if self.context_param:
            kwargs[self.context_param] = ctx
        ctx.check_cancelled()
        limiter = ctx.limiters.get(self.limiter, ctx.limiter) if self.limiter else ctx.limiter
        try:
            if self.setup_hook is not None:
                await self.setup_hook(ctx)
            if self.is_async:
                value = await self.fn(**kwargs)
            else:
                value = await anyio.to_thread.run_sync(functools.partial(self.fn, **kwargs),
                                                       limiter=limiter)
        except SlideError as exc:
            raise ToolError(str(exc)) from exc
        return ToolResult.coerce(value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the wrapped function directly (no validation; handy in tests)."""
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Tool({self.name!r}, source={self.source!r})"

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_function(cls, fn: Callable[..., Any], *, name: str | None = None,
                      description: str | None = None, limiter: str | None = None,
                      localns: dict[str, Any] | None = None) -> Tool:
        """``localns``: extra names for resolving string annotations (e.g. the defining scope)."""
        tool_name: str = name or str(getattr(fn, "__name__", ""))
        _check_name(tool_name)
        doc_desc, param_docs = parse_docstring(inspect.getdoc(fn))
        sig = _analyse(fn, tool_name, param_docs, localns)
        return cls(name=tool_name, description=(description or doc_desc or tool_name).strip(),
                   parameters=sig.schema, fn=fn, is_async=inspect.iscoroutinefunction(fn),
                   args_model=sig.model, arg_names=sig.fields, context_param=sig.context_param,
                   limiter=limiter, origin=fn)

    @classmethod
    def from_class(cls, obj: type[ToolClass] | ToolClass, *, name: str | None = None,
                   description: str | None = None, localns: dict[str, Any] | None = None) -> Tool:
        instance = obj() if isinstance(obj, type) else obj
        klass = type(instance)
        method_name = "run" if klass.run is not ToolClass.run else "__call__"
        if method_name == "__call__" and not any(
                "__call__" in vars(c) for c in klass.__mro__ if c not in (ToolClass, object)):
            raise ConfigError(f"{klass.__name__}: a ToolClass defines its call as run(...) or __call__(...)")
        method = getattr(instance, method_name)
        name = name or klass.name or _snake(klass.__name__)
        _check_name(name)
        run_desc, param_docs = parse_docstring(inspect.getdoc(method))
        class_doc = klass.__doc__ if "__doc__" in klass.__dict__ else None
        class_desc, class_params = parse_docstring(class_doc)
        sig = _analyse(method, name, {**class_params, **param_docs}, localns)
        desc = description or klass.description or class_desc or run_desc or name
        return cls(name=name, description=desc.strip(), parameters=sig.schema, fn=method,
                   is_async=inspect.iscoroutinefunction(method), args_model=sig.model,
                   arg_names=sig.fields, context_param=sig.context_param, limiter=klass.limiter,
                   setup_hook=instance._ensure_setup, origin=instance)


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name or ""):
        raise ConfigError(f"invalid tool name {name!r}: use letters, digits, '_' or '-' "
                          "(at most 64, starting with a letter or '_')")


def _snake(name: str) -> str:
    if name.endswith("Tool") and len(name) > 4:
        name = name[:-4]
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@typing.overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@typing.overload
def tool(*, name: str | None = None, description: str | None = None,
         limiter: str | None = None) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(fn: Any = None, /, *, name: str | None = None, description: str | None = None,
         limiter: str | None = None) -> Any:
    """Turn a typed function (or a ToolClass subclass) into a :class:`Tool`; bare or with options.

    ``name`` defaults to the function's name, ``description`` to its docstring (without the
    ``Args:`` section). ``limiter`` names a ``ToolContext.limiters`` entry the call runs under.
    """
    def wrap(f: Any, localns: dict[str, Any] | None = None) -> Tool:
        if localns is None:  # names of the scope that applies the decorator (local classes)
            localns = dict(sys._getframe(1).f_locals)
        if isinstance(f, type) and issubclass(f, ToolClass):
            return Tool.from_class(f, name=name, description=description, localns=localns)
        if not callable(f):
            raise ConfigError(f"@tool needs a function, got {type(f).__name__}")
        return Tool.from_function(f, name=name, description=description, limiter=limiter,
                                  localns=localns)

    return wrap(fn, dict(sys._getframe(1).f_locals)) if fn is not None else wrap


# ---------------------------------------------------------------------------------------------
# class-based tools with lazy setup
# ---------------------------------------------------------------------------------------------
class ToolClass:
    """Base for tools that hold state (model weights...). Subclass it and define ``run``.

    ``setup(ctx)`` runs once, on the first call, in a worker thread (or awaited if async), under
    a lock, so importing or registering the plugin never loads weights. If setup fails, that call
    raises and later calls answer with a ToolError saying the tool is unavailable.

    Class attributes: ``name`` (default: the class name in snake_case, without a ``Tool``
    suffix), ``description`` (default: the class docstring, else ``run``'s), ``limiter``.
    """

    name: ClassVar[str | None] = None
    description: ClassVar[str | None] = None
    limiter: ClassVar[str | None] = None

    def setup(self, ctx: ToolContext) -> None:
        """Load what the tool needs (weights on ``ctx.device``...). Runs once, lazily."""

    def run(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def is_set_up(self) -> bool:
        return bool(self.__dict__.get("_ss_ready"))

    def _call_setup(self, ctx: ToolContext) -> Any:
        n_params = len(inspect.signature(self.setup).parameters)
        return self.setup(ctx) if n_params else self.setup()  # type: ignore[call-arg]

    def _setup_failed(self) -> None:
        failure = self.__dict__.get("_ss_failed")
        if failure:
            raise ToolError(f"tool {type(self).name or _snake(type(self).__name__)} is unavailable: "
                            f"its setup failed ({failure}); do not call it again")

    def _setup_sync(self, ctx: ToolContext) -> None:
        lock = self.__dict__.setdefault("_ss_lock", threading.Lock())
        with lock:
            if self.__dict__.get("_ss_ready"):
                return
            self._setup_failed()
            try:
                self._call_setup(ctx)
            except Exception as exc:
                self.__dict__["_ss_failed"] = f"{type(exc).__name__}: {exc}"
                raise
            self.__dict__["_ss_ready"] = True

    async def _ensure_setup(self, ctx: ToolContext) -> None:
        if self.__dict__.get("_ss_ready"):
            return
        if inspect.iscoroutinefunction(self.setup):
            lock = self.__dict__.setdefault("_ss_alock", asyncio.Lock())
            async with lock:
                if self.__dict__.get("_ss_ready"):
                    return
                self._setup_failed()
                try:
                    await self._call_setup(ctx)
                except Exception as exc:
                    self.__dict__["_ss_failed"] = f"{type(exc).__name__}: {exc}"
                    raise
                self.__dict__["_ss_ready"] = True
        else:
            limiter = ctx.limiters.get(self.limiter, ctx.limiter) if self.limiter else ctx.limiter
            await anyio.to_thread.run_sync(self._setup_sync, ctx, limiter=limiter)


# ---------------------------------------------------------------------------------------------
# coercion of anything a plugin exposes
# ---------------------------------------------------------------------------------------------
def as_tools(obj: Any, where: str = "") -> list[Tool]:
    """Tools from a Tool, a function, a ToolClass (class or instance), a module with ``TOOLS``,
    or a list of these. Raises ``ConfigError`` for anything else."""
    label = f"{where}: " if where else ""
    if isinstance(obj, Tool):
        return [obj]
    if isinstance(obj, type) and issubclass(obj, ToolClass):
        return [Tool.from_class(obj)]
    if isinstance(obj, ToolClass):
        return [Tool.from_class(obj)]
    if isinstance(obj, ModuleType):
        if not hasattr(obj, "TOOLS"):
            raise ConfigError(f"{label}module {obj.__name__} has no TOOLS list")
        return as_tools(obj.TOOLS, where)
    if isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)):
        out: list[Tool] = []
        for item in obj:
            out.extend(as_tools(item, where))
        return out
    if inspect.isfunction(obj) or inspect.ismethod(obj) or inspect.iscoroutinefunction(obj):
        return [Tool.from_function(obj)]
    raise ConfigError(f"{label}{obj!r} is not a tool: expected a @tool function, a ToolClass, "
                      "or a list of them")


__all__ = [
    "Tool",
    "ToolClass",
    "ToolImage",
    "ToolResult",
    "as_tools",
    "parse_docstring",
    "summary_line",
    "tool",
    "wire_name",
]
