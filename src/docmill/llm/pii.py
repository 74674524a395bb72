"""Mask personal data in text before it is sent to an LLM provider (``llm.redact_pii``).

Uses the log redactor, :func:`docmill.observability.redact.redact`, so log lines and
prompts mask exactly the same things (:mod:`docmill.observability.pii` says how each is
found): SSNs, e-mail addresses, phone numbers (national and international), IBANs
(mod-97) and card numbers (Luhn), replaced by ``[SSN]``, ``[EMAIL]``, ``[PHONE]``,
``[IBAN]``, ``[CARD]``; amounts, dates and invoice, order and reference numbers stay.
"""

from __future__ import annotations

from docmill.observability.redact import (
    CARD_TOKEN,
    EMAIL_TOKEN,
    FAILED_TOKEN,
    IBAN_TOKEN,
    PHONE_TOKEN,
    SSN_TOKEN,
    redact,
)

__all__ = [
    "CARD_TOKEN",
    "EMAIL_TOKEN",
    "IBAN_TOKEN",
    "PHONE_TOKEN",
    "SSN_TOKEN",
    "PiiMaskingError",
    "mask_pii",
]


class PiiMaskingError(RuntimeError):
    """Masking failed; the text must not be sent (the caller fails the document)."""


def mask_pii(text: str) -> str:
    """Return ``text`` with personal data replaced by tokens; idempotent.

    Unlike the log redactor, which degrades to a placeholder, this fails closed: if
    masking breaks, :class:`PiiMaskingError` is raised rather than sending either the
    raw text or a placeholder the model would answer as if it were the document.
    """
    masked = redact(text)
    if masked == FAILED_TOKEN and text != FAILED_TOKEN:
        raise PiiMaskingError("PII masking failed; the text was not sent")
    return masked
