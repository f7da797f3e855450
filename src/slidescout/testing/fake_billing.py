"""What the fake servers report as usage: a request's tokens counted from its wire body by the
providers' published rules (``agents.models.accounting``), and each provider's prompt cache.

- Text: every string a model reads (texts, tool descriptions and schemas, arguments...) at about
  4 characters a token; ids, types, roles, signatures and encrypted reasoning are not counted.
- Images: decoded for their size, then Claude's or OpenAI's image rule (by the body's model).
- Anthropic's cache: a request is a sequence of blocks (tools, system, then every content block
  of every message); a prefix ending at a ``cache_control`` breakpoint is written (at least the
  model's minimum) and later read by a request whose same prefix (``cache_control`` ignored)
  ends within 20 blocks before one of its breakpoints.
- OpenAI's cache: automatic. The longest prefix of items (tools, instructions, input items or
  messages) seen in an earlier request is read, if at least 1024 tokens, in 128-token steps.

The counts differ from a real provider's (its tokenizer is not run), but they follow the same
rules, so a benchmark against the fakes bills what a provider would bill for the same layout.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
from typing import Any

from PIL import Image

from slidescout.agents.models import accounting

__all__ = ["AnthropicCache", "OpenAICache", "body_blocks", "block_tokens"]

_SKIP = frozenset(
    {
        "type",
        "role",
        "id",
        "call_id",
        "tool_use_id",
        "media_type",
        "status",
        "model",
        "detail",
        "signature",
        "encrypted_content",
        "cache_control",
        "data",
        "url",
        "image_url",
        "source",
    }
)


def _image_size(obj: dict[str, Any]) -> tuple[int, int] | None:
    """The pixel size of an image block (Anthropic ``source``, OpenAI data URL), else None."""
    raw: str | None = None
    src = obj.get("source")
    if isinstance(src, dict) and src.get("type") == "base64":
        raw = src.get("data")
    url = obj.get("image_url")
    if isinstance(url, dict):
        url = url.get("url")
    if isinstance(url, str) and url.startswith("data:"):
        raw = url.split(",", 1)[1]
    if not raw:
        return None
    try:
        with Image.open(io.BytesIO(base64.b64decode(raw))) as im:
            return im.size
    except Exception:  # not an image: counted as nothing, as a provider would reject it
        return None


def block_tokens(obj: Any, provider: str, model: str) -> int:
    """Tokens of one block (or any part of a body) by the provider's rules."""
    n_chars = 0
    images = 0
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            size = _image_size(o)
            if size is not None:
                inner = o.get("image_url")
                detail = o.get("detail") or (
                    inner.get("detail") if isinstance(inner, dict) else None
                )
                images += accounting.image_tokens(provider, model, size[0], size[1], detail)
            stack.extend(v for k, v in o.items() if k not in _SKIP)
        elif isinstance(o, list):
            stack.extend(o)
        elif isinstance(o, str):
            n_chars += len(o)
    return accounting.char_tokens(n_chars) + images


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items() if k != "cache_control"}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


def body_blocks(body: dict[str, Any], provider: str) -> list[tuple[Any, bool]]:
    """A body's cacheable blocks in prompt order, each with whether it carries a breakpoint."""
    out: list[tuple[Any, bool]] = []
    if provider == "anthropic":
        out += [(t, "cache_control" in t) for t in body.get("tools") or []]
        system = body.get("system")
        if isinstance(system, list):
            out += [(b, "cache_control" in b) for b in system]
        elif system:
            out.append((system, False))
        for m in body.get("messages") or []:
            content = m.get("content")
            blocks = content if isinstance(content, list) else [content]
            out += [
                ({"role": m.get("role"), "block": b}, isinstance(b, dict) and "cache_control" in b)
                for b in blocks
            ]
        return out
    if body.get("tools"):
        out.append((body["tools"], False))
    if body.get("instructions"):
        out.append((body["instructions"], False))
    items = body.get("input") if "input" in body else body.get("messages")
    if isinstance(items, str):
        items = [items]
    out += [(i, False) for i in items or []]
    return out


def _prefix_keys(
    blocks: list[tuple[Any, bool]], provider: str, model: str
) -> tuple[list[str], list[int]]:
    """Per block: the hash of the prefix ending there, and the tokens up to it."""
    keys, cum = [], []
    h = hashlib.sha256()
    total = 0
    for block, _ in blocks:
        h.update(json.dumps(_plain(block), sort_keys=True).encode())
        keys.append(h.copy().hexdigest())
        total += block_tokens(block, provider, model)
        cum.append(total)
    return keys, cum


class AnthropicCache:
    """Claude's prompt cache over breakpoints, as a server would keep it (thread-safe)."""

    def __init__(self) -> None:
        self._written: set[str] = set()
        self._lock = threading.Lock()

    def usage(self, body: dict[str, Any]) -> dict[str, int]:
        """``input`` (after the last breakpoint), ``cached`` (read) and ``cache_write``."""
        model = str(body.get("model", ""))
        blocks = body_blocks(body, "anthropic")
        keys, cum = _prefix_keys(blocks, "anthropic", model)
        total = cum[-1] if cum else 0
        points = [i for i, (_, bp) in enumerate(blocks) if bp]
        rules = accounting.rules()["anthropic"]["cache"]
        points = points[: int(rules["max_breakpoints"])]
        minimum = accounting.anthropic_min_cache_tokens(model)
        with self._lock:
            hit = -1
            for p in points:  # the longest written prefix within the lookback of a breakpoint
                for j in range(p, max(-1, p - int(rules["lookback_blocks"]) - 1), -1):
                    if keys[j] in self._written:
                        hit = max(hit, j)
                        break
            read = cum[hit] if hit >= 0 else 0
            last = points[-1] if points else -1
            write = 0
            if last >= 0 and cum[last] >= minimum and last > hit:
                write = cum[last] - read
                self._written.update(keys[p] for p in points if cum[p] >= minimum)
        return {"input": total - read - write, "cached": read, "cache_write": write}


class OpenAICache:
    """OpenAI's automatic prefix cache, as a server would keep it (thread-safe)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def usage(self, body: dict[str, Any]) -> dict[str, int]:
        """``input`` (every input token, cached included) and ``cached``."""
        model = str(body.get("model", ""))
        keys, cum = _prefix_keys(body_blocks(body, "openai"), "openai", model)
        total = cum[-1] if cum else 0
        with self._lock:
            shared = max((cum[i] for i, k in enumerate(keys) if k in self._seen), default=0)
            if total >= int(accounting.rules()["openai"]["cache"]["min_tokens"]):
                self._seen.update(keys)
        return {"input": total, "cached": accounting.openai_cached_tokens(shared)}
