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
from dataclasses import dataclass
from typing import Any

from slidescout.agents.models.expert_vision import (
    Finding,
    Overview,
    analyze_overview,
    classify,
    hotspots,
    morphometry,
)
from slidescout.agents.models.profile import offline_profile
from slidescout.core.messages import (
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
from slidescout.core.model_settings import ModelSettings
from slidescout.tools.experts.nuclei import NucleiStats

KEYWORDS = {
    "tumor": (
        "tumor",
        "tumour",
        "carcinoma",
        "malignan",
        "neoplas",
        "cancer",
        "pleomorph",
        "atypi",
    ),
    "lymphocytes": ("lymph", "inflamm", "immune", "infiltrat"),
    "necrosis": ("necros", "necrot", "infarct"),
    "normal": (
        "normal",
        "benign",
        "no significant",
        "unremarkable",
        "healthy",
        "no lesion",
        "none",
    ),
}
SCREEN_MPP = 1.0  # µm/px of screening views (~10x)
DETAIL_MPP = 0.25  # µm/px of detail views (40x)


@dataclass(frozen=True)
class _Scene:
    """What one decision knows: the question, the tools, the view sizes and what was seen."""

    question: str
    tools: set[str]
    slide_mpp: float | None
    screen_side: int
    detail_side: int
    ov: Overview
    calls: list[tuple[str, dict]]
    findings: list[Finding]
    last_img: ImagePart | None
    prefix: str
    remaining: int | None

    @property
    def budget_left(self) -> int:
        return self.remaining if self.remaining is not None else 99

    def views(self, *, screens: bool) -> list[tuple]:
        """Boxes of the earlier zoom calls: the screening views, or else the detail views."""
        return [
            tuple(_call_box(a))
            for n, a in self.calls
            if n in ("slide_zoom", "view_region")
            and (_call_box(a)[2] >= 0.75 * self.screen_side) == screens
        ]


def _note_detail_view(
    last_img: ImagePart | None, screen_side: int, findings: list[Finding], step: int
) -> str:
    """Measure the last detail view (not a screen) into a new finding, appended to ``findings``;
    returns the finding line that prefixes the next thought, or ``""``."""
    if last_img is None or not last_img.image.box or _is_screen(last_img, screen_side):
        return ""
    x, y, w, h = last_img.image.box
    b = (x, y, w, h)
    if any(f.box == b for f in findings):
        return ""
    st = morphometry(last_img.data, last_img.image.mpp)
    label, conf = classify(st)
    f = Finding(b, label, conf, st, step)
    findings.append(f)
    return _finding_line(f) + "\n"


class ExpertModel:
    """The offline planner, as a Model: ``await request(ModelRequest) -> ModelResponse``."""

    name = "expert"
    api = "expert"
    # the tools this planner can call; any other tool it is offered is never used
    uses_tools: frozenset[str] = frozenset(
        {"slide_zoom", "view_region", "nuclei_morphometry", "lookup"}
    )
    profile = offline_profile("expert", "expert")
    settings = ModelSettings()

    def __init__(self, variant: str = "") -> None:
        self.variant = variant
        self._n = 0

    async def aclose(self) -> None:
        return None

    async def request(self, req: ModelRequest) -> ModelResponse:
        import asyncio

        t0 = time.monotonic()
        msg = await asyncio.to_thread(self._decide, req)
        return ModelResponse(
            message=msg,
            usage=Usage(cost_usd=0.0),
            model="expert",
            api="expert",
            latency_s=time.monotonic() - t0,
            stop_reason="tool_use" if msg.tool_calls else "end_turn",
        )

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
    def _history(
        req: ModelRequest,
    ) -> tuple[list[tuple[str, dict]], list[tuple[str, list[ImagePart], str]], list[str]]:
        """Calls made (name, args), observations (name, images still in context, text), and the
        planner's own earlier thoughts. Its thoughts are its memory: they survive context pruning."""
        calls: list[tuple[str, dict]] = []
        names: dict[str, str] = {}
        obs: list[tuple[str, list[ImagePart], str]] = []
        thoughts: list[str] = []
        for m in req.messages:
            if isinstance(m, AssistantMessage):
                thoughts.append(m.text)
                for c in m.tool_calls:
                    calls.append((c.name, c.arguments))
                    names[c.id] = c.name
            elif isinstance(m, ToolMessage):
                for r in m.results:
                    imgs = [c for c in r.content if isinstance(c, ImagePart) and c.data]
                    text = "\n".join(c.text for c in r.content if isinstance(c, TextPart))
                    obs.append((names.get(r.tool_call_id, r.name), imgs, text))
        return calls, obs, thoughts

    # -- deciding ---------------------------------------------------------------
    def _decide(self, req: ModelRequest) -> AssistantMessage:
        """One step: read the conversation into a scene, then detail, confirm, answer or screen."""
        self._n += 1
        ov_part, question = self._overview(req)
        tools = {t.name for t in req.tools} if req.tool_choice != "none" else set()
        if ov_part is None or ov_part.data is None or ov_part.image.box is None:
            return self._final(
                question,
                [],
                None,
                "I could not see an overview image, so I answer from the question alone.",
            )
        sc = self._read_scene(req, ov_part, question, tools)
        if not tools or (sc.remaining is not None and sc.remaining <= 0):
            return self._final(question, sc.findings, sc.ov, self._summary(sc.findings), sc.prefix)
        zoom = (
            "slide_zoom"
            if "slide_zoom" in tools
            else ("view_region" if "view_region" in tools else None)
        )
        if zoom is None:
            return self._final(
                question,
                sc.findings,
                sc.ov,
                "No navigation tool is available; answering from the overview.",
                sc.prefix,
            )
        # 1) after a screen: detail its most unusual spot at high magnification
        detail = self._detail_hotspot(sc, zoom)
        if detail is not None:
            return detail
        # 2) enough seen: confirm with the expert tools, then answer
        screened = sc.views(screens=True)
        candidates = [
            c for c in sc.ov.candidates if not any(_overlap(c, s) > 0.5 for s in screened)
        ]
        if self._done_scanning(sc, screened, candidates):
            return self._confirm_or_answer(sc)
        # 3) screen the next candidate at low-medium magnification
        cand = candidates[0]
        why = (
            f"{sc.prefix}The overview shows {len(sc.ov.pieces)} tissue piece(s). I screen region {len(screened) + 1} "
            f"at ({cand[0]},{cand[1]}) at about {SCREEN_MPP} µm/px to look for areas that differ from the rest."
        )
        return self._call(zoom, cand, why)

    def _read_scene(
        self, req: ModelRequest, ov_part: ImagePart, question: str, tools: set[str]
    ) -> _Scene:
        """The view sizes, the overview analysis, the history, and the finding (if any) that the
        last observation adds."""
        assert ov_part.data is not None and ov_part.image.box is not None
        system = "\n".join(
            getattr(x, "content", "") for x in req.messages if getattr(x, "role", "") == "system"
        )
        m = re.search(r"at ([\d.]+) µm per pixel", system)
        slide_mpp = float(m.group(1)) if m else None
        box = tuple(ov_part.image.box)
        max_side = max(ov_part.image.width, ov_part.image.height)
        scale = (1.0 / slide_mpp) if slide_mpp else max(1.0, box[2] / max_side / 8) / SCREEN_MPP
        screen_side = int(max_side * SCREEN_MPP * scale)
        detail_side = max(64, int(max_side * max(DETAIL_MPP, slide_mpp or DETAIL_MPP) * scale))
        ov = analyze_overview(ov_part.data, box, ov_part.image.mpp, screen_side)
        calls, obs, thoughts = self._history(req)
        findings = _parse_findings(thoughts)
        # what did the last observation show?
        last = obs[-1] if obs else None
        last_img = last[1][0] if last and last[1] else None
        prefix = _note_detail_view(last_img, screen_side, findings, len(thoughts))
        return _Scene(
            question=question,
            tools=tools,
            slide_mpp=slide_mpp,
            screen_side=screen_side,
            detail_side=detail_side,
            ov=ov,
            calls=calls,
            findings=findings,
            last_img=last_img,
            prefix=prefix,
            remaining=self._remaining(obs),
        )

    def _detail_hotspot(self, sc: _Scene, zoom: str) -> AssistantMessage | None:
        """After a screening view: zoom into its most unusual spot not yet detailed, if any."""
        last_img = sc.last_img
        if last_img is None or not last_img.image.box or not _is_screen(last_img, sc.screen_side):
            return None
        detailed = sc.views(screens=False)
        ib = tuple(last_img.image.box)
        spots = [
            sp
            for sp in hotspots(last_img.data, ib, last_img.image.mpp)
            if not any(_centre_in((sp[1][0], sp[1][1], 1, 1), d) for d in detailed)
        ]
        if not spots:
            return None
        score, (cx, cy) = spots[0]
        side = sc.detail_side
        target = _clamp_box((cx - side // 2, cy - side // 2, side, side), sc.ov.slide_box)
        why = (
            f"{sc.prefix}In the screen at ({ib[0]},{ib[1]}) the most unusual area (score {score:.1f}) is around "
            f"({cx},{cy}); I zoom in to about {DETAIL_MPP} µm/px to look at the nuclei there."
        )
        return self._call(zoom, target, why)

    @staticmethod
    def _done_scanning(sc: _Scene, screened: list[tuple], candidates: list) -> bool:
        """Every piece screened with a confident lead, nothing left to screen, or budget low."""
        budget_left = sc.budget_left
        lead = _lead(sc.findings)
        pieces_seen = all(any(_centre_in(s, p.box) for s in screened) for p in sc.ov.pieces)
        confident = lead is not None and lead.confidence >= 0.75
        return (confident and pieces_seen) or not candidates or budget_left <= 3

    def _confirm_or_answer(self, sc: _Scene) -> AssistantMessage:
        """Confirm the lead with the nuclei expert, then the reference; then answer."""
        lead = _lead(sc.findings)
        confirmed = {n for n, _ in sc.calls}
        can_call = lead is not None and sc.budget_left >= 1
        if can_call and "nuclei_morphometry" in sc.tools and "nuclei_morphometry" not in confirmed:
            assert lead is not None
            x, y, w, h = lead.box
            why = (
                f"{sc.prefix}My leading finding is {lead.label} at ({x},{y}). I confirm it with the nuclei expert "
                "(colour deconvolution and watershed) to get its morphometry and an outline image."
            )
            mpp = max(DETAIL_MPP, sc.slide_mpp or DETAIL_MPP)
            args = {"x": x, "y": y, "w": w, "h": h, "mpp": mpp}
            return self._tool_message(why, "nuclei_morphometry", args)
        if can_call and "lookup" in sc.tools and "lookup" not in confirmed:
            assert lead is not None
            term = LOOKUP_TERMS[lead.label]
            why = f"{sc.prefix}I check the reference for the features of {term}."
            return self._tool_message(why, "lookup", {"query": f"features of {term}", "k": 2})
        return self._final(sc.question, sc.findings, sc.ov, self._summary(sc.findings), sc.prefix)

    def _tool_message(self, thought: str, tool: str, args: dict[str, Any]) -> AssistantMessage:
        return AssistantMessage(
            parts=[
                TextPart(text=thought),
                ToolCallPart(id=f"expert_{self._n}", name=tool, arguments=args),
            ]
        )

    @staticmethod
    def _remaining(obs) -> int | None:
        if not obs:
            return None
        m = re.search(r"(\d+) (?:tool|function) calls? remain", obs[-1][2])
        if m:
            return int(m.group(1))
        return 0 if "No tool calls remain" in obs[-1][2] else None

    def _call(self, tool: str, box: tuple[int, int, int, int], thought: str) -> AssistantMessage:
        x, y, w, h = (int(v) for v in box)
        args: dict[str, Any] = (
            {"x": x, "y": y, "w": w, "h": h}
            if tool == "view_region"
            else {"x0": x, "y0": y, "w": w, "h": h}
        )
        self._n += 1
        return AssistantMessage(
            parts=[
                TextPart(text=thought),
                ToolCallPart(id=f"expert_{self._n}", name=tool, arguments=args),
            ]
        )

    def _summary(self, findings: list[Finding]) -> str:
        if not findings:
            return "I did not get a close look at any region."
        return "\n".join(_finding_line(f) for f in findings)

    # -- answering ----------------------------------------------------------------
    def _final(
        self, question: str, findings: list[Finding], ov, summary: str, prefix: str = ""
    ) -> AssistantMessage:
        options = _options(question)
        abnormal = sorted([f for f in findings if f.label != "normal"], key=lambda f: -f.confidence)
        lead = _lead(findings)
        q = _stem(question).lower()
        idx: int | None = None
        reason = ""
        if options:
            if re.search(r"how many|number of|count", q):
                n = (
                    len(ov.pieces)
                    if ov and re.search(r"piece|fragment|section|tissue", q)
                    else len(
                        _distinct(
                            [
                                f
                                for f in abnormal
                                if lead and f.label == lead.label and f.confidence >= 0.7
                            ]
                        )
                    )
                )
                idx = _match_number(options, n)
                reason = f"I count {n}."
            elif (
                re.search(r"where|which (region|quadrant|part|side)|locat", q)
                and lead is not None
                and ov is not None
            ):
                words = _position_words(lead.box, ov.slide_box)
                idx = _match_words(options, words)
                reason = f"The most abnormal region is in the {' '.join(words)} of the slide."
            else:
                label = lead.label if lead else "normal"
                idx = _match_class(options, label)
                reason = f"My leading finding is {label}."
        supporting = [f.step for f in findings if lead is not None and f.label == lead.label] or [
            f.step for f in findings
        ]
        text = f"Findings:\n{summary}\n\n{reason}".strip()
        del prefix  # the summary already lists every finding
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


LOOKUP_TERMS = {
    "tumor": "carcinoma",
    "lymphocytes": "lymphocytic infiltrate",
    "necrosis": "necrosis",
    "normal": "normal stroma",
}
_FINDING = re.compile(
    r"Finding: region \((\d+),(\d+),(\d+),(\d+)\) at step (\d+) looks (\w+) \((\d+)%\)"
    r"(?:; nuclear cover ([\d.]+), mean area ([\d.]+) µm², CV ([\d.]+), (\d+) nuclei)?"
)


def _finding_line(f: Finding) -> str:
    s = f.stats
    return (
        f"Finding: region ({f.box[0]},{f.box[1]},{f.box[2]},{f.box[3]}) at step {f.step} looks {f.label} "
        f"({f.confidence:.0%}); nuclear cover {s.dark_fraction:.3f}, mean area {s.mean_area_um2 or 0:.1f} µm², "
        f"CV {s.area_cv or 0:.2f}, {s.count} nuclei"
    )


def _parse_findings(thoughts: list[str]) -> list[Finding]:
    """Findings the planner wrote in its earlier thoughts (its memory across context pruning)."""
    out: list[Finding] = []
    for t in thoughts:
        for m in _FINDING.finditer(t or ""):
            x, y, w, h, step = (int(m.group(i)) for i in range(1, 6))
            dark = float(m.group(8) or 0)
            st = NucleiStats(
                count=int(m.group(11) or 0),
                tissue_area_mm2=None,
                density_per_mm2=None,
                mean_area_um2=float(m.group(9) or 0),
                area_cv=float(m.group(10) or 0),
                mean_eccentricity=None,
                mean_solidity=None,
                hematoxylin_mean=0.0,
                dark_fraction=dark,
                tissue_fraction=1.0,
                mpp=None,
            )
            if not any(f.box == (x, y, w, h) for f in out):
                out.append(Finding((x, y, w, h), m.group(6), int(m.group(7)) / 100, st, step))
    return out


def _lead(findings: list[Finding]) -> Finding | None:
    """The most confident abnormal finding; weak ones (< 55%) do not outweigh normal tissue."""
    abnormal = sorted(
        [f for f in findings if f.label != "normal" and f.confidence >= 0.55],
        key=lambda f: -f.confidence,
    )
    return abnormal[0] if abnormal else None


def _call_box(args: dict) -> tuple[int, int, int, int]:
    keys = ("x", "y", "w", "h") if "x" in args else ("x0", "y0", "w", "h")
    try:
        return tuple(int(args.get(k, 0)) for k in keys)  # type: ignore[return-value]
    except (TypeError, ValueError):
        return (0, 0, 0, 0)


def _is_screen(im: ImagePart, screen_side: int) -> bool:
    box = im.image.box
    return box is not None and box[2] >= 0.75 * screen_side


def _clamp_box(b, slide_box) -> tuple[int, int, int, int]:
    x = int(min(max(slide_box[0], b[0]), max(slide_box[0], slide_box[0] + slide_box[2] - b[2])))
    y = int(min(max(slide_box[1], b[1]), max(slide_box[1], slide_box[1] + slide_box[3] - b[3])))
    return (x, y, int(b[2]), int(b[3]))


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
    cut = re.split(
        r"\n\s*(?:select from|options?:|please choose|\(?[A-H][.)]\s|1[.)]\s)",
        question,
        maxsplit=1,
        flags=re.I,
    )
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


SYNONYMS = {
    "upper": ("upper", "top", "north"),
    "lower": ("lower", "bottom", "south"),
    "left": ("left", "west"),
    "right": ("right", "east"),
}


def _match_words(options: list[str], words: list[str]) -> int | None:
    best, best_s = None, 0
    for i, o in enumerate(options, 1):
        low = o.lower()
        s = sum(any(syn in low for syn in SYNONYMS.get(w, (w,))) for w in words)
        if s > best_s:
            best, best_s = i, s
    return best
