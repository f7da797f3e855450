"""Two runs side by side in the viewer (``slidescout view RUNS_FOLDER``, then *Compare*): per sample,
each run's answer, correctness, cost and steps, with a link to each trace; totals on the samples
both runs have (paired, as ``slidescout compare`` scores them).

Rows come from each run's :class:`~slidescout.traces.viewer.runindex.RunIndex` (the run table's
rows), matched on (sample id, repeat). Run names are matched against the folder's list only.
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import quote

from slidescout.traces.viewer.runindex import RunIndex

__all__ = ["compare_page", "paired_rows"]


def paired_rows(a: RunIndex, b: RunIndex) -> list[dict[str, Any]]:
    """One row per (sample, repeat) of either run: ``{"key", "question", "truth", "a", "b"}``."""
    rows_a = {(r["sample_id"], r["repeat"]): r for r in a.rows(a.refresh())}
    rows_b = {(r["sample_id"], r["repeat"]): r for r in b.rows(b.refresh())}
    keys = list(dict.fromkeys([*rows_a, *rows_b]))
    out = []
    for key in keys:
        ra, rb = rows_a.get(key), rows_b.get(key)
        first = ra or rb or {}
        out.append(
            {
                "key": key,
                "question": first.get("question") or "",
                "truth": (ra or {}).get("truth") or (rb or {}).get("truth"),
                "a": ra,
                "b": rb,
            }
        )
    return out


def _totals(rows: list[dict[str, Any]], side: str) -> dict[str, Any]:
    both = [r[side] for r in rows if r["a"] is not None and r["b"] is not None]
    scored = [r for r in both if r["correct"] is not None]
    costs = [r["cost_usd"] for r in both if isinstance(r["cost_usd"], (int, float))]
    steps = [r["steps"] for r in both if isinstance(r["steps"], int)]
    return {
        "n": len(both),
        "correct": sum(bool(r["correct"]) for r in scored),
        "scored": len(scored),
        "cost": sum(costs) if costs else None,
        "unknown_cost": len(both) - len(costs),
        "steps": sum(steps) / len(steps) if steps else None,
    }


def _cell(r: dict[str, Any] | None, name: str) -> str:
    e = html.escape
    if r is None:
        return '<td class="muted" colspan="4">not in this run</td>'
    verdict = {True: ("correct", "ok"), False: ("wrong", "bad")}.get(
        r["correct"], ("not scored", "muted")
    )
    answer = e(r["answer"] or "–")
    if r["trace"]:
        href = f"runs/{quote(name)}/#/s/{quote(r['trace'])}"
        answer = f'<a href="{e(href)}" title="open the trace in {e(name)}">{answer}</a>'
    cost = "–" if r["cost_usd"] is None else f"${r['cost_usd']:.4f}"
    return (
        f'<td class="c-ans">{answer}</td>'
        f'<td class="c-res"><span class="badge badge-{verdict[1]}">{verdict[0]}</span>'
        + (
            f' <span class="muted small">{e(r["status"])}</span>'
            if r["status"] != "answered"
            else ""
        )
        + f'</td><td class="c-num">{cost}</td><td class="c-num">{r["steps"] if r["steps"] is not None else "–"}</td>'
    )


def _summary(t: dict[str, Any], name: str) -> str:
    e = html.escape
    acc = f"{100 * t['correct'] / t['scored']:.1f}%" if t["scored"] else "–"
    cost = "unknown" if t["cost"] is None else f"${t['cost']:.4f}"
    if t["unknown_cost"] and t["cost"] is not None:
        cost += f" (+{t['unknown_cost']} unknown)"
    steps = "–" if t["steps"] is None else f"{t['steps']:.1f}"
    return (
        f'<div class="stat"><div class="stat-label">{e(name)}</div>'
        f'<div class="stat-value">{acc}</div><div class="stat-sub">{t["correct"]} correct of '
        f"{t['scored']} scored · cost {cost} · {steps} steps per sample</div></div>"
    )


def compare_page(
    names: tuple[str, str], a: RunIndex, b: RunIndex, *, only_diff: bool = False
) -> str:
    """The comparison page of two runs of a folder (HTML, no script)."""
    e = html.escape
    rows = paired_rows(a, b)
    shown = [
        r for r in rows
        if not only_diff or r["a"] is None or r["b"] is None or r["a"]["correct"] != r["b"]["correct"]
        or r["a"]["answer"] != r["b"]["answer"]
    ]  # fmt: skip
    body = "".join(
        f'<tr><td class="c-id"><span class="sid">{e(r["key"][0])}</span>'
        + (f' <span class="repeat">#{r["key"][1]}</span>' if r["key"][1] else "")
        + f'</td><td class="c-q" title="{e(r["question"])}">{e(r["question"][:160])}</td>'
        f'<td class="c-ans">{e(r["truth"] or "–")}</td>{_cell(r["a"], names[0])}{_cell(r["b"], names[1])}</tr>'
        for r in shown
    )
    ta, tb = _totals(rows, "a"), _totals(rows, "b")
    only = sum(1 for r in rows if r["a"] is None or r["b"] is None)
    head = (
        '<tr><th scope="col" rowspan="2" class="c-id">Sample</th><th scope="col" rowspan="2" class="c-q">Question</th>'
        '<th scope="col" rowspan="2" class="c-ans">Truth</th>'
        + "".join(f'<th scope="colgroup" colspan="4" class="run-head">{e(n)}</th>' for n in names)
        + "</tr><tr>"
        + (
            '<th scope="col" class="c-ans">Answer</th><th scope="col" class="c-res">Result</th>'
            '<th scope="col" class="c-num">Cost</th><th scope="col" class="c-num">Steps</th>'
        )
        * 2
        + "</tr>"
    )
    toggle = (
        f'<a href="compare?run={quote(names[0])}&amp;run={quote(names[1])}">show every sample</a>'
        if only_diff
        else f'<a href="compare?run={quote(names[0])}&amp;run={quote(names[1])}&amp;diff=1">show only the samples where they differ</a>'
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(names[0])} vs {e(names[1])} · slidescout</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="static/viewer.css"></head>
<body><a class="skip-link" href="#main">Skip to content</a>
<header class="topbar"><a class="brand" href="./"><span class="logo" aria-hidden="true"></span>slidescout</a>
<nav class="crumbs" aria-label="Breadcrumb"><ol><li><a href="./">All runs</a></li><li><span aria-current="page">Compare</span></li></ol></nav></header>
<main id="main" class="run-page"><h1 class="runs-title">{e(names[0])} <span class="muted">vs</span> {e(names[1])}</h1>
<section class="stats compare-stats" aria-label="Totals on the samples both runs have">{_summary(ta, names[0])}{_summary(tb, names[1])}</section>
<p class="muted small">Totals over the {ta["n"]} sample(s) both runs have{f"; {only} sample(s) are in one run only" if only else ""}. {toggle}.</p>
<div class="table-wrap"><table class="samples compare"><caption class="sr-only">Each sample's answer, result, cost and steps in both runs</caption>
<thead>{head}</thead><tbody>{body}</tbody></table></div>
{'<p class="empty">The two runs give the same answers.</p>' if not shown else ""}</main></body></html>"""
