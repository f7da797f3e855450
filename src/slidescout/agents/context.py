"""What the model sees: images stored once by hash, and a context kept within K images."""

from __future__ import annotations

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
    if not n_drop:
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
