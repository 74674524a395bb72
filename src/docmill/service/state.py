"""The app's composition root: everything a route needs, built once by ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from docmill.service.extract import ExtractService
from docmill.service.jobrunner import JobRunner
from docmill.service.jobs import JobLedger
from docmill.service.metrics import ServiceMetrics
from docmill.settings import Settings


@dataclass
class Services:
    settings: Settings
    ledger: JobLedger
    metrics: ServiceMetrics
    extract: ExtractService
    runner: JobRunner | None  # None: jobs run only in `docmill worker`


def services(request: Request) -> Services:
    """The FastAPI dependency for the composition root."""
    found: Services = request.app.state.services
    return found
