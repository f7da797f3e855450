"""GIANT's baselines as strategies: one thumbnail; random tissue patches, one call each, majority vote.

They run through the agent's public hooks (``system_prompt``, ``show``, ``call_model``,
``record_answer``), so their calls, images and answers are recorded like the loop's.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from slidescout.agents.environment import Environment, ImageSetEnvironment, SlideEnvironment
from slidescout.core.messages import ImagePart, ModelRequest, SystemMessage, TextPart, UserMessage
from slidescout.core.parsing import ParsedAnswer, parse_answer
from slidescout.core.trace import Status
from slidescout.core.types import View
from slidescout.slides.tissue import tissue_mask

if TYPE_CHECKING:
    from slidescout.agents.loop import Agent, SampleState

__all__ = ["PatchStrategy", "ThumbnailStrategy", "majority_answer", "sample_tissue_boxes"]


class ThumbnailStrategy:
    """One call: the slide's thumbnail, or, for an image set, every image in one message."""

    async def run(self, agent: Agent, state: SampleState) -> Status:
        env = state.env
        side = agent.preset.overview_side or 1024
        views: list[View]
        if isinstance(env, ImageSetEnvironment):
            views = [env.imageset.view(i + 1, side) for i in range(len(env.imageset))]
        else:
            views = [env.overview(side, guides=False)]
        parts: list[TextPart | ImagePart] = [TextPart(text=state.sample.question)]
        parts += [agent.show(state, view, purpose="thumbnail", label=view.meta.get("label") or "thumbnail")
                  for view in views]
        state.messages = [SystemMessage(content=agent.system_prompt(env)), UserMessage(parts=parts)]
        req = ModelRequest(messages=state.messages, tools=[], tool_choice="none",
                           temperature=agent.settings.temperature, seed=agent.settings.seed)
        resp = await agent.call_model(state, req, step=0, forced=True, n_images=len(views))
        if resp is None:
            return "error"
        state.messages.append(resp.message)
        if not resp.message.text.strip():
            state.error("the model gave an empty reply", step=0, fatal=True)
            return "error"
        agent.record_answer(state, 0, resp.message.text)
        return "answered"


def sample_tissue_boxes(env: Environment, n: int, size: int, seed: int | None) -> list[tuple[int, int, int, int]]:
    """``n`` random level-0 boxes of ``size`` px whose centre lies on tissue (thumbnail mask)."""
    w, h = env.size
    thumb = env.overview(1024, guides=False)
    mask = tissue_mask(thumb.image)
    rng = np.random.default_rng(seed)
    ys, xs = np.nonzero(mask)
    sx, sy = thumb.box.w / thumb.width, thumb.box.h / thumb.height
    boxes = []
    for _ in range(n):
        if len(xs):
            i = int(rng.integers(len(xs)))
            cx = thumb.box.x + (xs[i] + rng.random()) * sx
            cy = thumb.box.y + (ys[i] + rng.random()) * sy
        else:  # no tissue detected: anywhere
            cx, cy = rng.random() * w, rng.random() * h
        x = int(min(max(0, cx - size / 2), max(0, w - size)))
        y = int(min(max(0, cy - size / 2), max(0, h - size)))
        boxes.append((x, y, min(size, w), min(size, h)))
    return boxes


def majority_answer(parsed: list[tuple[ParsedAnswer, int]]) -> tuple[ParsedAnswer, int, Counter[str]] | None:
    """The majority of the parsed answers (value, case-insensitive); ties go to the answer given first.

    Unparsed answers do not vote. Returns the winning answer, the step it was first given and
    the vote counts, or None when nothing parsed."""
    votes: Counter[str] = Counter()
    first: dict[str, tuple[ParsedAnswer, int]] = {}
    for p, step in parsed:
        if not p.ok or p.value is None:
            continue
        key = str(p.value).strip().lower()
        votes[key] += 1
        first.setdefault(key, (p, step))
    if not votes:
        return None
    best = max(votes, key=lambda k: (votes[k], -first[k][1]))
    return first[best][0], first[best][1], votes


class PatchStrategy:
    """Random tissue patches at level 0, one call each; the answer is the majority of the parsed replies."""

    async def run(self, agent: Agent, state: SampleState) -> Status:
        env = state.env
        if not isinstance(env, SlideEnvironment):
            state.error("the patch baseline needs a slide; use thumbnail for image sets", fatal=True,
                        error_type="ConfigError")
            return "error"
        size = agent.preset.patch_size
        boxes = sample_tissue_boxes(env, min(agent.preset.n_patches, agent.max_steps), size, agent.settings.seed)
        system = SystemMessage(content=agent.system_prompt(env))
        replies: list[tuple[ParsedAnswer, int, str]] = []
        t0 = time.monotonic()
        for step, box in enumerate(boxes):
            limit = agent.limit_reached(state, step)
            if limit is not None:
                break
            part = agent.show(state, env.slide.read(box, max_side=size), purpose="patch", label="patch", step=step)
            req = ModelRequest(messages=[system, UserMessage(parts=[TextPart(text=state.sample.question), part])],
                               tools=[], tool_choice="none", temperature=agent.settings.temperature,
                               seed=agent.settings.seed)
            resp = await agent.call_model(state, req, step=step, forced=False, n_images=1)
            if resp is not None and resp.message.text.strip():
                text = resp.message.text
                replies.append((parse_answer(text, state.sample), step, text))
        won = majority_answer([(p, s) for p, s, _ in replies])
        if won is None:
            state.error(f"none of the {len(replies)} patch replies could be parsed", fatal=True)
            return "error"
        answer, first_step, votes = won
        text = next(t for p, s, t in replies if s == first_step)
        summary = f"Majority vote over {sum(votes.values())} parsed patch answers: {dict(votes.most_common())}"
        winners = [s + 1 for p, s, _ in replies if p.ok and str(p.value).strip().lower() == str(answer.value).strip().lower()]
        agent.record_answer(state, len(boxes), text, rationale=summary, supporting_steps=winners)
        state.trace.events[-1].duration_s = time.monotonic() - t0
        state.note(json.dumps({"votes": dict(votes), "unparsed": sum(1 for p, _, _ in replies if not p.ok)}))
        return "answered"
