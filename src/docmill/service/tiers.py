"""Tiers: how many requests a key may make, and how much work one request may ask for.

Every ``/v1`` request of a key counts against its tier's ``all`` limit and against the
limit of the request's group (``extract``: ``POST /v1/extract``; ``jobs_create``:
``POST /v1/jobs`` and ``POST /v1/estimates``; ``other``: every other ``/v1`` route). A limit is a number of
requests per the tier's ``window_s``; 0 means no limit.

The maxima bound the per-request settings of a job or an extract (``service/overrides.py``):
``max_timeout_s`` (``run.timeout_s``), ``max_memory_mb`` (``run.memory_mb``),
``max_workers`` (``run.workers``), ``max_pages`` (pages read a document:
``extract.max_pages``, an extract's ``pages``) and ``ocr`` (may ``extract.ocr`` be
other than ``never``). A maximum of 0 is the server's own setting (never "unbounded").

The LLM: ``llm_specs`` names the task specs (``service.llm_specs``) its keys may run
(``"*"``: every one the server publishes; none: no LLM job), and
``monthly_budget_usd`` caps what a key of the tier spends on LLM calls in a calendar
month (UTC), over all its jobs (0: no monthly limit; a key may have its own,
``docmill keys create --monthly-budget-usd``). Built-in: ``free`` none; ``pro`` every
spec, 100 USD a month; ``enterprise`` every spec, 1,000 USD; ``unlimited`` every spec,
no monthly limit.

``service.tiers_file`` (TOML) changes built-in tiers and adds new ones::

    [tiers.pro]            # a built-in: only the named values change
    extract = 200
    max_timeout_s = 300

    [tiers.tiny]           # a new tier: starts from `base` (default: no request limits,
    base = "free"          # the server's settings as maxima, OCR allowed, no LLM spec)
    window_s = 10
    all = 5
    ocr = false
    llm_specs = ["invoices"]
    monthly_budget_usd = 20
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from docmill.settings import SettingsError

GROUPS = ("all", "extract", "jobs_create", "other")


@dataclass(frozen=True, slots=True)
class Limit:
    """``requests`` per ``window_s`` seconds (a burst of ``requests`` is allowed)."""

    requests: int
    window_s: float


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    window_s: float = 60.0
    all: int = 0
    extract: int = 0
    jobs_create: int = 0
    other: int = 0
    # what one request may ask for (0: the server's own setting; see service/overrides.py)
    max_timeout_s: float = 0.0
    max_memory_mb: int = 0
    max_workers: int = 0
    max_pages: int = 0
    ocr: bool = True
    # the LLM task specs its keys may run ("*": all the server publishes) and what a key
    # may spend on them a calendar month (0: no monthly limit)
    llm_specs: tuple[str, ...] = ()
    monthly_budget_usd: float = 0.0

    def may_use(self, spec: str) -> bool:
        """Whether a key of this tier may run the published spec ``spec``."""
        return "*" in self.llm_specs or spec in self.llm_specs

    def limit(self, group: str) -> Limit | None:
        """The limit of ``group`` (``all`` for the per-key one); None when unlimited."""
        n = int(getattr(self, group))
        return Limit(n, self.window_s) if n > 0 else None

    def policy(self) -> dict[str, Any]:
        return {"name": self.name, "window_s": self.window_s,
                **{g: int(getattr(self, g)) for g in GROUPS}}


BUILTIN: dict[str, Tier] = {
    t.name: t
    for t in (
        Tier("free", 60.0, all=120, extract=10, jobs_create=5, other=120,
             max_timeout_s=30.0, max_memory_mb=1024, max_workers=1, max_pages=50, ocr=False),
        Tier("pro", 60.0, all=1200, extract=120, jobs_create=60, other=1200,
             max_timeout_s=120.0, max_memory_mb=2048, max_workers=4, max_pages=1000,
             llm_specs=("*",), monthly_budget_usd=100.0),
        Tier("enterprise", 60.0, all=12000, extract=1200, jobs_create=600, other=12000,
             max_timeout_s=600.0, max_memory_mb=4096, llm_specs=("*",), monthly_budget_usd=1000.0),
        # no request limits; the server's settings as maxima; every spec, no monthly limit
        Tier("unlimited", 60.0, llm_specs=("*",)),
    )
}


def group_of(method: str, path: str) -> str:
    """The endpoint group of a ``/v1`` request (``path`` is the route's template)."""
    if method == "POST" and path == "/v1/extract":
        return "extract"
    if method == "POST" and path in ("/v1/jobs", "/v1/estimates"):
        return "jobs_create"
    return "other"


def _tier_from(name: str, raw: Any, known: Mapping[str, Tier], where: str) -> Tier:
    if not isinstance(raw, dict):
        raise SettingsError(f"{where}: [tiers.{name}] must be a table")
    allowed = {f.name for f in fields(Tier)} - {"name"} | {"base"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise SettingsError(f"{where}: tier {name!r}: unknown keys {unknown}; known: {sorted(allowed)}")
    base_name = raw.get("base")
    if base_name is not None:
        if base_name not in known:
            raise SettingsError(f"{where}: tier {name!r}: unknown base {base_name!r}; known: {sorted(known)}")
        start = replace(known[base_name], name=name)
    else:
        start = known.get(name, Tier(name))
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "base":
            continue
        if key == "llm_specs":
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise SettingsError(f"{where}: tier {name!r}: llm_specs must be a list of spec names")
            values[key] = tuple(value)
            continue
        if key == "ocr":
            if not isinstance(value, bool):
                raise SettingsError(f"{where}: tier {name!r}: ocr must be true or false, got {value!r}")
            values[key] = value
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise SettingsError(f"{where}: tier {name!r}: {key} must be a number >= 0, got {value!r}")
        if key in ("window_s", "max_timeout_s", "monthly_budget_usd"):
            if key == "window_s" and value <= 0:
                raise SettingsError(f"{where}: tier {name!r}: window_s must be > 0")
            values[key] = float(value)
        else:
            values[key] = int(value)
    return replace(start, **values)


def load_tiers(tiers_file: str) -> dict[str, Tier]:
    """The built-in tiers, changed and extended by ``tiers_file`` (empty: built-ins only)."""
    tiers = dict(BUILTIN)
    if not tiers_file:
        return tiers
    path = Path(tiers_file)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"service.tiers_file: cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"service.tiers_file: {path} is not valid TOML: {exc}") from None
    section = data.get("tiers", {})
    if not isinstance(section, dict) or set(data) - {"tiers"}:
        raise SettingsError(f"service.tiers_file: {path} must hold only [tiers.NAME] tables")
    for name, raw in section.items():
        tiers[name] = _tier_from(name, raw, tiers, str(path))
    return tiers


def check_tier(tiers: Mapping[str, Tier], name: str) -> Tier:
    try:
        return tiers[name]
    except KeyError:
        raise SettingsError(f"unknown tier {name!r}; known tiers: {', '.join(sorted(tiers))}") from None
