"""A job's LLM cost before it is spent: ``POST /v1/estimates``, or ``POST /v1/jobs`` with
``"dry_run": true``.

The same code as ``docmill estimate`` (:func:`docmill.llm.estimate.estimate_run`) over
the job's documents (its uploads, a URL's download or its allowed folder), with the
job's settings and the published spec it names: an even sample is read, the stage's
own prompts are counted, calls, tokens and cost come out low / expected / high, and
whether the budget (the job's, within what is left of its key's month) covers them.
Nothing is sent to a provider. The sampled documents are read by the extract service's
supervised workers (timeout, memory cap, a crash costs a worker), never in the server
process, and only inside the job's roots as its run would read them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from docmill.engine.runner import extract_options
from docmill.llm.estimate import DEFAULT_SAMPLE, estimate_run
from docmill.model import DocState
from docmill.processors import ExtractOptions
from docmill.service.extract import ExtractService
from docmill.service.specs import PublishedSpec
from docmill.settings import Settings, with_overrides
from docmill.sources.confine import Roots

SAMPLE_TIMEOUT_S = 600.0  # one sampled document (the pool's own deadline comes first)


def estimate_job(
    settings: Settings,
    pool: ExtractService,
    sources: Sequence[str],
    overrides: dict[str, Any],
    published: PublishedSpec,
    budget_usd: float,
    sample: int = DEFAULT_SAMPLE,
) -> dict[str, Any]:
    """The estimate's JSON (``docmill estimate --json``'s) for a job's ``sources``, run
    with ``overrides`` over the server's settings; ``budget_usd``: what its run would get."""
    run = with_overrides(
        settings,
        {**overrides, "sources.confine_to_root": True, "llm.spec": published.path,
         "llm.budget_usd": budget_usd},
        origin="request",
    )
    roots = Roots.of_sources(sources).real
    options = dataclasses.replace(
        extract_options(run), tables=False, markdown=False, split_pages=1 << 30, confine_roots=roots
    )

    def pooled(path: str, opts: ExtractOptions, max_bytes: int) -> tuple[str, list[str]]:
        outcome = pool.submit_options(path, opts, max_bytes).result(SAMPLE_TIMEOUT_S).opened()
        if outcome.status != DocState.DONE:
            return str(outcome.status.value), []
        return "llm", list(outcome.text)

    report = estimate_run(
        list(sources), published.spec, run.llm, run.sources, options,
        sample=sample, max_file_bytes=run.run.max_file_mb << 20, extract=pooled,
    )
    return report.to_dict()
