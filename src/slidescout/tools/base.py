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
import inspect
import json
import re
import sys
import threading
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ValidationError

from slidescout.core.messages import ToolSpec
from slidescout.errors import ConfigError, SlideError, ToolError
from slidescout.tools.context import ToolContext
from slidescout.tools.results import ToolImage, ToolResult
from slidescout.tools.schema import (
    _NAME_RE,
    _analyse,
    _format_validation_error,
    _signature_text,
    parse_docstring,
    summary_line,
    wire_name,
)
from slidescout.tools.timeouts import (
    DEFAULT_TOOL_TIMEOUT_S,
    DeadlinePassed,
    ToolTimeout,
    run_in_daemon_thread,
    within,
)

Needs = Literal["slide", "imageset", "none"]


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
    # what the tool needs from the sample's environment: its slide, its image set, or nothing;
    # an environment offers the tools whose need it meets (see ``ToolSet.for_environment``)
    needs: Needs = "none"
    setup_hook: Callable[[ToolContext], Any] | None = None  # awaited before each call (ToolClass)
    origin: Any = None  # the function / ToolClass instance this tool wraps
    # seconds one call may take, setup included (None: no limit of its own; the sample's deadline
    # still holds); past it the call is abandoned and the model gets a timeout error
    timeout_s: float | None = DEFAULT_TOOL_TIMEOUT_S

    def __post_init__(self) -> None:
        self.timeout_s = _check_timeout(self.name, self.timeout_s)

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
        return ToolSpec(
            name=self.wire_name,
            description=self.description,
            parameters=json.loads(json.dumps(self.parameters)),
        )

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
            raise ToolError(
                f"arguments for {self.name} must be a JSON object, got "
                f"{type(arguments).__name__}. Expected {self.signature}."
            )
        try:
            model = self.args_model.model_validate(arguments)
        except ValidationError as exc:
            raise ToolError(_format_validation_error(self.name, exc, self.parameters)) from None
        return {pname: getattr(model, internal) for internal, pname in self.arg_names.items()}

    async def invoke(
        self, arguments: dict[str, Any] | None, ctx: ToolContext | None = None
    ) -> ToolResult:
        """Validate and run one call, within the tool's ``timeout_s``. Sync functions run in a
        daemon thread of their own, under the tool's limiter.

        Raises ``ToolError`` for anything the model should see (bad arguments, a region outside the
        slide, a ``SlideError``, ``ToolTimeout`` when the call was abandoned at its timeout); any
        other exception is the tool's bug and propagates. The call gets a copy of ``ctx`` with
        its own ``cancel_event``, set when the call is abandoned or cancelled (the thread of a
        sync tool cannot be killed: a tool that checks the event stops)."""
        ctx = ctx if ctx is not None else ToolContext()
        kwargs = self.validate(arguments)
        ctx.check_cancelled()
        call_ctx = dataclasses.replace(ctx, cancel_event=threading.Event())
        if self.context_param:
            kwargs[self.context_param] = call_ctx
        try:
            value = await within(self._run(kwargs, call_ctx), self.timeout_s)
        except DeadlinePassed:
            call_ctx.cancel()
            raise ToolTimeout(
                f"the tool {self.name} did not finish within {self.timeout_s:g} s and was "
                "stopped; try a smaller request or another tool"
            ) from None
        except asyncio.CancelledError:
            call_ctx.cancel()
            raise
        except SlideError as exc:
            raise ToolError(str(exc)) from exc
        return ToolResult.coerce(value)

    async def _run(self, kwargs: dict[str, Any], ctx: ToolContext) -> Any:
        if self.setup_hook is not None:
            await self.setup_hook(ctx)
        if self.is_async:
            return await self.fn(**kwargs)
        call = functools.partial(self.fn, **kwargs)
        return await run_in_daemon_thread(call, limiter=ctx.limiter_for(self.limiter))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the wrapped function directly (no validation; handy in tests)."""
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Tool({self.name!r}, source={self.source!r})"

    # -- construction --------------------------------------------------------------------------
    def available_in(self, offers: frozenset[str]) -> bool:
        """Whether an environment that offers ``offers`` (``{"slide"}``...) can run this tool."""
        return self.needs == "none" or self.needs in offers

    @classmethod
    def from_function(
        cls,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        limiter: str | None = None,
        needs: Needs | None = None,
        localns: dict[str, Any] | None = None,
        timeout_s: float | None = DEFAULT_TOOL_TIMEOUT_S,
    ) -> Tool:
        """``localns``: extra names for resolving string annotations (e.g. the defining scope).
        ``needs``: None infers it: a tool that takes a context needs a slide. ``timeout_s``:
        seconds one call may take (None: no limit of its own)."""
        tool_name: str = name or str(getattr(fn, "__name__", ""))
        _check_name(tool_name)
        doc_desc, param_docs = parse_docstring(inspect.getdoc(fn))
        sig = _analyse(fn, tool_name, param_docs, localns)
        return cls(
            name=tool_name,
            description=(description or doc_desc or tool_name).strip(),
            parameters=sig.schema,
            fn=fn,
            is_async=inspect.iscoroutinefunction(fn),
            args_model=sig.model,
            arg_names=sig.fields,
            context_param=sig.context_param,
            limiter=limiter,
            needs=_needs(needs, sig.context_param),
            origin=fn,
            timeout_s=timeout_s,
        )

    @classmethod
    def from_class(
        cls,
        obj: type[ToolClass] | ToolClass,
        *,
        name: str | None = None,
        description: str | None = None,
        localns: dict[str, Any] | None = None,
    ) -> Tool:
        instance = obj() if isinstance(obj, type) else obj
        klass = type(instance)
        method_name = "run" if klass.run is not ToolClass.run else "__call__"
        if method_name == "__call__" and not any(
            "__call__" in vars(c) for c in klass.__mro__ if c not in (ToolClass, object)
        ):
            raise ConfigError(
                f"{klass.__name__}: a ToolClass defines its call as run(...) or __call__(...)"
            )
        method = getattr(instance, method_name)
        name = name or klass.name or _snake(klass.__name__)
        _check_name(name)
        run_desc, param_docs = parse_docstring(inspect.getdoc(method))
        class_doc = klass.__doc__ if "__doc__" in klass.__dict__ else None
        class_desc, class_params = parse_docstring(class_doc)
        sig = _analyse(method, name, {**class_params, **param_docs}, localns)
        desc = description or klass.description or class_desc or run_desc or name
        return cls(
            name=name,
            description=desc.strip(),
            parameters=sig.schema,
            fn=method,
            is_async=inspect.iscoroutinefunction(method),
            args_model=sig.model,
            arg_names=sig.fields,
            context_param=sig.context_param,
            limiter=klass.limiter,
            needs=_needs(klass.needs, sig.context_param),
            setup_hook=instance._ensure_setup,
            origin=instance,
            timeout_s=klass.timeout_s,
        )


def _needs(declared: Needs | None, context_param: str | None) -> Needs:
    if declared is None:
        return "slide" if context_param else "none"
    if declared not in ("slide", "imageset", "none"):
        raise ConfigError(f"a tool's needs is 'slide', 'imageset' or 'none', not {declared!r}")
    return declared


def _check_timeout(name: str, timeout_s: Any) -> float | None:
    if timeout_s is None:
        return None
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)):
        raise ConfigError(f"tool {name}: timeout_s must be a number of seconds or None")
    if not timeout_s > 0 or timeout_s == float("inf"):
        raise ConfigError(f"tool {name}: timeout_s must be a positive number of seconds or None")
    return float(timeout_s)


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name or ""):
        raise ConfigError(
            f"invalid tool name {name!r}: use letters, digits, '_' or '-' "
            "(at most 64, starting with a letter or '_')"
        )


def _snake(name: str) -> str:
    if name.endswith("Tool") and len(name) > 4:
        name = name[:-4]
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@typing.overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@typing.overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    limiter: str | None = None,
    needs: Needs | None = None,
    timeout_s: float | None = DEFAULT_TOOL_TIMEOUT_S,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    limiter: str | None = None,
    needs: Needs | None = None,
    timeout_s: float | None = DEFAULT_TOOL_TIMEOUT_S,
) -> Any:
    """Turn a typed function (or a ToolClass subclass) into a :class:`Tool`; bare or with options.

    ``name`` defaults to the function's name, ``description`` to its docstring (without the
    ``Args:`` section). ``limiter`` names a ``ToolContext.limiters`` entry the call runs under.
    ``needs`` is what the tool needs from the sample: ``"slide"``, ``"imageset"`` or ``"none"``
    (default: a slide when it takes a ``ToolContext``, else nothing). ``timeout_s``: seconds one
    call may take before it is abandoned and the model gets a timeout error (default
    :data:`DEFAULT_TOOL_TIMEOUT_S`; None: no limit of its own, the sample's deadline still holds).
    """

    def wrap(f: Any, localns: dict[str, Any] | None = None) -> Tool:
        if localns is None:  # names of the scope that applies the decorator (local classes)
            localns = dict(sys._getframe(1).f_locals)
        if isinstance(f, type) and issubclass(f, ToolClass):
            return Tool.from_class(f, name=name, description=description, localns=localns)
        if not callable(f):
            raise ConfigError(f"@tool needs a function, got {type(f).__name__}")
        return Tool.from_function(
            f,
            name=name,
            description=description,
            limiter=limiter,
            needs=needs,
            localns=localns,
            timeout_s=timeout_s,
        )

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
    suffix), ``description`` (default: the class docstring, else ``run``'s), ``limiter``,
    ``needs``, ``timeout_s`` (seconds one call may take, its first call's setup included).
    """

    name: ClassVar[str | None] = None
    description: ClassVar[str | None] = None
    limiter: ClassVar[str | None] = None
    needs: ClassVar[Needs | None] = None  # None: a slide when ``run`` takes a ToolContext
    timeout_s: ClassVar[float | None] = DEFAULT_TOOL_TIMEOUT_S

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
            raise ToolError(
                f"tool {type(self).name or _snake(type(self).__name__)} is unavailable: "
                f"its setup failed ({failure}); do not call it again"
            )

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
            setup = functools.partial(self._setup_sync, ctx)
            await run_in_daemon_thread(setup, limiter=ctx.limiter_for(self.limiter))


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
    raise ConfigError(
        f"{label}{obj!r} is not a tool: expected a @tool function, a ToolClass, or a list of them"
    )


__all__ = [
    "DEFAULT_TOOL_TIMEOUT_S",
    "Needs",
    "Tool",
    "ToolClass",
    "ToolImage",
    "ToolResult",
    "ToolTimeout",
    "as_tools",
    "parse_docstring",
    "summary_line",
    "tool",
    "wire_name",
]
