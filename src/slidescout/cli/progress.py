"""Progress of slide generation (``synth``, ``eval synth``): counts, elapsed time and an ETA.

On a terminal: a rich progress bar for the dataset and one for the slide being written. Piped (or
in a log): one line per slide, ``[3/20] synth-002 written in 12.3 s · elapsed 0:37 · ETA 1:50``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

__all__ = ["SlideProgress", "fmt_clock", "slide_progress"]


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
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as bar:
        yield SlideProgress(console, n, label, bar=bar)
