"""Statistics as text for people: aligned columns, times in milliseconds, sizes in k and M.

``asgispy stats`` prints these tables, and the dashboard's statistics screen uses the same units.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from asgispy.analysis.stats import Change, GroupStats

__all__ = ["change_lines", "milliseconds", "percent", "size", "table_lines"]


def milliseconds(seconds: float | None) -> str:
    """Seconds as milliseconds, with three significant figures or so; ``-`` when unknown."""
    if seconds is None:
        return "-"
    ms = seconds * 1000
    if ms < 10:
        return f"{ms:.2f}"
    if ms < 100:
        return f"{ms:.1f}"
    return f"{ms:.0f}"


def size(n: float | None) -> str:
    """Bytes, as 512, 1.5k or 2.0M; ``-`` when unknown."""
    if n is None:
        return "-"
    if n < 1000:
        return f"{n:.0f}"
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def percent(ratio: float | None) -> str:
    """A ratio after/before as a change: 1.5 is +50%; blank when unknown."""
    if ratio is None:
        return ""
    change = round((ratio - 1) * 100)
    return f"{change:+d}%" if change else "0%"


def _mean(total: int, count: int) -> float | None:
    return total / count if count else None


#: the columns of a table: title, and the cell of a group
COLUMNS: tuple[tuple[str, Callable[[GroupStats], str]], ...] = (
    ("count", lambda g: str(g.count)),
    ("errors", lambda g: str(g.errors)),
    ("4xx", lambda g: str(g.client_errors)),
    ("p50 ms", lambda g: milliseconds(g.duration.p50)),
    ("p90 ms", lambda g: milliseconds(g.duration.p90)),
    ("p99 ms", lambda g: milliseconds(g.duration.p99)),
    ("max ms", lambda g: milliseconds(g.duration.max)),
    ("ttfb p50", lambda g: milliseconds(g.ttfb.p50)),
    ("ttfb p99", lambda g: milliseconds(g.ttfb.p99)),
    ("req avg", lambda g: size(_mean(g.request_bytes, g.count))),
    ("resp avg", lambda g: size(_mean(g.response_bytes, g.count))),
)


def _align(rows: Sequence[Sequence[str]]) -> list[str]:
    """The first column left-aligned, the others right-aligned, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        rest = zip(row[1:], widths[1:], strict=True)
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in rest]
        lines.append("  ".join(cells).rstrip())
    return lines


def table_lines(groups: Sequence[GroupStats], by: str, all_row: GroupStats | None = None) -> list[str]:
    """The table: a title row, a row per group, and a total row when given."""
    rows = [[by, *(title for title, _ in COLUMNS)]]
    shown = [*groups, *([all_row] if all_row is not None and len(groups) > 1 else [])]
    rows += [[g.key, *(cell(g) for _, cell in COLUMNS)] for g in shown]
    return _align(rows)


def _pair(old: str, new: str) -> str:
    return f"{old} → {new}"


_PERCENTILES: tuple[Callable[[GroupStats], float | None], ...] = (
    lambda g: g.duration.p50,
    lambda g: g.duration.p90,
    lambda g: g.duration.p99,
)


def change_lines(changes: Sequence[Change], by: str) -> list[str]:
    """Before and after side by side per key, with the change of each percentile."""
    rows = [[by, "count", "errors", "p50 ms", "", "p90 ms", "", "p99 ms", ""]]
    for change in changes:
        before, after = change.before, change.after
        cells = [change.key]
        cells.append(_pair(str(before.count) if before else "-", str(after.count) if after else "-"))
        cells.append(_pair(str(before.errors) if before else "-", str(after.errors) if after else "-"))
        for pick in _PERCENTILES:
            old = milliseconds(pick(before)) if before else "-"
            new = milliseconds(pick(after)) if after else "-"
            cells += [_pair(old, new), percent(change.ratio(pick))]
        if before is None:
            cells[0] += " (new)"
        elif after is None:
            cells[0] += " (gone)"
        rows.append(cells)
    return _align(rows)
