"""The one place configuration is read.

Layers, lowest first: built-in defaults < a TOML file (``docmill.toml``) < environment
variables ``DOCMILL_<SECTION>__<KEY>`` < command-line ``--set section.key=value``.
Every value remembers which layer set it (:meth:`Settings.origin`).

Deliveries are tables, not keys: ``[[deliver]]`` in the file, or ``deliver`` as a JSON
list in the overrides (``--set 'deliver=[{...}]'``; the service's job runner sets the
operator's named deliveries this way); :mod:`docmill.settings.deliveries` parses them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from docmill.settings.deliveries import DeliverySpec, parse_allowed, parse_deliveries
from docmill.settings.errors import SettingsError

ENV_PREFIX = "DOCMILL_"
DELIVER = "deliver"  # the [[deliver]] tables (not a section.key setting)


class Origins(Mapping[str, str]):
    """Read-only ``key -> layer`` map (picklable, unlike a mappingproxy)."""

    def __init__(self, data: Mapping[str, str]) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Origins({self._data!r})"


@dataclass(frozen=True)
class RunSettings:
    """How documents are executed."""

    workers: int = 0  # 0: the usable cores
    window: int = 0  # documents in flight at once; 0: 16 x workers
    timeout_s: float = 120.0  # wall-clock limit per document (or page range)
    memory_mb: int = 2048  # resident memory cap per worker process
    max_attempts: int = 3  # tries for timeout/memory/crash failures before quarantine
    recycle_after: int = 1000  # documents per worker process before it is replaced
    split_pages: int = 500  # documents above this many pages are split into ranges of it
    progress_interval_s: float = 5.0  # seconds between progress log lines (not a terminal)
    max_file_mb: int = 2048  # larger files end failed (too_large)
    # a draining run (Ctrl-C / SIGTERM once) waits at most this long for LLM answers, then
    # stops the LLM stage: documents without their answer go back to pending (0: no wait)
    drain_s: float = 30.0
    # where tasks run: local (this machine's worker processes) | ray (a Ray cluster; the
    # driver keeps the ledger, parts and progress) | a kind a plugin registers
    executor: str = "local"
    # the cluster run.executor = ray joins: auto (RAY_ADDRESS, else the cluster `ray start`
    # made on this machine) | host:6379 (a node's GCS) | ray://host:10001 (Ray Client)
    ray_address: str = "auto"
    # how a Ray worker gets a document: auto (it reads the driver's path while every node is
    # on this machine, else the bytes are shipped) | shared (every node reads the same paths:
    # a shared file system) | ship (the driver reads each file and ships its bytes)
    ray_files: str = "auto"
    ray_ship_mb: float = 256.0  # shipped bytes in the object store at once (the driver's window)


@dataclass(frozen=True)
class SourceSettings:
    """Which files a folder source yields."""

    include: tuple[str, ...] = ("**/*",)
    exclude: tuple[str, ...] = ()
    follow_symlinks: bool = False  # walk into symlinked folders (linked files always count)
    # read only files that resolve inside their SOURCE's folder (symlinks, ".." and linked
    # folders that lead out end failed "not_allowed", unread); the service sets it for jobs
    confine_to_root: bool = False
    # remote sources (s3://, sftp://, ...): downloads wait while the spool (DIR/spool) holds
    # this much, so a run is never more than this far ahead of its workers on local disk
    spool_mb: float = 1024.0
    downloads: int = 8  # objects downloaded at once
    requests_per_s: float = 1000.0  # listing and download requests per store (0: no limit)
    retries: int = 8  # tries per request on 429, 503/SlowDown, 5xx and dropped connections
    # S3 downloads: lean (a pooled keep-alive GET signed by docmill, ~0.3 ms of CPU an
    # object) | s3fs (s3fs's client for every request, ~2 ms)
    s3_get: str = "lean"
    # Google Drive (gdrive://): credentials by reference only, never the secret itself:
    # the path of a service-account key, an authorized-user file or a file holding an
    # access token ("": $GOOGLE_APPLICATION_CREDENTIALS) ...
    gdrive_credentials: str = ""
    # ... or the name of an environment variable holding an access token (wins if set)
    gdrive_token_env: str = ""
    gdrive_subject: str = ""  # a user a service account acts as (domain-wide delegation)
    gdrive_queries_per_100s: int = 1000  # Drive queries per user per 100 s (0: no limit)
    gdrive_page_size: int = 1000  # files per files.list page (1..1000)
    gdrive_api_url: str = "https://www.googleapis.com"  # Drive API v3 is at .../drive/v3
    gdrive_token_url: str = "https://oauth2.googleapis.com/token"


@dataclass(frozen=True)
class ExtractSettings:
    """What the text processor extracts."""

    max_pages: int = 0  # 0: every page; N: only the first N pages
    # the pure-Python fallback parser (pypdf) is tried on PDFs PDFium rejects up to this
    # size; it rebuilds broken cross-reference tables at ~10-20 MB/s (0: never)
    fallback_max_mb: float = 1.0
    tables: bool = False  # detect tables on each page (record key "tables")
    ocr: str = "auto"  # auto: OCR pages with no usable text layer | always | never
    ocr_languages: str = "eng"  # Tesseract language codes, e.g. "eng+deu"
    # page text order: pdfium (the content stream's, fastest) | layout (by geometry:
    # columns and table columns read one after the other; ~2-3x the text CPU time)
    reading_order: str = "pdfium"


@dataclass(frozen=True)
class OutputSettings:
    """How records are written under DIR/records/."""

    format: str = "jsonl"  # jsonl | parquet
    part_max_records: int = 1000
    part_max_seconds: float = 10.0
    markdown: bool = False  # also render each document as Markdown (record key "markdown")


@dataclass(frozen=True)
class LlmSettings:
    """The LLM stage: classification and field extraction (off while ``spec`` is empty)."""

    spec: str = ""  # path of the LLM spec (providers, labels, schemas; see docmill.llm.spec)
    input: str = "text"  # text: extracted text | images: page images, for models that read them
    image_dpi: int = 100  # resolution of page images sent with input = "images"
    budget_usd: float = 10.0  # hard cap on spend per output folder; 0 sends nothing
    redact_pii: bool = False  # mask SSNs, e-mails, phones, IBANs, card numbers before sending
    max_pages: int = 3  # the text of the first N pages is sent (0: all)
    max_chars: int = 12000  # and at most this many characters of it
    max_output_tokens: int = 512
    rpm: int = 0  # requests per minute per API key (0: not known: learned from the provider)
    tpm: int = 0  # tokens per minute per API key (0: not known)
    limit_scope: str = "key"  # key: limits shared by all models on a key | model: per model
    max_concurrency: int = 64  # adaptive concurrency ceiling (needs ~ rpm x mean latency / 60)
    timeout_s: float = 60.0  # per request
    cache: bool = True  # reuse answers for the same content, prompt, model and parameters


@dataclass(frozen=True)
class ServiceSettings:
    """``docmill serve`` and ``docmill worker``: the HTTP API, its jobs and its limits."""

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str = "docmill-service"  # the service's ledger, keys and one folder per job
    extract_workers: int = 0  # worker processes for POST /v1/extract (0: usable cores)
    job_workers: int = 1  # jobs run at once inside the server (0: only `docmill worker`)
    max_upload_mb: float = 50.0  # per uploaded file
    max_files: int = 10000  # per job upload
    extract_max_mb: float = 10.0  # POST /v1/extract: file size cap
    extract_max_pages: int = 20  # POST /v1/extract: page cap
    allowed_roots: tuple[str, ...] = ()  # folders a job may name as its source (none: uploads only)
    allowed_hosts: tuple[str, ...] = ()  # hosts a job's source URL may name (none: no URLs)
    # store URLs (s3://bucket/prefix/, sftp://host/folder/, gdrive://...) a job may read below
    allowed_sources: tuple[str, ...] = ()
    # deliveries a job may name (by their key): the operator's destinations, never a caller's
    allowed_deliveries: tuple[DeliverySpec, ...] = ()
    auth: str = "keys"  # keys: API keys and tier limits on /v1; none: local mode, one caller
    redis_url: str = ""  # share rate limits between instances (empty: in memory)
    tiers_file: str = ""  # TOML of tiers and their limits (empty: the built-in tiers)
    max_job_mb: float = 1024.0  # POST /v1/jobs: the whole multipart body of one upload
    max_json_kb: float = 64.0  # any other request body (a job's JSON)
    auth_fail_limit: int = 20  # failed authentications per client address per window (0: no brake)
    auth_fail_window_s: float = 60.0  # ... and that window
    upload_retention_h: float = 24.0  # a finished job's uploads are kept this long (0: removed at its end)
    # the LLM task specs a job may name (name -> spec file; providers and keys stay here)
    llm_specs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Settings:
    """All settings, plus where each value came from."""

    run: RunSettings = field(default_factory=RunSettings)
    sources: SourceSettings = field(default_factory=SourceSettings)
    extract: ExtractSettings = field(default_factory=ExtractSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    llm: LlmSettings = field(default_factory=LlmSettings)
    service: ServiceSettings = field(default_factory=ServiceSettings)
    deliver: tuple[DeliverySpec, ...] = ()  # the [[deliver]] tables
    origins: Origins = field(default_factory=lambda: Origins({}), compare=False)

    def origin(self, key: str) -> str:
        """Which layer set ``key`` (``section.name``): default, file:PATH, env:NAME or flag."""
        return self.origins.get(key, "default")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            f.name: dataclasses.asdict(getattr(self, f.name))
            for f in fields(self)
            if f.name not in ("origins", DELIVER)
        }
        out["service"]["allowed_deliveries"] = {
            d.name: d.to_dict() for d in self.service.allowed_deliveries
        }
        out["service"]["llm_specs"] = dict(self.service.llm_specs)
        out[DELIVER] = [d.to_dict() for d in self.deliver]
        return out

    @property
    def workers(self) -> int:
        """The effective number of worker processes."""
        if self.run.workers > 0:
            return self.run.workers
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not on Linux
            return max(1, os.cpu_count() or 1)

    @property
    def window(self) -> int:
        """The effective in-flight window."""
        return self.run.window if self.run.window > 0 else 16 * self.workers


_SECTIONS: dict[str, type[Any]] = {
    "run": RunSettings,
    "sources": SourceSettings,
    "extract": ExtractSettings,
    "output": OutputSettings,
    "llm": LlmSettings,
    "service": ServiceSettings,
}

_CHOICES: dict[str, tuple[str, ...]] = {
    "output.format": ("jsonl", "parquet"),
    "run.ray_files": ("auto", "shared", "ship"),
    "extract.ocr": ("auto", "always", "never"),
    "sources.s3_get": ("lean", "s3fs"),
    "extract.reading_order": ("pdfium", "layout"),
    "llm.input": ("text", "images"),
    "llm.limit_scope": ("key", "model"),
    "service.auth": ("keys", "none"),
}
_NON_NEGATIVE = {
    "run.workers",
    "run.drain_s",
    "run.window",
    "extract.max_pages",
    "extract.fallback_max_mb",
    "llm.budget_usd",
    "llm.max_pages",
    "llm.rpm",
    "service.extract_workers",
    "service.job_workers",
    "service.upload_retention_h",
    "llm.tpm",
    "service.auth_fail_limit",
    "sources.requests_per_s",
    "sources.gdrive_queries_per_100s",
}
_POSITIVE = {
    "sources.spool_mb",
    "sources.downloads",
    "sources.retries",
    "service.port",
    "service.max_upload_mb",
    "service.max_files",
    "service.extract_max_mb",
    "service.extract_max_pages",
    "service.max_job_mb",
    "service.max_json_kb",
    "service.auth_fail_window_s",
    "llm.max_chars",
    "llm.image_dpi",
    "llm.max_output_tokens",
    "llm.max_concurrency",
    "llm.timeout_s",
    "run.timeout_s",
    "run.memory_mb",
    "run.max_attempts",
    "run.recycle_after",
    "run.split_pages",
    "run.progress_interval_s",
    "run.max_file_mb",
    "run.ray_ship_mb",
    "output.part_max_records",
    "output.part_max_seconds",
}


# settings that refer to a secret (a path, a variable's name) and must not hold it
_REFERENCES = {"sources.gdrive_credentials", "sources.gdrive_token_env"}
_RANGES: dict[str, tuple[int, int]] = {"sources.gdrive_page_size": (1, 1000)}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _secret_in_reference(key: str, value: str) -> str | None:
    """Why a reference setting seems to hold the secret itself (settings are stored in
    the ledger); None when it is a reference. Never repeats the value."""
    if key.endswith("_env"):
        if not _ENV_NAME.match(value):
            return ("must be the name of an environment variable that holds the token, not "
                    "the token itself (the value is not shown)")
        return None
    if value.lstrip().startswith("{") or "PRIVATE KEY" in value or "\n" in value:
        return "must be the path of the credentials file, not its content (the value is not shown)"
    return None


def known_keys() -> list[str]:
    """Every settable key, ``section.name``."""
    return [f"{s}.{f.name}" for s, cls in _SECTIONS.items() for f in fields(cls)]


@functools.cache
def _field_type(key: str) -> Any:
    """The type of ``key``'s field (the annotations are strings: evaluating them costs
    ~15 us a key, so each is evaluated once; the service checks settings per request)."""
    section, name = key.split(".", 1)
    return get_type_hints(_SECTIONS[section])[name]


def _coerce(key: str, value: Any, from_text: bool) -> Any:
    """Convert ``value`` to the type of ``key``; text (env, flags) is parsed leniently."""
    if key == DELIVER:
        return parse_deliveries(value)
    if key == "service.allowed_deliveries":
        return parse_allowed(value)
    if key == "service.llm_specs":
        return _spec_table(value)
    kind = _field_type(key)
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if from_text and str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if from_text and str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise TypeError
        if kind is int:
            if isinstance(value, bool):
                raise TypeError
            if isinstance(value, int):
                return value
            if from_text:
                return int(str(value))
            raise TypeError
        if kind is float:
            if isinstance(value, bool):
                raise TypeError
            if isinstance(value, int | float):
                return float(value)
            if from_text:
                return float(str(value))
            raise TypeError
        if kind is str:
            if isinstance(value, str):
                return value
            raise TypeError
        # tuple[str, ...]
        if isinstance(value, str) and from_text:
            text = value.strip()
            items = (
                json.loads(text)
                if text.startswith("[")
                else [v.strip() for v in text.split(",") if v.strip()]
            )
        else:
            items = value
        if not isinstance(items, list | tuple) or not all(isinstance(v, str) for v in items):
            raise TypeError
        return tuple(items)
    except (TypeError, ValueError, json.JSONDecodeError):
        raise SettingsError(
            f"{key}: expected {getattr(kind, '__name__', str(kind))}, got {value!r}"
        ) from None


_SPEC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def _spec_table(value: Any) -> tuple[tuple[str, str], ...]:
    """``service.llm_specs``: a table ``{name = "path/spec.toml"}`` (or its JSON text),
    as ``(name, path)`` pairs in the table's order."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError:
            raise SettingsError(
                'service.llm_specs: expected a table {name = "path/spec.toml"} (JSON in env or --set)'
            ) from None
    if isinstance(value, list | tuple) and all(isinstance(p, list | tuple) and len(p) == 2 for p in value):
        value = dict(value)
    if not isinstance(value, Mapping):
        raise SettingsError('service.llm_specs: expected a table {name = "path/spec.toml"}')
    out: list[tuple[str, str]] = []
    for name, path in value.items():
        if not isinstance(name, str) or not _SPEC_NAME.match(name):
            raise SettingsError(
                f"service.llm_specs: {name!r} is not a spec name (letters, digits, _ and -, at most 64)"
            )
        if not isinstance(path, str) or not path.strip():
            raise SettingsError(f"service.llm_specs.{name}: expected the path of a spec file")
        out.append((name, path))
    return tuple(out)


def _check(key: str, value: Any) -> None:
    if key in _REFERENCES and value:
        why = _secret_in_reference(key, value)
        if why:
            raise SettingsError(f"{key}: {why}")
    if key in _RANGES and not _RANGES[key][0] <= value <= _RANGES[key][1]:
        low, high = _RANGES[key]
        raise SettingsError(f"{key}: must be between {low} and {high}, got {value!r}")
    if key in _CHOICES and value not in _CHOICES[key]:
        raise SettingsError(f"{key}: {value!r} is not one of {', '.join(_CHOICES[key])}")
    if key in _NON_NEGATIVE and value < 0:
        raise SettingsError(f"{key}: must be >= 0, got {value!r}")
    if key in _POSITIVE and value <= 0:
        raise SettingsError(f"{key}: must be > 0, got {value!r}")


def _unknown(key: str) -> SettingsError:
    return SettingsError(f"unknown setting {key!r}; known settings: {', '.join(known_keys())}")


def _file_layer(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"cannot read config file {path}: {exc}") from None
    out: dict[str, Any] = {}
    for section, table in data.items():
        if section == DELIVER:
            out[DELIVER] = table
            continue
        if section not in _SECTIONS or not isinstance(table, dict):
            raise SettingsError(
                f"{path}: unknown section [{section}]; known sections: "
                f"{', '.join(_SECTIONS)}, [[{DELIVER}]]"
            )
        for name, value in table.items():
            out[f"{section}.{name}"] = value
    return out


def _env_layer(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, key = name[len(ENV_PREFIX) :].lower().split("__", 1)
        out[f"{section}.{key}"] = (value, name)
    return out


def load_settings(
    config_path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build :class:`Settings` from the layers. ``env`` defaults to ``os.environ``.

    ``overrides`` are the command-line layer: ``{"run.workers": "4"}`` (text is parsed).
    A ``docmill.toml`` in the working directory is read when no path is given.
    """
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    known = {*known_keys(), DELIVER}

    path = Path(config_path) if config_path else None
    if path is None and Path("docmill.toml").is_file():
        path = Path("docmill.toml")
    if path is not None:
        for key, value in _file_layer(path).items():
            if key not in known:
                raise _unknown(key)
            values[key] = _coerce(key, value, from_text=False)
            origins[key] = f"file:{path}"

    for key, (value, name) in _env_layer(os.environ if env is None else env).items():
        if key not in known:
            raise SettingsError(f"{name}: " + str(_unknown(key)))
        values[key] = _coerce(key, value, from_text=True)
        origins[key] = f"env:{name}"

    for key, value in (overrides or {}).items():
        if key not in known:
            raise _unknown(key)
        values[key] = _coerce(key, value, from_text=isinstance(value, str))
        origins[key] = "flag"

    for key, value in values.items():
        _check(key, value)

    sections: dict[str, Any] = {}
    for section, cls in _SECTIONS.items():
        kwargs = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith(section + ".")}
        sections[section] = cls(**kwargs)
    return Settings(**sections, deliver=values.get(DELIVER, ()), origins=Origins(origins))


def with_overrides(settings: Settings, overrides: Mapping[str, Any], origin: str = "job") -> Settings:
    """``settings`` with some keys replaced, coerced and checked as ``--set`` values are
    (the service applies a job's overrides over the server's settings this way)."""
    known = set(known_keys())
    changes: dict[str, dict[str, Any]] = {}
    origins = dict(settings.origins)
    deliver = settings.deliver
    for key, raw in overrides.items():
        if key == DELIVER:
            deliver = parse_deliveries(raw)
            origins[key] = origin
            continue
        if key not in known:
            raise _unknown(key)
        value = _coerce(key, raw, from_text=isinstance(raw, str))
        _check(key, value)
        section, name = key.split(".", 1)
        changes.setdefault(section, {})[name] = value
        origins[key] = origin
    replaced = {s: dataclasses.replace(getattr(settings, s), **kw) for s, kw in changes.items()}
    return dataclasses.replace(settings, **replaced, deliver=deliver, origins=Origins(origins))
