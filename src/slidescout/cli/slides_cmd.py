"""CLI commands (slides_cmd)."""

from slidescout.cli.app import app  # noqa: F401
