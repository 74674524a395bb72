"""``[[deliver]]`` tables: where a run's results go besides ``DIR/records`` (pure).

Three kinds, as scrapy splits an exporter (what is sent) from a storage (where)::

    [[deliver]]                      # the part files, copied as each part is closed
    name = "parts"
    kind = "records"
    to = "s3://acme-out/records/"    # a bucket prefix, or a local folder

    [[deliver]]                      # each source document, after its record is in a part
    name = "archive"
    kind = "files"
    to = "s3://archive/{class.label}/{date:%Y/%m}/{name}"
    mode = "copy"                    # or "move": the source is removed once the copy is in place

    [[deliver]]                      # each record (or a batch of them) POSTed as JSON
    name = "hook"
    kind = "webhook"
    to = "https://hooks.example.com/docmill"
    token = { "$env" = "HOOK_TOKEN" }     # Authorization: Bearer <the variable's value>
    headers = { "X-Team" = "ops", "X-Api-Key" = { "$env" = "HOOK_KEY" } }
    batch = 1
    requests_per_s = 5

A ``files`` destination is a template: the fields in :data:`TEMPLATE_FIELDS` (``{name}``,
``{date:%Y/%m}``, ``{sha256:12}``, ``{fields.vendor}`` …); an unknown field, a conversion
or a nested field is refused here, when the settings are loaded. Rendering replaces a
``/`` inside a value (a label, a field) so that a value never adds folders, and refuses a
result with an empty, ``.`` or ``..`` segment: a key never leaves its destination.

Secrets go by reference only, ``{"$env" = "NAME"}``, resolved when the delivery starts
(:meth:`SecretRef.resolve`); a header that carries credentials (``Authorization``,
``Cookie``, a name with ``key``, ``token``, ``secret`` …) must be one.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from docmill.settings.errors import SettingsError

KINDS = ("records", "files", "webhook")
MODES = ("copy", "move")
CONTENTS = ("full", "summary")
STATUSES = ("done", "failed", "skipped")

# field -> what it gives (the README and ARCHITECTURE list the same)
TEMPLATE_FIELDS: Mapping[str, str] = {
    "name": "the source's file name (invoice-7.pdf)",
    "stem": "the name without its last extension (invoice-7)",
    "ext": "the last extension, lower case, without the dot (pdf; empty when none)",
    "relpath": "the path below its SOURCE folder or URL prefix (2024/03/invoice-7.pdf)",
    "reldir": "the folders of relpath (2024/03; empty at the top)",
    "id": "the document's id in the ledger",
    "status": "done, failed or skipped",
    "error.category": "the failure category (none when done)",
    "class.label": "the LLM stage's label (unlabelled when there is none)",
    "fields.NAME": "an extracted field (unknown when missing)",
    "sha256": "the content's sha256; {sha256:N}: its first N hex digits",
    "date": "the source's modification time, UTC; {date:FORMAT} with strftime's codes "
    "(default %Y-%m-%d)",
    "processed": "when its record was committed, UTC; {processed:FORMAT} as for date",
}
DATE_FIELDS = ("date", "processed")
PATH_FIELDS = ("relpath", "reldir")  # values that may hold "/" (each segment checked)
DEFAULT_DATE = "%Y-%m-%d"
MISSING = {"class.label": "unlabelled", "error.category": "none"}
MISSING_FIELD = "unknown"

# header names whose value is a credential: only by reference
_SECRET_HEADER = re.compile(r"(authorization|cookie|key|token|secret|password|signature|auth)", re.I)
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_UNSAFE_SEGMENT = re.compile(r"[\x00-\x1f\x7f/\\]")
_UNSAFE_PATH = re.compile(r"[\x00-\x1f\x7f\\]")
ENV_REF = "$env"


class TemplateError(ValueError):
    """A rendered destination that would leave its root (a ``..``, an empty segment)."""


@dataclass(frozen=True, slots=True)
class SecretRef:
    """``{"$env" = "NAME"}``: a value read from the environment when it is needed."""

    env: str

    def resolve(self, env: Mapping[str, str], where: str) -> str:
        value = env.get(self.env)
        if not value:
            raise SettingsError(
                f"{where}: refers to environment variable {self.env}, which is not set (or empty)"
            )
        return value

    def to_dict(self) -> dict[str, str]:
        return {ENV_REF: self.env}


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed ``files`` destination: ``root`` (everything before the first field's
    folder: a local folder or ``scheme://netloc/prefix/``) and ``parts`` below it,
    literal text and fields in turn."""

    root: str
    parts: tuple[tuple[str, str | None, str], ...]  # (literal, field or None, format spec)

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(f for _lit, f, _spec in self.parts if f is not None)

    def render(self, values: Mapping[str, Any]) -> str:
        """The key below ``root`` for one document. ``values`` holds every field of
        :attr:`fields` (dates as aware datetimes, None when missing). Raises
        :class:`TemplateError` for a key that is empty or has a ``.``/``..`` segment."""
        out: list[str] = []
        empty = False  # the last field gave "": its folder is left out ({reldir}/ at the top)
        for literal, name, spec in self.parts:
            text = "".join(out)
            if empty and literal.startswith("/") and (not text or text.endswith("/")):
                literal = literal[1:]
            out.append(literal)
            if name is not None:
                value = _render_field(name, spec, values.get(name))
                empty = value == ""
                out.append(value)
        key = "".join(out)
        check_key(key)
        return key


def check_key(key: str) -> None:
    """A key below a destination's root: relative, no empty, ``.`` or ``..`` segment."""
    if not key or key.startswith("/"):
        raise TemplateError(f"the destination {key!r} is empty or absolute")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise TemplateError(f"the destination {key!r} has an empty, '.' or '..' folder")


def _segment(value: str) -> str:
    """A value as one path segment: no separators or control characters; "." and ".."
    are not names."""
    text = _UNSAFE_SEGMENT.sub("_", value).strip()
    return "_" if text in ("", ".", "..") else text


def _render_field(name: str, spec: str, value: Any) -> str:
    if name in DATE_FIELDS:
        when = value if isinstance(value, datetime) else datetime.fromtimestamp(0, UTC)
        return when.strftime(spec or DEFAULT_DATE)
    if name == "sha256":
        digest = str(value or "none")
        return digest[: int(spec)] if spec else digest
    if name in PATH_FIELDS:  # folders kept; a ".." or an empty one is refused by check_key
        return _UNSAFE_PATH.sub("_", str(value or ""))
    if name == "ext" and value == "":
        return ""  # a name without an extension
    if value is None or value == "":
        return MISSING.get(name, MISSING_FIELD)
    return _segment(str(value))


def parse_template(to: str, where: str) -> Template:
    """Split ``to`` into its root and its fields, refusing what cannot be rendered."""
    cut = to.find("{")
    while cut >= 0 and to.startswith("{{", cut):  # a literal brace is no field
        cut = to.find("{", cut + 2)
    if cut < 0:  # a folder or prefix alone: the document's path below its SOURCE
        root = to if to.endswith("/") else to + "/"
        return parse_template(root + "{relpath}", where)
    if to.endswith("/"):  # folders of fields: the document's path below them
        to += "{relpath}"
    slash = to.rfind("/", 0, cut)
    root, rest = to[: slash + 1], to[slash + 1 :]
    if not root or root.endswith("://") or "{" in root:
        raise SettingsError(f"{where}: the destination {to!r} needs a folder before its first field")
    parts: list[tuple[str, str | None, str]] = []
    try:
        parsed = list(string.Formatter().parse(rest))
    except ValueError as exc:
        raise SettingsError(f"{where}: {to!r}: {exc}") from None
    for literal, name, spec, conversion in parsed:
        if name is None:
            parts.append((literal, None, ""))
            continue
        if conversion:
            raise SettingsError(f"{where}: {{{name}!{conversion}}}: conversions are not supported")
        if "{" in (spec or ""):
            raise SettingsError(f"{where}: {{{name}:{spec}}}: nested fields are not supported")
        _check_field(name, spec or "", where)
        parts.append((literal, name, spec or ""))
    if not any(n for _l, n, _s in parts):
        raise SettingsError(f"{where}: {to!r} has no field")
    return Template(root, tuple(parts))


def _check_field(name: str, spec: str, where: str) -> None:
    known = ", ".join(f"{{{f}}}" for f in TEMPLATE_FIELDS)
    if name.startswith("fields."):
        if not _NAME.fullmatch(name[len("fields.") :]):
            raise SettingsError(f"{where}: {{{name}}}: a field name is letters, digits, _ and -")
    elif name not in TEMPLATE_FIELDS:
        raise SettingsError(f"{where}: unknown template field {{{name}}}; known: {known}")
    if name in DATE_FIELDS:
        if spec:
            try:
                datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).strftime(spec)
            except ValueError as exc:
                raise SettingsError(f"{where}: {{{name}:{spec}}}: {exc}") from None
        return
    if name == "sha256":
        if spec and not (spec.isdigit() and 1 <= int(spec) <= 64):
            raise SettingsError(f"{where}: {{sha256:{spec}}}: the prefix is 1 to 64 hex digits")
        return
    if spec:
        raise SettingsError(f"{where}: {{{name}:{spec}}}: only date, processed and sha256 take a format")


@dataclass(frozen=True)
class DeliverySpec:
    """One ``[[deliver]]`` table (see the module docstring and the README)."""

    name: str
    kind: str
    to: str
    mode: str = "copy"  # files: copy | move
    statuses: tuple[str, ...] = ()  # which records (empty: files done only; webhook all)
    batch: int = 1  # webhook: records per POST
    content: str = "full"  # webhook: full records, or summary (no text, tables, Markdown)
    token: SecretRef | None = None  # webhook: Authorization: Bearer <value>
    headers: tuple[tuple[str, str | SecretRef], ...] = ()  # webhook: more headers
    timeout_s: float = 30.0  # per request
    retries: int = 5  # tries per item on 429, 5xx, timeouts and dropped connections
    requests_per_s: float = 0.0  # per delivery (0: no limit)
    threads: int = 4  # items delivered at once
    breaker: int = 10  # failed items in a row that stop this delivery for the run

    @property
    def template(self) -> Template:
        return parse_template(self.to, f"deliver {self.name}")

    @property
    def delivered_statuses(self) -> tuple[str, ...]:
        if self.statuses:
            return self.statuses
        return ("done",) if self.kind == "files" else STATUSES

    def to_dict(self) -> dict[str, Any]:
        """The table as it would be written (references, never secrets): the keys of
        its kind only, so :func:`parse_delivery` reads it back."""
        data: dict[str, Any] = {
            "name": self.name, "kind": self.kind, "to": self.to, "mode": self.mode,
            "statuses": list(self.statuses), "batch": self.batch, "content": self.content,
            "token": self.token.to_dict() if self.token else None,
            "headers": {k: v.to_dict() if isinstance(v, SecretRef) else v for k, v in self.headers},
            "timeout_s": self.timeout_s, "retries": self.retries,
            "requests_per_s": self.requests_per_s, "threads": self.threads,
            "breaker": self.breaker,
        }
        return {
            k: v for k, v in data.items()
            if (DELIVERY_KEYS[k] is None or self.kind in (DELIVERY_KEYS[k] or ()))
            and not (k == "token" and v is None)
        }


# key -> (kinds it applies to, or None for all)
DELIVERY_KEYS: Mapping[str, tuple[str, ...] | None] = {
    "name": None, "kind": None, "to": None, "mode": ("files",), "statuses": ("files", "webhook"),
    "batch": ("webhook",), "content": ("webhook",), "token": ("webhook",),
    "headers": ("webhook",), "timeout_s": None, "retries": None, "requests_per_s": None,
    "threads": None, "breaker": None,
}


def _ref(value: Any, where: str) -> SecretRef:
    if isinstance(value, SecretRef):
        return value
    if (
        not isinstance(value, Mapping) or set(value) != {ENV_REF}
        or not isinstance(value[ENV_REF], str) or not value[ENV_REF]
    ):
        raise SettingsError(f'{where}: must be a reference {{"$env" = "NAME"}}, never the secret itself')
    return SecretRef(value[ENV_REF])


def _number(value: Any, where: str, kind: type, minimum: float) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SettingsError(f"{where}: expected a number, got {value!r}")
    if kind is int and not isinstance(value, int):
        raise SettingsError(f"{where}: expected an integer, got {value!r}")
    if not value >= minimum:
        raise SettingsError(f"{where}: must be >= {minimum:g}, got {value!r}")
    return kind(value)


def parse_delivery(data: Any, where: str, name: str | None = None) -> DeliverySpec:
    """One delivery from its table (``name`` given: the table's key names it)."""
    if isinstance(data, DeliverySpec):
        return data
    if not isinstance(data, Mapping):
        raise SettingsError(f"{where}: expected a table")
    data = dict(data)
    if name is not None:
        data.setdefault("name", name)
        if data["name"] != name:
            raise SettingsError(f"{where}: name {data['name']!r} differs from its key {name!r}")
    unknown = sorted(set(data) - set(DELIVERY_KEYS))
    if unknown:
        raise SettingsError(f"{where}: unknown keys {unknown}; known: {', '.join(DELIVERY_KEYS)}")
    kind = data.get("kind")
    if kind not in KINDS:
        raise SettingsError(f"{where}.kind: {kind!r} is not one of {', '.join(KINDS)}")
    for key in data:
        kinds = DELIVERY_KEYS[key]
        if kinds is not None and kind not in kinds:
            raise SettingsError(f"{where}.{key}: only for kind {' or '.join(kinds)}")
    label = data.get("name", kind)
    if not isinstance(label, str) or not _NAME.fullmatch(label):
        raise SettingsError(f"{where}.name: letters, digits, _ and - (at most 64), got {label!r}")
    where = f"deliver {label}"
    to = data.get("to")
    if not isinstance(to, str) or not to.strip():
        raise SettingsError(f"{where}.to: a destination is required (a folder, a URL)")
    to = to.strip()
    if kind == "webhook" and not to.startswith(("http://", "https://")):
        raise SettingsError(f"{where}.to: a webhook is an http:// or https:// URL")
    if kind == "records" and "{" in to:
        raise SettingsError(f"{where}.to: records go to a folder or prefix, without fields")
    if kind == "files":
        parse_template(to, where)  # refuses unknown fields now, at load
    spec: dict[str, Any] = {"name": label, "kind": kind, "to": to}
    for key, choices in (("mode", MODES), ("content", CONTENTS)):
        if key in data:
            if data[key] not in choices:
                raise SettingsError(f"{where}.{key}: {data[key]!r} is not one of {', '.join(choices)}")
            spec[key] = data[key]
    if "statuses" in data:
        value = data["statuses"]
        if not isinstance(value, list | tuple) or not all(
            isinstance(s, str) and s in STATUSES for s in value
        ):
            raise SettingsError(f"{where}.statuses: a list of {', '.join(STATUSES)}")
        spec["statuses"] = tuple(dict.fromkeys(value))
    for key, kind_, minimum in (
        ("batch", int, 1), ("timeout_s", float, 0.001), ("retries", int, 1),
        ("requests_per_s", float, 0), ("threads", int, 1), ("breaker", int, 1),
    ):
        if key in data:
            spec[key] = _number(data[key], f"{where}.{key}", kind_, minimum)
    if "token" in data:
        spec["token"] = _ref(data["token"], f"{where}.token")
    if "headers" in data:
        headers = data["headers"]
        if isinstance(headers, tuple):  # already parsed (a spec's own)
            headers = dict(headers)
        if not isinstance(headers, Mapping):
            raise SettingsError(f"{where}.headers: expected a table of header = value")
        parsed: list[tuple[str, str | SecretRef]] = []
        for header, value in headers.items():
            if not isinstance(header, str) or not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", header):
                raise SettingsError(f"{where}.headers: {header!r} is not a header name")
            if isinstance(value, str) and not _SECRET_HEADER.search(header):
                if "\n" in value or "\r" in value:
                    raise SettingsError(f"{where}.headers.{header}: a value is one line")
                parsed.append((header, value))
            else:
                parsed.append((header, _ref(value, f"{where}.headers.{header}")))
        spec["headers"] = tuple(parsed)
    return DeliverySpec(**spec)


def _loaded(raw: Any, where: str) -> Any:
    if isinstance(raw, str | bytes):
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise SettingsError(f"{where}: expected JSON: {exc}") from None
    return raw


def parse_deliveries(raw: Any, where: str = "deliver") -> tuple[DeliverySpec, ...]:
    """``[[deliver]]`` tables (a list of tables, or its JSON text), names unique."""
    raw = _loaded(raw, where)
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list | tuple):
        raise SettingsError(f"{where}: expected [[deliver]] tables")
    specs = tuple(parse_delivery(item, f"{where}[{i}]") for i, item in enumerate(raw))
    _unique(specs, where)
    return specs


def parse_allowed(raw: Any, where: str = "service.allowed_deliveries") -> tuple[DeliverySpec, ...]:
    """``service.allowed_deliveries``: a table of named deliveries (or its JSON text)."""
    raw = _loaded(raw, where)
    if isinstance(raw, list | tuple) and all(isinstance(s, DeliverySpec) for s in raw):
        specs = tuple(raw)
    elif isinstance(raw, Mapping):
        specs = tuple(parse_delivery(v, f"{where}.{k}", str(k)) for k, v in raw.items())
    else:
        raise SettingsError(f"{where}: expected a table {{name = {{kind = ..., to = ...}}}}")
    _unique(specs, where)
    return specs


def _unique(specs: tuple[DeliverySpec, ...], where: str) -> None:
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise SettingsError(f"{where}: two deliveries are named {spec.name!r}")
        seen.add(spec.name)
