"""SIGTERM finishes like Ctrl-C: the run in flight is cancelled cleanly (traces marked cancelled,
finished results kept), and the command exits 143 instead of 130."""

from __future__ import annotations

import signal
from types import FrameType

_terminated: list[int] = []


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _terminated.append(signum)
    handler = signal.getsignal(signal.SIGINT)  # asyncio.run's own handler while a run is in flight
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


def terminated() -> bool:
    """Whether SIGTERM (rather than Ctrl-C) interrupted this process."""
    return bool(_terminated)


def interrupt_code() -> int:
    """The exit status of an interrupted command: 143 after SIGTERM, 130 after Ctrl-C."""
    return 128 + int(signal.SIGTERM) if _terminated else 130


def install_signal_handlers() -> None:
    """Route SIGTERM through the SIGINT path (only from the main thread)."""
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (an embedding application): leave signals alone
        pass
