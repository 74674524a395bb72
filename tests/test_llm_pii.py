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


LETTER_EU = """Sehr geehrte Frau Müller,

Rechnung RE-2024-00817 vom 15.03.2024, Betrag 1.234,56 EUR (MwSt 19 %), Bestellung 4471-22.
Rückfragen: Tel. 030/1234567 oder +49 (0)171 2345678, Fax 0049 30 12345679.
Bankverbindung: IBAN DE89 3704 0044 0532 0130 00, BIC COBADEFFXXX.
UK office 020 7946 1001, Paris 01 23 45 67 89, Madrid 612 34 56 78, Mumbai +91 98765 43210.
SSN 078–05–1120; Social Security Number: 219099999. Card 4111–1111–1111–1111.
Kundennummer 0123456789, Steuernummer 123/456/78901, Invoice 202400817, 10115 Berlin.
"""


def test_mask_pii_on_a_letter_from_several_countries() -> None:
    """Issue 15: national and international numbers of any grouping, en-dash SSNs and
    cards, unseparated SSNs after an SSN word and IBANs were sent unmasked."""
    masked = mask_pii(LETTER_EU)
    for secret in (
        "030/1234567", "171 2345678", "30 12345679", "3704 0044 0532 0130", "7946 1001",
        "23 45 67 89", "612 34 56 78", "98765 43210", "078–05–1120", "219099999",
        "4111–1111–1111–1111",
    ):  # fmt: skip
        assert secret not in masked, secret
    assert masked.count("[PHONE]") == 7
    assert masked.count("[SSN]") == 2
    assert "[IBAN]" in masked and "[CARD]" in masked
    for kept in (
        "RE-2024-00817", "15.03.2024", "1.234,56 EUR", "19 %", "4471-22", "BIC COBADEFFXXX",
        "Kundennummer 0123456789", "Steuernummer 123/456/78901", "Invoice 202400817",
        "10115 Berlin", "Frau Müller",
    ):  # fmt: skip
        assert kept in masked, kept
    assert mask_pii(masked) == masked
