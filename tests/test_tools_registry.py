"""Registry: built-ins, entry-point plugins (namespaced, broken ones skipped), tool sets."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import types
from types import SimpleNamespace

import pytest

from slidescout.errors import ConfigError, ToolError
from slidescout.tools import (
    Tool,
    ToolClass,
    ToolContext,
    ToolRegistry,
    ToolSet,
    default_registry,
    register_builtin,
    resolve_toolset,
    tool,
)
from slidescout.tools import registry as registry_mod


@tool
def hello(name: str) -> str:
    """Say hello.

    Args:
        name: Who to greet.
    """
    return f"hello {name}"


@tool
def shout(text: str) -> str:
    """Shout.

    Args:
        text: What to shout.
    """
    return text.upper()


class Lazy(ToolClass):
    """A class tool."""

    def run(self, n: int) -> str:
        return str(n * 2)


def plain_function(a: int) -> str:
    """A plain function, wrapped by the registry.

    Args:
        a: A number.
    """
    return str(a + 1)


class FakeEP:
    """Quacks like importlib.metadata.EntryPoint (name, value, group, dist, load)."""

    def __init__(self, name, value, obj=None, dist="Fake_Plugin", version="1.2.3", error=None):
        self.name, self.value, self.group = name, value, "slidescout.tools"
        self.dist = SimpleNamespace(name=dist, version=version) if dist else None
        self._obj, self._error = obj, error

    def load(self):
        if self._error:
            raise self._error
        return self._obj


def install_eps(monkeypatch, eps):
    real = importlib.metadata.entry_points

    def fake_entry_points(**kw):
        return list(eps) if kw.get("group") == "slidescout.tools" else real(**kw)

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)


@pytest.fixture
def plugin_eps(monkeypatch):
    module = types.ModuleType("fake_plugin_mod")
    module.TOOLS = [shout, Lazy]
    eps = [
        FakeEP("hello", "fake_plugin:hello", hello),
        FakeEP("module", "fake_plugin_mod", module, dist="other.plugin", version="0.1"),
        FakeEP("plain", "fake_plugin:plain_function", plain_function),
        FakeEP(
            "broken",
            "broken_plugin:thing",
            error=ImportError("No module named 'torchvision'"),
            dist="broken-plugin",
        ),
        FakeEP("notatool", "fake_plugin:CONST", 42),
    ]
    install_eps(monkeypatch, eps)
    return eps


def make_registry(**kw):
    return ToolRegistry(builtin_modules=["slidescout.tools.navigation"], **kw)


def test_builtins_are_loaded_lazily_and_listed():
    reg = ToolRegistry(
        builtin_modules=["slidescout.tools.navigation", "slidescout.tools.nope_missing"],
        plugins=False,
    )
    assert not reg._loaded
    names = reg.names()
    assert names[:3] == ["slide_zoom", "view_region", "pan"]
    assert {"overview", "measure", "measure_area"} <= set(names)
    assert all(reg.get(n).source == "builtin" for n in names)
    [err] = reg.errors
    assert err.name == "slidescout.tools.nope_missing" and err.kind == "builtin"
    assert err.error == "module not present"


def test_broken_builtin_module_is_recorded(monkeypatch):
    mod = types.ModuleType("slidescout_fake_builtin")
    mod.TOOLS = [object()]
    monkeypatch.setitem(sys.modules, "slidescout_fake_builtin", mod)
    reg = ToolRegistry(builtin_modules=["slidescout_fake_builtin"], plugins=False)
    assert len(reg) == 0
    assert "is not a tool" in reg.errors[0].error


def test_plugins_are_discovered_namespaced_and_broken_ones_skipped(plugin_eps):
    reg = make_registry()
    names = reg.names()
    assert "fake-plugin/hello" in names
    assert "fake-plugin/plain_function" in names
    assert "other-plugin/shout" in names and "other-plugin/lazy" in names
    t = reg.get("fake-plugin/hello")
    assert (
        t.source == "fake-plugin 1.2.3" and t.short_name == "hello" and t.namespace == "fake-plugin"
    )
    assert t.spec.name == "fake-plugin__hello"
    assert reg.get("other-plugin/lazy").source == "other-plugin 0.1"
    # the original builtin-style tool object is untouched
    assert hello.name == "hello" and hello.source == "builtin"
    errors = {e.name.split(":")[0]: e for e in reg.errors}
    assert "broken-plugin" in errors
    assert (
        "ImportError" in errors["broken-plugin"].error
        and "torchvision" in errors["broken-plugin"].error
    )
    assert any("is not a tool" in e.error and "notatool" in e.name for e in reg.errors)
    assert all(e.kind == "plugin" for e in reg.errors)


def test_plugin_raising_systemexit_does_not_kill_the_registry(monkeypatch):
    install_eps(
        monkeypatch, [FakeEP("exit", "x:y", error=SystemExit(3)), FakeEP("hello", "a:b", hello)]
    )
    reg = make_registry()
    assert "fake-plugin/hello" in reg.names()
    assert "SystemExit" in reg.errors[0].error


def test_real_entry_point_objects_without_dist(monkeypatch):
    mod = types.ModuleType("realish_plugin")
    mod.hello = hello
    monkeypatch.setitem(sys.modules, "realish_plugin", mod)
    ep = importlib.metadata.EntryPoint(
        name="hello", value="realish_plugin:hello", group="slidescout.tools"
    )
    install_eps(monkeypatch, [ep])
    reg = make_registry()
    assert reg.get("realish-plugin/hello").source == "realish-plugin"


def test_get_accepts_wire_and_short_names_and_suggests(plugin_eps):
    reg = make_registry()
    assert reg.get("fake-plugin__hello").name == "fake-plugin/hello"
    assert reg.get("hello").name == "fake-plugin/hello"  # unambiguous short name
    assert "hello" in reg and "nope" not in reg
    with pytest.raises(ConfigError, match="did you mean slide_zoom"):
        reg.get("slide_zom")
    with pytest.raises(ConfigError, match="could not be loaded"):
        reg.get("torchvision_thing")


def test_ambiguous_short_name(monkeypatch):
    install_eps(
        monkeypatch,
        [FakeEP("a", "a:hello", hello, dist="pkg-a"), FakeEP("b", "b:hello", hello, dist="pkg-b")],
    )
    reg = make_registry()
    assert {"pkg-a/hello", "pkg-b/hello"} <= set(reg.names())
    with pytest.raises(ConfigError, match="ambiguous"):
        reg.get("hello")


def test_register_and_duplicates():
    reg = make_registry(plugins=False)
    reg.register(hello)
    reg.register(hello)  # the same tool again is fine
    other = Tool.from_function(plain_function, name="hello")
    with pytest.raises(ConfigError, match="two tools"):
        reg.register(other)
    reg.register(other, replace=True)
    assert reg.get("hello").origin is plain_function


def test_register_builtin_reaches_live_and_new_registries(monkeypatch):
    monkeypatch.setattr(registry_mod, "_EXTRA_BUILTINS", [])
    live = make_registry(plugins=False)
    live.load()

    @register_builtin
    @tool
    def extra_builtin(q: str) -> str:
        """Extra.

        Args:
            q: query
        """
        return q

    assert "extra_builtin" in live.names()
    assert "extra_builtin" in make_registry(plugins=False).names()


def test_default_registry_is_cached():
    default_registry.cache_clear()
    try:
        assert default_registry() is default_registry()
    finally:
        default_registry.cache_clear()


def test_importing_the_registry_does_not_import_torch():
    code = (
        "import sys, slidescout.tools, slidescout.tools.registry, slidescout.cli; "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "import slidescout.tools.navigation; assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=280)


# ---------------------------------------------------------------------------------------------
# tool sets
# ---------------------------------------------------------------------------------------------
def test_resolve_toolset(plugin_eps):
    reg = make_registry()
    base = ["slide_zoom", "view_region", "pan"]
    assert reg.resolve_toolset(base, None) == base
    assert reg.resolve_toolset(base, "") == base
    assert reg.resolve_toolset(base, "+measure,-pan") == ["slide_zoom", "view_region", "measure"]
    assert reg.resolve_toolset(base, "measure, overview") == ["measure", "overview"]
    assert reg.resolve_toolset(base, "+fake-plugin/hello") == base + ["fake-plugin/hello"]
    assert reg.resolve_toolset(base, "+fake-plugin__hello,+hello") == base + ["fake-plugin/hello"]
    assert reg.resolve_toolset(base, "none") == []
    assert reg.resolve_toolset(base, "-measure") == base  # removing an absent tool is a no-op
    assert resolve_toolset(["slide_zoom"], "+pan", registry=reg) == ["slide_zoom", "pan"]
    with pytest.raises(ConfigError, match="unknown tool 'lokup'"):
        reg.resolve_toolset(base, "+lokup")
    with pytest.raises(ConfigError, match="empty tool name"):
        reg.resolve_toolset(base, "+")
    with pytest.raises(ConfigError, match="unknown tool"):
        reg.resolve_toolset(["nonexistent"], None)


async def test_toolset_specs_and_dispatch(plugin_eps):
    reg = make_registry()
    ts = reg.select(["slide_zoom", "fake-plugin/hello", "other-plugin/lazy", "slide_zoom"])
    assert isinstance(ts, ToolSet) and len(ts) == 3
    assert [s.name for s in ts.specs] == ["slide_zoom", "fake-plugin__hello", "other-plugin__lazy"]
    ctx = ToolContext()
    res = await ts.invoke("fake-plugin__hello", {"name": "you"}, ctx)
    assert res.text == "hello you"
    assert (await ts.invoke("other-plugin/lazy", {"n": 4}, ctx)).text == "8"
    assert (await ts.invoke("hello", {"name": "x"}, ctx)).text == "hello x"  # short name tolerated
    with pytest.raises(ToolError, match="unknown tool 'measure'.*available tools are: slide_zoom"):
        await ts.invoke("measure", {}, ctx)  # registered, but not offered in this run
    with pytest.raises(ToolError, match="invalid arguments"):
        await ts.invoke("fake-plugin__hello", {}, ctx)
