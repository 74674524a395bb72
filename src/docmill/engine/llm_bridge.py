"""Between the run loop and the LLM stage: what is sent, and how answers join the record.

The runner hands over a document whose extraction is done (:meth:`LlmBridge.submit`);
the bridge cuts its text to ``llm.max_pages`` / ``llm.max_chars``, masks PII when asked,
asks the local classifier, and passes the job to :class:`docmill.llm.stage.LlmStage`.
:meth:`LlmBridge.collect` returns finished documents with the label, fields and spend
added to their content (record keys ``class``, ``fields``, ``llm``), or marked deferred
when the budget ran out (they go back to pending, and what they cost is still counted).

Spend reaches the ledger answer by answer: the stage hands every billed answer to a
:class:`~docmill.state.llm_calls.SpendWriter` (its own connection, on the stage's thread)
before it uses it, so a ``kill -9`` loses at most the requests in flight. A record's
``llm.cost_usd`` and tokens are the document's totals over every billed answer of every
run, listed in ``llm.attempts``.
"""

from __future__ import annotations

import base64
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from docmill.model import DocState, ErrorInfo, FailureCategory, ProcessOutcome
from docmill.model.content import decode_content, encode_content
from docmill.settings import LlmSettings
from docmill.state import Store

if TYPE_CHECKING:
    from docmill.llm.stage import LlmResult, LlmStage
    from docmill.state.llm_calls import SpendWriter

log = logging.getLogger("docmill.llm")
CACHE_FILE = "llm-cache.db"
PUBLISH_EVERY_S = 1.0  # the stage's limits view goes to the ledger at most this often
REFRESH_S = 10.0  # and at least this often while the run lasts (its updated_at)


class _Entry(Protocol):
    """The runner's in-flight entry (only what the bridge reads)."""

    @property
    def row(self) -> Any: ...


class LlmBridge:
    def __init__(
        self,
        settings: LlmSettings,
        stage: LlmStage,
        store: Store,
        classifier: Any,
        spend: SpendWriter | None = None,
    ) -> None:
        self._settings = settings
        self._stage = stage
        self._store = store
        self._classifier = classifier
        self._spend = spend
        self._waiting: dict[int, tuple[Any, ProcessOutcome]] = {}
        self._cap = max(64, 4 * settings.max_concurrency)
        self._published: list[dict[str, Any]] = []
        self._published_at = -REFRESH_S

    @classmethod
    def open(cls, settings: LlmSettings, out_dir: Path, store: Store) -> LlmBridge:
        """Load the spec, start the stage (raises SettingsError for a bad spec)."""
        from docmill.llm.classify import LocalClassifier
        from docmill.llm.spec import load_spec
        from docmill.llm.stage import LlmStage, StageOptions
        from docmill.model.llm import LlmAttempt
        from docmill.state.llm_calls import SpendWriter

        if settings.input == "images" and settings.redact_pii:
            from docmill.settings import SettingsError

            raise SettingsError(
                "llm.redact_pii cannot mask page images: use llm.input = \"text\" to mask, "
                "or turn llm.redact_pii off to send images"
            )
        spec = load_spec(settings.spec)
        spent = float(store.llm_totals()["cost_usd"])  # type: ignore[arg-type]
        spend = SpendWriter(store.path)

        def on_billed(doc_id: int, a: LlmAttempt) -> None:
            spend.add(doc_id, a)

        stage = LlmStage(
            spec,
            StageOptions(
                budget_usd=settings.budget_usd,
                spent_before_usd=spent,
                max_output_tokens=settings.max_output_tokens,
                timeout_s=settings.timeout_s,
                rpm=settings.rpm,
                tpm=settings.tpm,
                limit_scope=settings.limit_scope,
                max_concurrency=settings.max_concurrency,
                cache_path=str(out_dir / CACHE_FILE) if settings.cache else None,
            ),
            on_billed=on_billed,
        )
        stage.start()
        if spent >= settings.budget_usd:
            log.warning(
                "the LLM budget (llm.budget_usd=%s) is already spent (%.4f USD): nothing "
                "will be sent; raise it to continue",
                settings.budget_usd,
                spent,
            )
            stage.exhausted = True
        return cls(settings, stage, store, LocalClassifier.from_spec(spec), spend)

    # --- what the run loop asks -----------------------------------------------------

    @property
    def exhausted(self) -> bool:
        return self._stage.exhausted

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def window_credit(self) -> int:
        """Documents waiting on the LLM that do not count against the run window."""
        return min(len(self._waiting), self._cap)

    def submit(self, entry: _Entry, outcome: ProcessOutcome) -> None:
        from docmill.llm.stage import LlmJob

        row = entry.row
        text = self._text(outcome)
        guess = self._classifier.classify(text) if self._classifier is not None else None
        if self._settings.redact_pii:
            from docmill.llm.pii import mask_pii

            text = mask_pii(text)
        images = tuple(
            f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
            for mime, data in outcome.images
        )
        outcome.images = []  # sent once; never kept
        job = LlmJob(
            images=images,
            doc_id=row.id,
            sha256=row.sha256 or "",
            text=text,
            guess_label=getattr(guess, "label", None),
            guess_confidence=float(getattr(guess, "confidence", 0.0) or 0.0),
            guess_by=getattr(guess, "decided_by", None),
        )
        self._waiting[row.id] = (entry, outcome)
        self._stage.submit(job)

    def collect(self) -> list[tuple[Any, ProcessOutcome, bool]]:
        """Finished documents: (entry, outcome with the LLM's work added, deferred)."""
        out: list[tuple[Any, ProcessOutcome, bool]] = []
        for result in self._stage.results():
            entry, outcome = self._waiting.pop(result.doc_id)
            if result.status == "deferred":  # its spend is in the ledger already
                out.append((entry, outcome, True))
            else:
                if self._spend is not None:
                    self._totals(result)
                out.append((entry, merge_answer(outcome, result, committed=self._spend is not None), False))
        return out

    def _totals(self, result: LlmResult) -> None:
        """The document's spend over every billed answer of every run, from the ledger."""
        calls = self._store.llm_attempts(result.doc_id)
        result.attempts = [c.to_dict() for c in calls]
        result.cost_usd = sum(c.cost_usd for c in calls)
        result.input_tokens = sum(c.tokens_in for c in calls)
        result.output_tokens = sum(c.tokens_out for c in calls)

    def publish(self, *, final: bool = False) -> None:
        """Write the stage's limits, sources, requests in flight and breakers per model to
        the ledger (``docmill status`` and the service read them from other processes):
        at most once every ``PUBLISH_EVERY_S``, when they changed or ``REFRESH_S`` passed;
        ``final``: at the end, nothing in flight any more."""
        now = time.monotonic()
        if not final and now - self._published_at < PUBLISH_EVERY_S:
            return
        rows = [view.to_dict() for view in self._stage.limit_views()]
        if final:
            rows = [{**row, "in_flight": 0, "waiting": 0} for row in rows]
        if not rows or (rows == self._published and now - self._published_at < REFRESH_S):
            return
        self._store.save_llm_limits(rows)
        self._published, self._published_at = rows, now

    def close(self) -> None:
        """Stop the stage; what still waits on it stays in flight for the runner to release."""
        self._stage.close()
        self.publish(final=True)
        self._stage.results()  # finished while closing: their spend is in the ledger
        if self._spend is not None:
            self._spend.close()
        self._waiting.clear()

    # --- helpers --------------------------------------------------------------------

    def _text(self, outcome: ProcessOutcome) -> str:
        from docmill.llm.stage import text_to_send

        pages = decode_content(outcome.content)["text"] if outcome.content else list(outcome.text)
        return text_to_send(pages, self._settings.max_pages, self._settings.max_chars)


def merge_answer(
    outcome: ProcessOutcome, result: LlmResult, *, committed: bool = False
) -> ProcessOutcome:
    """The outcome with the label, fields and spend in its content and ledger columns
    (``committed``: the spend is in the ledger already, answer by answer: not added again)."""
    data = decode_content(outcome.content) if outcome.content else {
        "text": list(outcome.text),
        "metadata": dict(outcome.metadata),
        **outcome.extra,
    }
    data["class"] = (
        {"label": result.label, "confidence": result.confidence, "decided_by": result.decided_by}
        if result.label
        else None
    )
    data["fields"] = result.fields
    data["llm"] = result.to_dict()
    text, metadata = data.pop("text"), data.pop("metadata")
    outcome.content = encode_content(text, metadata, **data)
    outcome.text, outcome.extra = [], {}
    outcome.label = result.label
    if not committed:
        outcome.cost_usd = result.cost_usd
        outcome.tokens_in = result.input_tokens
        outcome.tokens_out = result.output_tokens
    if result.status == "failed" and result.error:
        category, _, message = result.error.partition(":")
        outcome.status = DocState.FAILED
        outcome.error = ErrorInfo(FailureCategory(category), message, "llm")
    return outcome
