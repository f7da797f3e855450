"""The think, act, rethink loop: a planner model navigates a slide through tools until it answers.

``Agent.run(sample, recorder)`` runs one sample and returns its trace. The state of a sample is
one :class:`SampleState`; :meth:`Agent.step` runs one step and returns the status that ends the
sample, or None to go on. How a sample is run is a ``Strategy`` (``strategies.py``): the agentic
loop, or one of GIANT's baselines (``baselines.py``); they see the agent through the small
``Hooks`` protocol (``run_settings.py``: the settings in force, ``system_prompt``, ``show``,
``call_model``, ``record_answer``...). The agent never writes files: images and the trace go to
the :class:`~slidescout.core.recorder.Recorder`.

Errors never lose a sample: a ``ToolError`` or a malformed call goes back to the model as an
error observation; an unexpected exception is recorded on the step; after ``max_errors``
consecutive failing steps the sample ends with status ``error`` and its trace is kept (under a
preset with ``tool_errors="continue"``, ``giant``, the loop goes on, as GIANT's does).
"""

from __future__ import annotations

import asyncio
import copy
import time
import traceback
from collections.abc import Callable
from typing import cast

from slidescout import prompts
from slidescout.agents.budget import Budget
from slidescout.agents.config import AgentConfig
from slidescout.agents.context import (
    fit_window,
    images_in,
    prune_images,
    request_size,
    store_view,
)
from slidescout.agents.conversation import Conversation
from slidescout.agents.environment import SLIDE_OFFERS, Environment, open_environment
from slidescout.agents.models import Model
from slidescout.agents.models.accounting import estimate_request
from slidescout.agents.models.base import arguments_json
from slidescout.agents.presets import Preset
from slidescout.agents.protocol import (
    imageset_baseline_prompt,
    opening_message,
    prompt_hashes,
    protocol_config,
    slide_system_prompt,
    with_criteria_card,
)
from slidescout.agents.replies import (
    RETHINK_BLOCK,
    failure_reason,
    parse_rethink,
    parse_supporting_steps,
)
from slidescout.agents.run_settings import RunSettings
from slidescout.agents.state import SampleState
from slidescout.agents.strategies import Strategy, strategy_for
from slidescout.agents.toolcalls import run_tool_calls
from slidescout.core.messages import (
    AssistantMessage,
    ImagePart,
    ImageRef,
    Message,
    ModelRequest,
    ModelResponse,
    SystemMessage,
    TextPart,
    ToolMessage,
    ToolSpec,
    UserMessage,
)
from slidescout.core.parsing import split_reply
from slidescout.core.recorder import Recorder
from slidescout.core.sample import Sample
from slidescout.core.trace import (
    AnswerEvent,
    ErrorEvent,
    ImageEvent,
    ImagePurpose,
    ModelCallEvent,
    SlideRef,
    Status,
    Trace,
    utcnow,
)
from slidescout.core.types import View
from slidescout.errors import BudgetExceeded, ModelError, SlidescoutError
from slidescout.tools import registry as tool_registry
from slidescout.tools.context import ContextOptions
from slidescout.tools.registry import ToolRegistry, ToolSet

# output tokens kept free in the context window when the settings give no max_output_tokens
OUTPUT_RESERVE = 32_000


class Agent:
    """Runs samples with one model and one :class:`AgentConfig`, recording into a ``Recorder``.

    Args:
        model: a ``Model`` (see ``slidescout.agents.models.resolve_model``).
        config: the preset and its overrides.
        budget: shared limits (dollars, tokens, wall time) for the whole run.
        registry: where tools are looked up (default: built-ins and plugins).
    """

    def __init__(
        self,
        model: Model,
        config: AgentConfig | None = None,
        *,
        budget: Budget | None = None,
        registry: ToolRegistry | None = None,
    ) -> None:
        self.model = model
        self.agent_config = config or AgentConfig()
        # everything the agent does, decided once: preset < flags; model defaults < preset < flags
        self.settings: RunSettings = RunSettings.decide(self.agent_config, model, registry)
        self.budget = budget or Budget()
        self._registry = registry
        self._tools_by_env: dict[frozenset[str], ToolSet] = {}
        self._config: dict[str, object] | None = None  # computed once: every trace records it
        self._prompt_hashes: dict[str, str] | None = None
        self.strategy: Strategy = strategy_for(self.settings.preset)

    @property
    def preset(self) -> Preset:
        """The preset in force for this agent (decided once, in ``settings``)."""
        return self.settings.preset

    # -- configuration recorded in the manifest and the trace ---------------------
    def config(self) -> dict[str, object]:
        """The settings in force (the preset's defaults resolved), as the manifest records them."""
        if self._config is None:
            self._config = self._settings_in_force()
        return self._config

    def _settings_in_force(self) -> dict[str, object]:
        s = self.settings
        return {
            **self.agent_config.to_dict(),
            "model": self.model.name,
            "api": self.model.profile.api,
            "tools": list(s.tool_names),
            "max_steps": s.max_steps,
            "max_side": s.max_side,
            "keep_images": "all" if s.keep_images is None else s.keep_images,
            "guides": s.guides,
            "jpeg_quality": s.jpeg_quality,
            "temperature": s.model.settings.temperature,
            "budget": {
                "usd": self.budget.usd,
                "tokens": self.budget.tokens,
                "seconds": self.budget.seconds,
            },
            **protocol_config(s),
        }

    def prompt_hashes(self) -> dict[str, str]:
        """sha256 of every prompt a run may send (a prompt file as read), for the manifest."""
        if self._prompt_hashes is None:
            self._prompt_hashes = prompt_hashes(self.settings.preset)
        return self._prompt_hashes

    def toolset(self, offers: frozenset[str] = SLIDE_OFFERS) -> ToolSet:
        """The tools offered in an environment that offers ``offers``: the preset's tools (and,
        for an image set, its image-set tools) whose need the environment meets. Only these
        tools' modules are imported."""
        if offers not in self._tools_by_env:
            reg = self._registry or tool_registry.default_registry()
            names = list(self.settings.tool_names)
            if "slide" not in offers:  # no slide: the preset's image-set tools come first
                names = [*self.settings.preset.imageset_tools, *names]
            chosen = reg.select(names)
            self._tools_by_env[offers] = ToolSet(t for t in chosen if t.available_in(offers))
        return self._tools_by_env[offers]

    def tool_specs(self, offers: frozenset[str] = SLIDE_OFFERS) -> list[ToolSpec]:
        """The tools as offered to the model (name, description, JSON schema)."""
        return list(self.toolset(offers).specs)

    def with_model(self, wrap: Callable[[Model], Model]) -> Agent:
        """A copy of this agent whose model is ``wrap(model)`` (eval's connection limiter): the
        same config and settings; this agent is left as it was."""
        clone = copy.copy(self)
        clone.model = wrap(self.model)
        clone._tools_by_env = dict(self._tools_by_env)
        return clone

    async def aclose(self) -> None:
        """Close the model's client (inside the event loop that used it)."""
        await self.model.aclose()

    # -- running -----------------------------------------------------------------
    async def run(
        self,
        sample: Sample,
        recorder: Recorder,
        *,
        run_id: str = "",
        repeat: int = 0,
        history: Conversation | None = None,
    ) -> Trace:
        """Run one sample to an answer (or a clear status); its trace goes to ``recorder``.

        ``history``: continue an earlier turn's conversation (a follow-up question) instead of
        starting from the overview.

        Raises ``TypeError`` when ``recorder`` is not a :class:`Recorder` (a programming error,
        not a sample's failure: e.g. a ``RunDir`` instead of ``run_dir.recorder()``)."""
        if not isinstance(recorder, Recorder):
            raise TypeError(
                f"Agent.run needs a Recorder (put_image, get_image, write_trace, location), "
                f"not {type(recorder).__name__}; for a run directory pass run_dir.recorder()"
            )
        trace = Trace(
            sample_id=sample.sample_id,
            run_id=run_id,
            task=sample.task,
            repeat=repeat,
            question=sample.question,
            options=sample.options,
            slide=SlideRef(
                path="" if sample.is_image_set else sample.image_path,
                kind="imageset" if sample.is_image_set else "slide",
                images=sample.images,
            ),
            truth=sample.truth,
            model=self.model.name,
            preset=self.preset.name,
            config=self.config(),
            prompt_hashes=self.prompt_hashes(),
        )
        try:
            env = open_environment(sample)
        except SlidescoutError as exc:
            trace.events.append(
                ErrorEvent(id="e1", message=str(exc), error_type=type(exc).__name__, fatal=True)
            )
            return self._finish(trace, recorder, "error")
        trace.slide = env.slide_ref(trace.slide)
        state = SampleState(sample=sample, env=env, recorder=recorder, trace=trace, history=history)
        try:
            status = await self._run_until_deadline(state)
        except asyncio.CancelledError:
            self._finish(trace, recorder, "cancelled")
            raise
        except BudgetExceeded as exc:  # the next call's worst case no longer fits the budget
            state.note(str(exc))
            status = cast(Status, exc.kind)
        except Exception as exc:  # never lose a sample: record and keep the trace
            state.error(f"{type(exc).__name__}: {exc}", error_type=type(exc).__name__, fatal=True)
            state.note("".join(traceback.format_exc(limit=6))[-4000:])
            status = "error"
        finally:
            env.close()
        trace.messages = state.messages or trace.messages
        return self._finish(trace, recorder, status)

    async def _run_until_deadline(self, state: SampleState) -> Status:
        """The strategy's run, ended at the sample's deadline (``--sample-timeout``, or the run's
        time budget) whatever it is doing then: a model call, a tool call (abandoned: see
        ``tools.timeouts``), rendering. The sample ends ``budget_time``; its trace is kept."""
        left = self._time_left(state.started)
        if left is None:
            return await self.strategy.run(self, state)
        deadline = asyncio.timeout(left)
        try:
            async with deadline:
                return await self.strategy.run(self, state)
        except TimeoutError:
            if not deadline.expired():
                raise
        limit = self.settings.sample_seconds
        if limit and self.budget.exceeded() != "budget_time":
            state.note(f"sample time limit of {limit:g} s reached")
        else:
            state.note(self.budget.describe("budget_time"))
        return "budget_time"

    # -- public hooks (the strategies use these) ------------------------------------
    def system_prompt(self, env: Environment) -> str:
        """The system prompt for ``env`` under the preset ("" : none, as GIANT's baselines)."""
        images = env.imageset
        if images is not None:
            if self.preset.mode != "agent":
                return imageset_baseline_prompt(self.preset, len(images))
            return prompts.render(
                "imageset_system",
                n_images=len(images),
                max_steps=self.settings.max_steps,
                max_tool_steps=max(0, self.settings.max_steps - 1),
                views_per_turn=self.settings.views_per_turn,
                rethink_instructions=prompts.load("rethink_block") if self.preset.rethink else "",
            )
        return slide_system_prompt(self.settings, env)

    def show(
        self,
        state: SampleState,
        view: View,
        *,
        purpose: ImagePurpose,
        label: str | None = None,
        step: int = 0,
    ) -> ImagePart:
        """Encode and record a view the model is about to see; the part is ready to send."""
        part = store_view(
            state.recorder,
            view,
            source=view.meta.get("source") or state.env.source_id,
            label=label or view.meta.get("label") or purpose,
            quality=self.settings.jpeg_quality,
        )
        state.trace.events.append(
            ImageEvent(id=state.ids("i"), image=part.image, purpose=purpose, step=step)
        )
        return part

    def show_file(
        self,
        state: SampleState,
        data: bytes,
        media_type: str,
        size: tuple[int, int],
        *,
        source: str,
        label: str,
    ) -> ImagePart:
        """Record an image file's own bytes (MedFrameQA's official protocol sends the originals)."""
        ref = ImageRef(
            sha256=state.recorder.put_image(data, media_type),
            media_type=media_type,
            width=size[0],
            height=size[1],
            source=source,
            label=label,
        )
        state.trace.events.append(
            ImageEvent(id=state.ids("i"), image=ref, purpose="thumbnail", step=0)
        )
        return ImagePart(image=ref, data=data, detail=None)

    def limit_reached(self, state: SampleState, step: int) -> Status | None:
        """The budget or time limit that ends the sample before ``step``, noted on the trace."""
        exceeded = self.budget.exceeded()
        if exceeded is not None:
            state.note(self.budget.describe(exceeded), step)
            return exceeded
        if self._time_left(state.started) == 0:
            state.note(f"sample time limit of {self.settings.sample_seconds:.0f} s reached", step)
            return "budget_time"
        return None

    async def call_model(
        self, state: SampleState, req: ModelRequest, *, step: int, forced: bool, n_images: int
    ) -> ModelResponse | None:
        """One model call, recorded with its usage; None (and a fatal error event) when it failed.
        Its worst case is held against the dollar budget while it runs (``BudgetExceeded`` when
        that no longer fits: the sample ends ``budget_usd``)."""
        t0 = time.monotonic()
        held = await self.budget.reserve(self.model, req)  # its worst case, before it is sent
        try:
            resp = await self.model.request(req)
        except ModelError as exc:
            held.release()
            retries = exc.retries
            note = (
                f" (after {len(retries)} retries: {', '.join(r.reason for r in retries)})"
                if retries and "retried:" not in str(exc)
                else ""
            )
            state.error(
                f"{exc}{note}",
                step=step,
                error_type="ModelError",
                fatal=True,
                duration_s=time.monotonic() - t0,
            )
            return None
        except BaseException:
            held.release()
            raise
        held.settle(resp.usage)
        state.trace.usage = state.trace.usage + resp.usage
        ev = ModelCallEvent(
            id=state.ids("m"),
            step=step,
            model=resp.model or self.model.name,
            api=resp.api,
            output=resp.message,
            usage=resp.usage,
            latency_s=resp.latency_s,
            duration_s=time.monotonic() - t0,
            request_bytes=resp.request_bytes or request_size(req.messages),
            images_in_context=n_images,
            retries=resp.retries,
            tools_offered=[t.name for t in req.tools],
            forced_final=forced,
            stop_reason=resp.stop_reason,
        )
        if self.preset.rethink:
            ev.rethink = parse_rethink(resp.message.text)
        state.trace.events.append(ev)
        return resp

    def record_answer(
        self,
        state: SampleState,
        step: int,
        text: str,
        *,
        forced: bool = False,
        rationale: str | None = None,
        supporting_steps: list[int] | None = None,
    ) -> None:
        """The sample's final answer."""
        trace = state.trace
        trace.answer = text
        trace.rationale = (
            split_reply(RETHINK_BLOCK.sub("", text))[1] if rationale is None else rationale
        )
        steps = parse_supporting_steps(text) if supporting_steps is None else supporting_steps
        trace.events.append(
            AnswerEvent(
                id=state.ids("a"),
                step=step,
                text=text,
                rationale=trace.rationale,
                supporting_steps=steps,
                forced=forced,
            )
        )

    # -- the agentic loop ------------------------------------------------------------
    async def start(self, state: SampleState) -> None:
        """The first message: the question and the overview; tools and their context."""
        env, p = state.env, self.preset
        state.tools = self.toolset(env.offers)
        state.ctx = env.tool_context(
            ContextOptions(
                max_side=self.settings.max_side,
                guides=self.settings.guides,
                jpeg_quality=self.settings.jpeg_quality,
                run_dir=state.recorder.location,
                sample_id=state.sample.sample_id,
                device=self.settings.device or "auto",
                show_mpp=p.show_mpp,
                level_rule=p.level_rule,
                guide_style=p.guide_style,
                message_style=p.message_style,
                box_clamp=p.box_clamp,
            )
        )
        if state.history is not None:  # a follow-up: the earlier turns, then the new question
            state.messages = state.history.continued(state.sample.question)
            state.n_first = state.history.n_first
            return
        system = with_criteria_card(p, self.system_prompt(env), state.sample.task)
        state.messages = [SystemMessage(content=system)] if system else []
        state.messages.append(await opening_message(self, state))
        state.n_first = images_in(state.messages)
        state.views_used = state.dropped = 0  # a rerun starts its budget afresh

    async def step(self, state: SampleState, step: int) -> Status | None:
        """One step: ask the model, run its tool calls. Returns the status that ends the sample, or None."""
        limit = self.limit_reached(state, step)
        if limit is not None:
            return limit
        p = self.preset
        last = step == self.settings.max_steps - 1 or self._views_left(state) == 0
        forced = last and p.forced_answer  # giant: the tools stay offered on every step
        if forced:
            state.messages.append(
                UserMessage(parts=[TextPart(text=prompts.load("final_step").strip())])
            )
        specs = list(state.tools.specs) if state.tools is not None else []
        context = self._context(state, specs, step)
        # on a forced last step the tools stay declared (providers need them to read the history,
        # and prompt caches stay warm) but tool_choice "none" withdraws them
        req = ModelRequest(
            messages=context,
            tools=specs,
            tool_choice="none" if forced or not specs else "auto",
            settings=self.settings.model.settings,
        )
        try:
            resp = await asyncio.wait_for(
                self.call_model(state, req, step=step, forced=forced, n_images=images_in(context)),
                timeout=self._time_left(state.started),
            )
        except asyncio.TimeoutError:
            state.note(
                f"sample time limit of {self.settings.sample_seconds:.0f} s reached during a model call",
                step,
            )
            return "budget_time"
        state.trace.messages = state.messages
        if resp is None:
            return "error"
        msg = resp.message
        state.messages.append(msg)
        if not msg.tool_calls:
            return self._on_reply(state, step, msg, forced)
        if last and not forced:  # a tool call at step T: this attempt overran (giant reruns it)
            state.note(
                f"the model called a tool at the last step ({self.settings.max_steps}); the attempt overran",
                step,
            )
            return "max_steps"
        if last:  # tools withdrawn (and asked for in words), but the model still called one
            if msg.text.strip():  # its text is the answer
                self.record_answer(state, step, msg.text, forced=True)
                return "answered"
            calls = "; ".join(f"{c.name}({arguments_json(c)})" for c in msg.tool_calls)
            state.error(
                "the model replied at the final step with tool calls only, ignoring "
                f"tool_choice none and the request for an answer: {calls}",
                step=step,
                error_type="max_steps",
                fatal=True,
            )
            return "max_steps"
        return await self._on_tool_calls(state, step, msg)

    def _views_left(self, state: SampleState) -> int | None:
        """Views left under a budget of views (T - 1 tool calls, then the answer); else None."""
        if self.settings.budget_unit != "views":
            return None
        return max(0, self.settings.max_steps - 1 - state.views_used)

    def _context(self, state: SampleState, specs: list[ToolSpec], step: int) -> list[Message]:
        """What the next request shows: the user's ``--keep-images`` window; else, under a preset
        with ``fit_context``, the append-only history with old images dropped only when the
        request would not fit the model's context window; else everything."""
        s, p = self.settings, self.preset
        if s.keep_images is not None:
            return prune_images(
                state.messages,
                s.keep_images,
                keep_first=state.n_first,
                block=p.prune_block,
                show_mpp=p.show_mpp,
            )
        if not p.fit_context or not s.context_window:
            return list(state.messages)
        provider, _, name = self.model.profile.model.partition(":")
        reserve = s.model.settings.max_output_tokens or OUTPUT_RESERVE

        def count(messages: list[Message]) -> int:
            return estimate_request(provider, name, ModelRequest(messages=messages, tools=specs))

        context, dropped = fit_window(
            state.messages,
            dropped=state.dropped,
            limit=max(1, s.context_window - reserve),
            count=count,
            keep_first=state.n_first,
            keep_last=s.views_per_turn,
            show_mpp=p.show_mpp,
        )
        if dropped > state.dropped:
            state.note(
                f"{dropped - state.dropped} old images dropped in one block to fit the context "
                f"window of {s.context_window} tokens ({dropped} dropped in all)",
                step,
            )
            state.dropped = dropped
        return context

    def _on_reply(
        self, state: SampleState, step: int, msg: AssistantMessage, forced: bool
    ) -> Status | None:
        if msg.text.strip():
            self.record_answer(state, step, msg.text, forced=forced)
            return "answered"
        state.consecutive_errors += 1
        state.error("the model replied with neither a tool call nor text", step=step)
        if state.consecutive_errors >= self.settings.max_errors or forced:
            return "error"
        state.messages.append(
            UserMessage(
                parts=[
                    TextPart(text="Your reply was empty. Call a tool or give your final answer.")
                ]
            )
        )
        return None

    async def _on_tool_calls(
        self, state: SampleState, step: int, msg: AssistantMessage
    ) -> Status | None:
        calls = msg.tool_calls
        # the decision is recorded before its tools run: a live view draws the requested box now
        await asyncio.to_thread(state.recorder.write_trace, state.trace)
        s = self.settings
        views_left = self._views_left(state)
        cap: int | None
        # the budget's unit as the prompts name it: views (scout's slide_zoom), else tool calls
        views_only = tuple(s.tool_names) == ("slide_zoom",) and state.env.slide is not None
        unit = "views" if views_only else "tool calls"
        if views_left is not None:  # scout: up to K views per turn, out of T - 1 in all
            per_turn = min(s.views_per_turn, views_left)
            cap = per_turn
            refusal = (
                f"at most {s.views_per_turn} {'regions' if views_only else 'calls'} per turn"
                if views_left > s.views_per_turn
                else f"no {unit} remain"
            )
            run = min(len(calls), per_turn)
            remaining = views_left - run
            state.views_used += run
        else:  # giant: one step per turn (GIANT's Claude agent runs only the first call)
            cap = 1 if s.one_call else None
            refusal = "only one tool call per turn is allowed"
            remaining = s.max_steps - 2 - step
        results, n_failed = await run_tool_calls(
            state,
            calls,
            step=step,
            remaining=remaining,
            max_calls=cap,
            refusal=refusal,
            unit=unit if views_left is not None else "tool calls",
            jpeg_quality=s.jpeg_quality,
            style=self.preset.message_style,
        )
        state.messages.append(ToolMessage(results=results))
        state.consecutive_errors = state.consecutive_errors + 1 if n_failed == len(calls) else 0
        state.trace.messages = state.messages
        await asyncio.to_thread(
            state.recorder.write_trace, state.trace
        )  # the viewer can follow a running sample
        bounded = (
            self.preset.tool_errors == "bounded"
        )  # giant: the error goes back, the loop goes on
        if bounded and state.consecutive_errors >= s.max_errors:
            state.error(
                f"{state.consecutive_errors} consecutive steps failed; stopping",
                step=step,
                fatal=True,
            )
            return "error"
        return None

    def _time_left(self, started: float) -> float | None:
        """Seconds left of the per-sample or run-wide time limit (None: no limit; 0: spent)."""
        limits = []
        if self.settings.sample_seconds:
            limits.append(self.settings.sample_seconds - (time.monotonic() - started))
        if self.budget.seconds:
            limits.append(self.budget.seconds - (time.monotonic() - self.budget.started))
        return max(0.0, min(limits)) if limits else None

    @staticmethod
    def _finish(trace: Trace, recorder: Recorder, status: Status) -> Trace:
        trace.status = status
        trace.finished_at = utcnow()
        if status != "answered" and trace.error is None:
            trace.error = failure_reason(trace)
        recorder.write_trace(trace)
        return trace


def build_agent(
    config: AgentConfig,
    budget: Budget | None = None,
    *,
    repeat: int = 0,
    wrap_model: Callable[[Model], Model] | None = None,
    model: Model | None = None,
    registry: ToolRegistry | None = None,
) -> Agent:
    """An ``Agent`` from a config; with a seed, repeat *r* uses ``seed + r`` so repeats are not copies.

    Unknown or broken tools are a configuration error, raised here before any sample runs."""
    resolved = model if model is not None else config.resolve_model()
    if wrap_model is not None:
        resolved = wrap_model(resolved)
    if config.seed is not None and repeat:
        config = config.model_copy(update={"seed": config.seed + repeat})
    agent = Agent(resolved, config, budget=budget, registry=registry)
    agent.tool_specs()
    return agent


def make_agent(
    model: str | Model | None = None,
    *,
    budget: Budget | None = None,
    registry: ToolRegistry | None = None,
    **settings: object,
) -> Agent:
    """An ``Agent`` from a model id (or a ``Model``) and :class:`AgentConfig` fields:
    ``make_agent("expert", preset="vitar", max_steps=8, reasoning_effort="high")``."""
    config = AgentConfig.model_validate(
        {**settings, "model": model if isinstance(model, str) else None}
    )
    return build_agent(
        config,
        budget,
        model=None if model is None or isinstance(model, str) else model,
        registry=registry,
    )
