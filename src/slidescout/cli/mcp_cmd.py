"""CLI commands (mcp_cmd)."""

from slidescout.cli.app import app  # noqa: F401
