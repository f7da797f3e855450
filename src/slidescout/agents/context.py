"""What the model sees: images stored once by hash; the context kept append-only and within the
model's context window (``fit_window``), or within the last K images (``prune_images``)."""

from __future__ import annotations

from collections.abc import Callable

from slidescout.core.imaging import encode_jpeg
from slidescout.core.messages import (
    ImagePart,
    ImageRef,
    Message,
    TextPart,
    ToolMessage,
    ToolResultPart,
    UserMessage,
)
from slidescout.core.recorder import Recorder
from slidescout.core.types import View


def store_view(
    recorder: Recorder, view: View, *, source: str | None, label: str, quality: int = 90
) -> ImagePart:
    """A rendered view encoded as JPEG (once, for shared views), stored by hash, ready to send."""
    data = encode_jpeg(view.image, quality)
    ref = ImageRef(
        sha256=recorder.put_image(data, "image/jpeg"),
        width=view.width,
        height=view.height,
        box=view.box.as_tuple(),
        level=view.level,
        mpp=view.mpp,
        source=source,
        label=label,
    )
    return ImagePart(image=ref, data=data)


def image_note(ref: ImageRef, show_mpp: bool = True) -> str:
    """The text that replaces an image pruned from the context."""
    where = (
        f"region (x={ref.box[0]}, y={ref.box[1]}, w={ref.box[2]}, h={ref.box[3]})"
        if ref.box
        else "an image"
    )
    mpp = f" at {ref.mpp:.2f} µm/px" if ref.mpp and show_mpp else ""
    label = f" [{ref.label}]" if ref.label else ""
    return f"[image no longer shown to save context: {where}{mpp}{label}]"


def _count_images(messages: list[Message]) -> list[tuple[int, int, int | None]]:
    """Positions of every image: (message index, part index, content index or None)."""
    pos: list[tuple[int, int, int | None]] = []
    for mi, m in enumerate(messages):
        if isinstance(m, UserMessage):
            pos.extend((mi, pi, None) for pi, p in enumerate(m.parts) if isinstance(p, ImagePart))
        elif isinstance(m, ToolMessage):
            for ri, r in enumerate(m.results):
                pos.extend(
                    (mi, ri, ci) for ci, c in enumerate(r.content) if isinstance(c, ImagePart)
                )
    return pos


def pruned_count(n: int, keep_last: int, block: int = 0) -> int:
    """How many of ``n`` images (after the first ones) are dropped to keep the last ``keep_last``,
    dropping in steps of ``block + 1``: between two steps the context only grows, so the request
    prefix stays the same and providers' prompt caches keep hitting (from ``keep_last`` to
    ``keep_last + block`` images stay visible)."""
    if n <= keep_last:
        return 0
    step = max(1, block + 1)
    return step * ((n - keep_last) // step)


def prune_images(
    messages: list[Message],
    keep_last: int | None,
    keep_first: int = 1,
    block: int = 0,
    show_mpp: bool = True,
) -> list[Message]:
    """A copy of ``messages`` with all but the first ``keep_first`` (the overview) and the last
    ``keep_last`` images replaced by a text note, dropped in blocks (``pruned_count``).
    ``keep_last=None`` keeps every image."""
    positions = _count_images(messages)
    if keep_last is None or len(positions) <= keep_first + keep_last:
        return list(messages)
    n_drop = pruned_count(len(positions) - keep_first, keep_last, block)
    return drop_images(messages, n_drop, keep_first, show_mpp)


def drop_images(
    messages: list[Message], n_drop: int, keep_first: int = 1, show_mpp: bool = True
) -> list[Message]:
    """A copy of ``messages`` with the ``n_drop`` oldest images after the first ``keep_first``
    replaced by a note of where they were (``image_note``)."""
    positions = _count_images(messages)
    if n_drop <= 0:
        return list(messages)
    drop = set(positions[keep_first : keep_first + n_drop])
    out: list[Message] = []
    for mi, m in enumerate(messages):
        if isinstance(m, UserMessage) and any((mi, pi, None) in drop for pi in range(len(m.parts))):
            parts = [
                TextPart(text=image_note(p.image, show_mpp))
                if (mi, pi, None) in drop and isinstance(p, ImagePart)
                else p
                for pi, p in enumerate(m.parts)
            ]
            out.append(UserMessage(parts=parts))
        elif isinstance(m, ToolMessage) and any(d[0] == mi for d in drop):
            results = []
            for ri, r in enumerate(m.results):
                content = [
                    TextPart(text=image_note(c.image, show_mpp))
                    if (mi, ri, ci) in drop and isinstance(c, ImagePart)
                    else c
                    for ci, c in enumerate(r.content)
                ]
                results.append(
                    ToolResultPart(
                        tool_call_id=r.tool_call_id,
                        name=r.name,
                        content=content,
                        is_error=r.is_error,
                    )
                )
            out.append(ToolMessage(results=results))
        else:
            out.append(m)
    return out


def fit_window(
    messages: list[Message],
    *,
    dropped: int,
    limit: int,
    count: Callable[[list[Message]], int],
    keep_first: int = 1,
    keep_last: int = 1,
    show_mpp: bool = True,
) -> tuple[list[Message], int]:
    """The context for a request of at most ``limit`` tokens (``count`` estimates them), and how
    many old images it drops.

    The history is append-only: the ``dropped`` oldest images (after the first ``keep_first``)
    stay dropped, nothing else changes, so every request's prefix is the previous request and
    prompt caches read it. Only when the request would exceed ``limit`` are more old images
    dropped, in one block, until it is at most half the limit (the newest ``keep_last`` always
    stay): the prefix breaks once, then grows again for a long while."""
    context = drop_images(messages, dropped, keep_first, show_mpp)
    if count(context) <= limit:
        return context, dropped
    droppable = max(dropped, images_in(messages) - keep_first - keep_last)
    lo, hi = dropped + 1, droppable  # the fewest drops that bring the request to limit / 2
    if lo > hi:
        return context, dropped
    while lo < hi:
        mid = (lo + hi) // 2
        if count(drop_images(messages, mid, keep_first, show_mpp)) <= limit // 2:
            hi = mid
        else:
            lo = mid + 1
    return drop_images(messages, lo, keep_first, show_mpp), lo


def images_in(messages: list[Message]) -> int:
    return len(_count_images(messages))


def request_size(messages: list[Message]) -> int:
    """Approximate request bytes: text length plus base64 size of images still in the context."""
    total = 0
    for m in messages:
        total += len(m.model_dump_json())
    for mi, pi, ci in _count_images(messages):
        m = messages[mi]
        part = m.parts[pi] if ci is None else m.results[pi].content[ci]  # type: ignore[union-attr]
        if isinstance(part, ImagePart) and part.data:
            total += (len(part.data) * 4) // 3
    return total
