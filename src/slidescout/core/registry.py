"""``Registry``: one extension point, its built-in entries and its plugins, loaded lazily.

Every extension point of slidescout (providers, presets, datasets, answer formats, expert kinds;
tools have their own registry with namespacing) is one ``Registry``:

- built-in entries are declared by name, as an object or as ``"module:attribute"``; a declared
  path is imported only when that name is looked up;
- plugins are entry points of the registry's group (``slidescout.providers``...): the entry
  point's name is the entry's name, its value the object. Their names are read from package
  metadata when the registry is listed; a plugin's module is imported only when its name is
  looked up (or everything is listed with ``load_all``);
- a plugin that fails to import or holds the wrong kind of object is skipped and recorded in
  ``errors``; looking up its name says why.

So importing a registry (or the CLI) imports no plugin and no heavy module.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from slidescout.core.errors import ConfigError

__all__ = ["EntryError", "Registry", "load_path"]

T = TypeVar("T")


@dataclass(frozen=True)
class EntryError:
    """An entry that could not be loaded: its name, where it came from, and why."""

    name: str
    source: str  # "builtin" or "<distribution>: <name> = <value>"
    error: str

    def __str__(self) -> str:
        return f"{self.source}: {self.error}"


def load_path(path: str) -> object:
    """The object at ``"package.module:attribute"`` (the attribute may be dotted)."""
    module, _, attr = path.partition(":")
    obj: object = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """One extension point. ``coerce(obj, name)`` turns what an entry holds into a ``T`` (or
    raises ``TypeError``/``ValueError`` saying what was expected)."""

    def __init__(
        self,
        group: str,
        what: str,
        builtins: Mapping[str, T | str],
        coerce: Callable[[object, str], T],
    ) -> None:
        self.group = group
        self.what = what
        self._declared: dict[str, T | str] = dict(builtins)
        self._coerce = coerce
        self._loaded: dict[str, T] = {}
        self._plugins: dict[str, importlib.metadata.EntryPoint] | None = None
        self._errors: dict[str, EntryError] = {}
        self._lock = threading.RLock()

    # -- what is known ----------------------------------------------------------------------
    def builtin_names(self) -> list[str]:
        """The built-in names, in declaration order (reads no metadata, imports nothing)."""
        return list(self._declared)

    def plugin_names(self) -> list[str]:
        """The names plugins declare (from package metadata; no plugin is imported)."""
        return sorted(n for n in self._entry_points() if n not in self._declared)

    def names(self) -> list[str]:
        """Every name: built-ins first, then plugins sorted."""
        return self.builtin_names() + self.plugin_names()

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._declared or name in self._entry_points())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    @property
    def errors(self) -> list[EntryError]:
        """Entries that could not be loaded so far."""
        return list(self._errors.values())

    # -- lookup -----------------------------------------------------------------------------
    def get(self, name: str) -> T:
        """The entry ``name``, loaded on first use; a one-line ``ConfigError`` when unknown or
        broken (naming the known ones, or why it could not be loaded)."""
        with self._lock:
            hit = self._loaded.get(name)
            if hit is not None:
                return hit
            if name in self._declared:
                value = self._load(name, self._declared[name], "builtin")
            else:
                ep = self._entry_points().get(name)
                if ep is None:
                    raise ConfigError(self._unknown(name))
                dist = getattr(getattr(ep, "dist", None), "name", None) or "a plugin"
                value = self._load(name, ep, f"{dist}: {ep.name} = {ep.value}")
            self._loaded[name] = value
            return value

    def load_all(self) -> dict[str, T]:
        """Every entry that loads (the others are in ``errors``), built-ins first."""
        out: dict[str, T] = {}
        for name in self.names():
            try:
                out[name] = self.get(name)
            except ConfigError:
                continue
        return out

    def register(self, name: str, obj: object, *, replace: bool = False) -> T:
        """Add an entry at run time (from Python, or a test); returns it as the registry holds it."""
        with self._lock:
            if not replace and name in self:
                raise ConfigError(f"{self.what} {name!r} is already registered")
            value = self._coerce(obj, name)
            self._declared[name] = value
            self._loaded[name] = value
            self._errors.pop(name, None)
            return value

    def unregister(self, name: str) -> None:
        """Forget a run-time entry (tests)."""
        with self._lock:
            self._declared.pop(name, None)
            self._loaded.pop(name, None)

    def refresh(self) -> None:
        """Read the plugins' metadata again (after installing one in this process)."""
        with self._lock:
            self._plugins = None
            self._loaded = {k: v for k, v in self._loaded.items() if k in self._declared}
            self._errors.clear()

    # -- internals --------------------------------------------------------------------------
    def _entry_points(self) -> dict[str, importlib.metadata.EntryPoint]:
        with self._lock:
            if self._plugins is None:
                found: dict[str, importlib.metadata.EntryPoint] = {}
                try:
                    eps = importlib.metadata.entry_points(group=self.group)
                except Exception as exc:  # a broken distribution's metadata
                    self._errors[""] = EntryError("", self.group, f"{type(exc).__name__}: {exc}")
                    eps = importlib.metadata.EntryPoints(())
                for ep in eps:
                    found.setdefault(ep.name, ep)  # the first on sys.path wins, as for imports
                self._plugins = found
            return self._plugins

    def _load(self, name: str, entry: object, source: str) -> T:
        try:
            if isinstance(entry, importlib.metadata.EntryPoint):
                obj = entry.load()
            elif isinstance(entry, str):
                obj = load_path(entry)
            else:
                obj = entry
            return self._coerce(obj, name)
        except Exception as exc:  # a plugin must never take the registry down
            err = EntryError(name, source, f"{type(exc).__name__}: {exc}")
            self._errors[name] = err
            raise ConfigError(f"{self.what} {name!r} could not be loaded ({err})") from None

    def _unknown(self, name: str) -> str:
        names = self.names()
        close = difflib.get_close_matches(name, names, n=2, cutoff=0.6)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        return f"unknown {self.what} {name!r}{hint}; choose one of: {', '.join(names)}"
