"""Tools the planner can call: the ``@tool`` decorator, results, context, registry and plugins.

Write a tool as a typed function (or a :class:`ToolClass` with lazy ``setup``), expose it through
the ``slidescout.tools`` entry point group, and it appears in ``slidescout tools list``. See
``docs/plugins.md``.

Importing this package is light (no torch): built-in tool modules are imported on the registry's
first use.
"""

from slidescout.errors import ToolError
from slidescout.tools.base import (
    Needs,
    Tool,
    ToolClass,
    ToolImage,
    ToolResult,
    ToolTimeout,
    as_tools,
    parse_docstring,
    tool,
    wire_name,
)
from slidescout.tools.context import ToolCancelled, ToolContext
from slidescout.tools.registry import (
    BUILTIN_MODULES,
    BUILTIN_TOOLS,
    ENTRY_POINT_GROUP,
    LoadError,
    ToolRegistry,
    ToolSet,
    default_registry,
    register_builtin,
    resolve_toolset,
)

__all__ = [
    "BUILTIN_MODULES",
    "BUILTIN_TOOLS",
    "ENTRY_POINT_GROUP",
    "LoadError",
    "Needs",
    "Tool",
    "ToolCancelled",
    "ToolClass",
    "ToolContext",
    "ToolError",
    "ToolImage",
    "ToolRegistry",
    "ToolResult",
    "ToolSet",
    "ToolTimeout",
    "as_tools",
    "default_registry",
    "parse_docstring",
    "register_builtin",
    "resolve_toolset",
    "tool",
    "wire_name",
]
