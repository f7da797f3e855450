"""One sample as the viewer shows it: the step timeline, the viewed regions, the truth regions.

Built from a validated ``Trace`` (the pydantic models), shared by the web app (images as
``/blobs/<sha>`` URLs, slides as DZI keys) and the HTML report (images as data URIs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from slidescout.core.messages import ImageRef
from slidescout.core.trace import (
    AnswerEvent,
    ErrorEvent,
    ImageEvent,
    ModelCallEvent,
    NoteEvent,
    ToolEvent,
    Trace,
)

OVERLAY_WORDS = ("heatmap", "overlay")
WHOLE_IMAGE_LABELS = ("overview", "thumbnail", "montage")

ImageUrl = Callable[[ImageRef], str | None]
SlideKey = Callable[[str], str | None]


def is_overlay(ref: ImageRef) -> bool:
    """A heatmap or overlay a tool returned (drawn as an optional image layer, not a numbered box)."""
    label = (ref.label or "").lower()
    return any(w in label for w in OVERLAY_WORDS)


def _image_index(source: str | None, n_images: int) -> int:
    """0-based display image of an ``ImageRef.source`` (``"image:N"`` for image-set members)."""
    if source and source.startswith("image:"):
        try:
            i = int(source.split(":", 1)[1]) - 1
        except ValueError:
            return 0
        return i if 0 <= i < n_images else 0
    return 0


def _box(value: Any) -> list[int] | None:
    try:
        vals = [int(round(float(v))) for v in value]
    except (TypeError, ValueError):
        return None
    if len(vals) != 4 or vals[2] <= 0 or vals[3] <= 0:
        return None
    return vals


def _usage(u: Any) -> dict[str, Any]:
    return {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "reasoning_tokens": u.reasoning_tokens,
        "cached_input_tokens": u.cached_input_tokens,
        "cost_usd": u.cost_usd,
    }


def _display_images(trace: Trace, slide_key: SlideKey | None) -> list[dict[str, Any]]:
    """The images the viewer draws regions on: the slide, or each image of an image set."""
    is_set = trace.slide.kind == "imageset"
    paths = list(trace.slide.images) if is_set else [trace.slide.path]
    images: list[dict[str, Any]] = []
    for i, p in enumerate(paths):
        images.append(
            {
                "index": i,
                "name": f"Image {i + 1}" if is_set else (trace.slide.slide_id or Path(p).name),
                "file": Path(p).name if p else "",
                "key": slide_key(p) if (slide_key and p) else None,
                "width": None if is_set else trace.slide.width,
                "height": None if is_set else trace.slide.height,
                "mpp": None if is_set else trace.slide.mpp,
                "overview": None,
            }
        )
    if not images:
        images.append(
            {
                "index": 0,
                "name": "slide",
                "file": "",
                "key": None,
                "width": trace.slide.width,
                "height": trace.slide.height,
                "mpp": trace.slide.mpp,
                "overview": None,
            }
        )
    return images


def _new_entry(index: int, step: int | None) -> dict[str, Any]:
    return {
        "index": index,
        "step": step if isinstance(step, int) else None,
        "title": f"Step {step + 1}" if isinstance(step, int) else "Start",
        "thought": "",
        "reasoning": [],
        "rethink": None,
        "calls": [],
        "shown": [],
        "usage": None,
        "latency_s": None,
        "model": None,
        "forced_final": False,
        "retries": [],
        "stop_reason": None,
        "errors": [],
        "notes": [],
        "answer": None,
        "regions": [],
        "duration_s": 0.0,
        "timestamp": None,
    }


def _call_entry(call: Any) -> dict[str, Any]:
    return {
        "id": call.id,
        "name": call.name,
        "arguments": call.arguments,
        "raw_arguments": call.raw_arguments,
        "parse_error": call.parse_error,
        "result": None,
    }


class _SampleBuilder:
    """The timeline of one trace, built event by event: an entry per step, the images shown,
    the regions viewed (numbered in order) and the overlays tools returned."""

    def __init__(self, images: list[dict[str, Any]], image_url: ImageUrl) -> None:
        self.images, self.image_url = images, image_url
        self.entries: list[dict[str, Any]] = []
        self.by_step: dict[Any, dict[str, Any]] = {}
        self.regions: list[dict[str, Any]] = []  # viewed boxes, numbered in order
        self.overlays: list[dict[str, Any]] = []  # heatmaps and overlays returned by tools
        self.first_seen: dict[tuple, dict[str, Any]] = {}

    def entry_for(self, step: int | None) -> dict[str, Any]:
        entries = self.entries
        key = step if step is not None else (entries[-1]["step"] if entries else "start")
        e = self.by_step.get(key)
        if e is None:
            e = _new_entry(len(entries), step)
            self.by_step[key] = e
            entries.append(e)
        return e

    def image(self, ref: ImageRef, entry: dict[str, Any], *, whole: bool) -> dict[str, Any]:
        idx = _image_index(ref.source, len(self.images))
        out = {
            "sha256": ref.sha256,
            "url": self.image_url(ref),
            "width": ref.width,
            "height": ref.height,
            "box": list(ref.box) if ref.box else None,
            "level": ref.level,
            "mpp": ref.mpp,
            "label": ref.label,
            "source": ref.source,
            "image": idx,
            "region": None,
            "overlay": is_overlay(ref),
        }
        if ref.box and not whole and _box(ref.box):
            item = {
                "entry": entry["index"],
                "step": entry["step"],
                "box": list(ref.box),
                "image": idx,
                "label": ref.label,
                "url": out["url"],
                "mpp": ref.mpp,
                "width": ref.width,
                "height": ref.height,
            }
            if out["overlay"]:
                self.overlays.append(item)
            else:
                self._add_region(item, (idx, tuple(ref.box)), entry)
                out["region"] = item["n"]
        return out

    def _add_region(self, item: dict[str, Any], key: tuple, entry: dict[str, Any]) -> None:
        item["n"] = len(self.regions) + 1
        # a box seen again is drawn once, labelled with every visit ("5 · 15")
        first = self.first_seen.setdefault(key, item)
        item["dup_of"] = None if first is item else first["n"]
        item["also"] = []
        if first is not item:
            first["also"].append(item["n"])
        self.regions.append(item)
        entry["regions"].append(item["n"])

    def add(self, ev: Any) -> None:
        e = self.entry_for(ev.step)
        e["duration_s"] += ev.duration_s or 0.0
        if e["timestamp"] is None:
            e["timestamp"] = ev.timestamp.isoformat()
        if isinstance(ev, ModelCallEvent):
            self._model_call(e, ev)
        elif isinstance(ev, ToolEvent):
            self._tool(e, ev)
        elif isinstance(ev, ImageEvent):
            self._shown(e, ev)
        elif isinstance(ev, ErrorEvent):
            e["errors"].append({"message": ev.message, "type": ev.error_type, "fatal": ev.fatal})
        elif isinstance(ev, AnswerEvent):
            e["answer"] = {
                "text": ev.text,
                "rationale": ev.rationale,
                "forced": ev.forced,
                "supporting_steps": ev.supporting_steps,
            }
        elif isinstance(ev, NoteEvent):
            e["notes"].append(ev.message)

    def _model_call(self, e: dict[str, Any], ev: ModelCallEvent) -> None:
        e["thought"] = (
            (e["thought"] + "\n\n" + ev.output.text).strip() if e["thought"] else ev.output.text
        )
        e["reasoning"] += [r.text for r in ev.output.reasoning if r.text]
        if ev.rethink is not None:
            e["rethink"] = ev.rethink.model_dump()
        e["usage"] = _usage(ev.usage)
        e["latency_s"] = ev.latency_s
        e["model"] = ev.model
        e["forced_final"] = ev.forced_final
        e["retries"] = [r.model_dump() for r in ev.retries]
        e["stop_reason"] = ev.stop_reason
        e["images_in_context"] = ev.images_in_context
        e["calls"] += [_call_entry(call) for call in ev.output.tool_calls]

    def _tool(self, e: dict[str, Any], ev: ToolEvent) -> None:
        first_overlay = len(self.overlays)
        result = {
            "text": ev.text,
            "error": ev.error,
            "internal_error": ev.internal_error,
            "duration_s": ev.duration_s,
            "data": ev.data,
            "images": [self.image(r, e, whole=False) for r in ev.images],
        }
        heat = ev.data.get("heatmap") if isinstance(ev.data, dict) else None
        for item in self.overlays[first_overlay:]:  # what the colours mean, as the tool said it
            item["legend"] = heat.get("legend") if isinstance(heat, dict) else None
        entry = next((c for c in e["calls"] if c["id"] == ev.call.id and c["result"] is None), None)
        if entry is None:
            entry = _call_entry(ev.call)
            e["calls"].append(entry)
        entry["result"] = result

    def _shown(self, e: dict[str, Any], ev: ImageEvent) -> None:
        whole = ev.purpose in WHOLE_IMAGE_LABELS or (ev.image.label or "") in WHOLE_IMAGE_LABELS
        img = self.image(ev.image, e, whole=whole)
        img["purpose"] = ev.purpose
        e["shown"].append(img)
        target = self.images[img["image"]]
        if whole and target["overview"] is None and img["box"]:
            target["overview"] = {"url": img["url"], "box": img["box"]}
            if target["width"] is None:
                target["width"], target["height"] = (
                    img["box"][0] + img["box"][2],
                    img["box"][1] + img["box"][3],
                )

    def fill_extents(self) -> None:
        """The extent of each display image when neither the trace nor an overview says it."""
        for img in self.images:
            if img["width"] is None:
                boxes = [r["box"] for r in self.regions if r["image"] == img["index"]]
                if boxes:
                    img["width"] = max(b[0] + b[2] for b in boxes)
                    img["height"] = max(b[1] + b[3] for b in boxes)


def _truth_regions(trace: Trace, n_images: int) -> list[dict[str, Any]]:
    truth_regions: list[dict[str, Any]] = []
    for r in trace.truth.regions if trace.truth else []:
        if not isinstance(r, dict):
            continue
        box = _box(r.get("box"))
        if box is None:
            continue
        src = r.get("source") or (
            f"image:{r['image']}" if isinstance(r.get("image"), int) else None
        )
        truth_regions.append(
            {
                "label": str(r.get("label") or "truth"),
                "box": box,
                "image": _image_index(src, n_images),
            }
        )
    return truth_regions


def build_sample(
    trace: Trace, image_url: ImageUrl, slide_key: SlideKey | None = None
) -> dict[str, Any]:
    """The JSON-able view of one trace (see ``static/sample.js`` for how it is drawn)."""
    images = _display_images(trace, slide_key)
    b = _SampleBuilder(images, image_url)
    for ev in trace.events:
        b.add(ev)
    b.fill_extents()
    return {
        "sample_id": trace.sample_id,
        "run_id": trace.run_id,
        "task": trace.task,
        "question": trace.question,
        "options": list(trace.options),
        "status": trace.status,
        "answer": trace.answer,
        "rationale": trace.rationale,
        "truth": trace.truth.answer if trace.truth else None,
        "model": trace.model,
        "preset": trace.preset,
        "usage": _usage(trace.usage),
        "n_steps": trace.n_steps,
        "started_at": trace.started_at.isoformat() if trace.started_at else None,
        "finished_at": trace.finished_at.isoformat() if trace.finished_at else None,
        "slide": {
            "kind": trace.slide.kind,
            "slide_id": trace.slide.slide_id,
            "width": trace.slide.width,
            "height": trace.slide.height,
            "mpp": trace.slide.mpp,
            "mpp_source": trace.slide.mpp_source,
            "objective_power": trace.slide.objective_power,
        },
        "images": images,
        "regions": b.regions,
        "overlays": b.overlays,
        "truth_regions": _truth_regions(trace, len(images)),
        "steps": b.entries,
    }
