"""The memory a run's ``--concurrency`` asks for, estimated before it starts.

Every sample in flight holds its slide handle, its decoded views and the images in its context.
Measured (issue 12): 3.29 GB peak at 48 concurrent expert-planner samples, about 70 MB each over
a base of about 250 MB; LLM samples hold less between calls (their work is waiting on the
endpoint), about 40 MB each.
"""

from __future__ import annotations

import os

BASE_MB = 250.0
PER_SAMPLE_MB = {"expert": 70.0, "other": 40.0}

__all__ = ["available_mb", "expected_peak_mb", "memory_warning"]


def expected_peak_mb(concurrency: int, model_id: str) -> float:
    kind = "expert" if model_id.split(":", 1)[0] == "expert" else "other"
    return BASE_MB + max(1, concurrency) * PER_SAMPLE_MB[kind]


def available_mb() -> float | None:
    """Memory available to new work, in MB (None when the system does not say)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") / 2**20
    except (ValueError, OSError, AttributeError):
        return None


def memory_warning(concurrency: int, model_id: str, available: float | None = None) -> str | None:
    """A one-line warning when the expected peak exceeds half the available memory, else None."""
    avail = available_mb() if available is None else available
    peak = expected_peak_mb(concurrency, model_id)
    if avail is None or peak <= 0.5 * avail:
        return None
    per = PER_SAMPLE_MB["expert" if model_id.split(":", 1)[0] == "expert" else "other"]
    fits = max(1, int((0.5 * avail - BASE_MB) // per))
    return (
        f"warning: --concurrency {concurrency} may need about {peak / 1024:.1f} GB (about {per:.0f} MB per "
        f"sample in flight) and {avail / 1024:.1f} GB is available; --concurrency {fits} or less keeps it "
        "under half of that"
    )
