"""A generated set for PII masking: personal data planted among invoice-like numbers.

``generate(n, seed)`` returns ``n`` invoice-like texts. Each plants personal data in
many forms (SSNs with dashes of any kind, spaces or none after an SSN word; e-mail
addresses; phone numbers of the US, UK, Germany, France, the Netherlands, Italy, Spain,
India, Australia, Switzerland and other countries, national and international, in the
groupings people write; IBANs of nine countries, grouped or not; card numbers of six
networks) among what must stay readable (amounts, dates, invoice and order numbers,
references, postcodes, percentages, times, VAT ids, quantities), with the truth: a
:class:`Span` per planted item, ``pii`` or not, its kind and form.

:func:`score` measures a finder (text -> (start, end) spans) against it: recall per kind
and form, false positives per kind of kept item. :func:`labelled_false_positives` runs
a finder over :mod:`docmill.testkit.labelled` documents and counts the amounts, dates
and invoice, receipt and tax reference numbers it would mask.

Deterministic: the same ``n`` and ``seed`` give the same texts. The generator computes
its own check digits (Luhn, mod-97) and never asks the masker what is valid.
"""

from __future__ import annotations

import random
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

PII_KINDS = ("ssn", "email", "phone", "iban", "card")
KEEP_KINDS = (
    "amount", "date", "invoice_number", "order_number", "reference", "postcode",
    "percentage", "time", "vat_id", "quantity", "nine_digits",
)  # fmt: skip

Finder = Callable[[str], Iterable[tuple[int, int]]]


@dataclass(frozen=True, slots=True)
class Span:
    """A planted item at ``text[start:end]``: personal data (``pii``) or a kept number."""

    kind: str
    form: str
    start: int
    end: int
    pii: bool


@dataclass(frozen=True, slots=True)
class PiiDoc:
    text: str
    spans: tuple[Span, ...]


Gen = Callable[[random.Random], str]


# --- personal data ---------------------------------------------------------------------


def _d(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _nz(rng: random.Random, n: int) -> str:
    """``n`` digits, the first not 0 or 1 (a subscriber number's first digit)."""
    return str(rng.randint(2, 9)) + _d(rng, n - 1)


def _ssn_digits(rng: random.Random) -> tuple[str, str, str]:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}", f"{rng.randint(1, 99):02d}", f"{rng.randint(1, 9999):04d}"


def _ssn_sep(sep: str) -> Gen:
    return lambda rng: sep.join(_ssn_digits(rng))


SSN_FORMS: dict[str, Gen] = {
    "hyphen": _ssn_sep("-"),
    "en-dash": _ssn_sep("\u2013"),
    "em-dash": _ssn_sep("\u2014"),
    "non-breaking hyphen": _ssn_sep("\u2011"),
    "minus sign": _ssn_sep("\u2212"),
    "spaced en-dash": _ssn_sep(" \u2013 "),
    "space": _ssn_sep(" "),
    "no-break space": _ssn_sep("\u00a0"),
    "unseparated": lambda rng: "".join(_ssn_digits(rng)),
}
SSN_WORDS = (
    "SSN: ", "SSN ", "SSN#", "SSN #: ", "Social Security Number: ", "social security no. ",
    "Soc. Sec. No.: ", "S.S.N. ", "Employee SSN    ", "SS No. ", "Social security number (SSN): ",
)  # fmt: skip

_FIRST = ("jane", "john", "maria", "ahmed", "li", "olivia", "lukas", "chloe", "priya", "marco")
_LAST = ("doe", "roe", "garcia", "muller", "martin", "rossi", "sharma", "jansen", "smith", "dubois")
_DOMAINS = ("example.com", "mail.example.co.uk", "firma-example.de", "example.fr", "ex4mple.nl",
            "correo.example.es", "example.in", "sub.domain.example.org", "example.io")  # fmt: skip


def _email(rng: random.Random) -> str:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    local = rng.choice((
        f"{first}.{last}", f"{first}_{last}", f"{first[0]}{last}", f"{first}.{last}{rng.randint(1, 99)}",
        f"{first}+invoices@", f"{last}-{first}", f"{first.upper()}.{last.upper()}", f"{first}{rng.randint(1970, 2005)}",
    )).rstrip("@")  # fmt: skip
    email = f"{local}@{rng.choice(_DOMAINS)}"
    return email.upper() if rng.random() < 0.05 else email


EMAIL_FORMS: dict[str, Gen] = {
    "plain": _email,
    "angle brackets": lambda rng: f"<{_email(rng)}>",
    "mailto": lambda rng: f"mailto:{_email(rng)}",
}


def _phone(fmt: str) -> Gen:
    """``fmt`` with ``A`` a digit 2-9, ``#`` any digit, other characters as written."""

    def gen(rng: random.Random) -> str:
        return "".join(
            str(rng.randint(2, 9)) if ch == "A" else rng.choice(string.digits) if ch == "#" else ch
            for ch in fmt
        )

    return gen


def _us(fmt: str) -> Gen:
    areas = ("212", "213", "305", "312", "415", "617", "646", "702", "713", "808", "917", "206")
    inner = _phone(fmt)

    def gen(rng: random.Random) -> str:
        exchange = rng.choice([e for e in range(201, 1000) if e % 100 != 11 and e != 555])
        return inner(rng).replace("aaa", rng.choice(areas)).replace("xxx", str(exchange))

    return gen


# Forms a reader knows as a phone number without a word beside it.
PHONE_FORMS: dict[str, Gen] = {
    "US (NPA) NXX-9999": _us("(aaa) xxx-####"),
    "US NPA-NXX-9999": _us("aaa-xxx-####"),
    "US NPA.NXX.9999": _us("aaa.xxx.####"),
    "US NPA NXX 9999": _us("aaa xxx ####"),
    "US 1-NPA-NXX-9999": _us("1-aaa-xxx-####"),
    "US en-dash": _us("aaa\u2013xxx\u2013####"),
    "US +1 NPA NXX 9999": _us("+1 aaa xxx ####"),
    "US +1 (NPA) NXX-9999": _us("+1 (aaa) xxx-####"),
    "US +1-NPA-NXX-9999": _us("+1-aaa-xxx-####"),
    "US +1NPANXX9999": _us("+1aaaxxx####"),
    "GB 020 A999 9999": _phone("020 7A## ####"),
    "GB (020) A999 9999": _phone("(020) 3A## ####"),
    "GB 020-A999-9999": _phone("020-8A##-####"),
    "GB 0161 A99 9999": _phone("0161 A## ####"),
    "GB mobile 07A99 999999": _phone("077A# ######"),
    "GB mobile 07A99-999-999": _phone("078A#-###-###"),
    "GB +44 20 A999 9999": _phone("+44 20 7A## ####"),
    "GB +44 (0)20 A999 9999": _phone("+44 (0)20 7A## ####"),
    "GB +4420A9999999": _phone("+44207A######"),
    "GB 0044 20 A999 9999": _phone("0044 20 7A## ####"),
    "GB +44 7A99 999999": _phone("+44 79A# ######"),
    "DE 030 A9999999": _phone("030 A#######"),
    "DE 030/A999999": _phone("030/A######"),
    "DE 030-A9999999": _phone("030-A#######"),
    "DE (089) A999999": _phone("(089) A######"),
    "DE 040 A99 999 99": _phone("040 A## ### ##"),
    "DE mobile 0151 A9999999": _phone("0151 A#######"),
    "DE mobile 0171/A999999": _phone("0171/A######"),
    "DE +49 30 A9999999": _phone("+49 30 A#######"),
    "DE +49 (0)89 A999999": _phone("+49 (0)89 A######"),
    "DE +49-40-A9999999": _phone("+49-40-A#######"),
    "DE 0049 30 A9999999": _phone("0049 30 A#######"),
    "DE +49 151 A9999999": _phone("+49 151 A#######"),
    "DE +49 AA A99999": _phone("+49 AA A#####"),
    "FR 0A 99 99 99 99": _phone("01 A# ## ## ##"),
    "FR 0A.99.99.99.99": _phone("04.A#.##.##.##"),
    "FR 0A-99-99-99-99": _phone("05-A#-##-##-##"),
    "FR mobile 06 99 99 99 99": _phone("06 A# ## ## ##"),
    "FR +33 A 99 99 99 99": _phone("+33 1 A# ## ## ##"),
    "FR +33 (0)6 99 99 99 99": _phone("+33 (0)6 A# ## ## ##"),
    "FR 0033 6 99 99 99 99": _phone("0033 6 1# ## ## ##"),
    "NL 020 A99 9999": _phone("020 A## ####"),
    "NL 010-A999999": _phone("010-A######"),
    "NL (020) A99 9999": _phone("(020) A## ####"),
    "NL mobile 06 A9999999": _phone("06 A#######"),
    "NL mobile 06-A9999999": _phone("06-A#######"),
    "NL +31 20 A99 9999": _phone("+31 20 A## ####"),
    "NL +31 6 A9999999": _phone("+31 6 A#######"),
    "NL +31 (0)6 A9999999": _phone("+31 (0)6 A#######"),
    "IT 06 A999 9999": _phone("06 A### ####"),
    "IT 02-A999-9999": _phone("02-A###-####"),
    "IT mobile 3A9 999 9999": _phone("34A ### ####"),
    "IT mobile 3A9 9999999": _phone("33A #######"),
    "IT +39 06 A999 9999": _phone("+39 06 A### ####"),
    "IT +39 3A9 999 9999": _phone("+39 34A ### ####"),
    "IT +39 3A99999999": _phone("+39 32A#######"),
    "ES 91A 999 999": _phone("91A ### ###"),
    "ES 91 A99 99 99": _phone("91 A## ## ##"),
    "ES mobile 6A9 999 999": _phone("6A# ### ###"),
    "ES mobile 6A9 99 99 99": _phone("6A# ## ## ##"),
    "ES mobile 6A9-999-999": _phone("6A#-###-###"),
    "ES +34 91A 999 999": _phone("+34 91A ### ###"),
    "ES +34 6A9 99 99 99": _phone("+34 6A# ## ## ##"),
    "ES 0034 6A9999999": _phone("0034 6A#######"),
    "IN mobile 9A999 99999": _phone("9A### #####"),
    "IN mobile 09A999 99999": _phone("09A### #####"),
    "IN mobile 7A999-99999": _phone("7A###-#####"),
    "IN +91 9A999 99999": _phone("+91 9A### #####"),
    "IN +91-9A999-99999": _phone("+91-8A###-#####"),
    "IN +91 9A99999999": _phone("+91 9A########"),
    "IN 022 A999 9999": _phone("022 A### ####"),
    "IN 080-A999-9999": _phone("080-A###-####"),
    "IN +91 22 A999 9999": _phone("+91 22 A### ####"),
    "AU (02) 9A99 9999": _phone("(02) 9A## ####"),
    "AU 02 9A99 9999": _phone("02 9A## ####"),
    "AU mobile 04A9 999 999": _phone("041A ### ###"),
    "AU +61 2 9A99 9999": _phone("+61 2 9A## ####"),
    "AU +61 4A9 999 999": _phone("+61 41A ### ###"),
    "CH 044 A99 99 99": _phone("044 A## ## ##"),
    "CH mobile 079 A99 99 99": _phone("079 A## ## ##"),
    "CH +41 44 A99 99 99": _phone("+41 44 A## ## ##"),
    "JP +81 3-A999-9999": _phone("+81 3-A###-####"),
    "CN +86 10 A999 9999": _phone("+86 10 A### ####"),
    "BR +55 11 9A999-9999": _phone("+55 11 9A###-####"),
    "ZA +27 21 A99 9999": _phone("+27 21 A## ####"),
    "AE +971 4 A99 9999": _phone("+971 4 A## ####"),
    "RU +7 495 A99-99-99": _phone("+7 495 A##-##-##"),
    "IE +353 1 A99 9999": _phone("+353 1 A## ####"),
    "BE +32 2 A99 99 99": _phone("+32 2 A## ## ##"),
    "PL +48 22 A99 99 99": _phone("+48 22 A## ## ##"),
    "SE +46 8 A99 999 99": _phone("+46 8 A## ### ##"),
}
# Unseparated national numbers: only a word beside them tells them from an order or
# customer number, so they are planted after one.
PHONE_WORD_FORMS: dict[str, Gen] = {
    "US NPANXX9999 after a phone word": _us("aaaxxx####"),
    "GB 020A9999999 after a phone word": _phone("0207A######"),
    "FR 0A99999999 after a phone word": _phone("06A#######"),
    "ES 6A9999999 after a phone word": _phone("6A#######"),
    "IN 9A99999999 after a phone word": _phone("9A########"),
}
PHONE_WORDS = ("Tel.: ", "Tel ", "Phone: ", "Mobile: ", "Fax: ", "Tél. : ", "Telefon: ",
               "Teléfono: ", "Cell ", "call me on ", "Handy: ", "T: ", "ph. ")  # fmt: skip


def _mod97_check(country: str, bban: str) -> str:
    moved = bban + country + "00"
    return f"{98 - int(''.join(str(int(ch, 36)) for ch in moved)) % 97:02d}"


_IBAN_BBAN: dict[str, str] = {  # 9 = digit, A = capital letter
    "DE": "9" * 18, "GB": "AAAA" + "9" * 14, "FR": "9" * 23, "NL": "AAAA" + "9" * 10,
    "IT": "A" + "9" * 22, "ES": "9" * 20, "BE": "9" * 12, "CH": "9" * 17, "AT": "9" * 16,
}  # fmt: skip


def _iban(rng: random.Random, country: str) -> str:
    bban = "".join(
        rng.choice(string.ascii_uppercase) if ch == "A" else rng.choice(string.digits)
        for ch in _IBAN_BBAN[country]
    )
    return country + _mod97_check(country, bban) + bban


def _grouped(text: str, size: int = 4, sep: str = " ") -> str:
    return sep.join(text[i : i + size] for i in range(0, len(text), size))


def _iban_form(country: str, sep: str | None) -> Gen:
    """IBANs of ``country``: compact (``sep`` None) or in groups of four."""

    def gen(rng: random.Random) -> str:
        iban = _iban(rng, country)
        return iban if sep is None else _grouped(iban, sep=sep)

    return gen


IBAN_FORMS: dict[str, Gen] = {
    **{f"{c} grouped": _iban_form(c, " ") for c in _IBAN_BBAN},
    **{f"{c} compact": _iban_form(c, None) for c in ("DE", "GB", "FR", "NL", "ES")},
    "DE no-break spaces": _iban_form("DE", "\u00a0"),
}


def _luhn_complete(rng: random.Random, prefix: str, length: int) -> str:
    body = prefix + _d(rng, length - len(prefix) - 1)
    for check in string.digits:
        total = 0
        for i, ch in enumerate(reversed(body + check)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return body + check
    raise AssertionError("unreachable")


def _card(prefixes: tuple[str, ...], length: int, groups: tuple[int, ...], sep: str) -> Gen:
    def gen(rng: random.Random) -> str:
        digits = _luhn_complete(rng, rng.choice(prefixes), length)
        if not sep:
            return digits
        parts, pos = [], 0
        for size in groups:
            parts.append(digits[pos : pos + size])
            pos += size
        return sep.join(parts)

    return gen


_G16 = (4, 4, 4, 4)
CARD_FORMS: dict[str, Gen] = {
    "Visa 16 spaces": _card(("4",), 16, _G16, " "),
    "Visa 16 dashes": _card(("4",), 16, _G16, "-"),
    "Visa 16 en-dashes": _card(("4",), 16, _G16, "\u2013"),
    "Visa 16 contiguous": _card(("4",), 16, _G16, ""),
    "Mastercard 51-55 spaces": _card(("51", "52", "53", "54", "55"), 16, _G16, " "),
    "Mastercard 2-series contiguous": _card(("2221", "2500", "2720"), 16, _G16, ""),
    "Amex 4-6-5": _card(("34", "37"), 15, (4, 6, 5), " "),
    "Amex contiguous": _card(("34", "37"), 15, (15,), ""),
    "Discover spaces": _card(("6011", "65"), 16, _G16, " "),
    "JCB dashes": _card(("3528", "3589"), 16, _G16, "-"),
    "Diners 4-6-4": _card(("36",), 14, (4, 6, 4), " "),
}


# --- what must stay ----------------------------------------------------------------------

_MONTHS = ("January", "March", "June", "September", "December")


def _money(rng: random.Random) -> str:
    value = rng.choice((rng.uniform(1, 999), rng.uniform(1000, 99999), rng.uniform(1e5, 9e7)))
    us = f"{value:,.2f}"
    eu = us.replace(",", "_").replace(".", ",").replace("_", ".")
    return rng.choice((
        us, eu, us.replace(",", " ").replace(".", ","), us.replace(",", "'"), f"${us}",
        f"€ {eu}", f"{us} EUR", f"{eu} €", f"USD {us}", f"-{us}", f"({us})", f"£{us}",
        f"{int(value):,}", f"{int(value):,}".replace(",", " ") + " €", f"{us}\u00a0€",
        f"{int(value):,}".replace(",", "\u202f") + ",00\u00a0€", f"Rs. {us}", f"₹{us}",
    ))  # fmt: skip


def _date_text(rng: random.Random) -> str:
    y, m, d = rng.randint(2019, 2026), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice((
        f"{y}-{m:02d}-{d:02d}", f"{d:02d}.{m:02d}.{y}", f"{d:02d}/{m:02d}/{y}", f"{m:02d}/{d:02d}/{y}",
        f"{d:02d}-{m:02d}-{y}", f"{d} {rng.choice(_MONTHS)} {y}", f"{rng.choice(_MONTHS)} {d}, {y}",
        f"{y}/{m:02d}/{d:02d}", f"{d:02d}.{m:02d}.{y % 100:02d}", f"{y}{m:02d}{d:02d}",
        f"{m}/{d}/{y % 100:02d}", f"{y}-{m:02d}-{d:02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z",
    ))  # fmt: skip


def _invoice_number(rng: random.Random) -> str:
    y, n = rng.randint(2019, 2026), rng.randint(1, 99999)
    return rng.choice((
        f"INV-{y}-{n:05d}", f"{y}{n:05d}", f"RE-{y}-{n % 1000:03d}", f"F{y}/{n % 10000:04d}",
        f"#{n:06d}", f"{y}-{n:06d}", f"INV/{y}/{n:04d}", f"{rng.randint(10**7, 10**8 - 1)}",
        f"FAC-{y % 100}-{n:05d}", f"009{rng.randint(0, 9999999):07d}", f"51{rng.randint(0, 99999999):08d}",
        f"{y} {n:05d}", f"{rng.randint(100, 999)}-{rng.randint(100000, 999999)}",
    ))  # fmt: skip


def _order_number(rng: random.Random) -> str:
    return rng.choice((
        f"PO-45{_d(rng, 8)}", f"45{_d(rng, 8)}", f"{rng.randint(1000, 9999)}-{rng.randint(10, 99)}",
        f"{_d(rng, 3)}-{_d(rng, 7)}-{_d(rng, 7)}", f"{rng.randint(100, 999)} {_d(rng, 3)} {_d(rng, 3)}",
        f"SO{_d(rng, 8)}", f"{rng.randint(2019, 2026)} {_d(rng, 4)}", f"0{_d(rng, 9)}",
        f"{rng.randint(1, 9)}{_d(rng, 2)} {_d(rng, 3)} {_d(rng, 4)}",
    ))  # fmt: skip


def _reference(rng: random.Random) -> str:
    def not_luhn() -> str:
        while True:
            digits = "4" + _d(rng, 15)
            if sum(int(c) * (2 if i % 2 else 1) - (9 if int(c) * (2 if i % 2 else 1) > 9 else 0)
                   for i, c in enumerate(reversed(digits))) % 10:  # fmt: skip
                return _grouped(digits)

    return rng.choice((
        f"{rng.randint(10000, 99999)}/{rng.choice('ABCDEFG')}", not_luhn(),
        f"{_d(rng, 3)}/{_d(rng, 3)}/{_d(rng, 5)}", f"{_d(rng, 2)}/{_d(rng, 3)}/{_d(rng, 5)}",
        f"1Z{_d(rng, 3)}AA1{_d(rng, 10)}", f"RF{_d(rng, 2)} {_d(rng, 4)} {_d(rng, 4)} {_d(rng, 4)}",
        f"978-{rng.randint(0, 9)}-{_d(rng, 2)}-{_d(rng, 6)}-{rng.randint(0, 9)}",
        _ean13(rng), f"{_d(rng, 3)} {_d(rng, 3)} {_d(rng, 3)} {_d(rng, 5)}",
        f"{_d(rng, 2)} {_d(rng, 3)} {_d(rng, 3)} {_d(rng, 3)}", f"{_d(rng, 12)}",
    ))  # fmt: skip


def _ean13(rng: random.Random) -> str:
    body = rng.choice(("40", "50", "30", "84", "80", "76")) + _d(rng, 10)
    total = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body))
    return body + str((10 - total % 10) % 10)


def _postcode(rng: random.Random) -> str:
    return rng.choice((
        "SW1A 1AA", "EC1A 1BB", f"{rng.randint(10000, 99999)}", f"{rng.randint(1000, 9999)} AB",
        f"00{rng.randint(100, 199)}", f"{rng.randint(10000, 99999)}-{rng.randint(1000, 9999)}",
        f"{rng.randint(110000, 855000)}", f"{rng.randint(110, 855)} {rng.randint(0, 999):03d}",
        "H3Z 2Y7", f"{rng.randint(1000, 9999)}",
    ))  # fmt: skip


def _vat_id(rng: random.Random) -> str:
    return rng.choice((
        f"DE{_d(rng, 9)}", f"FR{_d(rng, 11)}", f"GB{_d(rng, 9)}", f"GB {_d(rng, 3)} {_d(rng, 4)} {_d(rng, 2)}",
        f"ESB{_d(rng, 8)}", f"NL{_d(rng, 9)}B01", f"IT{_d(rng, 11)}", f"ATU{_d(rng, 8)}",
    ))  # fmt: skip


_KEEP: dict[str, tuple[Gen, tuple[str, ...]]] = {
    "amount": (_money, ("Total: ", "Subtotal ", "Amount due: ", "Betrag: ", "Montant : ", "", "Net ")),
    "date": (_date_text, ("Date: ", "Invoice date ", "Datum: ", "due ", "Fecha: ", "")),
    "invoice_number": (_invoice_number, ("Invoice number: ", "Invoice ", "Rechnungsnr. ", "Facture n° ", "")),
    # order and reference numbers always carry their label
    "order_number": (_order_number, ("Order ", "PO ", "Bestellung ", "Your order ", "Order no. ")),
    "reference": (_reference, ("Ref. ", "Reference: ", "Tracking ", "ISBN ", "EAN ", "SIRET ", "Steuernummer ")),
    "postcode": (_postcode, ("", "Postcode ", "PLZ ")),
    "percentage": (lambda rng: rng.choice(("19%", "7 %", "20.5%", "0,5 %", "21%", "5.5 %")), ("VAT ", "Tax ", "")),
    "time": (lambda rng: rng.choice((f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
                                     f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
                                     f"{rng.randint(1, 12)}:{rng.randint(0, 59):02d} PM")), ("at ", "Time: ")),
    "vat_id": (_vat_id, ("VAT ID: ", "USt-IdNr.: ", "TVA : ", "VAT Reg. No. ")),
    "quantity": (lambda rng: rng.choice((f"{rng.randint(1, 99)} x {rng.randint(1, 99)}.50", f"{rng.randint(1, 500)} pcs",
                                         f"{rng.randint(1, 9)}.{rng.randint(1, 9)} kg", f"{rng.randint(1, 9)},{rng.randint(0, 999):03d}")),
                 ("Qty ", "", "Weight ")),
    "nine_digits": (lambda rng: "".join(_ssn_digits(rng)), ("Customer no. ", "Account ", "ID ", "", "Kundennummer ")),
}  # fmt: skip

_PII: dict[str, dict[str, Gen]] = {
    "ssn": SSN_FORMS,
    "email": EMAIL_FORMS,
    "phone": {**PHONE_FORMS, **PHONE_WORD_FORMS},
    "iban": IBAN_FORMS,
    "card": CARD_FORMS,
}
_BARE = ("", "Contact: Jane Roe, ", "Customer: J. Smith ", "please reach us at ", "Questions? ",
         "(", "Billing ", "Name: M. Rossi / ")  # fmt: skip
_PII_WORDS = {
    "email": ("E-mail: ", "Email ", "write to ", "Courriel : ", "", "Contact: "),
    "iban": ("IBAN: ", "IBAN ", "Bank account ", "Konto: ", ""),
    "card": ("Card: ", "Paid with card ", "Visa ", "Kreditkarte: ", "Card number "),
}
_TAILS = (
    "",
    "",
    ".",
    ",",
    " before the due date.",
    " (mobile)",
    ";",
    " – thanks",
    " or by letter.",
)


@dataclass
class _Builder:
    parts: list[str] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    pos: int = 0

    def add(self, text: str, kind: str | None = None, form: str = "", pii: bool = False) -> None:
        if kind is not None:
            self.spans.append(Span(kind, form, self.pos, self.pos + len(text), pii))
        self.parts.append(text)
        self.pos += len(text)


def _pii_line(b: _Builder, rng: random.Random, kind: str, form: str) -> None:
    value = _PII[kind][form](rng)
    if kind == "ssn":
        prefix = (
            rng.choice(SSN_WORDS)
            if form == "unseparated" or rng.random() < 0.5
            else rng.choice(_BARE)
        )
    elif kind == "phone":
        needs_word = form in PHONE_WORD_FORMS
        prefix = rng.choice(PHONE_WORDS) if needs_word or rng.random() < 0.5 else rng.choice(_BARE)
    else:
        prefix = rng.choice(_PII_WORDS[kind])
    b.add(prefix)
    b.add(value, kind, form, pii=True)
    b.add(")" if prefix.endswith("(") else rng.choice(_TAILS))


def _keep_line(b: _Builder, rng: random.Random, kind: str) -> None:
    gen, prefixes = _KEEP[kind]
    b.add(rng.choice(prefixes))
    b.add(gen(rng), kind, kind)
    if rng.random() < 0.3:
        other = rng.choice(KEEP_KINDS)
        gen2, prefixes2 = _KEEP[other]
        b.add(rng.choice(("  ", " | ", ", ", "\t")) + rng.choice(prefixes2))
        b.add(gen2(rng), other, other)


def _all_forms() -> list[tuple[str, str]]:
    return [(kind, form) for kind, forms in _PII.items() for form in forms]


def generate(n: int = 200, seed: int = 0) -> list[PiiDoc]:
    """``n`` invoice-like texts; every PII form is planted at least ``n // 8`` times
    when ``n`` ≥ 8 (the forms are dealt round-robin, ~5 to a text)."""
    rng = random.Random(seed)
    forms = _all_forms()
    deck: list[tuple[str, str]] = []
    docs: list[PiiDoc] = []
    for _ in range(n):
        b = _Builder()
        lines: list[tuple[str, str] | str] = [
            *(rng.choice(KEEP_KINDS) for _ in range(rng.randint(6, 12)))
        ]
        for _ in range(rng.randint(3, 7)):
            if not deck:
                deck = forms[:]
                rng.shuffle(deck)
            lines.append(deck.pop())
        rng.shuffle(lines)
        b.add(
            rng.choice(("INVOICE", "RECHNUNG", "FACTURE", "FACTURA", "Tax invoice", "Receipt"))
            + "\n"
        )
        for item in lines:
            if isinstance(item, tuple):
                _pii_line(b, rng, *item)
            else:
                _keep_line(b, rng, item)
            b.add("\n")
        docs.append(PiiDoc("".join(b.parts), tuple(b.spans)))
    return docs


# --- scoring ----------------------------------------------------------------------------


@dataclass
class Score:
    """What a finder masked of a generated set."""

    planted: Counter[str] = field(default_factory=Counter)  # per PII kind
    masked: Counter[str] = field(default_factory=Counter)
    planted_forms: Counter[tuple[str, str]] = field(default_factory=Counter)
    masked_forms: Counter[tuple[str, str]] = field(default_factory=Counter)
    kept: Counter[str] = field(default_factory=Counter)  # per kept kind
    false_positives: Counter[str] = field(default_factory=Counter)
    misses: list[str] = field(default_factory=list)  # up to 50 examples
    wrongly_masked: list[str] = field(default_factory=list)

    def recall(self, kind: str | None = None) -> float:
        planted = self.planted[kind] if kind else sum(self.planted.values())
        masked = self.masked[kind] if kind else sum(self.masked.values())
        return masked / planted if planted else 1.0


_SECRET = re.compile(r"[0-9@]")


def score(docs: Iterable[PiiDoc], finder: Finder) -> Score:
    """Recall: a planted item is masked when every digit and "@" in it lies inside a
    span the finder returns. False positive: a kept item any found span touches."""
    result = Score()
    for doc in docs:
        found = sorted(finder(doc.text))
        covered = bytearray(len(doc.text))
        for start, end in found:
            covered[start:end] = b"\x01" * (end - start)
        for span in doc.spans:
            value = doc.text[span.start : span.end]
            if span.pii:
                result.planted[span.kind] += 1
                result.planted_forms[span.kind, span.form] += 1
                secret = [span.start + m.start() for m in _SECRET.finditer(value)]
                if all(covered[i] for i in secret):
                    result.masked[span.kind] += 1
                    result.masked_forms[span.kind, span.form] += 1
                elif len(result.misses) < 50:
                    result.misses.append(f"{span.kind} ({span.form}): {_line_of(doc.text, span)!r}")
            else:
                result.kept[span.kind] += 1
                if any(covered[span.start : span.end]):
                    result.false_positives[span.kind] += 1
                    if len(result.wrongly_masked) < 50:
                        result.wrongly_masked.append(f"{span.kind}: {_line_of(doc.text, span)!r}")
    return result


def _line_of(text: str, span: Span) -> str:
    start = text.rfind("\n", 0, span.start) + 1
    end = text.find("\n", span.end)
    return text[start : end if end >= 0 else len(text)]


# --- the labelled corpus -------------------------------------------------------------------

_LABELLED_AMOUNT = re.compile(r"(?<![0-9.,])[0-9]{1,3}(?:[.,][0-9]{3})*[.,][0-9]{2}(?![0-9])")
_LABELLED_DATE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{2}[./][0-9]{2}[./][0-9]{4}"
    r"|(?:January|February|March|April|May|June|July|August|September|October|November|December)"
    r" [0-9]{2}, [0-9]{4}"
)


@dataclass
class LabelledCheck:
    documents: int = 0
    protected: Counter[str] = field(default_factory=Counter)  # amount, date, number
    false_positives: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    other_findings: list[str] = field(default_factory=list)  # everything else masked


def labelled_false_positives(finder: Finder, n: int = 300, seed: int = 0) -> LabelledCheck:
    """Run ``finder`` over the texts of ``n`` :mod:`docmill.testkit.labelled` documents;
    count the amounts, dates and invoice/receipt/tax reference numbers it touches."""
    from docmill.testkit.labelled import labels_for, make_document

    rng = random.Random(seed)
    check = LabelledCheck()
    for label in labels_for(n, rng):
        doc = make_document(label, rng)
        check.documents += 1
        numbers = [
            str(doc.fields[key])
            for key in ("invoice_number", "receipt_number", "reference")
            if doc.fields.get(key)
        ]
        for text in doc.pages:
            protected: list[tuple[str, int, int]] = []
            protected += [("amount", *m.span()) for m in _LABELLED_AMOUNT.finditer(text)]
            protected += [("date", *m.span()) for m in _LABELLED_DATE.finditer(text)]
            for number in numbers:
                protected += [
                    ("number", m.start(), m.end()) for m in re.finditer(re.escape(number), text)
                ]
            found = sorted(finder(text))
            for kind, start, end in protected:
                check.protected[kind] += 1
                if any(s < end and start < e for s, e in found):
                    check.false_positives[kind] += 1
                    if len(check.examples) < 20:
                        check.examples.append(f"{kind}: {text[start:end]!r}")
            for s, e in found:
                if not any(s < end and start < e for _, start, end in protected):
                    check.other_findings.append(text[s:e])
    return check
