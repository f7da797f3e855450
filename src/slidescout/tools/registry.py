"""The tool registry: built-in tools plus plugins found through the ``slidescout.tools`` entry points.

Built-in tools are declared by name with the module that defines them (:data:`BUILTIN_TOOLS`); a
module is imported when one of its tools is looked up, so importing this module (or the CLI)
imports no tool, and building an agent imports only its preset's tools. Listing the registry, or
looking up a name it does not declare, loads every built-in module and the plugins. A built-in
module exposes a ``TOOLS`` list, or calls :func:`register_builtin` at import time.

Plugins are namespaced with their distribution's normalised name: a ``tissue_fraction`` tool from
``slidescout-plugin-example`` is ``slidescout-plugin-example/tissue_fraction`` (offered to a model
as ``slidescout-plugin-example__tissue_fraction``). A plugin that fails to import or exposes
something that is not a tool is recorded in :attr:`ToolRegistry.errors` and skipped.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.metadata
import re
import threading
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from slidescout.core.messages import ToolSpec
from slidescout.errors import ConfigError, ToolError
from slidescout.tools.base import Tool, ToolResult, as_tools
from slidescout.tools.context import ToolContext

ENTRY_POINT_GROUP = "slidescout.tools"

# every built-in tool and the module that defines it (a test keeps this true)
BUILTIN_TOOLS: dict[str, str] = {
    "slide_zoom": "slidescout.tools.navigation",
    "view_region": "slidescout.tools.navigation",
    "pan": "slidescout.tools.navigation",
    "overview": "slidescout.tools.navigation",
    "measure": "slidescout.tools.navigation",
    "measure_area": "slidescout.tools.navigation",
    "tissue_map": "slidescout.tools.experts.tools",
    "nuclei_morphometry": "slidescout.tools.experts.tools",
    "stain_summary": "slidescout.tools.experts.tools",
    "patch_classifier": "slidescout.tools.experts.tools",
    "segment": "slidescout.tools.experts.model_tools",
    "zero_shot": "slidescout.tools.experts.model_tools",
    "slide_classifier": "slidescout.tools.experts.slidehead",
    "lookup": "slidescout.tools.knowledge.tool",
    "view_image": "slidescout.tools.imageset_tools",
    "crop_image": "slidescout.tools.imageset_tools",
    "compare_images": "slidescout.tools.imageset_tools",
}
BUILTIN_MODULES: list[str] = list(dict.fromkeys(BUILTIN_TOOLS.values()))

_EXTRA_BUILTINS: list[Tool] = []


def register_builtin(obj: Any) -> Any:
    """Register a built-in tool (a Tool, function, ToolClass or list) for every registry.

    Call it at import time of a module in :data:`BUILTIN_MODULES`, or before the first registry is
    built. Returns ``obj`` so it can be used as a decorator after ``@tool``.
    """
    tools = as_tools(obj, where="register_builtin")
    _EXTRA_BUILTINS.extend(tools)
    for reg in _LIVE_REGISTRIES:
        if reg._started:
            for t in tools:
                reg._add(t, replace=True)
    return obj


_LIVE_REGISTRIES: weakref.WeakSet[ToolRegistry] = weakref.WeakSet()


def normalize_dist_name(name: str) -> str:
    """PEP 503 normalisation: ``Slidescout_Plugin.Example`` -> ``slidescout-plugin-example``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class LoadError:
    """A tool module or plugin that could not be loaded."""

    name: str  # entry point "dist: name = value" or built-in module path
    error: str  # "ExceptionType: message"
    kind: str = "plugin"  # "plugin" | "builtin"

    def __str__(self) -> str:
        return f"{self.name}: {self.error}"


class ToolRegistry:
    """Every tool this installation knows: built-ins and plugins.

    Loading is lazy: looking up a declared built-in name imports its module only; listing, or
    looking up any other name, imports every built-in module (``builtin_modules``) and the
    plugins. ``builtin_modules`` given explicitly are all loaded on first use.
    """

    def __init__(
        self,
        *,
        builtin_modules: Iterable[str] | None = None,
        plugins: bool = True,
        tools: Iterable[Any] = (),
    ) -> None:
        self._declared = dict(BUILTIN_TOOLS) if builtin_modules is None else {}
        self._builtin_modules = list(
            BUILTIN_MODULES if builtin_modules is None else builtin_modules
        )
        self._plugins = plugins
        self._tools: dict[str, Tool] = {}
        self._errors: list[LoadError] = []
        self._started = False  # the tools given and registered at run time are in
        self._modules: set[str] = set()  # built-in modules imported
        self._loaded = False  # everything is in
        self._lock = threading.RLock()
        self._initial = list(tools)
        _LIVE_REGISTRIES.add(self)

    # -- loading -------------------------------------------------------------------------------
    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
            for obj in self._initial:
                for t in as_tools(obj):
                    self._add(t)
            for t in list(_EXTRA_BUILTINS):
                self._add(t, replace=True)

    def load(self) -> ToolRegistry:
        """Import every built-in module and every plugin (listing needs them all)."""
        with self._lock:
            if self._loaded:
                return self
            self._start()
            for modpath in self._builtin_modules:
                self._load_builtin_module(modpath)
            if self._plugins:
                self._load_plugins()
            self._loaded = True
        return self

    def _load_builtin_module(self, modpath: str) -> None:
        if modpath in self._modules:
            return
        self._modules.add(modpath)
        try:
            module = importlib.import_module(modpath)
            tools = as_tools(module.TOOLS, where=modpath) if hasattr(module, "TOOLS") else []
        except Exception as exc:
            missing = (
                isinstance(exc, ModuleNotFoundError)
                and exc.name is not None
                and (modpath == exc.name or modpath.startswith(exc.name + "."))
            )
            msg = "module not present" if missing else f"{type(exc).__name__}: {exc}"
            self._errors.append(LoadError(modpath, msg, kind="builtin"))
            return
        for t in tools:
            self._add(t, replace=True)
        for t in list(_EXTRA_BUILTINS):  # registered at run time: they win over a module's own
            self._add(t, replace=True)

    def _load_plugins(self) -> None:
        try:
            eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        except Exception as exc:  # a broken distribution's metadata
            self._errors.append(LoadError(ENTRY_POINT_GROUP, f"{type(exc).__name__}: {exc}"))
            return
        seen: set[tuple[str, str]] = set()
        for ep in eps:
            dist = getattr(ep, "dist", None)
            dist_name = getattr(dist, "name", None) or ep.value.split(":")[0].split(".")[0]
            namespace = normalize_dist_name(dist_name)
            version = getattr(dist, "version", None)
            key = (namespace, f"{ep.name}={ep.value}")
            if key in seen:  # the same distribution found twice on sys.path
                continue
            seen.add(key)
            label = f"{namespace}: {ep.name} = {ep.value}"
            source = f"{namespace} {version}" if version else namespace
            try:
                obj = ep.load()
                tools = as_tools(obj, where=label)
            except BaseException as exc:  # noqa: BLE001 - a plugin must never take the registry down
                if isinstance(exc, (KeyboardInterrupt, GeneratorExit)):
                    raise
                self._errors.append(LoadError(label, f"{type(exc).__name__}: {exc}"))
                continue
            for t in tools:
                try:
                    self._add(t.namespaced(namespace, source))
                except ConfigError as exc:
                    self._errors.append(LoadError(label, str(exc)))

    def _add(self, t: Tool, *, replace: bool = False) -> None:
        existing = self._tools.get(t.name)
        if existing is not None and not replace and existing.origin is not t.origin:
            raise ConfigError(f"two tools are named {t.name!r} ({existing.source} and {t.source})")
        self._tools[t.name] = t

    # -- public API ----------------------------------------------------------------------------
    def register(self, obj: Any, *, replace: bool = False) -> list[Tool]:
        """Add tools to this registry (no namespacing). Returns the tools added."""
        self.load()
        tools = as_tools(obj)
        with self._lock:
            for t in tools:
                self._add(t, replace=replace)
        return tools

    @property
    def errors(self) -> list[LoadError]:
        self.load()
        return list(self._errors)

    @property
    def tools(self) -> dict[str, Tool]:
        self.load()
        return dict(self._tools)

    def names(self) -> list[str]:
        """Built-ins first (declared ones in declaration order, then others as registered),
        then plugins sorted by name."""
        tools = self.tools
        order = {n: i for i, n in enumerate(BUILTIN_TOOLS)}
        builtins = [n for n in tools if "/" not in n]
        builtins.sort(key=lambda n: order.get(n, len(order)))
        return builtins + sorted(n for n in tools if "/" in n)

    def __iter__(self) -> Iterator[Tool]:
        tools = self.tools
        return iter([tools[n] for n in self.names()])

    def __len__(self) -> int:
        return len(self.tools)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.find(name) is not None

    def find(self, name: str) -> Tool | None:
        """A tool by registry name, wire name, or a plugin tool's short name if unambiguous.

        A declared built-in name imports its module only; any other name loads everything."""
        with self._lock:
            self._start()
            if name in self._tools and not self._loaded:
                return self._tools[name]
            module = self._declared.get(name)
            if module is not None and not self._loaded:
                self._load_builtin_module(module)
                if name in self._tools:
                    return self._tools[name]
        tools = self.tools
        if name in tools:
            return tools[name]
        by_wire = [t for t in tools.values() if t.wire_name == name]
        if len(by_wire) == 1:
            return by_wire[0]
        short = [t for t in tools.values() if t.short_name == name]
        return short[0] if len(short) == 1 else None

    def get(self, name: str) -> Tool:
        """A tool by name; ``ConfigError`` with close matches for an unknown name."""
        t = self.find(name)
        if t is None:
            raise ConfigError(self._unknown_message(name, self.names()))
        return t

    def _unknown_message(self, name: str, names: list[str]) -> str:
        short = [n for n in names if n.rsplit("/", 1)[-1] == name.rsplit("/", 1)[-1]]
        if len(short) > 1:
            return f"tool name {name!r} is ambiguous: use one of {', '.join(short)}"
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        msg = f"unknown tool {name!r}"
        msg += (
            f"; did you mean {' or '.join(close)}?"
            if close
            else f"; known tools: {', '.join(names) or 'none'}"
        )
        if self._errors:
            msg += (
                f" ({len(self._errors)} tool module(s) or plugin(s) could not be loaded: "
                f"{', '.join(e.name.split(' = ')[0] for e in self._errors)}; "
                "see `slidescout tools list`)"
            )
        return msg

    def select(self, names: Iterable[str]) -> ToolSet:
        """The tools to offer in one run, in the given order (duplicates dropped)."""
        chosen: list[Tool] = []
        for n in names:
            t = self.get(n)
            if t not in chosen:
                chosen.append(t)
        return ToolSet(chosen)

    def resolve_toolset(self, base: Iterable[str], spec: str | None) -> list[str]:
        """Apply a ``--tools`` spec to a preset's tool names; returns canonical registry names.

        ``spec`` is a comma-separated list: ``+name`` adds, ``-name`` removes, and plain names
        replace the base set (``"lookup,measure"``); ``none`` gives an empty set. Unknown names
        are a ``ConfigError``.
        """
        current = [self.get(n).name for n in base]
        if spec is None or not spec.strip():
            return _dedupe(current)
        tokens = [t.strip() for t in spec.split(",") if t.strip()]
        plain = [t for t in tokens if t[0] not in "+-"]
        if plain:
            current = []
        for token in tokens:
            if token.lower() == "none":
                current = []
                continue
            op, name = (token[0], token[1:].strip()) if token[0] in "+-" else ("=", token)
            if not name:
                raise ConfigError(f"empty tool name in --tools {spec!r}")
            canonical = self.get(name).name
            if op == "-":
                current = [n for n in current if n != canonical]
            elif canonical not in current:
                current.append(canonical)
        return current


def _dedupe(names: list[str]) -> list[str]:
    out: list[str] = []
    for n in names:
        if n not in out:
            out.append(n)
    return out


class ToolSet:
    """The tools offered in one run: their specs, and dispatch of the model's calls by name."""

    def __init__(self, tools: Iterable[Tool]) -> None:
        self.tools: list[Tool] = list(tools)
        wires = [t.wire_name for t in self.tools]
        if len(set(wires)) != len(wires):
            raise ConfigError(f"two tools in one set share a name: {wires}")
        self._specs: tuple[ToolSpec, ...] | None = None

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tools]

    @property
    def specs(self) -> list[ToolSpec]:
        """The tools' specs, made once per set: every request of a run offers the same objects,
        so a model adapter encodes them once."""
        if self._specs is None:
            self._specs = tuple(t.spec for t in self.tools)
        return list(self._specs)

    def __len__(self) -> int:
        return len(self.tools)

    def __iter__(self) -> Iterator[Tool]:
        return iter(self.tools)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(name) is not None

    def _find(self, name: str) -> Tool | None:
        for t in self.tools:
            if name in (t.wire_name, t.name):
                return t
        short = [t for t in self.tools if t.short_name == name]
        return short[0] if len(short) == 1 else None

    def get(self, name: str) -> Tool:
        """The tool a model called (wire name, registry name or unambiguous short name); a
        ``ToolError`` listing the available tools otherwise."""
        t = self._find(name)
        if t is None:
            avail = ", ".join(t.wire_name for t in self.tools) or "none"
            close = difflib.get_close_matches(
                name, [t.wire_name for t in self.tools], n=1, cutoff=0.6
            )
            hint = f" Did you mean {close[0]}?" if close else ""
            raise ToolError(f"unknown tool {name!r}; the available tools are: {avail}.{hint}")
        return t

    async def invoke(
        self, name: str, arguments: dict[str, Any] | None, ctx: ToolContext
    ) -> ToolResult:
        """Run one call. ``ToolError`` is for the model; other exceptions are tool bugs."""
        return await self.get(name).invoke(arguments, ctx)


@functools.lru_cache(maxsize=1)
def default_registry() -> ToolRegistry:
    """The process-wide registry (built once; ``default_registry.cache_clear()`` to rebuild)."""
    return ToolRegistry()


def resolve_toolset(
    base: Iterable[str], spec: str | None, registry: ToolRegistry | None = None
) -> list[str]:
    """:meth:`ToolRegistry.resolve_toolset` on the default registry."""
    return (registry or default_registry()).resolve_toolset(base, spec)


__all__ = [
    "BUILTIN_MODULES",
    "BUILTIN_TOOLS",
    "ENTRY_POINT_GROUP",
    "LoadError",
    "ToolRegistry",
    "ToolSet",
    "default_registry",
    "normalize_dist_name",
    "register_builtin",
    "resolve_toolset",
]
