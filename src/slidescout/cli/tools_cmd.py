"""CLI commands (tools_cmd)."""

from slidescout.cli.app import app  # noqa: F401
