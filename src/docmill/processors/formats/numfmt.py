"""Spreadsheet number formats (ECMA-376 §18.8.31): a cell's value as a person sees it.

``format_number(value, code, date1904)`` applies a format code such as ``#,##0.00``,
``0%``, ``0.00E+00``, ``# ?/?``, ``[$€-407] #,##0;[Red]-#,##0`` or
``dd/mm/yyyy h:mm AM/PM`` to a stored number. ``General`` shows up to 15 significant
digits (Excel's precision), so a stored ``19.989999999999998`` reads ``19.99``. Built-in
format 14 (the locale's short date) is shown as ISO ``yyyy-mm-dd``, which no locale
misreads. Pure functions, standard library only.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from fractions import Fraction
from functools import lru_cache

BUILTIN = {
    0: "General",
    1: "0",
    2: "0.00",
    3: "#,##0",
    4: "#,##0.00",
    5: '"$"#,##0_);("$"#,##0)',
    6: '"$"#,##0_);[Red]("$"#,##0)',
    7: '"$"#,##0.00_);("$"#,##0.00)',
    8: '"$"#,##0.00_);[Red]("$"#,##0.00)',
    9: "0%",
    10: "0.00%",
    11: "0.00E+00",
    12: "# ?/?",
    13: "# ??/??",
    14: "yyyy-mm-dd",
    15: "d-mmm-yy",
    16: "d-mmm",
    17: "mmm-yy",
    18: "h:mm AM/PM",
    19: "h:mm:ss AM/PM",
    20: "h:mm",
    21: "h:mm:ss",
    22: "yyyy-mm-dd h:mm",
    37: "#,##0 ;(#,##0)",
    38: "#,##0 ;[Red](#,##0)",
    39: "#,##0.00;(#,##0.00)",
    40: "#,##0.00;[Red](#,##0.00)",
    41: '_(* #,##0_);_(* (#,##0);_(* "-"_);_(@_)',
    42: '_("$"* #,##0_);_("$"* (#,##0);_("$"* "-"_);_(@_)',
    43: '_(* #,##0.00_);_(* (#,##0.00);_(* "-"??_);_(@_)',
    44: '_("$"* #,##0.00_);_("$"* (#,##0.00);_("$"* "-"??_);_(@_)',
    45: "mm:ss",
    46: "[h]:mm:ss",
    47: "mm:ss.0",
    48: "##0.0E+0",
    49: "@",
}
# East Asian built-ins (27-36, 50-81) are dates or times in their locales
for _id in (*range(27, 37), *range(50, 59)):
    BUILTIN.setdefault(_id, "yyyy-mm-dd")
_MONTHS = [
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_CONDITION = re.compile(r"\[(<=|>=|<>|<|>|=)(-?[\d.]+)\]")
_DATE_CHARS = frozenset("ymdhsYMDHS")
_EPOCH_1900 = datetime(1899, 12, 30)
_EPOCH_1904 = datetime(1904, 1, 1)


def general(value: float) -> str:
    """Excel's ``General``: an integer as one, else up to 15 significant digits."""
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    text = f"{value:.15g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa}E{exponent[0]}{exponent[1:].zfill(2)}"
    return text


@lru_cache(maxsize=1024)
def _tokens(section: str) -> tuple[tuple[str, str], ...]:
    """(kind, text) pieces of one section: ``lit`` literal text, ``ch`` a format
    character, ``elapsed`` an ``[h]``-style elapsed time, ``cond`` a condition.
    Cached: a workbook applies a few formats to many cells."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(section)
    while i < n:
        c = section[i]
        if c == '"':
            end = section.find('"', i + 1)
            end = n if end < 0 else end
            out.append(("lit", section[i + 1 : end]))
            i = end + 1
            continue
        if c == "\\" and i + 1 < n:
            out.append(("lit", section[i + 1]))
            i += 2
            continue
        if c == "_" and i + 1 < n:
            out.append(("lit", " "))
            i += 2
            continue
        if c == "*" and i + 1 < n:
            i += 2
            continue
        if c == "[":
            end = section.find("]", i)
            end = n if end < 0 else end
            inner = section[i + 1 : end]
            if inner.startswith("$"):
                symbol = inner[1:].split("-", 1)[0]
                if symbol:
                    out.append(("lit", symbol))
            elif inner.lower() in ("h", "hh", "m", "mm", "s", "ss"):
                out.append(("elapsed", inner.lower()))
            elif _CONDITION.fullmatch(f"[{inner}]"):
                out.append(("cond", inner))
            i = end + 1
            continue
        out.append(("ch", c))
        i += 1
    return tuple(out)


@lru_cache(maxsize=1024)
def _sections(code: str) -> tuple[str, ...]:
    parts, current, quoted, i = [], [], False, 0
    while i < len(code):
        c = code[i]
        if c == '"':
            quoted = not quoted
        elif c == "\\" and i + 1 < len(code):
            current.append(code[i : i + 2])
            i += 2
            continue
        elif c == ";" and not quoted:
            parts.append("".join(current))
            current = []
            i += 1
            continue
        current.append(c)
        i += 1
    parts.append("".join(current))
    return tuple(parts)


@lru_cache(maxsize=1024)
def is_date_format(code: str) -> bool:
    """Whether ``code`` shows a date or time (its first section has y, m, d, h or s
    outside quotes and brackets, or an elapsed ``[h]``)."""
    if code in ("General", "@", ""):
        return False
    for kind, text in _tokens(_sections(code)[0]):
        if kind == "elapsed" or (kind == "ch" and text in _DATE_CHARS):
            return True
    return False


def to_datetime(serial: float, date1904: bool = False) -> datetime | None:
    """A serial date as a datetime (Excel's 1900 leap-year bug kept: serial 60 is
    1900-02-28 again); None when out of range."""
    try:
        if date1904:
            return _EPOCH_1904 + timedelta(days=serial)
        if serial < 60:
            serial += 1
        return _EPOCH_1900 + timedelta(days=serial)
    except (OverflowError, ValueError):
        return None


def _check(cond: str, value: float) -> bool:
    found = _CONDITION.fullmatch(f"[{cond}]")
    if not found:
        return False
    op, limit = found.group(1), float(found.group(2))
    return {
        "<": value < limit, ">": value > limit, "=": value == limit,
        "<=": value <= limit, ">=": value >= limit, "<>": value != limit,
    }[op]


def _pick(sections: tuple[str, ...], value: float) -> tuple[str, float, bool]:
    """(section, value to show, whether a minus sign is still to be written)."""
    conds = [s for s in sections if any(k == "cond" for k, _ in _tokens(s))]
    if conds:
        for section in sections:
            cond = next((t for k, t in _tokens(section) if k == "cond"), None)
            if cond is None or _check(cond, value):
                return section, abs(value) if cond else value, cond is None and value < 0
        return sections[-1], value, value < 0
    numeric = sections[:3]
    if value > 0 or len(numeric) == 1:
        return numeric[0], value, value < 0
    if value < 0:
        return numeric[1], -value, False
    return (numeric[2] if len(numeric) > 2 else numeric[0]), value, False


def format_number(value: float, code: str, date1904: bool = False) -> str:
    """``value`` shown by format ``code`` (General when the code is empty or unknown)."""
    if not code or code.lower() == "general" or code == "@":
        return general(value)
    try:
        section, shown, minus = _pick(_sections(code), value)
        tokens = [t for t in _tokens(section) if t[0] != "cond"]
        if section.strip().lower() == "general":
            return general(value)
        if any(k == "elapsed" or (k == "ch" and t in _DATE_CHARS) for k, t in tokens):
            moment = to_datetime(value, date1904)
            return _date(tokens, value, moment) if moment is not None else general(value)
        return _number(tokens, shown, minus)
    except (ValueError, OverflowError, InvalidOperation, ZeroDivisionError, IndexError):
        return general(value)


# --- dates -----------------------------------------------------------------------------


def _date(tokens: list[tuple[str, str]], serial: float, moment: datetime) -> str:
    runs: list[tuple[str, str]] = []  # (kind, run): kind "lit" or a letter run
    chars = tokens
    i = 0
    while i < len(chars):
        kind, text = chars[i]
        if kind != "ch":
            runs.append((kind, text))
            i += 1
            continue
        upper = "".join(t for _, t in chars[i : i + 5]).upper()
        if upper.startswith("AM/PM"):
            runs.append(("ampm", "AM/PM"))
            i += 5
            continue
        if upper.startswith("A/P"):
            runs.append(("ampm", "A/P"))
            i += 3
            continue
        low = text.lower()
        if low in "ymdhs" and low:
            j = i
            while j < len(chars) and chars[j][0] == "ch" and chars[j][1].lower() == low:
                j += 1
            runs.append((low, str(j - i)))
            i = j
            continue
        if text == "." and i + 1 < len(chars) and chars[i + 1] == ("ch", "0"):
            j = i + 1
            while j < len(chars) and chars[j] == ("ch", "0"):
                j += 1
            runs.append(("frac", str(j - i - 1)))
            i = j
            continue
        runs.append(("lit", text))
        i += 1
    twelve = any(k == "ampm" for k, _ in runs)
    # an "m" run is minutes after an hour or before a second (literals between)
    letters = [(n, k) for n, (k, _) in enumerate(runs) if k in "ymdhs" or k == "elapsed"]
    minute_runs: set[int] = set()
    for pos, (n, kind) in enumerate(letters):
        if kind != "m":
            continue
        before = letters[pos - 1][1] if pos else ""
        after = letters[pos + 1][1] if pos + 1 < len(letters) else ""
        if before in ("h", "elapsed") or after == "s":
            minute_runs.add(n)
    frac_digits = max((int(c) for k, c in runs if k == "frac"), default=0)
    if frac_digits:
        quantum = 10 ** (6 - min(frac_digits, 6))
        micros = round(moment.microsecond / quantum) * quantum
        moment = moment.replace(microsecond=0) + timedelta(microseconds=micros)
    else:
        moment = _rounded_to_second(moment)
    out: list[str] = []
    for n, (kind, text) in enumerate(runs):
        if kind == "lit":
            out.append(text)
        elif kind == "elapsed":
            total = serial * 86400
            unit = {"h": 3600, "m": 60, "s": 1}[text[0]]
            out.append(str(int(round(total, 6) // unit)).zfill(len(text)))
        elif kind == "y":
            out.append(str(moment.year)[-2:] if int(text) <= 2 else str(moment.year))
        elif kind == "m" and n in minute_runs:
            out.append(str(moment.minute).zfill(2 if int(text) >= 2 else 1))
        elif kind == "m":
            width = int(text)
            name = _MONTHS[moment.month - 1]
            out.append(
                {1: str(moment.month), 2: f"{moment.month:02d}", 3: name[:3], 5: name[0]}.get(width, name)
            )
        elif kind == "d":
            width = int(text)
            day = _DAYS[moment.weekday()]
            out.append(
                {1: str(moment.day), 2: f"{moment.day:02d}", 3: day[:3]}.get(width, day)
            )
        elif kind == "h":
            hour = moment.hour % 12 or 12 if twelve else moment.hour
            out.append(str(hour).zfill(2 if int(text) >= 2 else 1))
        elif kind == "s":
            out.append(str(moment.second).zfill(2 if int(text) >= 2 else 1))
        elif kind == "frac":
            digits = int(text)
            out.append("." + f"{moment.microsecond / 1e6:.{digits}f}"[2:])
        elif kind == "ampm":
            am = moment.hour < 12
            out.append(("AM" if am else "PM") if text == "AM/PM" else ("A" if am else "P"))
    return "".join(out)


def _rounded_to_second(moment: datetime) -> datetime:
    if moment.microsecond >= 500_000:
        return moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment.replace(microsecond=0)


# --- numbers ---------------------------------------------------------------------------

_PLACEHOLDERS = frozenset("0#?")


def _number(tokens: list[tuple[str, str]], value: float, minus: bool) -> str:
    chars = "".join(t if k == "ch" else "\x00" for k, t in tokens)
    if "@" in chars and not any(c in _PLACEHOLDERS for c in chars):
        return general(value)
    first = next((i for i, c in enumerate(chars) if c in _PLACEHOLDERS), None)
    if first is None:  # only literals: the text itself (a "-" for zero, say)
        return _literal(tokens)
    last = max(i for i, c in enumerate(chars) if c in _PLACEHOLDERS)
    percent = chars.count("%")
    value = value * (100**percent)
    core = chars[first : last + 1]
    # trailing commas right after the last placeholder scale by a thousand each
    scale_end = last + 1
    while scale_end < len(chars) and chars[scale_end] == ",":
        value /= 1000
        scale_end += 1
    # "E+" between placeholders
    upper = core.upper()
    if "E+" in upper or "E-" in upper:
        shown = _scientific(core, value)
    elif "/" in core:
        shown = _fraction(core, value)
    else:
        shown = _fixed(core.replace("\x00", ""), value)
    prefix = _literal_span(tokens, 0, first)
    suffix = _literal_span(tokens, scale_end, len(tokens))
    sign = "-" if minus and any(c in "123456789" for c in shown) else ""
    return f"{sign}{prefix}{shown}{suffix}"


def _literal(tokens: list[tuple[str, str]]) -> str:
    return "".join(t for k, t in tokens if k in ("lit", "ch"))


def _literal_span(tokens: list[tuple[str, str]], start: int, stop: int) -> str:
    """The literal text of tokens ``start``..``stop`` (``ch`` tokens count one each)."""
    out = []
    for kind, text in tokens[start:stop]:
        if kind == "lit" or (kind == "ch" and text not in ",%" and text not in _PLACEHOLDERS):
            out.append(text)
        elif kind == "ch" and text == "%":
            out.append("%")
    return "".join(out)


def _fixed(core: str, value: float) -> str:
    integer, _, decimals = core.partition(".")
    decimals = "".join(c for c in decimals if c in _PLACEHOLDERS)
    grouping = "," in integer
    integer_digits = "".join(c for c in integer if c in _PLACEHOLDERS)
    quantum = Decimal(1).scaleb(-len(decimals))
    number = Decimal(repr(abs(value))).quantize(quantum, rounding=ROUND_HALF_UP)
    whole, _, frac = f"{number:f}".partition(".")
    minimum = integer_digits.count("0")
    if whole == "0" and minimum == 0:
        whole = ""
    whole = whole.zfill(minimum)
    if grouping and whole:
        whole = f"{int(whole):,}"
    if decimals:
        frac = frac.ljust(len(decimals), "0")
        required = len(decimals.rstrip("#?"))
        kept = frac[:required] + frac[required:].rstrip("0")
        pad = " " * (len(decimals) - len(kept)) if "?" in decimals else ""
        return f"{whole}.{kept}{pad}" if kept or "0" in decimals else f"{whole}."
    return whole


def _scientific(core: str, value: float) -> str:
    upper = core.upper()
    at = upper.index("E")
    mantissa_pattern, exponent_pattern = core[:at], core[at + 2 :]
    sign_always = core[at + 1] == "+"
    integer_part = mantissa_pattern.split(".")[0]
    step = len([c for c in integer_part if c in _PLACEHOLDERS]) if "#" in integer_part else 1
    step = max(step, 1)
    exponent = 0 if value == 0 else math.floor(math.log10(abs(value)))
    exponent -= exponent % step
    mantissa = abs(value) / (10**exponent) if value else 0.0
    shown = _fixed(mantissa_pattern, mantissa)
    if shown.split(".")[0] == str(10**step):  # rounding carried into the next power
        exponent += step
        shown = _fixed(mantissa_pattern, abs(value) / (10**exponent))
    width = len([c for c in exponent_pattern if c in _PLACEHOLDERS])
    exp_sign = "-" if exponent < 0 else ("+" if sign_always else "")
    return f"{shown}E{exp_sign}{str(abs(exponent)).zfill(width)}"


def _fraction(core: str, value: float) -> str:
    numerator_pattern, _, denominator_pattern = core.partition("/")
    parts = numerator_pattern.replace("\x00", " ").split()
    has_whole = len(parts) > 1
    digits = sum(c in _PLACEHOLDERS for c in denominator_pattern)
    fixed = "".join(c for c in denominator_pattern if c.isdigit())
    whole = int(abs(value)) if has_whole else 0
    rest = abs(value) - whole
    if fixed and int(fixed) > 0:
        frac = Fraction(round(rest * int(fixed)), int(fixed))
        numerator, denominator = frac.numerator * (int(fixed) // frac.denominator), int(fixed)
    else:
        frac = Fraction(rest).limit_denominator(10**digits - 1 if digits else 9)
        numerator, denominator = frac.numerator, frac.denominator
    if numerator == denominator and numerator:
        whole, numerator = whole + 1, 0
    if has_whole:
        if numerator == 0:
            return str(whole)
        return f"{whole} {numerator}/{denominator}" if whole else f"{numerator}/{denominator}"
    return f"{numerator}/{denominator}"
