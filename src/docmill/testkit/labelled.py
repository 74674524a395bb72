"""A labelled synthetic corpus for the classifier's tests and the cascade-cost bench.

``generate(out_dir, n, seed)`` writes ``n`` one- or two-page text PDFs, one sub-folder per
label (``invoice``, ``receipt``, ``tax_notice``, ``letter``, ``other``: the layout
``docmill train-classifier`` reads), and ``truth.jsonl`` with one line per file::

    {"file": "invoice/invoice-0007.pdf", "label": "invoice", "ambiguous": false,
     "language": "de", "fields": {"invoice_number": "INV-2024-0012", "date": "2024-03-05",
     "vendor": "Nordlicht GmbH", "total": 1234.5, "currency": "EUR"}}

Documents vary in template, vendor, amounts, dates, language (English, German, French,
Spanish, and mixes), layout noise (addresses, bank details, footers, OCR-like typos in
the prose) and some are ambiguous on purpose (a letter about an invoice, a delivery note
or a purchase order that looks like an invoice, a receipt headed "invoice/receipt", a
tax reminder that reads like a bill, or terse fragments with few telling words: a bare till
slip, a memo, a price list). Invoices and receipts always carry exact
``key: value`` lines (``Invoice number:``, ``Date:``, ``Vendor:``, ``Total:``,
``Currency:``) so that extracted fields can be checked against ``truth.jsonl``.

Deterministic: the same ``seed`` and ``n`` give the same bytes. ``python -m
docmill.testkit.labelled OUT_DIR -n 300 --seed 1``.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

LABELS = ("invoice", "receipt", "tax_notice", "letter", "other")
# label shares of a corpus (the rest of the way to 1.0 goes to "other")
SHARES = {"invoice": 0.3, "receipt": 0.2, "tax_notice": 0.15, "letter": 0.2}
LANGUAGES = ("en", "de", "fr", "es")


@dataclass(frozen=True)
class LabelledDoc:
    """One generated document: its pages and what is true about it."""

    label: str
    pages: tuple[str, ...]
    fields: dict[str, Any] = field(default_factory=dict)
    language: str = "en"
    ambiguous: bool = False


# --- a minimal PDF writer (Helvetica, WinAnsi; one text line per "\n") -----------------

_ESCAPES = {ord("\\"): "\\\\", ord("("): "\\(", ord(")"): "\\)", ord("\r"): ""}


def make_pdf(pages: Sequence[str]) -> bytes:
    """A valid PDF 1.4 with one page per string and extractable text."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids ["
        + b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(len(pages)))
        + b"] /Count %d >>" % len(pages),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for i, text in enumerate(pages):
        lines = [line.translate(_ESCAPES).encode("cp1252", "replace") for line in text.split("\n")]
        stream = b"BT /F1 10 Tf 12 TL 60 770 Td (" + b") Tj T* (".join(lines) + b") Tj ET\n"
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
            b" /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (5 + 2 * i)
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


# --- vocabulary ------------------------------------------------------------------------

VENDORS = (
    "Nordlicht GmbH", "Acme Supplies Ltd", "Boulangerie Martin SARL", "Ferretería López S.L.",
    "Bluewater Consulting LLC", "Schmidt & Söhne KG", "Atelier Dubois", "Pixel Forge Studios",
    "Green Valley Farms", "Helvetia Print AG", "Marston Office Furniture", "Café Central",
    "Rossi Logistica S.r.l.", "Northwind Traders", "Contoso Hardware", "Fabrikam Software Inc.",
    "Tailspin Travel", "Litware Labs", "Proseware Cleaning Services", "Adventure Works Cycles",
)
SHOPS = (
    "SuperMart #214", "Bäckerei Huber", "Monoprix Opéra", "Mercadona Valencia", "Corner Pharmacy",
    "City Fuel Station 12", "Bookworm Books", "Tech Depot", "Farmers Market Stand 7", "Café Central",
)
PEOPLE = (
    "Anna Schneider", "John Miller", "Marie Laurent", "Carlos García", "Priya Nair", "Tom Becker",
    "Sophie Martin", "Lucía Fernández", "David Chen", "Emma Wilson", "Jürgen Krause", "Chloé Petit",
)
STREETS = (
    "Hauptstraße 12, 10115 Berlin", "221 High Street, Leeds LS1 4AB", "14 rue de Rivoli, 75004 Paris",
    "Calle Mayor 5, 28013 Madrid", "500 Market St, San Francisco, CA 94105",
    "Via Roma 33, 20121 Milano", "Bahnhofstrasse 8, 8001 Zürich", "Kalverstraat 90, 1012 PH Amsterdam",
)
ITEMS = (
    "Consulting hours", "Office chairs", "Printer toner", "Website hosting (annual)", "Design work",
    "Laptop stand", "Cleaning service", "Software licence", "Delivery fee", "Paper A4 (box)",
    "Maintenance contract", "Training workshop", "Cloud storage 1 TB", "Translation services",
)
SHOP_ITEMS = (
    "Milk 1L", "Bread", "Coffee beans", "Apples 1kg", "Notebook", "USB cable", "Shampoo", "Diesel",
    "Croissant", "Newspaper", "Batteries AA", "Water 6x1.5L", "Chocolate", "Aspirin",
)
CURRENCIES = ("EUR", "EUR", "EUR", "USD", "GBP", "CHF")
TAX_OFFICES = (
    "Finanzamt München", "HM Revenue & Customs", "Direction générale des Finances publiques",
    "Agencia Tributaria", "Internal Revenue Service", "Finanzamt Hamburg-Altona",
)

_GREET = {"en": "Dear", "de": "Sehr geehrte Damen und Herren,", "fr": "Madame, Monsieur,", "es": "Estimado/a"}
_CLOSE = {
    "en": ("Kind regards,", "Sincerely,", "Yours faithfully,", "Best wishes,"),
    "de": ("Mit freundlichen Grüßen", "Viele Grüße"),
    "fr": ("Cordialement,", "Veuillez agréer nos salutations distinguées."),
    "es": ("Atentamente,", "Un saludo cordial,"),
}


# --- small helpers ---------------------------------------------------------------------


def _money(value: float, style: str) -> str:
    text = f"{value:,.2f}"
    if style == "eu":  # 1.234,50
        text = text.replace(",", "_").replace(".", ",").replace("_", ".")
    return text


def _date(rng: random.Random) -> date:
    return date(2022, 1, 1) + timedelta(days=rng.randrange(0, 3 * 365))


def _fmt_date(d: date, rng: random.Random) -> str:
    return rng.choice((d.isoformat(), d.strftime("%d.%m.%Y"), d.strftime("%d/%m/%Y"), d.strftime("%B %d, %Y")))


def _amount(rng: random.Random, low: float, high: float) -> float:
    return round(rng.uniform(low, high), 2)


def _typos(line: str, rng: random.Random, rate: float) -> str:
    """OCR-like noise: swapped letters, rn/m and 0/O confusions."""
    if rate <= 0 or len(line) < 8 or rng.random() > rate:
        return line
    chars = list(line)
    for _ in range(rng.randint(1, 2)):
        i = rng.randrange(1, len(chars) - 1)
        if chars[i].isalpha() and chars[i + 1].isalpha():
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
    return "".join(chars).replace(" m", " rn", 1 if rng.random() < 0.3 else 0)


def _noise(rng: random.Random) -> list[str]:
    pool = [
        f"IBAN: DE{rng.randint(10, 99)} 3704 0044 0532 {rng.randint(1000, 9999)} 00",
        f"VAT ID: {rng.choice(('DE', 'FR', 'ES', 'GB'))}{rng.randint(100000000, 999999999)}",
        f"Tel. +49 {rng.randint(30, 89)} {rng.randint(100000, 999999)}",
        f"www.{rng.choice(('example', 'shop', 'firma', 'company'))}.{rng.choice(('com', 'de', 'fr', 'es'))}",
        rng.choice(STREETS),
        "Page 1 of 1",
        "Registered office: " + rng.choice(STREETS),
        f"Ref. {rng.randint(10000, 99999)}/{rng.choice('ABCDEFG')}",
    ]
    return rng.sample(pool, rng.randint(1, 4))


def _with_noise(lines: list[str], rng: random.Random, typo_rate: float) -> str:
    """Noise lines around the body; typos only in prose (never in ``key: value`` lines)."""
    out = []
    for line in lines:
        out.append(line if ": " in line else _typos(line, rng, typo_rate))
    head, tail = _noise(rng), _noise(rng)
    return "\n".join([*head[:1], *out, "", *tail])


# --- templates -------------------------------------------------------------------------


def _invoice(rng: random.Random, lang: str) -> LabelledDoc:
    vendor = rng.choice(VENDORS)
    d = _date(rng)
    currency = rng.choice(CURRENCIES)
    number = rng.choice(("INV-{y}-{n:04d}", "{y}{n:05d}", "RE-{y}-{n:03d}", "F{y}/{n:04d}", "#{n:06d}")).format(
        y=d.year, n=rng.randint(1, 9999)
    )
    items = [(rng.choice(ITEMS), rng.randint(1, 12), _amount(rng, 5, 900)) for _ in range(rng.randint(1, 6))]
    net = round(sum(q * p for _, q, p in items), 2)
    rate = rng.choice((0.0, 0.07, 0.19, 0.2, 0.21))
    total = round(net * (1 + rate), 2)
    style = "eu" if lang in ("de", "fr", "es") and rng.random() < 0.6 else "us"
    title = {"en": "INVOICE", "de": "RECHNUNG / Invoice", "fr": "FACTURE / Invoice", "es": "FACTURA / Invoice"}[lang]
    if rng.random() < 0.15:
        title = rng.choice(("Tax Invoice", "Invoice", "Commercial invoice"))
    due = d + timedelta(days=rng.choice((14, 30, 45)))
    lines = [
        vendor,
        rng.choice(STREETS),
        "",
        title,
        f"Invoice number: {number}",
        f"Date: {d.isoformat()}",
        f"Vendor: {vendor}",
        f"Customer: {rng.choice(PEOPLE)}",
        "",
    ]
    lines += [f"{q} x {name}  {_money(p, style)}  {_money(q * p, style)}" for name, q, p in items]
    lines += [
        "",
        f"Subtotal: {_money(net, style)} {currency}",
        f"VAT {int(rate * 100)}%: {_money(total - net, style)} {currency}",
        f"Total: {_money(total, style)} {currency}",
        f"Currency: {currency}",
    ]
    prose = {
        "en": [f"Amount due by {due.isoformat()}.", "Payment terms: 30 days net.", "Please pay by bank transfer quoting the invoice number."],
        "de": [f"Zahlbar bis {due.strftime('%d.%m.%Y')} ohne Abzug.", "Bitte überweisen Sie den Rechnungsbetrag unter Angabe der Rechnungsnummer."],
        "fr": [f"À régler avant le {due.strftime('%d/%m/%Y')}.", "Conditions de paiement : 30 jours net.", "Merci de votre confiance."],
        "es": [f"Fecha de vencimiento: {due.isoformat()}", "Forma de pago: transferencia bancaria."],
    }[lang]
    lines += ["", *rng.sample(prose, k=rng.randint(1, len(prose)))]
    fields = {"invoice_number": number, "date": d.isoformat(), "vendor": vendor, "total": total, "currency": currency}
    pages = [_with_noise(lines, rng, 0.2)]
    if rng.random() < 0.2:
        pages.append("General terms and conditions\n" + "\n".join(
            rng.sample([
                "1. All prices are net plus statutory VAT.",
                "2. Goods remain our property until paid in full.",
                "3. Late payment interest applies after the due date.",
                "4. Place of jurisdiction is the seat of the vendor.",
                "5. Complaints must be made in writing within 14 days.",
            ], 3)))
    return LabelledDoc("invoice", tuple(pages), fields, lang)


def _receipt(rng: random.Random, lang: str) -> LabelledDoc:
    shop = rng.choice(SHOPS)
    d = _date(rng)
    currency = rng.choice(CURRENCIES)
    items = [(rng.choice(SHOP_ITEMS), _amount(rng, 0.5, 60)) for _ in range(rng.randint(1, 9))]
    total = round(sum(p for _, p in items), 2)
    number = f"{rng.randint(1000, 9999)}-{rng.randint(100, 999)}"
    style = "eu" if lang != "en" and rng.random() < 0.6 else "us"
    title = rng.choice({
        "en": ("RECEIPT", "Sales receipt", "Cash receipt", "Till receipt"),
        "de": ("KASSENBON", "Quittung / Receipt", "Beleg"),
        "fr": ("TICKET DE CAISSE", "Reçu / Receipt"),
        "es": ("TICKET DE COMPRA", "Recibo / Receipt"),
    }[lang])
    paid = rng.choice(("Cash", "Visa **** " + str(rng.randint(1000, 9999)), "Mastercard", "EC-Karte", "Contactless"))
    time = f"{rng.randint(7, 21):02d}:{rng.randint(0, 59):02d}"
    lines = [shop, title, f"Receipt number: {number}", f"Date: {d.isoformat()}", f"Time: {time}", f"Vendor: {shop}", ""]
    lines += [f"{name:<20} {_money(p, style)}" for name, p in items]
    lines += ["", f"Total: {_money(total, style)} {currency}", f"Currency: {currency}", f"Paid: {paid}"]
    if paid == "Cash":
        given = float(int(total) + rng.choice((1, 5, 10, 20)))
        lines.append(f"Change: {_money(given - total, style)}")
    lines.append(rng.choice({
        "en": ("Thank you for your purchase!", "Thank you for shopping with us", "Please keep this receipt for returns"),
        "de": ("Vielen Dank für Ihren Einkauf!", "Bitte Bon aufbewahren"),
        "fr": ("Merci de votre visite !", "Conservez ce ticket"),
        "es": ("¡Gracias por su compra!", "Conserve este ticket"),
    }[lang]))
    fields = {"receipt_number": number, "date": d.isoformat(), "vendor": shop, "total": total,
              "currency": currency, "payment_method": paid.split(" ")[0]}
    return LabelledDoc("receipt", (_with_noise(lines, rng, 0.15),), fields, lang)


def _tax_notice(rng: random.Random, lang: str) -> LabelledDoc:
    office = rng.choice(TAX_OFFICES)
    d = _date(rng)
    year = d.year - 1
    amount = _amount(rng, 50, 25000)
    ref = f"{rng.randint(100, 999)}/{rng.randint(100, 999)}/{rng.randint(10000, 99999)}"
    refund = rng.random() < 0.35
    person = rng.choice(PEOPLE)
    head = {
        "en": ["Notice of assessment", f"Tax year {year}", f"Taxpayer: {person}", f"Tax reference: {ref}"],
        "de": [f"Bescheid für {year} über Einkommensteuer", "Steuerbescheid", f"Steuernummer: {ref}", f"Steuerpflichtige/r: {person}"],
        "fr": [f"Avis d'imposition {year + 1} sur les revenus de {year}", f"Numéro fiscal : {ref}", f"Contribuable : {person}"],
        "es": [f"Notificación de liquidación - Ejercicio {year}", f"Referencia: {ref}", f"Contribuyente: {person}"],
    }[lang]
    body = {
        "en": [
            f"We have assessed your income tax return for the tax year {year}.",
            f"Taxable income: {_money(_amount(rng, 20000, 150000), 'us')}",
            f"{'Refund due to you' if refund else 'Amount payable'}: {_money(amount, 'us')}",
            "If you disagree with this assessment you may appeal within 30 days.",
            "This notice was issued by the tax office named above.",
        ],
        "de": [
            f"Die Einkommensteuer für {year} wird festgesetzt.",
            f"Zu versteuerndes Einkommen: {_money(_amount(rng, 20000, 150000), 'eu')} EUR",
            f"{'Erstattung' if refund else 'Nachzahlung'}: {_money(amount, 'eu')} EUR",
            "Rechtsbehelfsbelehrung: Der Bescheid kann mit dem Einspruch angefochten werden.",
            "Das Finanzamt",
        ],
        "fr": [
            "Impôt sur le revenu net avant corrections.",
            f"Revenu fiscal de référence : {_money(_amount(rng, 20000, 150000), 'eu')}",
            f"{'Montant à restituer' if refund else 'Montant à payer'} : {_money(amount, 'eu')} EUR",
            "Vous pouvez contester cet avis auprès de votre centre des finances publiques.",
        ],
        "es": [
            "Le comunicamos la liquidación provisional del impuesto sobre la renta.",
            f"Base imponible: {_money(_amount(rng, 20000, 150000), 'eu')}",
            f"{'Importe a devolver' if refund else 'Importe a ingresar'}: {_money(amount, 'eu')} EUR",
        ],
    }[lang]
    lines = [office, *head, f"Date of notice: {d.isoformat()}", "", *body]
    if not refund:
        lines.append(f"Payment due: {(d + timedelta(days=30)).isoformat()}")
    fields = {"tax_year": year, "reference": ref, "amount": amount, "refund": refund, "office": office}
    return LabelledDoc("tax_notice", (_with_noise(lines, rng, 0.15),), fields, lang)


_LETTER_TOPICS = {
    "en": (
        "I am writing to confirm our meeting next Tuesday at ten o'clock.",
        "Thank you for your application; we would like to invite you to an interview.",
        "Please find enclosed the signed copy of the rental agreement.",
        "We are pleased to inform you that your membership has been renewed.",
        "Following our telephone conversation, I would like to summarise the points we agreed.",
        "I would like to give notice of the termination of my contract as of the end of next month.",
        "We regret to inform you that the event has been postponed until further notice.",
    ),
    "de": (
        "hiermit bestätigen wir Ihren Termin am kommenden Dienstag.",
        "vielen Dank für Ihre Bewerbung. Wir möchten Sie zu einem Gespräch einladen.",
        "anbei erhalten Sie den unterschriebenen Mietvertrag zurück.",
        "hiermit kündige ich meinen Vertrag fristgerecht zum Monatsende.",
    ),
    "fr": (
        "Nous accusons réception de votre courrier et vous en remercions.",
        "Je vous informe par la présente de mon changement d'adresse.",
        "Nous avons le plaisir de vous confirmer votre inscription.",
    ),
    "es": (
        "Le escribo para confirmar nuestra reunión del próximo martes.",
        "Nos complace comunicarle que su solicitud ha sido aprobada.",
        "Por medio de la presente le informo de mi cambio de domicilio.",
    ),
}


def _letter(rng: random.Random, lang: str) -> LabelledDoc:
    sender, recipient = rng.sample(PEOPLE, 2)
    d = _date(rng)
    greet = _GREET[lang] + (f" {recipient}," if lang in ("en", "es") else "")
    sentences = rng.sample(_LETTER_TOPICS[lang], k=min(len(_LETTER_TOPICS[lang]), rng.randint(2, 4)))
    subject = {"en": "Subject", "de": "Betreff", "fr": "Objet", "es": "Asunto"}[lang]
    lines = [
        sender, rng.choice(STREETS), "", recipient, rng.choice(STREETS), "",
        f"{rng.choice(('Berlin', 'London', 'Paris', 'Madrid', 'Zürich'))}, {_fmt_date(d, rng)}", "",
        f"{subject}: {sentences[0][:40].rstrip()}", "", greet, "", *sentences, "",
        rng.choice(_CLOSE[lang]), sender,
    ]
    fields = {"sender": sender, "recipient": recipient, "date": d.isoformat()}
    return LabelledDoc("letter", (_with_noise(lines, rng, 0.2),), fields, lang)


_OTHER_KINDS = (
    lambda rng: ["Minutes of the team meeting", f"Attendees: {', '.join(rng.sample(PEOPLE, 3))}",
                 "1. Project status: on track.", "2. Budget review postponed.", "Action items: update the roadmap."],
    lambda rng: ["Quick start guide", "1. Unpack the device and charge it fully.",
                 "2. Hold the power button for three seconds.", "3. Pair it with the app.",
                 "Warranty: two years from the date of purchase."],
    lambda rng: ["Curriculum vitae", rng.choice(PEOPLE), "Experience: 2018-2023 Software engineer",
                 "Education: MSc Computer Science", "Languages: English, German, French"],
    lambda rng: ["Recipe: apple crumble", "Ingredients: 4 apples, 100 g butter, 150 g flour, 80 g sugar",
                 "Bake for 35 minutes at 180 degrees."],
    lambda rng: ["Newsletter", "Spring edition", "Our community garden opens next week.",
                 "Volunteers are welcome every Saturday morning.", "Unsubscribe at any time."],
    lambda rng: ["Press release", f"{rng.choice(VENDORS)} announces a new product line",
                 "The company expects strong growth in the coming year."],
    lambda rng: ["Account statement", f"Account holder: {rng.choice(PEOPLE)}",
                 f"Opening balance: {_money(_amount(rng, 100, 9000), 'us')}",
                 f"Closing balance: {_money(_amount(rng, 100, 9000), 'us')}", "Transactions: see overleaf."],
)


def _other(rng: random.Random, lang: str) -> LabelledDoc:
    lines = rng.choice(_OTHER_KINDS)(rng)
    return LabelledDoc("other", (_with_noise(list(lines), rng, 0.2),), {}, lang)


# --- ambiguous on purpose --------------------------------------------------------------


def _terse(label: str, rng: random.Random, lang: str) -> LabelledDoc:
    """A short document with few telling words (a fragment, a memo, a note)."""
    if label == "receipt":  # no title, no receipt number: a bare till slip
        base = _receipt(rng, lang)
        keep = [ln for ln in base.pages[0].split("\n")
                if ln.startswith(("Date:", "Vendor:", "Total:", "Currency:")) or "  " in ln]
        fields = {**base.fields, "receipt_number": None}
        return LabelledDoc("receipt", ("\n".join(keep),), fields, lang, ambiguous=True)
    if label == "letter":  # a memo with no greeting or closing
        sentences = rng.sample(_LETTER_TOPICS["en"], 2)
        return LabelledDoc("letter", ("Memo\n" + "\n".join(sentences),), {}, "en", ambiguous=True)
    if label == "tax_notice":  # a tax office writes a letter
        person = rng.choice(PEOPLE)
        text = (f"{rng.choice(TAX_OFFICES)}\nDear {person},\nwe have received your documents and will"
                f" review your file for {_date(rng).year}.\nKind regards")
        return LabelledDoc("tax_notice", (text,), {}, "en", ambiguous=True)
    if label == "other":  # a price list: amounts and a vendor, nothing to pay
        vendor = rng.choice(VENDORS)
        rows = [f"{rng.choice(ITEMS)}  {_money(_amount(rng, 5, 500), 'us')}" for _ in range(4)]
        return LabelledDoc("other", ("\n".join([vendor, "Prices 2024", *rows, "Valid while stocks last"]),),
                           {}, lang, ambiguous=True)
    base = _invoice(rng, lang)  # an invoice whose prose is lost: only the key lines
    keep = [ln for ln in base.pages[0].split("\n") if ": " in ln and not ln.startswith("VAT")]
    return LabelledDoc("invoice", ("\n".join(keep),), base.fields, lang, ambiguous=True)


def _ambiguous(label: str, rng: random.Random, lang: str) -> LabelledDoc:
    """A document of ``label`` that borrows another label's words (or has few words)."""
    if rng.random() < 0.4:
        return _terse(label, rng, lang)
    if label == "letter":  # a cover letter about an invoice, or a payment reminder
        base = _letter(rng, "en")
        extra = rng.choice((
            "Please find attached our invoice for the services provided last month.",
            "We note that the invoice dated last month is still unpaid; the amount due is overdue.",
            "Your tax office has asked us to send the receipt for your records.",
        ))
        pages = (base.pages[0].replace("Dear", extra + "\nDear", 1),)
        return LabelledDoc("letter", pages, base.fields, "en", ambiguous=True)
    if label == "other":  # delivery note / purchase order that looks like an invoice
        vendor = rng.choice(VENDORS)
        kind = rng.choice(("DELIVERY NOTE", "PURCHASE ORDER", "Quotation", "Pro forma offer"))
        items = [f"{rng.randint(1, 9)} x {rng.choice(ITEMS)}" for _ in range(rng.randint(2, 5))]
        lines = [vendor, kind, f"Number: PO-{rng.randint(1000, 9999)}", f"Date: {_date(rng).isoformat()}",
                 *items, "This is not an invoice. An invoice will follow separately."]
        return LabelledDoc("other", (_with_noise(lines, rng, 0.1),), {}, lang, ambiguous=True)
    if label == "receipt":  # a receipt headed as an invoice
        base = _receipt(rng, lang)
        pages = (base.pages[0].replace("Receipt number", "Invoice/Receipt number", 1) + "\nSimplified invoice",)
        return LabelledDoc("receipt", pages, base.fields, lang, ambiguous=True)
    if label == "tax_notice":  # a reminder that reads like a bill
        base = _tax_notice(rng, lang)
        pages = (base.pages[0] + "\nPayment reminder: the amount due must be paid by bank transfer.",)
        return LabelledDoc("tax_notice", pages, base.fields, lang, ambiguous=True)
    base = _invoice(rng, lang)  # an invoice written as a letter
    pages = ("Dear customer,\nthank you for your order.\n" + base.pages[0] + "\nKind regards,\nAccounts team",)
    return LabelledDoc("invoice", pages, base.fields, lang, ambiguous=True)


_MAKERS: dict[str, Callable[[random.Random, str], LabelledDoc]] = {
    "invoice": _invoice, "receipt": _receipt, "tax_notice": _tax_notice, "letter": _letter, "other": _other,
}


def make_document(label: str, rng: random.Random, ambiguous_share: float = 0.12) -> LabelledDoc:
    lang = rng.choices(LANGUAGES, weights=(0.55, 0.2, 0.15, 0.1))[0]
    if rng.random() < ambiguous_share:
        return _ambiguous(label, rng, lang)
    return _MAKERS[label](rng, lang)


def labels_for(n: int, rng: random.Random) -> list[str]:
    """``n`` labels in the corpus shares (every label at least once when ``n`` ≥ 5)."""
    counts = {label: int(n * share) for label, share in SHARES.items()}
    counts["other"] = n - sum(counts.values())
    out = [label for label, count in counts.items() for _ in range(count)]
    rng.shuffle(out)
    return out


def generate(
    out_dir: str | Path, n: int = 300, seed: int = 0, ambiguous_share: float = 0.12
) -> list[dict[str, Any]]:
    """Write ``n`` labelled PDFs under ``out_dir/<label>/`` and ``out_dir/truth.jsonl``;
    returns the truth rows."""
    root = Path(out_dir)
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for i, label in enumerate(labels_for(n, rng)):
        doc = make_document(label, rng, ambiguous_share)
        rel = f"{label}/{label}-{seed}-{i:04d}.pdf"
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(make_pdf(doc.pages))
        rows.append({"file": rel, "label": doc.label, "ambiguous": doc.ambiguous,
                     "language": doc.language, "fields": doc.fields})
    with (root / "truth.jsonl").open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return rows


def read_truth(out_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(out_dir) / "truth.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m docmill.testkit.labelled", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("-n", type=int, default=300, help="documents (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ambiguous", type=float, default=0.12, help="share of ambiguous documents")
    args = parser.parse_args(argv)
    rows = generate(args.out_dir, args.n, args.seed, args.ambiguous)
    print(f"{len(rows)} documents written to {args.out_dir} (truth.jsonl)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
