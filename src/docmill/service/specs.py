"""The LLM task specs the operator publishes (``service.llm_specs``), and what a key sees
of them.

A spec file (``docmill.llm.spec``) holds the providers, their endpoints and references
to their API keys (``{"$env" = NAME}``, read on the server); a job names a published
spec by its name only (``POST /v1/jobs`` ``"spec"``), so a client never sends, reads or
changes a provider, an endpoint or a key. ``GET /v1/specs`` lists those the caller's
tier may use (:meth:`~docmill.service.tiers.Tier.may_use`) as :func:`spec_view` draws
them: labels with their description and fields (name, type, required), the models of
each role and their prices; never the provider's name, endpoint or key reference.

Every spec is loaded once when the service starts, so a broken one stops ``docmill
serve`` with its error; a job's run reads the file again (its path resolved here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docmill.llm.cost import PriceTable, UnknownModelError
from docmill.llm.spec import LlmSpec, SpecError, load_spec
from docmill.settings import Settings, SettingsError


@dataclass(frozen=True, slots=True)
class PublishedSpec:
    name: str
    path: str  # absolute: what the job's run gets as llm.spec
    spec: LlmSpec


def load_published(settings: Settings) -> dict[str, PublishedSpec]:
    """Every spec of ``service.llm_specs``, loaded (relative paths from the working
    directory); a spec that cannot be used is a :class:`SettingsError` naming it."""
    out: dict[str, PublishedSpec] = {}
    for name, raw in settings.service.llm_specs:
        path = Path(raw).expanduser().resolve()
        try:
            spec = load_spec(path)
        except SpecError as exc:
            raise SettingsError(f"service.llm_specs.{name}: {exc}") from None
        out[name] = PublishedSpec(name, str(path), spec)
    return out


def spec_path(settings: Settings, name: str) -> str | None:
    """The absolute path of published spec ``name`` as configured now (None: no longer
    published)."""
    for found, raw in settings.service.llm_specs:
        if found == name:
            return str(Path(raw).expanduser().resolve())
    return None


def _fields(schema: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not schema:
        return []
    required = set(schema.get("required") or ())
    out = []
    for field_name, prop in (schema.get("properties") or {}).items():
        prop = prop if isinstance(prop, Mapping) else {}
        kind = prop.get("type")
        entry: dict[str, Any] = {
            "name": field_name,
            "type": kind if isinstance(kind, str | list) else None,
            "required": field_name in required,
        }
        if isinstance(prop.get("description"), str):
            entry["description"] = prop["description"]
        out.append(entry)
    return out


def spec_view(published: PublishedSpec) -> dict[str, Any]:
    """What a key sees of a spec: labels and their fields, models and prices (USD per
    million tokens, the spec's own or the built-in table's); no provider, endpoint or key."""
    spec = published.spec
    prices = PriceTable(spec.prices)
    models = {"classify": spec.provider.model, "extract": spec.extract_provider.model}
    price_list: dict[str, dict[str, float] | None] = {}
    for model in dict.fromkeys(models.values()):
        try:
            price = prices.price(model)
        except UnknownModelError:  # no price: the run refuses the model, the list says so
            price_list[model] = None
            continue
        price_list[model] = {"input": price.input_per_mtok, "output": price.output_per_mtok}
    return {
        "name": published.name,
        "labels": [
            {"name": lb.name, "description": lb.description, "fields": _fields(lb.schema)}
            for lb in spec.labels
        ],
        "models": models,
        "prices_usd_per_million_tokens": price_list,
    }
