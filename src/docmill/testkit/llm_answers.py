"""Deterministic answers for the LLM simulator: the same prompt always gets the same answer.

The rules, so that tests can predict results:

* **Prompt text** is every message's content joined with newlines (a content given as a
  list of parts contributes its ``{"type": "text"}`` parts).
* **Document text** is what lies between ``<document>`` and ``</document>`` if the prompt
  has those tags; else everything after the first line that starts with ``Document:``
  or ``Text:``; else the last user message.
* **Labels** come from the enum of the schema property being filled, or from the prompt:
  a line ``Labels: a, b, c`` (also ``Categories:`` / ``Classes:``), or a ``Labels:`` line
  followed by bullet lines ``- name: keyword, keyword``. **Classification** scores each
  label by how often its name (``_`` and ``-`` read as spaces) and each of its keywords
  occur in the document text as whole words, case-insensitively; the highest score wins,
  a tie goes to the label listed first, and when nothing scores the label ``other``
  (or ``unknown``) wins if listed, else the first one.
* **Extraction** reads ``key: value`` lines of the document text (``key`` of at most six
  words). A schema property matches a key whose words equal the property name's words
  (``invoice_number`` ~ ``Invoice number``) or its ``title``; failing that, a key whose
  words contain the property's words or are contained in them (``total`` ~ ``Total
  amount``). The first matching line wins. Values are converted to the property's type:
  numbers take the first number in the value (``1,234.56 EUR`` → 1234.56, ``12,50`` →
  12.5), booleans read yes/true/1 and no/false/0, arrays split on ``,`` ``;`` ``|``, a
  string with an enum takes the enum value the value names, else the classification rule.
  Nested objects are filled from the same text.
* **Missing values** are ``null`` when the schema allows null (``type`` lists ``"null"``
  or an ``anyOf``/``oneOf`` branch is null), else the schema's ``default``, else a typed
  default: ``""``, ``0``, ``false``, ``[]``, an enum's first value, an object filled the
  same way. ``$ref`` to ``#/$defs/...`` or ``#/definitions/...`` is followed; length and
  range constraints are not enforced.
* **Tokens** are estimated as ``ceil(len(text) / 4)`` (at least 1 for a non-empty text);
  the prompt count includes the JSON schema's text when one is sent.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

_LABEL_HEADER: Final = re.compile(r"^\s*(?:labels|categories|classes)\s*:\s*(.*)$", re.I)
_BULLET: Final = re.compile(r"^\s*[-*•]\s*([^:\n]+?)\s*(?::\s*(.*))?$")
_KEY_VALUE: Final = re.compile(r"^\s*([A-Za-z][\w .#/()-]{0,60}?)\s*[:=]\s*(.+?)\s*$")
_DOC_START: Final = re.compile(r"^\s*(?:document|text)\s*:\s*", re.I | re.M)
_NUMBER: Final = re.compile(r"[-+]?\d[\d,. ']*")
_WORD: Final = re.compile(r"[a-z0-9]+")
_FALLBACK_LABELS: Final = ("other", "unknown")


def estimate_tokens(text: str) -> int:
    """``ceil(len(text) / 4)``, at least 1 for a non-empty text."""
    return math.ceil(len(text) / 4) if text else 0


def message_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """All messages' text joined with newlines."""
    return "\n".join(_content_text(m.get("content")) for m in messages)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, Mapping) and p.get("type") == "text"
        )
    return ""


def document_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The document part of the prompt (see the module docstring)."""
    text = message_text(messages)
    start = text.find("<document>")
    if start >= 0:
        end = text.find("</document>", start)
        return text[start + len("<document>") : end if end >= 0 else len(text)]
    found = _DOC_START.search(text)
    if found:
        return text[found.end() :]
    users = [m for m in messages if m.get("role") == "user"]
    return _content_text(users[-1].get("content")) if users else text


@dataclass(frozen=True)
class Label:
    """A label and its extra keywords."""

    name: str
    keywords: tuple[str, ...] = ()


def prompt_labels(text: str) -> list[Label]:
    """Labels listed in the prompt: ``Labels: a, b`` or a ``Labels:`` line and bullets."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        header = _LABEL_HEADER.match(line)
        if not header:
            continue
        inline = header.group(1).strip()
        if inline:
            return [Label(n.strip()) for n in re.split(r"[,;|]", inline) if n.strip()]
        labels: list[Label] = []
        for bullet_line in lines[i + 1 :]:
            bullet = _BULLET.match(bullet_line)
            if not bullet:
                if labels or bullet_line.strip():
                    break
                continue
            words = bullet.group(2) or ""
            keywords = tuple(k.strip() for k in re.split(r"[,;|]", words) if k.strip())
            labels.append(Label(bullet.group(1).strip(), keywords))
        return labels
    return []


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("_", " "))


def _count(phrase: str, haystack: list[str]) -> int:
    needle = _words(phrase)
    if not needle:
        return 0
    n = len(needle)
    return sum(1 for i in range(len(haystack) - n + 1) if haystack[i : i + n] == needle)


def classify(labels: Sequence[Label], text: str) -> str | None:
    """The label whose name and keywords occur most often in ``text`` (see the rules)."""
    if not labels:
        return None
    words = _words(text)
    scores = [
        _count(label.name, words) + sum(_count(k, words) for k in label.keywords)
        for label in labels
    ]
    best = max(scores)
    if best == 0:
        for label in labels:
            if label.name.lower() in _FALLBACK_LABELS:
                return label.name
        return labels[0].name
    return labels[scores.index(best)].name


def key_values(text: str) -> list[tuple[list[str], str]]:
    """``(key words, value)`` for every ``key: value`` line, in order."""
    out = []
    for line in text.splitlines():
        found = _KEY_VALUE.match(line)
        if found:
            key = _words(found.group(1))
            if 0 < len(key) <= 6:
                out.append((key, found.group(2)))
    return out


def parse_number(value: str, integer: bool = False) -> float | int | None:
    """The first number in ``value``; ``1,234.56`` and ``1.234,56`` are both understood."""
    found = _NUMBER.search(value)
    if not found:
        return None
    raw = found.group(0).strip().replace(" ", "").replace("'", "").rstrip(".,")
    if "," in raw and "." in raw:
        if raw.rfind(",") > raw.rfind("."):
            raw = raw.replace(".", "").replace(",", ".")
        else:
            raw = raw.replace(",", "")
    elif "," in raw:
        head, _, tail = raw.rpartition(",")
        raw = (
            raw.replace(",", "")
            if len(tail) == 3 and raw.count(",") >= 1
            else head.replace(",", "") + "." + tail
        )
    try:
        number = float(raw)
    except ValueError:
        return None
    if integer:
        return int(number)
    return number


class SchemaFiller:
    """Fills a JSON schema from a document's ``key: value`` lines (see the module docstring)."""

    def __init__(self, schema: Mapping[str, Any], document: str, labels: Sequence[Label]):
        self._root = schema
        self._document = document
        self._pairs = key_values(document)
        self._labels = {label.name: label for label in labels}

    def fill(self) -> Any:
        return self._value(self._root, None, None, depth=0)

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        ref = schema.get("$ref")
        seen = 0
        while isinstance(ref, str) and seen < 32:
            target: Any = self._root
            for part in ref.lstrip("#/").split("/"):
                target = target.get(part, {}) if isinstance(target, Mapping) else {}
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            ref = target.get("$ref") if isinstance(target, Mapping) else None
            seen += 1
        return schema

    def _branches(self, schema: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool]:
        """The first non-null alternative and whether null is allowed."""
        schema = self._resolve(schema)
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                resolved = [self._resolve(o) for o in options if isinstance(o, Mapping)]
                nullable = any(o.get("type") == "null" for o in resolved)
                rest = [o for o in resolved if o.get("type") != "null"]
                base = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
                chosen = {**base, **rest[0]} if rest else {**base, "type": "null"}
                inner, inner_null = self._branches(chosen)
                return inner, nullable or inner_null
        kind = schema.get("type")
        if isinstance(kind, list):
            nullable = "null" in kind
            rest = [t for t in kind if t != "null"]
            return {**schema, "type": rest[0] if rest else "null"}, nullable
        return schema, kind == "null"

    def _find(self, name: str | None, title: str | None) -> str | None:
        wanted = [w for w in (_words(name or ""), _words(title or "")) if w]
        for key, value in self._pairs:
            if key in wanted:
                return value
        for key, value in self._pairs:
            for words in wanted:
                shorter, longer = sorted((key, words), key=len)
                if set(shorter) <= set(longer):
                    return value
        return None

    def _value(
        self, schema: Mapping[str, Any], name: str | None, raw: str | None, depth: int
    ) -> Any:
        schema, nullable = self._branches(schema)
        if "const" in schema:
            return schema["const"]
        kind = schema.get("type")
        if kind is None:
            kind = "object" if "properties" in schema else ("string" if "enum" in schema else None)
        if kind == "object" or (kind is None and name is None):
            if depth > 8:
                return None if nullable else {}
            props = schema.get("properties")
            if not isinstance(props, Mapping):
                return {} if not nullable or name is None else None
            return {
                key: self._value(
                    sub,
                    key,
                    self._find(key, self._resolve(sub).get("title")),
                    depth + 1,
                )
                for key, sub in props.items()
                if isinstance(sub, Mapping)
            }
        converted = self._convert(schema, kind, name, raw, depth)
        if converted is not None:
            return converted
        if nullable:
            return None
        if "default" in schema:
            return schema["default"]
        return self._typed_default(schema, kind)

    def _convert(
        self, schema: Mapping[str, Any], kind: Any, name: str | None, raw: str | None, depth: int
    ) -> Any:
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return self._enum_value(enum, name, raw)
        if raw is None:
            return None
        if kind == "string":
            return raw
        if kind in ("number", "integer"):
            return parse_number(raw, integer=kind == "integer")
        if kind == "boolean":
            word = raw.strip().lower()
            if word in ("yes", "true", "1", "y", "ja", "oui"):
                return True
            if word in ("no", "false", "0", "n", "nein", "non"):
                return False
            return None
        if kind == "array":
            items = schema.get("items")
            item_schema: Mapping[str, Any] = items if isinstance(items, Mapping) else {}
            parts = [p.strip() for p in re.split(r"[,;|]", raw) if p.strip()]
            values = [self._value(item_schema, None, p, depth + 1) for p in parts]
            return [v for v in values if v is not None]
        return None

    def _enum_value(self, enum: list[Any], name: str | None, raw: str | None) -> Any:
        if raw is not None:
            for option in enum:
                if str(option).strip().lower() == raw.strip().lower():
                    return option
            labels = [self._labels.get(str(o), Label(str(o))) for o in enum]
            named = [label for label in labels if _count(label.name, _words(raw))]
            if named:
                return enum[labels.index(named[0])]
        labels = [self._labels.get(str(o), Label(str(o))) for o in enum]
        chosen = classify(labels, self._document)
        return enum[[label.name for label in labels].index(chosen)] if chosen else enum[0]

    def _typed_default(self, schema: Mapping[str, Any], kind: Any) -> Any:
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[0]
        return {
            "string": "",
            "number": 0,
            "integer": 0,
            "boolean": False,
            "array": [],
            "object": {},
        }.get(kind if isinstance(kind, str) else "")


@dataclass(frozen=True)
class Answer:
    """The simulator's content for one request, and its token counts."""

    content: str
    prompt_tokens: int
    completion_tokens: int
    is_json: bool


def answer(
    messages: Sequence[Mapping[str, Any]], response_format: Mapping[str, Any] | None
) -> Answer:
    """The deterministic answer to a chat request."""
    prompt = message_text(messages)
    document = document_text(messages)
    labels = prompt_labels(prompt)
    kind = (response_format or {}).get("type")
    schema_text = ""
    if kind == "json_schema":
        spec = (response_format or {}).get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        schema = schema if isinstance(schema, Mapping) else {"type": "object"}
        schema_text = json.dumps(schema, sort_keys=True)
        content = json.dumps(SchemaFiller(schema, document, labels).fill(), ensure_ascii=False)
    elif kind == "json_object":
        found: dict[str, str] = {}
        for key, value in key_values(document):
            found.setdefault("_".join(key), value)
        if labels:
            found.setdefault("label", classify(labels, document) or "")
        content = json.dumps(found, ensure_ascii=False)
    else:
        label = classify(labels, document)
        content = label if label is not None else " ".join(document.split()[:40])
    return Answer(
        content=content,
        prompt_tokens=estimate_tokens(prompt + schema_text),
        completion_tokens=estimate_tokens(content),
        is_json=kind in ("json_schema", "json_object"),
    )


def corrupt_json(content: str, variant: int) -> str:
    """Deliberately invalid JSON, three kinds: fenced with prose, truncated, single-quoted."""
    choice = variant % 3
    if choice == 0:
        return f"Here is the result:\n```json\n{content}\n```"
    if choice == 1:
        return content[: max(1, len(content) // 2)]
    return content.replace('"', "'") + ","
