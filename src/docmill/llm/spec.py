"""The LLM task spec: providers, labels (with rules and field schemas), prices.

It lives in its own TOML file, named by the setting ``llm.spec``, because it is a
description of the work (labels, schemas) rather than a knob; relative file names in it
are read from the spec's folder::

    [provider]                       # the cheap model: classification
    name = "openai"
    base_url = "https://api.openai.com/v1"
    model = "gpt-4o-mini"
    api_key = { "$env" = "OPENAI_API_KEY" }

    [extract_provider]               # optional: a stronger model for fields
    model = "gpt-4o"                 # missing keys are taken from [provider]

    [prices]                         # optional: USD per million tokens
    "gpt-4o-mini" = { input = 0.15, output = 0.60 }

    [classifier]
    min_confidence = 0.8             # the local classifier decides alone at or above this
    model_file = "classifier.json"   # written by `docmill train-classifier`

    [labels.invoice]
    description = "A bill for goods or services that asks for payment"
    keywords = ["invoice", "amount due"]
    patterns = ['(?i)\\binvoice\\s+(no|number)\\b']
    schema_file = "invoice.schema.json"   # or an inline [labels.invoice.schema] table

Loading is pure apart from reading the files; every problem is a :class:`SpecError`
that names the file and the key.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docmill.settings import SettingsError


class SpecError(SettingsError):
    """The LLM spec file cannot be used as it is."""


@dataclass(frozen=True)
class ProviderSpec:
    """Where one model is reached (``api_key`` is a ``{"$env": NAME}`` reference)."""

    name: str
    base_url: str
    model: str
    api_key: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Label:
    name: str
    description: str = ""
    keywords: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    schema: Mapping[str, Any] | None = None  # JSON schema of the fields to extract

    def compiled(self) -> list[re.Pattern[str]]:
        return [re.compile(p) for p in self.patterns]


@dataclass(frozen=True)
class ClassifierSpec:
    min_confidence: float = 0.8
    model_file: Path | None = None  # absolute once loaded


@dataclass(frozen=True)
class LlmSpec:
    path: Path
    provider: ProviderSpec
    extract_provider: ProviderSpec
    labels: tuple[Label, ...]
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    classifier: ClassifierSpec = ClassifierSpec()

    def label(self, name: str) -> Label | None:
        return next((lb for lb in self.labels if lb.name == name), None)

    @property
    def label_names(self) -> list[str]:
        return [lb.name for lb in self.labels]


def _provider(where: str, data: Any, base: ProviderSpec | None) -> ProviderSpec:
    if not isinstance(data, dict):
        raise SpecError(f"{where}: expected a table")
    known = {"name", "base_url", "model", "api_key"}
    unknown = set(data) - known
    if unknown:
        raise SpecError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    merged: dict[str, Any] = (
        {"name": base.name, "base_url": base.base_url, "model": base.model, "api_key": base.api_key}
        if base
        else {"name": "provider", "api_key": None}
    )
    merged.update(data)
    for key in ("base_url", "model"):
        if not isinstance(merged.get(key), str) or not merged[key]:
            raise SpecError(f"{where}.{key}: a non-empty string is required")
    key_ref = merged.get("api_key")
    if key_ref is not None and (
        not isinstance(key_ref, dict) or set(key_ref) != {"$env"} or not isinstance(key_ref["$env"], str)
    ):
        raise SpecError(
            f'{where}.api_key: must be a reference {{"$env" = "NAME"}}, never the key itself'
        )
    return ProviderSpec(str(merged["name"]), merged["base_url"], merged["model"], key_ref)


def _strings(where: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"{where}: expected a list of strings")
    return tuple(value)


def _label(folder: Path, name: str, data: Any) -> Label:
    where = f"labels.{name}"
    if not isinstance(data, dict):
        raise SpecError(f"{where}: expected a table")
    schema = data.get("schema")
    if "schema_file" in data:
        schema_path = folder / str(data["schema_file"])
        try:
            schema = json.loads(schema_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise SpecError(f"{where}.schema_file: cannot read {schema_path}: {exc}") from None
    if schema is not None and (not isinstance(schema, dict) or schema.get("type") != "object"):
        raise SpecError(f"{where}.schema: a JSON schema of type object is required")
    patterns = _strings(f"{where}.patterns", data.get("patterns"))
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise SpecError(f"{where}.patterns: {pattern!r} is not a regular expression: {exc}") from None
    return Label(
        name=name,
        description=str(data.get("description", "")),
        keywords=_strings(f"{where}.keywords", data.get("keywords")),
        patterns=patterns,
        schema=schema,
    )


def parse_spec(data: Mapping[str, Any], path: Path) -> LlmSpec:
    """The spec from its parsed TOML (``path`` locates relative files)."""
    folder = path.parent
    known = {"provider", "extract_provider", "prices", "classifier", "labels"}
    unknown = set(data) - known
    if unknown:
        raise SpecError(f"{path}: unknown sections {sorted(unknown)}; known: {sorted(known)}")
    if "provider" not in data:
        raise SpecError(f"{path}: a [provider] table is required")
    provider = _provider("provider", data["provider"], None)
    extract = _provider("extract_provider", data.get("extract_provider", {}), provider)
    labels_data = data.get("labels") or {}
    if not isinstance(labels_data, dict) or not labels_data:
        raise SpecError(f"{path}: at least one [labels.NAME] table is required")
    labels = tuple(_label(folder, name, value) for name, value in labels_data.items())
    prices: dict[str, dict[str, float]] = {}
    for model, price in (data.get("prices") or {}).items():
        if not isinstance(price, dict) or not {"input", "output"} <= set(price):
            raise SpecError(f"prices.{model}: expected {{input = USD, output = USD}} per million")
        prices[model] = {"input": float(price["input"]), "output": float(price["output"])}
    cls = data.get("classifier") or {}
    model_file = cls.get("model_file")
    classifier = ClassifierSpec(
        min_confidence=float(cls.get("min_confidence", 0.8)),
        model_file=(folder / str(model_file)).resolve() if model_file else None,
    )
    return LlmSpec(path.resolve(), provider, extract, labels, prices, classifier)


def load_spec(path: str | Path) -> LlmSpec:
    spec_path = Path(path)
    try:
        data = tomllib.loads(spec_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"LLM spec not found: {spec_path} (setting llm.spec)") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(f"cannot read LLM spec {spec_path}: {exc}") from None
    return parse_spec(data, spec_path)
