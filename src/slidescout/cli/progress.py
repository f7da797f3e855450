"""Every progress display of the CLI, in one place (the layers below report through protocols and
draw nothing):

- :func:`slide_progress`: slide generation (``synth``, ``eval synth``). On a terminal a bar for the
  dataset and one for the slide being written; piped, one line per slide,
  ``[3/20] synth-002 written in 12.3 s · elapsed 0:37 · ETA 1:50``.
- :class:`EvalProgress`: an evaluation run (``eval.runner.RunProgress``): samples done, elapsed,
  ETA, failures, samples in flight, running cost and tokens, the dollar budget.
- :class:`TransferProgress`: slide downloads (``eval.fetch.FetchProgress``): bytes overall and
  per file.
- :class:`CountProgress`: ``done``/``total`` callbacks (expert runs, in patches).

They share :func:`bar` for the rich progress bar itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Column

from slidescout.core.record import ResultRecord

if TYPE_CHECKING:
    from slidescout.agents.budget import Budget

__all__ = [
    "CountProgress",
    "EvalProgress",
    "SlideProgress",
    "TransferProgress",
    "bar",
    "fmt_clock",
    "slide_progress",
]


def bar(
    console: Console, *extra: ProgressColumn, unit: str = "", transient: bool = False
) -> Progress:
    """The CLI's progress bar: description, bar, done/total (``unit``), elapsed, ETA, then ``extra``
    columns."""
    columns: list[ProgressColumn] = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
    ]
    if unit:
        columns.append(TextColumn(unit))
    columns += [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), *extra]
    return Progress(*columns, console=console, transient=transient)


def fmt_clock(seconds: float) -> str:
    """``0:37``, ``12:05``, ``1:02:09``."""
    s = max(0, int(round(seconds)))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class SlideProgress:
    """The ``on_slide``/``on_done`` callbacks of ``generate_dataset``, counting slides and timing them."""

    def __init__(self, console: Console, n: int, label: str, *, bar: Any = None) -> None:
        self.console, self.n, self.label, self.bar = console, n, label, bar
        self.t0 = time.monotonic()
        self.started: float | None = None
        self.done = 0
        self.written: list[float] = []  # seconds per generated slide (kept ones cost nothing)
        if bar is not None:
            self.overall = bar.add_task(label, total=n)
            self.current = bar.add_task("", total=100, visible=False)

    def eta(self) -> float | None:
        """Seconds left: the mean time of the slides written so far, times the slides left."""
        if not self.written:
            return None
        return (self.n - self.done) * sum(self.written) / len(self.written)

    def on_slide(self, i: int, slide_id: str) -> Callable[[float], None] | None:
        """A slide starts: show it; returns the callback for the fraction of its TIFF written."""
        self.started = time.monotonic()
        if self.bar is None:
            return None
        bar, current = self.bar, self.current
        bar.update(current, description=f"  {slide_id}", completed=0, visible=True)
        return lambda fraction: bar.update(current, completed=round(100 * fraction))

    def on_done(self, item: Any) -> None:
        """A slide is ready (written now, or kept from an earlier run)."""
        truth = getattr(item, "truth", item)
        written = hasattr(item, "truth") and self.started is not None
        if written and self.started is not None:
            self.written.append(time.monotonic() - self.started)
        self.started = None
        self.done += 1
        if self.bar is not None:
            self.bar.update(self.current, visible=False)
            self.bar.advance(self.overall)
            return
        what = f"written in {self.written[-1]:.1f} s" if written else "kept (already there)"
        eta = self.eta()
        line = (
            f"[{self.done}/{self.n}] {truth.slide_id} {what} · elapsed {fmt_clock(time.monotonic() - self.t0)}"
            + (f" · ETA {fmt_clock(eta)}" if eta is not None and self.done < self.n else "")
        )
        self.console.print(line, highlight=False, markup=False, soft_wrap=True)


@contextmanager
def slide_progress(console: Console, n: int, label: str) -> Iterator[SlideProgress]:
    """Bars on a terminal, one line per slide otherwise."""
    if not console.is_terminal:
        console.print(f"{label}:", highlight=False, markup=False, soft_wrap=True)
        yield SlideProgress(console, n, label)
        return
    with bar(console) as progress:
        yield SlideProgress(console, n, label, bar=progress)


class EvalProgress:
    """An evaluation run's bar (``eval.runner.RunProgress``): samples done, elapsed and ETA first
    (they survive a narrow terminal), then the bar and the failures, samples in flight, running
    cost and tokens, and the dollar budget (cut with an ellipsis)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.budget: Budget | None = None
        self.cost = 0.0
        self.known = 0
        self.unknown = 0
        self.tokens = 0
        self.running = 0
        self.errors = 0
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def _columns(self, total: int) -> list[ProgressColumn]:
        width = self.console.width
        digits = len(str(total))
        # "samples  12/200 0:01:02 eta 0:03:04 ": what a narrow terminal must still show
        fixed = 7 + 2 * digits + 1 + 7 + 3 + 7 + 6
        bar_width = 20 if width - fixed >= 60 else 0
        columns: list[ProgressColumn] = [
            TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True)),
            MofNCompleteColumn(table_column=Column(no_wrap=True)),
            TimeElapsedColumn(table_column=Column(no_wrap=True)),
            TextColumn("eta", table_column=Column(no_wrap=True)),
            TimeRemainingColumn(table_column=Column(no_wrap=True)),
        ]
        if bar_width:
            columns.append(BarColumn(bar_width=bar_width))
        stats_width = max(8, width - fixed - (bar_width + 1 if bar_width else 0) - 1)
        columns.append(
            TextColumn(
                "{task.fields[stats]}",
                table_column=Column(no_wrap=True, overflow="ellipsis", max_width=stats_width),
            )
        )
        return columns

    def start(self, total: int, done: int, budget: Budget | None = None) -> None:
        if total <= 0:
            return
        self.budget = budget if budget is not None and budget.usd is not None else None
        self.progress = Progress(*self._columns(total), console=self.console, transient=False)
        self.task = self.progress.add_task("samples", total=total, completed=done, stats="")
        self.progress.start()

    def _refresh(self, advance: int = 0) -> None:
        if self.progress is None or self.task is None:
            return
        if self.known == 0 and self.unknown:  # no price known: $0.0000 would be a lie
            cost = "unknown"
        else:
            cost = f"${self.cost:.4f}" + (f" (+{self.unknown} unknown)" if self.unknown else "")
        stats = (f"{self.errors} failed · " if self.errors else "") + (
            f"{self.running} running · cost {cost} · {self.tokens:,} tok"
        )
        b = self.budget
        if b is not None and b.usd is not None:  # spent (unknown prices at the ceiling) and held
            stats += (
                f" · budget ${b.spent_usd:.4f} spent + ${b.reserved_usd:.4f} reserved of ${b.usd:g}"
            )
        self.progress.update(self.task, advance=advance, stats=stats)

    def sample_started(self) -> None:
        self.running += 1
        self._refresh()

    def sample_finished(self, record: ResultRecord) -> None:
        self.running = max(0, self.running - 1)
        if record.cost_usd is None:
            self.unknown += 1
        else:
            self.known += 1
            self.cost += record.cost_usd
        self.tokens += (record.input_tokens or 0) + (record.output_tokens or 0)
        self.errors += record.status != "answered"
        self._refresh(advance=1 if record.is_finished() else 0)

    def stop(self) -> None:
        if self.progress is not None:
            self._refresh()
            self.progress.stop()
            self.progress = None


class TransferProgress:
    """Downloads in bytes, overall and per file (``eval.fetch.FetchProgress``)."""

    def __init__(self, console: Console) -> None:
        self.p = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.overall: TaskID | None = None
        self._tasks: dict[int, TaskID] = {}

    def start(self, total: int | None, n: int) -> None:
        self.p.start()
        self.overall = self.p.add_task(f"{n} slides", total=total or None)

    def grow(self, n: int) -> None:
        if self.overall is not None:
            t = self.p.tasks[self.overall]
            self.p.update(self.overall, total=(t.total or 0) + n)

    def file(self, name: str, total: int | None) -> Callable[[int], None]:
        overall = self.overall
        if overall is None:
            return lambda n: None
        tid = self.p.add_task(f"  {name}", total=total)

        def advance(n: int) -> None:
            self.p.advance(tid, n)
            self.p.advance(overall, n)

        self._tasks[id(advance)] = tid
        return advance

    def done(self, advance: Callable[[int], None]) -> None:
        tid = self._tasks.pop(id(advance), None)
        if tid is not None:
            self.p.remove_task(tid)

    def stop(self) -> None:
        self.p.stop()


class CountProgress:
    """A bar with an ETA on stderr for ``progress(done, total)`` callbacks (nothing when
    ``quiet``): ``with CountProgress(console, "tumor", "patches", quiet) as p: run(..., progress=p)``."""

    def __init__(self, console: Console, what: str, unit: str, quiet: bool) -> None:
        self.console, self.what, self.unit, self.quiet = console, what, unit, quiet
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> CountProgress:
        if not self.quiet:
            self.progress = bar(self.console, unit=self.unit, transient=True)
            self.progress.__enter__()
        return self

    def __call__(self, done: int, total: int) -> None:
        if self.progress is None:
            return
        if self.task is None:
            self.task = self.progress.add_task(self.what, total=total)
        self.progress.update(self.task, completed=done)

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
