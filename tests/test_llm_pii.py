"""Masking before a provider call: realistic text, what stays, idempotence."""

from __future__ import annotations

from docmill.llm.pii import mask_pii

LETTER = """Dear Ms. Alvarez,

Invoice INV-2024-00817 dated 2024-03-15, total $1,234.56 (VAT 20%), order 4471-22.
Please call me at (555) 867-5309 or +44 20 7946 0958, or write to j.alvarez@example.com.
My SSN is 078-05-1120 and the card on file is 4111 1111 1111 1111 (exp 09/27).
Reference 1234 5678 9012 3456 fails the Luhn check. Page 3 of 12, ISBN 978-3-16-148410-0.
"""


def test_mask_pii_on_a_realistic_letter() -> None:
    masked = mask_pii(LETTER)
    for secret in (
        "867-5309",
        "7946 0958",
        "j.alvarez@example.com",
        "078-05-1120",
        "4111 1111 1111 1111",
    ):
        assert secret not in masked, secret
    for token in ("[PHONE]", "[EMAIL]", "[SSN]", "[CARD]"):
        assert token in masked, token
    assert masked.count("[PHONE]") == 2
    # what the model needs to read stays
    for kept in (
        "INV-2024-00817",
        "2024-03-15",
        "$1,234.56",
        "order 4471-22",
        "exp 09/27",
        "1234 5678 9012 3456",
        "ISBN 978-3-16-148410-0",
        "Dear Ms. Alvarez,",
    ):
        assert kept in masked, kept
    assert mask_pii(masked) == masked


def test_text_without_pii_is_unchanged() -> None:
    text = "Résumé: 12 pages, 3 tables, 2024 edition. Τιμή 45 €."
    assert mask_pii(text) == text
    assert mask_pii("") == ""
