"""One conversation on one slide: its turns, its run folder and the live events of its page.

A session is a normal run folder (``manifest.json``, ``results.jsonl``, one trace per turn under
``traces/``, images in ``blobs/``) that ``view``, ``report-html``, ``trace show`` and ``compare``
read. Each turn is one sample run through :func:`~slidescout.eval.sample_run.run_sample` (the
one path from a question to its record); a follow-up continues the conversation of the turns
before it (:class:`~slidescout.agents.conversation.Conversation`), and Stop goes through a
:class:`~slidescout.agents.live.RunControl`.

The events a page shows are kept in an :class:`EventLog`: a page that (re)attaches gets them from
the start (or from the last id it saw) and then live, so a reload reattaches and a closed tab
changes nothing. A turn runs in a task of its own; only Stop (or the server stopping) ends it.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from slidescout.agents.config import AgentConfig
from slidescout.agents.conversation import Conversation, RegionBox, with_region_hint
from slidescout.agents.live import RunControl
from slidescout.agents.loop import Agent, build_agent
from slidescout.core.messages import ImageRef
from slidescout.core.trace import Event, Trace
from slidescout.errors import ConfigError
from slidescout.eval.ask import question_sample
from slidescout.eval.sample_run import run_sample
from slidescout.studio.library import SlideEntry
from slidescout.traces.rundir import RunDir
from slidescout.traces.viewer.sampleview import build_sample

__all__ = ["Busy", "EventLog", "LogEntry", "Session", "Turn", "pending_boxes"]

BOX_ARGS = (("x0", "y0", "w", "h"), ("x", "y", "w", "h"))


class Busy(ConfigError):
    """A turn is still running in this session."""


@dataclass
class LogEntry:
    id: int
    kind: str  # session, turn, snapshot, end
    data: dict[str, Any]
    turn: int | None = None


class EventLog:
    """The events of one session, in order, for every page attached to it (now or later).

    Only the latest ``snapshot`` of a turn is kept (each one holds the whole turn so far); ids keep
    counting, so a page that reconnects with the last id it saw gets only what it missed."""

    def __init__(self) -> None:
        self.entries: list[LogEntry] = []
        self._next = 1
        self._changed = asyncio.Event()

    def append(self, kind: str, data: dict[str, Any], turn: int | None = None) -> LogEntry:
        entry = LogEntry(self._next, kind, data, turn)
        self._next += 1
        if kind == "snapshot":
            self.entries = [
                e for e in self.entries if not (e.kind == "snapshot" and e.turn == turn)
            ]
        self.entries.append(entry)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return entry

    def since(self, last_id: int) -> list[LogEntry]:
        return [e for e in self.entries if e.id > last_id]

    async def wait(self, last_id: int) -> list[LogEntry]:
        """The entries after ``last_id``, waiting for one when there is none yet."""
        while True:
            changed = self._changed
            out = self.since(last_id)
            if out:
                return out
            await changed.wait()


@dataclass
class Turn:
    """One question of a session and how it ended."""

    n: int
    question: str
    options: list[str]
    region: RegionBox | None
    sample_id: str
    status: str = "running"
    answer: str | None = None
    answer_label: str | None = None
    error: str | None = None
    cost_usd: float | None = 0.0
    n_steps: int = 0
    trace: str | None = None
    started: float = field(default_factory=time.time)

    def public(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "question": self.question,
            "options": self.options,
            "region": list(self.region) if self.region else None,
            "sample_id": self.sample_id,
            "status": self.status,
            "answer": self.answer,
            "answer_label": self.answer_label,
            "error": self.error,
            "cost_usd": self.cost_usd,
            "n_steps": self.n_steps,
            "trace": self.trace,
        }


def pending_boxes(view: dict[str, Any]) -> list[dict[str, Any]]:
    """Regions the model asked for whose tool has not answered yet (drawn as soon as requested):
    calls of the last step with level-0 box arguments (``x0, y0, w, h`` or ``x, y, w, h``)."""
    steps = view.get("steps") or []
    if not steps:
        return []
    last = steps[-1]
    out = []
    for call in last.get("calls") or []:
        if call.get("result") is not None:
            continue
        args = call.get("arguments") or {}
        for names in BOX_ARGS:
            try:
                box = [int(round(float(args[k]))) for k in names]
            except (KeyError, TypeError, ValueError):
                continue
            if box[2] > 0 and box[3] > 0:
                out.append({"box": box, "step": last.get("step"), "tool": call.get("name")})
            break
    return out


def _run_name(slide: SlideEntry, session_id: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(slide.slide_id).stem)[:40] or "slide"
    return f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{stem}-{session_id[:6]}"


class Session:
    """One conversation on one slide, recorded as one run folder under ``runs_dir``."""

    def __init__(self, slide: SlideEntry, agent: Agent, run: RunDir, session_id: str) -> None:
        self.id = session_id
        self.slide = slide
        self.agent = agent
        self.run = run
        self.name = run.path.name
        self.turns: list[Turn] = []
        self.log = EventLog()
        self.conversation: Conversation | None = None
        self.control: RunControl | None = None
        self.task: asyncio.Task[None] | None = None
        self.created = time.time()
        self._loop = asyncio.get_running_loop()
        self.log.append("session", self.public())

    @classmethod
    async def start(cls, slide: SlideEntry, config: AgentConfig, runs_dir: Path) -> Session:
        """A new session (its agent and run folder made off the event loop)."""
        session_id = secrets.token_hex(8)

        def make() -> tuple[Agent, RunDir]:
            agent = build_agent(config)
            run = RunDir.create(
                runs_dir / _run_name(slide, session_id),
                {
                    "agent": agent.config(),
                    "studio": {"slide": slide.slide_id, "session": session_id},
                },
                agent.prompt_hashes(),
            )
            return agent, run

        agent, run = await asyncio.to_thread(make)
        return cls(slide, agent, run, session_id)

    # -- what the page sees ------------------------------------------------------------------
    def public(self, *, ended: bool = False) -> dict[str, Any]:
        """The session as the page sees it (``ended``: said by the turn that is ending)."""
        costs = [t.cost_usd for t in self.turns]
        return {
            "id": self.id,
            "slide": self.slide.key,
            "slide_name": self.slide.slide_id,
            "run": self.name,
            "model": self.agent.model.name,
            "preset": self.agent.preset.name,
            "max_steps": self.agent.settings.max_steps,
            "running": self.running and not ended,
            "turns": [t.public() for t in self.turns],
            "cost_usd": None if any(c is None for c in costs) else round(sum(costs), 6),  # type: ignore[arg-type]
            "n_steps": sum(t.n_steps for t in self.turns),
        }

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def image_url(self, ref: ImageRef) -> str | None:
        return f"api/sessions/{self.id}/blobs/{ref.sha256}"

    # -- turns -------------------------------------------------------------------------------
    def ask(
        self, question: str, options: list[str] | None = None, region: RegionBox | None = None
    ) -> Turn:
        """Start a turn (the first question, or a follow-up); returns at once, the turn runs on."""
        if self.running:
            raise Busy("the agent is still working on the last question; wait or press Stop")
        n = len(self.turns) + 1
        stem = Path(self.slide.slide_id).stem
        sample = question_sample(
            self.slide.path,
            with_region_hint(question, region),
            options or [],
            sample_id=f"{stem}/turn-{n}",
        )
        turn = Turn(n, question.strip(), list(options or []), region, sample.sample_id)
        self.turns.append(turn)
        self.log.append("turn", turn.public(), turn=n)
        control = RunControl()
        self.control = control
        history = self.conversation
        self.task = asyncio.create_task(self._run_turn(turn, sample, control, history))
        return turn

    def stop(self) -> bool:
        """Stop the running turn now (its trace is kept with status ``stopped``)."""
        return self.control.stop() if self.control is not None and self.running else False

    async def _run_turn(
        self, turn: Turn, sample: Any, control: RunControl, history: Conversation | None
    ) -> None:
        try:
            outcome = await run_sample(
                self.agent,
                sample,
                0,
                self.run,
                observer=lambda trace, new: self._observe(turn, trace, new),
                control=control,
                history=history,
                live_interval=0.0,
            )
            await asyncio.to_thread(self.run.append_result, outcome.record)
            if outcome.trace is not None and outcome.trace.messages:
                self.conversation = await asyncio.to_thread(
                    Conversation.from_trace, outcome.trace, self.run.recorder()
                )
                self._snapshot(turn, outcome.trace)  # the final state (status stopped included)
            rec = outcome.record
            turn.status = rec.status
            turn.answer = rec.answer_text
            turn.answer_label = rec.answer_label
            turn.error = rec.error
            turn.cost_usd = rec.cost_usd
            turn.n_steps = rec.n_steps or 0
            turn.trace = rec.trace or ""
        except asyncio.CancelledError:
            turn.status = "cancelled"
            raise
        except Exception as exc:  # a bug: say so on the page, keep the session usable
            turn.status, turn.error = "error", f"{type(exc).__name__}: {exc}"[:500]
        finally:
            self.log.append(
                "end", {**turn.public(), "session": self.public(ended=True)}, turn=turn.n
            )

    def _observe(self, turn: Turn, trace: Trace, new: list[Event]) -> None:
        """Observer of the running turn (maybe on a worker thread): snapshot now, publish on the loop."""
        data = self._view(trace)
        self._loop.call_soon_threadsafe(self._publish, turn, data)

    def _view(self, trace: Trace) -> dict[str, Any]:
        view = build_sample(trace, self.image_url, lambda _path: self.slide.key)
        view["pending"] = pending_boxes(view)
        # through JSON now: later changes to the trace cannot reach what was published
        return json.loads(json.dumps(view, default=str))

    def _snapshot(self, turn: Turn, trace: Trace) -> None:
        self._publish(turn, self._view(trace))

    def _publish(self, turn: Turn, view: dict[str, Any]) -> None:
        turn.n_steps = int(view.get("n_steps") or 0)
        turn.cost_usd = (view.get("usage") or {}).get("cost_usd")
        self.log.append("snapshot", {"turn": turn.n, "view": view}, turn=turn.n)

    async def aclose(self, timeout: float = 30.0) -> None:
        """Stop a running turn (its trace is kept) and close the model's client."""
        if self.running and self.task is not None:
            self.stop()
            try:
                await asyncio.wait_for(asyncio.shield(self.task), timeout)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self.task.cancel()
        await self.agent.aclose()
