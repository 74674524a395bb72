"""What one request may change: the allow-list of per-request settings, each value
checked against what the caller's tier permits (pure: no I/O, no clock, no HTTP).

A job (``POST /v1/jobs``, its ``settings`` object) and a synchronous extract
(``POST /v1/extract``, its ``settings`` form field) may set only these:

=========================  ====  =======  ===================================================
setting                    jobs  extract  bound (:class:`Maxima`, from the tier)
=========================  ====  =======  ===================================================
``extract.tables``         yes   yes
``extract.ocr``            yes   yes      only ``never`` where the tier has ``ocr = false``
``extract.ocr_languages``  yes   yes      at most 4 ``+``-joined codes (letters, digits, ``_``)
``extract.reading_order``  yes   yes
``extract.max_pages``      yes   no       1 to ``max_pages`` (0, every page, only without one)
``output.markdown``        yes   yes
``output.format``          yes   no
``run.timeout_s``          yes   no       at most ``max_timeout_s``
``run.memory_mb``          yes   no       at most ``max_memory_mb``
``run.workers``            yes   no       1 to ``max_workers``
``run.split_pages``        yes   no       at least 10 (smaller ranges only repeat the opening)
``pages``                  no    yes      ``"N"`` or ``"N-M"`` (1-based, inclusive; or an
                                          integer N), at most ``max_pages`` and
                                          ``service.extract_max_pages`` pages
=========================  ====  =======  ===================================================

Everything else is refused: where to read (``sources.*``), what to spend (``llm.*``), how
the server runs (``service.*``, ``run.window``, ``run.max_attempts``, ``run.recycle_after``,
``run.max_file_mb``, ``output.part_*``) and ``extract.fallback_max_mb`` (pure-Python
parsing of large damaged files). An extract runs in the server's shared pool, so its
timeout, memory cap and workers are the server's; its page count is its window.

A value over the maximum is refused, never lowered; a setting the request leaves alone
whose server value is over the maximum is lowered to it (a ``free`` job runs with
``run.timeout_s = 30`` on a server whose default is 120), and a job records it among its
settings. Local mode (``service.auth = none``) has the server's own settings as maxima.
Refusals are :class:`SettingRefused` (the routes answer 422 with its code and details).

Where a job writes is never a setting: a ``deliver`` table (or any ``deliver.*`` or
``service.allowed_*`` key) in a job's ``settings`` is refused with 403
``delivery_not_allowed``. A job names deliveries the operator set up
(``service.allowed_deliveries``) in its ``deliveries`` list, by name only
(:func:`job_deliveries`); an unknown name, or anything but a name, is the same 403.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from docmill.model import PageRange
from docmill.service.tiers import Tier
from docmill.settings import Settings, SettingsError, with_overrides
from docmill.settings.deliveries import DeliverySpec

JOB_KEYS = (
    "extract.tables",
    "extract.ocr",
    "extract.ocr_languages",
    "extract.reading_order",
    "extract.max_pages",
    "output.markdown",
    "output.format",
    "run.timeout_s",
    "run.memory_mb",
    "run.workers",
    "run.split_pages",
)
EXTRACT_KEYS = (
    "extract.tables",
    "extract.ocr",
    "extract.ocr_languages",
    "extract.reading_order",
    "output.markdown",
    "pages",
)
MIN_SPLIT_PAGES = 10
LOCAL = "local"  # the maxima of local mode (service.auth = none): the server's settings
MAX_LANGUAGES = 4
_LANGUAGE = re.compile(r"[A-Za-z0-9_]{1,32}")
_PAGES = re.compile(r"\s*(\d{1,9})\s*(?:-\s*(\d{1,9})\s*)?")


class SettingRefused(ValueError):
    """A request's settings refused: a stable ``code``, the ``setting`` it names (None
    when the whole object is wrong) and what the client may send instead."""

    def __init__(
        self, code: str, message: str, setting: str | None = None, *, status: int = 422,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.setting = setting
        self.status = status  # 403 for where to read or write; 422 for the rest
        self.extra = details

    @property
    def details(self) -> dict[str, Any] | None:
        out = {"setting": self.setting, **self.extra} if self.setting is not None else dict(self.extra)
        return out or None


@dataclass(frozen=True, slots=True)
class Maxima:
    """The most a caller may ask for; ``pages`` 0: every page."""

    tier: str
    timeout_s: float
    memory_mb: int
    workers: int
    pages: int
    ocr: bool

    @classmethod
    def of(cls, tier: Tier | None, settings: Settings) -> Maxima:
        """A tier's maxima (each 0 in the tier: the server's own setting); ``tier`` None
        (local mode): the server's settings themselves."""
        if tier is None:
            return cls(LOCAL, settings.run.timeout_s, settings.run.memory_mb, settings.workers,
                       settings.extract.max_pages, settings.extract.ocr != "never")
        return cls(
            tier.name,
            tier.max_timeout_s or settings.run.timeout_s,
            tier.max_memory_mb or settings.run.memory_mb,
            tier.max_workers or settings.workers,
            tier.max_pages or settings.extract.max_pages,
            tier.ocr,
        )


@dataclass(frozen=True, slots=True)
class ExtractChoice:
    """What one ``POST /v1/extract`` runs with: ``overrides`` of ``extract.*`` and
    ``output.markdown`` (typed), the pages asked for (None: from the first) and the
    window's cap (``max_pages``: with a range, its end; else the most pages read)."""

    overrides: dict[str, Any]
    page_range: PageRange | None
    max_pages: int


def settings_object(raw: Any) -> dict[str, Any]:
    """The ``settings`` a request sent: a JSON object, or its text (a form field);
    absent or empty: none."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, nested past the stack
            raise SettingRefused("invalid_settings", "settings must be a JSON object") from None
    if not isinstance(raw, dict):
        raise SettingRefused("invalid_settings", "settings must be a JSON object")
    return raw


def _value(settings: Settings, key: str) -> Any:
    section, name = key.split(".", 1)
    return getattr(getattr(settings, section), name)


def _typed(key: str, raw: Any, base: Settings) -> Any:
    """``raw`` coerced and checked as ``--set`` values are, then finite."""
    try:
        value = _value(with_overrides(base, {key: raw}, origin="request"), key)
    except SettingsError as exc:
        raise SettingRefused("invalid_settings", str(exc), key) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise SettingRefused("invalid_settings", f"{key}: must be a finite number, got {raw!r}", key)
    return value


def _who(limits: Maxima) -> str:
    return "this server (local mode)" if limits.tier == LOCAL else f"tier {limits.tier!r}"


def _over(key: str, value: Any, limits: Maxima, maximum: Any, why: str = "") -> SettingRefused:
    return SettingRefused(
        "setting_over_limit",
        f"{key}: {value!r} is outside what {_who(limits)} permits ({why or f'at most {maximum!r}'})",
        key, maximum=maximum, tier=limits.tier,
    )


def _within(key: str, value: Any, limits: Maxima) -> None:
    """Refuse ``value`` of ``key`` when the maxima do not permit it (comparisons are
    written so that anything not provably within, NaN included, is refused)."""
    if key == "run.timeout_s" and not value <= limits.timeout_s:
        raise _over(key, value, limits, limits.timeout_s)
    if key == "run.memory_mb" and not value <= limits.memory_mb:
        raise _over(key, value, limits, limits.memory_mb)
    if key == "run.workers" and not 1 <= value <= limits.workers:
        raise _over(key, value, limits, limits.workers, f"1 to {limits.workers}")
    if key == "extract.max_pages" and limits.pages and not 1 <= value <= limits.pages:
        raise _over(key, value, limits, limits.pages, f"1 to {limits.pages}")
    if key == "extract.ocr" and not limits.ocr and value != "never":
        raise SettingRefused(
            "setting_over_limit", f"{key}: {_who(limits)} does not permit OCR; send 'never'",
            key, allowed=["never"], tier=limits.tier,
        )
    if key == "run.split_pages" and value < MIN_SPLIT_PAGES:
        raise SettingRefused(
            "invalid_settings", f"{key}: at least {MIN_SPLIT_PAGES}, got {value!r}", key,
            minimum=MIN_SPLIT_PAGES,
        )
    if key == "extract.ocr_languages":
        codes = value.split("+")
        if len(codes) > MAX_LANGUAGES or not all(_LANGUAGE.fullmatch(c) for c in codes):
            raise SettingRefused(
                "invalid_settings",
                f"{key}: at most {MAX_LANGUAGES} '+'-joined language codes, got {value!r}", key,
            )


def _checked(raw: Mapping[str, Any], allowed: tuple[str, ...], limits: Maxima, base: Settings,
             skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The allowed keys of ``raw`` with typed values within ``limits``, in request order;
    the first refused key raises."""
    out: dict[str, Any] = {}
    for key, raw_value in raw.items():
        if _is_destination(str(key)):
            raise SettingRefused(
                "delivery_not_allowed",
                f"{key!r}: where a job delivers is not a setting; name one of the server's "
                "deliveries (service.allowed_deliveries) in the job's \"deliveries\"",
                str(key), status=403,
            )
        if key not in allowed:
            raise SettingRefused(
                "setting_not_allowed", f"{key!r} cannot be set per request; allowed: {', '.join(allowed)}",
                str(key), allowed=list(allowed),
            )
        if key in skip:
            continue
        value = _typed(key, raw_value, base)
        _within(key, value, limits)
        out[key] = value
    return out


def _is_destination(key: str) -> bool:
    return key == "deliver" or key.startswith(("deliver.", "deliver[", "service.allowed_"))


def job_deliveries(raw: Any, allowed: tuple[DeliverySpec, ...]) -> list[str]:
    """The deliveries a job asks for: names of ``allowed`` (the operator's), each once,
    in order. Anything else (an unknown name, a table, a URL) is refused, 403."""
    if raw is None or raw == "":
        return []
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError):
            raise SettingRefused("invalid_request", "deliveries must be a JSON list of names") from None
    if not isinstance(raw, list):
        raise SettingRefused("invalid_request", "deliveries must be a list of names")
    names = {spec.name for spec in allowed}
    out: list[str] = []
    for item in raw:
        if not isinstance(item, str) or item not in names:
            shown = item if isinstance(item, str) else type(item).__name__
            raise SettingRefused(
                "delivery_not_allowed",
                f"delivery {shown!r} is not one this server offers"
                + (f"; offered: {', '.join(sorted(names))}" if names else " (it offers none)"),
                "deliveries", status=403, allowed=sorted(names),
            )
        if item not in out:
            out.append(item)
    return out


def _lowered(effective: Settings, limits: Maxima, chosen: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The settings among ``keys`` the request left alone whose server value is over
    ``limits``, at the limit."""
    out: dict[str, Any] = {}
    if "run.timeout_s" in keys and effective.run.timeout_s > limits.timeout_s:
        out["run.timeout_s"] = limits.timeout_s
    if "run.memory_mb" in keys and effective.run.memory_mb > limits.memory_mb:
        out["run.memory_mb"] = limits.memory_mb
    if "run.workers" in keys and effective.workers > limits.workers:
        out["run.workers"] = limits.workers
    pages = effective.extract.max_pages
    if "extract.max_pages" in keys and limits.pages and not 1 <= pages <= limits.pages:
        out["extract.max_pages"] = limits.pages
    if "extract.ocr" in keys and not limits.ocr and effective.extract.ocr != "never":
        out["extract.ocr"] = "never"
    return {k: v for k, v in out.items() if k not in chosen}


def job_overrides(raw: Mapping[str, Any], limits: Maxima, base: Settings) -> dict[str, Any]:
    """The settings a job runs with over ``base`` (the server's): those asked for, each
    allowed and within ``limits``, then the server's values over ``limits`` lowered."""
    chosen = _checked(raw, JOB_KEYS, limits, base)
    effective = with_overrides(base, chosen, origin="request")
    return {**chosen, **_lowered(effective, limits, chosen, JOB_KEYS)}


def parse_pages(raw: Any, cap: int) -> PageRange:
    """``"N"``, ``"N-M"`` (1-based, inclusive) or an integer N as a zero-based range of
    at most ``cap`` pages (0: no cap)."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    found = _PAGES.fullmatch(raw) if isinstance(raw, str) else None
    if found is None:
        raise SettingRefused("invalid_settings", f"pages: send \"N\" or \"N-M\" (1-based), got {raw!r}", "pages")
    first = int(found.group(1))
    last = int(found.group(2) or first)
    if first < 1 or last < first:
        raise SettingRefused("invalid_settings", f"pages: 1 <= first <= last, got {raw!r}", "pages")
    if cap and last - first + 1 > cap:
        raise SettingRefused(
            "setting_over_limit", f"pages: {last - first + 1} pages asked, at most {cap} in one extract",
            "pages", maximum=cap,
        )
    return PageRange(first - 1, last)


def extract_choice(raw: Mapping[str, Any], limits: Maxima, base: Settings) -> ExtractChoice:
    """What one extract runs with over ``base``: the allowed settings within ``limits``,
    OCR off where the tier does not permit it, and its pages (at most the tier's
    ``max_pages`` and ``service.extract_max_pages``)."""
    chosen = _checked(raw, EXTRACT_KEYS, limits, base, skip=("pages",))
    effective = with_overrides(base, chosen, origin="request")
    overrides = {**chosen, **_lowered(effective, limits, chosen, ("extract.ocr",))}
    cap = base.service.extract_max_pages
    if limits.pages:
        cap = min(cap, limits.pages)
    if "pages" not in raw:
        return ExtractChoice(overrides, None, cap)
    page_range = parse_pages(raw["pages"], cap)
    return ExtractChoice(overrides, page_range, page_range.stop)
