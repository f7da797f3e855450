"""Rich tables that fit the terminal, without cutting a cell.

:func:`print_table` prints a table at its natural width when it fits; otherwise in a compact box
(no edges, then no padding); otherwise wrapped at word boundaries when every column can keep its longest word whole; and
otherwise stacked, one block per row (``header: value`` pairs filled to the width). Task names,
intervals and paths are never cut with an ellipsis, at 100 columns or piped (80).
"""

from __future__ import annotations

import textwrap
from typing import Any

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

__all__ = ["cell_text", "print_table", "stacked_lines", "wrap_pairs"]


def cell_text(console: Console, cell: Any) -> str:
    """A cell's plain text (markup rendered away)."""
    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        return console.render_str(cell).plain if cell else ""
    return str(cell)


def _natural_width(console: Console, table: Table) -> int:
    return Measurement.get(console, console.options.update_width(100_000), table).maximum


def _column_range(console: Console, column: Any) -> tuple[int, int]:
    """(longest word, longest line) over the header and cells of ``column``."""
    texts = [cell_text(console, c) for c in [column.header, *column._cells]]
    words = [len(w) for t in texts for w in t.split()]
    lines = [len(line) for t in texts for line in t.splitlines()]
    return max(words, default=1), max(lines, default=1)


def _share(ranges: list[tuple[int, int]], room: int) -> list[int]:
    """Widths from the longest words up, the spare room shared in proportion to what each column lacks."""
    widths = [lo for lo, _ in ranges]
    lack = [hi - lo for lo, hi in ranges]
    total = sum(lack)
    spare = room - sum(widths)
    if total <= 0 or spare <= 0:
        return widths
    for i, need in enumerate(lack):
        widths[i] += min(need, spare * need // total)
    return widths


def _frame_width(table: Table) -> int:
    """Columns of borders and padding around the cells."""
    n = len(table.columns)
    pad = table.padding[1] + table.padding[3] if len(table.padding) == 4 else 2
    edges = 2 if (table.box and table.show_edge) else 0
    inner = n - 1 if table.box else 0
    total_pad = pad * n - (0 if table.pad_edge else pad)
    return edges + inner + total_pad


def _compact(table: Table) -> None:
    table.box = box.SIMPLE_HEAD
    table.show_edge = False
    table.pad_edge = False


def print_table(console: Console, table: Table) -> None:
    """Print ``table`` so that no cell is cut (see the module docstring for the fallbacks)."""
    width = console.width
    if _natural_width(console, table) <= width:
        console.print(table, soft_wrap=False)
        return
    _compact(table)
    if _natural_width(console, table) <= width:
        console.print(table, soft_wrap=False)
        return
    table.padding = (0, 0, 0, 0)  # the box's blank divider still keeps one space between columns
    if _natural_width(console, table) <= width:
        console.print(table, soft_wrap=False)
        return
    ranges = [_column_range(console, c) for c in table.columns]
    room = width - _frame_width(table)
    if sum(lo for lo, _ in ranges) <= room:
        for col, w in zip(table.columns, _share(ranges, room), strict=True):
            col.width, col.min_width, col.max_width = w, None, None
            col.no_wrap = False
            col.overflow = "fold"
        console.print(table, soft_wrap=False)
        return
    for line in stacked_lines(console, table, width):
        console.print(line, highlight=False, soft_wrap=True)


def wrap_pairs(pairs: list[str], width: int, indent: str = "  ", sep: str = " · ") -> list[str]:
    """Fill ``pairs`` into lines of at most ``width``, never breaking a pair unless it alone is wider."""
    lines: list[str] = []
    cur = ""
    for p in pairs:
        cand = p if not cur else cur + sep + p
        if len(indent) + len(cand) <= width:
            cur = cand
            continue
        if cur:
            lines.append(indent + cur)
        if len(indent) + len(p) <= width:
            cur = p
        else:
            lines.extend(
                textwrap.wrap(
                    p,
                    width,
                    initial_indent=indent,
                    subsequent_indent=indent + "  ",
                    break_on_hyphens=False,
                )
            )
            cur = ""
    if cur:
        lines.append(indent + cur)
    return lines


def stacked_lines(console: Console, table: Table, width: int) -> list[Text]:
    """The table as text: the title, then per row its first cell and ``header: value`` pairs below it."""
    out: list[Text] = []
    if table.title:
        out.append(Text(cell_text(console, table.title), style="bold"))
    cols = table.columns
    headers = [cell_text(console, c.header) for c in cols]
    for i in range(table.row_count):
        cells = [cell_text(console, c._cells[i]) if i < len(c._cells) else "" for c in cols]
        key = cells[0] or "-"
        out.extend(
            Text(line, style="bold")
            for line in textwrap.wrap(key, width, break_on_hyphens=False) or [key]
        )
        pairs = [
            f"{h}: {v}" if h else v
            for h, v in zip(headers[1:], cells[1:], strict=True)
            if v.strip()
        ]
        out.extend(Text(line) for line in wrap_pairs(pairs, width))
    return out
