"""The think, act, rethink loop: a planner model navigates a slide through tools until it answers.

One ``Agent.run(sample)`` writes one trace. Errors never lose a sample: a ``ToolError`` or a
malformed call goes back to the model as an error observation; an unexpected exception is
recorded on the step; after ``max_errors`` consecutive failing steps the sample ends with
status ``error`` and its trace is kept.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
import traceback
from typing import Any

from slidescout import prompts
from slidescout.agents.budget import Budget
from slidescout.agents.context import images_in, prune_images, request_size
from slidescout.agents.messages import (
    AssistantMessage,
    ImagePart,
    Message,
    ModelRequest,
    ModelResponse,
    SystemMessage,
    TextPart,
    ToolMessage,
    ToolResultPart,
    ToolSpec,
    UserMessage,
)
from slidescout.agents.presets import Preset
from slidescout.agents.protocol import (
    imageset_baseline_prompt,
    opening_message,
    prompt_hashes,
    protocol_config,
    run_with_reruns,
    slide_system_prompt,
)
from slidescout.agents.sample import AgentSample
from slidescout.errors import ModelError, SlidescoutError, ToolError
from slidescout.traces.rundir import RunDir
from slidescout.traces.schema import (
    AnswerEvent,
    ErrorEvent,
    ModelCallEvent,
    NoteEvent,
    Rethink,
    SlideRef,
    ToolEvent,
    Trace,
    utcnow,
)

IMAGESET_TOOLS = ("view_image", "crop_image", "compare_images")
SLIDE_FREE_TOOLS = ("lookup",)  # tools that make sense without a slide

_RETHINK = re.compile(r"<rethink>\s*(\{.*?\})\s*</rethink>", re.S | re.I)
_SUPPORT = re.compile(r"supporting steps?\s*[:=]\s*([\d,\s and]+)", re.I)


def parse_rethink(text: str) -> Rethink | None:
    """The last ``<rethink>{json}</rethink>`` block of a reply, if any and valid."""
    blocks = _RETHINK.findall(text or "")
    for raw in reversed(blocks):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            conf = data.get("confidence")
            try:
                conf = None if conf is None else max(0.0, min(1.0, float(conf)))
            except (TypeError, ValueError):
                conf = None
            diff = data.get("differential") or []
            return Rethink(hypothesis=str(data.get("hypothesis", "")),
                           differential=[str(d) for d in diff] if isinstance(diff, list) else [str(diff)],
                           confidence=conf, needed_evidence=str(data.get("needed_evidence", "")))
    return None


def parse_supporting_steps(text: str) -> list[int]:
    m = _SUPPORT.search(text or "")
    return sorted({int(n) for n in re.findall(r"\d+", m.group(1))}) if m else []


def _store_tool_image(run: RunDir, img: Any, quality: int, source: str) -> ImagePart:
    """A tool's ``ToolImage`` encoded once (``to_ref``), stored by hash, ready to send."""
    ref, data = img.to_ref(quality, source)
    run.blobs.put(data, ref.media_type)
    return ImagePart(image=ref, data=data, detail=img.detail)


class _Ids:
    def __init__(self) -> None:
        self._n = itertools.count(1)

    def __call__(self, prefix: str) -> str:
        return f"{prefix}{next(self._n)}"


class Agent:
    """Runs samples with one model, one preset and one tool set, writing traces into a run dir.

    Args:
        model: a ``Model`` (see ``slidescout.agents.models.resolve_model``).
        preset: the protocol.
        tools: tool names offered to the model (default: the preset's).
        max_steps: step budget T (the last step is reserved for the answer).
        max_side: long side of every image (default: by provider, as GIANT).
        keep_images: images kept in the context besides the overview (None: all).
        max_errors: consecutive failing steps before the sample ends with status ``error``.
        budget: shared limits (dollars, tokens, wall time) for the whole run.
        sample_seconds: wall-time limit for one sample.
    """

    def __init__(self, model: Any, preset: Preset, *, tools: list[str] | None = None,
                 max_steps: int | None = None, max_side: int | None = None,
                 keep_images: int | None = -1, guides: bool | None = None, max_errors: int = 3,
                 budget: Budget | None = None, sample_seconds: float | None = None,
                 seed: int | None = None, temperature: float | None = None, jpeg_quality: int | None = None,
                 registry: Any = None, device: str | None = None) -> None:
        self.model = model
        self.preset = preset
        self.provider = model.name.split(":", 1)[0] if ":" in model.name else model.name
        self.max_steps = max_steps or preset.max_steps
        self.max_side = max_side or preset.max_side_for(self.provider)
        self.keep_images = preset.keep_images if keep_images == -1 else keep_images
        self.guides = preset.guides if guides is None else guides
        self.max_errors = max_errors
        self.budget = budget or Budget()
        self.sample_seconds = sample_seconds
        self.seed = seed
        self.temperature = preset.temperature if temperature is None else temperature
        self.jpeg_quality = jpeg_quality or preset.jpeg_quality
        self.one_call = self.provider in preset.one_call_providers  # GIANT's Claude: first call only
        self.device = device
        self.tool_names = list(preset.tools if tools is None else tools)
        self._registry = registry
        self._tools_by_env: dict[str, Any] = {}

    # -- configuration recorded in the manifest and the trace ---------------------
    def config(self) -> dict[str, Any]:
        return {
            "model": self.model.name, "api": getattr(self.model, "api", ""), "preset": self.preset.name,
            "tools": self.tool_names, "max_steps": self.max_steps, "max_side": self.max_side,
            "keep_images": self.keep_images, "guides": self.guides, "max_errors": self.max_errors,
            "seed": self.seed, "temperature": self.temperature,
            "budget": {"usd": self.budget.usd, "tokens": self.budget.tokens, "seconds": self.budget.seconds},
            "sample_seconds": self.sample_seconds, **protocol_config(self),
        }

    def prompt_hashes(self) -> dict[str, str]:
        return prompt_hashes(self)

    def _tool_map(self, env_kind: str = "slide") -> Any:
        """The ToolSet offered for an environment: an image set swaps slide navigation for image tools."""
        if env_kind not in self._tools_by_env:
            from slidescout.tools.registry import default_registry

            reg = self._registry or default_registry()
            names = self.tool_names
            if env_kind == "imageset":
                names = list(IMAGESET_TOOLS) + [n for n in names if n in SLIDE_FREE_TOOLS]
            self._tools_by_env[env_kind] = reg.select(names)
        return self._tools_by_env[env_kind]

    def tool_specs(self, env_kind: str = "slide") -> list[ToolSpec]:
        return list(self._tool_map(env_kind).specs)

    # -- running -----------------------------------------------------------------
    async def run(self, sample: AgentSample, run: RunDir, *, run_id: str = "") -> Trace:
        """Run one sample to an answer (or a clear status) and write its trace."""
        from slidescout.agents.environment import open_environment

        trace = Trace(sample_id=sample.sample_id, run_id=run_id or run.path.name, task=sample.task,
                      question=sample.question, options=sample.options,
                      slide=SlideRef(path=sample.slide_path or "", kind="imageset" if sample.image_paths else "slide",
                                     images=sample.image_paths),
                      truth=sample.truth, model=self.model.name, preset=self.preset.name,
                      config=self.config(), prompt_hashes=self.prompt_hashes())
        ids = _Ids()
        started = time.monotonic()
        try:
            env = open_environment(sample)
        except SlidescoutError as exc:
            trace.events.append(ErrorEvent(id=ids("e"), message=str(exc), error_type=type(exc).__name__, fatal=True))
            return self._finish(trace, run, "error")
        trace.slide = env.slide_ref(trace.slide)
        try:
            if self.preset.mode == "thumbnail":
                from slidescout.agents.baselines import run_thumbnail

                return await run_thumbnail(self, env, sample, run, trace, ids)
            if self.preset.mode == "patch":
                from slidescout.agents.baselines import run_patches

                return await run_patches(self, env, sample, run, trace, ids)
            return await run_with_reruns(self, lambda: self._run_agent(env, sample, run, trace, ids, started),
                                         trace, ids, run)
        except asyncio.CancelledError:
            self._finish(trace, run, "cancelled")
            raise
        except Exception as exc:  # never lose a sample: record and keep the trace
            trace.events.append(ErrorEvent(id=ids("e"), message=f"{type(exc).__name__}: {exc}",
                                           error_type=type(exc).__name__, fatal=True))
            trace.events.append(NoteEvent(id=ids("n"), message="".join(traceback.format_exc(limit=6))[-4000:]))
            return self._finish(trace, run, "error")
        finally:
            env.close()

    def _system_prompt(self, env: Any) -> str:
        if getattr(env, "kind", "slide") == "imageset" and self.preset.mode != "agent":
            return imageset_baseline_prompt(self, env)
        if getattr(env, "kind", "slide") == "imageset":
            return prompts.render("imageset_system", n_images=len(env.imageset), max_steps=self.max_steps,
                                  rethink_instructions=prompts.load("rethink_block") if self.preset.rethink else "")
        return slide_system_prompt(self, env)

    async def _call_model(self, req: ModelRequest, trace: Trace, ids: _Ids, step: int, forced: bool,
                          n_images: int) -> ModelResponse | None:
        t0 = time.monotonic()
        try:
            resp = await self.model.request(req)
        except ModelError as exc:
            retries = getattr(exc, "retries", []) or []
            note = f" (after {len(retries)} retries: {', '.join(r.reason for r in retries)})" if retries else ""
            trace.events.append(ErrorEvent(id=ids("e"), step=step, message=f"{exc}{note}", error_type="ModelError",
                                           fatal=True, duration_s=time.monotonic() - t0))
            return None
        self.budget.charge(resp.usage)
        trace.usage = trace.usage + resp.usage
        ev = ModelCallEvent(id=ids("m"), step=step, model=resp.model or self.model.name, api=resp.api,
                            output=resp.message, usage=resp.usage, latency_s=resp.latency_s,
                            duration_s=time.monotonic() - t0,
                            request_bytes=resp.request_bytes or request_size(req.messages),
                            images_in_context=n_images, retries=resp.retries,
                            tools_offered=[t.name for t in req.tools], forced_final=forced,
                            stop_reason=resp.stop_reason)
        if self.preset.rethink:
            ev.rethink = parse_rethink(resp.message.text)
        trace.events.append(ev)
        return resp

    async def _run_agent(self, env: Any, sample: AgentSample, run: RunDir, trace: Trace, ids: _Ids,
                         started: float) -> Trace:
        kind = getattr(env, "kind", "slide")
        tools = self._tool_map(kind)
        specs = list(tools.specs)
        p = self.preset
        ctx = env.tool_context(max_side=self.max_side, guides=self.guides, jpeg_quality=self.jpeg_quality,
                               run_dir=run.path, sample_id=sample.sample_id, device=self.device,
                               show_mpp=p.show_mpp, level_rule=p.level_rule, guide_style=p.guide_style)
        system = self._system_prompt(env)
        messages: list[Message] = [SystemMessage(content=system)] if system else []
        messages.append(await opening_message(self, env, sample.question, run, trace, ids))
        n_first = images_in(messages)  # the overview, or every frame of an image set, always stays
        consecutive_errors = 0
        status = None
        for step in range(self.max_steps):
            exceeded = self.budget.exceeded()
            message = self.budget.describe(exceeded) if exceeded else ""
            if exceeded is None and self._time_left(started) == 0:
                exceeded, message = "budget_time", f"sample time limit of {self.sample_seconds:.0f} s reached"
            if exceeded:
                trace.events.append(NoteEvent(id=ids("n"), step=step, message=message))
                status = exceeded
                break
            last = step == self.max_steps - 1
            forced = last and p.forced_answer  # giant: tools stay offered on every step
            if forced:
                messages.append(UserMessage(parts=[TextPart(text=prompts.load("final_step").strip())]))
            context = prune_images(messages, self.keep_images, keep_first=n_first, block=p.prune_block,
                                   show_mpp=p.show_mpp)
            # on the last step the tools stay declared (providers need them to read the history,
            # and prompt caches stay warm) but tool_choice "none" withdraws them
            req = ModelRequest(messages=context, tools=specs,
                               tool_choice="none" if forced or not specs else "auto",
                               temperature=self.temperature, seed=self.seed)
            try:
                resp = await asyncio.wait_for(self._call_model(req, trace, ids, step, forced, images_in(context)),
                                              timeout=self._time_left(started))
            except asyncio.TimeoutError:
                trace.events.append(NoteEvent(id=ids("n"), step=step,
                                              message=f"sample time limit of {self.sample_seconds:.0f} s reached during a model call"))
                status = "budget_time"
                break
            trace.messages = messages
            if resp is None:
                status = "error"
                break
            msg = resp.message
            messages.append(msg)
            calls = msg.tool_calls
            if not calls:
                if not msg.text.strip():
                    consecutive_errors += 1
                    trace.events.append(ErrorEvent(id=ids("e"), step=step, message="the model replied with neither a tool call nor text"))
                    if consecutive_errors >= self.max_errors or forced:
                        status = "error"
                        break
                    messages.append(UserMessage(parts=[TextPart(text="Your reply was empty. Call a tool or give your final answer.")]))
                    continue
                self._answer(trace, ids, step, msg, forced=forced)
                status = "answered"
                break
            if last and not forced:  # a tool call at step T: this attempt overran (giant reruns it)
                trace.events.append(NoteEvent(id=ids("n"), step=step, message=(
                    f"the model called a tool at the last step ({self.max_steps}); the attempt overran")))
                status = "max_steps"
                break
            if last:
                # tools were withdrawn but the model still asked for one: keep any text as the answer
                if msg.text.strip():
                    self._answer(trace, ids, step, msg, forced=True)
                    status = "answered"
                else:
                    status = "max_steps"
                break
            remaining = self.max_steps - 2 - step
            results, n_failed = await self._run_calls(calls, tools, ctx, run, trace, ids, step, remaining, env)
            messages.append(ToolMessage(results=results))
            consecutive_errors = consecutive_errors + 1 if n_failed == len(calls) else 0
            await asyncio.to_thread(run.write_trace, trace)  # the viewer can follow a sample while it runs
            if consecutive_errors >= self.max_errors:
                trace.events.append(ErrorEvent(id=ids("e"), step=step, fatal=True,
                                               message=f"{consecutive_errors} consecutive steps failed; stopping"))
                status = "error"
                break
        trace.messages = messages
        return self._finish(trace, run, status or "max_steps")

    def _time_left(self, started: float) -> float | None:
        """Seconds left of the per-sample or run-wide time limit (None: no limit; 0: spent)."""
        limits = []
        if self.sample_seconds:
            limits.append(self.sample_seconds - (time.monotonic() - started))
        if self.budget.seconds:
            limits.append(self.budget.seconds - (time.monotonic() - self.budget.started))
        return max(0.0, min(limits)) if limits else None

    async def _run_calls(self, calls, tools, ctx, run, trace, ids, step, remaining, env):
        results: list[ToolResultPart] = []
        n_failed = 0
        for call in calls:
            t0 = time.monotonic()
            ev = ToolEvent(id=ids("t"), step=step, call=call)
            content: list[Any] = []
            if self.one_call and results:  # GIANT's Claude agent runs the first call of a turn only
                ev.error = ("only one tool call per turn is allowed; this call was not run. Make one "
                            "tool call at a time.")
            elif call.parse_error:
                ev.error = f"could not parse the arguments of {call.name}: {call.parse_error}. Send valid JSON arguments."
            elif call.name not in tools:
                offered = ", ".join(s.name for s in tools.specs) or "none"
                ev.error = f"unknown tool {call.name!r}; available tools: {offered}"
            else:
                try:
                    result = await tools.invoke(call.name, call.arguments, ctx)
                except ToolError as exc:
                    ev.error = str(exc)
                except Exception as exc:
                    ev.internal_error = f"{type(exc).__name__}: {exc}"
                    ev.error = f"the tool {call.name} failed unexpectedly ({type(exc).__name__}); try something else"
                else:
                    ev.text = result.text or ""
                    ev.data = dict(getattr(result, "data", {}) or {})
                    for img in result.images:  # encode + store off the event loop
                        part = await asyncio.to_thread(_store_tool_image, run, img, self.jpeg_quality,
                                                       env.source_id)
                        ev.images.append(part.image)
                        content.append(part)
            ev.duration_s = time.monotonic() - t0
            note = f"{remaining} tool calls remain." if remaining > 0 else "No tool calls remain: give your final answer next."
            if ev.error:
                n_failed += 1
                text = f"Error: {ev.error}\n{note}"
            else:
                text = f"{ev.text}\n{note}".strip()
            results.append(ToolResultPart(tool_call_id=call.id, name=call.name,
                                          content=[TextPart(text=text), *content], is_error=bool(ev.error)))
            trace.events.append(ev)
        return results, n_failed

    def _answer(self, trace: Trace, ids: _Ids, step: int, msg: AssistantMessage, *, forced: bool) -> None:
        text = msg.text
        trace.answer = text
        trace.rationale = _RETHINK.sub("", text).strip()
        trace.events.append(AnswerEvent(id=ids("a"), step=step, text=text, rationale=trace.rationale,
                                        supporting_steps=parse_supporting_steps(text), forced=forced))

    def _finish(self, trace: Trace, run: RunDir, status: str) -> Trace:
        trace.status = status  # type: ignore[assignment]
        trace.finished_at = utcnow()
        run.write_trace(trace)
        return trace


