"""The package keeps its layers: core, then slides, tools, agents, eval, and the apps on top.

A module imports only from its own layer or below (``if TYPE_CHECKING:`` blocks excepted), and
no module hides an import of another slidescout module inside a function to dodge a cycle.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import slidescout

ROOT = Path(slidescout.__file__).parent

# most specific prefix first
LAYERS: list[tuple[str, int]] = [
    ("slidescout.cli", 5),
    ("slidescout.traces.viewer", 5),
    ("slidescout.tools.mcp_server", 5),
    ("slidescout.studio", 5),
    ("slidescout.__main__", 5),
    ("slidescout.eval", 4),
    ("slidescout.traces", 4),
    ("slidescout.agents", 3),
    ("slidescout.testing", 3),
    ("slidescout.tools", 2),
    ("slidescout.slides", 1),
    ("slidescout.core", 0),
    ("slidescout.errors", 0),
    ("slidescout.prompts", 0),
]
NAMES = {0: "core", 1: "slides", 2: "tools", 3: "agents", 4: "eval", 5: "apps"}


def layer_of(module: str) -> int | None:
    for prefix, layer in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return None


def _module_name(path: Path) -> tuple[str, str]:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
        return ".".join(parts), ".".join(parts)
    return ".".join(parts), ".".join(parts[:-1])


@functools.cache
def _imports() -> list[tuple[str, str, int, bool, bool]]:
    """(module, imported module, line, inside a function, inside ``if TYPE_CHECKING``)."""
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        if "node_modules" in path.parts:
            continue
        module, package = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    targets = [".".join(base + ([node.module] if node.module else []))]
                else:
                    targets = [node.module or ""]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            in_function = type_checking = False
            p = parents.get(node)
            while p is not None:
                in_function |= isinstance(p, (ast.FunctionDef, ast.AsyncFunctionDef))
                type_checking |= isinstance(p, ast.If) and "TYPE_CHECKING" in ast.unparse(p.test)
                p = parents.get(p)
            out.extend(
                (module, t, node.lineno, in_function, type_checking)
                for t in targets
                if t.startswith("slidescout")
            )
    return out


def test_every_module_has_a_layer() -> None:
    modules = {m for m, *_ in _imports()}
    assert {m for m in modules if m != "slidescout" and layer_of(m) is None} == set()


def test_no_module_imports_a_higher_layer() -> None:
    upward = [
        f"{m}:{line} imports {t} ({NAMES[layer_of(m)]} -> {NAMES[layer_of(t)]})"  # type: ignore[index]
        for m, t, line, _, tc in _imports()
        if not tc
        and layer_of(m) is not None
        and layer_of(t) is not None
        and layer_of(t) > layer_of(m)
    ]  # type: ignore[operator]
    assert upward == []


# an app whose third-party SDK takes seconds to import loads when its command runs, not at CLI start
ON_DEMAND_APPS = ("slidescout.tools.mcp_server",)


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])  # slidescout.slides, slidescout.tools, ...


def test_no_import_between_packages_hides_in_a_function() -> None:
    """Between packages, imports sit at the top; inside one package a module may load a sibling on
    first use (one that pulls torch, starlette or another heavy third-party library)."""
    hidden = [
        f"{m}:{line} imports {t} inside a function"
        for m, t, line, fn, _ in _imports()
        if fn
        and m != "slidescout"
        and _package(m) != _package(t)
        and not (m.startswith("slidescout.cli.") and t.startswith(ON_DEMAND_APPS))
    ]
    assert hidden == []


def test_layer_rules_catch_an_upward_import() -> None:
    assert layer_of("slidescout.core.messages") == 0 and layer_of("slidescout.agents.loop") == 3
    assert (
        layer_of("slidescout.traces.viewer.app") == 5 and layer_of("slidescout.traces.rundir") == 4
    )


def test_strategies_depend_on_hooks_not_the_agent() -> None:
    """Prompts, the opening message and the strategies see the agent through ``Hooks`` only, and
    environments differ by what they offer, never by their type."""
    for module in ("protocol", "baselines", "strategies", "run_settings"):
        imported = {t for m, t, *_ in _imports() if m == f"slidescout.agents.{module}"}
        assert "slidescout.agents.loop" not in imported, module
    text = "\n".join(p.read_text(encoding="utf-8") for p in ROOT.rglob("*.py"))
    assert "isinstance(env, SlideEnvironment)" not in text
    assert "isinstance(env, ImageSetEnvironment)" not in text


def test_one_home_resolver(monkeypatch) -> None:  # noqa: ANN001
    """Every module that keeps state under SLIDESCOUT_HOME asks ``core.home``: a blank value means
    unset everywhere, and no module reads the variable itself."""
    from pathlib import Path

    from slidescout.core.home import slidescout_home
    from slidescout.eval.medframeqa import default_cache_dir
    from slidescout.tools.experts import catalog
    from slidescout.tools.knowledge.index import default_index_path
    from slidescout.traces.viewer.assets import home_dir

    monkeypatch.setenv("SLIDESCOUT_HOME", " ")
    default = Path.home() / ".slidescout"
    assert slidescout_home() == home_dir() == catalog.home() == default
    assert default_cache_dir().parent.parent == default
    assert default_index_path().parent.parent == default
    readers = [
        str(p.relative_to(ROOT))
        for p in ROOT.rglob("*.py")
        if 'environ.get("SLIDESCOUT_HOME' in p.read_text(encoding="utf-8")
    ]
    assert readers == []


def test_every_subpackage_has_an_init_with_all() -> None:
    import importlib

    packages = sorted(
        p
        for p in ROOT.rglob("*")
        if p.is_dir() and any(p.glob("*.py")) and "__pycache__" not in p.parts
    )
    missing = [str(p.relative_to(ROOT)) for p in packages if not (p / "__init__.py").is_file()]
    assert missing == []
    for p in packages:
        name = ".".join(["slidescout", *p.relative_to(ROOT).parts])
        module = importlib.import_module(name)
        assert isinstance(getattr(module, "__all__", None), list), name
        lazy = getattr(module, "_LAZY", None)
        if lazy is not None:  # names loaded on first use: __all__ spells them out too
            assert set(lazy) <= set(module.__all__), name
        for attr in module.__all__:
            assert getattr(module, attr) is not None, f"{name}.{attr}"


def test_architecture_doc_names_only_modules_that_exist() -> None:
    """docs/architecture.md stays true: every module and folder it names exists, and every
    package of the layer map is in its layer table."""
    import re

    doc = (ROOT.parent.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    files = {p.name for p in ROOT.rglob("*.py")} | {
        p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.py")
    }
    folders = {p.relative_to(ROOT).as_posix() + "/" for p in ROOT.rglob("*") if p.is_dir()}
    folders |= {p.name + "/" for p in ROOT.rglob("*") if p.is_dir()}
    named = re.findall(r"`([A-Za-z0-9_./*]+\.py|[A-Za-z0-9_/]+/)`", doc)
    missing = []
    for name in named:
        if name.startswith(("tests/", "benchmarks/", "corpus/", "src/")) or "*" in name:
            continue
        if name not in files and name not in folders:
            missing.append(name)
    assert missing == []
    table = doc.split("## Layers", 1)[1].split("\n## ", 1)[0]
    for prefix, _ in LAYERS:
        path = prefix.removeprefix("slidescout").strip(".").replace(".", "/")
        if path and not path.startswith("__"):
            shown = f"`{path}/`" if (ROOT / path).is_dir() else f"`{path}.py`"
            if (ROOT / path).is_dir() or (ROOT / f"{path}.py").is_file():
                assert shown in table, shown
