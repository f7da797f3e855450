"""``expert``: an offline planner that really navigates, with no key and no network.

It looks at the overview, finds the tissue pieces, screens them at low-medium magnification,
zooms into the most unusual spot of each screen at high magnification, measures the nuclei there
(the nuclei expert: colour deconvolution + watershed), and answers by matching its findings to the
options. It is stateless: every decision is derived from the conversation, so one instance serves
concurrent samples and replays.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from slidescout.agents.messages import (
    AssistantMessage,
    ImagePart,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolMessage,
    Usage,
    UserMessage,
)
from slidescout.agents.models.expert_vision import (
    Finding,
    analyze_overview,
    classify,
    hotspots,
    morphometry,
)

KEYWORDS = {
    "tumor": ("tumor", "tumour", "carcinoma", "malignan", "neoplas", "cancer", "pleomorph", "atypi"),
    "lymphocytes": ("lymph", "inflamm", "immune", "infiltrat"),
    "necrosis": ("necros", "necrot", "infarct"),
    "normal": ("normal", "benign", "no significant", "unremarkable", "healthy", "no lesion", "none"),
}
SCREEN_MPP = 1.0  # µm/px of screening views
DETAIL_MPP = 0.5  # µm/px of detail views (20x)


class ExpertModel:
    """The offline planner, as a Model: ``await request(ModelRequest) -> ModelResponse``."""

    name = "expert"
    api = "expert"
    supports_tools = True
    supports_images = True

    def __init__(self, **_: Any) -> None:
        self._n = 0

    async def aclose(self) -> None:
        return None

    async def request(self, req: ModelRequest) -> ModelResponse:
        import asyncio

        t0 = time.monotonic()
        msg = await asyncio.to_thread(self._decide, req)
        return ModelResponse(message=msg, usage=Usage(cost_usd=0.0), model="expert", api="expert",
                             latency_s=time.monotonic() - t0, stop_reason="tool_use" if msg.tool_calls else "end_turn")

    # -- reading the conversation ---------------------------------------------
    @staticmethod
    def _overview(req: ModelRequest) -> tuple[ImagePart | None, str]:
        for m in req.messages:
            if isinstance(m, UserMessage):
                imgs = [p for p in m.parts if isinstance(p, ImagePart)]
                text = "\n".join(p.text for p in m.parts if isinstance(p, TextPart))
                return (imgs[0] if imgs else None), text
        return None, ""

    @staticmethod
    def _observations(req: ModelRequest) -> list[tuple[str, dict, list[ImagePart], str]]:
        """(tool name, arguments, images, text) for every tool result so far, in order."""
        calls: dict[str, tuple[str, dict]] = {}
        out = []
        for m in req.messages:
            if isinstance(m, AssistantMessage):
                for c in m.tool_calls:
                    calls[c.id] = (c.name, c.arguments)
            elif isinstance(m, ToolMessage):
                for r in m.results:
                    name, args = calls.get(r.tool_call_id, (r.name, {}))
                    imgs = [c for c in r.content if isinstance(c, ImagePart) and c.data]
                    text = "\n".join(c.text for c in r.content if isinstance(c, TextPart))
                    out.append((name, args, imgs, text))
        return out

    # -- deciding ---------------------------------------------------------------
    def _decide(self, req: ModelRequest) -> AssistantMessage:
        self._n += 1
        ov_part, question = self._overview(req)
        tools = {t.name for t in req.tools}
        if ov_part is None or ov_part.data is None or ov_part.image.box is None:
            return self._final(question, [], None, "I could not see an overview image, so I answer from the question alone.")
        box = tuple(ov_part.image.box)
        slide_mpp = None
        m = re.search(r"at ([\d.]+) µm per pixel", "\n".join(getattr(x, "content", "") for x in req.messages
                                                            if getattr(x, "role", "") == "system"))
        if m:
            slide_mpp = float(m.group(1))
        max_side = max(ov_part.image.width, ov_part.image.height)
        level0_per_screen = (SCREEN_MPP / slide_mpp) if slide_mpp else max(1.0, box[2] / max_side / 8)
        mid_side = int(max_side * level0_per_screen)
        ov = analyze_overview(ov_part.data, box, ov_part.image.mpp, mid_side)
        obs = self._observations(req)
        findings, screened, detailed = self._findings(obs, slide_mpp)
        remaining = self._remaining(obs)
        if not tools or req.tool_choice == "none" or (remaining is not None and remaining <= 0):
            return self._final(question, findings, ov, self._summary(findings, ov))
        zoom = "view_region" if "view_region" in tools else ("slide_zoom" if "slide_zoom" in tools else None)
        if zoom is None:
            return self._final(question, findings, ov, "No navigation tool is available; answering from the overview.")
        # 1) detail the best hotspot of the latest screen not yet detailed
        for name, args, imgs, _ in reversed(obs):
            im = imgs[0] if imgs else None
            if im is None or im.image.label in ("nuclei overlay", "heatmap"):
                continue
            ib = tuple(im.image.box or ())
            if not ib or not self._is_screen(im, slide_mpp):
                continue
            if ib in screened and screened[ib]:
                break
            spots = hotspots(im.data, ib, im.image.mpp)
            if spots:
                score, (cx, cy) = spots[0]
                side = int(max_side * (DETAIL_MPP / slide_mpp)) if slide_mpp else max(256, ib[2] // 4)
                sb = ov.slide_box
                target = (int(min(max(sb[0], cx - side // 2), max(sb[0], sb[0] + sb[2] - side))),
                          int(min(max(sb[1], cy - side // 2), max(sb[1], sb[1] + sb[3] - side))), side, side)
                if target not in detailed:
                    why = (f"In the screen at ({ib[0]},{ib[1]}) the most unusual area (score {score:.1f}) is around "
                           f"({cx},{cy}); I zoom in to {DETAIL_MPP} µm/px to look at the nuclei there.")
                    return self._call(zoom, target, why, DETAIL_MPP)
            break
        # 2) stop early once an abnormal finding is confident and every piece was screened
        pieces_seen = all(any(_centre_in(s, p.box) for s in screened) for p in ov.pieces)
        confident = [f for f in findings if f.label != "normal" and f.confidence >= 0.75]
        if confident and pieces_seen and len(findings) >= 2:
            return self._final(question, findings, ov, self._summary(findings, ov))
        # 3) screen the next candidate
        for cand in ov.candidates:
            if cand not in screened and not any(_overlap(cand, s) > 0.5 for s in screened):
                n_done = len(screened)
                why = (f"The overview shows {len(ov.pieces)} tissue piece(s). I screen region {n_done + 1} "
                       f"at ({cand[0]},{cand[1]}) at {SCREEN_MPP} µm/px to look for areas that differ from the rest.")
                return self._call(zoom, cand, why, SCREEN_MPP)
        return self._final(question, findings, ov, self._summary(findings, ov))

    def _is_screen(self, im: ImagePart, slide_mpp: float | None) -> bool:
        mpp = im.image.mpp
        return mpp is None or mpp > (DETAIL_MPP + SCREEN_MPP) / 2

    def _findings(self, obs, slide_mpp):
        findings: list[Finding] = []
        screened: dict[tuple, bool] = {}
        detailed: set[tuple] = set()
        stats_seen = []
        for step, (name, args, imgs, _text) in enumerate(obs):
            for im in imgs[:1]:
                b = tuple(im.image.box or ())
                if not b:
                    continue
                if self._is_screen(im, slide_mpp):
                    screened.setdefault(b, False)
                else:
                    req_box = tuple(int(args.get(k, 0)) for k in (("x", "y", "w", "h") if "x" in args else ("x0", "y0", "w", "h")))
                    detailed.add(req_box)
                    st = morphometry(im.data, im.image.mpp)
                    stats_seen.append(st)
                    # mark the most recent screen containing this box as detailed
                    for s in reversed(list(screened)):
                        if _centre_in(b, s):
                            screened[s] = True
                            break
                    findings.append(Finding(b, "normal", 0.0, st, step + 1))
        baseline = _baseline(stats_seen)
        for f in findings:
            f.label, f.confidence = classify(f.stats, baseline)
        return findings, screened, detailed

    @staticmethod
    def _remaining(obs) -> int | None:
        if not obs:
            return None
        m = re.search(r"(\d+) tool calls? remain", obs[-1][3])
        if m:
            return int(m.group(1))
        return 0 if "No tool calls remain" in obs[-1][3] else None

    def _call(self, tool: str, box: tuple[int, int, int, int], thought: str, mpp: float) -> AssistantMessage:
        x, y, w, h = (int(v) for v in box)
        if tool == "view_region":
            args: dict[str, Any] = {"x": x, "y": y, "w": w, "h": h}
        else:
            args = {"x0": x, "y0": y, "w": w, "h": h}
        self._n += 1
        return AssistantMessage(parts=[TextPart(text=thought),
                                       ToolCallPart(id=f"expert_{self._n}", name=tool, arguments=args)])

    def _summary(self, findings: list[Finding], ov) -> str:
        if not findings:
            return "I did not get a close look at any region."
        lines = []
        for f in findings:
            s = f.stats
            lines.append(f"step {f.step}: region ({f.box[0]},{f.box[1]}) looks {f.label} "
                         f"({f.confidence:.0%}): {s.summary()}")
        return "\n".join(lines)

    # -- answering ----------------------------------------------------------------
    def _final(self, question: str, findings: list[Finding], ov, summary: str) -> AssistantMessage:
        options = _options(question)
        abnormal = sorted([f for f in findings if f.label != "normal"], key=lambda f: -f.confidence)
        lead = abnormal[0] if abnormal else None
        q = _stem(question).lower()
        idx: int | None = None
        reason = ""
        if options:
            if re.search(r"how many|number of|count", q):
                n = len(ov.pieces) if ov and re.search(r"tissue (piece|fragment|section)", q) else len(_distinct(abnormal))
                idx = _match_number(options, n)
                reason = f"I count {n}."
            elif re.search(r"where|which (region|quadrant|part|side)|locat", q) and lead is not None and ov is not None:
                words = _position_words(lead.box, ov.slide_box)
                idx = _match_words(options, words)
                reason = f"The most abnormal region is in the {' '.join(words)} of the slide."
            else:
                label = lead.label if lead else "normal"
                idx = _match_class(options, label)
                reason = f"My leading finding is {label}."
        supporting = [f.step for f in findings if lead is not None and f.label == lead.label] or [f.step for f in findings]
        text = f"Findings:\n{summary}\n\n{reason}".strip()
        if supporting:
            text += f"\nSupporting steps: {', '.join(map(str, supporting))}"
        letter_format = bool(re.search(r"answer:\s*\$?letter", question.lower()))
        if idx is None:
            idx = 1
        if letter_format:
            text += f"\nAnswer: {chr(ord('A') + idx - 1)}"
        elif "isup_grade" in question.lower():
            text += "\n```json\n" + json.dumps({"isup_grade": 0}) + "\n```"
        else:
            text += "\n```json\n" + json.dumps({"answer": idx}) + "\n```"
        return AssistantMessage(parts=[TextPart(text=text)])


def _baseline(stats):
    """The typical (median-density) region seen so far, as a reference for relative thresholds."""
    valid = [s for s in stats if s.density_per_mm2 and s.count >= 5]
    if len(valid) < 3:
        return None
    valid.sort(key=lambda s: s.density_per_mm2)
    return valid[len(valid) // 2]


def _centre_in(b, box) -> bool:
    cx, cy = b[0] + b[2] / 2, b[1] + b[3] / 2
    return box[0] <= cx <= box[0] + box[2] and box[1] <= cy <= box[1] + box[3]


def _overlap(a, b) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x2 - x1) * max(0, y2 - y1)
    return inter / max(1, min(a[2] * a[3], b[2] * b[3]))


def _distinct(findings: list[Finding]) -> list[Finding]:
    out: list[Finding] = []
    for f in findings:
        if not any(_overlap(f.box, g.box) > 0 or _near(f.box, g.box) for g in out):
            out.append(f)
    return out


def _near(a, b, factor: float = 1.5) -> bool:
    ax, ay = a[0] + a[2] / 2, a[1] + a[3] / 2
    bx, by = b[0] + b[2] / 2, b[1] + b[3] / 2
    return abs(ax - bx) < factor * max(a[2], b[2]) and abs(ay - by) < factor * max(a[3], b[3])


def _stem(question: str) -> str:
    """The question without its option list and answer-format instructions."""
    cut = re.split(r"\n\s*(?:select from|options?:|please choose|\(?[A-H][.)]\s|1[.)]\s)", question, maxsplit=1, flags=re.I)
    return cut[0]


def _options(question: str) -> list[str]:
    """Numbered (``1. X``) or lettered (``A. X`` / ``(A) X``) options listed in a question."""
    opts = re.findall(r"^\s*(\d+)[.)]\s+(.+?)\s*$", question, re.M)
    if len(opts) >= 2:
        return [o for _, o in opts]
    opts = re.findall(r"^\s*\(?([A-H])[.)]\s+(.+?)\s*$", question, re.M)
    return [o for _, o in opts] if len(opts) >= 2 else []


def _match_class(options: list[str], label: str) -> int | None:
    for i, o in enumerate(options, 1):
        if any(k in o.lower() for k in KEYWORDS[label]):
            return i
    if label != "normal":
        return _match_class(options, "normal")
    return None


def _match_number(options: list[str], n: int) -> int | None:
    best, best_d = None, None
    for i, o in enumerate(options, 1):
        m = re.search(r"\d+", o)
        if m:
            d = abs(int(m.group()) - n)
            if best_d is None or d < best_d:
                best, best_d = i, d
    return best


def _position_words(box, slide_box) -> list[str]:
    cx = (box[0] + box[2] / 2 - slide_box[0]) / max(1, slide_box[2])
    cy = (box[1] + box[3] / 2 - slide_box[1]) / max(1, slide_box[3])
    v = "upper" if cy < 0.5 else "lower"
    h = "left" if cx < 0.5 else "right"
    return [v, h]


SYNONYMS = {"upper": ("upper", "top", "north"), "lower": ("lower", "bottom", "south"),
            "left": ("left", "west"), "right": ("right", "east")}


def _match_words(options: list[str], words: list[str]) -> int | None:
    best, best_s = None, 0
    for i, o in enumerate(options, 1):
        low = o.lower()
        s = sum(any(syn in low for syn in SYNONYMS.get(w, (w,))) for w in words)
        if s > best_s:
            best, best_s = i, s
    return best
