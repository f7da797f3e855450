"""The user's registered experts: ``$SLIDESCOUT_HOME/experts.json`` (default ``~/.slidescout``).

Each entry points at a model card file; the card points at its weights. Cards stay where the user
keeps them, so editing a card takes effect on the next load. Writes are atomic (temp file and
rename) so a crash never leaves a half-written registry.
"""

from __future__ import annotations

import difflib
import json
import os
import tempfile
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from slidescout.core.home import slidescout_home
from slidescout.errors import ConfigError
from slidescout.tools.experts.cards import Card, load_card

VERSION = 1
_LOCK = threading.Lock()


def home() -> Path:
    return slidescout_home()


def registry_path() -> Path:
    return home() / "experts.json"


def _read() -> dict[str, Any]:
    path = registry_path()
    if not path.exists():
        return {"version": VERSION, "experts": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"the expert registry {path} is unreadable ({exc}); fix or delete it"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("experts"), dict):
        raise ConfigError(
            f"the expert registry {path} is not in the expected format; fix or delete it"
        )
    return data


def _write(data: dict[str, Any]) -> None:
    path = registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".experts-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def entries() -> dict[str, dict[str, Any]]:
    """``{name: {"card": path, "added": iso time, ...}}`` as stored."""
    return dict(_read()["experts"])


def names() -> list[str]:
    return sorted(entries())


def add(card: Card, *, replace: bool = False, info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Register ``card`` under its name; ``ConfigError`` if the name is taken (unless ``replace``)."""
    with _LOCK:
        data = _read()
        existing = data["experts"].get(card.name)
        if existing and not replace and Path(existing["card"]) != card.file:
            raise ConfigError(
                f"an expert named {card.name!r} is already registered (card "
                f"{existing['card']}); remove it first or pass --replace"
            )
        entry = {
            "card": str(card.file),
            "format": card.card.format,
            "added": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **(info or {}),
        }
        data["experts"][card.name] = entry
        data["version"] = VERSION
        _write(data)
        return entry


def remove(name: str) -> dict[str, Any]:
    with _LOCK:
        data = _read()
        if name not in data["experts"]:
            raise ConfigError(unknown_message(name, sorted(data["experts"])))
        entry = data["experts"].pop(name)
        _write(data)
        return entry


def unknown_message(name: str, known: list[str]) -> str:
    msg = f"no expert model named {name!r} is registered"
    close = difflib.get_close_matches(name, known, n=2, cutoff=0.5)
    if close:
        msg += f"; did you mean {' or '.join(close)}?"
    elif known:
        msg += f"; registered: {', '.join(known)}"
    else:
        msg += "; none are registered yet (add one with `slidescout experts add CARD`)"
    return msg


def get(name: str) -> Card:
    """The card of a registered expert (``ConfigError`` when unknown or when its card broke)."""
    known = entries()
    if name not in known:
        raise ConfigError(unknown_message(name, sorted(known)))
    return load_card(known[name]["card"])


def resolve(model: str) -> Card:
    """A registered name, or a path to a card file."""
    p = Path(model).expanduser()
    if (
        model not in entries()
        and (p.suffix.lower() in (".yaml", ".yml", ".toml", ".json"))
        and p.exists()
    ):
        return load_card(p)
    return get(model)


__all__ = [
    "add",
    "entries",
    "get",
    "home",
    "names",
    "registry_path",
    "remove",
    "resolve",
    "unknown_message",
]
