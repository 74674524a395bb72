"""Phone numbers in text: runs of digit groups, kept only when they read as a phone number.

A run is digits with separators (spaces, dashes of any kind, dots, slashes, brackets).
Whether it is a phone number is decided by its shape and its context, and for the
shapes other kinds of number share (a leading ``0``, digits grouped in twos and threes)
by ``phonenumbers`` (Google's libphonenumber metadata), imported only when such a run
is met, so a CLI start or a log line without one never loads it:

- ``+CC ...`` (any grouping): a known country code and a possible length for it;
  ``00CC ...``: a valid number of that country;
- US shapes, ``(415) 555-0134``, ``415-555-0134``, ``415.555.0134``, ``1-415-555-0134``,
  and ``415 555 0134`` unless an identifier word is before it;
- a national number with a trunk ``0`` (``020 7946 1001``, ``030/1234567``,
  ``01 23 45 67 89``, ``06-12345678``): valid in one of :data:`TRUNK_REGIONS`, when it
  is grouped or follows a phone word;
- a national number without one (``612 34 56 78``, ``347 123 4567``): valid in one of
  :data:`PLAIN_REGIONS`, when grouped by spaces or dashes in three groups or more, or
  after a phone word (``Tel: 4155550134``); a 10-digit mobile number of Italy or India
  in two groups (``335 3188684``, ``98765 43210``).

Never a phone number: a run with fewer than 7 or more than 15 digits, a date
(``15.03.2024``, ``2024-03-15``), an IPv4 address, an amount (a decimal part, a
currency or a percent sign beside it, ``Total``/``Betrag`` before it), and a national
number right after an identifier word (invoice, order, reference, VAT, ``No.``,
``Kd.-Nr.``, ``#`` ...) unless a phone word is before it too, and a run that continues a
code of letters and digits (``RF48 0720 5512 4336``). A run of unseparated national digits without a phone
word is left alone (``02079461001``, ``4155550134``): an invoice, order or customer
number reads the same.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

SPACES: Final = " \u00a0\u2009\u202f"
# hyphen-minus, hyphen, non-breaking hyphen, figure dash, en dash, em dash, bar, minus
DASHES: Final = "\\-\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
# One space, or a dash, dot or slash with at most a space on each side: two spaces or
# a tab are a gap between columns, not inside a number.
_SEP_RUN: Final = f"(?:[{SPACES}]?[{DASHES}./][{SPACES}]?|[{SPACES}])"

# Regions tried for a national number with a trunk prefix "0", most likely first
# (Italy keeps its 0: tried with it), and for one without.
TRUNK_REGIONS: Final = (
    ("GB", 44), ("DE", 49), ("FR", 33), ("NL", 31), ("IT", 39), ("IN", 91), ("BE", 32),
    ("AT", 43), ("CH", 41), ("IE", 353), ("AU", 61),
)  # fmt: skip
PLAIN_REGIONS: Final = (("US", 1), ("ES", 34), ("IT", 39), ("IN", 91))
MOBILE_REGIONS: Final = (("IT", 39), ("IN", 91))  # 10-digit mobiles written in two groups

# A run: optional "+" or "(", then digits, brackets and separators, ending on a digit or
# ")". Possessive, so a run that fails the check after it is not retried shorter; it
# does not start inside a word, a number, an address or a path segment (the check on
# the character before comes after the first one, so that re can skip ahead to a
# "+", "(" or digit instead of trying every position).
_NOT_AFTER: Final = rf"(?<![^\W_].)(?<![@+.,{DASHES}].)"
_RUN: Final = re.compile(
    rf"(?:\+{_NOT_AFTER}[{SPACES}]?\(?[0-9]|\({_NOT_AFTER}[0-9]|[0-9]{_NOT_AFTER})"
    rf"(?:[0-9]|\((?=[0-9])|\)|{_SEP_RUN}(?=\(?[0-9]))*+"
    r"(?![^\W_]|@|[.,:][0-9]|%)"
)
# A run that starts with a date ("15.03.2024 020 7946 1001") is read from after it.
_DATE_FIRST: Final = re.compile(
    rf"(?:[0-9]{{1,2}}(?P<s1>[{DASHES}./])[0-9]{{1,2}}(?P=s1)[0-9]{{4}}"
    rf"|[0-9]{{4}}(?P<s2>[{DASHES}./])[0-9]{{1,2}}(?P=s2)[0-9]{{1,2}})[{SPACES}]"
)
_DATE: Final = re.compile(
    rf"(?:[0-9]{{1,2}}(?P<s1>[{DASHES}./])[0-9]{{1,2}}(?P=s1)(?:[0-9]{{2}}|[0-9]{{4}})"
    rf"|[0-9]{{4}}(?P<s2>[{DASHES}./])[0-9]{{1,2}}(?P=s2)[0-9]{{1,2}})"
)
_IPV4: Final = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_SSN_SHAPE: Final = re.compile(r"[0-9]{3}[^0-9]+[0-9]{2}[^0-9]+[0-9]{4}")
# US shapes with brackets, dashes or dots; spaces alone ("415 555 0134") are weighed
# like other national numbers (an order number can read so too).
_US: Final = re.compile(
    rf"(?:1[{SPACES}{DASHES}.]?)?"
    rf"(?:\([0-9]{{3}}\)[{SPACES}]?[0-9]{{3}}[{SPACES}{DASHES}.]{{1,3}}"
    rf"|[0-9]{{3}}(?P<sep>[{SPACES}]?[{DASHES}.][{SPACES}]?)[0-9]{{3}}(?P=sep))"
    r"[0-9]{4}"
)
# "RF48 0720 5512 4336": the run continues a code of letters and digits.
_CODE_BEFORE: Final = re.compile(r"(?<![^\W_])(?=[^\W_]*[0-9])[^\W_]*[^\W\d_][^\W_]*[ \u00a0]$")
_US_SPACED: Final = re.compile(rf"(?:1[{SPACES}])?[0-9]{{3}}[{SPACES}][0-9]{{3}}[{SPACES}][0-9]{{4}}")
_NON_DIGIT: Final = re.compile(r"[^0-9]+")
_GROUP_GAP: Final = re.compile(rf"[{SPACES}{DASHES}./()]+")
_PLAIN_GAP: Final = re.compile(rf"[{SPACES}{DASHES}]+")

_PHONE_WORD: Final = re.compile(
    r"(?:\b(?:tel|tél|tele?fon|telephone|téléphone|teléfono|telefono|phone|fon|fax|mobile?"
    r"|mob|móvil|movil|handy|cell|cellulare|portable|gsm|call|ring|contact|kontakt|tfno"
    r"|tlf|whatsapp|hotline|helpline|ph)\b|\b[tmf]\s?:|[☎📞])",
    re.IGNORECASE,
)
_ID_WORD: Final = re.compile(
    r"(?:\b(?:invoice|inv|rechnung\w*|re|facture|factura|fattura|order|bestell\w*|commande"
    r"|pedido|ordine|po|ref|reference|référence|referencia|riferimento|kd|account|konto|compte|cuenta|vat|tva|ust|iva|siren|siret|rcs|item|art"
    r"|artikel\w*|sku|ean|gtin|isbn|tracking|awb|iban|bic|swift|id|no|num|\w*nr|\w*nummer|number"
    r"|numéro|número|numero|total|subtotal|amount|betrag|summe|montant|importe|price|preis"
    r"|prix|precio|qty|quantity|menge|steuer\w*|fiscal|tax|serial|batch|lot)\b"
    r"|[#№°º])",
    re.IGNORECASE,
)
_CURRENCY_AFTER: Final = re.compile(
    r"[ \u00a0]?(?:[€$£¥₹]|(?:EUR|USD|GBP|CHF|INR|JPY|CAD|AUD|SEK|NOK|DKK|PLN|CZK)\b)"
)
_CURRENCY_BEFORE: Final = re.compile(
    r"(?:[€$£¥₹]|\b(?:EUR|USD|GBP|CHF|INR|JPY|CAD|AUD|SEK|NOK|DKK|PLN|CZK|Rs\.?))[ \u00a0]?$"
)
# after an identifier word: punctuation, and a country prefix (VAT ID: GB 123 4567 89)
_ID_TAIL: Final = re.compile(r"[\W_]*(?:[A-Z]{2}[ \u00a0]?)?")
_CONTEXT_CHARS: Final = 32


def phone_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each phone number in ``text``, in order."""
    for match in _RUN.finditer(text):
        run = match.group()
        if len(run) < 7:  # fewer than 7 digits
            continue
        start, end = match.span()
        while run.endswith(")") and run.count(")") > run.count("("):
            run, end = run[:-1], end - 1
        if run.startswith("(") and run.count("(") > run.count(")"):
            run, start = run[1:], start + 1
        if run.startswith("(") and run.find(")") == len(run) - 1:  # "(078-05-1120)"
            run, start, end = run[1:-1], start + 1, end - 1
        date = _DATE_FIRST.match(run)
        if date is not None:
            run, start = run[date.end() :], start + date.end()
        if _is_phone(text, start, end, run):
            yield start, end


def _is_phone(text: str, start: int, end: int, run: str) -> bool:
    digits = _NON_DIGIT.sub("", run)
    if not 7 <= len(digits) <= 15:
        return False
    if run[0] == "+":
        return len(digits) >= 8 and _possible_international(digits)
    if _US.fullmatch(run):
        return True
    if _DATE.fullmatch(run) or _IPV4.fullmatch(run) or run.count("/") > 1:
        return False
    if _SSN_SHAPE.fullmatch(run):  # 123-45-6789 is an SSN (docmill.observability.pii)
        return False
    before = context_before(text, start, _CONTEXT_CHARS)
    if _CURRENCY_AFTER.match(text, end) or _CURRENCY_BEFORE.search(before):
        return False
    if before.endswith("/") or _CODE_BEFORE.search(before):
        return False
    word = _nearest_word(before)
    if word == "id":
        return False
    if _US_SPACED.fullmatch(run):
        return True
    if word != "phone" and _GROUP_GAP.search(run) is None:
        return False  # unseparated: an invoice, order or customer number reads the same
    if digits.startswith("00"):
        return _valid_international(digits[2:])
    if digits[0] == "0":
        return _valid_national(digits, TRUNK_REGIONS)
    if word == "phone":
        return _valid_national(digits, PLAIN_REGIONS)
    if "/" in run or "." in run:
        return False
    gaps = len(_PLAIN_GAP.findall(run))
    if gaps >= 2:
        return _valid_national(digits, PLAIN_REGIONS)
    if gaps == 1 and len(digits) == 10 and digits[0] in "36789":  # 335 3188684, 98765 43210
        return _valid_national(digits, MOBILE_REGIONS)
    return False


def context_before(text: str, start: int, chars: int) -> str:
    """Up to ``chars`` characters of the line before ``start``, from a word's beginning."""
    line_start = text.rfind("\n", 0, start) + 1
    begin = max(line_start, start - chars)
    if begin > line_start:  # cut: drop the rest of a word cut in two
        while begin < start and (text[begin - 1].isalnum() or text[begin - 1] == "_"):
            begin += 1
    return text[begin:start]


def _nearest_word(before: str) -> str | None:
    """``phone`` if a phone word is in ``before``; ``id`` if an identifier word ends it
    (only punctuation and a country prefix after it: ``Order no. ``, ``VAT ID: GB ``)."""
    if _PHONE_WORD.search(before):
        return "phone"
    words = list(_ID_WORD.finditer(before))
    if words and _ID_TAIL.fullmatch(before, words[-1].end()):
        return "id"
    return None


def _possible_international(digits: str) -> bool:
    import phonenumbers

    try:
        number = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_possible_number(number))


def _valid_international(digits: str) -> bool:
    import phonenumbers

    try:
        number = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(number))


def _valid_national(digits: str, regions: tuple[tuple[str, int], ...]) -> bool:
    import phonenumbers

    for region, code in regions:
        number = phonenumbers.PhoneNumber(country_code=code)
        if digits[0] == "0":
            if region == "IT":
                number.italian_leading_zero = True
                number.national_number = int(digits)
            else:
                number.national_number = int(digits[1:])
        elif region == "US" and len(digits) == 11 and digits[0] == "1":
            number.national_number = int(digits[1:])
        else:
            number.national_number = int(digits)
        if phonenumbers.is_valid_number_for_region(number, region):
            return True
    return False
