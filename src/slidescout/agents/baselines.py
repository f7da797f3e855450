"""GIANT's baselines as strategies: one thumbnail; random patches of the CLAM-style tissue grid, one
call each, majority vote. MedFrameQA's official protocol is the one-call image-set case.

They run through the agent's :class:`~slidescout.agents.run_settings.Hooks` (``system_prompt``,
``show``, ``call_model``, ``record_answer``), so their calls, images and answers are recorded like
the loop's; what a sample offers (a slide or a set of images) decides what they show.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from string import Template

import numpy as np

from slidescout import prompts
from slidescout.agents.environment import Environment
from slidescout.agents.run_settings import Hooks
from slidescout.agents.state import SampleState
from slidescout.core.answer_formats import parse_reply
from slidescout.core.messages import ImagePart, ModelRequest, SystemMessage, TextPart, UserMessage
from slidescout.core.parsing import LETTERS, ParsedAnswer
from slidescout.core.sample import Sample
from slidescout.core.trace import Status
from slidescout.core.types import View
from slidescout.slides.clam import (
    clam_grid,
    clam_mask,
    clam_preset,
    clam_preset_for,
    clam_seg_side,
    clam_tissue,
)
from slidescout.slides.tissue import tissue_mask

__all__ = ["PatchStrategy", "ThumbnailStrategy", "majority_answer", "sample_tissue_boxes"]


_MEDIA = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}


def official_question(sample: Sample) -> str:
    """MedFrameQA's user message in its official layout (``prompts/medframeqa_user.md``): the
    question as given, then the options lettered ``A. ``, ``B. ``... as the Python list's text."""
    question = sample.meta.get("raw_question")
    if question is None:
        return sample.question
    lettered = [f"{LETTERS[i]}. {opt}" for i, opt in enumerate(sample.options)]
    return Template(prompts.load("medframeqa_user")).safe_substitute(
        question=str(question), options=str(lettered)
    )


class ThumbnailStrategy:
    """One call: the slide's thumbnail, or, for an image set, every image in one message (under the
    ``medframeqa`` preset, the original files as the official evaluation sends them)."""

    async def run(self, hooks: Hooks, state: SampleState) -> Status:
        env, p = state.env, hooks.settings.preset
        side = p.overview_side or 1024
        images = env.imageset
        official = images is not None and p.parser == "medframeqa"
        text = TextPart(text=official_question(state.sample) if official else state.sample.question)
        parts: list[TextPart | ImagePart] = [text]
        if images is not None:
            for i in range(len(images)):
                path = Path(images.paths[i])
                media = _MEDIA.get(path.suffix.lower()) if official else None
                if media is not None:
                    part = hooks.show_file(
                        state,
                        path.read_bytes(),
                        media,
                        images.get(i + 1).dimensions,
                        source=f"image:{i + 1}",
                        label=f"image {i + 1}",
                    )
                    if hooks.settings.api == "openai-chat":
                        # the official GPT path labels every file data:image/png, whatever its
                        # format (openai_inference.py, OpenAIInference.run); the bytes are the
                        # file's own and the trace keeps its true type
                        png = part.image.model_copy(update={"media_type": "image/png"})
                        part = ImagePart(image=png, data=part.data, detail=None)
                    parts.append(part)
                else:
                    parts.append(self._part(hooks, state, images.view(i + 1, side)))
        else:
            parts.append(self._part(hooks, state, env.overview(side, guides=False)))
        if hooks.settings.provider in p.images_first_providers:  # MedFrameQA's Claude: images first
            parts = [*parts[1:], text]
        system = hooks.system_prompt(env)
        state.messages = (
            [SystemMessage(content=system)] if system else []
        )  # GIANT's thumbnail: none
        state.messages.append(UserMessage(parts=parts))
        req = ModelRequest(
            messages=state.messages,
            tools=[],
            tool_choice="none",
            settings=hooks.settings.model.settings,
        )
        resp = await hooks.call_model(state, req, step=0, forced=True, n_images=len(parts) - 1)
        if resp is None:
            return "error"
        state.messages.append(resp.message)
        # an empty reply is an answer that scores as "empty reply" (MedFrameQA's official score leaves
        # such replies out of its denominator; the report gives both)
        hooks.record_answer(state, 0, resp.message.text)
        return "answered"

    @staticmethod
    def _part(hooks: Hooks, state: SampleState, view: View) -> ImagePart:
        part = hooks.show(
            state, view, purpose="thumbnail", label=view.meta.get("label") or "thumbnail"
        )
        return ImagePart(
            image=part.image, data=part.data, detail=hooks.settings.preset.overview_detail
        )


def sample_grid_boxes(
    env: Environment, n: int, size: int, seed: int | None, preset: str = "tcga"
) -> list[tuple[int, int, int, int]]:
    """``n`` random patches (without replacement) of CLAM's patch grid (``slides.clam``) under the
    CLAM ``preset`` of GIANT's repository, segmented at CLAM's resolution; [] when the grid is
    empty."""
    if env.slide is None:
        return []
    values = clam_preset(preset)
    side = clam_seg_side(list(env.slide.level_downsamples), max(env.size))
    thumb = env.overview(side, guides=False)
    mask = clam_mask(thumb.image, **{k: values[k] for k in ("sthresh", "mthresh", "close")})
    pieces, holes, _ = clam_tissue(mask, thumb.box.w / thumb.width, **values)
    grid = clam_grid(pieces, thumb.box.as_tuple(), size, holes)
    if not len(grid):
        return []
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(grid), size=min(n, len(grid)), replace=False)
    return [(int(grid[i][0]), int(grid[i][1]), size, size) for i in picks]


def sample_tissue_boxes(
    env: Environment, n: int, size: int, seed: int | None
) -> list[tuple[int, int, int, int]]:
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


def majority_answer(
    parsed: list[tuple[ParsedAnswer, int]],
) -> tuple[ParsedAnswer, int, Counter[str]] | None:
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

    async def run(self, hooks: Hooks, state: SampleState) -> Status:
        env = state.env
        slide = env.slide
        if slide is None:
            state.error(
                "the patch baseline needs a slide; use thumbnail for image sets",
                fatal=True,
                error_type="ConfigError",
            )
            return "error"
        size = hooks.settings.preset.patch_size
        n, seed = (
            min(hooks.settings.preset.n_patches, hooks.settings.max_steps),
            hooks.settings.seed,
        )
        preset = clam_preset_for(state.sample.task)  # tcga.csv, or panda.csv for PANDA
        boxes = sample_grid_boxes(env, n, size, seed, preset) or sample_tissue_boxes(
            env, n, size, seed
        )
        state.note(json.dumps({"clam_preset": preset, "patches": len(boxes)}))
        system_text = hooks.system_prompt(env)
        system = (
            [SystemMessage(content=system_text)] if system_text else []
        )  # GIANT's patch baseline: none
        replies: list[tuple[ParsedAnswer, int, str]] = []
        t0 = time.monotonic()
        for step, box in enumerate(boxes):
            limit = hooks.limit_reached(state, step)
            if limit is not None:
                break
            part = hooks.show(
                state, slide.read(box, max_side=size), purpose="patch", label="patch", step=step
            )
            part = ImagePart(
                image=part.image, data=part.data, detail=hooks.settings.preset.overview_detail
            )
            req = ModelRequest(
                messages=[*system, UserMessage(parts=[TextPart(text=state.sample.question), part])],
                tools=[],
                tool_choice="none",
                settings=hooks.settings.model.settings,
            )
            resp = await hooks.call_model(state, req, step=step, forced=False, n_images=1)
            if resp is not None and resp.message.text.strip():
                text = resp.message.text
                replies.append(
                    (parse_reply(text, state.sample, hooks.settings.preset.parser), step, text)
                )
        won = majority_answer([(p, s) for p, s, _ in replies])
        if won is None:
            state.error(f"none of the {len(replies)} patch replies could be parsed", fatal=True)
            return "error"
        answer, first_step, votes = won
        text = next(t for p, s, t in replies if s == first_step)
        summary = f"Majority vote over {sum(votes.values())} parsed patch answers: {dict(votes.most_common())}"
        winners = [
            s + 1
            for p, s, _ in replies
            if p.ok and str(p.value).strip().lower() == str(answer.value).strip().lower()
        ]
        hooks.record_answer(state, len(boxes), text, rationale=summary, supporting_steps=winners)
        state.trace.events[-1].duration_s = time.monotonic() - t0
        state.note(
            json.dumps(
                {"votes": dict(votes), "unparsed": sum(1 for p, _, _ in replies if not p.ok)}
            )
        )
        return "answered"
