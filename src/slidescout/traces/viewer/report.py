"""One self-contained HTML file for a run or a trace: opens offline, from file://, in any browser.

Every image is embedded once, as a data URI, downscaled so that the file stays within a size (50 MB
by default, see ``embed``); the stylesheet and the small script are inlined; a
Content-Security-Policy forbids any request, so the file cannot fetch anything even by mistake.
For each sample: question, answer, truth, status, the slide thumbnail with the viewed regions
(numbered, SVG) and the truth regions, and the step timeline with the exact images the model saw.
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from slidescout.errors import SlidescoutError
from slidescout.traces.safeio import atomic_write
from slidescout.traces.viewer.embed import (
    DEFAULT_MAX_BYTES,
    EmbeddedImages,
    Source,
    embed,
    placeholder,
)
from slidescout.traces.viewer.runindex import RunIndex
from slidescout.traces.viewer.sampleview import build_sample

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
THUMB_SIDE = 1024


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _cost(v: float | None) -> str:
    if v is None:
        return "?"
    if v == 0:
        return "$0"
    return f"${v:.4f}" if v < 1 else f"${v:.2f}"


def _int(v: int | None) -> str:
    if v is None:
        return "–"
    return f"{v / 1000:.1f}k" if v >= 10000 else str(v)


def _secs(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.1f} s"


def _box(b: list[int] | None) -> str:
    return f"({b[0]:,}, {b[1]:,}) {b[2]:,}×{b[3]:,}" if b else ""


def _sid(sample_id: str) -> str:
    """A sample id, whole: it wraps when the column is narrow (never elided, so ids that differ
    only in the middle stay apart)."""
    return f'<span class="sid" title="{_e(sample_id)}">{_e(sample_id)}</span>'


def label_place(
    box: list[int], shown: tuple[int, int, int, int], fs: float, label: str
) -> tuple[float, float, str, str]:
    """(x, y, dy, text-anchor) of a truth label that stays inside the shown box: under the region,
    right-aligned where it would run past the right edge, above the region near the bottom edge
    (``staticview.js`` ``labelPlace`` does the same in the browser)."""
    bx, by, bw, bh = shown
    width = 0.62 * fs * len(label)
    x, anchor = float(box[0]), "start"
    if box[0] + width > bx + bw:
        x, anchor = float(min(box[0] + box[2], bx + bw)), "end"
        if x - width < bx:
            x, anchor = float(bx), "start"
    y, dy = float(box[1] + box[3]), "1em"
    if y + 1.25 * fs > by + bh:
        y, dy = (float(box[1]), "-0.3em") if box[1] - 1.25 * fs >= by else (y, "-0.3em")
    return x, y, dy, anchor


def home_label(d: dict[str, Any]) -> str:
    """The button that shows everything again: the slide, or the images of an image set."""
    if d["slide"]["kind"] != "imageset":
        return "Whole slide"
    return "All images" if len(d["images"]) > 1 else "Whole image"


def _heat_legends(d: dict[str, Any]) -> str:
    """What each heatmap's colours mean, as the tool that drew it said."""
    out = []
    for r in d["overlays"]:
        if not r["url"]:
            continue
        step = "·" if r.get("step") is None else str(r["step"] + 1)
        legend = r.get("legend") or "no colour scale recorded by the tool"
        scale = (
            '<span class="heat-scale" aria-hidden="true">0 <span class="heat-bar"></span> 1</span>'
            if "blue = low" in legend
            else ""
        )
        out.append(
            f'<p class="heat-legend small"><span class="k">Layer · step {step}'
            f'{" · " + _e(r["label"]) if r.get("label") else ""}</span> {scale}<span class="muted">{_e(legend)}</span></p>'
        )
    return f'<div class="heat-legends">{"".join(out)}</div>' if out else ""


def _verdict(correct: bool | None) -> str:
    if correct is True:
        return '<span class="badge badge-ok">correct</span>'
    if correct is False:
        return '<span class="badge badge-bad">wrong</span>'
    return '<span class="badge badge-muted">not scored</span>'


def _status(status: str) -> str:
    kind = "neutral" if status == "answered" else "run" if status == "running" else "warn"
    return f'<span class="badge badge-{kind}">{_e(status)}</span>'


def _jpeg(data: bytes) -> tuple[bytes, str]:
    return data, "image/jpeg"


class _Images:
    """Placeholders for blobs and slide thumbnails; ``sources`` says how to load each (see ``embed``)."""

    def __init__(self, index: RunIndex) -> None:
        self.index = index
        self.sources: dict[str, Source] = {}
        self.thumbs: dict[str, tuple[str, list[int]] | None] = {}

    def __call__(self, ref: Any) -> str | None:
        sha = ref.sha256
        if sha not in self.sources:
            if self.index.blob_path(sha) is None:
                return None
            self.sources[sha] = Source(functools.partial(self.index.blob_bytes, sha))
        return placeholder(sha)

    def thumbnail(self, tiles: Any, path: Path) -> tuple[str, list[int]] | None:
        """One thumbnail per slide file, however many samples show it."""
        key = "t" + hashlib.sha256(str(path).encode("utf-8")).hexdigest()[:24]
        if key not in self.thumbs:
            try:
                data, box = tiles.thumbnail(path, THUMB_SIDE)
            except SlidescoutError as exc:
                log.warning("no thumbnail for %s: %s", path, exc)
                self.thumbs[key] = None
            else:
                self.sources[key] = Source(functools.partial(_jpeg, data), thumbnail=True)
                self.thumbs[key] = (placeholder(key), list(box))
        return self.thumbs[key]


# -- slide figure -------------------------------------------------------------------------------


def _thumbnail(
    index: RunIndex, tiles: Any, images: _Images, img: dict[str, Any]
) -> tuple[str | None, list[int] | None]:
    entry = index.slide(img["key"]) if img.get("key") else None
    if entry is not None:
        found = images.thumbnail(tiles, entry.path)
        if found is not None:
            return found
    if img.get("overview"):
        return img["overview"]["url"], img["overview"]["box"]
    return None, None


def _figure(img: dict[str, Any], d: dict[str, Any], src: str | None, box: list[int] | None) -> str:
    if box is None:
        box = [0, 0, int(img.get("width") or 1), int(img.get("height") or 1)]
    bx, by, bw, bh = box
    fs = max(bw, bh) / 42
    views = [r for r in d["regions"] if r["image"] == img["index"]]
    parts = ['<g class="sv-heat">']
    for r in d["overlays"]:
        if r["image"] == img["index"] and r["url"]:
            x, y, w, h = r["box"]
            parts.append(
                f'<image href="{_e(r["url"])}" x="{x}" y="{y}" width="{w}" height="{h}" preserveAspectRatio="none"/>'
            )
    parts.append("</g>")
    for t in d["truth_regions"]:
        if t["image"] != img["index"]:
            continue
        x, y, w, h = t["box"]
        lx, ly, dy, anchor = label_place(t["box"], (bx, by, bw, bh), fs, t["label"])
        parts.append(
            f'<g class="sv-truth"><rect x="{x}" y="{y}" width="{w}" height="{h}" vector-effect="non-scaling-stroke"/>'
            f'<text x="{lx:g}" y="{ly:g}" dy="{dy}" text-anchor="{anchor}">{_e(t["label"])}</text></g>'
        )
    if len(views) > 1:
        pts = " ".join(
            f"{r['box'][0] + r['box'][2] / 2:g},{r['box'][1] + r['box'][3] / 2:g}" for r in views
        )
        parts.append(
            f'<polyline class="sv-path" vector-effect="non-scaling-stroke" points="{pts}"/>'
        )
    for r in sorted(
        (r for r in views if not r["dup_of"]), key=lambda r: -r["box"][2] * r["box"][3]
    ):
        x, y, w, h = r["box"]
        ns = [r["n"], *r["also"]]
        parts.append(
            f'<g class="sv-region" data-n="{r["n"]}" data-ns="{" ".join(map(str, ns))}" data-entry="{r["entry"]}" '
            f'data-box="{x},{y},{w},{h}"><title>region {", ".join(map(str, ns))}: {_e(_box(r["box"]))}</title>'
            f'<rect x="{x}" y="{y}" width="{w}" height="{h}" vector-effect="non-scaling-stroke"/>'
            f'<text x="{x}" y="{y}" dx="0.2em" dy="1em">{" · ".join(map(str, ns))}</text></g>'
        )
    pic = (
        f'<img class="sv-img" src="{_e(src)}" alt="{_e(img["name"])}: thumbnail">'
        if src
        else '<div class="sv-missing">slide file not available</div>'
    )
    caption = f"<figcaption>{_e(img['name'])}</figcaption>" if len(d["images"]) > 1 else ""
    mpp = d["slide"]["mpp"] if d["slide"]["kind"] == "slide" else None
    mpp_attr = f' data-mpp="{mpp:g}"' if mpp else ""
    return (
        f'<figure class="sv-fig"><div class="sv" style="aspect-ratio:{bw}/{bh}" data-box="{bx} {by} {bw} {bh}"{mpp_attr}>'
        f'<div class="sv-inner">{pic}<svg class="sv-svg" viewBox="{bx} {by} {bw} {bh}" preserveAspectRatio="none" '
        f'style="--fs:{fs:.1f}px" role="img" aria-label="{len(views)} viewed regions">{"".join(parts)}</svg>'
        f"</div></div>{caption}</figure>"
    )


# -- timeline -------------------------------------------------------------------------------------


def _seen(img: dict[str, Any], label: str | None = None) -> str:
    cap = " · ".join(
        x
        for x in (
            f"#{img['region']}" if img.get("region") else None,
            label or img.get("label"),
            _box(img.get("box")) or None,
            f"{img['mpp']:.2f} µm/px" if img.get("mpp") else None,
            f"{img['width']}×{img['height']} px",
        )
        if x
    )
    if not img.get("url"):
        return f'<figure class="seen"><div class="thumb-missing">image not stored</div><figcaption>{_e(cap)}</figcaption></figure>'
    cls = "seen seen-heat" if img.get("overlay") else "seen"
    return (
        f'<figure class="{cls}"><img src="{img["url"]}" alt="Image the model saw: {_e(cap)}" loading="lazy" '
        f'width="{img["width"]}" height="{img["height"]}"><figcaption>{_e(cap)}</figcaption></figure>'
    )


def _args(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in (args or {}).items())


def _step_title(e: dict[str, Any]) -> str:
    tools = [c["name"] for c in e["calls"]]
    if e["answer"]:
        return "Answer"
    if tools:
        return ", ".join(tools)
    return "Setup" if e["step"] is None else "Thought"


def _step_metrics(e: dict[str, Any]) -> str:
    u = e["usage"]
    metrics = ""
    if u:
        metrics += f'<span title="input → output tokens">{_int(u["input_tokens"])} → {_int(u["output_tokens"])} tok</span>'
        metrics += f'<span title="cost">{_cost(u["cost_usd"])}</span>'
    if e["latency_s"] is not None:
        metrics += f'<span title="model latency">{_secs(e["latency_s"])}</span>'
    return metrics


def _rethink(rt: dict[str, Any] | None) -> str:
    """The step's hypothesis, confidence, differential and needed evidence, or ``""``."""
    if not rt or not (
        rt.get("hypothesis") or rt.get("differential") or rt.get("confidence") is not None
    ):
        return ""
    conf = rt.get("confidence")
    conf_html = (
        f'<span class="conf"><meter min="0" max="1" value="{conf}" aria-label="confidence"></meter> {conf * 100:.0f}%</span>'
        if conf is not None
        else ""
    )
    diff = "".join(f'<span class="chip">{_e(x)}</span>' for x in rt.get("differential") or [])
    return (
        '<div class="rethink"><div class="rethink-head"><span class="k">Hypothesis</span>'
        + conf_html
        + "</div>"
        + (f"<p>{_e(rt['hypothesis'])}</p>" if rt.get("hypothesis") else "")
        + (f'<p class="diff"><span class="k">Differential</span>{diff}</p>' if diff else "")
        + (
            f'<p class="muted"><span class="k">Needs</span>{_e(rt["needed_evidence"])}</p>'
            if rt.get("needed_evidence")
            else ""
        )
        + "</div>"
    )


def _call(c: dict[str, Any], running: bool) -> str:
    """One tool call: its signature, duration, errors, result text and images."""
    res = c["result"]
    sig = _e(c["raw_arguments"] or _args(c["arguments"]))
    part = f'<div class="call"><code class="call-sig"><span class="fn">{_e(c["name"])}</span>({sig})</code>'
    if res and res.get("duration_s"):
        part += f' <span class="muted small">{_secs(res["duration_s"])}</span>'
    if c["parse_error"]:
        part += f'<p class="err">could not parse arguments: {_e(c["parse_error"])}</p>'
    if res:
        if res["error"]:
            part += f'<p class="err"><strong>Error: </strong>{_e(res["error"])}</p>'
        if res["internal_error"]:
            part += f'<p class="err small">internal: {_e(res["internal_error"])}</p>'
        if res["text"]:
            part += f'<details class="result"><summary>Tool result</summary><div class="pre">{_e(res["text"])}</div></details>'
        if res["images"]:
            part += '<div class="seen-row">' + "".join(_seen(i) for i in res["images"]) + "</div>"
    elif running:
        part += '<p class="muted small">running…</p>'
    return part + "</div>"


def _outcome(e: dict[str, Any]) -> list[str]:
    """The step's errors, retries, notes and final answer."""
    body: list[str] = []
    for err in e["errors"]:
        body.append(
            f'<p class="err"><strong>{"Fatal error" if err["fatal"] else "Error"}: </strong>{_e(err["message"])}</p>'
        )
    if e["retries"]:
        body.append(
            f'<p class="muted small">{len(e["retries"])} retries: {_e(", ".join(r["reason"] for r in e["retries"]))}</p>'
        )
    for n in e["notes"]:
        first = n.split("\n")[0][:120]
        rest = f'<div class="pre small">{_e(n)}</div>' if "\n" in n else ""
        body.append(f'<details class="note"><summary>{_e(first)}</summary>{rest}</details>')
    if e["answer"]:
        k = "Final answer (forced)" if e["answer"]["forced"] else "Final answer"
        body.append(
            f'<div class="answer"><span class="k">{k}</span><div class="pre">{_e(e["answer"]["text"])}</div></div>'
        )
    return body


def _step(e: dict[str, Any], running: bool) -> str:
    title = _step_title(e)
    rnums = "".join(f'<span class="rnum">{n}</span>' for n in e["regions"])
    classes = "step" + (" has-error" if e["errors"] else "") + (" is-answer" if e["answer"] else "")
    label = f"{e['title']}: {title}" + (
        f", regions {', '.join(map(str, e['regions']))}" if e["regions"] else ""
    )
    body: list[str] = []
    if e["shown"]:
        body.append(
            '<div class="seen-row">'
            + "".join(_seen(i, i.get("purpose")) for i in e["shown"])
            + "</div>"
        )
    if e["reasoning"]:
        body.append(
            f'<details class="reasoning"><summary>Reasoning</summary><div class="pre">{_e(chr(10).join(e["reasoning"]))}</div></details>'
        )
    if e["thought"] and not (e["answer"] and e["answer"]["text"].strip() == e["thought"].strip()):
        body.append(f'<div class="thought pre">{_e(e["thought"])}</div>')
    if rethink := _rethink(e["rethink"]):
        body.append(rethink)
    body.extend(_call(c, running) for c in e["calls"])
    body.extend(_outcome(e))
    no = "·" if e["step"] is None else str(e["step"] + 1)
    return (
        f'<li class="{classes}" tabindex="0" data-entry="{e["index"]}" data-regions="{" ".join(map(str, e["regions"]))}" '
        f'aria-label="{_e(label)}"><div class="step-head"><span class="step-no" aria-hidden="true">{no}</span>'
        f'<span class="step-title">{_e(title)}</span><span class="step-regions">{rnums}</span>'
        f'<span class="step-metrics">{_step_metrics(e)}</span></div><div class="step-body">{"".join(body)}</div></li>'
    )


# -- page -------------------------------------------------------------------------------------------


def _sample_html(i: int, d: dict[str, Any], row: dict[str, Any] | None, figures: str) -> str:
    row = row or {}
    u = d["usage"]
    meta = [
        ("Task", d["task"]) if d["task"] else None,
        ("Model", d["model"]),
        ("Preset", d["preset"]),
        ("Steps", str(d["n_steps"])),
        ("Tokens", f"{_int(u['input_tokens'])} in · {_int(u['output_tokens'])} out"),
        ("Cost", _cost(u["cost_usd"])),
    ]
    sl = d["slide"]
    if sl["kind"] == "slide" and sl["width"]:
        meta.append(
            (
                "Slide",
                f"{sl['width']:,} × {sl['height']:,} px"
                + (f" · {sl['mpp']:.3f} µm/px" if sl["mpp"] else ""),
            )
        )
    meta_html = "".join(
        f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in (m for m in meta if m)
    )
    answer = (
        row.get("answer")
        if row.get("answer") is not None
        else (d["answer"] or "").split("\n")[0] or "–"
    )
    truth = row.get("truth") if row.get("truth") is not None else d["truth"] or "–"
    options = ""
    if d["options"] and not all(o in d["question"] for o in d["options"]):
        options = (
            '<ol class="options">' + "".join(f"<li>{_e(o)}</li>" for o in d["options"]) + "</ol>"
        )
    n_view = len(d["regions"])
    n_heat = sum(bool(r["url"]) for r in d["overlays"])
    n_truth = len(d["truth_regions"])

    def toggle(layer: str, label: str, n: int, on: bool) -> str:
        dis = " disabled" if not n else ""
        return (
            f'<label class="toggle{dis}"><input type="checkbox" data-layer="{layer}"{" checked" if on else ""}{dis}>'
            f'<span class="swatch sw-{layer}" aria-hidden="true"></span>{label} ({n})</label>'
        )

    steps = (
        "".join(_step(e, d["status"] == "running") for e in d["steps"])
        or '<li class="empty">No events.</li>'
    )
    return f"""
<article class="report-sample" id="sample-{i}" aria-labelledby="sample-{i}-title">
  <header class="sample-head">
    <div class="title-row"><h2 id="sample-{i}-title">{_e(d["sample_id"])}</h2>{_status(row.get("status") or d["status"])}{_verdict(row.get("correct"))}
      <dl class="meta">{meta_html}</dl></div>
    <div class="qa"><div class="qa-q"><span class="k">Question</span><div><div class="q-text">{_e(d["question"])}</div>{options}</div></div>
      <div class="qa-a"><div><span class="k">Answer</span><span class="v">{_e(answer)}</span></div>
        <div><span class="k">Truth</span><span class="v">{_e(truth)}</span></div></div></div>
  </header>
  <div class="report-grid">
    <section class="report-view" aria-label="Slide with viewed regions">
      <div class="viewer-bar" role="toolbar" aria-label="Layers">{toggle("regions", "Viewed regions", n_view, True)}{toggle("truth", "Ground truth", n_truth, True)}{toggle("heat", "Heatmaps", n_heat, False)}
        <span class="spacer"></span><button type="button" class="btn btn-small home">{_e(home_label(d))}</button></div>
      <div class="slide-static hide-heat"><div class="sv-row">{figures}</div></div>
      <p class="legend small muted">Numbered boxes: regions the model viewed, in order; dashed green: ground truth. Click a step or a box.</p>
      {_heat_legends(d)}
    </section>
    <section class="report-steps" aria-label="Timeline"><ol class="steps">{steps}</ol></section>
  </div>
</article>"""


def _index_table(rows: list[dict[str, Any]], anchors: dict[str, int]) -> str:
    out = []
    for r in rows:
        i = anchors.get(r["id"])
        sid = (
            f'<a href="#sample-{i}">{_sid(r["sample_id"])}</a>'
            if i is not None
            else _sid(r["sample_id"])
        )
        out.append(
            f'<tr><td class="c-id">{sid}</td><td class="c-task">{_e(r["task"] or "–")}</td>'
            f'<td class="c-q" title="{_e(r["question"])}">{_e(r["question"])}</td>'
            f'<td class="c-ans">{_e(r["answer"] if r["answer"] is not None else "–")}</td>'
            f'<td class="c-ans">{_e(r["truth"] if r["truth"] is not None else "–")}</td>'
            f'<td class="c-res">{_verdict(r["correct"])}</td><td class="c-status">{_status(r["status"])}</td>'
            f'<td class="c-num">{_e(r["steps"] if r["steps"] is not None else "–")}</td>'
            f'<td class="c-num">{_cost(r["cost_usd"])}</td></tr>'
        )
    head = "".join(
        f'<th scope="col" class="{c}">{t}</th>'
        for c, t in (
            ("c-id", "Sample"),
            ("c-task", "Task"),
            ("c-q", "Question"),
            ("c-ans", "Answer"),
            ("c-ans", "Truth"),
            ("c-res", "Result"),
            ("c-status", "Status"),
            ("c-num", "Steps"),
            ("c-num", "Cost"),
        )
    )
    return (
        f'<div class="table-wrap report-table"><table class="samples"><caption class="sr-only">Samples</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(out)}</tbody></table></div>"
    )


def render_report(
    path_in: Path | str, *, limit: int | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> str:
    """The report's HTML text (see ``write_report``)."""
    return render_report_info(path_in, limit=limit, max_bytes=max_bytes)[0]


def render_report_info(
    path_in: Path | str, *, limit: int | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[str, EmbeddedImages]:
    """The report's HTML text, and how its images were embedded."""
    index = RunIndex(path_in)
    summary = index.summary()
    rows = summary["samples"]
    images = _Images(index)
    sections, anchors = _sections(index, rows, images, limit)
    note = ""
    shown = len(sections)
    total = len({r["trace"] for r in rows if r["trace"]})
    if shown < total:
        note = (
            f'<p class="notice">Showing the first {shown} of {total} traced samples (--limit).</p>'
        )
    body = f"""<section class="stats" aria-label="Run totals">{_stats(summary)}</section>
{note}
<!--report-note-->
{_index_table(rows, anchors)}
{"".join(sections)}"""
    page, info = embed(_page(summary["name"], body), images.sources, max_bytes=max_bytes)
    if info.n_downscaled:
        note = (
            f'<p class="notice small">Images are embedded at up to {info.side} px on their long side '
            f"({info.n_downscaled} of {info.n_images} downscaled); the full-size ones are in the run's "
            "blobs/ folder: <code>slidescout view RUN</code> shows them.</p>"
        )
        page = page.replace("<!--report-note-->", note, 1)
    return page, info


def _sections(
    index: RunIndex, rows: list[dict[str, Any]], images: _Images, limit: int | None
) -> tuple[list[str], dict[str, int]]:
    """One section per traced sample (the first ``limit``; unreadable traces are skipped), and
    the section number of each sample id."""
    from slidescout.traces.viewer.dzi import TileServer

    tiles = TileServer()
    sections: list[str] = []
    anchors: dict[str, int] = {}
    seen_traces: set[str] = set()
    for row in rows:
        stem = row["trace"]
        if not stem or stem in seen_traces:
            continue
        if limit is not None and len(sections) >= limit:
            break
        seen_traces.add(stem)
        try:
            trace = index.load(stem)
        except SlidescoutError as exc:
            log.warning("skipping %s: %s", stem, exc)
            continue
        if trace is None:
            continue
        d = build_sample(trace, images, index.slide_key_for)
        figures = "".join(
            _figure(img, d, *_thumbnail(index, tiles, images, img)) for img in d["images"]
        )
        i = len(sections)
        anchors[row["id"]] = i
        sections.append(_sample_html(i, d, row, figures))
    return sections, anchors


def _stats(summary: dict[str, Any]) -> str:
    """The run totals: samples, accuracy, cost, model."""
    acc = f"{100 * summary['n_correct'] / summary['n_scored']:.1f}%" if summary["n_scored"] else "–"
    return "".join(
        f'<div class="stat"><div class="stat-label">{k}</div><div class="stat-value">{_e(v)}</div><div class="stat-sub">{_e(sub)}</div></div>'
        for k, v, sub in (
            (
                "Samples",
                str(summary["n_samples"]),
                f"{summary['n_running']} running" if summary["n_running"] else "all finished",
            ),
            (
                "Accuracy",
                acc,
                f"{summary['n_correct']} correct of {summary['n_scored']} scored"
                if summary["n_scored"]
                else "no ground truth",
            ),
            (
                "Cost",
                _cost(summary["cost_usd"]),
                f"{summary['cost_unknown']} unknown" if summary["cost_unknown"] else "total",
            ),
            (
                "Model",
                summary["model"] or "–",
                f"preset {summary['preset']}" if summary["preset"] else "",
            ),
        )
    )


def _page(name: str, main: str) -> str:
    """The standalone page around ``main``, with the viewer's CSS and script inlined."""
    css = (STATIC_DIR / "viewer.css").read_text(encoding="utf-8") + (
        STATIC_DIR / "report.css"
    ).read_text(encoding="utf-8")
    js = (STATIC_DIR / "staticview.js").read_text(encoding="utf-8") + (
        STATIC_DIR / "report.js"
    ).read_text(encoding="utf-8")
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    # keep inlined code from closing its element early
    js = js.replace("</", "<\\/")
    css = css.replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="slidescout report-html">
<title>{_e(name)} · slidescout report</title>
<style>{css}</style>
</head>
<body class="report">
<a class="skip-link" href="#main">Skip to content</a>
<header class="topbar"><span class="brand"><span class="logo" aria-hidden="true"></span>slidescout</span>
<span class="report-title">report · {_e(name)}</span><span class="report-when">{generated}</span></header>
<main id="main" class="report-main">
<h1 class="sr-only">Report of {_e(name)}</h1>
{main}
</main>
<noscript><p class="notice">The images of this report are shown by its script: allow JavaScript for this file.</p></noscript>
<!--report-images-->
<script>{js}</script>
</body>
</html>
"""


def write_report(
    path_in: Path | str,
    out_html: Path | str,
    *,
    limit: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Path:
    """Write the self-contained HTML report of a run directory or trace file; returns its path.

    Images are downscaled so that the file stays within ``max_bytes`` where it can; the caller
    checks the written size (a run with very long texts can still exceed it).
    """
    out = Path(out_html)
    text = render_report(path_in, limit=limit, max_bytes=max_bytes)
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(out, text)  # no .tmp left behind when the write fails
