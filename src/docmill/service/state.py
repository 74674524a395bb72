"""The app's composition root: everything a route needs, built once by ``create_app``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fastapi import Request

from docmill.service.extract import ExtractService
from docmill.service.jobrunner import JobRunner
from docmill.service.jobs import JobLedger
from docmill.service.metrics import ServiceMetrics
from docmill.service.specs import PublishedSpec
from docmill.service.tiers import Tier
from docmill.service.usage import KeyLimits, SpendLedger
from docmill.settings import Settings


@dataclass
class Services:
    settings: Settings
    ledger: JobLedger
    metrics: ServiceMetrics
    extract: ExtractService
    runner: JobRunner | None  # None: jobs run only in `docmill worker`
    tiers: Mapping[str, Tier] = field(default_factory=dict)  # what each key's tier permits
    specs: Mapping[str, PublishedSpec] = field(default_factory=dict)  # service.llm_specs, loaded
    spend: SpendLedger | None = None  # each key's LLM spend per month
    limits: KeyLimits | None = None  # each key's monthly LLM limit


async def services(request: Request) -> Services:
    """The FastAPI dependency for the composition root (async: FastAPI runs a plain
    function dependency in its thread pool, a thread hop on every request)."""
    found: Services = request.app.state.services
    return found
