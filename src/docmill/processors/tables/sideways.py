"""Text set sideways on an upright page: which characters run up or down the page, and
the quarter turn that stands them upright (and back).

The direction comes from PDFium's own character order: two characters in a row of one
word that follow each other upwards (or downwards) rather than to the right belong to
text turned a quarter. Turning the page's characters and rules so that such text reads
left to right lets the same detection and structure read a sideways table; its bbox is
turned back. Only a group that is a good part of the page (:data:`MIN_SHARE`) is read
this way: a few turned column heads inside an upright table stay in it.

Turns are counter-clockwise quarter turns of the text: 90 reads bottom to top, 270 top
to bottom. ``size`` is the page's (width, height), top-left origin. Pure functions.
"""

from __future__ import annotations

from collections.abc import Sequence

from docmill.processors.pdf.geometry import Box, Char

MIN_SHARE = 0.25  # of the page's characters
MIN_CHARS = 40


def by_direction(chars: Sequence[Char]) -> dict[int, list[Char]]:
    """The characters by the direction their text runs: 0 (left to right), 90 (up the
    page), 270 (down the page). Small turned groups stay with the upright text."""
    if not _any_turned(chars):
        return {0: list(chars)} if chars else {}
    turn = [0] * len(chars)
    known = [False] * len(chars)
    near = [0.0] * len(chars)  # how far the neighbour that gave a character its direction
    for i in range(len(chars) - 1):
        a, b = chars[i], chars[i + 1]
        if a.text.isspace() or b.text.isspace():
            continue
        dx = (b.x0 + b.x1 - a.x0 - a.x1) / 2
        dy = (b.y0 + b.y1 - a.y0 - a.y1) / 2
        size = max(a.x1 - a.x0, a.y1 - a.y0, 1.0)
        if abs(dx) + abs(dy) > 3 * size:
            continue  # not neighbours on the page
        t = 0 if abs(dx) >= abs(dy) else (90 if dy < 0 else 270)
        d = abs(dx) + abs(dy)
        for k in (i, i + 1):  # the nearer neighbour wins (the last character of the
            if not known[k] or d < near[k]:  # cell before is no neighbour of a word's first)
                turn[k], known[k], near[k] = t, True, d
    last = 0
    for k in range(len(chars)):  # a lone character takes the direction before it
        if known[k]:
            last = turn[k]
        else:
            turn[k] = last
    groups: dict[int, list[Char]] = {}
    for ch, t in zip(chars, turn, strict=True):
        groups.setdefault(t, []).append(ch)
    out: dict[int, list[Char]] = {0: groups.pop(0, [])}
    for t, group in groups.items():
        if len(group) >= max(MIN_CHARS, MIN_SHARE * len(chars)):
            out[t] = group
        else:
            out[0].extend(group)
    if not out[0]:
        del out[0]
    return out


def _any_turned(chars: Sequence[Char]) -> bool:
    """A quick look at every third pair: enough turned neighbours for a group at all?"""
    found = 0
    need = MIN_CHARS // 6
    for i in range(0, len(chars) - 1, 3):
        a, b = chars[i], chars[i + 1]
        dy = abs(b.y0 + b.y1 - a.y0 - a.y1)
        if dy > abs(b.x0 + b.x1 - a.x0 - a.x1) and dy < 6 * max(a.y1 - a.y0, a.x1 - a.x0, 1.0):
            found += 1
            if found >= need:
                return True
    return False


def turn_box(box: Box, turn: int, size: tuple[float, float]) -> Box:
    """A box of the page in the frame where text of direction ``turn`` reads upright."""
    x0, y0, x1, y1 = box
    width, height = size
    if turn == 90:
        return (height - y1, x0, height - y0, x1)
    if turn == 270:
        return (y0, width - x1, y1, width - x0)
    return box


def unturn_box(box: Box, turn: int, size: tuple[float, float]) -> Box:
    """The inverse of :func:`turn_box`."""
    x0, y0, x1, y1 = box
    width, height = size
    if turn == 90:
        return (y0, height - x1, y1, height - x0)
    if turn == 270:
        return (width - y1, x0, width - y0, x1)
    return box


def turn_char(ch: Char, turn: int, size: tuple[float, float]) -> Char:
    x0, y0, x1, y1 = turn_box((ch.x0, ch.y0, ch.x1, ch.y1), turn, size)
    return Char(ch.text, x0, y0, x1, y1)
