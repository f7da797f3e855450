"""The public home of slidescout's exceptions (defined in ``slidescout.core.errors``)."""

from slidescout.core.errors import (
    BudgetExceeded,
    ConfigError,
    DatasetError,
    ModelError,
    SlideError,
    SlidescoutError,
    ToolError,
    TraceError,
)

__all__ = [
    "BudgetExceeded",
    "ConfigError",
    "DatasetError",
    "ModelError",
    "SlideError",
    "SlidescoutError",
    "ToolError",
    "TraceError",
]
