"""CLI commands (knowledge_cmd)."""

from slidescout.cli.app import app  # noqa: F401
