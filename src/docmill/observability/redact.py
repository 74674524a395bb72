"""Mask personal data (e-mail addresses, IBANs, card numbers, SSNs, phone numbers) in text.

Used on every log line (:mod:`docmill.observability.logs`), on what ``docmill status``
and the run summary print, and on the text sent to an LLM provider with
``llm.redact_pii`` (:mod:`docmill.llm.pii`). What counts as personal data, and why
amounts, dates and invoice numbers do not: :mod:`docmill.observability.pii`.
"""

from __future__ import annotations

import re
from typing import Final

from docmill.observability.pii import Kind, find_pii, luhn_valid

__all__ = [
    "CARD_TOKEN",
    "EMAIL_TOKEN",
    "FAILED_TOKEN",
    "IBAN_TOKEN",
    "PHONE_TOKEN",
    "SSN_TOKEN",
    "TOKENS",
    "luhn_valid",
    "redact",
]

SSN_TOKEN: Final = "[SSN]"
EMAIL_TOKEN: Final = "[EMAIL]"
PHONE_TOKEN: Final = "[PHONE]"
CARD_TOKEN: Final = "[CARD]"
IBAN_TOKEN: Final = "[IBAN]"
FAILED_TOKEN: Final = "[REDACTION FAILED]"
TOKENS: Final[dict[Kind, str]] = {
    "email": EMAIL_TOKEN,
    "iban": IBAN_TOKEN,
    "card": CARD_TOKEN,
    "ssn": SSN_TOKEN,
    "phone": PHONE_TOKEN,
}

# Every kind needs an ASCII digit or an "@"; text without one is returned as is.
_TRIGGER: Final = re.compile(r"[0-9@]")


def _redact_once(text: str) -> str:
    parts: list[str] = []
    pos = 0
    for finding in find_pii(text):
        parts += (text[pos : finding.start], TOKENS[finding.kind])
        pos = finding.end
    if not parts:
        return text
    parts.append(text[pos:])
    return "".join(parts)


def redact(text: str) -> str:
    """Return ``text`` with personal data replaced by ``[EMAIL]``, ``[IBAN]``, ``[CARD]``,
    ``[SSN]`` or ``[PHONE]``.

    Idempotent and never raises. Each replacement removes at least one digit or "@" and
    adds none, so the fixed-point loop (a replacement can leave a new match beside
    its token) terminates.
    """
    try:
        text = str(text)  # tolerate non-str input from untyped callers
        while _TRIGGER.search(text) is not None:
            redacted = _redact_once(text)
            if redacted == text:
                break
            text = redacted
        return text
    except Exception:  # redaction must never break logging
        return FAILED_TOKEN
