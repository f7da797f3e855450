"""Where slidescout keeps user state: ``$SLIDESCOUT_HOME``, by default ``~/.slidescout``.

Every module that keeps something there (pricing, the knowledge index, registered experts, the
image cache, generated datasets, the viewer's web assets) asks :func:`slidescout_home`, so they
all agree: a value that is empty or only blanks means "unset"; ``~`` is expanded.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ENV", "slidescout_home"]

ENV = "SLIDESCOUT_HOME"


def slidescout_home() -> Path:
    """``$SLIDESCOUT_HOME`` (blank: unset), else ``~/.slidescout``; ``~`` expanded."""
    value = os.environ.get(ENV, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".slidescout"
