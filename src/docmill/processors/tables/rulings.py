"""Rules: a page's straight segments merged into horizontal and vertical rulings, and the
grids they make.

Segments on one line (within :data:`SNAP` points) that touch or overlap are one
ruling; a thin filled bar gives two close segments, one ruling. Rulings shorter than
:data:`MIN_RULING` are glyph parts or dots. Horizontal and vertical rulings that cross
join; each connected group with at least two rulings each way is a *grid*: the region
of a ruled table (or of a framed box, a chart's grid: structure and detection decide).
Pure functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from docmill.processors.pdf.geometry import Box

SNAP = 2.0
MIN_RULING = 4.0

Rule = tuple[float, float, float]  # position, start, end


@dataclass(slots=True)
class Rulings:
    h: list[Rule]  # y, x0, x1
    v: list[Rule]  # x, y0, y1


def merge(segs: Iterable[Rule]) -> list[Rule]:
    """(pos, start, end) segments -> rulings: same position within SNAP, overlapping or
    touching spans joined."""
    out: list[list[float]] = []
    for pos, start, end in sorted(segs):
        for r in reversed(out[-8:]):
            if abs(r[0] - pos) <= SNAP and start <= r[2] + SNAP and end >= r[1] - SNAP:
                r[1], r[2] = min(r[1], start), max(r[2], end)
                break
        else:
            out.append([pos, start, end])
    return [(r[0], r[1], r[2]) for r in out if r[2] - r[1] >= MIN_RULING]


def rulings(segments: Sequence[Box]) -> Rulings:
    h = merge(((s[1] + s[3]) / 2, s[0], s[2]) for s in segments if s[3] - s[1] <= 1.0)
    v = merge(((s[0] + s[2]) / 2, s[1], s[3]) for s in segments if s[2] - s[0] <= 1.0)
    return Rulings(h, v)


def grids(rules: Rulings) -> list[tuple[Box, list[Rule], list[Rule]]]:
    """Connected groups of crossing rulings with at least two each way: (bbox,
    horizontals, verticals), top to bottom."""
    hs, vs = rules.h, rules.v
    if len(hs) < 2 or len(vs) < 2:
        return []
    parent = list(range(len(hs) + len(vs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_x = sorted(range(len(vs)), key=lambda j: vs[j][0])
    xs = [vs[j][0] for j in by_x]
    from bisect import bisect_left, bisect_right

    for i, (y, hx0, hx1) in enumerate(hs):
        lo, hi = bisect_left(xs, hx0 - SNAP), bisect_right(xs, hx1 + SNAP)
        for j in by_x[lo:hi]:
            _, vy0, vy1 = vs[j]
            if vy0 - SNAP <= y <= vy1 + SNAP:
                parent[find(i)] = find(len(hs) + j)
    groups: dict[int, tuple[list[Rule], list[Rule]]] = {}
    for i, h in enumerate(hs):
        groups.setdefault(find(i), ([], []))[0].append(h)
    for j, v in enumerate(vs):
        groups.setdefault(find(len(hs) + j), ([], []))[1].append(v)
    out = []
    for gh, gv in groups.values():
        if len(gh) < 2 or len(gv) < 2:
            continue
        x0 = min(min(h[1] for h in gh), min(v[0] for v in gv))
        x1 = max(max(h[2] for h in gh), max(v[0] for v in gv))
        y0 = min(min(v[1] for v in gv), min(h[0] for h in gh))
        y1 = max(max(v[2] for v in gv), max(h[0] for h in gh))
        if x1 - x0 >= 10 and y1 - y0 >= 6:
            out.append(((x0, y0, x1, y1), gh, gv))
    out.sort(key=lambda g: (g[0][1], g[0][0]))
    return out


def within(rules: Iterable[Rule], lo: float, hi: float, a: float, b: float, tol: float = SNAP) -> list[Rule]:
    """Rules whose position lies in [lo, hi] and that overlap [a, b] along their length."""
    return [r for r in rules if lo - tol <= r[0] <= hi + tol and r[2] > a - tol and r[1] < b + tol]
