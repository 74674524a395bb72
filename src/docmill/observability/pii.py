"""Find personal data in text: e-mail addresses, IBANs, card numbers, SSNs, phone numbers.

:func:`find_pii` returns non-overlapping :class:`Finding` spans of the original text;
:func:`docmill.observability.redact.redact` replaces them with tokens. Each kind is
found by its shape and confirmed by what the shape alone cannot tell:

- ``email``: ``local@domain.tld``;
- ``iban``: a country code, two check digits and the country's length (spaces between
  groups or not), passing the ISO 13616 mod-97 check;
- ``card``: 13-19 digits, contiguous or in card groups (spaces or dashes of any kind),
  a card network's prefix and length, passing the Luhn check (13 contiguous digits
  with a valid EAN-13 check digit are a barcode number);
- ``ssn``: ``123-45-6789`` with dashes of any kind or spaces (``123–45–6789``,
  ``123 45 6789``), or nine unseparated digits after an SSN word (``SSN``, ``social
  security``, ``ITIN`` ...) that follow the SSA's rules (area not 000, 666 or 9xx, group
  not 00, serial not 0000): nine plain digits alone are as often an invoice number;
- ``phone``: :mod:`docmill.observability.phones`.

Where two findings overlap an e-mail address wins, then the one with more digits
(``+1 234 56 7890`` is a phone number, not an SSN after ``+1``), then the longer, then
the one earlier in the list above.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from docmill.observability.phones import DASHES, SPACES, context_before, phone_spans

Kind = Literal["email", "iban", "card", "ssn", "phone"]
KINDS: Final[tuple[Kind, ...]] = ("email", "iban", "card", "ssn", "phone")


@dataclass(frozen=True, slots=True)
class Finding:
    """Personal data of ``kind`` at ``text[start:end]``."""

    kind: Kind
    start: int
    end: int


# Start only at the beginning of a run of local-part characters (keeps scanning linear).
_EMAIL: Final = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?![A-Za-z0-9-])",
    re.ASCII,
)

_CARD_SEP: Final = f"[{SPACES}{DASHES}]"
# 13-19 digits, contiguous or in card-style groups (4-4-4-1..4[-1..3], 4-6-4/5).
# Each pattern checks the character before its first one after matching it, so that re
# can skip ahead to a digit (a leading look-behind makes it try every position).
_CARD: Final = re.compile(
    rf"[0-9](?<![0-9.{DASHES}].)"
    r"(?:[0-9]{12,18}"
    rf"|[0-9]{{3}}(?P<sep>{_CARD_SEP})[0-9]{{4}}(?P=sep)[0-9]{{4}}(?P=sep)[0-9]{{1,4}}"
    r"(?:(?P=sep)[0-9]{1,3})?"
    rf"|[0-9]{{3}}(?P<sep2>{_CARD_SEP})[0-9]{{6}}(?P=sep2)[0-9]{{4,5}})"
    rf"(?![0-9]|[.{DASHES}][0-9])"
)

_SSN_SEP: Final = f"(?:[{SPACES}]?[{DASHES}][{SPACES}]?|[{SPACES}])"
_SSN: Final = re.compile(
    rf"[0-9](?<![0-9.{DASHES}].)[0-9]{{2}}{_SSN_SEP}[0-9]{{2}}{_SSN_SEP}[0-9]{{4}}"
    rf"(?![0-9]|[.{DASHES}][0-9])"
)
_NINE_DIGITS: Final = re.compile(
    rf"[0-9](?<![^\W_].)(?<![.,/{DASHES}].)[0-9]{{8}}(?![^\W_]|[.,][0-9])"
)
_SSN_WORD: Final = re.compile(
    r"\b(?:ssn|ss\s?#|s\.\s?s\.\s?n\.?|social\s+security|soc\.?\s?sec\.?|ss\s?no\.?|itin)"
    r"(?=[^0-9]*$)",
    re.IGNORECASE,
)
_SSN_CONTEXT_CHARS: Final = 48

_IBAN_START: Final = re.compile(r"([A-Z](?<![^\W_].)[A-Z])([0-9]{2})(?=[ \u00a0]?[0-9A-Z])")
# ISO 13616 registry: the full length of an IBAN for each country.
IBAN_LENGTHS: Final = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27,
    "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def luhn_valid(digits: str) -> bool:
    """Return True if the ASCII digit string passes the Luhn checksum."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """Return True if ``iban`` (no spaces, upper case) passes the ISO 13616 mod-97 check."""
    if len(iban) < 5 or not iban.isascii() or not iban.isalnum():
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def card_network_fits(digits: str) -> bool:
    """Return True if a card network issues numbers with this prefix and length."""
    n, first = len(digits), digits[0]
    if first == "4":
        return n in (13, 16, 19)
    if first == "3":
        two = digits[:2]
        if two in ("34", "37"):
            return n == 15
        if two in ("30", "36", "38", "39"):
            return 14 <= n <= 19
        return two == "35" and 16 <= n <= 19
    if first == "5":
        return 16 <= n <= 19
    if first == "2":
        return n == 16 and 2200 <= int(digits[:4]) <= 2720
    return first == "6" and 13 <= n <= 19


def ssn_valid(digits: str) -> bool:
    """Return True if nine digits follow the SSA's rules for an SSN."""
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _digits(text: str) -> str:
    return "".join(ch for ch in text if "0" <= ch <= "9")


def _emails(text: str) -> list[Finding]:
    if "@" not in text:
        return []
    return [Finding("email", *m.span()) for m in _EMAIL.finditer(text)]


def _ibans(text: str) -> list[Finding]:
    found = []
    for match in _IBAN_START.finditer(text):
        length = IBAN_LENGTHS.get(match.group(1))
        if length is None:
            continue
        chars = [match.group(1), match.group(2)]
        need, pos = length - 4, match.end()
        while need and pos < len(text):
            ch = text[pos]
            if ch in " \u00a0" and pos + 1 < len(text) and text[pos + 1] not in " \u00a0":
                pos += 1
                continue
            if not ("0" <= ch <= "9" or "A" <= ch <= "Z"):
                break
            chars.append(ch)
            need -= 1
            pos += 1
        if need or (pos < len(text) and text[pos].isalnum()):
            continue
        if iban_valid("".join(chars)):
            found.append(Finding("iban", match.start(), pos))
    return found


def ean13_valid(digits: str) -> bool:
    """Return True if 13 digits carry a valid GS1 (EAN-13) check digit."""
    total = sum(int(ch) * (3 if i % 2 else 1) for i, ch in enumerate(digits[:12]))
    return (10 - total % 10) % 10 == int(digits[12])


def _cards(text: str) -> list[Finding]:
    found = []
    for match in _CARD.finditer(text):
        digits = _digits(match.group())
        if len(digits) == 13 and digits == match.group() and ean13_valid(digits):
            continue  # a product's barcode number (13-digit cards are no longer issued)
        if card_network_fits(digits) and luhn_valid(digits):
            found.append(Finding("card", *match.span()))
    return found


def _ssns(text: str) -> list[Finding]:
    found = [Finding("ssn", *m.span()) for m in _SSN.finditer(text)]
    for match in _NINE_DIGITS.finditer(text):
        before = context_before(text, match.start(), _SSN_CONTEXT_CHARS)
        if ssn_valid(match.group()) and _SSN_WORD.search(before):
            found.append(Finding("ssn", *match.span()))
    return found


def _phones(text: str) -> list[Finding]:
    return [Finding("phone", start, end) for start, end in phone_spans(text)]


_FINDERS: Final = (_emails, _ibans, _cards, _ssns, _phones)


def find_pii(text: str) -> list[Finding]:
    """Non-overlapping personal data in ``text``, in order of position."""
    found = [finding for finder in _FINDERS for finding in finder(text)]
    if len(found) < 2:
        return found
    rank = {kind: i for i, kind in enumerate(KINDS)}
    found.sort(
        key=lambda f: (
            f.kind != "email",
            -len(_digits(text[f.start : f.end])),
            f.start - f.end,
            rank[f.kind],
            f.start,
        )
    )
    kept: list[Finding] = []
    for finding in found:
        if all(finding.end <= k.start or finding.start >= k.end for k in kept):
            kept.append(finding)
    return sorted(kept, key=lambda f: f.start)
