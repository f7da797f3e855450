"""``slidescout chat SLIDE``: the studio in a terminal. Type a question; the agent's steps print as
they happen; type another question to follow up in the same conversation.

Commands: ``/stop`` (end the running question now; its trace is kept as ``stopped``), ``/cost``,
``/save [FILE]`` (an HTML report of the conversation), ``/region x,y,w,h`` (a region hint for the
next question), ``/options A | B | C`` (options for the next question), ``/new`` (a new
conversation), ``/help``, ``/quit``. Lines are handled in order: a question typed while the agent
works waits for it, commands act at once. Ctrl-C stops a running question, or quits at the prompt.

It runs the same :class:`~slidescout.studio.session.Session` as the browser studio, so each
conversation is a run folder that ``view``, ``report-html``, ``trace show`` and ``compare`` read.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from slidescout.agents.config import AgentConfig
from slidescout.agents.conversation import RegionBox, parse_region
from slidescout.errors import SlidescoutError
from slidescout.studio.library import SlideEntry
from slidescout.studio.session import Session
from slidescout.traces.viewer.report import write_report

__all__ = ["Chat", "run_chat"]

HELP = (
    "Type a question and press Enter. Commands: /stop, /cost, /save [FILE], /region x,y,w,h, "
    "/options A | B, /new, /help, /quit"
)


def _money(v: float | None) -> str:
    return "unknown" if v is None else f"${v:.4f}"


def _args(arguments: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in arguments.items()
    )


def step_line(step: dict[str, Any], offset: int) -> str:
    """One line per step: number, tool calls (or the answer), regions, tokens, cost, latency."""
    n = "·" if step.get("step") is None else str(step["step"] + 1)
    what = (
        "answer"
        if step.get("answer")
        else "; ".join(f"{c['name']}({_args(c.get('arguments') or {})})" for c in step["calls"])
        or "thought"
    )
    regions = step.get("regions") or []
    parts = [f"  {n:>2}  {what}"]
    if regions:
        parts.append(
            "region"
            + ("s " if len(regions) > 1 else " ")
            + ", ".join(str(offset + r) for r in regions)
        )
    u = step.get("usage")
    if u:
        parts.append(f"{u['input_tokens']:,}→{u['output_tokens']:,} tok · {_money(u['cost_usd'])}")
    if step.get("latency_s") is not None:
        parts.append(f"{step['latency_s']:.1f} s")
    for call in step["calls"]:
        res = call.get("result") or {}
        if res.get("error"):
            parts.append(f"error: {res['error']}")
    return " · ".join(parts)


class Chat:
    """The terminal conversation: reads lines, runs turns through a :class:`Session`, prints."""

    def __init__(
        self,
        slide: Path,
        config: AgentConfig,
        runs_dir: Path,
        *,
        echo: Callable[[str], None] = print,
    ) -> None:
        self.entry = SlideEntry(key="chat", slide_id=slide.name, path=slide)
        self.config = config
        self.runs_dir = runs_dir
        self.echo = echo
        self.session: Session | None = None
        self.region: RegionBox | None = None
        self.options: list[str] = []
        self._printed: dict[int, int] = {}  # turn -> steps printed
        self._offsets: dict[int, int] = {}  # turn -> regions of the turns before it
        self._regions: dict[int, int] = {}  # turn -> regions it viewed
        self._follower: asyncio.Task[None] | None = None

    async def new_session(self) -> Session:
        if self.session is not None and self.session.running:
            self.session.stop()
            await self.wait_idle()
        self.session = await Session.start(self.entry, self.config, self.runs_dir)
        self._printed, self._offsets, self._regions = {}, {}, {}
        if self._follower is not None:
            self._follower.cancel()
        self._follower = asyncio.create_task(self._follow(self.session))
        self.echo(
            f"conversation on {self.entry.slide_id} with {self.session.agent.model.name} "
            f"({self.session.agent.preset.name}), recorded in {self.session.run.path}"
        )
        return self.session

    async def wait_idle(self) -> None:
        session = self.session
        if session is not None and session.task is not None:
            await asyncio.wait({session.task})
            await asyncio.sleep(0)  # let the follower print the end

    # -- printing ------------------------------------------------------------------------------
    async def _follow(self, session: Session) -> None:
        last = 0
        while True:
            for entry in await session.log.wait(last):
                last = entry.id
                self._show(entry.kind, entry.data)

    def _show(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "turn":
            n = int(data["n"])
            self._offsets[n] = sum(self._regions.get(t, 0) for t in range(1, n))
            self.echo(f"question {n}: {data['question']}")
        elif kind == "snapshot":
            n, view = int(data["turn"]), data["view"]
            self._regions[n] = len(view.get("regions") or [])
            steps = view.get("steps") or []
            done = self._printed.get(n, 0)
            for step in steps[done:]:
                waiting = any(c.get("result") is None for c in step["calls"])
                if waiting or (step.get("step") is None and not step["calls"]):
                    break
                self.echo(step_line(step, self._offsets.get(n, 0)))
                done += 1
            self._printed[n] = done
        elif kind == "end":
            self._show_end(data)

    def _show_end(self, data: dict[str, Any]) -> None:
        status = data["status"]
        if status == "answered":
            label = data.get("answer_label") if data.get("options") else None
            self.echo(f"answer: {label}" if label else "answer:")
            text = (data.get("answer") or "").strip()
            if text and text != label:
                self.echo("  " + "\n  ".join(text.splitlines()[:12]))
        else:
            self.echo(f"{status}: {data.get('error') or ''}".rstrip(": "))
        trace = self.session.run.path / str(data.get("trace") or "") if self.session else None
        where = f" · trace: {trace}" if trace is not None and trace.is_file() else ""
        self.echo(f"  {data['n_steps']} steps · {_money(data.get('cost_usd'))}{where}")

    # -- lines ---------------------------------------------------------------------------------
    async def handle(self, line: str) -> bool:
        """Handle one line; False to quit."""
        line = line.strip()
        if not line:
            return True
        if line.startswith("/"):
            return await self.command(line)
        if self.session is not None and self.session.running:
            await self.wait_idle()
        session = self.session or await self.new_session()
        try:
            session.ask(line, self.options, self.region)
        except SlidescoutError as exc:
            self.echo(f"error: {exc}")
            return True
        self.region, self.options = None, []
        return True

    async def command(self, line: str) -> bool:
        name, _, rest = line.partition(" ")
        rest = rest.strip()
        s = self.session
        if name in ("/quit", "/exit", "/q"):
            if s is not None and s.running:
                s.stop()
                await self.wait_idle()
            return False
        if name == "/stop":
            self.echo("stopping…" if s is not None and s.stop() else "nothing is running")
        elif name == "/cost":
            if s is None:
                self.echo("no question asked yet")
            else:
                p = s.public()
                self.echo(
                    f"{p['n_steps']} steps · {_money(p['cost_usd'])} in {len(s.turns)} question(s)"
                )
        elif name == "/save":
            if s is None:
                self.echo("nothing to save yet")
            else:
                await self.wait_idle()
                out = Path(rest) if rest else s.run.path / "report.html"
                written = await asyncio.to_thread(write_report, s.run.path, out)
                self.echo(f"saved {written} (the run folder is {s.run.path})")
        elif name == "/region":
            try:
                self.region = parse_region(rest or None)
            except SlidescoutError as exc:
                self.echo(f"error: {exc}")
            else:
                self.echo(
                    f"region hint for the next question: {self.region}"
                    if self.region
                    else "region hint cleared"
                )
        elif name == "/options":
            self.options = [o.strip() for o in rest.split("|") if o.strip()]
            self.echo(
                f"options for the next question: {self.options}"
                if self.options
                else "options cleared"
            )
        elif name == "/new":
            await self.new_session()
        elif name == "/help":
            self.echo(HELP)
        else:
            self.echo(f"unknown command {name}; {HELP}")
        return True

    async def aclose(self) -> None:
        await self.wait_idle()
        if self._follower is not None:
            self._follower.cancel()
        if self.session is not None:
            await self.session.aclose()


def _reader(
    stream: TextIO, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]
) -> None:
    """Lines of ``stream`` into ``queue`` (None at the end); a daemon thread, so it never blocks exit."""
    for line in stream:
        loop.call_soon_threadsafe(queue.put_nowait, line)
    loop.call_soon_threadsafe(queue.put_nowait, None)


async def run_chat(
    slide: Path,
    config: AgentConfig,
    runs_dir: Path,
    *,
    stream: TextIO | None = None,
    echo: Callable[[str], None] = print,
    prompt: Callable[[], None] | None = None,
) -> None:
    """Read lines from ``stream`` (stdin) until the end or ``/quit``."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    threading.Thread(
        target=_reader, args=(stream or sys.stdin, loop, queue), daemon=True, name="chat-input"
    ).start()
    chat = Chat(slide, config, runs_dir, echo=echo)

    def on_sigint() -> None:
        if chat.session is not None and chat.session.stop():
            echo("stopping… (Ctrl-C again at the prompt quits)")
        else:
            queue.put_nowait(None)

    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
        pass
    echo(HELP)
    try:
        while True:
            if prompt is not None and not (chat.session and chat.session.running):
                prompt()
            line = await queue.get()
            if line is None or not await chat.handle(line):
                break
    finally:
        try:
            loop.remove_signal_handler(signal.SIGINT)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
        await chat.aclose()
