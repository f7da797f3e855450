"""``data status``: which slides a folder holds, and how many questions can run; ``data manifest``.

The question count comes from :func:`load_multipathqa` with the same folder, so it is exactly
what ``eval multipathqa --slides`` runs. A slide counts as damaged when its size differs from the
size the source announced (or, with ``verify``, when its md5 or opening as a slide fails).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from slidescout.eval.datasets import SlideFinder, load_multipathqa
from slidescout.eval.fetch.download import md5_of, part_path
from slidescout.eval.fetch.plan import SlideItem, parse_tasks, plan_slides
from slidescout.eval.fetch.sources import opens_as_slide
from slidescout.eval.fetch.state import FetchState, RemoteInfo


@dataclass
class SlideStatus:
    item: SlideItem
    state: str  # present | missing | damaged
    path: Path | None = None
    size: int | None = None  # the source's size when known
    partial: int = 0  # bytes already in a .part file
    reason: str = ""


@dataclass
class TaskCount:
    task: str
    questions: int = 0
    runnable: int = 0
    slides: int = 0
    present: int = 0
    missing: int = 0
    damaged: int = 0


@dataclass
class StatusReport:
    root: Path
    slides: list[SlideStatus] = field(default_factory=list)
    tasks: list[TaskCount] = field(default_factory=list)

    @property
    def runnable(self) -> int:
        return sum(t.runnable for t in self.tasks)

    @property
    def questions(self) -> int:
        return sum(t.questions for t in self.tasks)

    def count(self, state: str) -> int:
        return sum(1 for s in self.slides if s.state == state)

    def bytes(self) -> tuple[int, int, int]:
        """(bytes of all slides whose size is known, bytes still missing of those, slides of unknown size)."""
        known = sum(s.size for s in self.slides if s.size is not None)
        missing = sum(
            s.size - s.partial for s in self.slides if s.size is not None and s.state != "present"
        )
        unknown = sum(1 for s in self.slides if s.size is None)
        return known, missing, unknown

    def can_run_line(self) -> str:
        return can_run_line(self.runnable, self.questions, self.root)


def can_run_line(runnable: int, questions: int, root: Path | str) -> str:
    """The line ``data status`` and ``eval multipathqa`` both print."""
    return f"{runnable} of {questions} questions can run with the slides under {root}"


def _slide_state(
    item: SlideItem,
    found: Path | None,
    info: RemoteInfo | None,
    st: FetchState,
    verify: bool,
    root: Path,
) -> SlideStatus:
    size = info.size if info else None
    if found is None:
        part = part_path(item.default_path(root))
        have = part.stat().st_size if part.exists() else 0
        return SlideStatus(item, "missing", size=size, partial=have)
    got = found.stat().st_size
    if size is not None and got != size:
        return SlideStatus(item, "damaged", found, size, reason=f"{got} bytes, expected {size}")
    if verify and not st.is_verified(found):
        if info is not None and info.md5:
            digest = md5_of(found)
            if digest != info.md5:
                return SlideStatus(
                    item, "damaged", found, size, reason=f"md5 {digest} differs from {info.md5}"
                )
        else:
            problem = opens_as_slide(found)
            if problem:
                return SlideStatus(item, "damaged", found, size, reason=problem)
        st.mark_verified(found, info.md5 if info else None)
    return SlideStatus(item, "present", found, size if size is not None else got)


def folder_status(
    csv_path: str | Path,
    root: str | Path,
    tasks: str | Iterable[str] | None = None,
    verify: bool = False,
) -> StatusReport:
    """Per slide and per task: present, missing, damaged; questions that can run."""
    root = Path(root).expanduser()
    wanted = parse_tasks(tasks)
    items = plan_slides(csv_path, wanted)
    report = StatusReport(root)
    st = FetchState.load(root)
    index = SlideFinder(root) if root.is_dir() else None
    load = load_multipathqa(csv_path, slides_dir=root if index is not None else None, tasks=wanted)
    counts: dict[str, TaskCount] = {}
    for s in load.samples:
        c = counts.setdefault(s.task, TaskCount(s.task))
        c.questions += 1
        if index is not None:
            c.runnable += 1
    for sid in load.missing_sample_ids:
        task = sid.split("/", 1)[0]
        counts.setdefault(task, TaskCount(task)).questions += 1
    for item in items:
        found = index.find(item.name) if index is not None else None
        ss = _slide_state(item, found, st.remote.get(item.key), st, verify, root)
        report.slides.append(ss)
        for task in item.tasks:
            c = counts.setdefault(task, TaskCount(task))
            c.slides += 1
            setattr(c, ss.state, getattr(c, ss.state) + 1)
    if verify and index is not None:
        st.save()
    report.tasks = list(counts.values())
    return report


def write_manifest(items: list[SlideItem], infos: dict[str, RemoteInfo], out: Path) -> int:
    """A GDC manifest (tab-separated ``id filename md5 size state``) for the gdc-client; rows
    without a known md5 and size carry only ``id`` and ``filename``. Returns the number of rows."""
    rows = [it for it in items if it.source == "tcga"]
    full = all(
        infos.get(it.key) and infos[it.key].md5 and infos[it.key].size is not None for it in rows
    )
    lines = ["id\tfilename\tmd5\tsize\tstate" if full else "id\tfilename"]
    for it in rows:
        info = infos.get(it.key)
        name = (info.file_name if info and info.file_name else None) or it.name
        if full and info is not None:
            lines.append(f"{it.remote_id}\t{name}\t{info.md5}\t{info.size}\treleased")
        else:
            lines.append(f"{it.remote_id}\t{name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(rows)
