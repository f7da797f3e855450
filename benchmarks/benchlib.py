"""What the benchmark scripts share: markdown tables, CPU clocks, small generated slides.

Every ``bench_*.py`` prints its results as markdown tables on stdout (``run_all.py`` copies them
into ``docs/benchmarks.md``) and takes ``--smoke`` (tiny sizes, seconds; the test suite runs it).
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def md_table(head: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A markdown table: a header row, its separator, then one line per row."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    """User + system CPU time of this process (or of its finished children)."""
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def small_slide(path: Path, width: int = 4000, height: int = 3000) -> Path:
    """A generated pyramidal TIFF (``tests/slidefactory.py``'s tissue pattern), made once."""
    if not path.exists():
        sys.path.insert(0, str(ROOT / "tests"))
        from slidefactory import make_tiff

        path.parent.mkdir(parents=True, exist_ok=True)
        make_tiff(path, width, height, mpp=0.25, pattern="tissue")
    return path


def bench_dir() -> Path:
    """Where generated benchmark inputs are cached between runs."""
    import tempfile

    d = Path(
        os.environ.get("SLIDESCOUT_BENCH_DIR") or Path(tempfile.gettempdir()) / "slidescout-bench"
    )
    d.mkdir(parents=True, exist_ok=True)
    return d
